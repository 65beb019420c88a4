-- Passport store, SQLite, migration 1: versions, current pointers, token index.
--
-- Every version of every resource is kept forever in resource_versions; `seq` is the
-- global write order (AUTOINCREMENT: never reused, so history paging cursors stay valid).
CREATE TABLE resource_versions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      INTEGER NOT NULL,
    last_updated_us INTEGER NOT NULL,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    body            BLOB    NOT NULL,
    UNIQUE (resource_type, id, version_id)
);
-- Type-level history (newest first by seq).
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);

-- One row per resource: its current version (possibly a deletion) and where its body is.
CREATE TABLE resource_current (
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    last_updated_us INTEGER NOT NULL,
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;

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
