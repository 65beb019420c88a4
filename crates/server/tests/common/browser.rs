//! A tiny browser for the page tests: keeps cookies by hand, never follows redirects.
#![allow(dead_code)] // each test binary uses a different part of the browser

use std::collections::HashMap;

use passport_server::web::auth;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// The password every seeded account signs in with.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub jar: HashMap<String, String>,
    /// Read minijinja's "&#x2f;" (its escape of "/" in values) back as "/" in bodies.
    unescape_slashes: bool,
}

pub struct Page {
    pub status: u16,
    /// The `Location` header, or "" without one.
    pub location: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The form's CSRF token.
    pub fn csrf(&self) -> String {
        self.hidden("csrf_token")
    }

    /// The value of the first hidden field `name`.
    pub fn hidden(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&needle)
            .unwrap_or_else(|| panic!("{name}: {}", self.body))
            + needle.len();
        let raw = &self.body[at..at + self.body[at..].find('"').unwrap()];
        raw.replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
    }

    /// Every hidden field of the first form of the page's content (after the header, whose
    /// sign-out form every signed-in page has), as form pairs.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        let main = &self.body[self.body.find("<main").unwrap_or(0)..];
        let form = &main[main.find("<form").unwrap()..];
        let form = &form[..form.find("</form>").unwrap()];
        let mut out = Vec::new();
        for part in form.split("<input type=\"hidden\" name=\"").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            let v = &part[part.find("value=\"").unwrap() + 7..];
            let v = &v[..v.find('"').unwrap()];
            out.push((
                name.to_owned(),
                v.replace("&#x2f;", "/")
                    .replace("&amp;", "&")
                    .replace("&#x27;", "'")
                    .replace("&quot;", "\""),
            ));
        }
        out
    }

    /// The query parameters of the redirect.
    pub fn query(&self) -> HashMap<String, String> {
        let q = self.location.split_once('?').map(|x| x.1).unwrap_or("");
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    /// The body text between the first `start` and the next `end`.
    pub fn between(&self, start: &str, end: &str) -> String {
        let s = self.body.find(start).expect(start) + start.len();
        self.body[s..s + self.body[s..].find(end).unwrap()].to_owned()
    }

    /// The page's `<title>`.
    pub fn title(&self) -> &str {
        let s = self.body.find("<title>").unwrap() + 7;
        &self.body[s..s + self.body[s..].find("</title>").unwrap()]
    }

    /// Every `Set-Cookie` header, as sent.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// Whether the page shows an error summary linking to `field`.
    pub fn has_error_summary_for(&self, field: &str) -> bool {
        self.body.contains("nhsuk-error-summary")
            && self.body.contains(&format!("href=\"#{field}\""))
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // What a browser asks for when it follows a link.
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::ACCEPT,
                    reqwest::header::HeaderValue::from_static(
                        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                    ),
                )]))
                .build()
                .unwrap(),
            base: base.trim_end_matches('/').to_owned(),
            jar: HashMap::new(),
            unescape_slashes: false,
        }
    }

    /// This browser, reading "&#x2f;" in bodies back as "/" (harmless in HTML).
    pub fn unescaping_slashes(mut self) -> Browser {
        self.unescape_slashes = true;
        self
    }

    /// Keeps the response's cookies and reads it into a [`Page`].
    pub async fn take(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
        let location = headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut body = resp.text().await.unwrap();
        if self.unescape_slashes {
            body = body.replace("&#x2f;", "/");
        }
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `path` on this server, or `path` itself when it is already absolute.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookies())
            .send()
            .await
            .unwrap();
        self.take(resp).await
    }

    pub async fn post<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        path: &str,
        fields: &[(K, V)],
    ) -> Page {
        let resp = self.send_form(path, fields).await;
        self.take(resp).await
    }

    /// POSTs `fields` form-encoded with this browser's cookies.
    async fn send_form<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        path: &str,
        fields: &[(K, V)],
    ) -> reqwest::Response {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.client
            .post(self.url(path))
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a form and answers bytes (a PDF): status, content type, body.
    pub async fn post_bytes(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        let resp = self.send_form(path, fields).await;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, resp.bytes().await.unwrap().to_vec())
    }

    /// GETs `path` as bytes (an image): status, content type, body.
    pub async fn get_bytes(&mut self, path: &str) -> (u16, String, Vec<u8>) {
        let resp = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookies())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, resp.bytes().await.unwrap().to_vec())
    }

    /// POSTs a `multipart/form-data` form as a browser sends it: `fields`, then one file
    /// (`file`: field name, file name, bytes).
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Page {
        let boundary = "----passport-test-boundary";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                file.0, file.1
            )
            .as_bytes(),
        );
        body.extend_from_slice(file.2);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookies())
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        self.take(resp).await
    }

    /// GETs `form_path`, then POSTs `fields` plus its CSRF token to `to`.
    pub async fn submit(&mut self, form_path: &str, to: &str, fields: &[(&str, &str)]) -> Page {
        let form = self.get(form_path).await;
        assert_eq!(form.status, 200, "{form_path}: {}", form.body);
        let csrf = form.csrf();
        let mut all = fields.to_vec();
        all.push(("csrf_token", &csrf));
        self.post(to, &all).await
    }

    /// Confirms the "check the child's details" step if an invitation makes a new passport
    /// (the answer as it is otherwise).
    pub async fn confirm_new_passport(&mut self, p: Page) -> Page {
        if !p.body.contains("id=\"check-answers\"") {
            return p;
        }
        let fields = p.hidden_fields();
        assert!(
            fields.iter().any(|(k, v)| k == "confirmed" && v == "yes"),
            "{}",
            p.body
        );
        self.post("/onboarding/invite", &fields).await
    }

    /// The password step: returns the response to the POST (for a family member, the
    /// redirect home; for staff, the redirect to the security-code step).
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/sign-in").await;
        let csrf = form.csrf();
        self.post(
            "/sign-in",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    /// Both steps for staff, with [`PASSWORD`] and a security code from `secret`.
    pub async fn sign_in_staff(&mut self, email: &str, secret: &[u8]) {
        let p = self.sign_in(email, PASSWORD).await;
        assert_eq!(p.status, 303, "{}", p.body);
        assert_eq!(p.location, "/sign-in/code", "{}", p.body);
        // A code works once, so repeated sign-ins of one account within a step use the
        // codes the server accepts for clock drift, oldest first.
        for offset in [-30, 0, 30] {
            let form = self.get("/sign-in/code").await;
            let code = auth::totp_code(secret, now_secs() + offset);
            let p = self
                .post(
                    "/sign-in/code",
                    &[("code", &code), ("csrf_token", &form.csrf())],
                )
                .await;
            if p.status == 303 {
                assert_eq!(p.location, "/", "{}", p.body);
                return;
            }
            assert_eq!(p.status, 400, "{}", p.body);
        }
        panic!("no security code was accepted");
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `node tests/browser/SCRIPT ARGS…` (Chromium through playwright-core) from the
/// repository's root, prints what it said, asserts it passed, and returns its output.
pub async fn run_node(script: &str, args: Vec<String>) -> String {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = format!("tests/browser/{script}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&path)
            .args(&args)
            .current_dir(repo)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser test {script} failed:\n{stdout}\n{stderr}"
    );
    stdout
}
