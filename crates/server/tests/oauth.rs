//! The OAuth 2 / SMART authorisation server over HTTP, on a real server (SQLite and
//! PostgreSQL): backend services with RS384 and ES384 client assertions signed here, every
//! kind of misuse and its OAuth error, the authorization-code exchange (codes issued through
//! `issue_authorization_code`, as the authorise page will), refresh rotation and reuse
//! detection, introspection and revocation, key rotation, discovery, and
//! `verify_access_token`.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use passport_server::oauth::{self, AuthError, CodeRequest};
use passport_server::{AppState, Config};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server whose state the test can reach (to issue codes and verify tokens directly).
struct Srv {
    base: String,
    state: Arc<AppState>,
    http: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<std::path::PathBuf>,
}

impl Srv {
    async fn start(backend: common::Backend) -> Option<Srv> {
        let (url, dir) = common::fresh_database(backend)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::new(addr, url);
        config.base_url = format!("http://{addr}");
        let state = passport_server::prepare(config).await.expect("prepare");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(passport_server::serve(state.clone(), listener, async {
            let _ = rx.await;
        }));
        Some(Srv {
            base: format!("http://{addr}"),
            state,
            http: Client::new(),
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        })
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn token_url(&self) -> String {
        self.url("/oauth/token")
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status != StatusCode::OK || path == "/oauth/token" {
            assert_eq!(
                resp.headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap()),
                Some("no-store"),
                "{path}"
            );
        }
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get_json(&self, path: &str) -> Value {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.json().await.unwrap()
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

macro_rules! on_both {
    ($name:ident, |$srv:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $srv = Srv::start(common::Backend::Sqlite).await.expect("sqlite");
                $body
                $srv.shutdown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($srv) = Srv::start(common::Backend::Postgres).await else {
                    return;
                };
                $body
                $srv.shutdown().await;
            }
        }
    };
}

/// A client's key pair: signs assertions, publishes its public JWK.
enum ClientKey {
    Es384(p384::ecdsa::SigningKey),
    Rs384(Box<rsa::PrivateKey>),
}

impl ClientKey {
    fn es384() -> ClientKey {
        use p384::elliptic_curve::Generate;
        ClientKey::Es384(p384::ecdsa::SigningKey::generate())
    }
    fn rs384() -> ClientKey {
        use rsa::Generate;
        ClientKey::Rs384(Box::new(rsa::PrivateKey::generate()))
    }
    fn alg(&self) -> &'static str {
        match self {
            ClientKey::Es384(_) => "ES384",
            ClientKey::Rs384(_) => "RS384",
        }
    }
    fn jwk(&self, kid: &str) -> Value {
        match self {
            ClientKey::Es384(k) => {
                let p = k.verifying_key().to_sec1_bytes();
                json!({ "kty": "EC", "crv": "P-384", "x": b64(&p[1..49]), "y": b64(&p[49..97]), "kid": kid, "alg": "ES384" })
            }
            ClientKey::Rs384(k) => {
                use rsa::traits::PublicKeyParts;
                json!({
                    "kty": "RSA",
                    "n": b64(&k.n().to_be_bytes_trimmed_vartime()),
                    "e": b64(&k.e().to_be_bytes_trimmed_vartime()),
                    "kid": kid,
                    "alg": "RS384",
                })
            }
        }
    }
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = match self {
            ClientKey::Es384(k) => {
                use p384::ecdsa::signature::Signer;
                // Low-S, as Passport requires of client assertions.
                let s: p384::ecdsa::Signature = k.sign(input.as_bytes());
                s.normalize_s().to_bytes().to_vec()
            }
            ClientKey::Rs384(k) => {
                use rsa::signature::{SignatureEncoding, Signer};
                let sk = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha384>::new((**k).clone());
                sk.sign(input.as_bytes()).to_vec()
            }
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// A registered backend-services client and its key.
struct Backend {
    client_id: String,
    key: ClientKey,
    kid: String,
}

impl Backend {
    async fn register(srv: &Srv, key: ClientKey, scope: &str) -> Backend {
        let kid = format!("{}-key-1", key.alg().to_lowercase());
        let jwks = json!({ "keys": [key.jwk(&kid)] }).to_string();
        let created = oauth::create_client(
            srv.state.domain.data(),
            oauth::ClientSpec {
                name: "epr-sync".into(),
                grant_types: vec!["client_credentials".into()],
                scope: scope.into(),
                jwks: Some(jwks),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(created.client_secret.is_none());
        Backend {
            client_id: created.client.client_id,
            key,
            kid,
        }
    }

    fn claims(&self, srv: &Srv) -> Value {
        json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": srv.token_url(),
            "exp": now_s() + 240,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn header(&self) -> Value {
        json!({ "alg": self.key.alg(), "typ": "JWT", "kid": self.kid })
    }

    fn assertion(&self, srv: &Srv) -> String {
        self.key.sign(&self.header(), &self.claims(srv))
    }

    async fn token_with(&self, srv: &Srv, assertion: &str, scope: &str) -> (StatusCode, Value) {
        srv.post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", scope),
            ],
        )
        .await
    }
}

fn expect_error(got: (StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert!(
        got.1["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        got.1
    );
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

on_both!(backend_services_rs384_and_es384, |srv| {
    for key in [ClientKey::rs384(), ClientKey::es384()] {
        let c = Backend::register(&srv, key, "system/*.rs system/Patient.cruds").await;
        let (status, body) = c
            .token_with(
                &srv,
                &c.assertion(&srv),
                "system/Observation.rs system/Patient.r",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "system/Observation.rs system/Patient.r");
        assert!(body["expires_in"].as_i64().unwrap() <= 3600);
        assert!(body.get("refresh_token").is_none());
        let token = body["access_token"].as_str().unwrap();
        let claims = jwt_part(token, 1);
        assert_eq!(claims["iss"], srv.url("/fhir"));
        assert_eq!(claims["aud"], srv.url("/fhir"));
        assert_eq!(claims["sub"], c.client_id.as_str());
        assert_eq!(claims["client_id"], c.client_id.as_str());
        assert!(claims["exp"].as_i64().unwrap() <= now_s() + 3600);
        assert!(claims["jti"].is_string());
        assert_eq!(jwt_part(token, 0)["alg"], "ES256");

        let verified = oauth::verify_access_token(&srv.state, &format!("Bearer {token}"))
            .await
            .unwrap();
        assert!(verified.is_system());
        let subject = verified.subject(
            |id| {
                Some(access::SystemClient {
                    client_id: id.to_owned(),
                    organisation: Some("org-1".into()),
                    sector: access::Sector::HospitalTrust,
                    region: "north".into(),
                    cleared: Default::default(),
                    regional: false,
                })
            },
            |_| None,
        );
        assert!(
            matches!(subject.identity, access::Identity::System(ref s) if s.client_id == c.client_id)
        );
        assert!(
            subject
                .scopes
                .permits("Observation", access::Action::Search)
        );
        assert!(
            !subject
                .scopes
                .permits("Observation", access::Action::Create)
        );
    }
});

on_both!(backend_services_misuse, |srv| {
    let c = Backend::register(&srv, ClientKey::es384(), "system/*.rs").await;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let bad = StatusCode::BAD_REQUEST;

    // Expired assertion.
    let mut claims = c.claims(&srv);
    claims["exp"] = json!(now_s() - 60);
    expect_error(
        c.token_with(&srv, &c.key.sign(&c.header(), &claims), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // exp more than five minutes ahead.
    let mut claims = c.claims(&srv);
    claims["exp"] = json!(now_s() + 600);
    expect_error(
        c.token_with(&srv, &c.key.sign(&c.header(), &claims), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // Wrong audience (the Host-derived URL would not help: aud comes from configuration).
    let mut claims = c.claims(&srv);
    claims["aud"] = json!("https://elsewhere.example/oauth/token");
    expect_error(
        c.token_with(&srv, &c.key.sign(&c.header(), &claims), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // Signed by another key under the registered kid.
    let other = ClientKey::es384();
    expect_error(
        c.token_with(
            &srv,
            &other.sign(&c.header(), &c.claims(&srv)),
            "system/*.rs",
        )
        .await,
        unauthorized,
        "invalid_client",
    );
    // Tampered payload.
    let a = c.assertion(&srv);
    let mut parts: Vec<String> = a.split('.').map(str::to_owned).collect();
    let mut claims = c.claims(&srv);
    claims["sub"] = json!(c.client_id);
    claims["jti"] = json!("tampered");
    parts[1] = b64(claims.to_string().as_bytes());
    expect_error(
        c.token_with(&srv, &parts.join("."), "system/*.rs").await,
        unauthorized,
        "invalid_client",
    );
    // Unknown kid.
    let mut header = c.header();
    header["kid"] = json!("nope");
    expect_error(
        c.token_with(&srv, &c.key.sign(&header, &c.claims(&srv)), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // alg none / HS256 refused.
    let mut header = c.header();
    header["alg"] = json!("none");
    expect_error(
        c.token_with(&srv, &c.key.sign(&header, &c.claims(&srv)), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // The high-S twin of a valid assertion (r, n - s) is refused, by name; the low-S
    // original is then accepted (the refusal used up nothing).
    let low = c.assertion(&srv);
    let (input, sig) = low.rsplit_once('.').unwrap();
    let sig = p384::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let (r, s) = sig.split_scalars();
    let high = p384::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert_ne!(high.normalize_s(), high, "the twin is high-S");
    let twin = format!("{input}.{}", b64(&high.to_bytes()));
    let refused = c.token_with(&srv, &twin, "system/*.rs").await;
    assert!(
        refused.1["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("low-S")),
        "{}",
        refused.1
    );
    expect_error(refused, unauthorized, "invalid_client");
    assert_eq!(
        c.token_with(&srv, &low, "system/*.rs").await.0,
        StatusCode::OK
    );
    // jti replay: the same assertion twice.
    let once = c.assertion(&srv);
    assert_eq!(
        c.token_with(&srv, &once, "system/*.rs").await.0,
        StatusCode::OK
    );
    expect_error(
        c.token_with(&srv, &once, "system/*.rs").await,
        unauthorized,
        "invalid_client",
    );
    // Scope wider than allowed, a non-system scope, a malformed scope, no scope.
    expect_error(
        c.token_with(&srv, &c.assertion(&srv), "system/*.cruds")
            .await,
        bad,
        "invalid_scope",
    );
    expect_error(
        c.token_with(
            &srv,
            &c.assertion(&srv),
            "system/Patient.rs system/Patient.c",
        )
        .await,
        bad,
        "invalid_scope",
    );
    expect_error(
        c.token_with(&srv, &c.assertion(&srv), "patient/*.rs").await,
        bad,
        "invalid_scope",
    );
    expect_error(
        c.token_with(&srv, &c.assertion(&srv), "system/*.rs openid")
            .await,
        bad,
        "invalid_scope",
    );
    expect_error(
        c.token_with(&srv, &c.assertion(&srv), "system/Patient.xyz")
            .await,
        bad,
        "invalid_scope",
    );
    expect_error(
        c.token_with(&srv, &c.assertion(&srv), "").await,
        bad,
        "invalid_request",
    );
    // Unknown client (iss = sub = an unregistered id).
    let mut claims = c.claims(&srv);
    claims["iss"] = json!("not-a-client");
    claims["sub"] = json!("not-a-client");
    expect_error(
        c.token_with(&srv, &c.key.sign(&c.header(), &claims), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // iss != sub.
    let mut claims = c.claims(&srv);
    claims["sub"] = json!("someone-else");
    expect_error(
        c.token_with(&srv, &c.key.sign(&c.header(), &claims), "system/*.rs")
            .await,
        unauthorized,
        "invalid_client",
    );
    // Not a JWT at all.
    expect_error(
        c.token_with(&srv, "garbage", "system/*.rs").await,
        unauthorized,
        "invalid_client",
    );
    // A grant this client may not use, and one nobody supports.
    let a = c.assertion(&srv);
    let form = |grant: &'static str| {
        vec![
            ("grant_type", grant.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", a.clone()),
            ("code", "x".to_owned()),
            ("redirect_uri", "https://app.example/cb".to_owned()),
        ]
    };
    let f = form("authorization_code");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    expect_error(
        srv.post_form("/oauth/token", &f).await,
        bad,
        "unauthorized_client",
    );
    let f = form("password");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    expect_error(
        srv.post_form("/oauth/token", &f).await,
        bad,
        "unsupported_grant_type",
    );
    // No grant_type; not a form; repeated parameter.
    expect_error(
        srv.post_form("/oauth/token", &[("scope", "x")]).await,
        bad,
        "invalid_request",
    );
    let resp = srv
        .http
        .post(srv.token_url())
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = srv
        .http
        .post(srv.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A confidential backend client cannot skip authentication.
    expect_error(
        srv.post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("scope", "system/*.rs"),
            ],
        )
        .await,
        unauthorized,
        "invalid_client",
    );
});

/// A public app with a code issued as the authorise page will issue it.
async fn app_client(srv: &Srv) -> String {
    oauth::create_client(
        srv.state.domain.data(),
        oauth::ClientSpec {
            name: "family-app".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            public: true,
            scope: "openid fhirUser launch/patient offline_access patient/*.rs".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .client
    .client_id
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-more-entropy";

fn challenge(verifier: &str) -> String {
    b64(&sha2::Sha256::digest(verifier.as_bytes()))
}

async fn code_for(srv: &Srv, client_id: &str, scope: &str) -> String {
    oauth::issue_authorization_code(
        &srv.state,
        &CodeRequest {
            client_id: client_id.into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: scope.into(),
            code_challenge: challenge(VERIFIER),
            subject: "account-42".into(),
            fhir_user: Some("RelatedPerson/mum".into()),
            patient: Some("child-1".into()),
        },
    )
    .await
    .unwrap()
}

async fn exchange(
    srv: &Srv,
    client_id: &str,
    code: &str,
    verifier: Option<&str>,
    redirect: &str,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client_id),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    srv.post_form("/oauth/token", &form).await
}

on_both!(authorization_code_exchange, |srv| {
    let app = app_client(&srv).await;
    let scope = "openid fhirUser launch/patient offline_access patient/*.rs";
    let cb = "https://app.example/cb";

    // Happy path: tokens with SMART context.
    let code = code_for(&srv, &app, scope).await;
    let (status, body) = exchange(&srv, &app, &code, Some(VERIFIER), cb).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["patient"], "child-1");
    assert_eq!(body["scope"], scope);
    assert!(body["refresh_token"].is_string());
    let id = jwt_part(body["id_token"].as_str().unwrap(), 1);
    assert_eq!(id["aud"], app.as_str());
    assert_eq!(id["sub"], "account-42");
    assert_eq!(id["fhirUser"], srv.url("/fhir/RelatedPerson/mum"));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let claims = oauth::verify_access_token(&srv.state, &access)
        .await
        .unwrap();
    assert_eq!(claims.patient.as_deref(), Some("child-1"));
    assert_eq!(claims.fhir_user.as_deref(), Some("RelatedPerson/mum"));
    let subject = claims.subject(|_| None, |_| None);
    assert_eq!(
        subject.identity,
        access::Identity::Family {
            person: "mum".into()
        }
    );
    assert_eq!(subject.scopes.patient.as_deref(), Some("child-1"));

    // Replay: refused, and what the first exchange issued is revoked.
    expect_error(
        exchange(&srv, &app, &code, Some(VERIFIER), cb).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, &access).await,
        Err(AuthError::Revoked)
    );
    let refresh = body["refresh_token"].as_str().unwrap();
    expect_error(
        srv.post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", &app),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // PKCE missing, PKCE wrong, redirect URI mismatch, unknown code, other client's code.
    let code = code_for(&srv, &app, scope).await;
    expect_error(
        exchange(&srv, &app, &code, None, cb).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let code = code_for(&srv, &app, scope).await;
    expect_error(
        exchange(
            &srv,
            &app,
            &code,
            Some("wrong-verifier-wrong-verifier-wrong-verifier-1234"),
            cb,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let code = code_for(&srv, &app, scope).await;
    expect_error(
        exchange(&srv, &app, &code, Some(VERIFIER), "https://app.example/cb2").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    expect_error(
        exchange(&srv, &app, "no-such-code", Some(VERIFIER), cb).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let other = app_client(&srv).await;
    let code = code_for(&srv, &app, scope).await;
    expect_error(
        exchange(&srv, &other, &code, Some(VERIFIER), cb).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    // An unknown public client id.
    expect_error(
        exchange(&srv, "nobody", &code, Some(VERIFIER), cb).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // The issuing function itself refuses what the client may not have.
    let refuse = |redirect: &str, scope: &str, ch: String| CodeRequest {
        client_id: app.clone(),
        redirect_uri: redirect.into(),
        scope: scope.into(),
        code_challenge: ch,
        subject: "s".into(),
        ..Default::default()
    };
    assert!(
        oauth::issue_authorization_code(
            &srv.state,
            &refuse("https://evil.example/cb", "openid", challenge(VERIFIER))
        )
        .await
        .is_err()
    );
    assert!(
        oauth::issue_authorization_code(
            &srv.state,
            &refuse(cb, "patient/*.cruds", challenge(VERIFIER))
        )
        .await
        .is_err()
    );
    assert!(
        oauth::issue_authorization_code(
            &srv.state,
            &refuse(cb, "system/*.rs", challenge(VERIFIER))
        )
        .await
        .is_err()
    );
    assert!(
        oauth::issue_authorization_code(&srv.state, &refuse(cb, "openid", "plain".into()))
            .await
            .is_err()
    );
});

on_both!(refresh_rotation_and_reuse, |srv| {
    let app = app_client(&srv).await;
    let code = code_for(&srv, &app, "launch/patient offline_access patient/*.rs").await;
    let (_, first) = exchange(&srv, &app, &code, Some(VERIFIER), "https://app.example/cb").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String, scope: Option<&'static str>| {
        let srv = &srv;
        let app = app.clone();
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token),
                ("client_id", app),
            ];
            if let Some(s) = scope {
                form.push(("scope", s.to_owned()));
            }
            let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            srv.post_form("/oauth/token", &f).await
        }
    };
    // Each use returns a new refresh token; narrowing the scope is allowed, widening is not.
    let (status, second) = refresh(r1.clone(), Some("patient/Observation.rs offline_access")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "patient/Observation.rs offline_access");
    assert_eq!(second["patient"], "child-1");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let (status, third) = refresh(r2.clone(), None).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let r3 = third["refresh_token"].as_str().unwrap().to_owned();
    let a3 = third["access_token"].as_str().unwrap().to_owned();
    assert!(oauth::verify_access_token(&srv.state, &a3).await.is_ok());
    let (status, fourth) = refresh(r3.clone(), Some("patient/*.cruds")).await;
    assert_eq!(fourth["error"], "invalid_scope", "{status} {fourth}");
    // A refused narrowing leaves r3 usable; reusing r1 (already rotated) is reuse.
    // Reuse of an old token revokes the whole family, and the access tokens issued with it.
    expect_error(
        refresh(r1.clone(), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, &a3).await,
        Err(AuthError::Revoked)
    );
    expect_error(
        refresh(r3, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    expect_error(
        refresh("unknown".into(), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
});

on_both!(introspect_and_revoke, |srv| {
    // Confidential clients introspect; each learns about its own tokens only.
    let web = oauth::create_client(
        srv.state.domain.data(),
        oauth::ClientSpec {
            name: "clinic-web-app".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            scope: "openid fhirUser launch/patient offline_access patient/*.rs".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let web_secret = web.client_secret.clone().unwrap();
    let web_id = web.client.client_id.clone();
    let introspect = |token: String, id: String, secret: String| {
        let srv = &srv;
        async move {
            let resp = srv
                .http
                .post(srv.url("/oauth/introspect"))
                .basic_auth(&id, Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    // A backend client (private_key_jwt) introspects its own access token.
    let c = Backend::register(&srv, ClientKey::es384(), "system/*.rs").await;
    let (_, body) = c
        .token_with(&srv, &c.assertion(&srv), "system/Patient.rs")
        .await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let own = |token: String| {
        let srv = &srv;
        let assertion = c.assertion(srv);
        async move {
            srv.post_form(
                "/oauth/introspect",
                &[
                    ("token", token.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let (status, info) = own(token.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "system/Patient.rs");
    assert_eq!(info["client_id"], c.client_id.as_str());
    // Another client's token reads as inactive: nothing about it is told.
    let (status, info) = introspect(token.clone(), web_id.clone(), web_secret.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info, json!({"active": false}));
    assert_eq!(
        introspect("rubbish".into(), web_id.clone(), web_secret.clone())
            .await
            .1,
        json!({"active": false})
    );
    // Wrong secret; a public client; no client.
    expect_error(
        introspect(token.clone(), web_id.clone(), "wrong".into()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let app = app_client(&srv).await;
    expect_error(
        srv.post_form(
            "/oauth/introspect",
            &[("token", &token), ("client_id", &app)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    expect_error(
        srv.post_form("/oauth/introspect", &[("token", &token)])
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // Revocation by the client it was issued to (authenticated by a fresh assertion).
    let (status, _) = srv
        .post_form(
            "/oauth/revoke",
            &[
                ("token", &token),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &c.assertion(&srv)),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own(token.clone()).await.1["active"], false);
    assert_eq!(
        oauth::verify_access_token(&srv.state, &token).await,
        Err(AuthError::Revoked)
    );
    // Unknown tokens: still 200.
    let (status, _) = srv
        .post_form(
            "/oauth/revoke",
            &[("token", "nothing"), ("client_id", &app)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A refresh token: introspected active by its own client (and inactive to another),
    // revoked with its family.
    let code = code_for(&srv, &web_id, "offline_access patient/*.rs launch/patient").await;
    let (status, body) = srv
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example/cb"),
                ("code_verifier", VERIFIER),
                ("client_id", &web_id),
                ("client_secret", &web_secret),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let info = introspect(refresh.clone(), web_id.clone(), web_secret.clone())
        .await
        .1;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "refresh_token");
    let (status, info) = own(refresh.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info,
        json!({"active": false}),
        "another client's refresh token"
    );
    let (status, _) = srv
        .post_form(
            "/oauth/revoke",
            &[
                ("token", &refresh),
                ("client_id", &web_id),
                ("client_secret", &web_secret),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        introspect(refresh.clone(), web_id.clone(), web_secret.clone())
            .await
            .1["active"],
        false
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, &access).await,
        Err(AuthError::Revoked)
    );
});

on_both!(verify_access_token_refusals, |srv| {
    let ring = srv.state.oauth.keys.ring();
    let (kid, key) = ring.current.clone().unwrap();
    let base = json!({
        "iss": srv.url("/fhir"), "aud": srv.url("/fhir"), "sub": "c", "client_id": "c",
        "scope": "system/*.rs", "iat": now_s(), "exp": now_s() + 60, "jti": "j-1",
    });
    let good = oauth::jwt::sign_es256(&key, &kid, &base);
    assert!(oauth::verify_access_token(&srv.state, &good).await.is_ok());
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        oauth::jwt::sign_es256(&key, &kid, &c)
    };
    assert_eq!(
        oauth::verify_access_token(&srv.state, &with("exp", json!(now_s() - 1))).await,
        Err(AuthError::Expired)
    );
    assert_eq!(
        oauth::verify_access_token(
            &srv.state,
            &with("aud", json!("https://other.example/fhir"))
        )
        .await,
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        oauth::verify_access_token(
            &srv.state,
            &with("iss", json!("https://other.example/fhir"))
        )
        .await,
        Err(AuthError::WrongIssuer)
    );
    // Bad signature: payload swapped under the original signature; a stranger's key.
    let forged: Vec<&str> = good.split('.').collect();
    let other_payload = with("scope", json!("system/*.cruds"));
    let tampered = format!(
        "{}.{}.{}",
        forged[0],
        other_payload.split('.').nth(1).unwrap(),
        forged[2]
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, &tampered).await,
        Err(AuthError::BadSignature)
    );
    let stranger = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    assert_eq!(
        oauth::verify_access_token(&srv.state, &oauth::jwt::sign_es256(&stranger, &kid, &base))
            .await,
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, &oauth::jwt::sign_es256(&stranger, "x", &base))
            .await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        oauth::verify_access_token(&srv.state, "not a token").await,
        Err(AuthError::Malformed)
    );
    srv.state
        .domain
        .data()
        .test_store()
        .oauth_revoke_access("j-1", (now_s() + 60) * 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        oauth::verify_access_token(&srv.state, &good).await,
        Err(AuthError::Revoked)
    );

    // Cost of a verification (signature + revocation lookup), printed for the record.
    let t = with("jti", json!("j-2"));
    let n = 200;
    let start = std::time::Instant::now();
    for _ in 0..n {
        oauth::verify_access_token(&srv.state, &t).await.unwrap();
    }
    let full = start.elapsed() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        oauth::verify::verify_signature(&srv.state, &t)
            .await
            .unwrap();
    }
    let signature = start.elapsed() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        srv.state
            .domain
            .data()
            .test_store()
            .oauth_is_revoked("j-2")
            .await
            .unwrap();
    }
    eprintln!(
        "verify_access_token: {full:?} each (signature {signature:?}, revocation lookup {:?})",
        start.elapsed() / n
    );
});

on_both!(key_rotation_and_discovery, |srv| {
    let c = Backend::register(&srv, ClientKey::es384(), "system/*.rs").await;
    let (_, b1) = c.token_with(&srv, &c.assertion(&srv), "system/*.rs").await;
    let t1 = b1["access_token"].as_str().unwrap().to_owned();
    let kid1 = jwt_part(&t1, 0)["kid"].as_str().unwrap().to_owned();
    let jwks = srv.get_json("/oauth/jwks").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], kid1.as_str());
    assert!(jwks["keys"][0].get("d").is_none());

    // Rotate (as the CLI does); this process reloads.
    let cfg = &srv.state.config.oauth;
    let now = passport_server::clock::now_us();
    let kid2 = oauth::rotate_signing_key(srv.state.domain.data(), cfg, now)
        .await
        .unwrap();
    srv.state
        .oauth
        .keys
        .refresh(srv.state.domain.data(), cfg, now)
        .await
        .unwrap();
    let (_, b2) = c.token_with(&srv, &c.assertion(&srv), "system/*.rs").await;
    let t2 = b2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&t2, 0)["kid"], kid2.as_str());
    assert_ne!(kid1, kid2);
    let kids: Vec<String> = srv.get_json("/oauth/jwks").await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, [kid2.clone(), kid1.clone()]);
    // The old key's tokens stay valid until they expire.
    assert!(oauth::verify_access_token(&srv.state, &t1).await.is_ok());
    assert!(oauth::verify_access_token(&srv.state, &t2).await.is_ok());
    // Once every token the old key signed has expired, it is no longer published.
    let later = now + cfg.access_token_lifetime.as_micros() as i64 + 120_000_000;
    srv.state
        .oauth
        .keys
        .refresh(srv.state.domain.data(), cfg, later)
        .await
        .unwrap();
    let ring = srv.state.oauth.keys.ring();
    assert!(ring.verifiers.contains_key(&kid2) && !ring.verifiers.contains_key(&kid1));

    // Discovery.
    let smart = srv.get_json("/fhir/.well-known/smart-configuration").await;
    assert_eq!(smart["issuer"], srv.url("/fhir"));
    assert_eq!(smart["jwks_uri"], srv.url("/oauth/jwks"));
    assert_eq!(smart["token_endpoint"], srv.token_url());
    assert_eq!(smart["authorization_endpoint"], srv.url("/oauth/authorize"));
    assert_eq!(
        smart["introspection_endpoint"],
        srv.url("/oauth/introspect")
    );
    assert_eq!(smart["revocation_endpoint"], srv.url("/oauth/revoke"));
    assert_eq!(smart["code_challenge_methods_supported"], json!(["S256"]));
    for cap in [
        "launch-ehr",
        "client-confidential-asymmetric",
        "permission-v2",
        "context-standalone-patient",
    ] {
        assert!(
            smart["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == cap),
            "{cap}"
        );
    }
    assert!(
        smart["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "private_key_jwt")
    );
    let oidc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc["issuer"], srv.url("/fhir"));
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let cap = srv.get_json("/fhir/metadata").await;
    let security = &cap["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = &security["extension"][0];
    assert_eq!(
        uris["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert!(
        uris["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"] == "token" && e["valueUri"] == srv.token_url().as_str())
    );
});

/// A real third-party client library: Python Authlib (`private_key_jwt`) fetches a
/// backend-services token. Skipped with a message when Authlib is missing, except under CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_backend_services() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with authlib and requests is required under CI (see .ci/run)");
        }
        eprintln!("authlib_backend_services SKIPPED: python3 -c 'import authlib' failed");
        return;
    }
    let srv = Srv::start(common::Backend::Sqlite).await.unwrap();
    let key = ClientKey::es384();
    let c = Backend::register(&srv, key, "system/*.rs").await;
    let ClientKey::Es384(sk) = &c.key else {
        unreachable!()
    };
    let mut private = c.key.jwk(&c.kid);
    private["d"] = json!(b64(&sk.to_bytes()));
    let dir = std::env::temp_dir().join(format!("passport-authlib-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwk_file = dir.join("client.jwk");
    std::fs::write(&jwk_file, private.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/clients/authlib_backend_services.py");
    let token_url = srv.token_url();
    let client_id = c.client_id.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .args([
                token_url.as_str(),
                client_id.as_str(),
                jwk_file.to_str().unwrap(),
                "system/Patient.rs",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "authlib script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = &result["token"];
    assert_eq!(token["token_type"], "Bearer", "{result}");
    assert_eq!(token["scope"], "system/Patient.rs");
    let claims = oauth::verify_access_token(&srv.state, token["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.client_id, c.client_id);
    // Authlib's default assertion lifetime (an hour) is refused: SMART allows five minutes.
    assert_eq!(
        result["default_lifetime_error"], "invalid_client",
        "{result}"
    );
    srv.shutdown().await;
}

// Every endpoint of the authorisation server's route table: the discovery documents are
// public JSON; the others refuse a request without client authentication with an OAuth
// error (400/401, JSON `error`, `Cache-Control: no-store`), never a 5xx or a page. The
// table is iterated, so a new endpoint is covered without editing this test.
on_both!(every_oauth_endpoint_answers_as_oauth, |srv| {
    let table = oauth::table();
    assert!(table.len() >= 6, "{} endpoints", table.len());
    for r in table {
        if r.public {
            assert_eq!(r.method, reqwest::Method::GET, "{}", r.path);
            let doc = srv.get_json(r.path).await;
            assert!(doc.is_object(), "{}: {doc}", r.path);
            continue;
        }
        assert_eq!(r.method, reqwest::Method::POST, "{}", r.path);
        let (status, body) = srv.post_form(r.path, &[("token", "x")]).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{}: {status} {body}",
            r.path
        );
        assert!(body["error"].is_string(), "{}: {body}", r.path);
    }
});

// Redirect (and launch) URIs: https anywhere, plain http to this machine only (a native
// app's loopback redirect); elsewhere http would carry codes across the network in clear.
on_both!(plain_http_redirects_only_to_loopback, |srv| {
    let register = |redirect: &str, launch: Option<&str>| {
        let data = srv.state.domain.data();
        let spec = oauth::ClientSpec {
            name: "redirects".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![redirect.to_owned()],
            public: true,
            scope: "openid launch/patient patient/*.rs".into(),
            launch_uri: launch.map(str::to_owned),
            ..Default::default()
        };
        async move { oauth::create_client(data, spec).await.map(|_| ()) }
    };
    for ok in [
        "https://app.example/cb",
        "http://127.0.0.1:8765/cb",
        "http://127.9.9.9/cb",
        "http://localhost:3000/cb",
        "http://[::1]:9000/cb",
    ] {
        register(ok, None)
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for refused in [
        "http://app.example/cb",
        "http://10.0.0.7/cb",
        "http://localhost.app.example/cb",
        "http://127.0.0.1.nip.io/cb",
    ] {
        let e = register(refused, None).await.expect_err(refused);
        assert!(
            e.contains("plain http only to this machine"),
            "{refused}: {e}"
        );
    }
    let e = register("https://app.example/cb", Some("http://app.example/launch"))
        .await
        .expect_err("http launch URI");
    assert!(e.contains("launch URI"), "{e}");
});
