-- Passport store, PostgreSQL, migration 10: whom a backend-services client acts for.
--
-- A system client reaches a child's record only while its organisation is in the child's
-- care team; a `regional` client (a trusted regional integration: bulk load, regional
-- EPR sync) reaches every child's record. `cleared` lists the security labels it may see
-- (space-separated codes of the passport-security-label system). See docs/SECURITY.md.
ALTER TABLE oauth_clients ADD COLUMN organisation_id TEXT;
ALTER TABLE oauth_clients ADD COLUMN regional BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE oauth_clients ADD COLUMN cleared TEXT NOT NULL DEFAULT '';
