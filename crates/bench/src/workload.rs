//! The loader and the timed workloads. Every HTTP request is timed on its own and counted
//! in the throughput; a workload step that takes two requests (update: GET then PUT;
//! delete-then-recreate: DELETE then PUT) counts two.

use crate::http::{self, Client, FHIR_JSON, Response};
use crate::stats::Histogram;
use crate::synth::{Rng, Synth, TYPES};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Healthz,
    Read,
    Create,
    Update,
    CrudMix,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Healthz,
        Workload::Read,
        Workload::Create,
        Workload::Update,
        Workload::CrudMix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Healthz => "healthz",
            Workload::Read => "read",
            Workload::Create => "create",
            Workload::Update => "update",
            Workload::CrudMix => "crud-mix",
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::Healthz => "GET /healthz (the ceiling: no validation, no storage)",
            Workload::Read => "GET /fhir/Patient/{random loaded id}",
            Workload::Create => "POST /fhir/Patient (new child, Prefer: return=minimal)",
            Workload::Update => {
                "GET then PUT If-Match of a random loaded resource (any type); 412 → retry, counted as conflict"
            }
            Workload::CrudMix => {
                "70% read (any type), 15% create (any type), 10% update, 5% DELETE then PUT-recreate of a resource this worker created"
            }
        }
    }
}

/// Counts and latencies of one worker or one whole run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub hist: Histogram,
    pub requests: u64,
    pub errors: u64,
    pub conflicts: u64,
    /// Resources this run added to the store (creates; a delete-then-recreate adds none).
    pub created: u64,
    pub error_samples: Vec<String>,
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.hist.merge(&o.hist);
        self.requests += o.requests;
        self.errors += o.errors;
        self.conflicts += o.conflicts;
        self.created += o.created;
        for s in &o.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(s.clone());
            }
        }
    }

    fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(msg);
        }
    }
}

/// What the loader stored: every (type, id), patients first in index order.
#[derive(Debug, Default)]
pub struct Dataset {
    pub patients: Vec<String>,
    pub resources: Vec<(&'static str, String)>,
}

pub struct Ctx {
    pub addr: SocketAddr,
    pub synth: Synth,
    pub data: Dataset,
    /// Synthetic child index for the next new Patient (so NHS numbers stay distinct).
    pub next_index: AtomicU64,
}

fn static_type(t: &str) -> &'static str {
    TYPES
        .iter()
        .find(|x| **x == t)
        .copied()
        .unwrap_or("Unknown")
}

struct Worker {
    client: Client,
    rng: Rng,
    tally: Tally,
    /// Resources this worker created in the current run: (type, id, body with id).
    own: Vec<(&'static str, String, Value)>,
}

fn snippet(body: &Bytes) -> String {
    let s = String::from_utf8_lossy(body);
    let s: String = s.chars().take(300).collect();
    s.replace('\n', " ")
}

impl Worker {
    fn new(addr: SocketAddr, seed: u64) -> Self {
        Worker {
            client: Client::new(addr),
            rng: Rng::new(seed),
            tally: Tally::default(),
            own: Vec::new(),
        }
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Option<Response> {
        let what = format!("{method} {path}");
        let t = Instant::now();
        let r = self.client.send(method, path, headers, body).await;
        self.tally.requests += 1;
        match r {
            Ok(r) => {
                self.tally.hist.record(t.elapsed().as_micros() as u64);
                Some(r)
            }
            Err(e) => {
                self.tally.error(format!("{what}: transport error: {e}"));
                None
            }
        }
    }

    fn unexpected(&mut self, what: &str, r: &Response) {
        self.tally
            .error(format!("{what}: HTTP {} {}", r.status, snippet(&r.body)));
    }

    async fn healthz(&mut self) {
        if let Some(r) = self.call(Method::GET, "/healthz", &[], None).await
            && r.status != 200
        {
            self.unexpected("GET /healthz", &r);
        }
    }

    async fn read(&mut self, ty: &str, id: &str) {
        let path = format!("/fhir/{ty}/{id}");
        if let Some(r) = self
            .call(Method::GET, &path, &[("accept", FHIR_JSON)], None)
            .await
            && r.status != 200
        {
            self.unexpected(&format!("GET {path}"), &r);
        }
    }

    /// POST `resource`; returns its new id.
    async fn create(&mut self, resource: &Value) -> Option<String> {
        let ty = resource["resourceType"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned();
        let path = format!("/fhir/{ty}");
        let body = Bytes::from(serde_json::to_vec(resource).expect("serialisable"));
        let headers = [
            ("content-type", FHIR_JSON),
            ("accept", FHIR_JSON),
            ("prefer", "return=minimal"),
        ];
        let r = self.call(Method::POST, &path, &headers, Some(body)).await?;
        if !(200..300).contains(&r.status) {
            self.unexpected(&format!("POST {path}"), &r);
            return None;
        }
        let id = r
            .location
            .as_deref()
            .and_then(http::id_from_location)
            .map(str::to_owned)
            .or_else(|| {
                serde_json::from_slice::<Value>(&r.body).ok()?["id"]
                    .as_str()
                    .map(str::to_owned)
            });
        match id {
            Some(id) => {
                self.tally.created += 1;
                Some(id)
            }
            None => {
                self.tally.error(format!(
                    "POST {path}: HTTP {} without Location or id",
                    r.status
                ));
                None
            }
        }
    }

    async fn update(&mut self, ty: &str, id: &str) {
        let path = format!("/fhir/{ty}/{id}");
        for _attempt in 0..5 {
            let Some(r) = self
                .call(Method::GET, &path, &[("accept", FHIR_JSON)], None)
                .await
            else {
                return;
            };
            if r.status != 200 {
                return self.unexpected(&format!("GET {path} (update)"), &r);
            }
            let Some(etag) = r
                .etag
                .clone()
                .filter(|e| http::version_from_etag(e).is_some())
            else {
                return self
                    .tally
                    .error(format!("GET {path}: no weak ETag W/\"n\" ({:?})", r.etag));
            };
            let mut v: Value = match serde_json::from_slice(&r.body) {
                Ok(v) => v,
                Err(e) => {
                    return self
                        .tally
                        .error(format!("GET {path}: body is not JSON: {e}"));
                }
            };
            mutate(&mut v, self.rng.next_u64());
            let body = Bytes::from(serde_json::to_vec(&v).expect("serialisable"));
            let headers = [
                ("content-type", FHIR_JSON),
                ("accept", FHIR_JSON),
                ("if-match", etag.as_str()),
                ("prefer", "return=minimal"),
            ];
            let Some(p) = self.call(Method::PUT, &path, &headers, Some(body)).await else {
                return;
            };
            match p.status {
                200..=299 => return,
                412 => self.tally.conflicts += 1,
                _ => return self.unexpected(&format!("PUT {path} If-Match {etag}"), &p),
            }
        }
    }

    /// DELETE one of this worker's own resources, then PUT it back under the same id.
    async fn delete_recreate(&mut self, ctx: &Ctx) {
        if self.own.is_empty() {
            return self.create_any(ctx).await;
        }
        let k = self.rng.below(self.own.len() as u64) as usize;
        let (ty, id, body) = self.own[k].clone();
        let path = format!("/fhir/{ty}/{id}");
        let Some(r) = self.call(Method::DELETE, &path, &[], None).await else {
            return;
        };
        if !(200..300).contains(&r.status) {
            return self.unexpected(&format!("DELETE {path}"), &r);
        }
        let body = Bytes::from(serde_json::to_vec(&body).expect("serialisable"));
        let headers = [
            ("content-type", FHIR_JSON),
            ("accept", FHIR_JSON),
            ("prefer", "return=minimal"),
        ];
        if let Some(r) = self.call(Method::PUT, &path, &headers, Some(body)).await
            && !(200..300).contains(&r.status)
        {
            self.unexpected(&format!("PUT {path} (recreate after delete)"), &r);
        }
    }

    async fn create_any(&mut self, ctx: &Ctx) {
        let index = ctx.next_index.fetch_add(1, Ordering::Relaxed);
        let pick = self.rng.next_u64();
        let patient = if ctx.data.patients.is_empty() {
            "Patient/unknown".to_owned()
        } else {
            format!(
                "Patient/{}",
                ctx.data.patients[self.rng.below(ctx.data.patients.len() as u64) as usize]
            )
        };
        let mut v = ctx.synth.any_resource(index, pick, &patient);
        if let Some(id) = self.create(&v).await {
            let ty = static_type(v["resourceType"].as_str().unwrap_or(""));
            v["id"] = json!(id);
            if self.own.len() < 1_000 {
                self.own.push((ty, id, v));
            } else {
                let k = self.rng.below(self.own.len() as u64) as usize;
                self.own[k] = (ty, id, v);
            }
        }
    }

    fn random_resource<'a>(&mut self, ctx: &'a Ctx) -> Option<&'a (&'static str, String)> {
        let all = &ctx.data.resources;
        (!all.is_empty()).then(|| &all[self.rng.below(all.len() as u64) as usize])
    }

    async fn step(&mut self, ctx: &Ctx, w: Workload) {
        match w {
            Workload::Healthz => self.healthz().await,
            Workload::Read => {
                let ps = &ctx.data.patients;
                let id = &ps[self.rng.below(ps.len() as u64) as usize];
                self.read("Patient", id).await
            }
            Workload::Create => {
                let index = ctx.next_index.fetch_add(1, Ordering::Relaxed);
                let p = ctx.synth.patient(index);
                self.create(&p).await;
            }
            Workload::Update => {
                if let Some((ty, id)) = self.random_resource(ctx) {
                    self.update(ty, id).await
                }
            }
            Workload::CrudMix => {
                let roll = self.rng.below(100);
                if roll < 70 {
                    if let Some((ty, id)) = self.random_resource(ctx) {
                        self.read(ty, id).await
                    }
                } else if roll < 85 {
                    self.create_any(ctx).await
                } else if roll < 95 {
                    if let Some((ty, id)) = self.random_resource(ctx) {
                        self.update(ty, id).await
                    }
                } else {
                    self.delete_recreate(ctx).await
                }
            }
        }
    }
}

/// A small change that keeps the resource valid.
fn mutate(v: &mut Value, n: u64) {
    match v["resourceType"].as_str() {
        Some("Patient") | Some("RelatedPerson") => v["active"] = json!(n.is_multiple_of(2)),
        _ => v["note"] = json!([{ "text": format!("Reviewed (bench update {})", n % 100_000) }]),
    }
}

/// Runs `w` on `concurrency` workers for `duration`; returns the merged tally and the
/// wall time until the last worker finished its last request.
pub async fn run(
    ctx: Arc<Ctx>,
    w: Workload,
    concurrency: usize,
    duration: Duration,
    seed: u64,
) -> (Tally, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let ctx = ctx.clone();
        let wseed = seed ^ ((i as u64 + 1) << 32) ^ (w as u64);
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new(ctx.addr, wseed);
            while Instant::now() < deadline {
                worker.step(&ctx, w).await;
            }
            worker.tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        match t.await {
            Ok(t) => total.merge(&t),
            Err(e) => total.error(format!("worker panicked: {e}")),
        }
    }
    (total, start.elapsed())
}

/// Loads `n` synthetic children (patient first, then its dependents, each POSTed with
/// validation on) on `concurrency` workers.
pub async fn load(
    addr: SocketAddr,
    synth: &Synth,
    n: u64,
    concurrency: usize,
) -> (Dataset, Tally, Duration) {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let next = next.clone();
        let synth = synth.clone();
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new(addr, i as u64);
            let mut got: Vec<(u64, usize, &'static str, String)> = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= n {
                    break;
                }
                let Some(pid) = worker.create(&synth.patient(index)).await else {
                    continue;
                };
                let reference = format!("Patient/{pid}");
                got.push((index, 0, "Patient", pid));
                for (k, r) in synth.dependents(index, &reference).into_iter().enumerate() {
                    if let Some(id) = worker.create(&r).await {
                        got.push((
                            index,
                            k + 1,
                            static_type(r["resourceType"].as_str().unwrap_or("")),
                            id,
                        ));
                    }
                }
            }
            (worker.tally, got)
        }));
    }
    let mut tally = Tally::default();
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok((t, got)) => {
                tally.merge(&t);
                all.extend(got);
            }
            Err(e) => tally.error(format!("loader panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    all.sort_by_key(|(i, k, _, _)| (*i, *k));
    let mut data = Dataset::default();
    for (_, _, ty, id) in all {
        if ty == "Patient" {
            data.patients.push(id.clone());
        }
        data.resources.push((ty, id));
    }
    (data, tally, elapsed)
}

/// The number of stored (current, not deleted) resources of the generated types, as the
/// server reports it via `GET /fhir/{type}?_summary=count`; `None` if it cannot say.
pub async fn server_count(addr: SocketAddr) -> Option<u64> {
    let mut c = Client::new(addr);
    let mut sum = 0;
    for ty in TYPES {
        let r = c.get(&format!("/fhir/{ty}?_summary=count")).await.ok()?;
        if r.status != 200 {
            return None;
        }
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        sum += v["total"].as_u64()?;
    }
    Some(sum)
}
