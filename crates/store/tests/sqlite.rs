//! What only the SQLite backend promises: group commit, FULL durability, files on disk.

mod common;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use common::{ident, join_all, must, put};
use passport_store::{Store, StoreError, Stored};

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn sqlite(store: &Store) -> &passport_store::sqlite::SqliteStore {
    match store {
        Store::Sqlite(s) => s,
        Store::Postgres(_) => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_writes() {
    let store = common::sqlite().await;
    let before = sqlite(&store).commits();
    let writes: Vec<Fut<'_, Result<Stored, StoreError>>> = (0..200)
        .map(|i| {
            Box::pin(store.write(put(
                "Patient",
                &format!("p{i}"),
                None,
                i,
                "{}",
                vec![ident(None, &i.to_string())],
            ))) as Fut<'_, _>
        })
        .collect();
    for r in join_all(writes).await {
        r.unwrap();
    }
    let commits = sqlite(&store).commits() - before;
    eprintln!("200 concurrent writes, {commits} commits");
    assert!(commits >= 1);
    assert!(
        commits <= 20,
        "group commit should batch 200 queued writes, made {commits} commits"
    );
    assert_eq!(
        store
            .history(
                &passport_store::HistoryQuery {
                    count: 1000,
                    ..Default::default()
                },
                passport_store::search::Visibility::System
            )
            .await
            .unwrap()
            .len(),
        200
    );

    // Also from many independent tasks on several threads.
    let store = std::sync::Arc::new(store);
    let before = sqlite(&store).commits();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in 0..25 {
                store
                    .write(put("Task", &format!("{t}-{i}"), None, i, "{}", vec![]))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let commits = sqlite(&store).commits() - before;
    eprintln!("16 tasks x 25 sequential writes, {commits} commits");
    assert!(commits < 400, "{commits} commits for 400 writes");
}

/// Writes to one resource in the same batch behave as if run one after the other.
#[tokio::test]
async fn writes_in_one_batch_are_sequential() {
    let store = std::sync::Arc::new(common::sqlite().await);
    // Another connection holds the database's write lock, so the writer's batch holding
    // the blocker waits in BEGIN while the four writes queue up behind it; the lock is
    // released only once all four are queued, so they form one batch together.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let path = sqlite(&store).path().to_owned();
    let locker = std::thread::spawn(move || {
        let lock = rusqlite::Connection::open(path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        lock.execute_batch("ROLLBACK").unwrap();
    });
    held_rx.recv().unwrap();
    let before = sqlite(&store).commits();
    let blocker = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(put("Patient", "blocker", None, 0, "", vec![]))
                .await
        })
    };
    // Let the writer take the blocker and get stuck in BEGIN.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let writes: Vec<Fut<'_, Option<Result<Stored, StoreError>>>> = vec![
        Box::pin(async {
            Some(
                store
                    .write(put("Patient", "a", None, 1, "1", vec![ident(None, "one")]))
                    .await,
            )
        }),
        Box::pin(async {
            Some(
                store
                    .write(put(
                        "Patient",
                        "a",
                        Some(1),
                        2,
                        "2",
                        vec![ident(None, "two")],
                    ))
                    .await,
            )
        }),
        Box::pin(async {
            Some(
                store
                    .write(put("Patient", "a", Some(1), 3, "stale", vec![]))
                    .await,
            )
        }),
        Box::pin(async {
            Some(
                store
                    .write(put(
                        "Patient",
                        "a",
                        Some(2),
                        4,
                        "3",
                        vec![ident(None, "three")],
                    ))
                    .await,
            )
        }),
        // Polled after the four have been queued.
        Box::pin(async move {
            release_tx.send(()).unwrap();
            None
        }),
    ];
    let r: Vec<Result<Stored, StoreError>> = join_all(writes).await.into_iter().flatten().collect();
    locker.join().unwrap();
    blocker.await.unwrap().unwrap();
    let commits = sqlite(&store).commits() - before;
    assert!(
        commits <= 2,
        "the blocker's batch, then one batch of four: {commits} commits"
    );
    assert_eq!(r[0].as_ref().unwrap().version_id, 1);
    assert_eq!(r[1].as_ref().unwrap().version_id, 2);
    assert!(matches!(
        r[2],
        Err(StoreError::VersionConflict { current: Some(2) })
    ));
    assert_eq!(r[3].as_ref().unwrap().version_id, 3);
    let cur = store.read("Patient", "a").await.unwrap().unwrap();
    assert_eq!(cur.body, Bytes::from("3"));
    use passport_store::SystemMatch::Any;
    for (code, hits) in [("one", 0), ("two", 0), ("three", 1)] {
        let found = store
            .find_by_tokens("Patient", &[common::criterion(Any, code)])
            .await
            .unwrap();
        assert_eq!(found.len(), hits, "{code}");
    }
}

#[tokio::test]
async fn durability_is_full_and_journal_is_wal() {
    let store = common::sqlite().await;
    let s = sqlite(&store);
    assert_eq!(s.writer_pragma("synchronous").await.unwrap(), "2");
    assert_eq!(s.writer_pragma("journal_mode").await.unwrap(), "wal");
    assert!(s.writer_pragma("synchronous; DROP TABLE x").await.is_err());
}

/// A file database: parent directories created, data still there after reopening.
#[tokio::test]
async fn file_database_persists() {
    let root = std::env::temp_dir().join(format!("passport-store-test-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/nested/dirs/passport.db", root.display());
    {
        let store = Store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        must(
            &store,
            put("Patient", "a", None, 1, "kept", vec![ident(None, "k")]),
        )
        .await;
        store.close().await;
    }
    {
        let store = Store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(
            store.read("Patient", "a").await.unwrap().unwrap().body,
            Bytes::from("kept")
        );
        must(&store, put("Patient", "a", Some(1), 2, "again", vec![])).await;
        // Dropped without close: the write was already durable.
    }
    {
        let store = Store::open(&url).await.unwrap();
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
    assert!(root.join("nested/dirs/passport.db").exists());
    std::fs::remove_dir_all(root).unwrap();
}

/// Reads run while the writer is busy (WAL: readers never wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_writes() {
    let store = std::sync::Arc::new(common::sqlite().await);
    must(&store, put("Patient", "r", None, 1, "r", vec![])).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                store
                    .write(put("Patient", &format!("w{i}"), None, i, "{}", vec![]))
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        assert!(store.read("Patient", "r").await.unwrap().is_some());
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    eprintln!("{reads} reads during 200 sequential durable writes");
}

/// Two stores on one file (a server and a command, or two servers): a read-then-write on
/// one (the sign-in throttle) while the other commits waits for the write lock instead of
/// failing with "database is locked" (a deferred transaction cannot wait once it has read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_the_same_file_waits_instead_of_failing() {
    let root = std::env::temp_dir().join(format!("passport-store-test-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/passport.db", root.display());
    let a = std::sync::Arc::new(Store::open(&url).await.unwrap());
    a.migrate().await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                a.write(put("Patient", &format!("w{i}"), None, i, "{}", vec![]))
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    for i in 0..300 {
        let login = format!("someone-{}@example.com", i % 7);
        let r = b.record_login_failure(&login, i).await;
        assert!(r.is_ok(), "attempt {i}: {r:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    eprintln!("300 throttle updates while the other store committed {written} writes");
    b.close().await;
    a.close().await;
    std::fs::remove_dir_all(root).unwrap();
}
