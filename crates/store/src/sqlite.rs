//! The SQLite backend: one file, one process.
//!
//! * **URLs**: `sqlite://relative/path.db`, `sqlite:///absolute/path.db` (parent
//!   directories are created), and `sqlite::memory:` — a fresh, private, *temporary file*
//!   database (in the system temp directory, removed when the store is dropped). A real file
//!   rather than SQLite's `:memory:` so that tests exercise exactly what production runs:
//!   WAL, `synchronous=FULL`, one writer connection and a pool of reader connections that
//!   share the database.
//! * **Durability**: WAL journal, `synchronous=FULL`: a write returns only after the WAL
//!   holding its commit has been fsynced.
//! * **Writes**: one dedicated OS thread owns the only write connection and is fed through
//!   a bounded channel. It takes the first queued write, drains whatever else is already
//!   queued (up to [`BATCH_CAP`]), runs them in ONE transaction with a `SAVEPOINT` per write
//!   (a failing write — a version conflict, say — rolls back only itself), commits once
//!   (group commit: one fsync for the batch) and answers each caller through a oneshot.
//!   Writes in a batch run in queue order, so a later one sees the earlier ones.
//! * **Reads**: a pool of reader connections used inline on the calling task's thread (no
//!   `spawn_blocking`: a primary-key read costs less than a thread hop). Connections are
//!   checked out of a `Mutex<Vec<Connection>>` and returned; one is opened when none is
//!   idle. Since a read never awaits while holding a connection, at most one connection per
//!   OS thread reading at that moment is in use; at most [`IDLE_READERS`] are kept idle.
//!   WAL means reads never wait for the writer.

mod accounts;
mod audit;
mod break_glass;
mod card_links;
mod identities;
mod oauth;
mod onboarding;
pub(crate) mod search;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::{mpsc, oneshot};

use crate::sql::{self, Arg, Migration};
use crate::*;

/// The read cache's budget for stored bodies: enough for the hot set of a busy clinic day,
/// small enough to keep the server well under 100 MiB.
pub const READ_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// The most writes committed together in one transaction.
pub const BATCH_CAP: usize = 256;
/// Writes that may wait in the queue before callers wait to enqueue (back-pressure).
const QUEUE_CAP: usize = 4096;
/// Reader connections kept open while idle.
pub const IDLE_READERS: usize = 16;
/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "search",
        sql: include_str!("../migrations/sqlite/0002_search.sql"),
    },
    Migration {
        version: 3,
        name: "audit",
        sql: include_str!("../migrations/sqlite/0003_audit.sql"),
    },
    Migration {
        version: 4,
        name: "accounts",
        sql: include_str!("../migrations/sqlite/0004_accounts.sql"),
    },
    Migration {
        version: 5,
        name: "oauth",
        sql: include_str!("../migrations/sqlite/0005_oauth.sql"),
    },
    Migration {
        version: 6,
        name: "external_identities",
        sql: include_str!("../migrations/sqlite/0006_external_identities.sql"),
    },
    Migration {
        version: 7,
        name: "onboarding",
        sql: include_str!("../migrations/sqlite/0007_onboarding.sql"),
    },
    Migration {
        version: 8,
        name: "search_rid",
        sql: include_str!("../migrations/sqlite/0008_search_rid.sql"),
    },
    Migration {
        version: 9,
        name: "partial_reference_url",
        sql: include_str!("../migrations/sqlite/0009_partial_reference_url.sql"),
    },
    Migration {
        version: 10,
        name: "access_enforcement",
        sql: include_str!("../migrations/sqlite/0010_access_enforcement.sql"),
    },
    Migration {
        version: 11,
        name: "break_glass",
        sql: include_str!("../migrations/sqlite/0011_break_glass.sql"),
    },
    Migration {
        version: 12,
        name: "launch",
        sql: include_str!("../migrations/sqlite/0012_launch.sql"),
    },
    Migration {
        version: 13,
        name: "audit_outbox",
        sql: include_str!("../migrations/sqlite/0013_audit_outbox.sql"),
    },
    Migration {
        version: 14,
        name: "access_inputs",
        sql: include_str!("../migrations/sqlite/0014_access_inputs.sql"),
    },
    Migration {
        version: 15,
        name: "email_verification",
        sql: include_str!("../migrations/sqlite/0015_email_verification.sql"),
    },
    Migration {
        version: 16,
        name: "care_team_members",
        sql: include_str!("../migrations/sqlite/0016_care_team_members.sql"),
    },
    Migration {
        version: 17,
        name: "card_links",
        sql: include_str!("../migrations/sqlite/0017_card_links.sql"),
    },
];

const READ_SQL: &str = "SELECT v.version_id, v.last_updated_us, v.deleted, v.body \
     FROM resource_current c JOIN resource_versions v ON v.seq = c.seq \
     WHERE c.resource_type = ?1 AND c.id = ?2";
const VREAD_SQL: &str = "SELECT version_id, last_updated_us, deleted, body FROM resource_versions \
     WHERE resource_type = ?1 AND id = ?2 AND version_id = ?3";

/// How many SQLite virtual-machine steps run between checks of a read's deadline (a few
/// microseconds' work).
const PROGRESS_STEPS: std::ffi::c_int = 4096;

pub struct SqliteStore {
    /// Current versions of hot resources; kept coherent by [`crate::Store`] (see cache.rs).
    pub(crate) cache: crate::cache::ReadCache,
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// The longest one read may run before SQLite is told to stop (see `with_reader`).
    statement_timeout: std::time::Duration,
    queue: mpsc::Sender<writer::Job>,
    commits: Arc<AtomicU64>,
    // Declared last: dropped after the queue's sender, so the writer thread has been told
    // to stop by the time this joins it (and removes a temporary database).
    _writer: WriterHandle,
}

impl SqliteStore {
    pub async fn open(url: &str, limits: &crate::Limits) -> Result<Self> {
        let (path, temp_dir) = match parse_url(url)? {
            Location::File(p) => {
                if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                (p, None)
            }
            Location::Temporary => {
                let dir = temp_dir()?;
                (dir.join("passport.db"), Some(dir))
            }
        };
        let conn = match open_writer(&path) {
            Ok(c) => c,
            Err(e) => {
                if let Some(dir) = &temp_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };
        let commits = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel(QUEUE_CAP);
        let thread_commits = commits.clone();
        let join = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, thread_commits))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let store = SqliteStore {
            cache: crate::cache::ReadCache::new(READ_CACHE_BYTES),
            path,
            readers: Mutex::new(Vec::new()),
            statement_timeout: limits.statement_timeout,
            queue: tx,
            commits,
            _writer: WriterHandle {
                join: Some(join),
                temp_dir,
            },
        };
        // One reader up front, so a bad file fails here rather than at the first read.
        let first = open_reader(&store.path)?;
        store.idle().push(first);
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        self.call(writer::migrate).await
    }

    pub async fn ping(&self) -> Result<()> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT 1")?
                .query_row([], |r| r.get::<_, i64>(0))
        })
        .map(|_| ())
    }

    pub async fn read(&self, t: &str, id: &str) -> Result<Option<Stored>> {
        self.with_reader(|c| {
            c.prepare_cached(READ_SQL)?
                .query_row((t, id), |r| stored(r, t, id))
                .optional()
        })
    }

    pub async fn vread(&self, t: &str, id: &str, v: i64) -> Result<Option<Stored>> {
        self.with_reader(|c| {
            c.prepare_cached(VREAD_SQL)?
                .query_row((t, id, v), |r| stored(r, t, id))
                .optional()
        })
    }

    /// Queues the write for the writer thread and waits until its batch is committed (and
    /// fsynced) or it has been refused.
    pub async fn write(&self, w: Write) -> Result<Stored> {
        sql::check_write(&w)?;
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(writer::Job::Write(Box::new(w), tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues the writes as ONE job: the writer runs them in one savepoint (inside its
    /// group-commit transaction), all or nothing, and answers once the batch is committed.
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<Stored>, WriteAllError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(writer::Job::WriteAll(writes, tx))
            .await
            .map_err(|_| WriteAllError::whole(StoreError::Closed))?;
        rx.await
            .map_err(|_| WriteAllError::whole(StoreError::Closed))?
    }

    pub async fn find_by_tokens(&self, t: &str, c: &[TokenCriterion]) -> Result<Vec<String>> {
        self.with_reader(|conn| writer::find_by_tokens(conn, t, c))
    }

    /// Lets every write already queued finish (committed, callers answered), then refuses
    /// new ones with [`StoreError::Closed`]. Reads keep working. Idempotent.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(writer::Job::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Transactions committed by the writer so far (each commits a whole batch of writes):
    /// with many concurrent writers this grows much more slowly than the number of writes.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The value of `PRAGMA name` on the write connection (e.g. `synchronous` → `"2"`, FULL;
    /// `journal_mode` → `"wal"`). `name` must be a plain identifier.
    pub async fn writer_pragma(&self, name: &str) -> Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Backend(format!("not a pragma name: {name:?}")));
        }
        let query = format!("PRAGMA {name}");
        self.call(move |c| {
            c.query_row(&query, [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(s) => s,
                    other => format!("{other:?}"),
                })
                .map_err(backend)
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread, in order with the queued writes.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job = writer::Job::Call(Box::new(move |c: &mut Connection| {
            let _ = tx.send(f(c));
        }));
        self.queue.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` in a transaction of its own on the writer thread.
    pub(crate) async fn in_transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        self.call(move |c| {
            let tx = write_transaction(c).map_err(backend)?;
            let out = f(&tx).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a reader connection, inline on this thread.
    pub(crate) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let pooled = self.idle().pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        // Every few thousand virtual-machine steps SQLite asks whether to go on: not past
        // the statement timeout (then it fails with SQLITE_INTERRUPT).
        let deadline = std::time::Instant::now() + self.statement_timeout;
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || std::time::Instant::now() > deadline),
        );
        let result = f(&conn);
        conn.progress_handler(PROGRESS_STEPS, None::<fn() -> bool>);
        {
            let mut idle = self.idle();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result.map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::OperationInterrupted) => {
                StoreError::Busy("a database statement took longer than the statement timeout")
            }
            _ => backend(e),
        })
    }
}

/// A transaction that takes the write lock when it begins. A deferred one that reads first
/// cannot wait for the lock later: if another connection to the file (a second server, a
/// command) committed in between, SQLite fails it at once with "database is locked"
/// instead of waiting out the busy timeout.
pub(crate) fn write_transaction(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

struct WriterHandle {
    join: Option<JoinHandle<()>>,
    temp_dir: Option<PathBuf>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Some(dir) = self.temp_dir.take() {
            // The queue's sender is gone, so the writer finishes its batch and stops; wait
            // for it so it does not write into a directory being removed.
            if let Some(join) = self.join.take() {
                let _ = join.join();
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

enum Location {
    File(PathBuf),
    Temporary,
}

fn parse_url(url: &str) -> Result<Location> {
    if url == "sqlite::memory:" {
        return Ok(Location::Temporary);
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::BadUrl(format!("not a sqlite URL: {url}")))?;
    if rest.is_empty() {
        return Err(StoreError::BadUrl(format!("no path in {url}")));
    }
    if rest.contains('?') {
        return Err(StoreError::BadUrl(format!(
            "query parameters are not supported: {url}"
        )));
    }
    Ok(Location::File(PathBuf::from(rest)))
}

fn temp_dir() -> Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let dir = std::env::temp_dir().join(format!(
        "passport-store-{}-{:016x}",
        std::process::id(),
        h.finish()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// What every connection is set to. The query planner stability guarantee is on: without
/// it, SQLite marks a cached statement to be prepared again whenever a bound value could
/// change its plan — and comparing every `col = ?` of a query against the partial index
/// on `resource_versions` (`WHERE acc_flags = 0`) marks them all, so a search or a
/// passport page was parsed and planned afresh on every call (a third of the page's CPU).
/// Nothing here needs plans chosen from bound values: prefix searches are ranges, and
/// there are no ANALYZE statistics.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(backend)?;
    Ok(())
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    configure(&conn)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "could not enable WAL (journal_mode is {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL;")
        .map_err(backend)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    configure(&conn)?;
    // Readers never write; make that a guarantee.
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(backend)?;
    Ok(conn)
}

/// A `Stored` from `version_id, last_updated_us, deleted, body`.
fn stored(r: &Row<'_>, t: &str, id: &str) -> rusqlite::Result<Stored> {
    Ok(Stored {
        resource_type: t.to_owned(),
        id: id.to_owned(),
        version_id: r.get(0)?,
        last_updated_us: r.get(1)?,
        deleted: r.get(2)?,
        body: Bytes::from(r.get::<_, Vec<u8>>(3)?),
    })
}

pub(crate) fn to_sql<'a>(a: &'a Arg<'a>) -> &'a dyn rusqlite::ToSql {
    match a {
        Arg::Text(s) => s,
        Arg::Int(i) => i,
    }
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(matches!(
            parse_url("sqlite::memory:"),
            Ok(Location::Temporary)
        ));
        match parse_url("sqlite://data/p.db") {
            Ok(Location::File(p)) => assert_eq!(p, PathBuf::from("data/p.db")),
            _ => panic!(),
        }
        match parse_url("sqlite:///var/p.db") {
            Ok(Location::File(p)) => assert_eq!(p, PathBuf::from("/var/p.db")),
            _ => panic!(),
        }
        assert!(parse_url("sqlite://").is_err());
        assert!(parse_url("postgres://x").is_err());
    }

    /// A cached search statement is not prepared again when it is run for another child:
    /// the page's `$everything` (which joins `resource_versions`, with its partial index)
    /// bound to two patients in turn.
    #[test]
    fn cached_statements_are_not_prepared_again_for_new_values() {
        let dir = std::env::temp_dir().join(format!("passport-qpsg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.db");
        let w = open_writer(&path).unwrap();
        for m in MIGRATIONS {
            w.execute_batch(m.sql).unwrap();
        }
        let r = open_reader(&path).unwrap();
        let q = crate::search::EverythingQuery {
            patient_id: "a".into(),
            members: fhir::compartment::everything_members(|_| true),
            since_us: None,
            count: 100,
            after: None,
        };
        let sql = crate::search::everything_sql(false, &q, crate::search::Visibility::System);
        let mut stmt = r.prepare_cached(&sql.text).unwrap();
        for patient in ["a", "b", "c"] {
            let mut args = search::params(&sql.args);
            args[0] = rusqlite::types::Value::Text(patient.into());
            args[1] = rusqlite::types::Value::Text(patient.into());
            let n = stmt
                .query_map(rusqlite::params_from_iter(args), |_| Ok(()))
                .unwrap()
                .count();
            assert_eq!(n, 0);
        }
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
        drop(stmt);
        drop(r);
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every file in migrations/sqlite is listed, in order.
    #[test]
    fn migrations_listed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
    }
}
