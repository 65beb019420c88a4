//! Accounts, sessions, throttling and resets on SQLite: writes run on the writer thread
//! (`call`, in order with resource writes), reads on the reader connections.

use rusqlite::{Connection, OptionalExtension, Row};

use super::{SqliteStore, backend};
use crate::Result;
use crate::accounts::*;

fn account(r: &Row<'_>) -> rusqlite::Result<Account> {
    account_at(r, 0)
}

/// The account whose columns start at `o` in `r`.
fn account_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Account> {
    let kind: String = r.get(o + 2)?;
    Ok(Account {
        id: r.get(o)?,
        login: r.get(o + 1)?,
        kind: AccountKind::parse(&kind).unwrap_or(AccountKind::Family),
        password_hash: r.get(o + 3)?,
        totp_secret: r.get(o + 4)?,
        role: r.get(o + 5)?,
        organisation_id: r.get(o + 6)?,
        practitioner_id: r.get(o + 7)?,
        practitioner_role_id: r.get(o + 8)?,
        person_id: r.get(o + 9)?,
        display_name: r.get(o + 10)?,
        active: r.get::<_, i64>(o + 11)? != 0,
        created_us: r.get(o + 12)?,
        cleared: split_codes(&r.get::<_, String>(o + 13)?),
    })
}

fn split_codes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn session(r: &Row<'_>) -> rusqlite::Result<Session> {
    let stage: String = r.get(2)?;
    Ok(Session {
        id_hash: r.get(0)?,
        account_id: r.get(1)?,
        stage: SessionStage::parse(&stage).unwrap_or(SessionStage::Password),
        csrf_token: r.get(3)?,
        created_us: r.get(4)?,
        last_seen_us: r.get(5)?,
        expires_us: r.get(6)?,
    })
}

fn throttle(c: &Connection, login: &str) -> rusqlite::Result<Throttle> {
    Ok(c.prepare_cached(
        "SELECT failures, lockouts, locked_until_us FROM login_throttle WHERE login = ?1",
    )?
    .query_row([login], |r| {
        Ok(Throttle {
            failures: r.get(0)?,
            lockouts: r.get(1)?,
            locked_until_us: r.get(2)?,
        })
    })
    .optional()?
    .unwrap_or_default())
}

type Reset = (String, Option<i64>, i64, bool);

fn reset(c: &Connection, token_hash: &[u8]) -> rusqlite::Result<Option<Reset>> {
    c.prepare_cached(&format!(
        "SELECT r.account_id, r.used_us, r.expires_us, a.active {RESET_SQL_TAIL} ?1"
    ))?
    .query_row([token_hash], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
    })
    .optional()
}

fn verdict(found: Option<Reset>, now_us: i64) -> std::result::Result<String, ResetRefused> {
    let Some((account, used, expires, active)) = found else {
        return Err(ResetRefused::Unknown);
    };
    match reset_refusal(used, expires, active, now_us) {
        Some(why) => Err(why),
        None => Ok(account),
    }
}

impl SqliteStore {
    pub(crate) async fn create_account(&self, a: Account) -> Result<bool> {
        self.call(move |c| {
            let n = c
                .execute(
                    &format!(
                        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                         ON CONFLICT (login) DO NOTHING"
                    ),
                    rusqlite::params![
                        a.id,
                        a.login,
                        a.kind.as_str(),
                        a.password_hash,
                        a.totp_secret,
                        a.role,
                        a.organisation_id,
                        a.practitioner_id,
                        a.practitioner_role_id,
                        a.person_id,
                        a.display_name,
                        i64::from(a.active),
                        a.created_us,
                        a.cleared.join(" ")
                    ],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    /// `column` is `id` or `login` (never user input).
    pub(crate) fn account_where(&self, column: &str, value: &str) -> Result<Option<Account>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = ?1"
            ))?
            .query_row([value], account)
            .optional()
        })
    }

    pub(crate) fn list_accounts(&self) -> Result<Vec<Account>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY login"
            ))?
            .query_map([], account)?
            .collect()
        })
    }

    pub(crate) async fn set_account_cleared(&self, id: String, codes: String) -> Result<bool> {
        self.call(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET cleared = ?2 WHERE id = ?1",
                    (&id, &codes),
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn accept_totp_step(&self, id: String, step: i64) -> Result<bool> {
        self.call(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                    (&id, step),
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn set_account_active(&self, id: String, active: bool) -> Result<bool> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            let n = tx
                .execute(
                    "UPDATE accounts SET active = ?2 WHERE id = ?1",
                    (&id, i64::from(active)),
                )
                .map_err(backend)?;
            if !active {
                tx.execute("DELETE FROM sessions WHERE account_id = ?1", [&id])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) fn login_throttle(&self, login: &str) -> Result<Throttle> {
        self.with_reader(|c| throttle(c, login))
    }

    pub(crate) async fn record_login_failure(
        &self,
        login: String,
        now_us: i64,
    ) -> Result<Throttle> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            let next = throttle(&tx, &login).map_err(backend)?.after_failure(now_us);
            tx.execute(
                "INSERT INTO login_throttle (login, failures, lockouts, locked_until_us, updated_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login) DO UPDATE SET \
                 failures = excluded.failures, lockouts = excluded.lockouts, \
                 locked_until_us = excluded.locked_until_us, updated_us = excluded.updated_us",
                (&login, next.failures, next.lockouts, next.locked_until_us, now_us),
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }

    pub(crate) async fn clear_login_failures(&self, login: String) -> Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM login_throttle WHERE login = ?1", [&login])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn create_session(&self, s: Session) -> Result<()> {
        self.call(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                rusqlite::params![
                    s.id_hash,
                    s.account_id,
                    s.stage.as_str(),
                    s.csrf_token,
                    s.created_us,
                    s.last_seen_us,
                    s.expires_us
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// The session and, if it still exists, its account: one statement per page.
    pub(crate) fn session(&self, id_hash: &[u8]) -> Result<Option<(Session, Option<Account>)>> {
        self.with_reader(|c| {
            c.prepare_cached(&session_and_account_sql("?1"))?
                .query_row([id_hash], |r| {
                    let account = match r.get::<_, Option<String>>(SESSION_WIDTH)? {
                        Some(_) => Some(account_at(r, SESSION_WIDTH)?),
                        None => None,
                    };
                    Ok((session(r)?, account))
                })
                .optional()
        })
    }

    pub(crate) async fn touch_session(&self, id_hash: Vec<u8>, now_us: i64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "UPDATE sessions SET last_seen_us = ?2 WHERE id_hash = ?1",
                (&id_hash, now_us),
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn delete_session(&self, id_hash: Vec<u8>) -> Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE id_hash = ?1", [&id_hash])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn create_password_reset(
        &self,
        token_hash: Vec<u8>,
        account_id: String,
        now_us: i64,
        expires_us: i64,
    ) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO password_resets (token_hash, account_id, created_us, expires_us) \
                 VALUES (?1, ?2, ?3, ?4)",
                (&token_hash, &account_id, now_us, expires_us),
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) fn check_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        Ok(verdict(self.with_reader(|c| reset(c, token_hash))?, now_us))
    }

    pub(crate) async fn redeem_password_reset(
        &self,
        token_hash: Vec<u8>,
        now_us: i64,
        password_hash: String,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            let found = reset(&tx, &token_hash).map_err(backend)?;
            let account = match verdict(found, now_us) {
                Ok(a) => a,
                Err(why) => return Ok(Err(why)),
            };
            tx.execute(
                "UPDATE password_resets SET used_us = ?2 WHERE token_hash = ?1",
                (&token_hash, now_us),
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                (&account, &password_hash),
            )
            .map_err(backend)?;
            tx.execute("DELETE FROM sessions WHERE account_id = ?1", [&account])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM login_throttle WHERE login = (SELECT login FROM accounts WHERE id = ?1)",
                [&account],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Ok(account))
        })
        .await
    }

    pub(crate) async fn create_registration(&self, r: Registration) -> Result<()> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            tx.execute(
                "DELETE FROM registrations WHERE expires_us < ?1",
                [r.created_us - REGISTRATION_KEEP_US],
            )
            .map_err(backend)?;
            tx.execute(
                &format!(
                    "INSERT INTO registrations ({REGISTRATION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"
                ),
                rusqlite::params![
                    r.token_hash,
                    r.login,
                    r.display_name,
                    r.password_hash,
                    r.request,
                    r.created_us,
                    r.expires_us
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    /// (login, used_us, expires_us) of a registration.
    pub(crate) fn registration(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(String, Option<i64>, i64)>> {
        self.with_reader(|c| {
            c.prepare_cached(
                "SELECT login, used_us, expires_us FROM registrations WHERE token_hash = ?1",
            )?
            .query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
        })
    }

    pub(crate) async fn claim_registration(
        &self,
        token_hash: Vec<u8>,
        now_us: i64,
    ) -> Result<std::result::Result<Registration, RegistrationRefused>> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE token_hash = ?1"
                    ),
                    [&token_hash],
                    |r| {
                        Ok((
                            Registration {
                                token_hash: r.get(0)?,
                                login: r.get(1)?,
                                display_name: r.get(2)?,
                                password_hash: r.get(3)?,
                                request: r.get(4)?,
                                created_us: r.get(5)?,
                                expires_us: r.get(6)?,
                            },
                            r.get::<_, Option<i64>>(7)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((reg, used)) = found else {
                return Ok(Err(RegistrationRefused::Unknown));
            };
            if let Some(why) = registration_refusal(used, reg.expires_us, now_us) {
                return Ok(Err(why));
            }
            tx.execute(
                "UPDATE registrations SET used_us = ?2, display_name = '', password_hash = '', \
                 request = '' WHERE token_hash = ?1",
                (&token_hash, now_us),
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Ok(reg))
        })
        .await
    }

    pub(crate) async fn delete_registration(&self, token_hash: Vec<u8>) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM registrations WHERE token_hash = ?1",
                [&token_hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
