//! The audit recorder (queue, flush, back-pressure, shutdown), checkpoints at shutdown, and
//! 405 for AuditEvent writes through the API — on both databases.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Backend, StatusCode, Value, fresh_database, json, spawn};
use passport_server::audit::{Auditor, AuditorConfig};
use passport_store::{AuditRecord, Sensitivity, Store};

async fn store_for(backend: Backend) -> Option<Arc<Store>> {
    let (url, _dir) = fresh_database(backend)?;
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(Arc::new(store))
}

fn rec(i: usize) -> AuditRecord {
    AuditRecord {
        recorded_us: i as i64,
        patient_id: Some(format!("child{}", i % 7)),
        sensitivity: Sensitivity::Normal,
        event: Bytes::from(format!(r#"{{"resourceType":"AuditEvent","n":{i}}}"#)),
    }
}

fn config(queue: usize, flush: Duration) -> AuditorConfig {
    AuditorConfig {
        queue,
        flush_interval: flush,
        checkpoint_interval: Duration::from_secs(3600),
        checkpoint_file: None,
    }
}

async fn count(store: &Store) -> i64 {
    store.audit_head().await.unwrap().map_or(0, |h| h.seq)
}

/// A queue of 4, 1000 records from 16 tasks: every one stored, the chain intact.
async fn never_drops_under_pressure(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let auditor = Arc::new(Auditor::new(config(4, Duration::from_millis(200)), None));
    auditor.spawn(store.clone());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let auditor = auditor.clone();
            tokio::spawn(async move {
                for n in (t..1000).step_by(16) {
                    auditor.submit(rec(n)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    auditor.flush().await;
    assert_eq!(count(&store).await, 1000);
    let v = passport_store::audit::verify(&store, &[], None)
        .await
        .unwrap();
    assert_eq!(v.records, 1000);
    auditor.close().await.unwrap();
    store.close().await;
}

/// A record is durable within a second without anyone asking for a flush.
async fn durable_within_a_second(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let auditor = Auditor::new(config(1024, Duration::from_millis(200)), None);
    auditor.spawn(store.clone());
    let start = Instant::now();
    auditor.submit(rec(1)).await.unwrap();
    while count(&store).await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not durable in 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    auditor.close().await.unwrap();
    store.close().await;
}

/// A write's AuditEvent is in the chain within a second with no flush asked for (on
/// PostgreSQL it waits in the outbox until the auditor's next tick).
async fn write_chained_within_a_second(backend: Backend) {
    let Some(server) = spawn(backend).await else {
        return;
    };
    let id = server
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Outbox"}]}))
        .await;
    let start = Instant::now();
    let needle = format!("Patient/{id}");
    loop {
        let chain = server
            .state
            .domain
            .data()
            .test_store()
            .audit_chain(0, 10_000)
            .await
            .unwrap();
        let found = chain
            .iter()
            .filter(|e| {
                let event = String::from_utf8_lossy(&e.record.event);
                event.contains(&needle) && event.contains("\"create\"")
            })
            .count();
        assert!(found <= 1, "the create's record chained twice");
        if found == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the write's record not chained in 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    passport_store::audit::verify(server.state.domain.data().test_store(), &[], None)
        .await
        .unwrap();
    server.stop().await;
}

/// Closing appends what is queued, however long the flush interval, then refuses more.
async fn close_flushes(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let auditor = Auditor::new(config(1024, Duration::from_secs(30)), None);
    auditor.spawn(store.clone());
    for i in 0..50 {
        auditor.submit(rec(i)).await.unwrap();
    }
    auditor.close().await.unwrap();
    assert_eq!(count(&store).await, 50);
    assert!(auditor.submit(rec(99)).await.is_err());
    store.close().await;
}

/// The server signs the chain head at shutdown; the key file is private.
async fn shutdown_writes_a_checkpoint(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend) else {
        return;
    };
    let config = passport_server::Config::new("127.0.0.1:0".parse().unwrap(), url);
    let checkpoints = config.audit_checkpoint_file.clone();
    let key_file = config.audit_key_file.clone();
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let state = passport_server::prepare(config).await.unwrap();
    for i in 0..3 {
        state.domain.audit.submit(rec(i)).await.unwrap();
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(passport_server::serve(state.clone(), listener, async {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    let cps = passport_store::audit::read_checkpoints(&checkpoints).unwrap();
    let last = cps.last().expect("a checkpoint at shutdown");
    assert_eq!(last.seq, 3);
    let key = passport_store::audit::AuditKey::load(&key_file).unwrap();
    assert!(last.verify(&key.public()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let v =
        passport_store::audit::verify(state.domain.data().test_store(), &cps, Some(&key.public()))
            .await
            .unwrap();
    assert_eq!(v.records, 3);
}

/// Only the server writes AuditEvents: the API answers 405 with an OperationOutcome.
async fn audit_event_writes_are_405(backend: Backend) {
    let Some(server) = spawn(backend).await else {
        return;
    };
    let event = json!({
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "recorded": "2027-03-03T14:05:00Z",
        "agent": [{"requestor": true, "who": {"display": "x"}}],
        "source": {"observer": {"display": "y"}},
    });
    let c = &server.client;
    let fhir = "application/fhir+json";
    let responses = vec![
        c.post(server.url("/fhir/AuditEvent"))
            .header("content-type", fhir)
            .body(event.to_string())
            .send()
            .await
            .unwrap(),
        c.put(server.url("/fhir/AuditEvent/a1"))
            .header("content-type", fhir)
            .body(event.to_string())
            .send()
            .await
            .unwrap(),
        c.put(server.url("/fhir/AuditEvent?recorded=2027"))
            .header("content-type", fhir)
            .body(event.to_string())
            .send()
            .await
            .unwrap(),
        c.patch(server.url("/fhir/AuditEvent/a1"))
            .header("content-type", "application/json-patch+json")
            .body("[]")
            .send()
            .await
            .unwrap(),
        c.delete(server.url("/fhir/AuditEvent/a1"))
            .send()
            .await
            .unwrap(),
        c.delete(server.url("/fhir/AuditEvent?recorded=2027"))
            .send()
            .await
            .unwrap(),
    ];
    for r in responses {
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{r:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    // In a transaction too.
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}],
    });
    let r = c
        .post(server.url("/fhir"))
        .header("content-type", fhir)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Reads and searches remain.
    assert_eq!(
        server.get("/fhir/AuditEvent").await.status(),
        StatusCode::OK
    );
    let r = c
        .post(server.url("/fhir/AuditEvent/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    )*};
}

both!(
    never_drops_under_pressure,
    durable_within_a_second,
    write_chained_within_a_second,
    close_flushes,
    shutdown_writes_a_checkpoint,
    audit_event_writes_are_405,
);
