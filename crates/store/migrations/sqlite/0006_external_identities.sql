-- Passport store, sqlite, migration 6: sign-in with external OpenID Connect providers
-- (crates/store/src/identities.rs, crates/server/src/web/oidc.rs).

-- A person's identity at a provider (issuer-scoped `sub`) linked to one account. The NHS
-- number is the ADULT's own (NHS login's `nhs_number` claim): it never links anyone to a
-- child.
CREATE TABLE external_identities (
    provider       TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    account_id     TEXT    NOT NULL REFERENCES accounts (id),
    email          TEXT,
    nhs_number     TEXT,
    -- NHS login's identity_proofing_level at the last sign-in (P0, P5, P9).
    identity_level TEXT,
    created_us     INTEGER NOT NULL,
    last_seen_us   INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX external_identities_account ON external_identities (account_id);

-- Sign-ins in progress: state (hashed), nonce and PKCE verifier, bound to the browser by a
-- cookie whose hash is kept here. Single use; minutes long.
CREATE TABLE oidc_pending (
    state_hash    TEXT    PRIMARY KEY,
    provider      TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    browser_hash  TEXT    NOT NULL,
    expires_us    INTEGER NOT NULL
);

-- What an external sign-in established for a session: whether family data is allowed
-- (NHS login below P9: signed in, no child's data).
CREATE TABLE oidc_sessions (
    id_hash        BLOB    PRIMARY KEY,
    provider       TEXT    NOT NULL,
    identity_level TEXT,
    family_data    INTEGER NOT NULL,
    expires_us     INTEGER NOT NULL
);
