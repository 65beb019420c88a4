//! External identities on PostgreSQL (see `crate::identities`).

use tokio_postgres::Row;

use super::{PgStore, pg_error};
use crate::Result;
use crate::identities::*;

const ID_COLUMNS: &str = "provider, subject, account_id, email, nhs_number, identity_level, \
     created_us, last_seen_us";

fn identity(r: &Row) -> ExternalIdentity {
    ExternalIdentity {
        provider: r.get(0),
        subject: r.get(1),
        account_id: r.get(2),
        email: r.get(3),
        nhs_number: r.get(4),
        identity_level: r.get(5),
        created_us: r.get(6),
        last_seen_us: r.get(7),
    }
}

fn pending(r: &Row) -> OidcPending {
    OidcPending {
        state_hash: r.get(0),
        provider: r.get(1),
        nonce: r.get(2),
        pkce_verifier: r.get(3),
        browser_hash: r.get(4),
        expires_us: r.get(5),
    }
}

impl PgStore {
    pub(crate) async fn link_external_identity(&self, i: ExternalIdentity) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(
                &format!(
                    "INSERT INTO external_identities ({ID_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
                ),
                &[
                    &i.provider,
                    &i.subject,
                    &i.account_id,
                    &i.email,
                    &i.nhs_number,
                    &i.identity_level,
                    &i.created_us,
                    &i.last_seen_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn external_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentity>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                &format!(
                    "SELECT {ID_COLUMNS} FROM external_identities \
                     WHERE provider = $1 AND subject = $2"
                ),
                &[&provider, &subject],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(identity))
    }

    pub(crate) async fn touch_external_identity(
        &self,
        provider: String,
        subject: String,
        nhs_number: Option<String>,
        level: Option<String>,
        now: i64,
    ) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "UPDATE external_identities SET nhs_number = COALESCE($3, nhs_number), \
                 identity_level = $4, last_seen_us = $5 WHERE provider = $1 AND subject = $2",
                &[&provider, &subject, &nhs_number, &level, &now],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oidc_insert_pending(&self, p: OidcPending, now: i64) -> Result<()> {
        let conn = self.pool.get().await?;
        for sql in [
            "DELETE FROM oidc_pending WHERE expires_us <= $1",
            "DELETE FROM oidc_sessions WHERE expires_us <= $1",
        ] {
            conn.client.execute(sql, &[&now]).await.map_err(pg_error)?;
        }
        conn.client
            .execute(
                "INSERT INTO oidc_pending (state_hash, provider, nonce, pkce_verifier, \
                 browser_hash, expires_us) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &p.state_hash,
                    &p.provider,
                    &p.nonce,
                    &p.pkce_verifier,
                    &p.browser_hash,
                    &p.expires_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oidc_take_pending(
        &self,
        state_hash: String,
        now: i64,
    ) -> Result<Option<OidcPending>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                "DELETE FROM oidc_pending WHERE state_hash = $1 RETURNING state_hash, \
                 provider, nonce, pkce_verifier, browser_hash, expires_us",
                &[&state_hash],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(pending).filter(|p| p.expires_us > now))
    }

    pub(crate) async fn oidc_record_session(&self, o: OidcSession) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "INSERT INTO oidc_sessions (id_hash, provider, identity_level, family_data, \
                 expires_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO UPDATE SET \
                 provider = EXCLUDED.provider, identity_level = EXCLUDED.identity_level, \
                 family_data = EXCLUDED.family_data, expires_us = EXCLUDED.expires_us",
                &[
                    &o.id_hash,
                    &o.provider,
                    &o.identity_level,
                    &o.family_data,
                    &o.expires_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oidc_session(&self, id_hash: &[u8]) -> Result<Option<OidcSession>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                "SELECT id_hash, provider, identity_level, family_data, expires_us \
                 FROM oidc_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| OidcSession {
            id_hash: r.get(0),
            provider: r.get(1),
            identity_level: r.get(2),
            family_data: r.get(3),
            expires_us: r.get(4),
        }))
    }
}
