//! A quick micro-benchmark of the store: durable creates with concurrent writers, then reads
//! by id. Run in release mode:
//!
//! ```text
//! cargo run --release -p passport-store --example store_bench -- [URL] [WRITERS] [SECONDS] [MODE]
//! ```
//!
//! URL defaults to `sqlite::memory:` (a temporary database file: WAL, synchronous=FULL);
//! `pg` means a fresh schema on the test PostgreSQL server (`PASSPORT_TEST_PG_URL`).
//!
//! MODE is `token` (default: ~1 KiB bodies with one identifier token each) or `patient`:
//! the UK Core example Patient (`PASSPORT_BENCH_PATIENT`, default
//! testdata/fhir-examples/uk-core-stu2/Patient/UKCore-Patient-RichardSmith-Example.json)
//! with a fresh UUIDv7 id each time and its real index entries (`fhir::search::extract`,
//! run once on the template; each write substitutes its id). After the writes it prints the database's
//! size per resource (for `sqlite://PATH` and PostgreSQL; not for `sqlite::memory:`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use passport_store::{Store, Write};

fn body(i: u64) -> Bytes {
    // About 1 KiB, like a small Patient.
    let mut s = format!(
        r#"{{"resourceType":"Patient","id":"p{i}","meta":{{"versionId":"1"}},"identifier":[{{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"{i:010}"}}],"name":[{{"family":"Example","given":["Child"]}}],"gender":"female","birthDate":"2019-04-01","text":""#
    );
    while s.len() < 1000 {
        s.push('x');
    }
    s.push_str(r#""}"#);
    Bytes::from(s)
}

/// The `patient` mode's template: the example Patient's JSON (with a placeholder id) and
/// its index entries, extracted once. Each write substitutes a fresh id into both, so the
/// writers' CPU goes to the store rather than to extraction (2 cores are shared).
struct Template {
    body: String,
    index: Vec<fhir::search::IndexEntry>,
}

const PLACEHOLDER: &str = "00000000-0000-7000-8000-000000000000";

fn patient_template() -> Template {
    let path = std::env::var("PASSPORT_BENCH_PATIENT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fhir-examples/uk-core-stu2/Patient/UKCore-Patient-RichardSmith-Example.json"
        )
        .into()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut v: serde_json::Value =
        serde_json::from_str(&text).expect("the example Patient is JSON");
    v["id"] = serde_json::Value::String(PLACEHOLDER.into());
    v["meta"] = serde_json::json!({"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"});
    let index = fhir::search::extract(&v);
    println!(
        "patient mode: {} index entries per resource, body {} bytes",
        index.len(),
        v.to_string().len()
    );
    Template {
        body: v.to_string(),
        index,
    }
}

fn create_patient(t: &Template, i: u64) -> Write {
    let id = uuid::Uuid::now_v7().to_string();
    let mut index = t.index.clone();
    for e in &mut index {
        if let fhir::search::IndexValue::Token { code: Some(c), .. } = &mut e.value
            && c == PLACEHOLDER
        {
            c.clone_from(&id);
        }
    }
    Write {
        resource_type: "Patient".into(),
        body: Bytes::from(t.body.replace(PLACEHOLDER, &id)),
        id,
        replaces: None,
        version_id: 1,
        last_updated_us: i as i64,
        deleted: false,
        index,
        access: Default::default(),
        unless_exists: None,
        audit: Vec::new(),
    }
}

fn create(i: u64) -> Write {
    Write {
        resource_type: "Patient".into(),
        id: format!("p{i}"),
        replaces: None,
        version_id: 1,
        last_updated_us: i as i64,
        deleted: false,
        body: body(i),
        access: Default::default(),
        index: vec![passport_store::search::token_entry(
            "identifier",
            Some("https://fhir.nhs.uk/Id/nhs-number"),
            &format!("{i:010}"),
        )],
        unless_exists: None,
        audit: Vec::new(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sqlite::memory:".into());
    let writers: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let patient = match args.get(3).map(String::as_str) {
        None | Some("token") => None,
        Some("patient") => Some(Arc::new(patient_template())),
        Some(other) => panic!("unknown mode {other}: expected token or patient"),
    };
    let url = if url == "pg" {
        passport_store::testing::fresh_pg_url().expect("a PostgreSQL server for the bench")
    } else {
        url
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(rt.block_on(async {
        let s = Store::open(&url).await.expect("open");
        s.migrate().await.expect("migrate");
        s
    }));

    // Durable creates from `writers` concurrent tasks, each one write at a time.
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let commits_before = commits(&store);
    let write_cpu_before = cpu_time();
    let started = Instant::now();
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (store, next, stop) = (store.clone(), next.clone(), stop.clone());
            let patient = patient.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let w = match &patient {
                        Some(p) => create_patient(p, i),
                        None => create(i),
                    };
                    let t = Instant::now();
                    store.write(w).await.expect("write");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let write_cpu = cpu_time().zip(write_cpu_before).map(|(a, b)| a - b);
    let n = latencies.len() as u64;
    let commits = commits(&store).map(|c| c - commits_before.unwrap_or(0));
    println!(
        "{url}: {writers} concurrent writers: {n} durable creates in {:.2} s = {:.0}/s, p50 {:?}, p99 {:?}{}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        commits
            .map(|c| format!(", {c} commits ({:.1} writes/commit)", n as f64 / c as f64))
            .unwrap_or_default()
    );
    if let Some(c) = write_cpu {
        println!(
            "{url}: {:.1} µs CPU per create (this process: writers, and SQLite's writer thread)",
            c * 1e6 / n.max(1) as f64
        );
    }

    if let Some(bytes) = rt.block_on(db_size(&store, &url)) {
        println!(
            "{url}: database size {:.1} MiB = {:.0} bytes/resource ({n} resources)",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / n.max(1) as f64
        );
    }
    if patient.is_some() {
        rt.block_on(store.close());
        return;
    }

    // Reads by id, one task, sequential (≈ CPU per read on SQLite: no thread hop).
    let reads = 100_000u64.min(n * 20).max(1);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cpu_before = cpu_time();
    let started = Instant::now();
    single.block_on(async {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..reads {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = format!("p{}", x % n.max(1));
            let r = store.read("Patient", &id).await.expect("read");
            assert!(r.is_some());
        }
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time().zip(cpu_before).map(|(a, b)| a - b);
    println!(
        "{url}: {reads} reads by id: {:.1} µs/read wall{}",
        elapsed.as_secs_f64() * 1e6 / reads as f64,
        cpu.map(|c| format!(
            ", {:.1} µs/read CPU (whole process)",
            c * 1e6 / reads as f64
        ))
        .unwrap_or_default()
    );
    rt.block_on(store.close());
}

/// Bytes the database takes: SQLite pages in use (after a WAL checkpoint), or PostgreSQL's
/// tables of the schema with their indexes and TOAST.
async fn db_size(store: &Store, url: &str) -> Option<u64> {
    match store {
        Store::Sqlite(_) => {
            let path = url.strip_prefix("sqlite://")?;
            let conn = rusqlite::Connection::open(path).ok()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .ok()?;
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).ok()?;
            let free: i64 = conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .ok()?;
            let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).ok()?;
            Some(((pages - free) * size) as u64)
        }
        Store::Postgres(_) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(conn);
            let row = client
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )
                .await
                .ok()?;
            Some(row.get::<_, i64>(0) as u64)
        }
    }
}

fn commits(store: &Store) -> Option<u64> {
    match store {
        Store::Sqlite(s) => Some(s.commits()),
        Store::Postgres(_) => None,
    }
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

/// This process's user+system CPU seconds (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
