-- Passport store, PostgreSQL, migration 15: self-registrations waiting for their email address to
-- be verified (crates/store/src/accounts.rs, `Registration`).
--
-- A registration is not an account: nothing can sign in with it. The account is made only
-- when the emailed link is followed. The link's token is stored as its SHA-256 hash. Once
-- used, a row keeps only what says "used" (its personal columns are blanked); rows that
-- expired more than a week ago are deleted whenever a new registration is stored.
CREATE TABLE registrations (
    token_hash    BYTEA  PRIMARY KEY,
    -- Lower-cased email address the link was sent to.
    login         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    -- argon2id PHC string of the password chosen at registration.
    password_hash TEXT    NOT NULL,
    -- What to do once verified (JSON, the server's: a link request or an invitation code).
    request       TEXT    NOT NULL,
    created_us    BIGINT  NOT NULL,
    expires_us    BIGINT  NOT NULL,
    used_us       BIGINT
);
CREATE INDEX registrations_expires ON registrations (expires_us);
