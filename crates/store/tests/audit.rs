//! The audit log, on both backends: the chain, writes that carry their AuditEvent, the
//! family's listing, and every kind of tampering caught by `audit::verify`.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use common::{conflict, join_all, must, put};
use passport_store::audit::{self, AuditKey, Checkpoint, Tampered};
use passport_store::{AuditQuery, AuditRecord, Sensitivity, Store, StoreError};

both_backends!(
    chain_appends_and_verifies,
    concurrent_appends_make_one_chain,
    audit_commits_with_its_write,
    family_listing_hides_safeguarding,
    concurrent_writes_chain_each_record_once,
    listing_shows_a_write_at_once,
    close_chains_the_writes,
);

fn rec(patient: Option<&str>, at_us: i64, sensitivity: Sensitivity, what: &str) -> AuditRecord {
    AuditRecord {
        recorded_us: at_us,
        patient_id: patient.map(str::to_owned),
        sensitivity,
        event: Bytes::from(format!(
            r#"{{"resourceType":"AuditEvent","what":"{what}"}}"#
        )),
    }
}

fn normal(patient: &str, at_us: i64, what: &str) -> AuditRecord {
    rec(Some(patient), at_us, Sensitivity::Normal, what)
}

async fn chain_appends_and_verifies(store: &Store) {
    assert_eq!(store.audit_head().await.unwrap(), None);
    let v = audit::verify(store, &[], None).await.unwrap();
    assert_eq!(v.records, 0);
    store
        .append_audit(vec![normal("c1", 1, "a"), normal("c1", 2, "b")])
        .await
        .unwrap();
    store
        .append_audit(vec![normal("c2", 3, "c")])
        .await
        .unwrap();
    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(chain.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(chain[0].prev_hash, audit::GENESIS);
    for w in chain.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(
        chain[2].hash,
        audit::chain_hash(&chain[1].hash, 3, &normal("c2", 3, "c"))
    );
    let head = store.audit_head().await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash), (3, chain[2].hash));
    let key = AuditKey::generate().unwrap();
    let cp = key.checkpoint(head, 99);
    let v = audit::verify(store, std::slice::from_ref(&cp), Some(&key.public()))
        .await
        .unwrap();
    assert_eq!(
        (v.records, v.checkpoints, v.checkpointed_seq),
        (3, 1, Some(3))
    );
    // A checkpoint by another key is refused.
    let other = AuditKey::generate().unwrap();
    let err = audit::verify(store, &[cp], Some(&other.public()))
        .await
        .unwrap_err()
        .unwrap();
    assert!(err.reason.contains("signature"), "{err}");
    assert_eq!(store.audit_chain(1, 1).await.unwrap()[0].seq, 2);
}

async fn concurrent_appends_make_one_chain(store: &Store) {
    let appenders: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = (0..8)
        .map(|t| {
            Box::pin(async move {
                for i in 0..10 {
                    store
                        .append_audit(vec![
                            normal("c", i, &format!("{t}-{i}-a")),
                            normal("c", i, &format!("{t}-{i}-b")),
                        ])
                        .await
                        .unwrap();
                }
            }) as Pin<Box<dyn Future<Output = ()> + Send + '_>>
        })
        .collect();
    join_all(appenders).await;
    let v = audit::verify(store, &[], None).await.unwrap();
    assert_eq!(v.records, 160);
}

async fn audit_commits_with_its_write(store: &Store) {
    let mut w = put(
        "Patient",
        "p1",
        None,
        10,
        r#"{"resourceType":"Patient"}"#,
        vec![],
    );
    w.audit = vec![normal("p1", 10, "create p1")];
    must(store, w).await;
    // PostgreSQL: the record waits in the outbox until drained (SQLite chained it already).
    assert_eq!(
        store.drain_audit_outbox().await.unwrap(),
        outboxed(store, 1)
    );
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 1);

    // A refused write (stale version) takes its AuditEvent with it: no outbox row either.
    let mut stale = put("Patient", "p1", None, 11, r#"{"x":1}"#, vec![]);
    stale.audit = vec![normal("p1", 11, "refused")];
    conflict(store.write(stale).await);
    assert_eq!(store.drain_audit_outbox().await.unwrap(), 0);
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 1);

    // A transaction: all writes' records, or none.
    let mut a = put("Patient", "p2", None, 12, r#"{"v":1}"#, vec![]);
    a.audit = vec![normal("p2", 12, "tx a")];
    let mut b = put("Patient", "p1", Some(7), 12, r#"{"v":2}"#, vec![]);
    b.audit = vec![normal("p1", 12, "tx b")];
    let err = store.write_all(vec![a.clone(), b]).await.unwrap_err();
    assert_eq!(err.index, Some(1));
    assert_eq!(store.drain_audit_outbox().await.unwrap(), 0);
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 1);
    let mut b = put("Patient", "p1", Some(1), 12, r#"{"v":2}"#, vec![]);
    b.audit = vec![normal("p1", 12, "tx b1"), normal("p1", 12, "tx b2")];
    store.write_all(vec![a, b]).await.unwrap();
    assert_eq!(
        store.drain_audit_outbox().await.unwrap(),
        outboxed(store, 3)
    );
    let chain = store.audit_chain(0, 10).await.unwrap();
    let whats: Vec<String> = chain
        .iter()
        .map(|e| String::from_utf8(e.record.event.to_vec()).unwrap())
        .collect();
    assert_eq!(chain.len(), 4, "{whats:?}");
    assert!(whats[1].contains("tx a") && whats[3].contains("tx b2"));
    audit::verify(store, &[], None).await.unwrap();
}

/// How many records `drain_audit_outbox` finds after writes carrying `n`: all of them on
/// PostgreSQL (they wait in the outbox), none on SQLite (chained in the write).
fn outboxed(store: &Store, n: usize) -> usize {
    match store {
        Store::Sqlite(_) => 0,
        Store::Postgres(_) => n,
    }
}

/// Concurrent writes (single and transactions) and audit batches: once drained, every
/// write's record is in one valid chain exactly once, and the outbox is empty.
async fn concurrent_writes_chain_each_record_once(store: &Store) {
    let writers: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = (0..8)
        .map(|t| {
            Box::pin(async move {
                for i in 0..10 {
                    let id = format!("w{t}-{i}");
                    let mut w = put(
                        "Patient",
                        &id,
                        None,
                        i,
                        r#"{"resourceType":"Patient"}"#,
                        vec![],
                    );
                    w.audit = vec![normal(&id, i, &format!("write {id}"))];
                    if i % 3 == 0 {
                        // A transaction of two writes, two records each.
                        let other = format!("{id}-tx");
                        let mut w2 = put("Patient", &other, None, i, r#"{"v":1}"#, vec![]);
                        w2.audit = vec![
                            normal(&other, i, &format!("write {other} 1")),
                            normal(&other, i, &format!("write {other} 2")),
                        ];
                        store.write_all(vec![w, w2]).await.unwrap();
                    } else {
                        must(store, w).await;
                    }
                    if i % 4 == 0 {
                        store
                            .append_audit(vec![normal("c", i, &format!("read {t}-{i}"))])
                            .await
                            .unwrap();
                    }
                }
            }) as Pin<Box<dyn Future<Output = ()> + Send + '_>>
        })
        .collect();
    join_all(writers).await;
    store.drain_audit_outbox().await.unwrap();
    assert_eq!(store.drain_audit_outbox().await.unwrap(), 0);
    // 80 writes, 32 of them with a second resource of two records; 24 reads.
    let expected = 80 + 32 * 2 + 24;
    let v = audit::verify(store, &[], None).await.unwrap();
    assert_eq!(v.records, expected);
    let chain = store.audit_chain(0, 1000).await.unwrap();
    let mut whats: Vec<String> = chain
        .iter()
        .map(|e| String::from_utf8(e.record.event.to_vec()).unwrap())
        .collect();
    whats.sort();
    let n = whats.len();
    whats.dedup();
    assert_eq!(whats.len(), n, "a record chained twice");
    assert_eq!(n as i64, expected);
    // A transaction's records keep their order in the chain.
    let pos = |what: &str| {
        chain
            .iter()
            .position(|e| {
                e.record
                    .event
                    .windows(what.len())
                    .any(|w| w == what.as_bytes())
            })
            .unwrap()
    };
    assert!(
        pos("write w0-0\"") < pos("write w0-0-tx 1")
            && pos("write w0-0-tx 1") < pos("write w0-0-tx 2")
    );
}

/// The family's listing shows a write's record as soon as the write returns.
async fn listing_shows_a_write_at_once(store: &Store) {
    let mut w = put(
        "Patient",
        "kid",
        None,
        5,
        r#"{"resourceType":"Patient"}"#,
        vec![],
    );
    w.audit = vec![normal("kid", 5, "created kid")];
    must(store, w).await;
    let family = AuditQuery {
        patient_id: Some("kid".into()),
        count: 10,
        ..Default::default()
    };
    let listed = store.list_audit(&family).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].seq, 1);
    assert!(String::from_utf8_lossy(&listed[0].record.event).contains("created kid"));
    audit::verify(store, &[], None).await.unwrap();
}

/// Closing the store chains what writes left in the outbox.
async fn close_chains_the_writes(store: &Store) {
    for i in 0..3 {
        let id = format!("c{i}");
        let mut w = put(
            "Patient",
            &id,
            None,
            i,
            r#"{"resourceType":"Patient"}"#,
            vec![],
        );
        w.audit = vec![normal(&id, i, "closing")];
        must(store, w).await;
    }
    store.close().await;
    assert_eq!(store.drain_audit_outbox().await.unwrap(), 0);
    assert_eq!(audit::verify(store, &[], None).await.unwrap().records, 3);
}

async fn family_listing_hides_safeguarding(store: &Store) {
    store
        .append_audit(vec![
            normal("child", 100, "gp read"),
            rec(Some("child"), 200, Sensitivity::Safeguarding, "sg read"),
            normal("other", 250, "other child"),
            normal("child", 300, "school nurse read"),
            rec(None, 350, Sensitivity::Normal, "sign-in"),
        ])
        .await
        .unwrap();
    let family = AuditQuery {
        patient_id: Some("child".into()),
        count: 10,
        ..AuditQuery::default()
    };
    let seqs = |es: Vec<passport_store::AuditEntry>| es.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.list_audit(&family).await.unwrap()), [4, 1]);
    let officer = AuditQuery {
        include_safeguarding: true,
        ..family.clone()
    };
    assert_eq!(seqs(store.list_audit(&officer).await.unwrap()), [4, 2, 1]);
    // Paging, newest first.
    let page = AuditQuery {
        count: 2,
        ..officer.clone()
    };
    assert_eq!(seqs(store.list_audit(&page).await.unwrap()), [4, 2]);
    let next = AuditQuery {
        before_seq: Some(2),
        ..page
    };
    assert_eq!(seqs(store.list_audit(&next).await.unwrap()), [1]);
    // A time range, every child.
    let range = AuditQuery {
        since_us: Some(200),
        until_us: Some(350),
        include_safeguarding: true,
        count: 10,
        ..AuditQuery::default()
    };
    assert_eq!(seqs(store.list_audit(&range).await.unwrap()), [4, 3, 2]);
    let e = &store.list_audit(&family).await.unwrap()[0];
    assert_eq!(e.record.patient_id.as_deref(), Some("child"));
    assert_eq!(e.record.sensitivity, Sensitivity::Normal);
}

async fn log_is_append_only(store: &Store, raw: &Raw) {
    store.append_audit(vec![normal("c", 1, "a")]).await.unwrap();
    for sql in [
        "UPDATE audit_log SET recorded_us = 5 WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
    ] {
        let err = raw.exec(sql).await.unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.audit_chain(0, 10).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Tampering

/// A second, raw connection to the store's database (what an intruder would have).
enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(tokio_postgres::Client),
}

impl Raw {
    async fn of(store: &Store) -> Raw {
        match store {
            Store::Sqlite(s) => Raw::Sqlite(s.path().to_owned()),
            Store::Postgres(_) => panic!("open PostgreSQL with Raw::pg"),
        }
    }

    async fn pg(url: &str) -> Raw {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        Raw::Postgres(client)
    }

    async fn exec(&self, sql: &str) -> Result<(), String> {
        match self {
            Raw::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                c.execute_batch(sql).map_err(|e| e.to_string())
            }
            Raw::Postgres(c) => c.batch_execute(sql).await.map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            }),
        }
    }

    fn blob(&self, bytes: &[u8]) -> String {
        match self {
            Raw::Sqlite(_) => format!("X'{}'", audit::hex(bytes)),
            Raw::Postgres(_) => format!("'\\x{}'::bytea", audit::hex(bytes)),
        }
    }

    async fn drop_guards(&self) {
        let sql = match self {
            Raw::Sqlite(_) => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
            Raw::Postgres(_) => "DROP TRIGGER audit_log_no_change ON audit_log;",
        };
        self.exec(sql).await.unwrap();
    }
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Change,
    Remove,
    Reorder,
    ChangeAndRecompute,
    TruncateTail,
}

/// Six records, checkpoints at seq 2 and 6; then `how` is done to seq 3 (or after 4).
async fn tampered(store: &Store, raw: &Raw, how: Tamper) -> Tampered {
    for i in 1..=2 {
        store
            .append_audit(vec![normal("c", i, &format!("r{i}"))])
            .await
            .unwrap();
    }
    let key = AuditKey::generate().unwrap();
    let mut checkpoints: Vec<Checkpoint> =
        vec![key.checkpoint(store.audit_head().await.unwrap().unwrap(), 1)];
    store
        .append_audit((3..=6).map(|i| normal("c", i, &format!("r{i}"))).collect())
        .await
        .unwrap();
    checkpoints.push(key.checkpoint(store.audit_head().await.unwrap().unwrap(), 2));
    audit::verify(store, &checkpoints, Some(&key.public()))
        .await
        .expect("intact before tampering");
    raw.drop_guards().await;
    match how {
        Tamper::Change => raw
            .exec("UPDATE audit_log SET recorded_us = 999 WHERE seq = 3")
            .await
            .unwrap(),
        Tamper::Remove => raw
            .exec("DELETE FROM audit_log WHERE seq = 3")
            .await
            .unwrap(),
        Tamper::Reorder => raw
            .exec(
                "UPDATE audit_log SET seq = -3 WHERE seq = 3; \
                 UPDATE audit_log SET seq = 3 WHERE seq = 4; \
                 UPDATE audit_log SET seq = 4 WHERE seq = -3;",
            )
            .await
            .unwrap(),
        Tamper::ChangeAndRecompute => {
            let chain = store.audit_chain(0, 100).await.unwrap();
            let mut prev = chain[1].hash;
            let mut sql = String::new();
            for e in &chain[2..] {
                let mut r = e.record.clone();
                if e.seq == 3 {
                    r.event =
                        Bytes::from_static(br#"{"resourceType":"AuditEvent","what":"forged"}"#);
                    sql.push_str(&format!(
                        "UPDATE audit_log SET event = {} WHERE seq = 3;",
                        raw.blob(&r.event)
                    ));
                }
                let h = audit::chain_hash(&prev, e.seq, &r);
                sql.push_str(&format!(
                    "UPDATE audit_log SET prev_hash = {}, hash = {} WHERE seq = {};",
                    raw.blob(&prev),
                    raw.blob(&h),
                    e.seq
                ));
                prev = h;
            }
            raw.exec(&sql).await.unwrap();
            // The chain itself is consistent again: only the checkpoint tells.
            audit::verify(store, &[], None)
                .await
                .expect("a recomputed chain is self-consistent");
        }
        Tamper::TruncateTail => raw
            .exec("DELETE FROM audit_log WHERE seq > 4")
            .await
            .unwrap(),
    }
    audit::verify(store, &checkpoints, Some(&key.public()))
        .await
        .expect_err("tampering detected")
        .expect("a tampered log, not a read error")
}

fn expect(how: Tamper, t: &Tampered) {
    let (seq, words) = match how {
        Tamper::Change => (3, "hash"),
        Tamper::Remove => (3, "missing"),
        Tamper::Reorder => (3, "prev_hash"),
        Tamper::ChangeAndRecompute => (3, "checkpoint"),
        Tamper::TruncateTail => (5, "ends at seq 4"),
    };
    assert_eq!(t.seq, seq, "{how:?}: {t}");
    assert!(t.reason.contains(words), "{how:?}: {t}");
}

const ALL: [Tamper; 5] = [
    Tamper::Change,
    Tamper::Remove,
    Tamper::Reorder,
    Tamper::ChangeAndRecompute,
    Tamper::TruncateTail,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_sqlite() {
    for how in ALL {
        let store = common::sqlite().await;
        let raw = Raw::of(&store).await;
        let t = tampered(&store, &raw, how).await;
        expect(how, &t);
        store.close().await;
    }
    let store = common::sqlite().await;
    log_is_append_only(&store, &Raw::of(&store).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_postgres() {
    for how in ALL {
        let Some(url) = passport_store::testing::fresh_pg_url() else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let raw = Raw::pg(&url).await;
        let t = tampered(&store, &raw, how).await;
        expect(how, &t);
        store.close().await;
    }
    let Some(url) = passport_store::testing::fresh_pg_url() else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    log_is_append_only(&store, &Raw::pg(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_store_refuses_audit() {
    let store = Arc::new(common::sqlite().await);
    store.close().await;
    assert!(matches!(
        store.append_audit(vec![normal("c", 1, "x")]).await,
        Err(StoreError::Closed)
    ));
}
