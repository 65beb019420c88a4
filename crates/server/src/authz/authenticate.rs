//! Who is asking: the bearer token of a `/fhir` request, verified and turned into a
//! [`Caller`] (an `access::Subject` plus what the AuditEvent records about them).
//!
//! Every `/fhir` route needs one except `metadata` (the CapabilityStatement, which tells a
//! client how to get a token) — the discovery documents live outside `/fhir` routes.
//! Missing or bad tokens get a 401 OperationOutcome and `WWW-Authenticate` (RFC 6750).
//!
//! Cost: the ES256 signature check is the expensive part (~100 µs), so verified claims are
//! cached by token until they expire. Revocation, and whether the account or client is still
//! active (and its role, organisation and clearance), are looked up again when the token's
//! [`Caller`] is more than [`RECHECK_US`] old — two primary-key reads saved on most
//! requests. Revocations and deactivations made by this process forget every cached
//! caller at once ([`TokenCache::forget_callers`]); those made by another process (the
//! CLI, another replica) take effect within [`RECHECK_US`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use access::{Identity, Sector, Subject, SystemClient};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::types::StoreError;
use domain::types::accounts::AccountKind;

use crate::AppState;
use crate::audit::{Named, Purpose, Who};
use crate::error::ApiError;
use crate::oauth::{AuthError, TokenClaims};

/// The most verified tokens remembered (the cache is emptied when it fills).
const MAX_CACHED_TOKENS: usize = 20_000;
/// How long a token's caller (revocation, account or client still active) is trusted
/// without looking again.
pub const RECHECK_US: i64 = 1_000_000;

pub use domain::guard::Caller;

/// Verified token claims by token text, and the caller each was last checked as.
#[derive(Default)]
pub struct TokenCache {
    map: RwLock<HashMap<String, Cached>>,
}

#[derive(Clone)]
struct Cached {
    claims: Arc<TokenClaims>,
    /// The caller, and when it was checked (revocation, account or client active).
    caller: Option<(i64, Arc<Caller>)>,
}

impl TokenCache {
    fn get(&self, token: &str) -> Option<Cached> {
        self.map.read().ok()?.get(token).cloned()
    }
    fn put(&self, token: &str, entry: Cached) {
        if let Ok(mut m) = self.map.write() {
            if m.len() >= MAX_CACHED_TOKENS {
                m.clear();
            }
            m.insert(token.to_owned(), entry);
        }
    }

    /// Makes every token's caller be checked again on its next use (after a revocation, a
    /// deactivation, a client switched off).
    pub fn forget_callers(&self) {
        if let Ok(mut m) = self.map.write() {
            for e in m.values_mut() {
                e.caller = None;
            }
        }
    }
}

/// Whether `path` is a data endpoint that needs a token.
fn needs_token(path: &str) -> bool {
    (path == "/fhir" || path.starts_with("/fhir/")) && path != "/fhir/metadata"
}

/// Middleware on the FHIR routes: authenticates, then hands the [`Caller`] to the handler
/// as a request extension.
pub async fn layer(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    if !needs_token(req.uri().path()) {
        return next.run(req).await;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match caller(&st, req.headers()).await {
        Ok(c) => {
            // The cached caller is shared by the token's requests; the address is this one's.
            let mut c = (*c).clone();
            c.who.network_address = peer(&req);
            let c = Arc::new(c);
            req.extensions_mut().insert(c.clone());
            let response = next.run(req).await;
            super::audit::record(&st, &c, &method, &path, response).await
        }
        Err(e) => e.into_response(),
    }
}

/// The address the request came from (for the AuditEvent).
pub fn peer<B>(req: &axum::http::Request<B>) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

fn unauthorized(message: &str, token_given: bool) -> ApiError {
    ApiError::Unauthorized {
        message: message.to_owned(),
        token_given,
    }
}

/// The bearer token of `headers`, if any (`Authorization: Bearer …`).
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not readable", true))?;
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") && !v[7..].trim().is_empty() => {
            Ok(Some(v[7..].trim()))
        }
        _ => Err(unauthorized(
            "send an OAuth 2.0 access token as 'Authorization: Bearer <token>'",
            true,
        )),
    }
}

/// Authenticates a request: the verified, unrevoked token of an active account or client.
pub async fn caller(st: &AppState, headers: &HeaderMap) -> Result<Arc<Caller>, ApiError> {
    let Some(token) = bearer(headers)? else {
        return Err(unauthorized(
            "this endpoint needs an access token (see /fhir/.well-known/smart-configuration)",
            false,
        ));
    };
    let now_us = crate::clock::now_us();
    let cached = st
        .authz
        .tokens
        .get(token)
        .filter(|c| c.claims.exp > now_us / 1_000_000);
    if let Some(Cached {
        caller: Some((at, c)),
        ..
    }) = &cached
        && now_us - at < RECHECK_US
    {
        return Ok(c.clone());
    }
    let claims = match cached {
        Some(c) => {
            check_revoked(st, &c.claims.jti).await?;
            c.claims
        }
        None => Arc::new(
            crate::oauth::verify_access_token(st, token)
                .await
                .map_err(refused)?,
        ),
    };
    let caller = Arc::new(if claims.is_system() {
        system_caller(st, &claims).await?
    } else {
        user_caller(st, &claims).await?
    });
    st.authz.tokens.put(
        token,
        Cached {
            claims,
            caller: Some((now_us, caller.clone())),
        },
    );
    Ok(caller)
}

fn refused(e: AuthError) -> ApiError {
    match e {
        AuthError::Unavailable => ApiError::Unavailable("cannot check the token now".into()),
        other => unauthorized(&format!("{other}"), true),
    }
}

async fn check_revoked(st: &AppState, jti: &str) -> Result<(), ApiError> {
    match st.domain.data().oauth_is_revoked(jti).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(refused(AuthError::Revoked)),
        Err(e) => {
            tracing::error!(error = %e, "reading the token revocation list");
            Err(refused(AuthError::Unavailable))
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::Store(e)
}

async fn organisation_named(
    st: &AppState,
    id: &str,
) -> Result<Option<crate::web::directory::Organisation>, ApiError> {
    crate::web::directory::organisation(&st.domain, id)
        .await
        .map_err(|e| match e {
            crate::web::directory::DirectoryError::Store(s) => store_error(s),
            other => ApiError::Store(StoreError::Backend(other.to_string())),
        })
}

async fn system_caller(st: &AppState, claims: &TokenClaims) -> Result<Caller, ApiError> {
    let client = st
        .domain
        .data()
        .oauth_client(&claims.client_id)
        .await
        .map_err(store_error)?
        .filter(|c| c.active)
        .ok_or_else(|| unauthorized("the client of this token is no longer active", true))?;
    let org = match &client.organisation_id {
        Some(id) => organisation_named(st, id).await?,
        None => None,
    };
    let cleared = domain::directory::cleared(&client.cleared);
    let system = SystemClient {
        client_id: client.client_id.clone(),
        organisation: org.as_ref().map(|o| o.id.clone()),
        // A client without an organisation reaches no child's record unless regional;
        // its sector then only matters for reference data, and health is the narrowest
        // that can still read it.
        sector: org.as_ref().map_or(Sector::HospitalTrust, |o| o.sector),
        region: org.as_ref().map(|o| o.region.clone()).unwrap_or_default(),
        cleared,
        regional: client.regional,
    };
    let who = Who {
        person: Named {
            reference: None,
            display: client.name.clone(),
        },
        organisation: org.map(|o| Named::new(format!("Organization/{}", o.id), o.name)),
        client: Some(Named {
            reference: None,
            display: format!("{} ({})", client.name, client.client_id),
        }),
        network_address: None,
    };
    let purpose = if client.regional {
        Purpose::Operations
    } else {
        Purpose::Treatment
    };
    Ok(Caller {
        subject: Subject::new(Identity::System(system), claims.scopes()),
        who,
        purpose,
    })
}

async fn user_caller(st: &AppState, claims: &TokenClaims) -> Result<Caller, ApiError> {
    let account = st
        .domain
        .data()
        .account(&claims.sub)
        .await
        .map_err(store_error)?
        .filter(|a| a.active)
        .ok_or_else(|| unauthorized("the account of this token is no longer active", true))?;
    let mut identity = crate::web::session::identity(st, &account)
        .await
        .map_err(store_error)?;
    // A young person's own sign-in names their Patient.
    if let Some(("Patient", id)) = claims.fhir_user.as_deref().and_then(|u| u.split_once('/')) {
        identity = Identity::YoungPerson {
            patient: id.to_owned(),
        };
    }
    let (reference, organisation, purpose) = match &identity {
        Identity::Staff(s) => {
            let org = organisation_named(st, &s.organisation).await?;
            (
                Some(format!("Practitioner/{}", s.practitioner)),
                org.map(|o| Named::new(format!("Organization/{}", o.id), o.name)),
                Purpose::Treatment,
            )
        }
        Identity::Family { person } => (
            Some(format!("Person/{person}")),
            None,
            Purpose::FamilyRequest,
        ),
        Identity::YoungPerson { patient } => (
            Some(format!("Patient/{patient}")),
            None,
            Purpose::PatientRequest,
        ),
        _ => (None, None, Purpose::Treatment),
    };
    if matches!(identity, Identity::Anonymous)
        || account.kind == AccountKind::Staff && organisation.is_none()
    {
        return Err(unauthorized(
            "the account of this token has no role or organisation",
            true,
        ));
    }
    let client = Named {
        reference: None,
        display: claims.client_id.clone(),
    };
    Ok(Caller {
        subject: Subject::new(identity, claims.scopes()),
        who: Who {
            person: Named {
                reference,
                display: account.display_name.clone(),
            },
            organisation,
            client: Some(client),
            network_address: None,
        },
        purpose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metadata_is_open() {
        assert!(needs_token("/fhir"));
        assert!(needs_token("/fhir/Patient"));
        assert!(needs_token("/fhir/Patient/1/$everything"));
        assert!(!needs_token("/fhir/metadata"));
        assert!(!needs_token("/fhirx"));
        assert!(!needs_token("/sign-in"));
    }
}
