-- Passport store, postgres, migration 7: family onboarding (see crates/store/src/onboarding.rs).
--
-- Invitations a professional issues for a child's passport (a one-time code: only its
-- SHA-256 is stored), and the book-keeping of family links that have become active, with
-- the family's last activity (the passport states invited / activated / active / dormant).
-- The family link itself is FHIR (Person.link -> RelatedPerson.patient); see
-- docs/DATA-MODEL.md.

CREATE TABLE invitations (
    id                TEXT    PRIMARY KEY,
    code_hash         BYTEA   NOT NULL UNIQUE,
    -- The child's Patient.
    patient_id        TEXT    NOT NULL,
    -- Who issued it: an account (staff) and their organisation; NULL for `passport admin`.
    issued_by_account TEXT,
    organisation_id   TEXT,
    -- Where it was (or may be) sent; optional.
    parent_email      TEXT,
    created_us        BIGINT  NOT NULL,
    expires_us        BIGINT  NOT NULL,
    redeemed_us       BIGINT,
    -- The family account that redeemed it.
    redeemed_by       TEXT,
    revoked_us        BIGINT
);
CREATE INDEX invitations_patient ON invitations (patient_id);

-- One row per active family link (written when an invitation is redeemed or a
-- self-registration confirmed).
CREATE TABLE family_links (
    patient_id              TEXT    NOT NULL,
    person_id               TEXT    NOT NULL,
    related_person_id       TEXT    NOT NULL,
    linked_us               BIGINT  NOT NULL,
    -- The family member's last sign-in or redemption (any of their children).
    last_family_activity_us BIGINT,
    PRIMARY KEY (patient_id, person_id)
);
CREATE INDEX family_links_person ON family_links (person_id);
