//! External identities on SQLite (see `crate::identities`).

use rusqlite::{OptionalExtension, Row};

use super::SqliteStore;
use crate::Result;
use crate::identities::*;

const ID_COLUMNS: &str = "provider, subject, account_id, email, nhs_number, identity_level, \
     created_us, last_seen_us";

fn identity(r: &Row<'_>) -> rusqlite::Result<ExternalIdentity> {
    Ok(ExternalIdentity {
        provider: r.get(0)?,
        subject: r.get(1)?,
        account_id: r.get(2)?,
        email: r.get(3)?,
        nhs_number: r.get(4)?,
        identity_level: r.get(5)?,
        created_us: r.get(6)?,
        last_seen_us: r.get(7)?,
    })
}

impl SqliteStore {
    pub(crate) async fn link_external_identity(&self, i: ExternalIdentity) -> Result<bool> {
        self.in_transaction(move |c| {
            c.execute(
                &format!(
                    "INSERT OR IGNORE INTO external_identities ({ID_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                rusqlite::params![
                    i.provider,
                    i.subject,
                    i.account_id,
                    i.email,
                    i.nhs_number,
                    i.identity_level,
                    i.created_us,
                    i.last_seen_us
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    pub(crate) async fn external_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentity>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {ID_COLUMNS} FROM external_identities WHERE provider = ?1 AND subject = ?2"
            ))?
            .query_row([provider, subject], identity)
            .optional()
        })
    }

    pub(crate) async fn touch_external_identity(
        &self,
        provider: String,
        subject: String,
        nhs_number: Option<String>,
        level: Option<String>,
        now: i64,
    ) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "UPDATE external_identities SET nhs_number = COALESCE(?3, nhs_number), \
                 identity_level = ?4, last_seen_us = ?5 WHERE provider = ?1 AND subject = ?2",
                rusqlite::params![provider, subject, nhs_number, level, now],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oidc_insert_pending(&self, p: OidcPending, now: i64) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute("DELETE FROM oidc_pending WHERE expires_us <= ?1", [now])?;
            c.execute("DELETE FROM oidc_sessions WHERE expires_us <= ?1", [now])?;
            c.execute(
                "INSERT INTO oidc_pending (state_hash, provider, nonce, pkce_verifier, \
                 browser_hash, expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    p.state_hash,
                    p.provider,
                    p.nonce,
                    p.pkce_verifier,
                    p.browser_hash,
                    p.expires_us
                ],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oidc_take_pending(
        &self,
        state_hash: String,
        now: i64,
    ) -> Result<Option<OidcPending>> {
        self.in_transaction(move |c| {
            c.query_row(
                "DELETE FROM oidc_pending WHERE state_hash = ?1 RETURNING state_hash, \
                 provider, nonce, pkce_verifier, browser_hash, expires_us",
                [&state_hash],
                |r| {
                    Ok(OidcPending {
                        state_hash: r.get(0)?,
                        provider: r.get(1)?,
                        nonce: r.get(2)?,
                        pkce_verifier: r.get(3)?,
                        browser_hash: r.get(4)?,
                        expires_us: r.get(5)?,
                    })
                },
            )
            .optional()
            .map(|p| p.filter(|p| p.expires_us > now))
        })
        .await
    }

    pub(crate) async fn oidc_record_session(&self, o: OidcSession) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO oidc_sessions (id_hash, provider, identity_level, \
                 family_data, expires_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    o.id_hash,
                    o.provider,
                    o.identity_level,
                    o.family_data,
                    o.expires_us
                ],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oidc_session(&self, id_hash: &[u8]) -> Result<Option<OidcSession>> {
        self.with_reader(|c| {
            c.prepare_cached(
                "SELECT id_hash, provider, identity_level, family_data, expires_us \
                 FROM oidc_sessions WHERE id_hash = ?1",
            )?
            .query_row([id_hash], |r| {
                Ok(OidcSession {
                    id_hash: r.get(0)?,
                    provider: r.get(1)?,
                    identity_level: r.get(2)?,
                    family_data: r.get(3)?,
                    expires_us: r.get(4)?,
                })
            })
            .optional()
        })
    }
}
