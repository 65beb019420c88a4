-- Passport store, SQLite, migration 8: an integer key per resource for the search indexes.
--
-- Every resource gets `rid`, the `seq` of its first version: assigned at create, never
-- changed (a deletion and a re-create keep it), unique because seqs are. It is the rowid of
-- resource_current, so a search joins index rows to their resource by one integer lookup;
-- (resource_type, id) stays unique and answers reads by id.
--
-- Index tables key their rows by (rid, n) (`n`: the row's position among its resource's
-- rows of that table) WITHOUT ROWID: the table itself is the owner index (a write replaces
-- a resource's rows by one range delete; creates append at the end), and each lookup
-- index carries (rid, n) as its suffix, so a search reads rids from the lookup index
-- alone. Two B-tree insertions per index row with small keys, instead of three with two
-- text columns (type and a 36-character id) in every key.
CREATE TABLE resource_current_new (
    rid             INTEGER PRIMARY KEY,
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    last_updated_us INTEGER NOT NULL,
    UNIQUE (resource_type, id)
);
INSERT INTO resource_current_new (rid, resource_type, id, version_id, seq, deleted, last_updated_us)
SELECT (SELECT MIN(v.seq) FROM resource_versions v
        WHERE v.resource_type = c.resource_type AND v.id = c.id),
       c.resource_type, c.id, c.version_id, c.seq, c.deleted, c.last_updated_us
FROM resource_current c;
DROP TABLE resource_current;
ALTER TABLE resource_current_new RENAME TO resource_current;

CREATE TABLE index_token_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    system        TEXT,
    code          TEXT    NOT NULL,
    text          TEXT,
    type_system   TEXT,
    type_code     TEXT,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_token_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param, x.system,
       x.code, x.text, x.type_system, x.type_code
FROM index_token x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_token;
ALTER TABLE index_token_new RENAME TO index_token;
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system);

CREATE TABLE index_string_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    normalized    TEXT    NOT NULL,
    exact         TEXT    NOT NULL,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_string_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param,
       x.normalized, x.exact
FROM index_string x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_string;
ALTER TABLE index_string_new RENAME TO index_string;
CREATE INDEX index_string_lookup ON index_string (resource_type, param, normalized);

CREATE TABLE index_date_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    low_us        INTEGER NOT NULL,
    high_us       INTEGER NOT NULL,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_date_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param,
       x.low_us, x.high_us
FROM index_date x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_date;
ALTER TABLE index_date_new RENAME TO index_date;
CREATE INDEX index_date_lookup ON index_date (resource_type, param, low_us, high_us);

CREATE TABLE index_reference_new (
    rid               INTEGER NOT NULL,
    n                 INTEGER NOT NULL,
    resource_type     TEXT    NOT NULL,
    param             TEXT    NOT NULL,
    target_type       TEXT,
    target_id         TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_reference_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param,
       x.target_type, x.target_id, x.url, x.identifier_system, x.identifier_value
FROM index_reference x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_reference;
ALTER TABLE index_reference_new RENAME TO index_reference;
CREATE INDEX index_reference_target ON index_reference (target_type, target_id, param, resource_type);
CREATE INDEX index_reference_url ON index_reference (resource_type, param, url);
-- Only `:identifier` searches use this one, and few references carry an identifier.
CREATE INDEX index_reference_ident ON index_reference (resource_type, param, identifier_value)
    WHERE identifier_value IS NOT NULL;

CREATE TABLE index_number_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    value         REAL    NOT NULL,
    low           REAL    NOT NULL,
    high          REAL    NOT NULL,
    system        TEXT,
    code          TEXT,
    unit          TEXT,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_number_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param,
       x.value, x.low, x.high, x.system, x.code, x.unit
FROM index_number x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_number;
ALTER TABLE index_number_new RENAME TO index_number;
CREATE INDEX index_number_lookup ON index_number (resource_type, param, value);

CREATE TABLE index_uri_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_uri_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param, x.value
FROM index_uri x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_uri;
ALTER TABLE index_uri_new RENAME TO index_uri;
CREATE INDEX index_uri_lookup ON index_uri (resource_type, param, value);

CREATE TABLE index_composite_new (
    rid           INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    c1_system     TEXT,
    c1_code       TEXT,
    c2_system     TEXT,
    c2_code       TEXT,
    c2_value      REAL,
    c2_low_us     INTEGER,
    c2_high_us    INTEGER,
    c2_string     TEXT,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;
INSERT INTO index_composite_new
SELECT c.rid, ROW_NUMBER() OVER (PARTITION BY c.rid) - 1, x.resource_type, x.param,
       x.c1_system, x.c1_code, x.c2_system, x.c2_code, x.c2_value, x.c2_low_us, x.c2_high_us,
       x.c2_string
FROM index_composite x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_composite;
ALTER TABLE index_composite_new RENAME TO index_composite;
CREATE INDEX index_composite_lookup ON index_composite (resource_type, param, c1_code);
