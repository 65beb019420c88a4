-- Passport store, PostgreSQL, migration 12: SMART EHR launch from Passport
-- (crates/store/src/oauth.rs, crates/server/src/oauth/authorize.rs).

-- Where an app wants to be opened for an EHR launch (`<launch_uri>?iss=…&launch=…`).
ALTER TABLE oauth_clients ADD COLUMN launch_uri TEXT;

-- A launch: a signed-in user opened an app from a child's passport. The `launch` value
-- given to the app is kept only as its hex SHA-256; it works once, for five minutes, for
-- the same account and client.
CREATE TABLE oauth_launch_contexts (
    launch_hash TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    patient_id  TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    expires_us  BIGINT  NOT NULL,
    used_us     BIGINT
);
CREATE INDEX oauth_launch_contexts_expires ON oauth_launch_contexts (expires_us);
