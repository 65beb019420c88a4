-- Passport store, PostgreSQL, migration 1: versions, current pointers, token index.
--
-- Every version of every resource is kept forever in resource_versions; `seq` is the
-- global write order (allocated at insert time).
CREATE TABLE resource_versions (
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      BIGINT  NOT NULL,
    last_updated_us BIGINT  NOT NULL,
    deleted         BOOLEAN NOT NULL,
    body            BYTEA   NOT NULL,
    CONSTRAINT resource_versions_version_key UNIQUE (resource_type, id, version_id)
);
-- Type-level history (newest first by seq).
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);

-- One row per resource: its current version (possibly a deletion) and where its body is.
CREATE TABLE resource_current (
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      BIGINT  NOT NULL,
    seq             BIGINT  NOT NULL,
    deleted         BOOLEAN NOT NULL,
    last_updated_us BIGINT  NOT NULL,
    PRIMARY KEY (resource_type, id)
);

-- Token index entries of the CURRENT, non-deleted version of each resource only:
-- replaced on every write, removed on delete. Later index tables (string, date,
-- reference, quantity…) follow the same pattern and are maintained in the same
-- transaction.
CREATE TABLE index_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,
    code          TEXT NOT NULL
);
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system);
CREATE INDEX index_token_owner ON index_token (resource_type, id);
