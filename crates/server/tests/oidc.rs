//! Sign-in with external OpenID Connect providers, end to end: starts a REAL provider
//! (`node tests/oidc/provider.mjs`, the npm `oidc-provider` package, offline) and the real
//! server configured with two providers — a generic one for staff (client_secret_basic)
//! and an NHS-login-like one for families (private_key_jwt, P9/P5 claims, userinfo) — then
//! drives the authorization-code flow over HTTP as a browser would: our sign-in page, the
//! provider's /auth, its login and consent forms, our callback, the signed-in home page.
//!
//! Without Node or `npm ci` in tests/oidc it prints "oidc tests skipped: …" and passes —
//! unless `CI=true`. ID-token checks that a well-behaved provider cannot be made to break
//! (another issuer, expiry, a forged signature) are unit tests in `web::oidc`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use access::{Role, Sector};
use passport_server::web::directory;
use passport_server::web::oidc::{Audience, ClientAuth, ProviderConfig, ProviderKind};
use passport_server::{Config, Running};
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn missing() -> Option<String> {
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    let dir = "tests/oidc/node_modules/oidc-provider";
    if !repo().join(dir).exists() {
        return Some(format!("{dir} missing (run `npm ci` in tests/oidc)"));
    }
    None
}

/// The Node provider; killed when dropped.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_idp(fixture: &Value) -> Idp {
    let mut child = Command::new("node")
        .arg("tests/oidc/provider.mjs")
        .arg(fixture.to_string())
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the provider prints its issuer");
    let issuer = serde_json::from_str::<Value>(&line).expect("a JSON line")["issuer"]
        .as_str()
        .expect("issuer")
        .to_owned();
    Idp { child, issuer }
}

/// A browser, minimally: cookies per host:port (path ignored), no automatic redirects.
struct Browser {
    client: Client,
    jar: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    fn origin(url: &Url) -> String {
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(80))
    }

    fn cookie_header(&self, url: &Url) -> String {
        self.jar
            .get(&Self::origin(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn store(&mut self, url: &Url, resp: &Response) {
        let jar = self.jar.entry(Self::origin(url)).or_default();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> Response {
        let url = Url::parse(url).unwrap();
        let resp = self
            .client
            .get(url.clone())
            .header("cookie", self.cookie_header(&url))
            .send()
            .await
            .unwrap();
        self.store(&url, &resp);
        resp
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let url = Url::parse(url).unwrap();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(url.clone())
            .header("cookie", self.cookie_header(&url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.store(&url, &resp);
        resp
    }
}

fn location(resp: &Response) -> String {
    let base = resp.url().clone();
    let to = resp.headers()["location"].to_str().unwrap();
    base.join(to).unwrap().to_string()
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("a CSRF field")
        + 25;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

struct World {
    idp: Idp,
    server: Option<Running>,
    base: String,
    store: std::sync::Arc<passport_server::Domain>,
    _dir: PathBuf,
}

const PASSWORD: &str = "correct horse battery staple";

async fn world() -> World {
    let dir = std::env::temp_dir().join(format!("passport-oidc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // Our client key for private_key_jwt (NHS login style).
    let key = loop {
        let mut d = [0u8; 32];
        getrandom::fill(&mut d).unwrap();
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&d) {
            break k;
        }
    };
    let mut public = passport_server::oauth::jwt::es256_public_jwk(key.verifying_key());
    public["kid"] = json!("passport-test");
    let mut private = public.clone();
    private["d"] = json!(passport_server::oauth::jwt::b64(&key.to_bytes()));
    let key_file = dir.join("nhs-client.jwk");
    std::fs::write(&key_file, private.to_string()).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let fixture = json!({
        "clients": [
            { "client_id": "passport-staff", "client_secret": "staff-secret",
              "redirect_uris": [format!("{base}/signin/oidc/keycloak/callback")],
              "token_endpoint_auth_method": "client_secret_basic",
              "grant_types": ["authorization_code"], "response_types": ["code"] },
            { "client_id": "passport-nhs",
              "redirect_uris": [format!("{base}/signin/oidc/nhs/callback")],
              "token_endpoint_auth_method": "private_key_jwt",
              "token_endpoint_auth_signing_alg": "ES256",
              "jwks": { "keys": [public] },
              "grant_types": ["authorization_code"], "response_types": ["code"] }
        ],
        "users": {
            "ada": { "email": "ada@example.nhs.uk", "email_verified": true, "name": "Ada C" },
            "sam": { "email": "sam@example.com", "email_verified": true, "name": "Sam P",
                     "identity_proofing_level": "P9", "nhs_number": "9000000009" },
            "pat": { "email": "pat@example.com", "email_verified": true, "name": "Pat P",
                     "identity_proofing_level": "P5", "nhs_number": "9000000017" },
            "unverified": { "email": "sam@example.com", "email_verified": false,
                            "identity_proofing_level": "P9" }
        }
    });
    let idp = tokio::task::spawn_blocking(move || start_idp(&fixture))
        .await
        .unwrap();

    let database_url = format!("sqlite://{}/passport.db", dir.display());
    let mut config = Config::new(format!("127.0.0.1:{port}").parse().unwrap(), &database_url);
    config.oidc_providers = vec![
        ProviderConfig {
            name: "keycloak".into(),
            label: Some("Keycloak".into()),
            kind: ProviderKind::Generic,
            issuer: idp.issuer.clone(),
            client_id: "passport-staff".into(),
            client_auth: ClientAuth::ClientSecretBasic {
                secret: "staff-secret".into(),
            },
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            audience: Audience::Staff,
            link_by_verified_email: true,
            userinfo: false,
            extra_auth_params: HashMap::new(),
        },
        ProviderConfig {
            name: "nhs".into(),
            label: Some("NHS login".into()),
            kind: ProviderKind::NhsLogin,
            issuer: idp.issuer.clone(),
            client_id: "passport-nhs".into(),
            client_auth: ClientAuth::PrivateKeyJwt { key_file },
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            audience: Audience::Family,
            link_by_verified_email: true,
            userinfo: true,
            extra_auth_params: HashMap::new(),
        },
    ];
    passport_server::web::oidc::check_providers(&config.oidc_providers).unwrap();
    let server = passport_server::start(config, false).await.unwrap();

    let store = passport_server::Domain::open(domain::Settings::admin(
        &database_url,
        "https://passport.test",
    ))
    .await
    .unwrap();
    let org = directory::create_organisation(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewOrganisation {
            name: "Riverside Children's Hospital".into(),
            sector: Sector::HospitalTrust,
            ods: Some("RXX".into()),
            school_urn: None,
            region: "North".into(),
        },
    )
    .await
    .unwrap();
    directory::create_staff(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewStaff {
            organisation: org,
            role: Role::Clinician,
            email: "ada@example.nhs.uk".into(),
            name: "Ada Clinician".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    for (email, name) in [
        ("sam@example.com", "Sam Parent"),
        ("pat@example.com", "Pat Parent"),
    ] {
        directory::create_family(
            &store,
            &passport_server::records::Agent::operator("test fixture"),
            directory::NewFamily {
                email: email.into(),
                name: name.into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    }
    World {
        idp,
        server: Some(server),
        base,
        store,
        _dir: dir,
    }
}

impl World {
    /// Our sign-in page, then the provider's button: the provider's authorisation URL.
    async fn begin(&self, b: &mut Browser, provider: &str, label: &str) -> String {
        let page = b.get(&format!("{}/sign-in", self.base)).await;
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("Sign in with {label}")), "{html}");
        assert!(html.contains(&format!("action=\"/signin/oidc/{provider}\"")));
        let csrf = csrf_of(&html);
        let resp = b
            .post(
                &format!("{}/signin/oidc/{provider}", self.base),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = location(&resp);
        assert!(to.starts_with(&self.idp.issuer), "{to}");
        for p in [
            "code_challenge_method=S256",
            "code_challenge=",
            "nonce=",
            "state=",
        ] {
            assert!(to.contains(p), "{to} lacks {p}");
        }
        to
    }

    /// At the provider: follows redirects and fills the login and consent forms, until
    /// the provider sends the browser back to us; returns that callback URL.
    async fn at_provider(&self, b: &mut Browser, auth_url: &str, user: &str) -> String {
        let mut url = auth_url.to_owned();
        for _ in 0..20 {
            if url.starts_with(&self.base) {
                return url;
            }
            let resp = b.get(&url).await;
            if resp.status().is_redirection() {
                url = location(&resp);
                continue;
            }
            assert_eq!(resp.status(), StatusCode::OK, "{url}");
            let html = resp.text().await.unwrap();
            let path = Url::parse(&url).unwrap().path().to_owned();
            let resp = if html.contains("/login\"") {
                b.post(
                    &format!("{}{path}/login", self.idp.issuer),
                    &[("login", user), ("password", "test")],
                )
                .await
            } else if html.contains("/confirm\"") {
                b.post(&format!("{}{path}/confirm", self.idp.issuer), &[])
                    .await
            } else {
                panic!("unexpected provider page at {url}: {html}");
            };
            assert!(resp.status().is_redirection(), "{}", resp.status());
            url = location(&resp);
        }
        panic!("the provider never sent us back");
    }

    /// The whole flow; returns our callback's response.
    async fn sign_in(
        &self,
        b: &mut Browser,
        provider: &str,
        label: &str,
        user: &str,
    ) -> (StatusCode, String) {
        let auth = self.begin(b, provider, label).await;
        let back = self.at_provider(b, &auth, user).await;
        let resp = b.get(&back).await;
        (resp.status(), resp.text().await.unwrap())
    }

    async fn home(&self, b: &mut Browser) -> (StatusCode, String) {
        let resp = b.get(&format!("{}/", self.base)).await;
        (resp.status(), resp.text().await.unwrap())
    }

    async fn stop(mut self) {
        self.store.close().await;
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut u = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_real_openid_provider() {
    if let Some(why) = missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("oidc tests cannot run under CI: {why}");
        }
        eprintln!("oidc tests skipped: {why}");
        return;
    }
    let w = world().await;

    // Generic provider, staff: linked by verified email, signed in, home page names them.
    let mut b = Browser::new();
    let (status, html) = w.sign_in(&mut b, "keycloak", "Keycloak", "ada").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("You are signed in"), "{html}");
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(
        b.jar[&Browser::origin(&Url::parse(&w.base).unwrap())].contains_key("passport_session")
    );
    let (status, home) = w.home(&mut b).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("Ada Clinician"), "{home}");
    assert!(home.contains("Clinician, Riverside"), "{home}");
    assert!(
        w.store
            .data()
            .test_store()
            .external_identity("keycloak", "ada")
            .await
            .unwrap()
            .is_some()
    );
    // Again (signed out of Passport, still signed in at the provider): by the stored link.
    b.jar
        .remove(&Browser::origin(&Url::parse(&w.base).unwrap()));
    let (status, html) = w.sign_in(&mut b, "keycloak", "Keycloak", "ada").await;
    assert_eq!(status, StatusCode::OK, "{html}");

    // NHS login, P9: family member, family data allowed; the NHS number is recorded as the
    // adult's own.
    let mut b = Browser::new();
    let (status, html) = w.sign_in(&mut b, "nhs", "NHS login", "sam").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("no-child-access"), "{html}");
    let (_, home) = w.home(&mut b).await;
    assert!(
        home.contains("Sam Parent") && home.contains("family member"),
        "{home}"
    );
    assert!(!home.contains("no-child-access"), "{home}");
    let link = w
        .store
        .data()
        .test_store()
        .external_identity("nhs", "sam")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.nhs_number.as_deref(), Some("9000000009"));
    assert_eq!(link.identity_level.as_deref(), Some("P9"));
    let sam = w
        .store
        .data()
        .test_store()
        .account_by_login("sam@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.account_id, sam.id);

    // NHS login, P5: signed in, but told there is no access to any child's data.
    let mut b = Browser::new();
    let (status, html) = w.sign_in(&mut b, "nhs", "NHS login", "pat").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("no-child-access"), "{html}");
    assert!(html.contains("P9"));
    let (status, home) = w.home(&mut b).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        home.contains("Pat Parent") && home.contains("no-child-access"),
        "{home}"
    );

    // An unverified email does not link to an existing account.
    let mut b = Browser::new();
    let (status, html) = w.sign_in(&mut b, "nhs", "NHS login", "unverified").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(
        html.contains("not connected to a Passport account"),
        "{html}"
    );
    assert!(
        w.store
            .data()
            .test_store()
            .external_identity("nhs", "unverified")
            .await
            .unwrap()
            .is_none()
    );

    // A wrong state is refused (and the right one, once used, cannot be replayed).
    let mut b = Browser::new();
    let auth = w.begin(&mut b, "keycloak", "Keycloak").await;
    let back = w.at_provider(&mut b, &auth, "ada").await;
    let (status, html) = {
        let r = b.get(&replace_param(&back, "state", "not-the-state")).await;
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("This sign-in cannot be used"));
    assert_eq!(b.get(&back).await.status(), StatusCode::OK);
    assert_eq!(b.get(&back).await.status(), StatusCode::BAD_REQUEST);

    // Another browser cannot complete a sign-in started in this one.
    let mut b = Browser::new();
    let auth = w.begin(&mut b, "keycloak", "Keycloak").await;
    let back = w.at_provider(&mut b, &auth, "ada").await;
    let mut other = Browser::new();
    assert_eq!(other.get(&back).await.status(), StatusCode::BAD_REQUEST);

    // A nonce other than ours (the authorisation request altered on its way): the ID token
    // carries the provider's nonce, which is not the one we stored.
    let mut b = Browser::new();
    let auth = w.begin(&mut b, "keycloak", "Keycloak").await;
    let auth = replace_param(&auth, "nonce", "attacker-chosen-nonce");
    let back = w.at_provider(&mut b, &auth, "ada").await;
    let resp = b.get(&back).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(html.contains("could not be accepted"), "{html}");
    assert!(
        !b.jar[&Browser::origin(&Url::parse(&w.base).unwrap())].contains_key("passport_session")
    );

    // The sign-in button's form needs the CSRF token.
    let mut b = Browser::new();
    b.get(&format!("{}/sign-in", w.base)).await;
    let resp = b
        .post(
            &format!("{}/signin/oidc/keycloak", w.base),
            &[("csrf_token", "x")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    w.stop().await;
}
