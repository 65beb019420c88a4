//! What the OAuth 2 / SMART authorisation server keeps (`crates/server/src/oauth/`):
//! registered clients, the keys that sign tokens, used client-assertion `jti`s, authorisation
//! codes, refresh tokens and revoked access tokens. Tables in migration `0005_oauth`.
//!
//! Nothing secret is stored in the clear except the signing keys' private halves (which the
//! servers need; see docs/SECURITY.md): client secrets, codes and refresh tokens are stored
//! as the hex SHA-256 of 256-bit random values, computed by the caller. Every operation that
//! must be atomic (single-use codes, refresh-token rotation, replay checks) is one
//! transaction on both backends.

use crate::{Result, Store};

/// A registered client (application or connected system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// `authorization_code`, `client_credentials`, `refresh_token`.
    pub grant_types: Vec<String>,
    /// Exact redirect URIs (compared byte for byte).
    pub redirect_uris: Vec<String>,
    /// A public client (no secret, no keys; PKCE only).
    pub public: bool,
    /// Hex SHA-256 of the client secret, for `client_secret_basic` / `client_secret_post`.
    pub secret_hash: Option<String>,
    /// The widest scope the client may be granted (space-separated).
    pub scope: String,
    /// Inline JWKS (JSON text) for `private_key_jwt`.
    pub jwks: Option<String>,
    /// JWKS URL for `private_key_jwt` (recorded; fetching it is not implemented yet).
    pub jwks_url: Option<String>,
    pub active: bool,
    pub created_us: i64,
    /// The Organization a backend-services client acts for (its care teams bound what it
    /// reaches).
    pub organisation_id: Option<String>,
    /// A trusted regional integration: reaches every child's record (docs/SECURITY.md).
    pub regional: bool,
    /// Security-label codes the client is cleared to see.
    pub cleared: Vec<String>,
    /// Where the app is opened for an EHR launch from Passport (`?iss=…&launch=…`).
    pub launch_uri: Option<String>,
}

/// A key that signs access and id tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// The private key (for ES256, the 32-byte scalar). Never logged: `Debug` omits it.
    pub private_key: Vec<u8>,
    /// The public JWK (JSON text) as published in the JWKS.
    pub public_jwk: String,
    pub created_us: i64,
    /// When a newer key replaced it (no longer signs; still verifies until its tokens expire).
    pub retired_us: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"[redacted]")
            .field("created_us", &self.created_us)
            .field("retired_us", &self.retired_us)
            .finish()
    }
}

/// An authorisation code (stored by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// PKCE S256 challenge (base64url SHA-256 of the verifier).
    pub code_challenge: String,
    /// The signed-in user (e.g. `Practitioner/123`), if any.
    pub subject: Option<String>,
    /// Launch context, a JSON object (`patient`, `fhirUser`, …).
    pub context: String,
    pub expires_us: i64,
    pub used_us: Option<i64>,
    /// The refresh-token family and access token the code's exchange issued.
    pub family: Option<String>,
    pub access_jti: Option<String>,
    pub access_expires_us: Option<i64>,
}

/// What [`Store::oauth_consume_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    Unknown,
    /// First use: now marked used.
    Fresh(Box<AuthCode>),
    /// Used before: a replay (the caller revokes what the first use issued).
    Replayed(Box<AuthCode>),
}

/// An EHR launch: a signed-in user opened an app from a child's passport (migration 12).
/// The `launch` value handed to the app is stored as its hex SHA-256; it works once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContext {
    pub launch_hash: String,
    /// The account that opened the app: only the same account may complete the launch.
    pub account_id: String,
    pub patient_id: String,
    pub client_id: String,
    pub expires_us: i64,
    pub used_us: Option<i64>,
}

/// A refresh token (stored by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    /// Shared by every token rotated from one grant.
    pub family: String,
    pub client_id: String,
    pub scope: String,
    pub subject: Option<String>,
    pub context: String,
    pub expires_us: i64,
    pub used_us: Option<i64>,
    pub access_jti: Option<String>,
    pub access_expires_us: Option<i64>,
}

/// What [`Store::oauth_use_refresh`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    Unknown,
    Expired,
    /// Used before: the whole family has now been revoked.
    Reused,
    /// Valid: now marked used; the caller issues its successor.
    Fresh(Box<RefreshToken>),
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
    pub async fn oauth_insert_client(&self, c: &OAuthClient) -> Result<()> {
        both!(self, s => s.oauth_insert_client(c.clone()).await)
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        both!(self, s => s.oauth_client(client_id).await)
    }

    /// Every client, oldest first.
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        both!(self, s => s.oauth_clients().await)
    }

    /// Every signing key, newest first.
    pub async fn oauth_signing_keys(&self) -> Result<Vec<SigningKey>> {
        both!(self, s => s.oauth_signing_keys().await)
    }

    /// Adds `key` as the current key, retiring (at `key.created_us`) the one it replaces, in
    /// one transaction; keys retired before `drop_retired_before` are deleted.
    pub async fn oauth_add_signing_key(
        &self,
        key: &SigningKey,
        drop_retired_before: i64,
    ) -> Result<()> {
        both!(self, s => s.oauth_add_signing_key(key.clone(), drop_retired_before).await)
    }

    /// Records a client assertion's `jti`; `false` if this client already used it (a replay).
    pub async fn oauth_record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_us: i64,
    ) -> Result<bool> {
        both!(self, s => s.oauth_record_jti(client_id.to_owned(), jti.to_owned(), expires_us).await)
    }

    pub async fn oauth_insert_code(&self, code: &AuthCode) -> Result<()> {
        both!(self, s => s.oauth_insert_code(code.clone()).await)
    }

    /// Marks the code used (atomically): the first caller gets [`CodeUse::Fresh`].
    pub async fn oauth_consume_code(&self, code_hash: &str, now_us: i64) -> Result<CodeUse> {
        both!(self, s => s.oauth_consume_code(code_hash.to_owned(), now_us).await)
    }

    /// Records what a code's exchange issued (so a replay can revoke it).
    pub async fn oauth_attach_code_tokens(
        &self,
        code_hash: &str,
        family: Option<&str>,
        access_jti: &str,
        access_expires_us: i64,
    ) -> Result<()> {
        both!(self, s => s.oauth_attach_code_tokens(
            code_hash.to_owned(),
            family.map(str::to_owned),
            access_jti.to_owned(),
            access_expires_us,
        ).await)
    }

    /// Stores a refresh token. With `rotated_from`, only while that (used) token's family
    /// still exists, so a reuse detected in the meantime wins: `false` if nothing was stored.
    pub async fn oauth_insert_refresh(
        &self,
        token: &RefreshToken,
        rotated_from: Option<&str>,
    ) -> Result<bool> {
        both!(self, s => s.oauth_insert_refresh(token.clone(), rotated_from.map(str::to_owned)).await)
    }

    /// Uses a refresh token (atomically): marks it used, or — if it was used before —
    /// revokes its whole family (refresh tokens and the access tokens issued with them).
    pub async fn oauth_use_refresh(&self, token_hash: &str, now_us: i64) -> Result<RefreshUse> {
        both!(self, s => s.oauth_use_refresh(token_hash.to_owned(), now_us).await)
    }

    pub async fn oauth_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
        both!(self, s => s.oauth_refresh_token(token_hash).await)
    }

    /// Revokes a refresh-token family (and the unexpired access tokens issued with it).
    pub async fn oauth_revoke_family(&self, family: &str, now_us: i64) -> Result<()> {
        both!(self, s => s.oauth_revoke_family(family.to_owned(), now_us).await)
    }

    /// Revokes everything issued to one user (`subject`, their account id): every refresh
    /// token family (with the unexpired access tokens issued in it) and every unused
    /// authorisation code. For a deactivated account: at once, not at expiry.
    pub async fn oauth_revoke_subject(&self, subject: &str, now_us: i64) -> Result<()> {
        both!(self, s => s.oauth_revoke_where("subject", subject.to_owned(), now_us).await)
    }

    /// Activates or deactivates a client; deactivating also revokes every token and code
    /// issued to it. `false` if there is no such client.
    pub async fn oauth_set_client_active(
        &self,
        client_id: &str,
        active: bool,
        now_us: i64,
    ) -> Result<bool> {
        both!(self, s => s.oauth_set_client_active(client_id.to_owned(), active, now_us).await)
    }

    /// Revokes an access token by `jti` until `expires_us`.
    pub async fn oauth_revoke_access(&self, jti: &str, expires_us: i64) -> Result<()> {
        both!(self, s => s.oauth_revoke_access(jti.to_owned(), expires_us).await)
    }

    pub async fn oauth_is_revoked(&self, jti: &str) -> Result<bool> {
        both!(self, s => s.oauth_is_revoked(jti).await)
    }

    pub async fn oauth_insert_launch(&self, l: &LaunchContext) -> Result<()> {
        both!(self, s => s.oauth_insert_launch(l.clone()).await)
    }

    /// The launch with this hash, whatever its state (to check an authorisation request
    /// before the user decides).
    pub async fn oauth_launch(&self, launch_hash: &str) -> Result<Option<LaunchContext>> {
        both!(self, s => s.oauth_launch(launch_hash).await)
    }

    /// Uses a launch (atomically): if it is unused and unexpired at `now_us`, marks it used
    /// and returns it; otherwise `None` (a second use, even racing, gets `None`).
    pub async fn oauth_use_launch(
        &self,
        launch_hash: &str,
        now_us: i64,
    ) -> Result<Option<LaunchContext>> {
        both!(self, s => s.oauth_use_launch(launch_hash.to_owned(), now_us).await)
    }

    /// Deletes expired jtis, codes, refresh tokens, revocations and launches.
    pub async fn oauth_purge(&self, now_us: i64) -> Result<()> {
        both!(self, s => s.oauth_purge(now_us).await)
    }
}

pub(crate) fn join(v: &[String]) -> String {
    v.join(" ")
}

pub(crate) fn split(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_owned).collect()
}

pub(crate) const CLIENT_COLUMNS: &str = "client_id, name, grant_types, redirect_uris, public_client, \
     secret_hash, scope, jwks, jwks_url, active, created_us, organisation_id, regional, cleared, launch_uri";
pub(crate) const LAUNCH_COLUMNS: &str =
    "launch_hash, account_id, patient_id, client_id, expires_us, used_us";
pub(crate) const KEY_COLUMNS: &str = "kid, alg, private_key, public_jwk, created_us, retired_us";
pub(crate) const CODE_COLUMNS: &str = "code_hash, client_id, redirect_uri, scope, code_challenge, \
     subject, context, expires_us, used_us, family, access_jti, access_expires_us";
pub(crate) const REFRESH_COLUMNS: &str = "token_hash, family, client_id, scope, subject, context, \
     expires_us, used_us, access_jti, access_expires_us";

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(hash: &str, family: &str) -> RefreshToken {
        RefreshToken {
            token_hash: hash.into(),
            family: family.into(),
            client_id: "c".into(),
            scope: "openid offline_access".into(),
            subject: Some("Practitioner/1".into()),
            context: "{}".into(),
            expires_us: 1_000_000,
            used_us: None,
            access_jti: Some(format!("jti-{hash}")),
            access_expires_us: Some(1_000_000),
        }
    }

    async fn exercise(store: Store) {
        store.migrate().await.unwrap();
        let client = OAuthClient {
            client_id: "c".into(),
            name: "app".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            public: true,
            secret_hash: None,
            scope: "openid patient/*.rs".into(),
            jwks: None,
            jwks_url: None,
            active: true,
            created_us: 5,
            organisation_id: Some("org-1".into()),
            regional: true,
            cleared: vec!["safeguarding".into(), "sexual-health".into()],
            launch_uri: Some("https://app.example/launch".into()),
        };
        store.oauth_insert_client(&client).await.unwrap();
        assert!(store.oauth_insert_client(&client).await.is_err());
        assert_eq!(store.oauth_client("c").await.unwrap(), Some(client.clone()));
        assert_eq!(store.oauth_clients().await.unwrap(), vec![client]);
        assert_eq!(store.oauth_client("x").await.unwrap(), None);

        // jti replay
        assert!(store.oauth_record_jti("c", "j1", 100).await.unwrap());
        assert!(!store.oauth_record_jti("c", "j1", 100).await.unwrap());
        assert!(store.oauth_record_jti("d", "j1", 100).await.unwrap());

        // keys
        let key = |kid: &str, at| SigningKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_key: vec![1; 32],
            public_jwk: "{}".into(),
            created_us: at,
            retired_us: None,
        };
        store
            .oauth_add_signing_key(&key("k1", 10), 0)
            .await
            .unwrap();
        store
            .oauth_add_signing_key(&key("k2", 20), 0)
            .await
            .unwrap();
        let keys = store.oauth_signing_keys().await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].kid.as_str(), keys[0].retired_us), ("k2", None));
        assert_eq!((keys[1].kid.as_str(), keys[1].retired_us), ("k1", Some(20)));
        assert!(!format!("{:?}", keys[0]).contains("[1, 1"));
        store
            .oauth_add_signing_key(&key("k3", 30), 25)
            .await
            .unwrap();
        let kids: Vec<String> = store
            .oauth_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["k3", "k2"]);

        // codes
        let code = AuthCode {
            code_hash: "h".into(),
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            code_challenge: "x".into(),
            subject: None,
            context: "{}".into(),
            expires_us: 100,
            used_us: None,
            family: None,
            access_jti: None,
            access_expires_us: None,
        };
        store.oauth_insert_code(&code).await.unwrap();
        assert!(
            matches!(store.oauth_consume_code("h", 1).await.unwrap(), CodeUse::Fresh(c) if c.used_us.is_none())
        );
        store
            .oauth_attach_code_tokens("h", Some("f"), "a1", 100)
            .await
            .unwrap();
        match store.oauth_consume_code("h", 2).await.unwrap() {
            CodeUse::Replayed(c) => {
                assert_eq!(c.family.as_deref(), Some("f"));
                assert_eq!(c.access_jti.as_deref(), Some("a1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.oauth_consume_code("zz", 2).await.unwrap(),
            CodeUse::Unknown
        );

        // refresh rotation and reuse
        assert!(
            store
                .oauth_insert_refresh(&refresh("r1", "f"), None)
                .await
                .unwrap()
        );
        assert!(matches!(
            store.oauth_use_refresh("r1", 1).await.unwrap(),
            RefreshUse::Fresh(_)
        ));
        assert!(
            store
                .oauth_insert_refresh(&refresh("r2", "f"), Some("r1"))
                .await
                .unwrap()
        );
        assert!(matches!(
            store.oauth_use_refresh("r2", 2).await.unwrap(),
            RefreshUse::Fresh(_)
        ));
        // r1 again: reuse → whole family gone, its access tokens revoked
        assert_eq!(
            store.oauth_use_refresh("r1", 3).await.unwrap(),
            RefreshUse::Reused
        );
        assert!(store.oauth_is_revoked("jti-r2").await.unwrap());
        assert!(store.oauth_is_revoked("jti-r1").await.unwrap());
        assert!(
            !store
                .oauth_insert_refresh(&refresh("r3", "f"), Some("r2"))
                .await
                .unwrap()
        );
        assert_eq!(store.oauth_refresh_token("r3").await.unwrap(), None);
        assert_eq!(
            store.oauth_use_refresh("r3", 3).await.unwrap(),
            RefreshUse::Unknown
        );
        assert!(
            store
                .oauth_insert_refresh(&refresh("e1", "g"), None)
                .await
                .unwrap()
        );
        assert_eq!(
            store.oauth_use_refresh("e1", 2_000_000).await.unwrap(),
            RefreshUse::Expired
        );

        // launches: peek any number of times, use once, not after expiry
        let launch = |hash: &str| LaunchContext {
            launch_hash: hash.into(),
            account_id: "acc".into(),
            patient_id: "child".into(),
            client_id: "c".into(),
            expires_us: 100,
            used_us: None,
        };
        store.oauth_insert_launch(&launch("l1")).await.unwrap();
        store.oauth_insert_launch(&launch("l2")).await.unwrap();
        assert_eq!(store.oauth_launch("l1").await.unwrap(), Some(launch("l1")));
        assert_eq!(
            store.oauth_use_launch("l1", 10).await.unwrap(),
            Some(launch("l1"))
        );
        assert_eq!(store.oauth_use_launch("l1", 11).await.unwrap(), None);
        assert_eq!(
            store.oauth_launch("l1").await.unwrap().unwrap().used_us,
            Some(10)
        );
        assert_eq!(store.oauth_use_launch("l2", 100).await.unwrap(), None);
        assert_eq!(store.oauth_use_launch("nope", 1).await.unwrap(), None);

        // revocation list
        assert!(!store.oauth_is_revoked("a9").await.unwrap());
        store.oauth_revoke_access("a9", 50).await.unwrap();
        store.oauth_revoke_access("a9", 50).await.unwrap();
        assert!(store.oauth_is_revoked("a9").await.unwrap());
        store.oauth_purge(200).await.unwrap();
        assert!(!store.oauth_is_revoked("a9").await.unwrap());
        assert_eq!(store.oauth_launch("l2").await.unwrap(), None);
        assert!(store.oauth_record_jti("c", "j1", 1000).await.unwrap());
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
