-- Passport store, PostgreSQL, migration 2: search indexes.
--
-- Like index_token, every index table holds entries of the CURRENT, non-deleted version of
-- each resource only, replaced in the same transaction as each write.

-- Token: `text` (normalised display/text) for :text, `type_system`/`type_code` for
-- :of-type; `id` joins the lookup index so a token search is answered by the index alone.
ALTER TABLE index_token ADD COLUMN text TEXT;
ALTER TABLE index_token ADD COLUMN type_system TEXT;
ALTER TABLE index_token ADD COLUMN type_code TEXT;
DROP INDEX index_token_lookup;
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system, id);

CREATE TABLE index_string (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    normalized    TEXT COLLATE "C" NOT NULL,
    exact         TEXT NOT NULL
);
CREATE INDEX index_string_lookup ON index_string (resource_type, param, normalized, id);
CREATE INDEX index_string_owner ON index_string (resource_type, id);

CREATE TABLE index_date (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    low_us        BIGINT NOT NULL,
    high_us       BIGINT NOT NULL
);
CREATE INDEX index_date_lookup ON index_date (resource_type, param, low_us, high_us, id);
CREATE INDEX index_date_owner ON index_date (resource_type, id);

CREATE TABLE index_reference (
    resource_type     TEXT NOT NULL,
    id                TEXT NOT NULL,
    param             TEXT NOT NULL,
    target_type       TEXT,
    target_id         TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT
);
CREATE INDEX index_reference_target ON index_reference (target_type, target_id, param, resource_type, id);
CREATE INDEX index_reference_owner ON index_reference (resource_type, id);
CREATE INDEX index_reference_url ON index_reference (resource_type, param, url);
CREATE INDEX index_reference_ident ON index_reference (resource_type, param, identifier_value);

-- Quantity and number (system/code/unit are NULL for numbers).
CREATE TABLE index_number (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    low           DOUBLE PRECISION NOT NULL,
    high          DOUBLE PRECISION NOT NULL,
    system        TEXT,
    code          TEXT,
    unit          TEXT
);
CREATE INDEX index_number_lookup ON index_number (resource_type, param, value, id);
CREATE INDEX index_number_owner ON index_number (resource_type, id);

CREATE TABLE index_uri (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    value         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX index_uri_lookup ON index_uri (resource_type, param, value, id);
CREATE INDEX index_uri_owner ON index_uri (resource_type, id);

-- Composite: the first component as a token, the second as whichever columns its type uses.
CREATE TABLE index_composite (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    c1_system     TEXT,
    c1_code       TEXT,
    c2_system     TEXT,
    c2_code       TEXT,
    c2_value      DOUBLE PRECISION,
    c2_low_us     BIGINT,
    c2_high_us    BIGINT,
    c2_string     TEXT
);
CREATE INDEX index_composite_lookup ON index_composite (resource_type, param, c1_code, id);
CREATE INDEX index_composite_owner ON index_composite (resource_type, id);
