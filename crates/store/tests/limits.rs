//! The limits that keep one request from stalling the store (docs/SECURITY.md, "Limits"):
//! the statement timeout on both databases; on PostgreSQL the connections kept from the
//! FHIR API, the bounded wait for a connection, and the cancelling of a statement whose
//! caller went away.

use std::time::{Duration, Instant};

use passport_store::testing::{fresh_pg_url_async, running_statements, slow_read};
use passport_store::{Limits, Store, StoreError, api_request};

fn limits(statement_timeout_ms: u64) -> Limits {
    Limits {
        statement_timeout: Duration::from_millis(statement_timeout_ms),
        pool_size: 3,
        pool_reserved: 1,
        pool_wait: Duration::from_millis(300),
    }
}

/// A temporary SQLite database (removed when the store is dropped) with limits `l`.
async fn sqlite(l: &Limits) -> Store {
    let store = Store::open_with("sqlite::memory:", l).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn postgres(l: &Limits) -> Option<(Store, String)> {
    let url = fresh_pg_url_async().await?;
    let store = Store::open_with(&url, l).await.unwrap();
    store.migrate().await.unwrap();
    Some((store, url))
}

/// A read past the statement timeout is stopped and reported as busy, and the store
/// goes on answering.
async fn times_out(store: &Store) {
    let started = Instant::now();
    let err = slow_read(store, 30.0)
        .await
        .expect_err("a 30 s read is stopped");
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        started.elapsed()
    );
    slow_read(store, 0.01)
        .await
        .expect("a short read still runs");
    store.ping().await.expect("the store still answers");
}

#[tokio::test]
async fn sqlite_statement_timeout_stops_a_long_read() {
    let store = sqlite(&limits(200)).await;
    times_out(&store).await;
}

#[tokio::test]
async fn postgres_statement_timeout_stops_a_long_read() {
    let Some((store, _)) = postgres(&limits(200)).await else {
        return;
    };
    times_out(&store).await;
    // Migrations are exempt: running them again (with the advisory lock) still works.
    store.migrate().await.unwrap();
    if let Store::Postgres(pg) = &store {
        pg.analyze().await.unwrap();
    }
}

/// With the API holding every connection it may, an API request waits at most the pool's
/// wait and is refused as busy; `ping` (/readyz) and the pages' reads get the reserved
/// connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_connections_from_the_api_and_bounds_the_wait() {
    let Some((store, _)) = postgres(&limits(20_000)).await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    // pool 3, reserved 1: the API may hold 2.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let s = store.clone();
        holders.push(tokio::spawn(api_request(async move {
            slow_read(&s, 3.0).await
        })));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let refused = api_request(slow_read(&store, 0.01)).await;
    assert!(matches!(refused, Err(StoreError::Busy(_))), "{refused:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
    let started = Instant::now();
    store
        .ping()
        .await
        .expect("/readyz's ping gets the reserved connection");
    slow_read(&store, 0.01)
        .await
        .expect("a page's read gets the reserved connection");
    assert!(started.elapsed() < Duration::from_millis(250));
    for h in holders {
        h.await.unwrap().expect("the holders finish");
    }
    api_request(slow_read(&store, 0.01))
        .await
        .expect("once they finish, the API is served again");
}

/// A statement whose caller goes away (its future dropped, as when an HTTP client
/// disconnects) is cancelled on the server rather than left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancels_a_statement_whose_caller_went_away() {
    let Some((store, url)) = postgres(&limits(60_000)).await else {
        return;
    };
    let abandoned = tokio::time::timeout(Duration::from_millis(300), slow_read(&store, 30.0)).await;
    assert!(abandoned.is_err(), "the read was still running");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running = running_statements(&url, "pg_sleep").await;
        if running.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 5 s after its caller went away: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection it ran on is usable.
    for _ in 0..3 {
        slow_read(&store, 0.01).await.unwrap();
    }
}
