//! Shared test harness: every storage test runs against both backends.
//!
//! `both_backends!(name, …)` turns each `async fn name(store: &Store)` into a module `name`
//! with two tests, `name::sqlite` (a temporary database file, see `sqlite::memory:`) and
//! `name::postgres` (a fresh schema from `passport_store::testing::fresh_pg_url`, which
//! skips with a line on stderr when PostgreSQL is unreachable, unless `CI=true`).

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use fhir::search::IndexEntry;
use passport_store::{Store, StoreError, Stored, SystemMatch, TokenCriterion, Write};

pub async fn sqlite() -> Store {
    let store = Store::open("sqlite::memory:").await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    store
}

pub async fn postgres() -> Option<Store> {
    let url = passport_store::testing::fresh_pg_url()?;
    let store = Store::open(&url).await.expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    Some(store)
}

#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = $crate::common::sqlite().await;
                super::$name(&store).await;
                store.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = $crate::common::postgres().await else { return };
                super::$name(&store).await;
                store.close().await;
            }
        }
    )*};
}

/// An `identifier` token index entry.
pub fn ident(system: Option<&str>, code: &str) -> IndexEntry {
    passport_store::search::token_entry("identifier", system, code)
}

pub fn criterion(system: SystemMatch, code: &str) -> TokenCriterion {
    TokenCriterion {
        param: "identifier".into(),
        system,
        code: code.into(),
    }
}

/// A write of `body` replacing `replaces` (`None`: a create), stamped at `at_us`.
pub fn put(
    t: &str,
    id: &str,
    replaces: Option<i64>,
    at_us: i64,
    body: &str,
    index: Vec<IndexEntry>,
) -> Write {
    Write {
        resource_type: t.into(),
        id: id.into(),
        replaces,
        version_id: replaces.map_or(1, |n| n + 1),
        last_updated_us: at_us,
        deleted: false,
        body: Bytes::from(body.to_owned()),
        index,
        access: Default::default(),
        unless_exists: None,
        audit: Vec::new(),
    }
}

pub fn delete(t: &str, id: &str, replaces: i64, at_us: i64) -> Write {
    Write {
        resource_type: t.into(),
        id: id.into(),
        replaces: Some(replaces),
        version_id: replaces + 1,
        last_updated_us: at_us,
        deleted: true,
        body: Bytes::new(),
        index: vec![],
        access: Default::default(),
        unless_exists: None,
        audit: Vec::new(),
    }
}

pub async fn must(store: &Store, w: Write) -> Stored {
    let what = format!("{}/{} v{}", w.resource_type, w.id, w.version_id);
    match store.write(w).await {
        Ok(s) => s,
        Err(e) => panic!("write {what}: {e}"),
    }
}

pub fn conflict(r: Result<Stored, StoreError>) -> Option<i64> {
    match r {
        Err(StoreError::VersionConflict { current }) => current,
        other => panic!("expected a version conflict, got {other:?}"),
    }
}

/// Polls all the futures in order (the first poll of each happens in vector order, on this
/// task) and returns their outputs in the same order.
pub async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (slot, result) in futures.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(
                out.iter_mut()
                    .map(|o| o.take().expect("finished"))
                    .collect(),
            )
        }
    })
    .await
}
