//! `passport audit verify`, the real binary, on a SQLite database: intact, and each kind of
//! tampering named by its first bad seq.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use passport_store::audit::{self, AuditKey};
use passport_store::{AuditRecord, Sensitivity, Store};

const BIN: &str = env!("CARGO_BIN_EXE_passport");

struct Setup {
    dir: PathBuf,
    url: String,
    checkpoints: PathBuf,
    key: PathBuf,
}

fn rec(i: i64) -> AuditRecord {
    AuditRecord {
        recorded_us: i,
        patient_id: Some("child".into()),
        sensitivity: Sensitivity::Normal,
        event: Bytes::from(format!(r#"{{"resourceType":"AuditEvent","n":{i}}}"#)),
    }
}

/// Six records; signed checkpoints after seq 2 and seq 6.
fn setup() -> Setup {
    let dir = std::env::temp_dir().join(format!("passport-audit-cli-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/passport.db", dir.display());
    let checkpoints = dir.join("audit-checkpoints.jsonl");
    let key = dir.join("audit-signing.key");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let k = AuditKey::load_or_create(&key).unwrap();
        store.append_audit(vec![rec(1), rec(2)]).await.unwrap();
        audit::checkpoint(&store, &k, &checkpoints, 10)
            .await
            .unwrap();
        store
            .append_audit((3..=6).map(rec).collect())
            .await
            .unwrap();
        audit::checkpoint(&store, &k, &checkpoints, 20)
            .await
            .unwrap();
        store.close().await;
    });
    Setup {
        dir,
        url,
        checkpoints,
        key,
    }
}

fn verify(s: &Setup) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database", &s.url, "--checkpoint-file"])
        .arg(&s.checkpoints)
        .arg("--key-file")
        .arg(&s.key)
        .env_remove("PASSPORT_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tamper(dir: &Path, sql: &str) {
    let c = rusqlite::Connection::open(dir.join("passport.db")).unwrap();
    c.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
}

fn expect_bad(s: &Setup, seq: i64, words: &str) {
    let (ok, out, err) = verify(s);
    assert!(!ok, "verify passed a tampered log: {out}");
    assert!(
        err.contains(&format!("first bad seq {seq}")) && err.contains(words),
        "expected seq {seq} / {words:?}, got: {err}"
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn intact_log_verifies() {
    let s = setup();
    let (ok, out, err) = verify(&s);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("intact: 6 records"), "{out}");
    assert!(out.contains("2 checkpoints verified"), "{out}");
    // The defaults find the files next to the database.
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database", &s.url])
        .env_remove("PASSPORT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn changed_record() {
    let s = setup();
    tamper(
        &s.dir,
        "UPDATE audit_log SET patient_id = 'other' WHERE seq = 3",
    );
    expect_bad(&s, 3, "record changed");
}

#[test]
fn removed_record() {
    let s = setup();
    tamper(&s.dir, "DELETE FROM audit_log WHERE seq = 4");
    expect_bad(&s, 4, "missing");
}

#[test]
fn reordered_records() {
    let s = setup();
    tamper(
        &s.dir,
        "UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; \
         UPDATE audit_log SET seq = 4 WHERE seq = -3;",
    );
    expect_bad(&s, 3, "reordered");
}

#[test]
fn changed_and_recomputed() {
    let s = setup();
    let c = rusqlite::Connection::open(s.dir.join("passport.db")).unwrap();
    c.execute_batch("DROP TRIGGER audit_log_no_update;")
        .unwrap();
    let mut prev: Vec<u8> = c
        .query_row("SELECT hash FROM audit_log WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    for seq in 3..=6i64 {
        let mut r = rec(seq);
        if seq == 4 {
            r.event = Bytes::from_static(br#"{"resourceType":"AuditEvent","n":"forged"}"#);
        }
        let p: [u8; 32] = prev.clone().try_into().unwrap();
        let h = audit::chain_hash(&p, seq, &r);
        c.execute(
            "UPDATE audit_log SET event = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            (&r.event[..], &prev[..], &h[..], seq),
        )
        .unwrap();
        prev = h.to_vec();
    }
    drop(c);
    // Seq 1–2 still match the first checkpoint; the change is in 3..=6.
    expect_bad(&s, 3, "recomputed");
}

#[test]
fn truncated_tail() {
    let s = setup();
    tamper(&s.dir, "DELETE FROM audit_log WHERE seq > 4");
    expect_bad(&s, 5, "ends at seq 4");
}

#[test]
fn forged_checkpoint() {
    let s = setup();
    let text = std::fs::read_to_string(&s.checkpoints).unwrap();
    let forged = text.replacen("\"seq\":6", "\"seq\":5", 1);
    assert_ne!(text, forged);
    std::fs::write(&s.checkpoints, forged).unwrap();
    expect_bad(&s, 5, "signature");
}
