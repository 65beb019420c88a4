//! OAuth data on SQLite (see `crate::oauth`): writes on the writer thread (each call its own
//! transaction, in order with the queued writes), reads on the reader connections.

use rusqlite::{Connection, OptionalExtension, Row};

use super::SqliteStore;
use crate::Result;
use crate::oauth::*;

fn client(r: &Row<'_>) -> rusqlite::Result<OAuthClient> {
    Ok(OAuthClient {
        client_id: r.get(0)?,
        name: r.get(1)?,
        grant_types: split(&r.get::<_, String>(2)?),
        redirect_uris: split(&r.get::<_, String>(3)?),
        public: r.get(4)?,
        secret_hash: r.get(5)?,
        scope: r.get(6)?,
        jwks: r.get(7)?,
        jwks_url: r.get(8)?,
        active: r.get(9)?,
        created_us: r.get(10)?,
        organisation_id: r.get(11)?,
        regional: r.get(12)?,
        cleared: split(&r.get::<_, String>(13)?),
        launch_uri: r.get(14)?,
    })
}

fn launch(r: &Row<'_>) -> rusqlite::Result<LaunchContext> {
    Ok(LaunchContext {
        launch_hash: r.get(0)?,
        account_id: r.get(1)?,
        patient_id: r.get(2)?,
        client_id: r.get(3)?,
        expires_us: r.get(4)?,
        used_us: r.get(5)?,
    })
}

fn key(r: &Row<'_>) -> rusqlite::Result<SigningKey> {
    Ok(SigningKey {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_key: r.get(2)?,
        public_jwk: r.get(3)?,
        created_us: r.get(4)?,
        retired_us: r.get(5)?,
    })
}

fn code(r: &Row<'_>) -> rusqlite::Result<AuthCode> {
    Ok(AuthCode {
        code_hash: r.get(0)?,
        client_id: r.get(1)?,
        redirect_uri: r.get(2)?,
        scope: r.get(3)?,
        code_challenge: r.get(4)?,
        subject: r.get(5)?,
        context: r.get(6)?,
        expires_us: r.get(7)?,
        used_us: r.get(8)?,
        family: r.get(9)?,
        access_jti: r.get(10)?,
        access_expires_us: r.get(11)?,
    })
}

fn refresh(r: &Row<'_>) -> rusqlite::Result<RefreshToken> {
    Ok(RefreshToken {
        token_hash: r.get(0)?,
        family: r.get(1)?,
        client_id: r.get(2)?,
        scope: r.get(3)?,
        subject: r.get(4)?,
        context: r.get(5)?,
        expires_us: r.get(6)?,
        used_us: r.get(7)?,
        access_jti: r.get(8)?,
        access_expires_us: r.get(9)?,
    })
}

fn revoke_family(c: &Connection, family: &str, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO oauth_revoked (jti, expires_us) \
         SELECT access_jti, access_expires_us FROM oauth_refresh_tokens \
         WHERE family = ?1 AND access_jti IS NOT NULL AND access_expires_us > ?2",
        (family, now),
    )?;
    c.execute(
        "INSERT OR IGNORE INTO oauth_revoked (jti, expires_us) \
         SELECT access_jti, access_expires_us FROM oauth_codes \
         WHERE family = ?1 AND access_jti IS NOT NULL AND access_expires_us > ?2",
        (family, now),
    )?;
    c.execute(
        "DELETE FROM oauth_refresh_tokens WHERE family = ?1",
        [family],
    )?;
    Ok(())
}

/// Revokes every family and unused code whose `column` (never user input) is `value`.
fn revoke_where(c: &Connection, column: &str, value: &str, now: i64) -> rusqlite::Result<()> {
    let families: Vec<String> = c
        .prepare(&format!(
            "SELECT family FROM oauth_refresh_tokens WHERE {column} = ?1 \
             UNION SELECT family FROM oauth_codes WHERE {column} = ?1 AND family IS NOT NULL"
        ))?
        .query_map([value], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for f in families {
        revoke_family(c, &f, now)?;
    }
    c.execute(
        &format!("UPDATE oauth_codes SET used_us = ?2 WHERE {column} = ?1 AND used_us IS NULL"),
        rusqlite::params![value, now],
    )?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn oauth_insert_client(&self, c: OAuthClient) -> Result<()> {
        self.in_transaction(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                rusqlite::params![
                    c.client_id,
                    c.name,
                    join(&c.grant_types),
                    join(&c.redirect_uris),
                    c.public,
                    c.secret_hash,
                    c.scope,
                    c.jwks,
                    c.jwks_url,
                    c.active,
                    c.created_us,
                    c.organisation_id,
                    c.regional,
                    join(&c.cleared),
                    c.launch_uri
                ],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = ?1"
            ))?
            .query_row([id], client)
            .optional()
        })
    }

    pub(crate) async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_us, client_id"
            ))?;
            let rows = stmt.query_map([], client)?;
            rows.collect()
        })
    }

    pub(crate) async fn oauth_signing_keys(&self) -> Result<Vec<SigningKey>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM oauth_signing_keys ORDER BY created_us DESC, kid DESC"
            ))?;
            let rows = stmt.query_map([], key)?;
            rows.collect()
        })
    }

    pub(crate) async fn oauth_add_signing_key(
        &self,
        k: SigningKey,
        drop_before: i64,
    ) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "DELETE FROM oauth_signing_keys WHERE retired_us IS NOT NULL AND retired_us < ?1",
                [drop_before],
            )?;
            c.execute(
                "UPDATE oauth_signing_keys SET retired_us = ?1 WHERE retired_us IS NULL",
                [k.created_us],
            )?;
            c.execute(
                &format!(
                    "INSERT INTO oauth_signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                rusqlite::params![
                    k.kid,
                    k.alg,
                    k.private_key,
                    k.public_jwk,
                    k.created_us,
                    k.retired_us
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn oauth_record_jti(
        &self,
        client_id: String,
        jti: String,
        exp: i64,
    ) -> Result<bool> {
        self.in_transaction(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO oauth_assertion_jti (client_id, jti, expires_us) VALUES (?1, ?2, ?3)",
                (&client_id, &jti, exp),
            )
            .map(|n| n == 1)
        })
        .await
    }

    pub(crate) async fn oauth_insert_code(&self, k: AuthCode) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO oauth_codes ({CODE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                rusqlite::params![
                    k.code_hash,
                    k.client_id,
                    k.redirect_uri,
                    k.scope,
                    k.code_challenge,
                    k.subject,
                    k.context,
                    k.expires_us,
                    k.used_us,
                    k.family,
                    k.access_jti,
                    k.access_expires_us
                ],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oauth_consume_code(&self, hash: String, now: i64) -> Result<CodeUse> {
        self.in_transaction(move |c| {
            let Some(found) = c
                .query_row(
                    &format!("SELECT {CODE_COLUMNS} FROM oauth_codes WHERE code_hash = ?1"),
                    [&hash],
                    code,
                )
                .optional()?
            else {
                return Ok(CodeUse::Unknown);
            };
            if found.used_us.is_some() {
                return Ok(CodeUse::Replayed(Box::new(found)));
            }
            c.execute(
                "UPDATE oauth_codes SET used_us = ?2 WHERE code_hash = ?1",
                (&hash, now),
            )?;
            Ok(CodeUse::Fresh(Box::new(found)))
        })
        .await
    }

    pub(crate) async fn oauth_attach_code_tokens(
        &self,
        hash: String,
        family: Option<String>,
        jti: String,
        exp: i64,
    ) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "UPDATE oauth_codes SET family = ?2, access_jti = ?3, access_expires_us = ?4 \
                 WHERE code_hash = ?1",
                (&hash, &family, &jti, exp),
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oauth_insert_refresh(
        &self,
        t: RefreshToken,
        rotated_from: Option<String>,
    ) -> Result<bool> {
        self.in_transaction(move |c| {
            if let Some(old) = &rotated_from {
                let alive = c
                    .query_row(
                        "SELECT 1 FROM oauth_refresh_tokens WHERE token_hash = ?1 AND family = ?2",
                        (old, &t.family),
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !alive {
                    return Ok(false);
                }
            }
            c.execute(
                &format!(
                    "INSERT INTO oauth_refresh_tokens ({REFRESH_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                rusqlite::params![
                    t.token_hash,
                    t.family,
                    t.client_id,
                    t.scope,
                    t.subject,
                    t.context,
                    t.expires_us,
                    t.used_us,
                    t.access_jti,
                    t.access_expires_us
                ],
            )?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn oauth_use_refresh(&self, hash: String, now: i64) -> Result<RefreshUse> {
        self.in_transaction(move |c| {
            let Some(found) = c
                .query_row(
                    &format!(
                        "SELECT {REFRESH_COLUMNS} FROM oauth_refresh_tokens WHERE token_hash = ?1"
                    ),
                    [&hash],
                    refresh,
                )
                .optional()?
            else {
                return Ok(RefreshUse::Unknown);
            };
            if found.used_us.is_some() {
                revoke_family(c, &found.family, now)?;
                return Ok(RefreshUse::Reused);
            }
            if found.expires_us <= now {
                return Ok(RefreshUse::Expired);
            }
            c.execute(
                "UPDATE oauth_refresh_tokens SET used_us = ?2 WHERE token_hash = ?1",
                (&hash, now),
            )?;
            Ok(RefreshUse::Fresh(Box::new(found)))
        })
        .await
    }

    pub(crate) async fn oauth_refresh_token(&self, hash: &str) -> Result<Option<RefreshToken>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {REFRESH_COLUMNS} FROM oauth_refresh_tokens WHERE token_hash = ?1"
            ))?
            .query_row([hash], refresh)
            .optional()
        })
    }

    pub(crate) async fn oauth_revoke_family(&self, family: String, now: i64) -> Result<()> {
        self.in_transaction(move |c| revoke_family(c, &family, now))
            .await
    }

    pub(crate) async fn oauth_revoke_where(
        &self,
        column: &'static str,
        value: String,
        now: i64,
    ) -> Result<()> {
        self.in_transaction(move |c| revoke_where(c, column, &value, now))
            .await
    }

    pub(crate) async fn oauth_set_client_active(
        &self,
        client_id: String,
        active: bool,
        now: i64,
    ) -> Result<bool> {
        self.in_transaction(move |c| {
            let n = c.execute(
                "UPDATE oauth_clients SET active = ?2 WHERE client_id = ?1",
                rusqlite::params![client_id, active],
            )?;
            if !active {
                revoke_where(c, "client_id", &client_id, now)?;
            }
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn oauth_revoke_access(&self, jti: String, exp: i64) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO oauth_revoked (jti, expires_us) VALUES (?1, ?2)",
                (&jti, exp),
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oauth_is_revoked(&self, jti: &str) -> Result<bool> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT 1 FROM oauth_revoked WHERE jti = ?1")?
                .query_row([jti], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
        })
    }

    pub(crate) async fn oauth_insert_launch(&self, l: LaunchContext) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                &format!("INSERT INTO oauth_launch_contexts ({LAUNCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                rusqlite::params![
                    l.launch_hash,
                    l.account_id,
                    l.patient_id,
                    l.client_id,
                    l.expires_us,
                    l.used_us
                ],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn oauth_launch(&self, hash: &str) -> Result<Option<LaunchContext>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {LAUNCH_COLUMNS} FROM oauth_launch_contexts WHERE launch_hash = ?1"
            ))?
            .query_row([hash], launch)
            .optional()
        })
    }

    pub(crate) async fn oauth_use_launch(
        &self,
        hash: String,
        now: i64,
    ) -> Result<Option<LaunchContext>> {
        // One conditional UPDATE on the single writer: only one caller can see it change.
        self.in_transaction(move |c| {
            let changed = c.execute(
                "UPDATE oauth_launch_contexts SET used_us = ?2 \
                 WHERE launch_hash = ?1 AND used_us IS NULL AND expires_us > ?2",
                (&hash, now),
            )?;
            if changed == 0 {
                return Ok(None);
            }
            c.query_row(
                &format!(
                    "SELECT {LAUNCH_COLUMNS} FROM oauth_launch_contexts WHERE launch_hash = ?1"
                ),
                [&hash],
                launch,
            )
            .map(|l| Some(LaunchContext { used_us: None, ..l }))
        })
        .await
    }

    pub(crate) async fn oauth_purge(&self, now: i64) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                "DELETE FROM oauth_launch_contexts WHERE expires_us <= ?1",
                [now],
            )?;
            c.execute(
                "DELETE FROM oauth_assertion_jti WHERE expires_us <= ?1",
                [now],
            )?;
            c.execute("DELETE FROM oauth_revoked WHERE expires_us <= ?1", [now])?;
            c.execute(
                "DELETE FROM oauth_refresh_tokens WHERE expires_us <= ?1",
                [now],
            )?;
            // Codes are kept a day past expiry so a late replay is still recognised.
            c.execute(
                "DELETE FROM oauth_codes WHERE expires_us <= ?1",
                [now - 86_400_000_000],
            )?;
            Ok(())
        })
        .await
    }
}
