//! A small connection pool: at most `size` clients, handed out behind a semaphore, each with
//! its own cache of prepared statements.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::{Result, StoreError};

/// Statements kept per connection before the cache is emptied (dynamic SQL is bounded in
/// practice, but not in principle).
const STATEMENT_CACHE: usize = 256;

pub(super) struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
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
    pub async fn new(config: Config, size: usize) -> Result<Pool> {
        let pool = Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
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

    pub async fn get(&self) -> Result<Lease<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
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
        })
    }
}
