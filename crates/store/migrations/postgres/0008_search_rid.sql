-- Passport store, PostgreSQL, migration 8: an integer key per resource for the search
-- indexes.
--
-- Every resource gets `rid`, the `seq` of its first version: assigned at create, never
-- changed (a deletion and a re-create keep it), unique because seqs are. Index rows carry
-- `rid` instead of (resource_type, id) text: the owner index is on (rid) alone and each
-- lookup index ends in rid, so a search reads rids from the lookup index and joins to
-- resource_current by one integer. `resource_type` stays in the lookup indexes: parameter
-- codes repeat across types.
ALTER TABLE resource_current ADD COLUMN rid BIGINT;
UPDATE resource_current c SET rid = (
    SELECT MIN(v.seq) FROM resource_versions v
    WHERE v.resource_type = c.resource_type AND v.id = c.id);
ALTER TABLE resource_current ALTER COLUMN rid SET NOT NULL;
CREATE UNIQUE INDEX resource_current_rid ON resource_current (rid);

CREATE TABLE index_token_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    system        TEXT,
    code          TEXT   NOT NULL,
    text          TEXT,
    type_system   TEXT,
    type_code     TEXT
);
INSERT INTO index_token_new
SELECT c.rid, x.resource_type, x.param, x.system, x.code, x.text, x.type_system, x.type_code
FROM index_token x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_token;
ALTER TABLE index_token_new RENAME TO index_token;
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system, rid);
CREATE INDEX index_token_owner ON index_token (rid);

CREATE TABLE index_string_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    normalized    TEXT COLLATE "C" NOT NULL,
    exact         TEXT   NOT NULL
);
INSERT INTO index_string_new
SELECT c.rid, x.resource_type, x.param, x.normalized, x.exact
FROM index_string x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_string;
ALTER TABLE index_string_new RENAME TO index_string;
CREATE INDEX index_string_lookup ON index_string (resource_type, param, normalized, rid);
CREATE INDEX index_string_owner ON index_string (rid);

CREATE TABLE index_date_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    low_us        BIGINT NOT NULL,
    high_us       BIGINT NOT NULL
);
INSERT INTO index_date_new
SELECT c.rid, x.resource_type, x.param, x.low_us, x.high_us
FROM index_date x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_date;
ALTER TABLE index_date_new RENAME TO index_date;
CREATE INDEX index_date_lookup ON index_date (resource_type, param, low_us, high_us, rid);
CREATE INDEX index_date_owner ON index_date (rid);

CREATE TABLE index_reference_new (
    rid               BIGINT NOT NULL,
    resource_type     TEXT   NOT NULL,
    param             TEXT   NOT NULL,
    target_type       TEXT,
    target_id         TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT
);
INSERT INTO index_reference_new
SELECT c.rid, x.resource_type, x.param, x.target_type, x.target_id, x.url,
       x.identifier_system, x.identifier_value
FROM index_reference x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_reference;
ALTER TABLE index_reference_new RENAME TO index_reference;
CREATE INDEX index_reference_target ON index_reference (target_type, target_id, param, resource_type, rid);
CREATE INDEX index_reference_owner ON index_reference (rid);
CREATE INDEX index_reference_url ON index_reference (resource_type, param, url);
-- Only `:identifier` searches use this one, and few references carry an identifier.
CREATE INDEX index_reference_ident ON index_reference (resource_type, param, identifier_value)
    WHERE identifier_value IS NOT NULL;

CREATE TABLE index_number_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    low           DOUBLE PRECISION NOT NULL,
    high          DOUBLE PRECISION NOT NULL,
    system        TEXT,
    code          TEXT,
    unit          TEXT
);
INSERT INTO index_number_new
SELECT c.rid, x.resource_type, x.param, x.value, x.low, x.high, x.system, x.code, x.unit
FROM index_number x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_number;
ALTER TABLE index_number_new RENAME TO index_number;
CREATE INDEX index_number_lookup ON index_number (resource_type, param, value, rid);
CREATE INDEX index_number_owner ON index_number (rid);

CREATE TABLE index_uri_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    value         TEXT COLLATE "C" NOT NULL
);
INSERT INTO index_uri_new
SELECT c.rid, x.resource_type, x.param, x.value
FROM index_uri x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_uri;
ALTER TABLE index_uri_new RENAME TO index_uri;
CREATE INDEX index_uri_lookup ON index_uri (resource_type, param, value, rid);
CREATE INDEX index_uri_owner ON index_uri (rid);

CREATE TABLE index_composite_new (
    rid           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    param         TEXT   NOT NULL,
    c1_system     TEXT,
    c1_code       TEXT,
    c2_system     TEXT,
    c2_code       TEXT,
    c2_value      DOUBLE PRECISION,
    c2_low_us     BIGINT,
    c2_high_us    BIGINT,
    c2_string     TEXT
);
INSERT INTO index_composite_new
SELECT c.rid, x.resource_type, x.param, x.c1_system, x.c1_code, x.c2_system, x.c2_code,
       x.c2_value, x.c2_low_us, x.c2_high_us, x.c2_string
FROM index_composite x JOIN resource_current c ON c.resource_type = x.resource_type AND c.id = x.id;
DROP TABLE index_composite;
ALTER TABLE index_composite_new RENAME TO index_composite;
CREATE INDEX index_composite_lookup ON index_composite (resource_type, param, c1_code, rid);
CREATE INDEX index_composite_owner ON index_composite (rid);
