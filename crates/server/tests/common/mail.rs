//! A real SMTP server for the tests: Python's `aiosmtpd` (pinned in `.ci/run`) running
//! `tests/mail/smtp_sink.py` on a free loopback port, which writes every message it
//! receives to a directory; tests read the messages back from there.
//!
//! Without python3 and aiosmtpd the mail tests are skipped with a line saying so; under
//! `CI=true` that is a failure instead.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MailServer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
    /// Held open: the server stops when it closes.
    _stdin: ChildStdin,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients.
    pub to: Vec<String>,
    pub subject: String,
    /// The decoded plain-text body.
    pub text: String,
    pub raw: String,
}

impl Mail {
    /// Every link in the body that starts with `prefix`.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        self.text
            .split_whitespace()
            .filter(|w| w.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl MailServer {
    /// Starts the SMTP server, or `None` (saying why) when python3 or aiosmtpd is missing
    /// outside CI. Panics under `CI=true`.
    pub fn start() -> Option<MailServer> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            let why = "python3 with aiosmtpd is needed (python3 -m pip install aiosmtpd==1.4.6)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("mail tests cannot run: {why}");
            }
            eprintln!("mail tests skipped: {why}");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("passport-mail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("mail dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mail/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the SMTP server says it is ready");
        assert_eq!(line.trim(), "ready", "SMTP server did not start");
        Some(MailServer {
            port,
            dir,
            child,
            _stdin: stdin,
        })
    }

    /// The `--smtp-url` of this server (plain SMTP: it is on this machine).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn all(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            // Only finished messages: the sink writes ".NNNNNN.eml" first and renames it, and
            // a dot-file still has the extension "eml" (reading one raced a delivery in CI).
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && n.ends_with(".eml"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| parse(&std::fs::read_to_string(p).expect("message")))
            .collect()
    }

    /// Every message to `to` so far.
    pub fn to(&self, to: &str) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .collect()
    }

    /// Waits (up to 15 s) until `n` messages to `to` have arrived; returns them all.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Mail> {
        let start = Instant::now();
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{n} message(s) to {to} expected, {} arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Headers (unfolded) and the decoded body of a message as the sink wrote it.
fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let encoding = header("Content-Transfer-Encoding").to_ascii_lowercase();
    let text = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body"),
            )
            .expect("UTF-8 body")
        }
        _ => body.to_owned(),
    };
    Mail {
        to: header("X-Envelope-To")
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
        subject: header("Subject"),
        text,
        raw: raw.clone(),
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 body")
}
