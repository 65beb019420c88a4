//! Accepting and keeping HTTP connections, so that no client can hold the service's
//! connections or file descriptors (docs/SECURITY.md, "Limits"). `axum::serve` has no
//! timeouts; this loop drives hyper's HTTP/1 connections itself and watches each one:
//!
//! * **headers**: a request's headers must arrive within `header_timeout` of its first
//!   byte (slow headers, "slowloris");
//! * **bodies**: after that same grace, a body must keep arriving at `min_body_rate` bytes a
//!   second on average — slow enough for a poor mobile connection, not for a client that
//!   sends a byte a minute;
//! * **idle**: a kept-alive connection with no request in progress is closed after
//!   `idle_timeout` without traffic (so is one whose client stopped reading a response);
//! * **a cap**: at most `max_connections` open at once. At the cap a new connection closes
//!   the oldest idle one; if none is idle it is answered `503` with `Retry-After` and
//!   closed, before the process could run out of file descriptors.
//!
//! A request whose client goes away is dropped with its connection, so its database
//! statement is cancelled (see the store's pool).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// The connection limits (each a `passport serve` flag; the README lists them).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// The longest a request's headers may take to arrive, from their first byte; also the
    /// grace before a body's rate is checked.
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this long without traffic.
    pub idle_timeout: Duration,
    /// The slowest a request body may arrive, on average, in bytes a second.
    pub min_body_rate: u64,
    /// Connections open at once; more are refused (503) unless an idle one can be closed.
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;

    /// Three quarters of the process's open-file limit, at most 10,000: the rest stay for
    /// the database, the log and the files a request opens.
    pub fn default_max_connections() -> usize {
        (open_file_limit().unwrap_or(1024) * 3 / 4).clamp(16, 10_000)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            min_body_rate: Self::DEFAULT_MIN_BODY_RATE,
            max_connections: Self::default_max_connections(),
        }
    }
}

/// The soft limit on open files (`ulimit -n`), where the system says (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What the watcher knows of one connection. Times are milliseconds since the server
/// started; 0 means "not now".
struct Watch {
    last_activity: AtomicU64,
    /// When the first byte of the request now being read arrived (0: none being read).
    head_since: AtomicU64,
    /// Requests in progress (a response not yet handed to hyper).
    in_flight: AtomicUsize,
    close: Notify,
}

impl Watch {
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0
    }
}

struct Connections {
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Watch>>>,
    limits: ConnectionLimits,
}

impl Connections {
    fn now(&self) -> u64 {
        // Never 0, which means "not now".
        self.started.elapsed().as_millis() as u64 + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Watch>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more connection: `true` if there is room (closing the oldest idle
    /// connection if the cap is reached), `false` if every connection is busy.
    fn make_room(&self) -> bool {
        let mut open = self.lock();
        if open.len() < self.limits.max_connections {
            return true;
        }
        let oldest_idle = open
            .iter()
            .filter(|(_, w)| w.idle())
            .min_by_key(|(_, w)| w.last_activity.load(Ordering::Acquire))
            .map(|(id, _)| *id);
        // Out of the count at once, so that a burst of arrivals closes several.
        match oldest_idle.and_then(|id| open.remove(&id)) {
            Some(w) => {
                w.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes connections past their header or idle timeout.
    fn sweep(&self) {
        let now = self.now();
        let header = self.limits.header_timeout.as_millis() as u64;
        let idle = self.limits.idle_timeout.as_millis() as u64;
        for w in self.lock().values() {
            let head_since = w.head_since.load(Ordering::Acquire);
            let slow_head = head_since != 0 && now.saturating_sub(head_since) > header;
            let quiet = now.saturating_sub(w.last_activity.load(Ordering::Acquire)) > idle;
            if slow_head || (w.in_flight.load(Ordering::Acquire) == 0 && quiet) {
                w.close.notify_one();
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets
/// requests in progress finish (closing idle connections at once) and returns when every
/// connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let conns = Arc::new(Connections {
        started: Instant::now(),
        next_id: AtomicU64::new(1),
        open: Mutex::new(HashMap::new()),
        limits,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = {
        let conns = conns.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => conns.sweep(),
                    _ = stop.changed() => break,
                }
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        // Reap finished connection tasks as we go.
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept:
                // make room and pause rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                conns.make_room();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !conns.make_room() {
            tasks.spawn(refuse(stream));
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
        let now = conns.now();
        let watch = Arc::new(Watch {
            last_activity: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: Notify::new(),
        });
        conns.lock().insert(id, watch.clone());
        let (conns, app, stop) = (conns.clone(), app.clone(), stop_rx.clone());
        tasks.spawn(async move {
            connection(stream, peer, app, conns.clone(), watch, stop).await;
            conns.lock().remove(&id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Requests in progress finish; give them as long as a request may take.
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    sweeper.abort();
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = "The service is busy. Try again shortly.\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: text/plain; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        crate::error::RETRY_AFTER,
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    conns: Arc<Connections>,
    watch: Arc<Watch>,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conns: conns.clone(),
        watch: watch.clone(),
    });
    let service = {
        let watch = watch.clone();
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (watch, conns, app) = (watch.clone(), conns.clone(), app.clone());
            async move {
                use tower_service::Service;
                watch.head_since.store(0, Ordering::Release);
                watch.in_flight.fetch_add(1, Ordering::AcqRel);
                let _done = InFlight(watch.clone(), conns.clone());
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                let body = Body::new(MinRate::new(body, &conns.limits, watch));
                let req = axum::extract::Request::from_parts(parts, body);
                // A Router is always ready: no poll_ready needed.
                let mut app = app;
                app.call(req).await
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = watch.close.notified() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Ends a request's "in progress" when its response is handed over (or it is dropped).
struct InFlight(Arc<Watch>, Arc<Connections>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_activity.store(self.1.now(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting traffic: the time of the last byte either way, and when a new
/// request's first byte arrives.
struct Watched {
    inner: TcpStream,
    conns: Arc<Connections>,
    watch: Arc<Watch>,
}

impl Watched {
    fn active(&self) -> u64 {
        let now = self.conns.now();
        self.watch.last_activity.store(now, Ordering::Release);
        now
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            let now = this.active();
            if this.watch.in_flight.load(Ordering::Acquire) == 0 {
                // The first bytes of a new request: its headers' clock starts.
                let _ = this.watch.head_since.compare_exchange(
                    0,
                    now,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.active();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            this.active();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that must keep arriving at the minimum rate once the grace has passed;
/// slower, it fails and its connection is closed.
struct MinRate {
    inner: hyper::body::Incoming,
    started: tokio::time::Instant,
    received: u64,
    rate: u64,
    grace: Duration,
    /// When the body would fall below the rate if nothing more arrived.
    check: Pin<Box<tokio::time::Sleep>>,
    watch: Arc<Watch>,
}

impl MinRate {
    fn new(inner: hyper::body::Incoming, limits: &ConnectionLimits, watch: Arc<Watch>) -> Self {
        let started = tokio::time::Instant::now();
        let mut body = MinRate {
            inner,
            started,
            received: 0,
            rate: limits.min_body_rate.max(1),
            grace: limits.header_timeout,
            check: Box::pin(tokio::time::sleep_until(started)),
            watch,
        };
        let first = body.deadline();
        body.check.as_mut().reset(first);
        body
    }

    /// The moment the average rate (after the grace) would fall below the minimum.
    fn deadline(&self) -> tokio::time::Instant {
        self.started
            + self.grace
            + Duration::from_secs_f64((self.received + 1) as f64 / self.rate as f64)
    }
}

/// Why a body was cut off.
#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived more slowly than the server's minimum rate")
    }
}

impl std::error::Error for TooSlow {}

impl http_body::Body for MinRate {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    let next = self.deadline();
                    self.check.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                if self.check.as_mut().poll(cx).is_ready() {
                    self.watch.close.notify_one();
                    return Poll::Ready(Some(Err(Box::new(TooSlow))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
