-- Passport store, PostgreSQL, migration 3: the audit log (FHIR AuditEvents, hash-chained).
--
-- Append-only: one row per AuditEvent, numbered by `seq` (1, 2, 3… with no gaps), each
-- carrying the SHA-256 of its predecessor's hash and its own canonical bytes (see
-- `crates/store/src/audit.rs`). Appenders serialise on a transaction-scoped advisory lock
-- (keyed by the schema) and read the head inside it, so the chain has one order across all
-- server processes. The triggers refuse UPDATE, DELETE and TRUNCATE; whoever can drop them
-- can also change rows, which is what the chain and the signed checkpoints outside the
-- database are for.

CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    recorded_us  BIGINT NOT NULL,
    -- The child the event concerns (a Patient id), for the family's access log.
    patient_id   TEXT,
    -- 'normal' or 'safeguarding' (shown only to the privacy officer).
    sensitivity  TEXT   NOT NULL CHECK (sensitivity IN ('normal', 'safeguarding')),
    -- The AuditEvent JSON, as the server built it.
    event        BYTEA  NOT NULL,
    prev_hash    BYTEA  NOT NULL,
    hash         BYTEA  NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, seq);
CREATE INDEX audit_log_recorded ON audit_log (recorded_us, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
