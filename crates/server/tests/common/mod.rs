//! The integration-test harness: starts the real server on a free port against a fresh
//! SQLite file or a fresh PostgreSQL schema, and talks HTTP to it.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod browser;
pub mod mail;
pub mod passport;

use std::path::PathBuf;

use passport_server::{Config, Running};
pub use reqwest::{Client, Response, StatusCode};
#[allow(unused_imports)]
pub use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    /// Sends the harness's access token on every request (a trusted regional client:
    /// every child, every label). Tests of access control build their own clients.
    pub client: Client,
    /// The same client without any token.
    pub anonymous: Client,
    /// The access token `client` sends.
    pub token: String,
    pub state: std::sync::Arc<passport_server::AppState>,
    pub database_url: String,
    running: Option<Running>,
    dir: Option<PathBuf>,
}

/// A fresh database URL for `backend`, or `None` when PostgreSQL is unavailable outside CI
/// (the store's test helper prints that the PostgreSQL suite was skipped; under `CI=true`
/// it fails instead).
pub fn fresh_database(backend: Backend) -> Option<(String, Option<PathBuf>)> {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("passport-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Some((format!("sqlite://{}/passport.db", dir.display()), Some(dir)))
        }
        Backend::Postgres => passport_store::testing::fresh_pg_url().map(|u| (u, None)),
    }
}

pub async fn spawn(backend: Backend) -> Option<TestServer> {
    spawn_with(backend, |_| {}).await
}

/// [`spawn`] with changes to the configuration (e.g. the SMTP server, rate limits).
pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
    let (url, dir) = fresh_database(backend)?;
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), url);
    tweak(&mut config);
    Some(spawn_config(config, dir).await)
}

/// Starts a server on an existing database (e.g. to restart on the same one).
pub async fn spawn_on(
    database_url: String,
    dir: Option<PathBuf>,
    max_body: Option<usize>,
) -> TestServer {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), database_url);
    if let Some(m) = max_body {
        config.max_body_bytes = m;
    }
    spawn_config(config, dir).await
}

/// Starts a server in demo mode (`passport serve --demo`) on an existing database.
pub async fn spawn_demo_on(database_url: String) -> TestServer {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), database_url);
    config.demo = true;
    spawn_config(config, None).await
}

async fn spawn_config(config: Config, dir: Option<PathBuf>) -> TestServer {
    let database_url = config.database_url.clone();
    let running = passport_server::start(config, false)
        .await
        .expect("server starts");
    let anonymous = Client::new();
    let token = regional_token(&running, &anonymous).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    TestServer {
        base: running.base_url.clone(),
        client: Client::builder().default_headers(headers).build().unwrap(),
        anonymous,
        token,
        state: running.state.clone(),
        database_url,
        running: Some(running),
        dir,
    }
}

/// An access token for a newly registered regional client, by the real
/// `client_credentials` grant at the token endpoint.
pub async fn regional_token(running: &Running, http: &Client) -> String {
    let (id, secret) = passport_server::register_regional_client(&running.state, "test-harness")
        .await
        .expect("client registered");
    client_credentials(&running.base_url, http, &id, &secret, "system/*.cruds").await
}

/// `client_credentials` with `client_secret_basic`; panics unless a token comes back.
pub async fn client_credentials(
    base: &str,
    http: &Client,
    id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let resp = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .expect("token request");
    let status = resp.status();
    let body: Value = resp.json().await.expect("token JSON");
    assert_eq!(status, StatusCode::OK, "token endpoint: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

impl TestServer {
    /// The FHIR base URL (`aud` of this server's tokens, `iss` of its launches).
    pub fn fhir_base(&self) -> String {
        format!("{}/fhir", self.base)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops gracefully, keeping the database (returns its URL and folder for a restart).
    pub async fn stop(mut self) -> (String, Option<PathBuf>) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        (self.database_url.clone(), self.dir.take())
    }

    pub async fn get(&self, path: &str) -> Response {
        checked(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(reqwest::Method::POST, path, body, &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(reqwest::Method::PUT, path, body, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        checked(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    /// Sends `body` as `application/fhir+json` with extra headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        checked(req.send().await.expect("request")).await
    }

    /// Sends a raw text body with an optional content type and extra headers.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        checked(req.send().await.expect("request")).await
    }

    /// Creates `resource` and returns its id (asserting 201).
    pub async fn create(&self, resource: &Value) -> String {
        let t = resource["resourceType"].as_str().unwrap();
        let resp = self.post(&format!("/fhir/{t}"), resource).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "create {t}: {}",
            resp.text().await.unwrap()
        );
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reads a response as JSON, asserting the FHIR media type.
pub async fn json_body(resp: Response) -> Value {
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        ct.as_deref()
            .is_some_and(|c| c.starts_with("application/fhir+json")),
        "content type was {ct:?}"
    );
    let body: Value = resp.json().await.expect("JSON body");
    assert_fhir_json(&body);
    body
}

/// Asserts `resp` has `status` and an OperationOutcome body; returns the outcome.
pub async fn expect_outcome(resp: Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status, "unexpected status");
    let body = json_body(resp).await;
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert!(
        body["issue"].as_array().is_some_and(|a| !a.is_empty()),
        "{body}"
    );
    body
}

/// All `issue.expression` values of an OperationOutcome.
pub fn expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}

pub fn etag(resp: &Response) -> String {
    resp.headers()
        .get("etag")
        .expect("ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The example corpus in the repository (`testdata/fhir-examples`).
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fhir-examples")
}

/// Defines one test per backend: `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, |$srv:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $srv = common::spawn(common::Backend::Sqlite)
                    .await
                    .expect("sqlite");
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($srv) = common::spawn(common::Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

/// Where `v` has an empty array, object or string (by JSON path). FHIR JSON has none: an
/// element is either absent or has content (R4 §2.6.2, "JSON Representation").
pub fn fhir_json_faults(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &mut String, out: &mut Vec<String>) {
        let len = path.len();
        match v {
            Value::Array(a) if a.is_empty() => out.push(format!("{path}: []")),
            Value::Object(o) if o.is_empty() => out.push(format!("{path}: {{}}")),
            Value::String(s) if s.is_empty() => out.push(format!("{path}: \"\"")),
            Value::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    walk(item, path, out);
                    path.truncate(len);
                }
            }
            Value::Object(o) => {
                for (k, item) in o {
                    path.push('.');
                    path.push_str(k);
                    walk(item, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::from("$"), &mut out);
    out
}

/// Asserts `v` is FHIR JSON without empty arrays, objects or strings.
#[track_caller]
pub fn assert_fhir_json(v: &Value) {
    let faults = fhir_json_faults(v);
    assert!(
        faults.is_empty(),
        "FHIR JSON may not have empty arrays, objects or strings: {} in {v}",
        faults.join(", ")
    );
}

/// `resp`, after checking its body when it is FHIR JSON ([`assert_fhir_json`]). Every
/// response the harness's request helpers return passes through here, so every suite
/// that uses them (api.rs, search.rs, bundles.rs, …) checks every FHIR body it gets.
pub async fn checked(resp: Response) -> Response {
    let fhir = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/fhir+json"));
    if !fhir {
        return resp;
    }
    let status = resp.status();
    let version = resp.version();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("response body");
    if !bytes.is_empty() {
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("a FHIR JSON body that is not JSON ({e})"));
        assert_fhir_json(&v);
    }
    let mut rebuilt = axum::http::Response::new(bytes);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Response::from(rebuilt)
}

/// The PKCE verifier and redirect URI the token helpers below use.
pub const PKCE_VERIFIER: &str = "a-verifier-long-enough-for-pkce-0123456789-abcdefgh";
pub const APP_REDIRECT: &str = "https://app.example/cb";

/// The S256 challenge of [`PKCE_VERIFIER`].
pub fn pkce_challenge() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(PKCE_VERIFIER))
}

/// A backend client of `org` with `scope`, and its access token by `client_credentials`.
pub async fn system_token(srv: &TestServer, org: &str, scope: &str) -> String {
    use passport_server::oauth;
    let made = oauth::create_client(
        srv.state.domain.data(),
        oauth::ClientSpec {
            name: "org system".into(),
            grant_types: vec!["client_credentials".into()],
            scope: scope.into(),
            organisation_id: Some(org.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    client_credentials(
        &srv.base,
        &srv.anonymous,
        &made.client.client_id,
        &made.client_secret.unwrap(),
        scope,
    )
    .await
}

/// A user's access token by the real code exchange (after what the approval page does):
/// `account` signs in as `fhir_user` and approves `scope` for a public app.
pub async fn user_token(srv: &TestServer, account: &str, fhir_user: &str, scope: &str) -> String {
    use passport_server::oauth::{self, CodeRequest};
    let app = oauth::create_client(
        srv.state.domain.data(),
        oauth::ClientSpec {
            name: "app".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![APP_REDIRECT.into()],
            public: true,
            scope: scope.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .client
    .client_id;
    let code = oauth::issue_authorization_code(
        &srv.state,
        &CodeRequest {
            client_id: app.clone(),
            redirect_uri: APP_REDIRECT.into(),
            scope: scope.into(),
            code_challenge: pkce_challenge(),
            subject: account.into(),
            fhir_user: Some(fhir_user.into()),
            patient: None,
        },
    )
    .await
    .unwrap();
    let resp = srv
        .anonymous
        .post(srv.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP_REDIRECT),
            ("client_id", &app),
            ("code_verifier", PKCE_VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().expect("token").to_owned()
}

/// An organisation in the region "north" (the directory's own create).
pub async fn organisation(srv: &TestServer, name: &str, sector: access::Sector) -> String {
    use passport_server::web::directory::{self, NewOrganisation};
    directory::create_organisation(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewOrganisation {
            name: name.into(),
            sector,
            ods: None,
            school_urn: None,
            region: "north".into(),
        },
    )
    .await
    .unwrap()
}

/// Links `person` to each of `kids` as a mother with parental responsibility.
pub async fn link_parent(srv: &TestServer, person: &str, kids: &[&str]) {
    let mut links = Vec::new();
    for kid in kids {
        let rp = srv
            .create(&json!({
                "resourceType": "RelatedPerson", "active": true,
                "patient": {"reference": format!("Patient/{kid}")},
                "extension": [{"url": "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility", "valueBoolean": true}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}]
            }))
            .await;
        links.push(json!({"target": {"reference": format!("RelatedPerson/{rp}")}}));
    }
    let mut p: Value = srv
        .get(&format!("/fhir/Person/{person}"))
        .await
        .json()
        .await
        .unwrap();
    p["link"] = Value::Array(links);
    let r = srv.put(&format!("/fhir/Person/{person}"), &p).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The agent of the writes a test sets up (its AuditEvents name the test fixture).
pub fn fixture() -> passport_server::records::Agent {
    passport_server::records::Agent::operator("test fixture")
}

/// The base URL that fixture writes made without a server (`Records::elsewhere`) give as
/// their AuditEvents' observer.
pub const FIXTURE_BASE: &str = "https://passport.test";
