//! The `passport` binary itself: flags, environment, migrate, graceful stop on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_passport");

fn temp_db() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("passport-cli-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/nested/passport.db", dir.display());
    (dir, url)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_healthy(base: &str, child: &mut Child) {
    let start = Instant::now();
    loop {
        if get_ok(&format!("{base}/healthz")) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Does `url` answer 2xx? (Polling helper; the tests here are not async.)
fn get_ok(url: &str) -> bool {
    runtime().block_on(async {
        reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

/// Registers a regional client with the real CLI and gets a token from the running server
/// (`client_credentials`, HTTP Basic), as an operator's integration would.
/// Run in `cwd`: with PostgreSQL the audit checkpoint files default to the working
/// directory, which must not be the repository.
async fn operator_token(database: &str, base: &str, cwd: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .current_dir(cwd)
        .args([
            "admin",
            "create-client",
            "--database",
            database,
            "--name",
            "loader",
            "--grant",
            "client_credentials",
            "--scope",
            "system/*.cruds",
            "--regional",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["regional"], true);
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.cruds"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn serve_uses_env_and_flags_and_stops_cleanly_on_sigterm() {
    let (dir, url) = temp_db();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--base-url",
            "https://passport.example.nhs.uk",
        ])
        .env("PASSPORT_ADDR", format!("127.0.0.1:{port}"))
        .env("PASSPORT_DATABASE_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(&base, &mut child);
    let rt = runtime();
    let (location, demo) = rt.block_on(async {
        let client = reqwest::Client::new();
        // No token, no data.
        let refused = client
            .get(format!("{base}/fhir/Patient/demo-child-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().contains_key("www-authenticate"));
        let token = operator_token(&url, &base, &std::env::temp_dir()).await;
        let r = client
            .post(format!("{base}/fhir/Patient"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .header("host", "attacker.example")
            .body(r#"{"resourceType":"Patient","gender":"female"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let demo = client
            .get(format!("{base}/fhir/Patient/demo-child-1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        (loc, demo)
    });
    assert!(
        location.starts_with("https://passport.example.nhs.uk/fhir/Patient/"),
        "{location}"
    );
    assert_eq!(demo, 200, "demo data loaded");
    assert!(
        std::path::Path::new(&dir)
            .join("nested/passport.db")
            .exists()
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("stopped cleanly"), "{log}");
    assert!(
        !log.contains("demo-child") && !log.contains("9990000018"),
        "no personal data in logs: {log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn migrate_runs_twice_and_bad_input_exits_non_zero() {
    let (dir, url) = temp_db();
    for _ in 0..2 {
        let out = Command::new(BIN)
            .args(["migrate", "--database", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(BIN)
        .args(["migrate", "--database", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sqlite://"),
        "says what it expects"
    );
    let out = Command::new(BIN)
        .args(["serve", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// `POST /register` as a signed-out parent (fetching the form's CSRF token and cookie first).
async fn register(base: &str, email: &str) -> u16 {
    let client = reqwest::Client::new();
    let form = client.get(format!("{base}/register")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = form.text().await.unwrap();
    let at = html.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    client
        .post(format!("{base}/register"))
        .header("cookie", cookie)
        .form(&[
            ("name", "Alex Brown"),
            ("email", email),
            ("password", "correct horse battery staple"),
            ("relationship", "PRN"),
            ("nhs_number", "9434765919"),
            ("birth_date", "06/05/2017"),
            ("csrf_token", csrf),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Without SMTP, `--demo` prints a verification link on stdout, one marked line with no
/// address; without `--demo` nothing is printed and the log warns that email is not
/// configured (without the address). A bad `--smtp-url` stops the server at start.
#[test]
fn without_smtp_only_demo_prints_links() {
    use std::io::{BufRead, BufReader};
    for demo in [true, false] {
        let (dir, url) = temp_db();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut args = vec!["serve", "--database", &url];
        if demo {
            args.push("--demo");
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .env("PASSPORT_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("PASSPORT_SMTP_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        wait_healthy(&base, &mut child);
        let status = runtime().block_on(register(&base, "alex.brown@example.com"));
        assert_eq!(status, 200);
        // The demo's sign-ins come first on stdout; the emailed link is the marked line.
        let line = std::iter::from_fn(|| {
            rx.recv_timeout(Duration::from_secs(if demo { 15 } else { 2 }))
                .ok()
        })
        .find(|l| l.starts_with("PASSPORT DEMO EMAIL"))
        .ok_or(());
        if demo {
            let line = line.expect("the demo prints the link");
            assert!(
                line.starts_with("PASSPORT DEMO EMAIL (not sent: no --smtp-url): "),
                "{line}"
            );
            assert!(line.contains(&format!("{base}/verify-email/")), "{line}");
            assert!(!line.contains("alex"), "no address: {line}");
        } else {
            assert!(line.is_err(), "nothing printed without --demo: {line:?}");
        }
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!log.contains("alex"), "no address in the log: {log}");
        assert!(!log.contains("verify-email"), "no link in the log: {log}");
        assert_eq!(
            log.contains("email is not configured"),
            !demo,
            "the warning: {log}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    let (dir, url) = temp_db();
    let out = Command::new(BIN)
        .args(["serve", "--database", &url, "--addr", "127.0.0.1:0"])
        .env("PASSPORT_SMTP_URL", "smtp://smtp.example.org")
        .env("PASSPORT_MAIL_FROM", "no-reply@example.org")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls=required"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Resident memory of process `pid`, in MB (Linux `/proc/PID/statm`).
fn rss_mb(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / 1_000_000
}

/// An Observation of about `bytes` bytes of JSON: many small components (the shape of the
/// probe's 7.6 MB Observation, which took 400 MB to search).
fn large_observation(patient: &str, bytes: usize) -> Vec<u8> {
    let one = serde_json::json!({
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    let n = bytes / (one.to_string().len() + 1);
    serde_json::to_vec(&serde_json::json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Heart rate series"},
        "subject": {"reference": format!("Patient/{patient}")},
        "component": vec![one; n]
    }))
    .unwrap()
}

/// Issue 12, part 4: a resource over --max-resource-bytes is refused (413), and 50 searches
/// over a 7.6 MB Observation — in bursts of 8 at once — leave the server's resident memory
/// flat: large bodies are worked on one at a time and a page holds a bounded number of
/// bytes. The real binary (its allocator) on a real database.
fn memory_stays_flat(database: &str) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Its own working directory: on PostgreSQL the audit checkpoint files go there.
    let cwd = std::env::temp_dir().join(format!("passport-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(&cwd)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database",
            database,
        ])
        .env("PASSPORT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_healthy(&base, &mut child);
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures = rt.block_on(async {
        let token = operator_token(database, &base, &cwd).await;
        let http = reqwest::Client::new();
        let post = |path: &str, body: Vec<u8>| {
            http.post(format!("{base}{path}"))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
        };
        let resp = post("/fhir/Patient", br#"{"resourceType":"Patient"}"#.to_vec())
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let patient: serde_json::Value = resp.json().await.unwrap();
        let patient = patient["id"].as_str().unwrap().to_owned();
        // Over the default limit (8 MiB): refused by name, nothing stored.
        let resp = post("/fhir/Observation", large_observation(&patient, 9_000_000))
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert!(resp.text().await.unwrap().contains("--max-resource-bytes"));
        let body = large_observation(&patient, 7_600_000);
        let resp = post("/fhir/Observation", body).await.unwrap();
        assert_eq!(resp.status(), 201);
        let search = format!("{base}/fhir/Observation?subject=Patient/{patient}");
        let burst = |n: usize| {
            let (http, search, token) = (http.clone(), search.clone(), token.clone());
            async move {
                let mut all = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let (http, search, token) = (http.clone(), search.clone(), token.clone());
                    all.spawn(async move {
                        let resp = http.get(&search).bearer_auth(&token).send().await.unwrap();
                        assert_eq!(resp.status(), 200);
                        let bytes = resp.bytes().await.unwrap();
                        assert!(bytes.len() > 7_000_000, "the match is in the page");
                    });
                }
                while let Some(r) = all.join_next().await {
                    r.unwrap();
                }
            }
        };
        // Warm: the allocator's pools and caches reach their working size.
        burst(8).await;
        burst(8).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let warm = rss_mb(pid);
        let mut peak = warm;
        for _ in 0..6 {
            burst(8).await;
            peak = peak.max(rss_mb(pid));
        }
        burst(2).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        (warm, peak, rss_mb(pid))
    });
    let (warm, peak, end) = figures;
    println!("{database}: RSS after warm-up {warm} MB, peak {peak} MB, after 50 searches {end} MB");
    assert!(
        end <= warm + warm / 4 + 32,
        "memory grew over 50 searches: {warm} MB → {end} MB"
    );
    assert!(
        peak <= warm + warm / 2 + 64,
        "peak {peak} MB (warm {warm} MB)"
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(cwd);
}

#[test]
fn large_resources_keep_memory_flat_sqlite() {
    let (dir, url) = temp_db();
    memory_stays_flat(&url);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn large_resources_keep_memory_flat_postgres() {
    let Some(url) = passport_store::testing::fresh_pg_url() else {
        return;
    };
    memory_stays_flat(&url);
}

/// Every flag of `passport serve` (and its environment variable) is in the README's
/// configuration table, so an operator can find each limit.
#[test]
fn every_serve_flag_is_in_the_readme() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
    // (flag, its environment variable) from the help: a flag's line, then its text.
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let flag = rest.split([' ', '=', ',']).next().unwrap();
        let text = lines.get(i + 1).copied().unwrap_or("");
        let env = text
            .split("[env: ")
            .nth(1)
            .and_then(|e| e.split(['=', ']']).next())
            .map(str::to_owned);
        if !matches!(flag, "help" | "version") {
            flags.push((flag.to_owned(), env));
        }
    }
    assert!(flags.len() > 20, "the help was read: {flags:?}");
    let mut missing = Vec::new();
    for (flag, env) in &flags {
        match table
            .iter()
            .find(|r| r.starts_with(&format!("| `--{flag}`")))
        {
            None => missing.push(format!("--{flag}")),
            Some(row) => {
                if let Some(env) = env
                    && !row.contains(env.as_str())
                {
                    missing.push(format!("{env} (for --{flag})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the README's configuration table: {missing:?}"
    );
}
