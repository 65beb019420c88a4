//! A small connection pool: at most `size` clients, handed out behind a semaphore, each with
//! its own cache of prepared statements.
//!
//! Two guards keep one caller from stalling everyone (docs/SECURITY.md, "Limits"):
//! * requests to the FHIR API — whose searches' cost the caller shapes — run inside
//!   [`crate::api_request`], and never hold more than `size - reserved` connections
//!   between them, so `/readyz`, the pages and sign-in always have connections left;
//! * nobody waits longer than `wait` for a connection: then the store answers
//!   [`StoreError::Busy`] (HTTP 503 with `Retry-After`) instead of queueing without end.
//!
//! A statement still running when its caller goes away (the client disconnected, so the
//! request's future was dropped) is cancelled on the server: see [`CancelOnDrop`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{CancelToken, Client, Config, NoTls, Statement};

use crate::{Result, StoreError};

/// Statements kept per connection before the cache is emptied (dynamic SQL is bounded in
/// practice, but not in principle).
const STATEMENT_CACHE: usize = 256;

pub(super) struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    /// Connections API requests may hold at once (`size - reserved`).
    api_permits: Semaphore,
    wait: Duration,
}

pub(super) struct Conn {
    pub client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// A prepared statement for `sql`, prepared on this connection once.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(super::pg_error)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// A checked-out connection; returned to the pool when dropped (unless it broke).
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
    _api_permit: Option<SemaphorePermit<'a>>,
}

/// Held while a statement runs whose caller may go away: if it is dropped before
/// [`CancelOnDrop::finished`] (the HTTP client disconnected, so the request's future was
/// dropped), PostgreSQL is asked to cancel the statement rather than run it on to the
/// statement timeout. The connection itself goes back to the pool at once: its next
/// statement queues behind the cancelled one, which ends within a round trip.
pub(super) struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    pub fn new(conn: &Conn) -> Self {
        CancelOnDrop(Some(conn.client.cancel_token()))
    }

    pub fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = token.cancel_query(NoTls).await {
                    tracing::warn!(error = %e, "cancelling an abandoned statement");
                }
            });
        }
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("leased connection")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

impl Pool {
    /// A pool of `size` connections (at least 2), of which API requests may hold all but
    /// `reserved` (at least one is always theirs); nobody waits longer than `wait`.
    pub async fn new(config: Config, size: usize, reserved: usize, wait: Duration) -> Result<Pool> {
        let size = size.max(2);
        let pool = Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
            api_permits: Semaphore::new(size.saturating_sub(reserved).max(1)),
            wait,
        };
        // Connect once now: an unreachable database fails `open`.
        let first = pool.connect().await?;
        pool.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(first);
        Ok(pool)
    }

    async fn connect(&self) -> Result<Conn> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(super::pg_error)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// A connection, waiting at most the pool's `wait` for one; within an API request,
    /// one of the connections API requests may hold (see the module documentation).
    pub async fn get(&self) -> Result<Lease<'_>> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let api = match crate::in_api_request() {
            true => Some(acquire(&self.api_permits, deadline).await?),
            false => None,
        };
        let permit = acquire(&self.permits, deadline).await?;
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match idle.pop() {
                    Some(c) if c.client.is_closed() => continue,
                    other => break other,
                }
            }
        };
        let conn = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
            _api_permit: api,
        })
    }
}

async fn acquire(s: &Semaphore, deadline: tokio::time::Instant) -> Result<SemaphorePermit<'_>> {
    match tokio::time::timeout_at(deadline, s.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(StoreError::Closed),
        Err(_) => Err(StoreError::Busy("no database connection came free in time")),
    }
}
