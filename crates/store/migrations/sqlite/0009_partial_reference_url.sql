-- Passport store, migration 9: index_reference_url becomes partial.
--
-- Relative references (the usual kind) have no url, so the index only needs rows that do.
-- As a full index it also misled PostgreSQL's generic plans for `subject=Patient/x`
-- searches into scanning every (type, param) row and filtering on the target — 1.2 s per
-- search at 1M resources. A partial index cannot be chosen for those queries, and
-- `url = ?` still implies `url IS NOT NULL`, so URL searches use it as before.
DROP INDEX index_reference_url;
CREATE INDEX index_reference_url ON index_reference (resource_type, param, url)
    WHERE url IS NOT NULL;
