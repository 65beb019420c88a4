//! The hostile requests of the soak (`crud-mix-hostile`, issue 12): the outside probe's ways
//! to stall the service or make it fail, sent by a few clients of their own while the
//! measured workers run the CRUD mix. Their answers are not in the latency figures; any 5xx
//! (or a request the server never answers or closes) is counted as an error of the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::Auth;
use crate::workload::Tally;

/// Hostile clients beside the measured ones.
pub const CLIENTS: usize = 4;

/// The kinds, sent in turn.
const KINDS: usize = 11;

/// What one hostile client saw: requests by kind, and failures in the tally.
pub async fn run(addr: SocketAddr, auth: Arc<Auth>, deadline: Instant, client: usize) -> Tally {
    let mut tally = Tally::default();
    let mut kind = client;
    while Instant::now() < deadline {
        let bearer = match auth.bearer().await {
            Ok(b) => b,
            Err(e) => {
                tally.error(format!("hostile: no token: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (what, outcome) = one(addr, &bearer, kind % KINDS).await;
        tally.requests += 1;
        match outcome {
            Outcome::Status(s) if s >= 500 => tally.error(format!("hostile {what}: HTTP {s}")),
            Outcome::Status(_) | Outcome::Closed => {}
            Outcome::Hung => tally.error(format!("hostile {what}: no answer in 30 s")),
            Outcome::Io(e) => tally.error(format!("hostile {what}: {e}")),
        }
        kind += CLIENTS;
    }
    tally
}

enum Outcome {
    /// The status line's code.
    Status(u16),
    /// The server closed the connection without answering (a timeout doing its job).
    Closed,
    Hung,
    Io(String),
}

async fn one(addr: SocketAddr, bearer: &str, kind: usize) -> (&'static str, Outcome) {
    let auth = format!("Authorization: Bearer {bearer}\r\n");
    let get = |path: String| {
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}Connection: close\r\n\r\n")
    };
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("name=a{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    match kind {
        0 => (
            "300 criteria",
            exchange(addr, get(format!("/fhir/Patient?{}", names(300)))).await,
        ),
        1 => (
            "50 criteria",
            exchange(addr, get(format!("/fhir/Patient?{}", names(50)))).await,
        ),
        2 => (
            "5,000 parameters",
            exchange(addr, get(format!("/fhir/Patient?{}", names(5000)))).await,
        ),
        3 => (
            "2,000 _sort keys",
            exchange(
                addr,
                get(format!(
                    "/fhir/Patient?_sort={}",
                    vec!["name"; 2000].join(",")
                )),
            )
            .await,
        ),
        4 => (
            "NUL in the id",
            exchange(addr, get("/fhir/Patient/a%00".into())).await,
        ),
        5 => (
            "NUL in a value",
            exchange(addr, get("/fhir/Patient?name=%00".into())).await,
        ),
        6 => {
            let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e999999999,"unit":"mg"}}"#;
            (
                "1e999999999",
                exchange(addr, post("/fhir/Observation", &auth, body)).await,
            )
        }
        7 => {
            let body = r#"{"resourceType":"Patient","name":[{"family":"A\u0000B"}]}"#;
            (
                "NUL in a body",
                exchange(addr, post("/fhir/Patient", &auth, body)).await,
            )
        }
        8 => ("slow headers", slow_headers(addr).await),
        9 => ("slow body", slow_body(addr, &auth).await),
        _ => ("idle connections", idle(addr).await),
    }
}

fn post(path: &str, auth: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `request` and reads the status of the answer.
async fn exchange(addr: SocketAddr, request: String) -> Outcome {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Io(e.to_string()),
    };
    if let Err(e) = s.write_all(request.as_bytes()).await {
        return Outcome::Io(e.to_string());
    }
    answer(&mut s, Duration::from_secs(30)).await
}

/// The status of what the server sends before it closes `s` (or `Closed`).
async fn answer(s: &mut TcpStream, within: Duration) -> Outcome {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return Outcome::Hung,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                // The status line is enough; the rest is drained only to the close.
                if got.len() > 64 * 1024 {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&got);
    match text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3)?.parse().ok())
    {
        Some(code) => Outcome::Status(code),
        None => Outcome::Closed,
    }
}

/// Headers that never finish: the server must close the connection (header timeout).
async fn slow_headers(addr: SocketAddr) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Io("connect".into());
    };
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n")
        .await;
    answer(&mut s, Duration::from_secs(30)).await
}

/// A body at 20 bytes a second: the server must cut it off (minimum body rate).
async fn slow_body(addr: SocketAddr, auth: &str) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Io("connect".into());
    };
    let head = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/fhir+json\r\n\
         Content-Length: 100000\r\n\r\n{{"
    );
    let _ = s.write_all(head.as_bytes()).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if s.write_all(b"          ").await.is_err() {
            return Outcome::Closed;
        }
        // A closed connection shows as a read of 0 bytes.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Outcome::Closed,
            Ok(Ok(_)) => return answer(&mut s, Duration::from_secs(5)).await,
            Err(_) => {}
        }
    }
    Outcome::Hung
}

/// Fifty connections that say nothing, held for two seconds.
async fn idle(addr: SocketAddr) -> Outcome {
    let mut held = Vec::new();
    for _ in 0..50 {
        match TcpStream::connect(addr).await {
            Ok(s) => held.push(s),
            Err(e) => return Outcome::Io(e.to_string()),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Outcome::Closed
}
