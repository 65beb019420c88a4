-- Passport store, postgres, migration 4: built-in sign-in accounts, sessions, sign-in
-- throttling and admin-issued password resets (see crates/store/src/accounts.rs).
--
-- Who a person IS lives in FHIR (Organization, Practitioner + PractitionerRole, Person);
-- these tables hold only what signing in needs. Secrets are never stored in the clear:
-- passwords as argon2id PHC strings, session ids and reset tokens as SHA-256 hashes. The
-- TOTP secret must be usable to check codes, so it is stored as it is: protect backups.

CREATE TABLE accounts (
    id                   TEXT    PRIMARY KEY,
    -- Lower-cased email address: what people type to sign in.
    login                TEXT    NOT NULL UNIQUE,
    kind                 TEXT    NOT NULL CHECK (kind IN ('staff', 'family')),
    password_hash        TEXT    NOT NULL,
    totp_secret          BYTEA,
    -- Staff: the role code (access::Role), their Organization, Practitioner, PractitionerRole.
    role                 TEXT,
    organisation_id      TEXT,
    practitioner_id      TEXT,
    practitioner_role_id TEXT,
    -- Family: their Person resource.
    person_id            TEXT,
    display_name         TEXT    NOT NULL,
    active               BIGINT NOT NULL,
    created_us           BIGINT NOT NULL
);

-- Failed sign-ins, keyed by the login as typed (lower-cased) whether or not an account has
-- it, so a lockout says nothing about which accounts exist.
CREATE TABLE login_throttle (
    login           TEXT    PRIMARY KEY,
    failures        BIGINT NOT NULL,
    lockouts        BIGINT NOT NULL,
    locked_until_us BIGINT NOT NULL,
    updated_us      BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash      BYTEA   PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id),
    -- 'password' (waiting for the TOTP code) or 'full'.
    stage        TEXT    NOT NULL CHECK (stage IN ('password', 'full')),
    csrf_token   TEXT    NOT NULL,
    created_us   BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    expires_us   BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE password_resets (
    token_hash   BYTEA   PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id),
    created_us   BIGINT NOT NULL,
    expires_us   BIGINT NOT NULL,
    used_us      BIGINT
);
CREATE INDEX password_resets_account ON password_resets (account_id);
