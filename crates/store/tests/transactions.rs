//! `Store::write_all`: several writes in one transaction, all or nothing, on both backends.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{criterion, delete, ident, join_all, must, put};
use passport_store::{HistoryQuery, Store, StoreError, SystemMatch, WriteAllError};

both_backends!(
    all_writes_stored_together,
    a_refused_write_rolls_back_everything,
    later_writes_see_earlier_ones,
    conditional_create_inside_a_transaction,
    concurrent_transactions_lose_no_update,
    transactions_and_single_writes_interleave,
    empty_and_inconsistent,
);

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn type_history(t: &str) -> HistoryQuery {
    HistoryQuery {
        resource_type: Some(t.into()),
        count: 1000,
        ..Default::default()
    }
}

fn refused(r: Result<Vec<passport_store::Stored>, WriteAllError>) -> (Option<usize>, StoreError) {
    match r {
        Err(WriteAllError { index, error }) => (index, error),
        Ok(s) => panic!("expected the transaction to be refused, it stored {s:?}"),
    }
}

async fn all_writes_stored_together(store: &Store) {
    must(store, put("Basic", "old", None, 1, "{\"v\":1}", vec![])).await;
    let stored = store
        .write_all(vec![
            put(
                "Basic",
                "a",
                None,
                10,
                "{\"a\":1}",
                vec![ident(Some("s"), "A")],
            ),
            put("Basic", "old", Some(1), 11, "{\"v\":2}", vec![]),
            delete("Basic", "old", 2, 12),
        ])
        .await
        .expect("transaction");
    assert_eq!(stored.len(), 3);
    assert_eq!((stored[0].id.as_str(), stored[0].version_id), ("a", 1));
    assert_eq!((stored[1].id.as_str(), stored[1].version_id), ("old", 2));
    assert!(stored[2].deleted);
    assert!(stored[2].body.is_empty());
    let a = store.read("Basic", "a").await.unwrap().unwrap();
    assert_eq!(a.body, Bytes::from("{\"a\":1}"));
    let old = store.read("Basic", "old").await.unwrap().unwrap();
    assert!(old.deleted);
    assert_eq!(old.version_id, 3);
    let found = store
        .find_by_tokens("Basic", &[criterion(SystemMatch::Is("s".into()), "A")])
        .await
        .unwrap();
    assert_eq!(found, vec!["a".to_owned()]);
}

async fn a_refused_write_rolls_back_everything(store: &Store) {
    must(store, put("Basic", "keep", None, 1, "{\"v\":1}", vec![])).await;
    let (index, error) = refused(
        store
            .write_all(vec![
                put(
                    "Basic",
                    "new1",
                    None,
                    10,
                    "{}",
                    vec![ident(Some("s"), "N1")],
                ),
                put("Basic", "keep", Some(1), 11, "{\"v\":2}", vec![]),
                put("Basic", "new2", None, 12, "{}", vec![]),
                // Stale: "keep" is at version 1 outside, 2 inside; this names 5.
                put("Basic", "keep", Some(5), 13, "{\"v\":6}", vec![]),
                put("Basic", "new3", None, 14, "{}", vec![]),
            ])
            .await,
    );
    assert_eq!(index, Some(3));
    assert!(
        matches!(error, StoreError::VersionConflict { current: Some(2) }),
        "{error:?}"
    );
    for id in ["new1", "new2", "new3"] {
        assert!(store.read("Basic", id).await.unwrap().is_none(), "{id}");
    }
    let keep = store.read("Basic", "keep").await.unwrap().unwrap();
    assert_eq!(keep.version_id, 1);
    assert_eq!(keep.body, Bytes::from("{\"v\":1}"));
    assert_eq!(
        store
            .history(
                &type_history("Basic"),
                passport_store::search::Visibility::System
            )
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .find_by_tokens("Basic", &[criterion(SystemMatch::Any, "N1")])
            .await
            .unwrap()
            .is_empty()
    );
    // The store is still usable, and the same ids can be created afterwards.
    must(store, put("Basic", "new1", None, 20, "{}", vec![])).await;
}

async fn later_writes_see_earlier_ones(store: &Store) {
    // Two versions of one resource in one transaction.
    let stored = store
        .write_all(vec![
            put("Basic", "x", None, 10, "{\"v\":1}", vec![ident(None, "X1")]),
            put(
                "Basic",
                "x",
                Some(1),
                11,
                "{\"v\":2}",
                vec![ident(None, "X2")],
            ),
        ])
        .await
        .expect("transaction");
    assert_eq!(stored[1].version_id, 2);
    let x = store.read("Basic", "x").await.unwrap().unwrap();
    assert_eq!(
        (x.version_id, x.body.clone()),
        (2, Bytes::from("{\"v\":2}"))
    );
    assert_eq!(
        store
            .history(
                &HistoryQuery {
                    resource_type: Some("Basic".into()),
                    id: Some("x".into()),
                    count: 10,
                    ..Default::default()
                },
                passport_store::search::Visibility::System
            )
            .await
            .unwrap()
            .len(),
        2
    );
    // The index follows the last version written.
    assert!(
        store
            .find_by_tokens("Basic", &[criterion(SystemMatch::Any, "X1")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_by_tokens("Basic", &[criterion(SystemMatch::Any, "X2")])
            .await
            .unwrap(),
        vec!["x".to_owned()]
    );
    // A second create of an id created earlier in the same transaction is refused.
    let (index, error) = refused(
        store
            .write_all(vec![
                put("Basic", "y", None, 20, "{}", vec![]),
                put("Basic", "y", None, 21, "{}", vec![]),
            ])
            .await,
    );
    assert_eq!(index, Some(1));
    assert!(
        matches!(error, StoreError::VersionConflict { current: Some(1) }),
        "{error:?}"
    );
    assert!(store.read("Basic", "y").await.unwrap().is_none());
}

async fn conditional_create_inside_a_transaction(store: &Store) {
    // The condition sees a resource created by an earlier write of the same transaction.
    let mut second = put("Basic", "c2", None, 11, "{}", vec![ident(Some("s"), "C")]);
    second.unless_exists = Some(vec![criterion(SystemMatch::Is("s".into()), "C")]);
    let (index, error) = refused(
        store
            .write_all(vec![
                put("Basic", "c1", None, 10, "{}", vec![ident(Some("s"), "C")]),
                second.clone(),
            ])
            .await,
    );
    assert_eq!(index, Some(1));
    match error {
        StoreError::ConditionMatched(ids) => assert_eq!(ids, vec!["c1".to_owned()]),
        other => panic!("{other:?}"),
    }
    assert!(store.read("Basic", "c1").await.unwrap().is_none());
    // With nothing matching, it is stored.
    let stored = store.write_all(vec![second]).await.expect("no match");
    assert_eq!(stored[0].id, "c2");
}

/// Many transactions each increment two shared counters, half of them in one order and
/// half in the other (which would deadlock on row locks without ordered locking), and each
/// create a resource of their own; conflicts are retried from a fresh read. Nothing is
/// lost and nothing is half-done.
async fn concurrent_transactions_lose_no_update(store: &Store) {
    must(store, put("Basic", "A", None, 0, "0", vec![])).await;
    must(store, put("Basic", "B", None, 0, "0", vec![])).await;
    let conflicts = AtomicUsize::new(0);
    const N: usize = 24;
    let tasks: Vec<Fut<'_, ()>> = (0..N)
        .map(|i| {
            let conflicts = &conflicts;
            Box::pin(async move {
                loop {
                    let mut writes = Vec::new();
                    let order = if i % 2 == 0 { ["A", "B"] } else { ["B", "A"] };
                    for id in order {
                        let cur = store.read("Basic", id).await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&cur.body).unwrap().parse().unwrap();
                        writes.push(put(
                            "Basic",
                            id,
                            Some(cur.version_id),
                            i as i64,
                            &(n + 1).to_string(),
                            vec![],
                        ));
                    }
                    writes.push(put("Basic", &format!("own-{i}"), None, 0, "{}", vec![]));
                    match store.write_all(writes).await {
                        Ok(_) => break,
                        Err(WriteAllError {
                            error: StoreError::VersionConflict { .. },
                            ..
                        }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }) as Fut<'_, ()>
        })
        .collect();
    join_all(tasks).await;
    for id in ["A", "B"] {
        let last = store.read("Basic", id).await.unwrap().unwrap();
        assert_eq!(last.body, Bytes::from(N.to_string()), "{id}");
        assert_eq!(last.version_id, N as i64 + 1, "{id}");
    }
    for i in 0..N {
        let own = store.read("Basic", &format!("own-{i}")).await.unwrap();
        assert_eq!(own.map(|s| s.version_id), Some(1));
    }
    // Every version of every resource: 2 creates + 2·N increments + N own creates.
    assert_eq!(
        store
            .history(
                &type_history("Basic"),
                passport_store::search::Visibility::System
            )
            .await
            .unwrap()
            .len(),
        2 + 3 * N
    );
    eprintln!(
        "{N} transactions, {} conflicts retried",
        conflicts.load(Ordering::Relaxed)
    );
}

/// A transaction queued among single writes: each stands or falls on its own.
async fn transactions_and_single_writes_interleave(store: &Store) {
    let futures: Vec<Fut<'_, bool>> = (0..30)
        .map(|i| {
            Box::pin(async move {
                if i % 3 == 0 {
                    // Every third is a transaction, every sixth doomed (a stale update).
                    let mut writes = vec![put("Basic", &format!("t{i}"), None, 1, "{}", vec![])];
                    if i % 6 == 0 {
                        writes.push(put("Basic", "nope", Some(1), 1, "{}", vec![]));
                    }
                    store.write_all(writes).await.is_ok()
                } else {
                    store
                        .write(put("Basic", &format!("s{i}"), None, 1, "{}", vec![]))
                        .await
                        .is_ok()
                }
            }) as Fut<'_, bool>
        })
        .collect();
    let ok = join_all(futures).await;
    for (i, ok) in ok.into_iter().enumerate() {
        assert_eq!(ok, i % 6 != 0, "{i}");
        let id = if i % 3 == 0 {
            format!("t{i}")
        } else {
            format!("s{i}")
        };
        assert_eq!(
            store.read("Basic", &id).await.unwrap().is_some(),
            ok,
            "{id}"
        );
    }
}

async fn empty_and_inconsistent(store: &Store) {
    assert!(store.write_all(vec![]).await.unwrap().is_empty());
    let mut bad = put("Basic", "z", None, 1, "{}", vec![]);
    bad.version_id = 7;
    let (index, error) = refused(
        store
            .write_all(vec![put("Basic", "w", None, 1, "{}", vec![]), bad])
            .await,
    );
    assert_eq!(index, Some(1));
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(store.read("Basic", "w").await.unwrap().is_none());
}
