-- Passport store, SQLite, migration 5: the OAuth 2 / SMART authorisation server
-- (crates/store/src/oauth.rs, crates/server/src/oauth/).
--
-- Secrets are never stored in the clear: client secrets, authorisation codes and refresh
-- tokens are kept as the hex SHA-256 of a 256-bit random value. Private signing keys are
-- stored here (raw scalar bytes) so that every server process signs with the same key; see
-- docs/SECURITY.md, "Sign-in and tokens".

-- Registered client applications and connected systems.
CREATE TABLE oauth_clients (
    client_id     TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- Space-separated: authorization_code, client_credentials, refresh_token.
    grant_types   TEXT    NOT NULL,
    -- Space-separated exact redirect URIs.
    redirect_uris TEXT    NOT NULL,
    public_client INTEGER NOT NULL,
    secret_hash   TEXT,
    -- The most this client may be granted (space-separated SMART scopes).
    scope         TEXT    NOT NULL,
    -- Inline JWKS (JSON) or its URL, for private_key_jwt.
    jwks          TEXT,
    jwks_url      TEXT,
    active        INTEGER NOT NULL,
    created_us    INTEGER  NOT NULL
);

-- Keys signing access and id tokens. The newest is current; older ones stay published in
-- the JWKS until the tokens they signed have expired (retired_us + token lifetime).
CREATE TABLE oauth_signing_keys (
    kid          TEXT    PRIMARY KEY,
    alg          TEXT    NOT NULL,
    private_key  BLOB    NOT NULL,
    public_jwk   TEXT    NOT NULL,
    created_us   INTEGER  NOT NULL,
    retired_us   INTEGER
);

-- jti values of client assertions already used (replay protection), until they expire.
CREATE TABLE oauth_assertion_jti (
    client_id   TEXT    NOT NULL,
    jti         TEXT    NOT NULL,
    expires_us  INTEGER  NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX oauth_assertion_jti_expires ON oauth_assertion_jti (expires_us);

-- Authorisation codes (single use; a replay revokes what the first use issued).
CREATE TABLE oauth_codes (
    code_hash         TEXT    PRIMARY KEY,
    client_id         TEXT    NOT NULL,
    redirect_uri      TEXT    NOT NULL,
    scope             TEXT    NOT NULL,
    code_challenge    TEXT    NOT NULL,
    subject           TEXT,
    -- Launch context (JSON object: patient, fhirUser, ...).
    context           TEXT    NOT NULL,
    expires_us        INTEGER  NOT NULL,
    used_us           INTEGER,
    family            TEXT,
    access_jti        TEXT,
    access_expires_us INTEGER
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_us);

-- Refresh tokens, rotated on every use; all tokens descended from one grant share a family.
CREATE TABLE oauth_refresh_tokens (
    token_hash        TEXT    PRIMARY KEY,
    family            TEXT    NOT NULL,
    client_id         TEXT    NOT NULL,
    scope             TEXT    NOT NULL,
    subject           TEXT,
    context           TEXT    NOT NULL,
    expires_us        INTEGER  NOT NULL,
    used_us           INTEGER,
    -- The access token issued together with this refresh token (revoked with the family).
    access_jti        TEXT,
    access_expires_us INTEGER
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens (expires_us);

-- Revoked access tokens (by jti) until they would have expired anyway.
CREATE TABLE oauth_revoked (
    jti         TEXT    PRIMARY KEY,
    expires_us  INTEGER  NOT NULL
);
CREATE INDEX oauth_revoked_expires ON oauth_revoked (expires_us);
