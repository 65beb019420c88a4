//! How the bench authenticates, the way an operator's integration would.
//!
//! * **FHIR API.** The real CLI registers a trusted regional OAuth client
//!   (`passport admin create-client … --regional --cleared …`, see [`register_client`]); the
//!   bench then gets an access token with a real `POST /oauth/token` (`client_credentials`,
//!   HTTP Basic client authentication) and sends `Authorization: Bearer …` on every
//!   `/fhir` request. Tokens live 15 minutes: [`Auth`] fetches a fresh one before each phase
//!   and whenever the one in use is older than [`REFRESH_AFTER`], so long loads never meet a
//!   401.
//! * **Real users' tokens** (the search-visibility workloads): system clients acting for
//!   one organisation (`create-client --organisation ID`, `client_credentials`), and a family
//!   member's user token by the SMART authorization-code flow with PKCE over HTTP, as a
//!   browser and an app do it: sign in with the password form, load `GET
//!   /oauth/authorize` (the approval page), post "Allow" with the session's CSRF token,
//!   follow the 303 to the app's redirect URI and exchange the code at `POST /oauth/token`
//!   (see [`UserFlow`]).
//! * **Web sign-in.** The real CLI creates the accounts (`passport admin create-org`,
//!   `create-user --password-stdin`, see [`create_accounts`]); the `sign-in` workloads post
//!   the sign-in form with the anonymous CSRF token (double submit: the `passport_csrf`
//!   cookie from `GET /sign-in` and the same value as the `csrf_token` field).

use crate::http::{self, Client, Response};
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The OAuth client's name (`client_name`).
pub const CLIENT_NAME: &str = "passport-bench";
/// The scope the client is registered with and asks for.
pub const SCOPE: &str = "system/*.cruds";
/// Every security label, so that the regional client sees every synthetic resource.
pub const CLEARED: [&str; 5] = [
    "safeguarding",
    "social-care",
    "sexual-health",
    "mental-health",
    "restricted",
];
/// A token older than this is replaced before its next use (the server's tokens live 15
/// minutes; a shorter `expires_in` shortens this to two thirds of it).
pub const REFRESH_AFTER: Duration = Duration::from_secs(600);
/// The content type of the token request and of the sign-in form.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The anonymous CSRF cookie and the session cookie of the web pages.
pub const CSRF_COOKIE: &str = "passport_csrf";
pub const SESSION_COOKIE: &str = "passport_session";

/// An OAuth client's id and secret, as `passport admin create-client` prints them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

/// Runs `bin args…` (with `stdin` on its standard input) and returns its standard output;
/// on failure, an error naming the command, its exit status and its standard error.
fn run_cli(bin: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let shown = {
        let mut words = vec![bin.display().to_string()];
        let mut after_database = false;
        for a in args {
            // The database URL may hold a password.
            words.push(if after_database {
                crate::redact(a)
            } else if a.contains(' ') || a.contains('*') {
                format!("{a:?}")
            } else {
                (*a).to_owned()
            });
            after_database = *a == "--database";
        }
        words.join(" ")
    };
    let mut child = Command::new(bin)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{text}\n").as_bytes())
            .map_err(|e| format!("`{shown}`: cannot write its standard input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{shown}` failed ({}); its standard error:\n{}",
            out.status,
            stderr.trim_end()
        ));
    }
    Ok(stdout)
}

async fn run_cli_async(
    bin: &Path,
    args: Vec<String>,
    stdin: Option<String>,
) -> Result<String, String> {
    let bin = bin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&bin, &args, stdin.as_deref())
    })
    .await
    .map_err(|e| format!("CLI runner panicked: {e}"))?
}

/// The first JSON object in `text` (the CLI prints it pretty, on standard output).
fn first_json_object(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// Registers the bench's OAuth client with `passport admin create-client`: a trusted
/// regional integration (every child's record) cleared for every security label,
/// `client_credentials` with scope [`SCOPE`].
pub async fn register_client(bin: &Path, database: &str) -> Result<Credentials, String> {
    let mut args: Vec<String> = ["--regional"].map(str::to_owned).to_vec();
    for label in CLEARED {
        args.extend(["--cleared".to_owned(), label.to_owned()]);
    }
    create_client(
        bin,
        database,
        CLIENT_NAME,
        "client_credentials",
        SCOPE,
        args,
    )
    .await
}

/// The scope of the organisations' system clients (read and search only).
pub const ORG_SCOPE: &str = "system/*.rs";

/// Registers a `client_credentials` client acting for organisation `org` (`create-client
/// --organisation ORG`, scope [`ORG_SCOPE`], no security labels): it reaches the children
/// whose care team names that organisation, and sees what its sector sees.
pub async fn register_org_client(
    bin: &Path,
    database: &str,
    name: &str,
    org: &str,
) -> Result<Credentials, String> {
    let args = vec!["--organisation".to_owned(), org.to_owned()];
    create_client(bin, database, name, "client_credentials", ORG_SCOPE, args).await
}

/// The redirect URI of the bench's SMART app (never followed: the code is read from the
/// `Location` of the approval's 303).
pub const APP_REDIRECT: &str = "http://127.0.0.1/passport-bench/callback";
/// The scope the SMART app asks for on behalf of a user.
pub const USER_SCOPE: &str = "openid fhirUser user/*.rs";

/// Registers the bench's SMART app: a public client (PKCE only), `authorization_code`,
/// redirect URI [`APP_REDIRECT`], scope [`USER_SCOPE`]. Returns its `client_id`.
pub async fn register_app(bin: &Path, database: &str) -> Result<String, String> {
    let args = vec![
        "--public".to_owned(),
        "--redirect-uri".to_owned(),
        APP_REDIRECT.to_owned(),
    ];
    let name = format!("{CLIENT_NAME}-app");
    let out = run_cli_async(
        bin,
        client_args(database, &name, "authorization_code", USER_SCOPE, args),
        None,
    )
    .await?;
    let v = first_json_object(&out)
        .ok_or_else(|| format!("`passport admin create-client` printed no JSON object:\n{out}"))?;
    v["client_id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("`passport admin create-client` printed no client_id:\n{out}"))
}

fn client_args(
    database: &str,
    name: &str,
    grant: &str,
    scope: &str,
    extra: Vec<String>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "admin",
        "create-client",
        "--database",
        database,
        "--name",
        name,
        "--grant",
        grant,
        "--scope",
        scope,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra);
    args
}

async fn create_client(
    bin: &Path,
    database: &str,
    name: &str,
    grant: &str,
    scope: &str,
    extra: Vec<String>,
) -> Result<Credentials, String> {
    let out = run_cli_async(bin, client_args(database, name, grant, scope, extra), None).await?;
    let v = first_json_object(&out)
        .ok_or_else(|| format!("`passport admin create-client` printed no JSON object:\n{out}"))?;
    let field = |k: &str| {
        v[k].as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("`passport admin create-client` printed no {k}:\n{out}"))
    };
    Ok(Credentials {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
    })
}

/// Builds a region with `passport admin seed-region` (the fixture the tests and the demo
/// use too) from `spec` (the JSON shape of `domain::region::Spec`); every account gets a
/// random password. Returns what the CLI printed: ids by key.
pub async fn seed_region(
    bin: &Path,
    database: &str,
    spec: &serde_json::Value,
) -> Result<(serde_json::Value, String), String> {
    let password = random_password()?;
    let file =
        std::env::temp_dir().join(format!("passport-bench-region-{}.json", std::process::id()));
    std::fs::write(&file, spec.to_string())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let args = [
        "admin",
        "seed-region",
        "--database",
        database,
        "--spec",
        &file.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run_cli_async(bin, args, Some(password.clone())).await;
    let _ = std::fs::remove_file(&file);
    let out = out?;
    let made = serde_json::from_str(&out)
        .map_err(|e| format!("`passport admin seed-region` printed no JSON ({e}):\n{out}"))?;
    Ok((made, password))
}

/// A member of staff's full web session: the password step, then the TOTP step with a
/// code computed from `secret_base32` (as an authenticator app would). The `Cookie`
/// header value that carries it. Not timed.
pub async fn staff_session(
    c: &mut Client,
    email: &str,
    password: &str,
    secret_base32: &str,
) -> Result<String, String> {
    let account = Account {
        email: email.to_owned(),
        password: password.to_owned(),
        next: "/sign-in/code",
    };
    let half = session_cookie(c, &account).await?;
    let form = c
        .send(Method::GET, "/sign-in/code", &[("cookie", &half)], None)
        .await
        .map_err(|e| format!("GET /sign-in/code: transport error: {e}"))?;
    let html = String::from_utf8_lossy(&form.body);
    let csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| format!("GET /sign-in/code: HTTP {}, no form", form.status))?
        .to_owned();
    let secret = base32_decode(secret_base32).ok_or("the TOTP secret is not base32")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let body = http::form_encode(&[("csrf_token", &csrf), ("code", &totp(&secret, now))]);
    let r = c
        .send(
            Method::POST,
            "/sign-in/code",
            &[("content-type", FORM), ("cookie", &half)],
            Some(Bytes::from(body)),
        )
        .await
        .map_err(|e| format!("POST /sign-in/code: transport error: {e}"))?;
    if r.status != 303 || r.location.as_deref() != Some("/") {
        return Err(format!(
            "POST /sign-in/code: HTTP {} to {:?}, expected 303 to /",
            r.status, r.location
        ));
    }
    let session = http::cookie_value(&r.set_cookie, SESSION_COOKIE)
        .ok_or("POST /sign-in/code: no session cookie")?;
    Ok(format!("{SESSION_COOKIE}={session}"))
}

/// RFC 6238 TOTP (SHA-1, 30-second steps, 6 digits) at `unix_secs`.
fn totp(secret: &[u8], unix_secs: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&(unix_secs / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// RFC 4648 base32 (no padding needed), as authenticator apps take secrets.
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u64, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buf = (buf << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

/// Creates a family sign-in (`passport admin create-user --role family`, a Person and an
/// account) with a random password; returns the account.
pub async fn create_family(
    bin: &Path,
    database: &str,
    email: &str,
    name: &str,
) -> Result<Account, String> {
    let password = random_password()?;
    let owned = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    run_cli_async(
        bin,
        owned(&[
            "admin",
            "create-user",
            "--database",
            database,
            "--role",
            "family",
            "--email",
            email,
            "--name",
            name,
            "--password-stdin",
        ]),
        Some(password.clone()),
    )
    .await?;
    Ok(Account {
        email: email.to_owned(),
        password,
        next: "/",
    })
}

/// `Basic …` for client_secret_basic (RFC 6749 §2.3.1: id and secret form-urlencoded first).
pub fn basic_header(c: &Credentials) -> String {
    let mut user_pass = String::new();
    http::percent_encode_into(&mut user_pass, &c.client_id);
    user_pass.push(':');
    http::percent_encode_into(&mut user_pass, &c.client_secret);
    format!("Basic {}", http::base64(user_pass.as_bytes()))
}

/// Checks a token response; returns the access token and its `expires_in` (seconds).
pub fn parse_token_response(r: &Response) -> Result<(String, u64), String> {
    let snippet = || {
        String::from_utf8_lossy(&r.body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    if r.status != 200 {
        return Err(format!("HTTP {} {}", r.status, snippet()));
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("token response is not JSON ({e}): {}", snippet()))?;
    if !v["token_type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(format!("token_type is not Bearer: {}", snippet()));
    }
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("no access_token: {}", snippet()))?;
    let expires_in = v["expires_in"].as_u64().unwrap_or(900);
    Ok((token.to_owned(), expires_in))
}

#[derive(Clone)]
struct Token {
    /// `Bearer …`.
    bearer: Arc<str>,
    fetched: Instant,
    refresh_after: Duration,
}

/// How an [`Auth`] gets its tokens.
enum Grant {
    /// `client_credentials` with the client's id and secret ([`Auth::basic`], [`Auth::form`]).
    ClientCredentials,
    /// A user's token by the authorization-code flow (sign-in, approval, code exchange).
    User(UserFlow),
}

impl Auth {
    /// The person whose user token this is (`None` for a system client).
    pub fn account(&self) -> Option<&Account> {
        match &self.grant {
            Grant::User(flow) => Some(&flow.account),
            Grant::ClientCredentials => None,
        }
    }
}

/// A web session of `account` (the password form; a family account is then fully signed
/// in): the `Cookie` header value that carries it. Not timed.
pub async fn session_cookie(c: &mut Client, account: &Account) -> Result<String, String> {
    let csrf = csrf_token(c).await?;
    let (body, cookie) = sign_in_request(account, &csrf);
    let r = c
        .send(
            Method::POST,
            "/sign-in",
            &[("content-type", FORM), ("cookie", &cookie)],
            Some(body),
        )
        .await
        .map_err(|e| format!("POST /sign-in: transport error: {e}"))?;
    let session = check_sign_in(&r, account)
        .map_err(|e| format!("POST /sign-in ({}): {e}", account.email))?;
    Ok(format!("{SESSION_COOKIE}={session}"))
}

/// A user's token the way a SMART app gets one: the user signs in with the password form,
/// the app sends them to `GET /oauth/authorize` (response_type=code, PKCE S256, `aud` =
/// the FHIR base URL), they press "Allow", and the app exchanges the code from the
/// redirect at `POST /oauth/token` with its `code_verifier`.
#[derive(Debug, Clone)]
pub struct UserFlow {
    pub account: Account,
    /// The public SMART app's client id ([`register_app`]).
    pub client_id: String,
    /// The FHIR base URL (`aud`).
    pub aud: String,
}

/// The bench's OAuth client and its current access token.
pub struct Auth {
    pub addr: SocketAddr,
    pub client_id: String,
    /// `Basic …` of the client's credentials.
    pub basic: String,
    /// The token request's body: `grant_type=client_credentials&scope=…`.
    pub form: Bytes,
    grant: Grant,
    current: RwLock<Token>,
    /// The connection tokens are fetched on (also makes refreshes one at a time).
    fetcher: tokio::sync::Mutex<Client>,
    /// Tokens fetched so far.
    fetched: AtomicU64,
}

impl Auth {
    /// Gets the first access token for `creds` (`client_credentials`, scope [`SCOPE`]).
    pub async fn obtain(addr: SocketAddr, creds: &Credentials) -> Result<Arc<Auth>, String> {
        Auth::obtain_scope(addr, creds, SCOPE).await
    }

    /// Gets the first access token for `creds` with `scope` (`client_credentials`).
    pub async fn obtain_scope(
        addr: SocketAddr,
        creds: &Credentials,
        scope: &str,
    ) -> Result<Arc<Auth>, String> {
        let basic = basic_header(creds);
        let form = Bytes::from(http::form_encode(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ]));
        let mut client = Client::new(addr);
        let token = fetch(&mut client, &basic, &form).await?;
        Ok(Arc::new(Auth {
            addr,
            client_id: creds.client_id.clone(),
            basic,
            form,
            grant: Grant::ClientCredentials,
            current: RwLock::new(token),
            fetcher: tokio::sync::Mutex::new(client),
            fetched: AtomicU64::new(1),
        }))
    }

    /// Gets the first user token by `flow` (the whole flow runs again for each new token).
    pub async fn obtain_user(addr: SocketAddr, flow: UserFlow) -> Result<Arc<Auth>, String> {
        let mut client = Client::new(addr);
        let token = fetch_user(&mut client, &flow).await?;
        Ok(Arc::new(Auth {
            addr,
            client_id: flow.client_id.clone(),
            basic: String::new(),
            form: Bytes::new(),
            grant: Grant::User(flow),
            current: RwLock::new(token),
            fetcher: tokio::sync::Mutex::new(client),
            fetched: AtomicU64::new(1),
        }))
    }

    async fn fetch_new(&self, client: &mut Client) -> Result<Token, String> {
        match &self.grant {
            Grant::ClientCredentials => fetch(client, &self.basic, &self.form).await,
            Grant::User(flow) => fetch_user(client, flow).await,
        }
    }

    /// An `Auth` that always sends `bearer` (for tests against a fake server).
    #[cfg(test)]
    pub fn fixed(addr: SocketAddr, bearer: &str) -> Arc<Auth> {
        Arc::new(Auth {
            addr,
            client_id: "test".into(),
            basic: "Basic dGVzdDp0ZXN0".into(),
            form: Bytes::from_static(b"grant_type=client_credentials"),
            grant: Grant::ClientCredentials,
            current: RwLock::new(Token {
                bearer: bearer.into(),
                fetched: Instant::now(),
                refresh_after: Duration::from_secs(3600),
            }),
            fetcher: tokio::sync::Mutex::new(Client::new(addr)),
            fetched: AtomicU64::new(0),
        })
    }

    /// Replaces the token with a fresh one now (before each phase of the run).
    pub async fn refresh(&self) -> Result<(), String> {
        let mut client = self.fetcher.lock().await;
        let token = self.fetch_new(&mut client).await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = token;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn fresh(&self) -> Option<Arc<str>> {
        let t = self.current.read().unwrap_or_else(|e| e.into_inner());
        (t.fetched.elapsed() < t.refresh_after).then(|| t.bearer.clone())
    }

    /// `Bearer …` for the next request: the current token, or a new one when it is older
    /// than [`REFRESH_AFTER`] (one fetch however many workers ask at once).
    pub async fn bearer(&self) -> Result<Arc<str>, String> {
        if let Some(b) = self.fresh() {
            return Ok(b);
        }
        let mut client = self.fetcher.lock().await;
        if let Some(b) = self.fresh() {
            return Ok(b);
        }
        let token = self.fetch_new(&mut client).await?;
        let bearer = token.bearer.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = token;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        Ok(bearer)
    }

    /// Access tokens fetched so far (not counting the `token` workload's).
    pub fn tokens_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

async fn fetch(client: &mut Client, basic: &str, form: &Bytes) -> Result<Token, String> {
    let r = client
        .send(
            Method::POST,
            "/oauth/token",
            &[
                ("authorization", basic),
                ("content-type", FORM),
                ("accept", "application/json"),
            ],
            Some(form.clone()),
        )
        .await
        .map_err(|e| format!("POST /oauth/token: transport error: {e}"))?;
    let (token, expires_in) =
        parse_token_response(&r).map_err(|e| format!("POST /oauth/token: {e}"))?;
    Ok(Token {
        bearer: format!("Bearer {token}").into(),
        fetched: Instant::now(),
        refresh_after: REFRESH_AFTER
            .min(Duration::from_secs(expires_in * 2 / 3))
            .max(Duration::from_secs(1)),
    })
}

fn token_from(r: &Response, what: &str) -> Result<Token, String> {
    let (token, expires_in) = parse_token_response(r).map_err(|e| format!("{what}: {e}"))?;
    Ok(Token {
        bearer: format!("Bearer {token}").into(),
        fetched: Instant::now(),
        refresh_after: REFRESH_AFTER
            .min(Duration::from_secs(expires_in * 2 / 3))
            .max(Duration::from_secs(1)),
    })
}

/// A PKCE verifier (64 random hex characters) and its S256 challenge.
pub fn pkce() -> Result<(String, String), String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let verifier: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let challenge = s256(&verifier);
    Ok((verifier, challenge))
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    http::base64url(&<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()))
}

/// The value of the first `<input … name="NAME" value="…">` in `html`.
pub fn hidden_field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let v = tag.find("value=\"")? + 7;
    let len = tag[v..].find('"')?;
    Some(&tag[v..v + len])
}

/// The value of query parameter `name` in a URL.
fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| http::percent_decode(v))
    })
}

/// One user token by the authorization-code flow with PKCE (see [`UserFlow`]): five
/// requests, none of them timed.
async fn fetch_user(c: &mut Client, flow: &UserFlow) -> Result<Token, String> {
    // 1. Sign in with the password form.
    let cookie = session_cookie(c, &flow.account).await?;
    // 2. The authorisation request: the approval page.
    let (verifier, challenge) = pkce()?;
    let state = format!("s{}", Instant::now().elapsed().as_nanos());
    let params = [
        ("response_type", "code"),
        ("client_id", flow.client_id.as_str()),
        ("redirect_uri", APP_REDIRECT),
        ("scope", USER_SCOPE),
        ("state", state.as_str()),
        ("aud", flow.aud.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let query = http::form_encode(&params);
    let path = format!("/oauth/authorize?{query}");
    let r = c
        .send(
            Method::GET,
            &path,
            &[("accept", "text/html"), ("cookie", &cookie)],
            None,
        )
        .await
        .map_err(|e| format!("GET /oauth/authorize: transport error: {e}"))?;
    let html = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        return Err(format!(
            "GET /oauth/authorize: HTTP {} (location {:?}), expected the approval page",
            r.status, r.location
        ));
    }
    let page_csrf = hidden_field(&html, "csrf_token")
        .ok_or("GET /oauth/authorize: the approval page has no csrf_token")?
        .to_owned();
    // 3. "Allow".
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend([
        ("csrf_token", page_csrf.as_str()),
        ("step", "decide"),
        ("decision", "allow"),
    ]);
    let r = c
        .send(
            Method::POST,
            "/oauth/authorize",
            &[("content-type", FORM), ("cookie", &cookie)],
            Some(Bytes::from(http::form_encode(&form))),
        )
        .await
        .map_err(|e| format!("POST /oauth/authorize: transport error: {e}"))?;
    let location = r.location.clone().unwrap_or_default();
    if r.status != 303 || !location.starts_with(APP_REDIRECT) {
        return Err(format!(
            "POST /oauth/authorize (Allow): HTTP {} to {location:?}, expected 303 to {APP_REDIRECT}",
            r.status
        ));
    }
    let code = query_param(&location, "code")
        .ok_or_else(|| format!("the redirect has no code: {location}"))?;
    if query_param(&location, "state").as_deref() != Some(state.as_str()) {
        return Err(format!(
            "the redirect does not return the state: {location}"
        ));
    }
    // 4. The code exchange.
    let body = http::form_encode(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", APP_REDIRECT),
        ("client_id", &flow.client_id),
        ("code_verifier", &verifier),
    ]);
    let r = c
        .send(
            Method::POST,
            "/oauth/token",
            &[("content-type", FORM), ("accept", "application/json")],
            Some(Bytes::from(body)),
        )
        .await
        .map_err(|e| format!("POST /oauth/token (authorization_code): transport error: {e}"))?;
    token_from(&r, "POST /oauth/token (authorization_code)")
}

// ---------------------------------------------------------------------------------------
// Web sign-in

/// A sign-in account the bench created, and where a correct password leads.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub password: String,
    /// The `Location` of a successful password step: `/` for a family account (signed in),
    /// `/sign-in/code` for staff (the TOTP step comes next).
    pub next: &'static str,
}

/// The accounts of the sign-in workloads (only those the run needs).
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub family: Option<Account>,
    pub staff: Option<Account>,
}

/// A password nobody else knows: 128 random bits from the operating system, in hex.
fn random_password() -> Result<String, String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(format!(
        "bench-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// Creates the sign-in accounts with the real CLI: a family account (`create-user --role
/// family`) and/or a clinician (`create-org`, then `create-user --org … --role clinician`),
/// each with a random password given on standard input. `tag` makes the logins unique, so
/// that a run against an existing `--database` does not meet the accounts of an earlier one.
pub async fn create_accounts(
    bin: &Path,
    database: &str,
    tag: &str,
    family: bool,
    staff: bool,
) -> Result<Accounts, String> {
    let mut accounts = Accounts::default();
    let owned = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    if family {
        let email = format!("passport-bench-family-{tag}@bench.example.org");
        let password = random_password()?;
        run_cli_async(
            bin,
            owned(&[
                "admin",
                "create-user",
                "--database",
                database,
                "--role",
                "family",
                "--email",
                &email,
                "--name",
                "Bench Family",
                "--password-stdin",
            ]),
            Some(password.clone()),
        )
        .await?;
        accounts.family = Some(Account {
            email,
            password,
            next: "/",
        });
    }
    if staff {
        let out = run_cli_async(
            bin,
            owned(&[
                "admin",
                "create-org",
                "--database",
                database,
                "--name",
                &format!("Passport bench clinic {tag}"),
                "--sector",
                "hospital-trust",
                "--region",
                "Bench",
            ]),
            None,
        )
        .await?;
        let org = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("created organisation "))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("`passport admin create-org` did not print the new id:\n{out}"))?
            .to_owned();
        let email = format!("passport-bench-staff-{tag}@bench.example.org");
        let password = random_password()?;
        run_cli_async(
            bin,
            owned(&[
                "admin",
                "create-user",
                "--database",
                database,
                "--org",
                &org,
                "--role",
                "clinician",
                "--email",
                &email,
                "--name",
                "Bench Clinician",
                "--password-stdin",
            ]),
            Some(password.clone()),
        )
        .await?;
        accounts.staff = Some(Account {
            email,
            password,
            next: "/sign-in/code",
        });
    }
    Ok(accounts)
}

/// `GET /sign-in`: the anonymous CSRF token (its cookie; the form's hidden `csrf_token`
/// field carries the same value).
pub async fn csrf_token(client: &mut Client) -> Result<String, String> {
    let r = client
        .send(Method::GET, "/sign-in", &[("accept", "text/html")], None)
        .await
        .map_err(|e| format!("GET /sign-in: transport error: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET /sign-in: HTTP {}", r.status));
    }
    let token = http::cookie_value(&r.set_cookie, CSRF_COOKIE)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("GET /sign-in: no {CSRF_COOKIE} cookie set"))?;
    let html = String::from_utf8_lossy(&r.body);
    if !html.contains(token) {
        return Err(format!(
            "GET /sign-in: the form does not carry the {CSRF_COOKIE} cookie's token"
        ));
    }
    Ok(token.to_owned())
}

/// The sign-in form post for `account` with CSRF token `csrf`: (body, `Cookie` header).
pub fn sign_in_request(account: &Account, csrf: &str) -> (Bytes, String) {
    let body = http::form_encode(&[
        ("csrf_token", csrf),
        ("email", &account.email),
        ("password", &account.password),
    ]);
    (Bytes::from(body), format!("{CSRF_COOKIE}={csrf}"))
}

/// Checks the answer to a sign-in post: `303 See Other` to `account.next` with a new
/// session cookie (returned).
pub fn check_sign_in(r: &Response, account: &Account) -> Result<String, String> {
    match r.status {
        303 => {}
        429 => {
            return Err(
                "HTTP 429: sign-in with this login is paused (lockout after failed \
                 attempts)"
                    .into(),
            );
        }
        s => {
            let body = String::from_utf8_lossy(&r.body);
            let why = if body.contains("Enter a correct email address and password") {
                " (the password was refused)"
            } else if s == 403 {
                " (CSRF check refused)"
            } else {
                ""
            };
            return Err(format!("HTTP {s}{why}, expected 303"));
        }
    }
    if r.location.as_deref() != Some(account.next) {
        return Err(format!(
            "303 to {:?}, expected {:?}",
            r.location, account.next
        ));
    }
    http::cookie_value(&r.set_cookie, SESSION_COOKIE)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("303 without a {SESSION_COOKIE} cookie"))
}

/// One complete, unmeasured sign-in of `account` (before the workload, so that a failure
/// is reported clearly): the form, the password, then the page it leads to with the new
/// session (the home page for family, the TOTP code form for staff) must answer 200.
pub async fn verify_sign_in(addr: SocketAddr, account: &Account) -> Result<(), String> {
    let mut c = Client::new(addr);
    let cookie = session_cookie(&mut c, account).await?;
    let r = c
        .send(
            Method::GET,
            account.next,
            &[("accept", "text/html"), ("cookie", &cookie)],
            None,
        )
        .await
        .map_err(|e| format!("GET {}: transport error: {e}", account.next))?;
    if r.status != 200 {
        return Err(format!(
            "GET {} with the new session: HTTP {}, expected 200",
            account.next, r.status
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{base32_decode, totp};

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 appendix B, SHA-1: the last six digits of its eight-digit codes.
        let secret = b"12345678901234567890";
        assert_eq!(totp(secret, 59), "287082");
        assert_eq!(totp(secret, 1_111_111_109), "081804");
        assert_eq!(base32_decode("GEZDGNBVGY3TQOJQ").unwrap(), b"1234567890");
    }

    #[test]
    fn s256_is_rfc_7636s_example() {
        assert_eq!(
            super::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    use super::*;

    fn response(status: u16, location: Option<&str>, cookies: &[&str], body: &str) -> Response {
        Response {
            status,
            location: location.map(str::to_owned),
            etag: None,
            set_cookie: cookies.iter().map(|c| (*c).to_owned()).collect(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        let c = Credentials {
            client_id: "abc".into(),
            client_secret: "s e/c".into(),
        };
        // "abc:s%20e%2Fc"
        assert_eq!(basic_header(&c), "Basic YWJjOnMlMjBlJTJGYw==");
    }

    #[test]
    fn token_responses_are_checked() {
        let ok = response(
            200,
            None,
            &[],
            r#"{"access_token":"x.y.z","token_type":"Bearer","expires_in":900,"scope":"system/*.cruds"}"#,
        );
        assert_eq!(parse_token_response(&ok).unwrap(), ("x.y.z".into(), 900));
        let bad = response(401, None, &[], r#"{"error":"invalid_client"}"#);
        assert!(
            parse_token_response(&bad)
                .unwrap_err()
                .contains("invalid_client")
        );
        let no_token = response(200, None, &[], r#"{"token_type":"Bearer"}"#);
        assert!(parse_token_response(&no_token).is_err());
        let wrong_type = response(200, None, &[], r#"{"access_token":"t","token_type":"mac"}"#);
        assert!(parse_token_response(&wrong_type).is_err());
    }

    #[test]
    fn sign_in_answers_are_checked() {
        let family = Account {
            email: "f@bench.example.org".into(),
            password: "p".into(),
            next: "/",
        };
        let (body, cookie) = sign_in_request(&family, "tok");
        assert_eq!(
            &body[..],
            b"csrf_token=tok&email=f%40bench.example.org&password=p"
        );
        assert_eq!(cookie, "passport_csrf=tok");
        let ok = response(
            303,
            Some("/"),
            &["passport_session=s1; Path=/; HttpOnly; SameSite=Strict"],
            "",
        );
        assert_eq!(check_sign_in(&ok, &family).unwrap(), "s1");
        let staff = Account {
            next: "/sign-in/code",
            ..family.clone()
        };
        assert!(check_sign_in(&ok, &staff).unwrap_err().contains("expected"));
        let no_cookie = response(303, Some("/"), &[], "");
        assert!(check_sign_in(&no_cookie, &family).is_err());
        let locked = response(429, None, &[], "paused");
        assert!(
            check_sign_in(&locked, &family)
                .unwrap_err()
                .contains("lockout")
        );
        let refused = response(400, None, &[], "Enter a correct email address and password");
        assert!(
            check_sign_in(&refused, &family)
                .unwrap_err()
                .contains("refused")
        );
    }

    /// A token endpoint that answers every request with a new token `t1`, `t2`, … valid for
    /// one second; returns its address and the number of tokens it issued.
    async fn token_server() -> (SocketAddr, Arc<AtomicU64>) {
        let issued = Arc::new(AtomicU64::new(0));
        let counter = issued.clone();
        let addr = crate::test_server::serve(move |_head| {
            let k = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(r#"{{"access_token":"t{k}","token_type":"Bearer","expires_in":1}}"#);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        (addr, issued)
    }

    #[tokio::test]
    async fn old_tokens_are_replaced_once_however_many_ask() {
        let (addr, issued) = token_server().await;
        let creds = Credentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        let auth = Auth::obtain(addr, &creds).await.unwrap();
        assert_eq!(&*auth.bearer().await.unwrap(), "Bearer t1");
        auth.refresh().await.unwrap();
        assert_eq!(&*auth.bearer().await.unwrap(), "Bearer t2");
        // expires_in 1 s: the token is replaced after a second, by one fetch for all askers.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let askers: Vec<_> = (0..8)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.bearer().await.unwrap() })
            })
            .collect();
        for a in askers {
            assert_eq!(&*a.await.unwrap(), "Bearer t3");
        }
        assert_eq!(issued.load(Ordering::SeqCst), 3);
        assert_eq!(auth.tokens_fetched(), 3);
    }

    #[test]
    fn cli_output_parsing() {
        let v = first_json_object("note\n{\n  \"client_id\": \"a\"\n}\ntrailing").unwrap();
        assert_eq!(v["client_id"], "a");
        assert!(first_json_object("no json").is_none());
        let p = random_password().unwrap();
        assert!(p.len() >= 12 && p != random_password().unwrap());
    }

    #[test]
    fn cli_failures_show_stderr() {
        let e = run_cli(
            Path::new("/bin/sh"),
            &[
                "-c",
                "echo oops >&2; exit 3",
                "--database",
                "postgres://u:pw@h/db",
            ],
            None,
        )
        .unwrap_err();
        assert!(e.contains("oops"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        let out = run_cli(Path::new("/bin/sh"), &["-c", "cat"], Some("hello")).unwrap();
        assert_eq!(out, "hello\n");
    }
}
