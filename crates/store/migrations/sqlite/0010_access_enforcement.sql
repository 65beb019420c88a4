-- Passport store, SQLite, migration 10: what access enforcement needs.
--
-- Whom a backend-services client acts for.
--
-- A system client reaches a child's record only while its organisation is in the child's
-- care team; a `regional` client (a trusted regional integration: bulk load, regional
-- EPR sync) reaches every child's record. `cleared` lists the security labels it may see
-- (space-separated codes of the passport-security-label system). See docs/SECURITY.md.
ALTER TABLE oauth_clients ADD COLUMN organisation_id TEXT;
ALTER TABLE oauth_clients ADD COLUMN regional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN cleared TEXT NOT NULL DEFAULT '';

-- The last TOTP time step accepted for each account: a code is accepted once, so a code
-- seen over someone's shoulder (or replayed) within its 90-second window is refused.
ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

-- Security labels a member of staff is cleared to see (space-separated codes of the
-- passport-security-label system), set by their organisation's admin.
ALTER TABLE accounts ADD COLUMN cleared TEXT NOT NULL DEFAULT '';
