-- Passport store, PostgreSQL, migration 13: the audit outbox (crates/store/src/postgres/audit.rs).
--
-- A write's AuditEvent(s) are inserted here in the write's own transaction, without the
-- chain's advisory lock, so concurrent writes no longer serialise behind each other's
-- commits. The records are chained (moved to `audit_log`, in `id` order, under the chain
-- lock) by the server's audit task within about its flush interval, by every batch it
-- appends, before the audit log is listed, and when the store closes. A refused write rolls
-- its outbox rows back with it. Rows only ever leave this table by being chained, in the
-- same transaction that inserts them into `audit_log`.
CREATE TABLE audit_outbox (
    id           BIGSERIAL PRIMARY KEY,
    recorded_us  BIGINT NOT NULL,
    patient_id   TEXT,
    sensitivity  TEXT   NOT NULL CHECK (sensitivity IN ('normal', 'safeguarding')),
    event        BYTEA  NOT NULL
);
