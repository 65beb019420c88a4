//! OAuth data on PostgreSQL (see `crate::oauth`). Single-use and rotation checks lock the
//! row (`SELECT … FOR UPDATE`) inside one transaction, so concurrent server processes agree.

use tokio_postgres::{GenericClient, Row};

use super::{PgStore, pg_error};
use crate::Result;
use crate::oauth::*;

fn client(r: &Row) -> OAuthClient {
    OAuthClient {
        client_id: r.get(0),
        name: r.get(1),
        grant_types: split(r.get(2)),
        redirect_uris: split(r.get(3)),
        public: r.get(4),
        secret_hash: r.get(5),
        scope: r.get(6),
        jwks: r.get(7),
        jwks_url: r.get(8),
        active: r.get(9),
        created_us: r.get(10),
        organisation_id: r.get(11),
        regional: r.get(12),
        cleared: split(r.get(13)),
        launch_uri: r.get(14),
    }
}

fn launch(r: &Row) -> LaunchContext {
    LaunchContext {
        launch_hash: r.get(0),
        account_id: r.get(1),
        patient_id: r.get(2),
        client_id: r.get(3),
        expires_us: r.get(4),
        used_us: r.get(5),
    }
}

fn key(r: &Row) -> SigningKey {
    SigningKey {
        kid: r.get(0),
        alg: r.get(1),
        private_key: r.get(2),
        public_jwk: r.get(3),
        created_us: r.get(4),
        retired_us: r.get(5),
    }
}

fn code(r: &Row) -> AuthCode {
    AuthCode {
        code_hash: r.get(0),
        client_id: r.get(1),
        redirect_uri: r.get(2),
        scope: r.get(3),
        code_challenge: r.get(4),
        subject: r.get(5),
        context: r.get(6),
        expires_us: r.get(7),
        used_us: r.get(8),
        family: r.get(9),
        access_jti: r.get(10),
        access_expires_us: r.get(11),
    }
}

fn refresh(r: &Row) -> RefreshToken {
    RefreshToken {
        token_hash: r.get(0),
        family: r.get(1),
        client_id: r.get(2),
        scope: r.get(3),
        subject: r.get(4),
        context: r.get(5),
        expires_us: r.get(6),
        used_us: r.get(7),
        access_jti: r.get(8),
        access_expires_us: r.get(9),
    }
}

async fn revoke_family(c: &impl GenericClient, family: &str, now: i64) -> Result<()> {
    for table in ["oauth_refresh_tokens", "oauth_codes"] {
        c.execute(
            &format!(
                "INSERT INTO oauth_revoked (jti, expires_us) \
                 SELECT access_jti, access_expires_us FROM {table} \
                 WHERE family = $1 AND access_jti IS NOT NULL AND access_expires_us > $2 \
                 ON CONFLICT (jti) DO NOTHING"
            ),
            &[&family, &now],
        )
        .await
        .map_err(pg_error)?;
    }
    c.execute(
        "DELETE FROM oauth_refresh_tokens WHERE family = $1",
        &[&family],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Revokes every family and unused code whose `column` (never user input) is `value`.
async fn revoke_where(c: &impl GenericClient, column: &str, value: &str, now: i64) -> Result<()> {
    let families = c
        .query(
            &format!(
                "SELECT family FROM oauth_refresh_tokens WHERE {column} = $1 \
                 UNION SELECT family FROM oauth_codes WHERE {column} = $1 AND family IS NOT NULL"
            ),
            &[&value],
        )
        .await
        .map_err(pg_error)?;
    for f in families {
        let family: String = f.get(0);
        revoke_family(c, &family, now).await?;
    }
    c.execute(
        &format!("UPDATE oauth_codes SET used_us = $2 WHERE {column} = $1 AND used_us IS NULL"),
        &[&value, &now],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

impl PgStore {
    pub(crate) async fn oauth_insert_client(&self, c: OAuthClient) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ),
                &[
                    &c.client_id,
                    &c.name,
                    &join(&c.grant_types),
                    &join(&c.redirect_uris),
                    &c.public,
                    &c.secret_hash,
                    &c.scope,
                    &c.jwks,
                    &c.jwks_url,
                    &c.active,
                    &c.created_us,
                    &c.organisation_id,
                    &c.regional,
                    &join(&c.cleared),
                    &c.launch_uri,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(client))
    }

    pub(crate) async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_us, client_id"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(client).collect())
    }

    pub(crate) async fn oauth_signing_keys(&self) -> Result<Vec<SigningKey>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM oauth_signing_keys ORDER BY created_us DESC, kid DESC"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(key).collect())
    }

    pub(crate) async fn oauth_add_signing_key(
        &self,
        k: SigningKey,
        drop_before: i64,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "DELETE FROM oauth_signing_keys WHERE retired_us IS NOT NULL AND retired_us < $1",
            &[&drop_before],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "UPDATE oauth_signing_keys SET retired_us = $1 WHERE retired_us IS NULL",
            &[&k.created_us],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            &format!(
                "INSERT INTO oauth_signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                &k.kid,
                &k.alg,
                &k.private_key,
                &k.public_jwk,
                &k.created_us,
                &k.retired_us,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    pub(crate) async fn oauth_record_jti(
        &self,
        client_id: String,
        jti: String,
        exp: i64,
    ) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(
                "INSERT INTO oauth_assertion_jti (client_id, jti, expires_us) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&client_id, &jti, &exp],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn oauth_insert_code(&self, k: AuthCode) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO oauth_codes ({CODE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
                &[
                    &k.code_hash,
                    &k.client_id,
                    &k.redirect_uri,
                    &k.scope,
                    &k.code_challenge,
                    &k.subject,
                    &k.context,
                    &k.expires_us,
                    &k.used_us,
                    &k.family,
                    &k.access_jti,
                    &k.access_expires_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oauth_consume_code(&self, hash: String, now: i64) -> Result<CodeUse> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let Some(found) = tx
            .query_opt(
                &format!("SELECT {CODE_COLUMNS} FROM oauth_codes WHERE code_hash = $1 FOR UPDATE"),
                &[&hash],
            )
            .await
            .map_err(pg_error)?
            .as_ref()
            .map(code)
        else {
            return Ok(CodeUse::Unknown);
        };
        if found.used_us.is_some() {
            return Ok(CodeUse::Replayed(Box::new(found)));
        }
        tx.execute(
            "UPDATE oauth_codes SET used_us = $2 WHERE code_hash = $1",
            &[&hash, &now],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(CodeUse::Fresh(Box::new(found)))
    }

    pub(crate) async fn oauth_attach_code_tokens(
        &self,
        hash: String,
        family: Option<String>,
        jti: String,
        exp: i64,
    ) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "UPDATE oauth_codes SET family = $2, access_jti = $3, access_expires_us = $4 \
                 WHERE code_hash = $1",
                &[&hash, &family, &jti, &exp],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oauth_insert_refresh(
        &self,
        t: RefreshToken,
        rotated_from: Option<String>,
    ) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        if let Some(old) = &rotated_from {
            // Locks the predecessor, so a concurrent reuse (which deletes it) serialises.
            let alive = tx
                .query_opt(
                    "SELECT 1 FROM oauth_refresh_tokens WHERE token_hash = $1 AND family = $2 \
                     FOR UPDATE",
                    &[old, &t.family],
                )
                .await
                .map_err(pg_error)?
                .is_some();
            if !alive {
                return Ok(false);
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO oauth_refresh_tokens ({REFRESH_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &t.token_hash,
                &t.family,
                &t.client_id,
                &t.scope,
                &t.subject,
                &t.context,
                &t.expires_us,
                &t.used_us,
                &t.access_jti,
                &t.access_expires_us,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(true)
    }

    pub(crate) async fn oauth_use_refresh(&self, hash: String, now: i64) -> Result<RefreshUse> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let Some(found) = tx
            .query_opt(
                &format!(
                    "SELECT {REFRESH_COLUMNS} FROM oauth_refresh_tokens WHERE token_hash = $1 \
                     FOR UPDATE"
                ),
                &[&hash],
            )
            .await
            .map_err(pg_error)?
            .as_ref()
            .map(refresh)
        else {
            return Ok(RefreshUse::Unknown);
        };
        if found.used_us.is_some() {
            revoke_family(&tx, &found.family, now).await?;
            tx.commit().await.map_err(pg_error)?;
            return Ok(RefreshUse::Reused);
        }
        if found.expires_us <= now {
            return Ok(RefreshUse::Expired);
        }
        tx.execute(
            "UPDATE oauth_refresh_tokens SET used_us = $2 WHERE token_hash = $1",
            &[&hash, &now],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(RefreshUse::Fresh(Box::new(found)))
    }

    pub(crate) async fn oauth_refresh_token(&self, hash: &str) -> Result<Option<RefreshToken>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                &format!(
                    "SELECT {REFRESH_COLUMNS} FROM oauth_refresh_tokens WHERE token_hash = $1"
                ),
                &[&hash],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(refresh))
    }

    pub(crate) async fn oauth_revoke_family(&self, family: String, now: i64) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        revoke_family(&tx, &family, now).await?;
        tx.commit().await.map_err(pg_error)
    }

    pub(crate) async fn oauth_revoke_where(
        &self,
        column: &'static str,
        value: String,
        now: i64,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        revoke_where(&tx, column, &value, now).await?;
        tx.commit().await.map_err(pg_error)
    }

    pub(crate) async fn oauth_set_client_active(
        &self,
        client_id: String,
        active: bool,
        now: i64,
    ) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute(
                "UPDATE oauth_clients SET active = $2 WHERE client_id = $1",
                &[&client_id, &active],
            )
            .await
            .map_err(pg_error)?;
        if !active {
            revoke_where(&tx, "client_id", &client_id, now).await?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn oauth_revoke_access(&self, jti: String, exp: i64) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "INSERT INTO oauth_revoked (jti, expires_us) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO NOTHING",
                &[&jti, &exp],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oauth_is_revoked(&self, jti: &str) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare("SELECT 1 FROM oauth_revoked WHERE jti = $1")
            .await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&jti])
            .await
            .map_err(pg_error)?;
        Ok(row.is_some())
    }

    pub(crate) async fn oauth_insert_launch(&self, l: LaunchContext) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO oauth_launch_contexts ({LAUNCH_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &l.launch_hash,
                    &l.account_id,
                    &l.patient_id,
                    &l.client_id,
                    &l.expires_us,
                    &l.used_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub(crate) async fn oauth_launch(&self, hash: &str) -> Result<Option<LaunchContext>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                &format!(
                    "SELECT {LAUNCH_COLUMNS} FROM oauth_launch_contexts WHERE launch_hash = $1"
                ),
                &[&hash],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(launch))
    }

    pub(crate) async fn oauth_use_launch(
        &self,
        hash: String,
        now: i64,
    ) -> Result<Option<LaunchContext>> {
        // One conditional UPDATE: of racing callers, exactly one gets the row back.
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                &format!(
                    "UPDATE oauth_launch_contexts SET used_us = $2 \
                     WHERE launch_hash = $1 AND used_us IS NULL AND expires_us > $2 \
                     RETURNING {LAUNCH_COLUMNS}"
                ),
                &[&hash, &now],
            )
            .await
            .map_err(pg_error)?;
        Ok(row
            .as_ref()
            .map(launch)
            .map(|l| LaunchContext { used_us: None, ..l }))
    }

    pub(crate) async fn oauth_purge(&self, now: i64) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "DELETE FROM oauth_launch_contexts WHERE expires_us <= $1",
                &[&now],
            )
            .await
            .map_err(pg_error)?;
        let code_cutoff = now - 86_400_000_000;
        conn.client
            .execute(
                "DELETE FROM oauth_assertion_jti WHERE expires_us <= $1",
                &[&now],
            )
            .await
            .map_err(pg_error)?;
        conn.client
            .execute("DELETE FROM oauth_revoked WHERE expires_us <= $1", &[&now])
            .await
            .map_err(pg_error)?;
        conn.client
            .execute(
                "DELETE FROM oauth_refresh_tokens WHERE expires_us <= $1",
                &[&now],
            )
            .await
            .map_err(pg_error)?;
        conn.client
            .execute(
                "DELETE FROM oauth_codes WHERE expires_us <= $1",
                &[&code_cutoff],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
