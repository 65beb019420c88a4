//! Connection limits (issue 12, part 2), with a bounded number of connections on loopback,
//! against the real server on SQLite and PostgreSQL: slow headers, idle keep-alive
//! connections and slow bodies are closed; a slow but real upload finishes; at the cap the
//! oldest idle connection is closed, or a new one gets 503 with `Retry-After`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tight(c: &mut passport_server::Config) {
    c.connections.header_timeout = Duration::from_secs(1);
    c.connections.idle_timeout = Duration::from_secs(2);
    c.connections.min_body_rate = 1000;
    c.connections.max_connections = 8;
}

async fn connect(srv: &TestServer) -> TcpStream {
    TcpStream::connect(srv.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Waits up to `within` for the server to close `s` (reading whatever it sends first);
/// returns what it sent and how long it took, or `None` if it stayed open.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&got).into_owned(),
                    started.elapsed(),
                ));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (headers and a Content-Length body) from a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(
            n > 0,
            "closed before a whole response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

async fn healthz_on(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    read_response(s).await
}

async fn spawn_tight(backend: Backend) -> Option<TestServer> {
    common::spawn_with(backend, tight).await
}

async fn slow_headers_and_idle_connections_are_closed(srv: TestServer) {
    // Headers that never finish: closed after the header timeout (1 s), not the idle one.
    let mut s = connect(&srv).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let (_, took) = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("a connection with half-sent headers is closed");
    assert!(took < Duration::from_millis(1900), "closed after {took:?}");
    // A byte every half second does not keep headers alive: the clock runs from the first.
    let mut s = connect(&srv).await;
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /healthz HTTP/1.1\r\nHost: slowloris\r\n" {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut s, Duration::from_secs(1))
            .await
            .is_some();
    }
    assert!(closed, "a trickle of header bytes kept the connection open");
    // A connection that sends nothing: closed after the idle timeout (2 s).
    let mut s = connect(&srv).await;
    let (_, took) = closed_within(&mut s, Duration::from_secs(6))
        .await
        .expect("a silent connection is closed");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
    // Kept alive after a request: answered, then closed once idle.
    let mut s = connect(&srv).await;
    assert!(healthz_on(&mut s).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        healthz_on(&mut s).await.starts_with("HTTP/1.1 200"),
        "still open when used"
    );
    let (_, took) = closed_within(&mut s, Duration::from_secs(6))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
}

async fn slow_bodies_are_cut_off_and_slow_real_uploads_finish(srv: TestServer) {
    let patient =
        serde_json::to_vec(&json!({"resourceType": "Patient", "gender": "female"})).unwrap();
    // 6 KB: the resource padded with JSON whitespace.
    let mut body = patient[..patient.len() - 1].to_vec();
    body.resize(6000, b' ');
    body.push(b'}');
    let head = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        srv.token,
        body.len()
    );
    // A real but slow upload: 1.5 KB/s against a minimum of 1 KB/s (4 s in all).
    let mut s = connect(&srv).await;
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(300) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = read_response(&mut s).await;
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    // A body at 50 bytes a second: cut off soon after the grace (1 s), and nothing stored.
    let before = srv.get("/fhir/Patient?_summary=count").await;
    let before = json_body(before).await["total"].clone();
    let mut s = connect(&srv).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for chunk in body.chunks(10) {
        if s.write_all(chunk).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !cut {
        cut = closed_within(&mut s, Duration::from_secs(1))
            .await
            .is_some();
    }
    assert!(cut, "a body at 50 B/s was still being read after 6 s");
    let after = srv.get("/fhir/Patient?_summary=count").await;
    assert_eq!(
        json_body(after).await["total"],
        before,
        "nothing was stored"
    );
}

async fn the_cap_closes_idle_connections_then_sheds_with_503(srv: TestServer) {
    // Eight idle connections fill the cap; each new one closes the oldest idle one.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(connect(&srv).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fresh = connect(&srv).await;
    assert!(healthz_on(&mut fresh).await.starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(1))
            .await
            .is_some(),
        "the oldest idle connection was closed to make room"
    );
    drop(fresh);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Many more than the cap at once (a bounded flood on loopback): the service still
    // answers, and no more than the cap stay open.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(connect(&srv).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut open = 0;
    for s in &mut flood {
        if closed_within(s, Duration::from_millis(20)).await.is_none() {
            open += 1;
        }
    }
    assert!(
        open <= 8,
        "{open} of 200 connections stayed open with a cap of 8"
    );
    let ok = srv.anonymous.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "/healthz during the flood");
    drop(flood);
    // Eight connections mid-request (headers half sent: not idle): a ninth gets 503.
    let mut busy = Vec::new();
    for _ in 0..8 {
        let mut s = connect(&srv).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut shed = connect(&srv).await;
    let (said, _) = closed_within(&mut shed, Duration::from_secs(2))
        .await
        .expect("refused at the cap");
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("Retry-After: 5"), "{said}");
}

on_both_databases_with!(
    slow_headers_and_idle,
    spawn_tight,
    slow_headers_and_idle_connections_are_closed
);
on_both_databases_with!(
    slow_bodies,
    spawn_tight,
    slow_bodies_are_cut_off_and_slow_real_uploads_finish
);
on_both_databases_with!(
    connection_cap,
    spawn_tight,
    the_cap_closes_idle_connections_then_sheds_with_503
);

/// One test per backend: `NAME::sqlite` and `NAME::postgres`, each `f(spawn(backend))`.
#[macro_export]
macro_rules! on_both_databases_with {
    ($name:ident, $spawn:ident, $f:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $f($spawn(Backend::Sqlite).await.expect("sqlite")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(srv) = $spawn(Backend::Postgres).await {
                    $f(srv).await;
                }
            }
        }
    };
}
