//! Built-in sign-in: accounts, sessions, sign-in throttling and admin-issued password
//! resets (migration 4); self-registrations waiting for their email address to be verified
//! (migration 15, [`Registration`]).
//!
//! The store keeps what signing in needs and nothing of who a person is: that is FHIR
//! (Organization, Practitioner + PractitionerRole, Person), written through the ordinary
//! resource path. Nor does the store hash passwords or check codes; the server does, and
//! hands the store hashes. Session ids and reset tokens arrive here already hashed
//! (SHA-256), so a copy of the database cannot be used to take over a session.
//!
//! Throttling is keyed by the login as typed, whether or not an account has it: after
//! [`Throttle::MAX_FAILURES`] failures in a row the login is locked for
//! [`Throttle::FIRST_LOCK_US`], doubling with each further lockout (up to
//! [`Throttle::MAX_LOCK_US`]); a successful sign-in clears it.

use crate::{Result, Store};

/// Staff (TOTP required) or a family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Staff,
    Family,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Staff => "staff",
            AccountKind::Family => "family",
        }
    }
    pub fn parse(s: &str) -> Option<AccountKind> {
        match s {
            "staff" => Some(AccountKind::Staff),
            "family" => Some(AccountKind::Family),
            _ => None,
        }
    }
}

/// One sign-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    /// Lower-cased email address.
    pub login: String,
    pub kind: AccountKind,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Raw TOTP secret (staff).
    pub totp_secret: Option<Vec<u8>>,
    /// Staff: `access::Role` code.
    pub role: Option<String>,
    pub organisation_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub practitioner_role_id: Option<String>,
    /// Family: their Person resource.
    pub person_id: Option<String>,
    /// A name to greet them by (also in their FHIR resource).
    pub display_name: String,
    pub active: bool,
    pub created_us: i64,
    /// Security-label codes a member of staff is cleared to see (e.g. `safeguarding` for a
    /// designated safeguarding lead), set by their organisation's admin. Empty for most.
    pub cleared: Vec<String>,
}

/// Failed sign-ins for one login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Failures since the last lockout (or success).
    pub failures: i64,
    /// Lockouts since the last success (each doubles the next).
    pub lockouts: i64,
    pub locked_until_us: i64,
}

impl Throttle {
    pub const MAX_FAILURES: i64 = 5;
    pub const FIRST_LOCK_US: i64 = 60_000_000;
    pub const MAX_LOCK_US: i64 = 24 * 3600 * 1_000_000;

    /// Is the login locked at `now_us`?
    pub fn locked(&self, now_us: i64) -> bool {
        self.locked_until_us > now_us
    }

    /// The state after one more failure at `now_us`.
    pub fn after_failure(self, now_us: i64) -> Throttle {
        let failures = self.failures + 1;
        if failures < Self::MAX_FAILURES {
            return Throttle { failures, ..self };
        }
        let shift = u32::try_from(self.lockouts.clamp(0, 20)).unwrap_or(20);
        let lock = Self::FIRST_LOCK_US
            .saturating_mul(1_i64 << shift)
            .min(Self::MAX_LOCK_US);
        Throttle {
            failures: 0,
            lockouts: self.lockouts + 1,
            locked_until_us: now_us + lock,
        }
    }
}

/// How far a session has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// Password checked; the TOTP code is still to come.
    Password,
    /// Signed in.
    Full,
}

impl SessionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStage::Password => "password",
            SessionStage::Full => "full",
        }
    }
    pub fn parse(s: &str) -> Option<SessionStage> {
        match s {
            "password" => Some(SessionStage::Password),
            "full" => Some(SessionStage::Full),
            _ => None,
        }
    }
}

/// A session, found by the hash of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub account_id: String,
    pub stage: SessionStage,
    /// The session's CSRF token (sent in every form, checked on every POST).
    pub csrf_token: String,
    pub created_us: i64,
    pub last_seen_us: i64,
    /// Absolute expiry.
    pub expires_us: i64,
}

/// Why a password reset was not redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRefused {
    /// No such token (or never issued).
    Unknown,
    Used,
    Expired,
    /// The account has been deactivated since.
    Inactive,
}

/// A self-registration waiting for its email address to be verified (migration 15). It is
/// not an account: nothing signs in with it. Following the emailed link claims it (once),
/// and only then is the account made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// SHA-256 of the link's token.
    pub token_hash: Vec<u8>,
    /// Lower-cased email address.
    pub login: String,
    pub display_name: String,
    /// argon2id PHC string of the chosen password.
    pub password_hash: String,
    /// What to do once verified (the server's JSON).
    pub request: String,
    pub created_us: i64,
    pub expires_us: i64,
}

/// Why a verification link was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationRefused {
    /// No such token (never issued, or long expired and deleted).
    Unknown,
    Used,
    Expired,
}

/// Used and expired registrations are kept this long past their expiry (so that a late
/// click still says "expired" or "used"), then deleted.
pub const REGISTRATION_KEEP_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// Whether a registration row (its `used_us`, `expires_us`) can be claimed at `now_us`.
pub(crate) fn registration_refusal(
    used_us: Option<i64>,
    expires_us: i64,
    now_us: i64,
) -> Option<RegistrationRefused> {
    if used_us.is_some() {
        Some(RegistrationRefused::Used)
    } else if expires_us <= now_us {
        Some(RegistrationRefused::Expired)
    } else {
        None
    }
}

pub(crate) const REGISTRATION_COLUMNS: &str = "token_hash, login, display_name, password_hash, \
     request, created_us, expires_us, used_us";

pub(crate) const ACCOUNT_COLUMNS: &str = "id, login, kind, password_hash, totp_secret, role, \
     organisation_id, practitioner_id, practitioner_role_id, person_id, display_name, active, created_us, cleared";
pub(crate) const SESSION_COLUMNS: &str =
    "id_hash, account_id, stage, csrf_token, created_us, last_seen_us, expires_us";
/// How many columns [`SESSION_COLUMNS`] names.
pub(crate) const SESSION_WIDTH: usize = 7;

/// A session with its account's columns after it (`NULL`s if the account is gone), for
/// the session id hash bound as `param`.
pub(crate) fn session_and_account_sql(param: &str) -> String {
    let cols = |list: &str, alias: &str| {
        list.split(", ")
            .map(|c| format!("{alias}.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {} FROM sessions s LEFT JOIN accounts a ON a.id = s.account_id \
         WHERE s.id_hash = {param}",
        cols(SESSION_COLUMNS, "s"),
        cols(ACCOUNT_COLUMNS, "a")
    )
}

impl Store {
    /// Creates an account; `false` if its login is taken.
    pub async fn create_account(&self, account: &Account) -> Result<bool> {
        match self {
            Store::Sqlite(s) => s.create_account(account.clone()).await,
            Store::Postgres(s) => s.create_account(account).await,
        }
    }

    pub async fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        match self {
            Store::Sqlite(s) => s.account_where("login", login),
            Store::Postgres(s) => s.account_where("login", login).await,
        }
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>> {
        match self {
            Store::Sqlite(s) => s.account_where("id", id),
            Store::Postgres(s) => s.account_where("id", id).await,
        }
    }

    /// Every account, by login.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        match self {
            Store::Sqlite(s) => s.list_accounts(),
            Store::Postgres(s) => s.list_accounts().await,
        }
    }

    /// Activates or deactivates an account. Deactivating deletes all its sessions in the
    /// same transaction, so it is signed out everywhere at once. `false` if no such account.
    pub async fn set_account_active(&self, id: &str, active: bool) -> Result<bool> {
        match self {
            Store::Sqlite(s) => s.set_account_active(id.to_owned(), active).await,
            Store::Postgres(s) => s.set_account_active(id, active).await,
        }
    }

    /// Sets the security labels a member of staff is cleared to see (codes); `false` if no
    /// such account.
    pub async fn set_account_cleared(&self, id: &str, cleared: &[String]) -> Result<bool> {
        let codes = cleared.join(" ");
        match self {
            Store::Sqlite(s) => s.set_account_cleared(id.to_owned(), codes).await,
            Store::Postgres(s) => s.set_account_cleared(id, &codes).await,
        }
    }

    /// Records that the TOTP code of time step `step` was used by `account_id`: `true` the
    /// first time, `false` if that step (or a later one) was already used — a replayed
    /// code. One conditional UPDATE, so two concurrent uses cannot both succeed.
    pub async fn accept_totp_step(&self, account_id: &str, step: i64) -> Result<bool> {
        match self {
            Store::Sqlite(s) => s.accept_totp_step(account_id.to_owned(), step).await,
            Store::Postgres(s) => s.accept_totp_step(account_id, step).await,
        }
    }

    /// The throttle state of `login` (default when it never failed).
    pub async fn login_throttle(&self, login: &str) -> Result<Throttle> {
        match self {
            Store::Sqlite(s) => s.login_throttle(login),
            Store::Postgres(s) => s.login_throttle(login).await,
        }
    }

    /// Records a failed sign-in for `login` (read and update in one transaction); returns
    /// the new state.
    pub async fn record_login_failure(&self, login: &str, now_us: i64) -> Result<Throttle> {
        match self {
            Store::Sqlite(s) => s.record_login_failure(login.to_owned(), now_us).await,
            Store::Postgres(s) => s.record_login_failure(login, now_us).await,
        }
    }

    /// Forgets failures of `login` (after a successful sign-in).
    pub async fn clear_login_failures(&self, login: &str) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.clear_login_failures(login.to_owned()).await,
            Store::Postgres(s) => s.clear_login_failures(login).await,
        }
    }

    pub async fn create_session(&self, session: &Session) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.create_session(session.clone()).await,
            Store::Postgres(s) => s.create_session(session).await,
        }
    }

    /// The session with this id hash, if it exists (expiry is the caller's to check), and
    /// its account if that still exists — read together, as every page needs both.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<(Session, Option<Account>)>> {
        match self {
            Store::Sqlite(s) => s.session(id_hash),
            Store::Postgres(s) => s.session(id_hash).await,
        }
    }

    /// Marks the session as used at `now_us` (the idle timeout counts from here).
    pub async fn touch_session(&self, id_hash: &[u8], now_us: i64) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.touch_session(id_hash.to_vec(), now_us).await,
            Store::Postgres(s) => s.touch_session(id_hash, now_us).await,
        }
    }

    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.delete_session(id_hash.to_vec()).await,
            Store::Postgres(s) => s.delete_session(id_hash).await,
        }
    }

    /// Stores a password-reset token (its hash) for `account_id`, valid until `expires_us`.
    pub async fn create_password_reset(
        &self,
        token_hash: &[u8],
        account_id: &str,
        now_us: i64,
        expires_us: i64,
    ) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                s.create_password_reset(
                    token_hash.to_vec(),
                    account_id.to_owned(),
                    now_us,
                    expires_us,
                )
                .await
            }
            Store::Postgres(s) => {
                s.create_password_reset(token_hash, account_id, now_us, expires_us)
                    .await
            }
        }
    }

    /// Whether the reset token could be redeemed now: its account id, or why not.
    pub async fn check_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        match self {
            Store::Sqlite(s) => s.check_password_reset(token_hash, now_us),
            Store::Postgres(s) => s.check_password_reset(token_hash, now_us).await,
        }
    }

    /// Redeems a reset token: in ONE transaction checks it, marks it used, sets the new
    /// password hash, deletes the account's sessions and clears its throttle. Returns the
    /// account id, or why the token was refused (then nothing changed).
    pub async fn redeem_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
        password_hash: &str,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        match self {
            Store::Sqlite(s) => {
                s.redeem_password_reset(token_hash.to_vec(), now_us, password_hash.to_owned())
                    .await
            }
            Store::Postgres(s) => {
                s.redeem_password_reset(token_hash, now_us, password_hash)
                    .await
            }
        }
    }
    /// Stores a registration waiting for verification, and deletes those that expired more
    /// than [`REGISTRATION_KEEP_US`] ago.
    pub async fn create_registration(&self, r: &Registration) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.create_registration(r.clone()).await,
            Store::Postgres(s) => s.create_registration(r).await,
        }
    }

    /// Whether the registration with this token hash could be claimed at `now_us` (the
    /// verification page shows its button only then).
    pub async fn check_registration(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<(), RegistrationRefused>> {
        let found = match self {
            Store::Sqlite(s) => s.registration(token_hash)?,
            Store::Postgres(s) => s.registration(token_hash).await?,
        };
        Ok(match found {
            None => Err(RegistrationRefused::Unknown),
            Some((_, used, expires)) => match registration_refusal(used, expires, now_us) {
                Some(why) => Err(why),
                None => Ok(()),
            },
        })
    }

    /// Claims a registration: in ONE transaction checks it is unused and unexpired, marks
    /// it used and blanks its personal columns. Returns what it held, or why not (then
    /// nothing changed). Two concurrent claims cannot both succeed.
    pub async fn claim_registration(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<Registration, RegistrationRefused>> {
        match self {
            Store::Sqlite(s) => s.claim_registration(token_hash.to_vec(), now_us).await,
            Store::Postgres(s) => s.claim_registration(token_hash, now_us).await,
        }
    }

    /// Deletes a registration (the server does, when the address already has an account:
    /// its link is never sent, so the row would only hold a password hash for nothing).
    pub async fn delete_registration(&self, token_hash: &[u8]) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.delete_registration(token_hash.to_vec()).await,
            Store::Postgres(s) => s.delete_registration(token_hash).await,
        }
    }
}

/// Why a reset row cannot be redeemed, if it cannot.
pub(crate) fn reset_refusal(
    used_us: Option<i64>,
    expires_us: i64,
    active: bool,
    now_us: i64,
) -> Option<ResetRefused> {
    if used_us.is_some() {
        Some(ResetRefused::Used)
    } else if expires_us <= now_us {
        Some(ResetRefused::Expired)
    } else if !active {
        Some(ResetRefused::Inactive)
    } else {
        None
    }
}

pub(crate) const RESET_SQL_TAIL: &str =
    "FROM password_resets r JOIN accounts a ON a.id = r.account_id WHERE r.token_hash = ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_after_five_failures_doubles() {
        let mut t = Throttle::default();
        for _ in 0..4 {
            t = t.after_failure(0);
            assert!(!t.locked(0));
        }
        t = t.after_failure(0);
        assert!(t.locked(0));
        assert_eq!(t.locked_until_us, Throttle::FIRST_LOCK_US);
        for _ in 0..5 {
            t = t.after_failure(100);
        }
        assert_eq!(t.locked_until_us, 100 + 2 * Throttle::FIRST_LOCK_US);
        for _ in 0..200 {
            t = t.after_failure(100);
        }
        assert!(t.locked_until_us <= 100 + Throttle::MAX_LOCK_US);
    }
}
