//! Accounts, sessions, throttling and resets on PostgreSQL. Read-modify-write operations
//! lock the row they change (`FOR UPDATE`) inside their transaction, so concurrent sign-in
//! attempts from several server processes count every failure.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, pg_error};
use crate::accounts::*;
use crate::{Result, StoreError};

fn account(r: &Row) -> Account {
    account_at(r, 0)
}

/// The account whose columns start at `o` in `r`.
fn account_at(r: &Row, o: usize) -> Account {
    Account {
        id: r.get(o),
        login: r.get(o + 1),
        kind: AccountKind::parse(r.get(o + 2)).unwrap_or(AccountKind::Family),
        password_hash: r.get(o + 3),
        totp_secret: r.get(o + 4),
        role: r.get(o + 5),
        organisation_id: r.get(o + 6),
        practitioner_id: r.get(o + 7),
        practitioner_role_id: r.get(o + 8),
        person_id: r.get(o + 9),
        display_name: r.get(o + 10),
        active: r.get::<_, i64>(o + 11) != 0,
        created_us: r.get(o + 12),
        cleared: r
            .get::<_, String>(o + 13)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    }
}

fn session(r: &Row) -> Session {
    Session {
        id_hash: r.get(0),
        account_id: r.get(1),
        stage: SessionStage::parse(r.get(2)).unwrap_or(SessionStage::Password),
        csrf_token: r.get(3),
        created_us: r.get(4),
        last_seen_us: r.get(5),
        expires_us: r.get(6),
    }
}

fn throttle(r: Option<Row>) -> Throttle {
    r.map(|r| Throttle {
        failures: r.get(0),
        lockouts: r.get(1),
        locked_until_us: r.get(2),
    })
    .unwrap_or_default()
}

fn verdict(r: Option<Row>, now_us: i64) -> std::result::Result<String, ResetRefused> {
    let Some(r) = r else {
        return Err(ResetRefused::Unknown);
    };
    match reset_refusal(r.get(1), r.get(2), r.get::<_, i64>(3) != 0, now_us) {
        Some(why) => Err(why),
        None => Ok(r.get(0)),
    }
}

const THROTTLE_SQL: &str =
    "SELECT failures, lockouts, locked_until_us FROM login_throttle WHERE login = $1";

impl PgStore {
    pub(crate) async fn closed_check(&self) -> Result<tokio::sync::RwLockReadGuard<'_, bool>> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        Ok(closed)
    }

    /// Runs one statement that changes something; the number of rows.
    async fn change(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(sql).await?;
        conn.client.execute(&stmt, args).await.map_err(pg_error)
    }

    pub(crate) async fn create_account(&self, a: &Account) -> Result<bool> {
        let active = i64::from(a.active);
        let n = self
            .change(
                &format!(
                    "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (login) DO NOTHING"
                ),
                &[
                    &a.id,
                    &a.login,
                    &a.kind.as_str(),
                    &a.password_hash,
                    &a.totp_secret,
                    &a.role,
                    &a.organisation_id,
                    &a.practitioner_id,
                    &a.practitioner_role_id,
                    &a.person_id,
                    &a.display_name,
                    &active,
                    &a.created_us,
                    &a.cleared.join(" "),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn account_where(&self, column: &str, value: &str) -> Result<Option<Account>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = $1"
            ))
            .await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&value])
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(account))
    }

    pub(crate) async fn list_accounts(&self) -> Result<Vec<Account>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY login"
            ))
            .await?;
        let rows = conn.client.query(&stmt, &[]).await.map_err(pg_error)?;
        Ok(rows.iter().map(account).collect())
    }

    pub(crate) async fn set_account_cleared(&self, id: &str, codes: &str) -> Result<bool> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(
                "UPDATE accounts SET cleared = $2 WHERE id = $1",
                &[&id, &codes],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn accept_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(
                "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                &[&id, &step],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn set_account_active(&self, id: &str, active: bool) -> Result<bool> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute(
                "UPDATE accounts SET active = $2 WHERE id = $1",
                &[&id, &i64::from(active)],
            )
            .await
            .map_err(pg_error)?;
        if !active {
            tx.execute("DELETE FROM sessions WHERE account_id = $1", &[&id])
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn login_throttle(&self, login: &str) -> Result<Throttle> {
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(THROTTLE_SQL).await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&login])
            .await
            .map_err(pg_error)?;
        Ok(throttle(row))
    }

    pub(crate) async fn record_login_failure(&self, login: &str, now_us: i64) -> Result<Throttle> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO login_throttle (login, failures, lockouts, locked_until_us, updated_us) \
             VALUES ($1, 0, 0, 0, $2) ON CONFLICT (login) DO NOTHING",
            &[&login, &now_us],
        )
        .await
        .map_err(pg_error)?;
        let row = tx
            .query_opt(&format!("{THROTTLE_SQL} FOR UPDATE"), &[&login])
            .await
            .map_err(pg_error)?;
        let next = throttle(row).after_failure(now_us);
        tx.execute(
            "UPDATE login_throttle SET failures = $2, lockouts = $3, locked_until_us = $4, \
             updated_us = $5 WHERE login = $1",
            &[
                &login,
                &next.failures,
                &next.lockouts,
                &next.locked_until_us,
                &now_us,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(next)
    }

    pub(crate) async fn clear_login_failures(&self, login: &str) -> Result<()> {
        self.change("DELETE FROM login_throttle WHERE login = $1", &[&login])
            .await
            .map(|_| ())
    }

    pub(crate) async fn create_session(&self, s: &Session) -> Result<()> {
        self.change(
            &format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &s.id_hash,
                &s.account_id,
                &s.stage.as_str(),
                &s.csrf_token,
                &s.created_us,
                &s.last_seen_us,
                &s.expires_us,
            ],
        )
        .await
        .map(|_| ())
    }

    /// The session and, if it still exists, its account: one round trip per page.
    pub(crate) async fn session(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<(Session, Option<Account>)>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(&session_and_account_sql("$1")).await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&id_hash])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| {
            let account = r
                .get::<_, Option<String>>(SESSION_WIDTH)
                .map(|_| account_at(&r, SESSION_WIDTH));
            (session(&r), account)
        }))
    }

    pub(crate) async fn touch_session(&self, id_hash: &[u8], now_us: i64) -> Result<()> {
        self.change(
            "UPDATE sessions SET last_seen_us = $2 WHERE id_hash = $1",
            &[&id_hash, &now_us],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete_session(&self, id_hash: &[u8]) -> Result<()> {
        self.change("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
            .await
            .map(|_| ())
    }

    pub(crate) async fn create_password_reset(
        &self,
        token_hash: &[u8],
        account_id: &str,
        now_us: i64,
        expires_us: i64,
    ) -> Result<()> {
        self.change(
            "INSERT INTO password_resets (token_hash, account_id, created_us, expires_us) \
             VALUES ($1, $2, $3, $4)",
            &[&token_hash, &account_id, &now_us, &expires_us],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn check_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "SELECT r.account_id, r.used_us, r.expires_us, a.active {RESET_SQL_TAIL} $1"
            ))
            .await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&token_hash])
            .await
            .map_err(pg_error)?;
        Ok(verdict(row, now_us))
    }

    pub(crate) async fn redeem_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
        password_hash: &str,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT r.account_id, r.used_us, r.expires_us, a.active {RESET_SQL_TAIL} $1 \
                     FOR UPDATE OF r"
                ),
                &[&token_hash],
            )
            .await
            .map_err(pg_error)?;
        let account = match verdict(row, now_us) {
            Ok(a) => a,
            Err(why) => return Ok(Err(why)),
        };
        tx.execute(
            "UPDATE password_resets SET used_us = $2 WHERE token_hash = $1",
            &[&token_hash, &now_us],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1",
            &[&account, &password_hash],
        )
        .await
        .map_err(pg_error)?;
        tx.execute("DELETE FROM sessions WHERE account_id = $1", &[&account])
            .await
            .map_err(pg_error)?;
        tx.execute(
            "DELETE FROM login_throttle WHERE login = (SELECT login FROM accounts WHERE id = $1)",
            &[&account],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(Ok(account))
    }

    pub(crate) async fn create_registration(&self, r: &Registration) -> Result<()> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "DELETE FROM registrations WHERE expires_us < $1",
            &[&(r.created_us - REGISTRATION_KEEP_US)],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            &format!(
                "INSERT INTO registrations ({REGISTRATION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
            ),
            &[
                &r.token_hash,
                &r.login,
                &r.display_name,
                &r.password_hash,
                &r.request,
                &r.created_us,
                &r.expires_us,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    /// (login, used_us, expires_us) of a registration.
    pub(crate) async fn registration(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(String, Option<i64>, i64)>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare("SELECT login, used_us, expires_us FROM registrations WHERE token_hash = $1")
            .await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&token_hash])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    pub(crate) async fn claim_registration(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<Registration, RegistrationRefused>> {
        let _open = self.closed_check().await?;
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE token_hash = $1 \
                     FOR UPDATE"
                ),
                &[&token_hash],
            )
            .await
            .map_err(pg_error)?;
        let Some(r) = row else {
            return Ok(Err(RegistrationRefused::Unknown));
        };
        let reg = Registration {
            token_hash: r.get(0),
            login: r.get(1),
            display_name: r.get(2),
            password_hash: r.get(3),
            request: r.get(4),
            created_us: r.get(5),
            expires_us: r.get(6),
        };
        if let Some(why) = registration_refusal(r.get(7), reg.expires_us, now_us) {
            return Ok(Err(why));
        }
        tx.execute(
            "UPDATE registrations SET used_us = $2, display_name = '', password_hash = '', \
             request = '' WHERE token_hash = $1",
            &[&token_hash, &now_us],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(Ok(reg))
    }

    pub(crate) async fn delete_registration(&self, token_hash: &[u8]) -> Result<()> {
        self.change(
            "DELETE FROM registrations WHERE token_hash = $1",
            &[&token_hash],
        )
        .await
        .map(|_| ())
    }
}
