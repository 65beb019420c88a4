//! The storage contract, run against both backends (see `common`).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{conflict, criterion, delete, ident, join_all, must, put};
use passport_store::{HistoryQuery, Store, StoreError, Stored, SystemMatch};

both_backends!(
    create_read_vread,
    bytes_returned_unchanged,
    stale_replaces_is_a_conflict,
    create_of_existing_id_is_refused,
    delete_then_read,
    update_after_delete_continues_versions,
    history_levels_since_at_paging,
    token_index_follows_current_version,
    conditional_create,
    failed_writes_leave_no_trace,
    one_failure_does_not_spoil_concurrent_writes,
    concurrent_increments_lose_nothing,
    concurrent_creators_one_winner,
    concurrent_conditional_creates_one_winner,
    close_drains_then_refuses,
    migrate_is_idempotent,
);

async fn create_read_vread(store: &Store) {
    store.ping().await.unwrap();
    assert_eq!(store.read("Patient", "a").await.unwrap(), None);
    let w = put(
        "Patient",
        "a",
        None,
        1_000,
        r#"{"resourceType":"Patient","id":"a"}"#,
        vec![],
    );
    let stored = must(store, w).await;
    assert_eq!(
        stored,
        Stored {
            resource_type: "Patient".into(),
            id: "a".into(),
            version_id: 1,
            last_updated_us: 1_000,
            deleted: false,
            body: Bytes::from_static(br#"{"resourceType":"Patient","id":"a"}"#),
        }
    );
    assert_eq!(
        store.read("Patient", "a").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store.vread("Patient", "a", 1).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.vread("Patient", "a", 2).await.unwrap(), None);
    assert_eq!(store.read("Observation", "a").await.unwrap(), None);

    let v2 = must(
        store,
        put("Patient", "a", Some(1), 2_000, r#"{"v":2}"#, vec![]),
    )
    .await;
    assert_eq!(v2.version_id, 2);
    assert_eq!(store.read("Patient", "a").await.unwrap(), Some(v2));
    assert_eq!(store.vread("Patient", "a", 1).await.unwrap(), Some(stored));
}

async fn bytes_returned_unchanged(store: &Store) {
    // Whitespace, key order, escapes, non-ASCII, even bytes that are not UTF-8: the store
    // never looks inside.
    let odd: Vec<u8> = b"{ \"z\" : 1,\n\t\"a\":\"\\u00e9\xc3\xa9\" }\x00\xff\xfe".to_vec();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    for (id, body) in [("odd", odd), ("big", big)] {
        let mut w = put("Binary", id, None, 1, "", vec![]);
        w.body = Bytes::from(body.clone());
        must(store, w).await;
        let read = store.read("Binary", id).await.unwrap().unwrap();
        assert_eq!(read.body.as_ref(), body.as_slice());
        let h = store
            .history(
                &HistoryQuery {
                    resource_type: Some("Binary".into()),
                    id: Some(id.into()),
                    count: 10,
                    ..Default::default()
                },
                passport_store::search::Visibility::System,
            )
            .await
            .unwrap();
        assert_eq!(h[0].version.body.as_ref(), body.as_slice());
    }
}

async fn stale_replaces_is_a_conflict(store: &Store) {
    must(store, put("Patient", "a", None, 1, "1", vec![])).await;
    must(store, put("Patient", "a", Some(1), 2, "2", vec![])).await;
    let r = store
        .write(put("Patient", "a", Some(1), 3, "stale", vec![]))
        .await;
    assert_eq!(conflict(r), Some(2));
    let r = store
        .write(put("Patient", "a", Some(7), 3, "future", vec![]))
        .await;
    assert_eq!(conflict(r), Some(2));
    let r = store
        .write(put("Patient", "missing", Some(1), 3, "x", vec![]))
        .await;
    assert_eq!(conflict(r), None);
    assert_eq!(
        store.read("Patient", "a").await.unwrap().unwrap().body,
        Bytes::from("2")
    );
    // A write whose version_id does not follow `replaces` is refused outright.
    let mut bad = put("Patient", "a", Some(2), 4, "x", vec![]);
    bad.version_id = 9;
    assert!(matches!(
        store.write(bad).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(
        store
            .read("Patient", "a")
            .await
            .unwrap()
            .unwrap()
            .version_id,
        2
    );
}

async fn create_of_existing_id_is_refused(store: &Store) {
    must(store, put("Patient", "a", None, 1, "1", vec![])).await;
    let r = store
        .write(put("Patient", "a", None, 2, "again", vec![]))
        .await;
    assert_eq!(conflict(r), Some(1));
    // Same id, other type: a different resource.
    must(store, put("Observation", "a", None, 3, "obs", vec![])).await;
    // Deleted resources still exist (in history): a create is refused too.
    must(store, delete("Patient", "a", 1, 4)).await;
    let r = store
        .write(put("Patient", "a", None, 5, "again", vec![]))
        .await;
    assert_eq!(conflict(r), Some(2));
    assert_eq!(
        store.read("Patient", "a").await.unwrap().unwrap().body,
        Bytes::new()
    );
}

async fn delete_then_read(store: &Store) {
    must(store, put("Patient", "a", None, 1, "alive", vec![])).await;
    let d = must(store, delete("Patient", "a", 1, 2)).await;
    assert!(d.deleted);
    assert_eq!(d.version_id, 2);
    let read = store.read("Patient", "a").await.unwrap().unwrap();
    assert_eq!(read, d);
    assert!(read.deleted);
    assert!(read.body.is_empty());
    assert_eq!(read.last_updated_us, 2);
    assert_eq!(store.vread("Patient", "a", 2).await.unwrap(), Some(d));
    let v1 = store.vread("Patient", "a", 1).await.unwrap().unwrap();
    assert!(!v1.deleted);
    assert_eq!(v1.body, Bytes::from("alive"));
    // Deleting a deletion is a new version too (the store has no opinion).
    let r = store.write(delete("Patient", "a", 1, 3)).await;
    assert_eq!(conflict(r), Some(2));
}

async fn update_after_delete_continues_versions(store: &Store) {
    must(store, put("Patient", "a", None, 1, "one", vec![])).await;
    must(store, delete("Patient", "a", 1, 2)).await;
    let v3 = must(
        store,
        put("Patient", "a", Some(2), 3, "three", vec![ident(None, "x")]),
    )
    .await;
    assert_eq!(v3.version_id, 3);
    assert!(!v3.deleted);
    assert_eq!(store.read("Patient", "a").await.unwrap(), Some(v3));
    assert_eq!(
        store
            .find_by_tokens("Patient", &[criterion(SystemMatch::Any, "x")])
            .await
            .unwrap(),
        vec!["a".to_owned()]
    );
}

fn hq(t: Option<&str>, id: Option<&str>) -> HistoryQuery {
    HistoryQuery {
        resource_type: t.map(str::to_owned),
        id: id.map(str::to_owned),
        count: 100,
        ..Default::default()
    }
}

fn labels(h: &[passport_store::HistoryEntry]) -> Vec<String> {
    h.iter()
        .map(|e| {
            format!(
                "{}/{}/{}{}",
                e.version.resource_type,
                e.version.id,
                e.version.version_id,
                if e.version.deleted { "D" } else { "" }
            )
        })
        .collect()
}

async fn history_levels_since_at_paging(store: &Store) {
    must(store, put("Patient", "a", None, 100, "a1", vec![])).await;
    must(store, put("Patient", "b", None, 200, "b1", vec![])).await;
    must(store, put("Observation", "o", None, 300, "o1", vec![])).await;
    must(store, put("Patient", "a", Some(1), 400, "a2", vec![])).await;
    must(store, delete("Patient", "a", 2, 500)).await;
    must(store, put("Patient", "b", Some(1), 600, "b2", vec![])).await;

    let all = store
        .history(&hq(None, None), passport_store::search::Visibility::System)
        .await
        .unwrap();
    assert_eq!(
        labels(&all),
        [
            "Patient/b/2",
            "Patient/a/3D",
            "Patient/a/2",
            "Observation/o/1",
            "Patient/b/1",
            "Patient/a/1"
        ]
    );
    assert!(
        all.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first by seq"
    );
    assert_eq!(all[2].version.body, Bytes::from("a2"));
    assert!(all[1].version.body.is_empty());

    let patients = store
        .history(
            &hq(Some("Patient"), None),
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(
        labels(&patients),
        [
            "Patient/b/2",
            "Patient/a/3D",
            "Patient/a/2",
            "Patient/b/1",
            "Patient/a/1"
        ]
    );

    let a = store
        .history(
            &hq(Some("Patient"), Some("a")),
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(labels(&a), ["Patient/a/3D", "Patient/a/2", "Patient/a/1"]);
    assert_eq!(
        store
            .history(
                &hq(Some("Patient"), Some("zz")),
                passport_store::search::Visibility::System
            )
            .await
            .unwrap(),
        vec![]
    );

    let since = store
        .history(
            &HistoryQuery {
                since_us: Some(400),
                ..hq(None, None)
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(
        labels(&since),
        ["Patient/b/2", "Patient/a/3D", "Patient/a/2"]
    );

    let at = store
        .history(
            &HistoryQuery {
                at_us: Some(450),
                ..hq(None, None)
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(
        labels(&at),
        ["Patient/a/2", "Observation/o/1", "Patient/b/1"]
    );
    let at = store
        .history(
            &HistoryQuery {
                at_us: Some(550),
                ..hq(Some("Patient"), None)
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(labels(&at), ["Patient/a/3D", "Patient/b/1"]);
    let at = store
        .history(
            &HistoryQuery {
                at_us: Some(400),
                ..hq(Some("Patient"), Some("a"))
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(labels(&at), ["Patient/a/2"]);
    let at = store
        .history(
            &HistoryQuery {
                at_us: Some(50),
                ..hq(None, None)
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert!(at.is_empty());
    let both = store
        .history(
            &HistoryQuery {
                at_us: Some(450),
                since_us: Some(250),
                ..hq(None, None)
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(labels(&both), ["Patient/a/2", "Observation/o/1"]);

    // Keyset paging, two at a time.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .history(
                &HistoryQuery {
                    count: 2,
                    before_seq: before,
                    ..Default::default()
                },
                passport_store::search::Visibility::System,
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = Some(page.last().unwrap().seq);
        pages.push(labels(&page));
    }
    assert_eq!(
        pages,
        [
            vec!["Patient/b/2", "Patient/a/3D"],
            vec!["Patient/a/2", "Observation/o/1"],
            vec!["Patient/b/1", "Patient/a/1"]
        ]
    );
    let page = store
        .history(
            &HistoryQuery {
                count: 1,
                before_seq: Some(all[0].seq),
                ..hq(Some("Patient"), Some("b"))
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(labels(&page), ["Patient/b/1"]);
}

async fn token_index_follows_current_version(store: &Store) {
    let find = |code: &'static str| async move {
        store
            .find_by_tokens("Patient", &[criterion(SystemMatch::Any, code)])
            .await
            .unwrap()
    };
    must(
        store,
        put(
            "Patient",
            "a",
            None,
            1,
            "",
            vec![ident(Some("s"), "one"), ident(None, "two")],
        ),
    )
    .await;
    must(
        store,
        put("Patient", "b", None, 1, "", vec![ident(Some("s"), "one")]),
    )
    .await;
    assert_eq!(find("one").await, ["a", "b"]);
    assert_eq!(find("two").await, ["a"]);

    must(
        store,
        put(
            "Patient",
            "a",
            Some(1),
            2,
            "",
            vec![ident(Some("s"), "three")],
        ),
    )
    .await;
    assert_eq!(find("one").await, ["b"]);
    assert!(find("two").await.is_empty());
    assert_eq!(find("three").await, ["a"]);

    must(store, delete("Patient", "a", 2, 3)).await;
    assert!(find("three").await.is_empty());
    // Other types are other namespaces.
    assert!(
        store
            .find_by_tokens("Observation", &[criterion(SystemMatch::Any, "one")])
            .await
            .unwrap()
            .is_empty()
    );
    // Undeleting brings back exactly the new version's tokens.
    must(
        store,
        put("Patient", "a", Some(3), 4, "", vec![ident(None, "four")]),
    )
    .await;
    assert!(find("three").await.is_empty());
    assert_eq!(find("four").await, ["a"]);
    // Repeated identifiers do not repeat ids.
    must(
        store,
        put(
            "Patient",
            "c",
            None,
            5,
            "",
            vec![ident(None, "four"), ident(None, "four")],
        ),
    )
    .await;
    assert_eq!(find("four").await, ["a", "c"]);
}

async fn conditional_create(store: &Store) {
    must(
        store,
        put(
            "Patient",
            "p",
            None,
            1,
            "p",
            vec![ident(Some("nhs"), "123"), ident(None, "local-7")],
        ),
    )
    .await;
    must(
        store,
        put(
            "Patient",
            "gone",
            None,
            1,
            "",
            vec![ident(Some("nhs"), "999")],
        ),
    )
    .await;
    must(store, delete("Patient", "gone", 1, 2)).await;

    let matches = |criteria: Vec<passport_store::TokenCriterion>| async move {
        store.find_by_tokens("Patient", &criteria).await.unwrap()
    };
    use SystemMatch::*;
    assert_eq!(matches(vec![criterion(Any, "123")]).await, ["p"]);
    assert_eq!(
        matches(vec![criterion(Is("nhs".into()), "123")]).await,
        ["p"]
    );
    assert!(
        matches(vec![criterion(Is("other".into()), "123")])
            .await
            .is_empty()
    );
    assert!(matches(vec![criterion(Absent, "123")]).await.is_empty());
    assert_eq!(matches(vec![criterion(Absent, "local-7")]).await, ["p"]);
    assert!(
        matches(vec![criterion(Is("nhs".into()), "local-7")])
            .await
            .is_empty()
    );
    assert_eq!(
        matches(vec![
            criterion(Is("nhs".into()), "123"),
            criterion(Absent, "local-7")
        ])
        .await,
        ["p"]
    );
    assert!(
        matches(vec![
            criterion(Is("nhs".into()), "123"),
            criterion(Absent, "nope")
        ])
        .await
        .is_empty()
    );
    assert!(
        matches(vec![criterion(Any, "999")]).await.is_empty(),
        "deleted resources never match"
    );
    let other_param = passport_store::TokenCriterion {
        param: "code".into(),
        system: Any,
        code: "123".into(),
    };
    assert!(matches(vec![other_param]).await.is_empty());

    // Matching: refused, with the ids, nothing written.
    let mut w = put(
        "Patient",
        "new1",
        None,
        3,
        "n",
        vec![ident(Some("nhs"), "123")],
    );
    w.unless_exists = Some(vec![criterion(Is("nhs".into()), "123")]);
    match store.write(w).await {
        Err(StoreError::ConditionMatched(ids)) => assert_eq!(ids, ["p"]),
        other => panic!("expected ConditionMatched, got {other:?}"),
    }
    assert_eq!(store.read("Patient", "new1").await.unwrap(), None);
    assert_eq!(matches(vec![criterion(Any, "123")]).await, ["p"]);

    // Not matching (other system, absent system, a deleted match): created.
    for (i, c) in [
        criterion(Is("other".into()), "123"),
        criterion(Absent, "123"),
        criterion(Any, "999"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("ok{i}");
        let mut w = put(
            "Patient",
            &id,
            None,
            4,
            "n",
            vec![ident(Some("x"), &format!("fresh{i}"))],
        );
        w.unless_exists = Some(vec![c]);
        must(store, w).await;
        assert!(store.read("Patient", &id).await.unwrap().is_some());
    }
    // Several matches are all reported.
    must(
        store,
        put(
            "Patient",
            "p2",
            None,
            5,
            "",
            vec![ident(Some("nhs"), "123")],
        ),
    )
    .await;
    let mut w = put("Patient", "new2", None, 6, "n", vec![]);
    w.unless_exists = Some(vec![criterion(Any, "123")]);
    match store.write(w).await {
        Err(StoreError::ConditionMatched(ids)) => assert_eq!(ids, ["p", "p2"]),
        other => panic!("expected ConditionMatched, got {other:?}"),
    }
    // The condition is checked only after the version precondition.
    let mut w = put("Patient", "p", None, 7, "n", vec![]);
    w.unless_exists = Some(vec![criterion(Any, "123")]);
    assert_eq!(conflict(store.write(w).await), Some(1));
}

async fn failed_writes_leave_no_trace(store: &Store) {
    must(
        store,
        put("Patient", "a", None, 1, "a", vec![ident(None, "t1")]),
    )
    .await;
    let before = store
        .history(&hq(None, None), passport_store::search::Visibility::System)
        .await
        .unwrap();
    let _ = conflict(
        store
            .write(put("Patient", "a", None, 2, "x", vec![ident(None, "t2")]))
            .await,
    );
    let _ = conflict(
        store
            .write(put(
                "Patient",
                "a",
                Some(5),
                2,
                "x",
                vec![ident(None, "t3")],
            ))
            .await,
    );
    let mut w = put("Patient", "b", None, 2, "x", vec![ident(None, "t4")]);
    w.unless_exists = Some(vec![criterion(SystemMatch::Any, "t1")]);
    assert!(matches!(
        store.write(w).await,
        Err(StoreError::ConditionMatched(_))
    ));
    assert_eq!(
        store
            .history(&hq(None, None), passport_store::search::Visibility::System)
            .await
            .unwrap(),
        before
    );
    for code in ["t2", "t3", "t4"] {
        assert!(
            store
                .find_by_tokens("Patient", &[criterion(SystemMatch::Any, code)])
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(store.read("Patient", "b").await.unwrap(), None);
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Writes submitted together (on SQLite: one batch) fail or succeed each on their own.
async fn one_failure_does_not_spoil_concurrent_writes(store: &Store) {
    must(store, put("Patient", "x", None, 1, "x", vec![])).await;
    let writes: Vec<Fut<'_, Result<Stored, StoreError>>> = vec![
        Box::pin(store.write(put("Patient", "a", None, 2, "a", vec![ident(None, "a")]))),
        Box::pin(store.write(put(
            "Patient",
            "x",
            None,
            2,
            "dup",
            vec![ident(None, "dup")],
        ))),
        Box::pin(store.write(put("Patient", "b", None, 2, "b", vec![ident(None, "b")]))),
        Box::pin(store.write(put("Patient", "x", Some(9), 2, "stale", vec![]))),
        Box::pin(store.write(put("Patient", "c", None, 2, "c", vec![]))),
    ];
    let mut results = join_all(writes).await.into_iter();
    assert_eq!(results.next().unwrap().unwrap().id, "a");
    assert_eq!(conflict(results.next().unwrap()), Some(1));
    assert_eq!(results.next().unwrap().unwrap().id, "b");
    assert_eq!(conflict(results.next().unwrap()), Some(1));
    assert_eq!(results.next().unwrap().unwrap().id, "c");
    for id in ["a", "b", "c"] {
        assert!(store.read("Patient", id).await.unwrap().is_some());
    }
    assert_eq!(
        store.read("Patient", "x").await.unwrap().unwrap().body,
        Bytes::from("x")
    );
    assert!(
        store
            .find_by_tokens("Patient", &[criterion(SystemMatch::Any, "dup")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_by_tokens("Patient", &[criterion(SystemMatch::Any, "b")])
            .await
            .unwrap(),
        ["b"]
    );
}

/// 50 tasks each add one to a counter with read-modify-write, retrying on conflict.
async fn concurrent_increments_lose_nothing(store: &Store) {
    must(store, put("Basic", "counter", None, 0, "0", vec![])).await;
    let conflicts = AtomicUsize::new(0);
    let tasks: Vec<Fut<'_, ()>> = (0..50)
        .map(|i| {
            let conflicts = &conflicts;
            Box::pin(async move {
                loop {
                    let cur = store.read("Basic", "counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&cur.body).unwrap().parse().unwrap();
                    let w = put(
                        "Basic",
                        "counter",
                        Some(cur.version_id),
                        i,
                        &(n + 1).to_string(),
                        vec![],
                    );
                    match store.write(w).await {
                        Ok(_) => break,
                        Err(StoreError::VersionConflict { .. }) => {
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
    let last = store.read("Basic", "counter").await.unwrap().unwrap();
    assert_eq!(last.version_id, 51);
    assert_eq!(last.body, Bytes::from("50"));
    let h = store
        .history(
            &hq(Some("Basic"), Some("counter")),
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    assert_eq!(h.len(), 51);
    eprintln!(
        "50 increments, {} conflicts retried",
        conflicts.load(Ordering::Relaxed)
    );
}

async fn concurrent_creators_one_winner(store: &Store) {
    let writes: Vec<Fut<'_, Result<Stored, StoreError>>> = (0..20)
        .map(|i| {
            Box::pin(store.write(put(
                "Patient",
                "same",
                None,
                i,
                &format!("creator {i}"),
                vec![ident(None, &i.to_string())],
            ))) as Fut<'_, _>
        })
        .collect();
    let results = join_all(writes).await;
    let winners: Vec<&Stored> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, StoreError::VersionConflict { current: Some(1) }),
                "{e:?}"
            );
        }
    }
    let current = store.read("Patient", "same").await.unwrap().unwrap();
    assert_eq!(&current, winners[0]);
    // Only the winner's token is indexed.
    let all: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut found = Vec::new();
    for code in &all {
        found.extend(
            store
                .find_by_tokens("Patient", &[criterion(SystemMatch::Absent, code)])
                .await
                .unwrap(),
        );
    }
    assert_eq!(found, ["same"]);
}

/// Conditional creates of different ids with the same identifier, all at once: one is
/// created, every other one is told about it (no duplicates).
async fn concurrent_conditional_creates_one_winner(store: &Store) {
    let writes: Vec<Fut<'_, Result<Stored, StoreError>>> = (0..20)
        .map(|i| {
            let mut w = put(
                "Patient",
                &format!("c{i}"),
                None,
                i,
                "{}",
                vec![ident(Some("nhs"), "42"), ident(None, &format!("own{i}"))],
            );
            w.unless_exists = Some(vec![criterion(SystemMatch::Is("nhs".into()), "42")]);
            Box::pin(store.write(w)) as Fut<'_, _>
        })
        .collect();
    let results = join_all(writes).await;
    let winners: Vec<&Stored> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            match e {
                StoreError::ConditionMatched(ids) => assert_eq!(ids, &[winners[0].id.clone()]),
                other => panic!("{other:?}"),
            }
        }
    }
    let found = store
        .find_by_tokens("Patient", &[criterion(SystemMatch::Any, "42")])
        .await
        .unwrap();
    assert_eq!(found, [winners[0].id.clone()]);
}

/// Writes queued before `close` complete; later ones are refused; reads still work.
async fn close_drains_then_refuses(store: &Store) {
    let mut futures: Vec<Fut<'_, Option<Result<Stored, StoreError>>>> = (0..100)
        .map(|i| {
            Box::pin(async move {
                Some(
                    store
                        .write(put("Patient", &format!("p{i}"), None, i, "x", vec![]))
                        .await,
                )
            }) as Fut<'_, _>
        })
        .collect();
    // Polled after all the writes have been submitted.
    futures.push(Box::pin(async move {
        store.close().await;
        None
    }));
    let results = join_all(futures).await;
    for r in results.into_iter().flatten() {
        r.unwrap();
    }
    for i in 0..100 {
        assert!(
            store
                .read("Patient", &format!("p{i}"))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(matches!(
        store
            .write(put("Patient", "late", None, 1, "x", vec![]))
            .await,
        Err(StoreError::Closed)
    ));
    store.close().await; // idempotent
    assert_eq!(store.read("Patient", "late").await.unwrap(), None);
    assert_eq!(
        store
            .history(&hq(None, None), passport_store::search::Visibility::System)
            .await
            .unwrap()
            .len(),
        100
    );
}

async fn migrate_is_idempotent(store: &Store) {
    store.migrate().await.unwrap();
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    a.unwrap();
    b.unwrap();
    must(store, put("Patient", "a", None, 1, "x", vec![])).await;
    store.migrate().await.unwrap();
    assert!(store.read("Patient", "a").await.unwrap().is_some());
}

/// Store::open understands both URL kinds and rejects others.
#[tokio::test]
async fn bad_urls() {
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::BadUrl(_))
    ));
    assert!(matches!(
        Store::open("sqlite://").await,
        Err(StoreError::BadUrl(_))
    ));
    assert!(matches!(
        Store::open("postgres://a@b:c:d/e").await,
        Err(StoreError::BadUrl(_)) | Err(StoreError::Backend(_))
    ));
}

/// Many stores can run concurrently in one process (each `sqlite::memory:` is private).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stores_are_private() {
    let one = common::sqlite().await;
    let two = common::sqlite().await;
    must(&one, put("Patient", "a", None, 1, "one", vec![])).await;
    assert_eq!(two.read("Patient", "a").await.unwrap(), None);
    let shared = Arc::new(one);
    let s = shared.clone();
    let read = tokio::spawn(async move { s.read("Patient", "a").await.unwrap() })
        .await
        .unwrap();
    assert_eq!(read.unwrap().body, Bytes::from("one"));
}
