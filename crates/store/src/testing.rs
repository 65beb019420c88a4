//! Helpers for tests (this crate's and the server's), behind the `testing` feature:
//!
//! ```toml
//! [dev-dependencies]
//! passport-store = { workspace = true, features = ["testing"] }
//! ```
//!
//! [`fresh_pg_url`] gives each test a PostgreSQL schema of its own:
//!
//! ```text
//! let Some(url) = passport_store::testing::fresh_pg_url() else { return };
//! let store = passport_store::Store::open(&url).await?;
//! store.migrate().await?;
//! ```
//!
//! * The server is `PASSPORT_TEST_PG_URL` if set, else
//!   `postgres://postgres@127.0.0.1:5432/test` ([`DEFAULT_PG_URL`]).
//! * It creates a schema with a random name (`passport_test_<unix seconds>_<random>`) and
//!   returns the server URL with `options=-csearch_path%3D<schema>` added, so every
//!   connection opened from it creates and finds its tables in that schema.
//! * If PostgreSQL cannot be reached: when the environment has `CI=true` it panics (the test
//!   fails: CI must run the PostgreSQL suite); otherwise it prints
//!   `PostgreSQL suite skipped: <reason>` to stderr and returns `None`, and the test should
//!   return early.
//! * Schemas of this kind older than a day are dropped (once per process), so test
//!   databases do not fill up with them.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Config, NoTls};

/// The PostgreSQL server the tests use unless `PASSPORT_TEST_PG_URL` says otherwise.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The schemas' name prefix.
const PREFIX: &str = "passport_test_";

/// A URL of a fresh, empty schema on the test PostgreSQL server, or `None` (with a line on
/// stderr) if there is none and this is not CI. Panics when `CI=true` and PostgreSQL is
/// unreachable.
///
/// Synchronous, callable from anywhere (inside a Tokio runtime too): the work runs on a
/// short-lived thread with its own runtime, blocking the caller for a few milliseconds.
/// [`fresh_pg_url_async`] is the same without blocking.
pub fn fresh_pg_url() -> Option<String> {
    let worker = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime for the test helper")
            .block_on(fresh_pg_url_async())
    });
    match worker.join() {
        Ok(url) => url,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// [`fresh_pg_url`], awaited instead of blocking.
pub async fn fresh_pg_url_async() -> Option<String> {
    let base = std::env::var("PASSPORT_TEST_PG_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
    match create_schema(&base).await {
        Ok(url) => Some(url),
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required when CI=true but is unusable: {reason}");
            }
            eprintln!("PostgreSQL suite skipped: {reason}");
            None
        }
    }
}

async fn create_schema(base: &str) -> Result<String, String> {
    let mut config: Config = base.parse().map_err(|e| format!("bad URL {base}: {e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = tokio::time::timeout(Duration::from_secs(10), config.connect(NoTls))
        .await
        .map_err(|_| format!("timed out connecting to {base}"))?
        .map_err(|e| format!("cannot connect to {base}: {}", describe(&e)))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    drop_stale_schemas(&client, now).await;
    let schema = format!("{PREFIX}{now}_{:016x}", random());
    let created = client
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .map_err(|e| format!("cannot create schema {schema}: {}", describe(&e)));
    drop(client);
    let _ = task.await;
    created?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

async fn drop_stale_schemas(client: &tokio_postgres::Client, now: u64) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(rows) = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c + 24 * 3600 < now) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

/// Puts `store` back as a database written before migration 16 left its CareTeams: their
/// access inputs pending (to be filled in at start-up) and no `access_member` rows. For the
/// tests of that fill.
pub async fn as_before_care_team_members(store: &crate::Store) -> crate::Result<()> {
    const SQL: [&str; 3] = [
        "UPDATE resource_versions SET acc_flags = 0 WHERE resource_type = 'CareTeam'",
        "UPDATE resource_current SET acc_flags = 0 WHERE resource_type = 'CareTeam'",
        "DELETE FROM access_member",
    ];
    match store {
        crate::Store::Sqlite(s) => {
            s.in_transaction(|tx| {
                for sql in SQL {
                    tx.execute(sql, [])?;
                }
                Ok(())
            })
            .await
        }
        crate::Store::Postgres(s) => s.batch(&SQL.join("; ")).await,
    }
}

/// A read that runs for about `seconds` through the path searches take (so it is subject
/// to the statement timeout, the pool's limits and cancellation): PostgreSQL `pg_sleep`,
/// SQLite a counting loop. For the tests of those limits.
pub async fn slow_read(store: &crate::Store, seconds: f64) -> crate::Result<()> {
    match store {
        crate::Store::Sqlite(s) => s.with_reader(|c| {
            // About 10 million steps a second in a debug build; more than enough.
            let n = (seconds * 20_000_000.0) as i64;
            c.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?1) \
                 SELECT count(*) FROM c",
                [n],
                |_| Ok(()),
            )
        }),
        crate::Store::Postgres(s) => s.slow_read(seconds).await,
    }
}

/// Statements of this application now running on the PostgreSQL server whose text contains
/// `needle` (for the test that an abandoned statement is cancelled).
pub async fn running_statements(url: &str, needle: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query(
            "SELECT query FROM pg_stat_activity WHERE state = 'active' \
             AND application_name = 'passport' AND position($1 in query) > 0",
            &[&needle],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Holds `LOCK TABLE table IN ACCESS EXCLUSIVE MODE` in an open transaction on its own
/// connection until the returned client is dropped: every statement reading the table
/// waits meanwhile (for the test that a search whose client went away is cancelled).
pub async fn lock_table(url: &str, table: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .expect("lock");
    client
}
