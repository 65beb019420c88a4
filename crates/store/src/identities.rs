//! Sign-in with external OpenID Connect providers (migration 6): identities linked to
//! accounts, sign-ins in progress, and what an external sign-in allowed a session.
//!
//! An identity is the provider's name (from configuration) and its `sub`. NHS login's
//! `nhs_number` is stored as the adult's OWN identifier: nothing here links it to a child.
//! State values and browser-binding cookies arrive already hashed.

use crate::{Result, Store};

/// An identity at a provider, linked to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub provider: String,
    pub subject: String,
    pub account_id: String,
    pub email: Option<String>,
    /// The adult's own NHS number (NHS login), never a child's.
    pub nhs_number: Option<String>,
    /// NHS login `identity_proofing_level` at the last sign-in.
    pub identity_level: Option<String>,
    pub created_us: i64,
    pub last_seen_us: i64,
}

/// A sign-in in progress (between our redirect to the provider and its callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcPending {
    /// Hex SHA-256 of `state`.
    pub state_hash: String,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Hex SHA-256 of the browser-binding cookie.
    pub browser_hash: String,
    pub expires_us: i64,
}

/// What an external sign-in established for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSession {
    /// SHA-256 of the session id (as in `sessions`).
    pub id_hash: Vec<u8>,
    pub provider: String,
    pub identity_level: Option<String>,
    /// `false`: signed in, but no child's data (NHS login below P9).
    pub family_data: bool,
    pub expires_us: i64,
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Links an identity; `false` if that (provider, subject) is already linked.
    pub async fn link_external_identity(&self, id: &ExternalIdentity) -> Result<bool> {
        both!(self, s => s.link_external_identity(id.clone()).await)
    }

    pub async fn external_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentity>> {
        both!(self, s => s.external_identity(provider, subject).await)
    }

    /// Records a sign-in: the latest NHS number, identity level and time.
    pub async fn touch_external_identity(
        &self,
        provider: &str,
        subject: &str,
        nhs_number: Option<&str>,
        identity_level: Option<&str>,
        now_us: i64,
    ) -> Result<()> {
        both!(self, s => s.touch_external_identity(
            provider.to_owned(),
            subject.to_owned(),
            nhs_number.map(str::to_owned),
            identity_level.map(str::to_owned),
            now_us,
        ).await)
    }

    /// Stores a sign-in in progress (and forgets expired ones).
    pub async fn oidc_insert_pending(&self, p: &OidcPending, now_us: i64) -> Result<()> {
        both!(self, s => s.oidc_insert_pending(p.clone(), now_us).await)
    }

    /// Takes (deletes and returns) the sign-in in progress with this state hash, if it has
    /// not expired. Single use: a second call gets `None`.
    pub async fn oidc_take_pending(
        &self,
        state_hash: &str,
        now_us: i64,
    ) -> Result<Option<OidcPending>> {
        both!(self, s => s.oidc_take_pending(state_hash.to_owned(), now_us).await)
    }

    pub async fn oidc_record_session(&self, o: &OidcSession) -> Result<()> {
        both!(self, s => s.oidc_record_session(o.clone()).await)
    }

    /// What an external sign-in established for this session, if it was one.
    pub async fn oidc_session(&self, id_hash: &[u8]) -> Result<Option<OidcSession>> {
        both!(self, s => s.oidc_session(id_hash).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{Account, AccountKind};

    async fn exercise(store: Store) {
        store.migrate().await.unwrap();
        let account = Account {
            id: "a1".into(),
            login: "p@example.com".into(),
            kind: AccountKind::Family,
            password_hash: "x".into(),
            totp_secret: None,
            role: None,
            organisation_id: None,
            practitioner_id: None,
            practitioner_role_id: None,
            person_id: None,
            display_name: "P".into(),
            active: true,
            created_us: 1,
            cleared: Vec::new(),
        };
        assert!(store.create_account(&account).await.unwrap());
        let id = ExternalIdentity {
            provider: "nhs".into(),
            subject: "s1".into(),
            account_id: "a1".into(),
            email: Some("p@example.com".into()),
            nhs_number: Some("9000000009".into()),
            identity_level: Some("P5".into()),
            created_us: 10,
            last_seen_us: 10,
        };
        assert!(store.link_external_identity(&id).await.unwrap());
        assert!(!store.link_external_identity(&id).await.unwrap());
        store
            .touch_external_identity("nhs", "s1", None, Some("P9"), 20)
            .await
            .unwrap();
        let got = store.external_identity("nhs", "s1").await.unwrap().unwrap();
        assert_eq!(got.identity_level.as_deref(), Some("P9"));
        assert_eq!(got.nhs_number.as_deref(), Some("9000000009"));
        assert_eq!(got.last_seen_us, 20);
        assert!(
            store
                .external_identity("nhs", "s2")
                .await
                .unwrap()
                .is_none()
        );

        let p = OidcPending {
            state_hash: "h".into(),
            provider: "nhs".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            browser_hash: "b".into(),
            expires_us: 100,
        };
        store.oidc_insert_pending(&p, 0).await.unwrap();
        assert!(store.oidc_take_pending("h", 200).await.unwrap().is_none());
        store.oidc_insert_pending(&p, 0).await.unwrap();
        assert_eq!(store.oidc_take_pending("h", 50).await.unwrap(), Some(p));
        assert!(store.oidc_take_pending("h", 50).await.unwrap().is_none());

        let o = OidcSession {
            id_hash: vec![1, 2, 3],
            provider: "nhs".into(),
            identity_level: Some("P5".into()),
            family_data: false,
            expires_us: 100,
        };
        store.oidc_record_session(&o).await.unwrap();
        assert_eq!(store.oidc_session(&[1, 2, 3]).await.unwrap(), Some(o));
        assert!(store.oidc_session(&[9]).await.unwrap().is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite() {
        exercise(Store::open("sqlite::memory:").await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(url) = crate::testing::fresh_pg_url() else {
            return;
        };
        exercise(Store::open(&url).await.unwrap()).await;
    }
}
