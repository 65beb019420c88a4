//! The keys that sign access and id tokens: ES256, stored in the database so that every
//! server process signs with the same current key, rotated on a schedule
//! ([`super::OAuthConfig::key_rotation`]) or on demand ([`rotate_signing_key`], the CLI's
//! `passport admin rotate-keys`). A retired key stays in the JWKS (and keeps verifying) until
//! every token it signed has expired.
//!
//! The parsed keys are cached in memory ([`KeyRing`]) and reloaded from the store by the
//! background task, or at once when a token names a `kid` this process has not seen (another
//! process rotated).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use domain::Data;
use domain::types::StoreError;
use domain::types::oauth::SigningKey;
use serde_json::Value;

use super::OAuthConfig;
use super::jwt;

/// The keys in force, parsed.
pub struct KeyRing {
    /// The key that signs (the newest).
    pub current: Option<(String, p256::ecdsa::SigningKey)>,
    /// Every published key, by kid.
    pub verifiers: HashMap<String, p256::ecdsa::VerifyingKey>,
    /// `{"keys": [...]}`, serialised once.
    pub jwks: Bytes,
    pub loaded_us: i64,
}

impl KeyRing {
    fn empty() -> KeyRing {
        KeyRing {
            current: None,
            verifiers: HashMap::new(),
            jwks: Bytes::from_static(br#"{"keys":[]}"#),
            loaded_us: 0,
        }
    }
}

/// The process's cached key ring.
pub struct Keys {
    ring: RwLock<Arc<KeyRing>>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            ring: RwLock::new(Arc::new(KeyRing::empty())),
        }
    }
}

impl Keys {
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads the keys from the store, creating the first key or rotating the current one
    /// when it is older than the rotation interval.
    pub async fn refresh(
        &self,
        store: &Data,
        cfg: &OAuthConfig,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut keys = store.oauth_signing_keys().await?;
        let due = keys
            .first()
            .is_none_or(|k| now_us - k.created_us >= cfg.key_rotation.as_micros() as i64);
        if due {
            rotate_signing_key(store, cfg, now_us).await?;
            keys = store.oauth_signing_keys().await?;
        }
        let ring = build(&keys, cfg, now_us);
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Reloads without rotating, if the ring was not loaded within the last second (a token
    /// named an unknown `kid`: perhaps another process rotated).
    pub async fn reload_if_stale(&self, store: &Data, cfg: &OAuthConfig, now_us: i64) {
        if now_us - self.ring().loaded_us < 1_000_000 {
            return;
        }
        match store.oauth_signing_keys().await {
            Ok(keys) => {
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(build(&keys, cfg, now_us));
            }
            Err(e) => tracing::warn!(error = %e, "reloading the OAuth signing keys"),
        }
    }
}

/// How long after retirement a key is still published: the longest an access or id token
/// it signed can live, plus a minute of clock skew.
fn publish_after_retirement(cfg: &OAuthConfig) -> i64 {
    cfg.access_token_lifetime.as_micros() as i64 + 60_000_000
}

fn build(keys: &[SigningKey], cfg: &OAuthConfig, now_us: i64) -> KeyRing {
    let mut ring = KeyRing::empty();
    ring.loaded_us = now_us;
    let mut published = Vec::new();
    for k in keys {
        if k.retired_us
            .is_some_and(|r| r + publish_after_retirement(cfg) <= now_us)
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_str::<Value>(&k.public_jwk) else {
            tracing::warn!(kid = %k.kid, "unreadable public JWK of a signing key");
            continue;
        };
        let Some(verifier) = jwt::es256_verifying_key(&jwk) else {
            continue;
        };
        if k.retired_us.is_none() && ring.current.is_none() {
            match p256::ecdsa::SigningKey::from_slice(&k.private_key) {
                Ok(sk) => ring.current = Some((k.kid.clone(), sk)),
                Err(_) => tracing::warn!(kid = %k.kid, "unreadable private signing key"),
            }
        }
        ring.verifiers.insert(k.kid.clone(), verifier);
        published.push(jwk);
    }
    ring.jwks = Bytes::from(
        serde_json::to_vec(&serde_json::json!({ "keys": published })).expect("JWKS serialises"),
    );
    ring
}

/// Generates a new ES256 key and makes it the current one (the previous one is retired but
/// stays published until its tokens expire). Returns the new `kid`.
pub async fn rotate_signing_key(
    store: &Data,
    cfg: &OAuthConfig,
    now_us: i64,
) -> Result<String, StoreError> {
    let key = loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Backend(format!("no random source: {e}")))?;
        // A random 32-byte string is a valid scalar with overwhelming probability.
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&bytes) {
            break k;
        }
    };
    let mut jwk = jwt::es256_public_jwk(key.verifying_key());
    let kid = jwt::ec_thumbprint(&jwk);
    jwk["kid"] = Value::from(kid.clone());
    jwk["use"] = Value::from("sig");
    jwk["alg"] = Value::from("ES256");
    let row = SigningKey {
        kid: kid.clone(),
        alg: "ES256".into(),
        private_key: key.to_bytes().to_vec(),
        public_jwk: jwk.to_string(),
        created_us: now_us,
        retired_us: None,
    };
    let drop_before = now_us - publish_after_retirement(cfg) - 86_400_000_000;
    store.oauth_add_signing_key(&row, drop_before).await?;
    tracing::info!(%kid, "new OAuth signing key");
    Ok(kid)
}
