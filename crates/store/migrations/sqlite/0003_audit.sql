-- Passport store, SQLite, migration 3: the audit log (FHIR AuditEvents, hash-chained).
--
-- Append-only: one row per AuditEvent, numbered by `seq` (1, 2, 3… with no gaps), each
-- carrying the SHA-256 of its predecessor's hash and its own canonical bytes (see
-- `crates/store/src/audit.rs`). Rows are appended only by the writer thread, which computes
-- the chain, so it has one order. The triggers refuse UPDATE and DELETE; whoever can drop
-- them can also change rows, which is what the chain and the signed checkpoints outside the
-- database are for.

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,
    recorded_us  INTEGER NOT NULL,
    -- The child the event concerns (a Patient id), for the family's access log.
    patient_id   TEXT,
    -- 'normal' or 'safeguarding' (shown only to the privacy officer).
    sensitivity  TEXT    NOT NULL CHECK (sensitivity IN ('normal', 'safeguarding')),
    -- The AuditEvent JSON, as the server built it.
    event        BLOB    NOT NULL,
    prev_hash    BLOB    NOT NULL,
    hash         BLOB    NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, seq);
CREATE INDEX audit_log_recorded ON audit_log (recorded_us, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
