//! Checking an access token for the API layer: [`verify_access_token`] (signature by any
//! published key, `iss`, `aud`, `exp`, revocation) and [`TokenClaims::subject`] (who is asking,
//! for `access::decide`).
//!
//! Cost: the keys are parsed once per key ring (cached in memory); a verification is one
//! ES256 signature check plus one primary-key lookup in the revocation list
//! (`oauth_revoked`), so a revocation by any server process takes effect at once.

use access::{Identity, Scopes, Subject, SystemClient};
use serde_json::Value;

use super::jwt;
use crate::AppState;

/// Why a bearer token was refused (the API answers 401 with `WWW-Authenticate: Bearer
/// error="invalid_token"`, except [`AuthError::Unavailable`], a 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token was not signed by a key this server publishes")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the revocation list could not be read")]
    Unavailable,
}

/// The claims of a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    /// Launch patient (Patient logical id).
    pub patient: Option<String>,
    /// The user's FHIR resource, e.g. `Practitioner/123`.
    pub fhir_user: Option<String>,
    /// Seconds since the epoch.
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub kid: String,
}

impl TokenClaims {
    /// A backend-services token (client credentials: the client is the subject, no user).
    pub fn is_system(&self) -> bool {
        self.sub == self.client_id && self.fhir_user.is_none()
    }

    /// The token's scopes (`patient/` scopes limited to the launch patient).
    pub fn scopes(&self) -> Scopes {
        // Issued only after `Scopes::parse` accepted them; anything else grants nothing.
        let s = Scopes::parse(&self.scope).unwrap_or_default();
        match &self.patient {
            Some(p) => s.with_patient(p.clone()),
            None => s,
        }
    }

    /// Who is asking. A system token becomes [`Identity::System`] with the organisation
    /// facts `system_client` supplies for the client (the client registry does not hold them
    /// yet: without them the subject is anonymous, which reaches nothing). A user token maps
    /// `fhirUser`: `Patient/x` → young person, `RelatedPerson/x` / `Person/x` → family;
    /// staff (`Practitioner/x`) need their role and organisation from the account store,
    /// which the enforcement step supplies through `staff`.
    pub fn subject(
        &self,
        system_client: impl FnOnce(&str) -> Option<SystemClient>,
        staff: impl FnOnce(&str) -> Option<access::Staff>,
    ) -> Subject {
        let identity = if self.is_system() {
            system_client(&self.client_id).map(Identity::System)
        } else {
            match self.fhir_user.as_deref().and_then(|u| u.split_once('/')) {
                Some(("Patient", id)) => Some(Identity::YoungPerson {
                    patient: id.to_owned(),
                }),
                Some(("RelatedPerson" | "Person", id)) => Some(Identity::Family {
                    person: id.to_owned(),
                }),
                Some(("Practitioner", id)) => staff(id).map(Identity::Staff),
                _ => None,
            }
        };
        Subject::new(identity.unwrap_or(Identity::Anonymous), self.scopes())
    }
}

fn claims_of(parsed: &jwt::Parsed<'_>, kid: &str) -> Result<TokenClaims, AuthError> {
    let c = &parsed.claims;
    let s = |n: &str| c.get(n).and_then(Value::as_str).map(str::to_owned);
    let n = |n: &str| c.get(n).and_then(Value::as_i64);
    Ok(TokenClaims {
        iss: s("iss").ok_or(AuthError::Malformed)?,
        aud: s("aud").ok_or(AuthError::WrongAudience)?,
        sub: s("sub").ok_or(AuthError::Malformed)?,
        client_id: s("client_id").ok_or(AuthError::Malformed)?,
        scope: s("scope").unwrap_or_default(),
        patient: s("patient"),
        fhir_user: s("fhirUser"),
        exp: n("exp").ok_or(AuthError::Malformed)?,
        iat: n("iat").unwrap_or(0),
        jti: s("jti").ok_or(AuthError::Malformed)?,
        kid: kid.to_owned(),
    })
}

/// Signature (ES256 by a published key) and issuer only: no expiry, audience or revocation
/// check (revocation of an expired token is pointless, but harmless).
pub async fn verify_signature(st: &AppState, token: &str) -> Result<TokenClaims, AuthError> {
    let parsed = jwt::parse(token).ok_or(AuthError::Malformed)?;
    if parsed.header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(AuthError::BadSignature);
    }
    let kid = parsed
        .header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(AuthError::UnknownKey)?;
    let mut ring = st.oauth.keys.ring();
    if !ring.verifiers.contains_key(kid) {
        // Perhaps another process rotated since this one loaded its keys.
        st.oauth
            .keys
            .reload_if_stale(st.domain.data(), &st.config.oauth, crate::clock::now_us())
            .await;
        ring = st.oauth.keys.ring();
    }
    let key = ring.verifiers.get(kid).ok_or(AuthError::UnknownKey)?;
    if !jwt::verify_es256(key, parsed.signing_input, &parsed.signature) {
        return Err(AuthError::BadSignature);
    }
    let claims = claims_of(&parsed, kid)?;
    if claims.iss != super::issuer(st) {
        return Err(AuthError::WrongIssuer);
    }
    Ok(claims)
}

/// Verifies a bearer access token (with or without the `Bearer ` prefix): signature by any
/// published key (chosen by `kid`), `iss` and `aud` (this server's FHIR base URL), `exp`,
/// and the revocation list.
pub async fn verify_access_token(st: &AppState, bearer: &str) -> Result<TokenClaims, AuthError> {
    let token = bearer.trim();
    let token = match token.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => token[7..].trim(),
        _ => token,
    };
    let claims = verify_signature(st, token).await?;
    if claims.aud != super::issuer(st) {
        return Err(AuthError::WrongAudience);
    }
    if claims.exp <= crate::clock::now_us() / 1_000_000 {
        return Err(AuthError::Expired);
    }
    match st.domain.data().oauth_is_revoked(&claims.jti).await {
        Ok(false) => Ok(claims),
        Ok(true) => Err(AuthError::Revoked),
        Err(e) => {
            tracing::error!(error = %e, "reading the token revocation list");
            Err(AuthError::Unavailable)
        }
    }
}
