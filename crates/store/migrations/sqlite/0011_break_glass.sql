-- Passport store, sqlite, migration 11: break-glass grants (see crates/store/src/break_glass.rs).
--
-- A clinician or emergency-services user with no relationship to a child opened the
-- child's emergency content, stating a reason, until expires_us. Each grant is flagged to
-- the privacy officer of the organisation the user acted for until they mark it reviewed.
-- The matching AuditEvent is in audit_log (the family's access log reads it by patient
-- through audit_log_patient, migration 3, so no further index is needed there).

CREATE TABLE break_glass_grants (
    id              TEXT    PRIMARY KEY,
    patient_id      TEXT    NOT NULL,
    practitioner_id TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    organisation_id TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    starts_us       INTEGER  NOT NULL,
    expires_us      INTEGER  NOT NULL,
    -- When the privacy officer reviewed it, and their account; NULL until then.
    reviewed_us     INTEGER,
    reviewed_by     TEXT
);
CREATE INDEX break_glass_grants_patient ON break_glass_grants (patient_id, starts_us);
CREATE INDEX break_glass_grants_organisation ON break_glass_grants (organisation_id, starts_us);
