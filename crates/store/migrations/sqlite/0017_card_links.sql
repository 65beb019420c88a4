-- Passport store, sqlite, migration 17: card links (see crates/store/src/card_links.rs).
--
-- The link in the QR code of a child's wallet card: whoever holds it reads the child's
-- emergency content. Only a SHA-256 of its token is kept (the token itself is shown once,
-- to the family member who made it). A link expires (at most a year), can be revoked at
-- once, and may need a passcode (argon2id) with a limit on wrong attempts.

CREATE TABLE card_links (
    id              TEXT    PRIMARY KEY,
    patient_id      TEXT    NOT NULL,
    token_sha256    TEXT    NOT NULL UNIQUE,
    -- The account that made it, and their name as shown on the family's page.
    created_by      TEXT    NOT NULL,
    created_by_name TEXT    NOT NULL,
    created_us      INTEGER NOT NULL,
    expires_us      INTEGER NOT NULL,
    revoked_us      INTEGER,
    passcode_hash   TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX card_links_patient ON card_links (patient_id, created_us);
