//! The loader and the timed workloads. Every HTTP request is timed on its own and counted
//! in the throughput; a workload step that takes two requests (update: GET then PUT;
//! delete-then-recreate: DELETE then PUT) counts two.

use crate::auth::{self, Accounts, Auth};
use crate::http::{self, Client, FHIR_JSON, Response};
use crate::stats::Histogram;
use crate::synth::{NHS_NUMBER_SYSTEM, Rng, Synth, TYPES};
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
    SearchNhs,
    SearchInclude,
    SearchChain,
    Everything,
    Transaction,
    Token,
    SignIn,
    SignInStaff,
    /// `Observation?patient=` as the regional client (the reference for the rows below).
    SearchObs,
    /// The search-visibility workloads: the same searches as a real caller (see [`Who`]).
    HospitalObs,
    HospitalNhs,
    HospitalInclude,
    HospitalChain,
    HospitalEverything,
    SchoolObs,
    SchoolNhs,
    SchoolInclude,
    SchoolChain,
    SchoolEverything,
    FamilyObs,
    FamilyNhs,
    FamilyInclude,
    FamilyChain,
    FamilyEverything,
    /// The passport page (HTML) as a parent signed in to the pages.
    FamilyPassport,
    /// The emergency view (HTML) of one of the parent's children.
    FamilyEmergency,
    /// The review page ("what changed since your last review") as a clinician.
    ClinicianReview,
    /// The soak: the CRUD mix while hostile clients send the outside probe's requests
    /// (see [`crate::hostile`]); compared with a clean `crud-mix` run.
    CrudMixHostile,
}

/// Whose token a workload's `/fhir` requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The trusted regional client (every child, every section: passes every decision).
    Regional,
    /// A system client acting for the hospital trust, a member of every child's care team
    /// (health sector: every section of the synthetic records).
    Hospital,
    /// A system client acting for one school (education sector), in the care teams of 1/20
    /// of the children: sees their Patient, body weights and emergency plan only.
    School,
    /// A family member's user token (`user/*.rs`, authorization code + PKCE), a parent with
    /// parental responsibility of 1–3 children.
    Family,
}

impl Who {
    pub fn name(self) -> &'static str {
        match self {
            Who::Regional => "regional",
            Who::Hospital => "hospital",
            Who::School => "school",
            Who::Family => "family",
        }
    }
}

/// The searches run as each [`Who`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Observation?patient={id}`.
    Obs,
    /// `Patient?identifier={NHS number}`.
    Nhs,
    /// `Observation?subject=Patient/{id}&_include=Observation:subject`.
    Include,
    /// `Observation?subject:Patient.identifier={NHS number}`.
    Chain,
    /// `Patient/{id}/$everything?_count=100`.
    Everything,
}

/// Entries of the `transaction` workload's Bundle.
pub const TRANSACTION_ENTRIES: usize = 20;

impl Workload {
    pub const ALL: [Workload; 33] = [
        Workload::Healthz,
        Workload::Read,
        Workload::Create,
        Workload::Update,
        Workload::CrudMix,
        Workload::SearchNhs,
        Workload::SearchInclude,
        Workload::SearchChain,
        Workload::Everything,
        Workload::Transaction,
        Workload::Token,
        Workload::SignIn,
        Workload::SignInStaff,
        Workload::SearchObs,
        Workload::HospitalObs,
        Workload::HospitalNhs,
        Workload::HospitalInclude,
        Workload::HospitalChain,
        Workload::HospitalEverything,
        Workload::SchoolObs,
        Workload::SchoolNhs,
        Workload::SchoolInclude,
        Workload::SchoolChain,
        Workload::SchoolEverything,
        Workload::FamilyObs,
        Workload::FamilyNhs,
        Workload::FamilyInclude,
        Workload::FamilyChain,
        Workload::FamilyEverything,
        Workload::FamilyPassport,
        Workload::FamilyEmergency,
        Workload::ClinicianReview,
        Workload::CrudMixHostile,
    ];

    /// Whose token the workload's `/fhir` requests carry.
    pub fn who(self) -> Who {
        use Workload::*;
        match self {
            HospitalObs | HospitalNhs | HospitalInclude | HospitalChain | HospitalEverything => {
                Who::Hospital
            }
            SchoolObs | SchoolNhs | SchoolInclude | SchoolChain | SchoolEverything => Who::School,
            FamilyObs | FamilyNhs | FamilyInclude | FamilyChain | FamilyEverything
            | FamilyPassport | FamilyEmergency => Who::Family,
            // A clinician of the hospital trust: every child's care team.
            ClinicianReview => Who::Hospital,
            _ => Who::Regional,
        }
    }

    /// The search of a search-visibility workload (`None` for the others).
    pub fn shape(self) -> Option<Shape> {
        use Workload::*;
        Some(match self {
            SearchObs | HospitalObs | SchoolObs | FamilyObs => Shape::Obs,
            HospitalNhs | SchoolNhs | FamilyNhs => Shape::Nhs,
            HospitalInclude | SchoolInclude | FamilyInclude => Shape::Include,
            HospitalChain | SchoolChain | FamilyChain => Shape::Chain,
            HospitalEverything | SchoolEverything | FamilyEverything => Shape::Everything,
            _ => return None,
        })
    }

    /// Workloads that pick loaded children or resources.
    pub fn needs_data(self) -> bool {
        !matches!(
            self,
            Workload::Healthz
                | Workload::Create
                | Workload::Transaction
                | Workload::Token
                | Workload::SignIn
                | Workload::SignInStaff
        )
    }

    /// Workloads on features a server may lack (search, `$everything`, transactions): a
    /// 404/405 on the first request means "not supported by this server", not a failure.
    pub fn optional(self) -> bool {
        matches!(
            self,
            Workload::SearchNhs
                | Workload::SearchInclude
                | Workload::SearchChain
                | Workload::Everything
                | Workload::Transaction
        ) || self.shape().is_some()
    }

    /// The web sign-in workloads (argon2id: run on `--sign-in-concurrency` clients).
    pub fn is_sign_in(self) -> bool {
        matches!(self, Workload::SignIn | Workload::SignInStaff)
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Healthz => "healthz",
            Workload::Read => "read",
            Workload::Create => "create",
            Workload::Update => "update",
            Workload::CrudMix => "crud-mix",
            Workload::SearchNhs => "search-nhs",
            Workload::SearchInclude => "search-include",
            Workload::SearchChain => "search-chain",
            Workload::Everything => "everything",
            Workload::Transaction => "transaction",
            Workload::Token => "token",
            Workload::SignIn => "sign-in",
            Workload::SignInStaff => "sign-in-staff",
            Workload::SearchObs => "search-obs",
            Workload::HospitalObs => "hospital-obs",
            Workload::HospitalNhs => "hospital-nhs",
            Workload::HospitalInclude => "hospital-include",
            Workload::HospitalChain => "hospital-chain",
            Workload::HospitalEverything => "hospital-everything",
            Workload::SchoolObs => "school-obs",
            Workload::SchoolNhs => "school-nhs",
            Workload::SchoolInclude => "school-include",
            Workload::SchoolChain => "school-chain",
            Workload::SchoolEverything => "school-everything",
            Workload::FamilyObs => "family-obs",
            Workload::FamilyNhs => "family-nhs",
            Workload::FamilyInclude => "family-include",
            Workload::FamilyChain => "family-chain",
            Workload::FamilyEverything => "family-everything",
            Workload::FamilyPassport => "family-passport",
            Workload::FamilyEmergency => "family-emergency",
            Workload::ClinicianReview => "clinician-review",
            Workload::CrudMixHostile => "crud-mix-hostile",
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
            Workload::CrudMixHostile => {
                "the crud-mix, measured, while 4 more clients send hostile requests in turn (300, 50 and 5,000 search criteria, 2,000 _sort keys, NUL in an id, a value and a body, a 1e999999999 quantity, headers that never finish, a body at 20 B/s, 50 idle connections); a 5xx or an unanswered hostile request counts as an error"
            }
            Workload::SearchNhs => {
                "GET /fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS number of a random loaded child}; the searchset must hold exactly that Patient"
            }
            Workload::SearchInclude => {
                "GET /fhir/Condition?subject=Patient/{id}&_include=Condition:subject; ≥ 1 Condition match and the included Patient"
            }
            Workload::SearchChain => {
                "GET /fhir/Condition?subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS number}; ≥ 1 match"
            }
            Workload::Everything => {
                "GET /fhir/Patient/{id}/$everything?_count=100 of a random complex child (~30 resources; any child if there are none); at least the child's loaded record must come back"
            }
            Workload::Transaction => {
                "POST /fhir: a 20-entry transaction Bundle (new Patient with fullUrl urn:uuid:… + 19 resources referring to it by that urn), Prefer: return=minimal; 200 and 20 × 201 expected"
            }
            Workload::Token => {
                "POST /oauth/token grant_type=client_credentials scope=system/*.cruds with HTTP Basic client authentication (a new ES256-signed access token each time); 200 and a Bearer access_token expected"
            }
            Workload::SignIn => {
                "full web sign-in of a family account (password only, argon2id): POST /sign-in form (email, password, csrf_token + the passport_csrf cookie); 303 to / with a session cookie expected"
            }
            Workload::FamilyPassport => {
                "GET /passport/{id} (the passport page, HTML) signed in to the pages as a parent, one of their 1–3 children; 200 with the passport's 11 sections (its read decided item by item and audited once)"
            }
            Workload::FamilyEmergency => {
                "GET /passport/{id}/emergency (the emergency view, HTML) signed in to the pages as a parent, one of their 1–3 children; 200 with its 5 parts (allergies, protocol, medicines, who to call, communication) expected"
            }
            Workload::ClinicianReview => {
                "GET /passport/{id}/changes (the review page, HTML: every item waiting for review with its last checked version beside it) signed in to the pages as a clinician of the hospital trust (password and TOTP, once, untimed), a random child; 200 expected"
            }
            Workload::SignInStaff => {
                "sign-in (password step) of a staff account (argon2id): POST /sign-in as for sign-in; 303 to /sign-in/code (the TOTP step, not measured) with a session cookie expected"
            }
            w => match (w.who(), w.shape()) {
                (Who::Regional, _) => {
                    "GET /fhir/Observation?patient={id} of a random child as the regional client; ≥ 1 Observation"
                }
                (Who::Hospital, Some(Shape::Obs)) => {
                    "GET /fhir/Observation?patient={id} as the hospital trust's system client (care team of every child); ≥ 1 Observation"
                }
                (Who::School, Some(Shape::Obs)) => {
                    "GET /fhir/Observation?patient={id} as a school's system client, a child of that school; ≥ 1 Observation (section about-me)"
                }
                (Who::Family, Some(Shape::Obs)) => {
                    "GET /fhir/Observation?patient={id} with a parent's user token, one of their 1–3 children; ≥ 1 Observation"
                }
                (_, Some(Shape::Nhs)) => {
                    "GET /fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS number} of a child the caller relates to; exactly that Patient"
                }
                (_, Some(Shape::Include)) => {
                    "GET /fhir/Observation?subject=Patient/{id}&_include=Observation:subject of a child the caller relates to; ≥ 1 Observation and the included Patient"
                }
                (_, Some(Shape::Chain)) => {
                    "GET /fhir/Observation?subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS number} of a child the caller relates to; ≥ 1 Observation"
                }
                (_, Some(Shape::Everything)) => {
                    "GET /fhir/Patient/{id}/$everything?_count=100 of a child the caller relates to (complex when it has one); the Patient, and for a school none of the sections it may not see"
                }
                (_, None) => "",
            },
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
    /// Bundles returned by searches and `$everything` and the entries in them.
    pub bundles: u64,
    pub entries: u64,
    /// The status of the first response (for telling "not supported" from failures).
    pub first_status: Option<u16>,
    pub error_samples: Vec<String>,
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.hist.merge(&o.hist);
        self.requests += o.requests;
        self.errors += o.errors;
        self.conflicts += o.conflicts;
        self.created += o.created;
        self.bundles += o.bundles;
        self.entries += o.entries;
        self.first_status = self.first_status.or(o.first_status);
        for s in &o.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(s.clone());
            }
        }
    }

    /// Mean entries per returned Bundle, if any came back.
    pub fn mean_entries(&self) -> Option<f64> {
        (self.bundles > 0).then(|| self.entries as f64 / self.bundles as f64)
    }

    pub(crate) fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(msg);
        }
    }
}

/// What the loader stored: every (type, id), each child's Patient first, in child order.
#[derive(Debug, Default)]
pub struct Dataset {
    pub patients: Vec<String>,
    /// The synthetic child index of each of `patients` (for its NHS number).
    pub patient_index: Vec<u64>,
    /// Positions in `patients` of the complex children.
    pub complex: Vec<usize>,
    pub resources: Vec<(&'static str, String)>,
    /// The id of each child's RelatedPerson (its parent; `None` if it was not loaded).
    pub related: Vec<Option<String>>,
}

impl Dataset {
    /// Builds the dataset from (child index, position in the child's record, type, id).
    fn from_rows(synth: &Synth, mut all: Vec<(u64, usize, &'static str, String)>) -> Dataset {
        all.sort_by_key(|(i, k, _, _)| (*i, *k));
        let mut data = Dataset::default();
        for (index, _, ty, id) in all {
            if ty == "Patient" {
                if synth.is_complex(index) {
                    data.complex.push(data.patients.len());
                }
                data.patients.push(id.clone());
                data.patient_index.push(index);
                data.related.push(None);
            } else if ty == "RelatedPerson"
                && let Some(last) = data.related.last_mut()
                && data.patient_index.last() == Some(&index)
            {
                last.get_or_insert_with(|| id.clone());
            }
            data.resources.push((ty, id));
        }
        data
    }
}

pub struct Ctx {
    pub addr: SocketAddr,
    /// The bench's OAuth client and access token (every `/fhir` request carries it).
    pub auth: Arc<Auth>,
    /// The accounts of the sign-in workloads.
    pub accounts: Accounts,
    pub synth: Synth,
    pub data: Dataset,
    /// Synthetic child index for the next new Patient (so NHS numbers stay distinct).
    pub next_index: AtomicU64,
    /// The real callers of the search-visibility workloads (only those the run needs).
    pub callers: Callers,
}

/// A family member: their user token and the children they are linked to (positions in
/// [`Dataset::patients`]).
pub struct Family {
    pub auth: Arc<Auth>,
    pub children: Vec<usize>,
}

/// The callers other than the regional client, and the children each relates to.
#[derive(Default)]
pub struct Callers {
    /// The hospital trust's system client (every child's care team).
    pub hospital: Option<Arc<Auth>>,
    /// One school's system client.
    pub school: Option<Arc<Auth>>,
    /// Positions of that school's children, and of the complex ones among them.
    pub school_children: Vec<usize>,
    pub school_complex: Vec<usize>,
    /// Family members (worker `i` uses family `i % len`).
    pub families: Vec<Family>,
    /// A clinician's web session (the `Cookie` header), for the review page.
    pub clinician_cookie: Option<String>,
}

impl Callers {
    /// The token of `who` for worker `slot` (`None`: not set up; the regional one is the
    /// context's own).
    pub fn auth(&self, who: Who, slot: usize) -> Option<Arc<Auth>> {
        match who {
            Who::Regional => None,
            Who::Hospital => self.hospital.clone(),
            Who::School => self.school.clone(),
            Who::Family => (!self.families.is_empty())
                .then(|| self.families[slot % self.families.len()].auth.clone()),
        }
    }

    /// Every token, with whose it is (for refreshing before each phase).
    pub fn all(&self) -> Vec<(String, Arc<Auth>)> {
        let mut out = Vec::new();
        if let Some(a) = &self.hospital {
            out.push(("hospital".to_owned(), a.clone()));
        }
        if let Some(a) = &self.school {
            out.push(("school".to_owned(), a.clone()));
        }
        for (i, f) in self.families.iter().enumerate() {
            out.push((format!("family {i}"), f.auth.clone()));
        }
        out
    }
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
    /// Where `/fhir` requests get their bearer token (`None`: sent without).
    auth: Option<Arc<Auth>>,
    /// The sign-in post of this worker: (form body, `Cookie` header), once it has the
    /// CSRF token from `GET /sign-in`.
    sign_in: Option<(Bytes, String)>,
    /// The worker's number in its run (which family member it acts as).
    slot: usize,
    /// The `Cookie` of this worker's web session (page workloads), once signed in.
    page_cookie: Option<String>,
}

fn snippet(body: &Bytes) -> String {
    let s = String::from_utf8_lossy(body);
    let s: String = s.chars().take(300).collect();
    s.replace('\n', " ")
}

impl Worker {
    fn new(addr: SocketAddr, seed: u64, auth: Option<Arc<Auth>>) -> Self {
        Worker {
            client: Client::new(addr),
            rng: Rng::new(seed),
            tally: Tally::default(),
            own: Vec::new(),
            auth,
            sign_in: None,
            slot: 0,
            page_cookie: None,
        }
    }

    fn with_slot(mut self, slot: usize) -> Self {
        self.slot = slot;
        self
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Option<Response> {
        let what = format!("{method} {path}");
        // Every FHIR request carries the bearer token (fetched anew when it gets old; that
        // fetch is not part of the request's time).
        let bearer = match &self.auth {
            Some(a) if path.starts_with("/fhir") => match a.bearer().await {
                Ok(b) => Some(b),
                Err(e) => {
                    self.tally
                        .error(format!("{what}: no access token (refresh failed): {e}"));
                    return None;
                }
            },
            _ => None,
        };
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 1);
        all.extend_from_slice(headers);
        if let Some(b) = &bearer {
            all.push(("authorization", b));
        }
        let t = Instant::now();
        let r = self.client.send(method, path, &all, body).await;
        self.tally.requests += 1;
        match r {
            Ok(r) => {
                self.tally.hist.record(t.elapsed().as_micros() as u64);
                self.tally.first_status.get_or_insert(r.status);
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

    /// GET a search (or `$everything`) `path`; a 200 searchset Bundle is handed to `check`,
    /// whose `Err` is counted as an error.
    async fn search(&mut self, path: &str, check: impl FnOnce(&Value) -> Result<(), String>) {
        let Some(r) = self
            .call(Method::GET, path, &[("accept", FHIR_JSON)], None)
            .await
        else {
            return;
        };
        if r.status != 200 {
            return self.unexpected(&format!("GET {path}"), &r);
        }
        let v: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .tally
                    .error(format!("GET {path}: body is not JSON: {e}"));
            }
        };
        if v["resourceType"] != "Bundle" || v["type"] != "searchset" {
            return self.tally.error(format!(
                "GET {path}: not a searchset Bundle: {}",
                snippet(&r.body)
            ));
        }
        self.tally.bundles += 1;
        self.tally.entries += v["entry"].as_array().map_or(0, Vec::len) as u64;
        if let Err(e) = check(&v) {
            self.tally.error(format!("GET {path}: {e}"));
        }
    }

    /// A random loaded child: (position in `patients`, its id, its NHS number).
    fn random_child(&mut self, ctx: &Ctx) -> (usize, String, String) {
        let ps = &ctx.data.patients;
        let k = self.rng.below(ps.len() as u64) as usize;
        let nhs = ctx.synth.nhs(ctx.data.patient_index[k]);
        (k, ps[k].clone(), nhs)
    }

    async fn transaction(&mut self, ctx: &Ctx) {
        let index = ctx.next_index.fetch_add(1, Ordering::Relaxed);
        let bundle = ctx
            .synth
            .transaction_child(index, TRANSACTION_ENTRIES, &mut self.rng);
        let body = Bytes::from(serde_json::to_vec(&bundle).expect("serialisable"));
        let headers = [
            ("content-type", FHIR_JSON),
            ("accept", FHIR_JSON),
            ("prefer", "return=minimal"),
        ];
        let Some(r) = self.call(Method::POST, "/fhir", &headers, Some(body)).await else {
            return;
        };
        if r.status != 200 {
            return self.unexpected("POST /fhir (transaction)", &r);
        }
        match transaction_response(&r.body, TRANSACTION_ENTRIES) {
            Ok(created) => self.tally.created += created.len() as u64,
            Err(e) => self.tally.error(format!("POST /fhir (transaction): {e}")),
        }
    }

    /// `POST /oauth/token` (client_credentials, HTTP Basic).
    async fn token(&mut self, ctx: &Ctx) {
        let headers = [
            ("authorization", ctx.auth.basic.as_str()),
            ("content-type", auth::FORM),
            ("accept", "application/json"),
        ];
        let Some(r) = self
            .call(
                Method::POST,
                "/oauth/token",
                &headers,
                Some(ctx.auth.form.clone()),
            )
            .await
        else {
            return;
        };
        if let Err(e) = auth::parse_token_response(&r) {
            self.tally.error(format!("POST /oauth/token: {e}"));
        }
    }

    /// `POST /sign-in` of `account` (the CSRF token is fetched once per worker, unmeasured).
    async fn sign_in(&mut self, account: Option<&auth::Account>) {
        let Some(account) = account else {
            return self.tally.error("sign-in: no account was created".into());
        };
        if self.sign_in.is_none() {
            match auth::csrf_token(&mut self.client).await {
                Ok(t) => self.sign_in = Some(auth::sign_in_request(account, &t)),
                Err(e) => return self.tally.error(e),
            }
        }
        let Some((body, cookie)) = self.sign_in.clone() else {
            return;
        };
        let headers = [
            ("content-type", auth::FORM),
            ("accept", "text/html"),
            ("cookie", cookie.as_str()),
        ];
        let Some(r) = self
            .call(Method::POST, "/sign-in", &headers, Some(body))
            .await
        else {
            return;
        };
        if let Err(e) = auth::check_sign_in(&r, account) {
            self.tally
                .error(format!("POST /sign-in ({}): {e}", account.email));
        }
    }

    /// One passport page (or, `emergency`, its emergency view) as this worker's parent
    /// (signed in once, untimed).
    async fn passport_page(&mut self, ctx: &Ctx, emergency: bool) {
        let Some(k) = self.child_of(ctx, Who::Family, false) else {
            return self.tally.error("family-passport: no child".into());
        };
        if self.page_cookie.is_none() {
            let families = &ctx.callers.families;
            let account = families
                .get(self.slot % families.len().max(1))
                .and_then(|f| f.auth.account().cloned());
            let Some(account) = account else {
                return self
                    .tally
                    .error("family-passport: no family account".into());
            };
            match auth::session_cookie(&mut self.client, &account).await {
                Ok(c) => self.page_cookie = Some(c),
                Err(e) => return self.tally.error(e),
            }
        }
        let cookie = self.page_cookie.clone().unwrap_or_default();
        let (path, marker, expected) = if emergency {
            (
                format!("/passport/{}/emergency", ctx.data.patients[k]),
                "class=\"emergency-part\"",
                5,
            )
        } else {
            (
                format!("/passport/{}", ctx.data.patients[k]),
                "class=\"passport-section\"",
                11,
            )
        };
        let Some(r) = self.page(&path, &cookie).await else {
            return;
        };
        let sections = String::from_utf8_lossy(&r.body).matches(marker).count();
        if r.status != 200 || sections != expected {
            self.unexpected(&format!("GET {path} ({sections} sections)"), &r);
        }
    }

    /// A page of the web surface (HTML) in the session `cookie` carries.
    async fn page(&mut self, path: &str, cookie: &str) -> Option<Response> {
        self.call(
            Method::GET,
            path,
            &[("accept", "text/html"), ("cookie", cookie)],
            None,
        )
        .await
    }

    /// One review page as the hospital's clinician (signed in once, before the run).
    async fn review_page(&mut self, ctx: &Ctx) {
        let Some(k) = self.child_of(ctx, Who::Hospital, false) else {
            return self.tally.error("clinician-review: no child".into());
        };
        let Some(cookie) = ctx.callers.clinician_cookie.clone() else {
            return self
                .tally
                .error("clinician-review: no clinician session".into());
        };
        let path = format!("/passport/{}/changes", ctx.data.patients[k]);
        let Some(r) = self.page(&path, &cookie).await else {
            return;
        };
        if r.status != 200 {
            self.unexpected(&format!("GET {path}"), &r);
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
            Workload::CrudMix | Workload::CrudMixHostile => {
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
            Workload::SearchNhs => {
                let (_, id, nhs) = self.random_child(ctx);
                let path = format!("/fhir/Patient?identifier={}", token(&nhs));
                self.search(&path, |b| {
                    let entries = matches(b);
                    match entries.as_slice() {
                        [only] if only["resource"]["id"] == id.as_str() => Ok(()),
                        _ => Err(format!(
                            "expected exactly Patient/{id}, got {} entries",
                            entries.len()
                        )),
                    }
                })
                .await
            }
            Workload::SearchInclude => {
                let (_, id, _) = self.random_child(ctx);
                let path =
                    format!("/fhir/Condition?subject=Patient/{id}&_include=Condition:subject");
                self.search(&path, |b| {
                    let m = matches(b);
                    if m.is_empty()
                        || m.iter()
                            .any(|e| e["resource"]["resourceType"] != "Condition")
                    {
                        return Err(format!("expected ≥ 1 Condition match, got {}", m.len()));
                    }
                    if !included(b).iter().any(|e| {
                        e["resource"]["resourceType"] == "Patient"
                            && e["resource"]["id"] == id.as_str()
                    }) {
                        return Err(format!("Patient/{id} not included"));
                    }
                    Ok(())
                })
                .await
            }
            Workload::SearchChain => {
                let (_, _, nhs) = self.random_child(ctx);
                let path = format!("/fhir/Condition?subject:Patient.identifier={}", token(&nhs));
                self.search(&path, |b| {
                    let m = matches(b);
                    if m.is_empty()
                        || m.iter()
                            .any(|e| e["resource"]["resourceType"] != "Condition")
                    {
                        return Err(format!("expected ≥ 1 Condition match, got {}", m.len()));
                    }
                    Ok(())
                })
                .await
            }
            Workload::Everything => {
                let k = if ctx.data.complex.is_empty() {
                    self.rng.below(ctx.data.patients.len() as u64) as usize
                } else {
                    ctx.data.complex[self.rng.below(ctx.data.complex.len() as u64) as usize]
                };
                let id = &ctx.data.patients[k];
                let expected = ctx.synth.resource_count(ctx.data.patient_index[k]);
                let path = format!("/fhir/Patient/{id}/$everything?_count=100");
                self.search(&path, |b| {
                    let all = b["entry"].as_array().map_or(&[][..], Vec::as_slice);
                    if !all.iter().any(|e| {
                        e["resource"]["resourceType"] == "Patient"
                            && e["resource"]["id"] == id.as_str()
                    }) {
                        return Err(format!("Patient/{id} itself is missing"));
                    }
                    let paged = b["link"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|l| l["relation"] == "next"));
                    if !paged && all.len() < expected {
                        return Err(format!(
                            "{} entries, the child was loaded with {expected} resources",
                            all.len()
                        ));
                    }
                    Ok(())
                })
                .await
            }
            Workload::Transaction => self.transaction(ctx).await,
            Workload::Token => self.token(ctx).await,
            Workload::SignIn => self.sign_in(ctx.accounts.family.as_ref()).await,
            Workload::SignInStaff => self.sign_in(ctx.accounts.staff.as_ref()).await,
            Workload::FamilyPassport => self.passport_page(ctx, false).await,
            Workload::FamilyEmergency => self.passport_page(ctx, true).await,
            Workload::ClinicianReview => self.review_page(ctx).await,
            w => match w.shape() {
                Some(shape) => self.as_caller(ctx, w.who(), shape).await,
                None => self.tally.error(format!("{}: no step", w.name())),
            },
        }
    }

    /// A child `who` relates to (position in `patients`); a complex one if asked and there
    /// is one.
    fn child_of(&mut self, ctx: &Ctx, who: Who, complex: bool) -> Option<usize> {
        let c = &ctx.callers;
        let all: Vec<usize>;
        let pool: &[usize] = match who {
            Who::Regional | Who::Hospital => {
                if complex && !ctx.data.complex.is_empty() {
                    &ctx.data.complex
                } else {
                    all = (0..ctx.data.patients.len()).collect();
                    &all
                }
            }
            Who::School => {
                if complex && !c.school_complex.is_empty() {
                    &c.school_complex
                } else {
                    &c.school_children
                }
            }
            Who::Family => {
                if c.families.is_empty() {
                    &[]
                } else {
                    &c.families[self.slot % c.families.len()].children
                }
            }
        };
        (!pool.is_empty()).then(|| pool[self.rng.below(pool.len() as u64) as usize])
    }

    /// One search of a search-visibility workload as `who`.
    async fn as_caller(&mut self, ctx: &Ctx, who: Who, shape: Shape) {
        let Some(k) = self.child_of(ctx, who, shape == Shape::Everything) else {
            return self
                .tally
                .error(format!("{}: no child to search for", who.name()));
        };
        let id = ctx.data.patients[k].clone();
        let nhs = ctx.synth.nhs(ctx.data.patient_index[k]);
        let observations = |b: &Value| {
            let m = matches(b);
            if m.is_empty()
                || m.iter()
                    .any(|e| e["resource"]["resourceType"] != "Observation")
            {
                return Err(format!("expected ≥ 1 Observation match, got {}", m.len()));
            }
            Ok(())
        };
        match shape {
            Shape::Obs => {
                let path = format!("/fhir/Observation?patient={id}");
                self.search(&path, observations).await
            }
            Shape::Nhs => {
                let path = format!("/fhir/Patient?identifier={}", token(&nhs));
                self.search(&path, |b| {
                    let entries = matches(b);
                    match entries.as_slice() {
                        [only] if only["resource"]["id"] == id.as_str() => Ok(()),
                        _ => Err(format!(
                            "expected exactly Patient/{id}, got {} entries",
                            entries.len()
                        )),
                    }
                })
                .await
            }
            Shape::Include => {
                let path =
                    format!("/fhir/Observation?subject=Patient/{id}&_include=Observation:subject");
                self.search(&path, |b| {
                    observations(b)?;
                    if !included(b).iter().any(|e| {
                        e["resource"]["resourceType"] == "Patient"
                            && e["resource"]["id"] == id.as_str()
                    }) {
                        return Err(format!("Patient/{id} not included"));
                    }
                    Ok(())
                })
                .await
            }
            Shape::Chain => {
                let path = format!(
                    "/fhir/Observation?subject:Patient.identifier={}",
                    token(&nhs)
                );
                self.search(&path, observations).await
            }
            Shape::Everything => {
                let expected = ctx.synth.resource_count(ctx.data.patient_index[k]);
                let path = format!("/fhir/Patient/{id}/$everything?_count=100");
                self.search(&path, |b| {
                    let all = b["entry"].as_array().map_or(&[][..], Vec::as_slice);
                    if !all.iter().any(|e| {
                        e["resource"]["resourceType"] == "Patient"
                            && e["resource"]["id"] == id.as_str()
                    }) {
                        return Err(format!("Patient/{id} itself is missing"));
                    }
                    if who == Who::School {
                        // Only the sections a school sees by default (docs/SECURITY.md
                        // §5.1): no conditions or contacts.
                        if let Some(e) = all.iter().find(|e| {
                            let t = e["resource"]["resourceType"].as_str().unwrap_or("");
                            !crate::synth::sections_of(t).iter().any(|s| {
                                matches!(
                                    *s,
                                    "about-me"
                                        | "communication"
                                        | "emergency"
                                        | "education"
                                        | "allergies"
                                        | "medicines"
                                )
                            })
                        }) {
                            return Err(format!(
                                "a school was shown {}",
                                e["resource"]["resourceType"]
                            ));
                        }
                        return Ok(());
                    }
                    let paged = b["link"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|l| l["relation"] == "next"));
                    if !paged && all.len() < expected {
                        return Err(format!(
                            "{} entries, the child was loaded with {expected} resources",
                            all.len()
                        ));
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}

/// `system|value` of an NHS number, `|` percent-encoded for the request line.
fn token(nhs: &str) -> String {
    format!("{NHS_NUMBER_SYSTEM}%7C{nhs}")
}

/// Entries of a searchset whose `search.mode` is `mode` (a missing mode counts as match).
fn entries_in_mode<'a>(b: &'a Value, mode: &str) -> Vec<&'a Value> {
    b["entry"].as_array().map_or_else(Vec::new, |es| {
        es.iter()
            .filter(|e| e["search"]["mode"].as_str().unwrap_or("match") == mode)
            .collect()
    })
}

fn matches(b: &Value) -> Vec<&Value> {
    entries_in_mode(b, "match")
}

fn included(b: &Value) -> Vec<&Value> {
    entries_in_mode(b, "include")
}

/// Checks a `transaction-response` body: exactly `expected` entries, each `201`, each with a
/// `location` `…/fhir/{type}/{id}/…`. Returns the created (type, id), in entry order.
pub fn transaction_response(body: &[u8], expected: usize) -> Result<Vec<(String, String)>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    if v["resourceType"] != "Bundle" || v["type"] != "transaction-response" {
        return Err(format!(
            "not a transaction-response Bundle: {}",
            snippet(&Bytes::copy_from_slice(body))
        ));
    }
    let entries = v["entry"].as_array().map_or(&[][..], Vec::as_slice);
    if entries.len() != expected {
        return Err(format!(
            "{} entries in the response, sent {expected}",
            entries.len()
        ));
    }
    let mut out = Vec::with_capacity(expected);
    for (i, e) in entries.iter().enumerate() {
        let status = e["response"]["status"].as_str().unwrap_or("");
        if !status.starts_with("201") {
            return Err(format!("entry {i}: status {status:?}, expected 201"));
        }
        let location = e["response"]["location"].as_str().unwrap_or("");
        let (ty, id) = http::type_and_id_from_location(location)
            .ok_or_else(|| format!("entry {i}: no usable location {location:?}"))?;
        out.push((ty.to_owned(), id.to_owned()));
    }
    Ok(out)
}

/// A small change that keeps the resource valid — and keeps what the access decision reads
/// (`active`, links, care-team members, section tags), so that updates never take a child
/// away from the hospital, a school or a parent in the later workloads.
fn mutate(v: &mut Value, n: u64) {
    match v["resourceType"].as_str() {
        Some("Patient") => v["multipleBirthBoolean"] = json!(n.is_multiple_of(2)),
        Some("RelatedPerson") => v["telecom"][0]["rank"] = json!(1 + n % 3),
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
            let auth = ctx
                .callers
                .auth(w.who(), i)
                .unwrap_or_else(|| ctx.auth.clone());
            let mut worker = Worker::new(ctx.addr, wseed, Some(auth)).with_slot(i);
            while Instant::now() < deadline {
                worker.step(&ctx, w).await;
            }
            worker.tally
        }));
    }
    let hostile: Vec<_> = if w == Workload::CrudMixHostile {
        (0..crate::hostile::CLIENTS)
            .map(|i| tokio::spawn(crate::hostile::run(ctx.addr, ctx.auth.clone(), deadline, i)))
            .collect()
    } else {
        Vec::new()
    };
    let mut total = Tally::default();
    for t in tasks {
        match t.await {
            Ok(t) => total.merge(&t),
            Err(e) => total.error(format!("worker panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let mut sent = 0;
    for h in hostile {
        match h.await {
            // Their failures count; their requests and latencies do not.
            Ok(t) => {
                sent += t.requests;
                for e in &t.error_samples {
                    total.error(e.clone());
                }
                total.errors += t.errors.saturating_sub(t.error_samples.len() as u64);
            }
            Err(e) => total.error(format!("hostile client panicked: {e}")),
        }
    }
    if w == Workload::CrudMixHostile {
        eprintln!("passport-bench: {sent} hostile requests beside the crud-mix");
    }
    (total, elapsed)
}

/// Loads `n` synthetic children (patient first, then its dependents, each POSTed with
/// validation on) on `concurrency` workers.
pub async fn load(
    auth: &Arc<Auth>,
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
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new(auth.addr, i as u64, Some(auth));
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
    (Dataset::from_rows(synth, all), tally, start.elapsed())
}

/// Loads children `0..n` through `transaction` Bundles (`plan`: consecutive runs of child
/// indexes, see [`Synth::plan_bundles`]) on `concurrency` workers, `Prefer: return=minimal`.
/// Every Bundle counts as one request; a Bundle is all or nothing.
pub async fn load_transactions(
    auth: &Arc<Auth>,
    synth: &Synth,
    plan: Vec<std::ops::Range<u64>>,
    concurrency: usize,
) -> (Dataset, Tally, Duration) {
    let start = Instant::now();
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let (next, plan, synth, auth) = (next.clone(), plan.clone(), synth.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new(auth.addr, i as u64, Some(auth));
            let mut got: Vec<(u64, usize, &'static str, String)> = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(children) = plan.get(k) else {
                    break;
                };
                let bundle = synth.transaction(children.clone(), &mut worker.rng);
                let n = bundle["entry"].as_array().map_or(0, Vec::len);
                let body = Bytes::from(serde_json::to_vec(&bundle).expect("serialisable"));
                drop(bundle);
                let headers = [
                    ("content-type", FHIR_JSON),
                    ("accept", FHIR_JSON),
                    ("prefer", "return=minimal"),
                ];
                let what = format!("POST /fhir (transaction of children {children:?})");
                let Some(r) = worker
                    .call(Method::POST, "/fhir", &headers, Some(body))
                    .await
                else {
                    continue;
                };
                if r.status != 200 {
                    worker.unexpected(&what, &r);
                    continue;
                }
                let created = match transaction_response(&r.body, n) {
                    Ok(c) => c,
                    Err(e) => {
                        worker.tally.error(format!("{what}: {e}"));
                        continue;
                    }
                };
                worker.tally.created += created.len() as u64;
                // Entries come back in request order: each child's Patient, then the rest.
                let mut index = children.start;
                let mut pos = 0;
                for (j, (ty, id)) in created.into_iter().enumerate() {
                    if ty == "Patient" {
                        if j > 0 {
                            index += 1;
                        }
                        pos = 0;
                    }
                    got.push((index, pos, static_type(&ty), id));
                    pos += 1;
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
    (Dataset::from_rows(synth, all), tally, start.elapsed())
}

/// What one first request of an optional workload says about the server.
pub enum Probe {
    /// Answered 404 or 405: the server lacks the feature (the error text).
    Unsupported(String),
    /// Anything else (including other errors, which the measured run will count).
    Go,
}

/// Runs one step of `w` and looks at the first response; also returns the step's tally
/// (resources it created, errors other than "not supported").
pub async fn probe(ctx: &Ctx, w: Workload, seed: u64) -> (Probe, Tally) {
    let auth = ctx
        .callers
        .auth(w.who(), 0)
        .unwrap_or_else(|| ctx.auth.clone());
    let mut worker = Worker::new(ctx.addr, seed, Some(auth));
    worker.step(ctx, w).await;
    let verdict = match worker.tally.first_status {
        Some(s @ (404 | 405)) if worker.tally.errors > 0 => Probe::Unsupported(
            worker
                .tally
                .error_samples
                .first()
                .cloned()
                .unwrap_or_else(|| format!("HTTP {s}")),
        ),
        _ => Probe::Go,
    };
    (verdict, worker.tally)
}

/// The number of stored (current, not deleted) resources of the generated types, as the
/// server reports it via `GET /fhir/{type}?_summary=count`; `None` if it cannot say.
pub async fn server_count(auth: &Auth) -> Option<u64> {
    let mut c = Client::new(auth.addr);
    let mut sum = 0;
    for ty in TYPES {
        let bearer = auth.bearer().await.ok()?;
        let r = c
            .send(
                Method::GET,
                &format!("/fhir/{ty}?_summary=count"),
                &[("accept", FHIR_JSON), ("authorization", &bearer)],
                None,
            )
            .await
            .ok()?;
        if r.status != 200 {
            return None;
        }
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        sum += v["total"].as_u64()?;
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every request with `status` and an empty body.
    async fn fake_server(status: &'static str) -> SocketAddr {
        crate::test_server::serve(move |_head| {
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n")
        })
        .await
    }

    fn ctx(addr: SocketAddr) -> Ctx {
        let synth = Synth::new(1, 20_000);
        let data = Dataset::from_rows(
            &synth,
            vec![
                (0, 1, "Condition", "c0".into()),
                (0, 0, "Patient", "p0".into()),
                (1, 0, "Patient", "p1".into()),
            ],
        );
        Ctx {
            addr,
            auth: Auth::fixed(addr, "Bearer test-token"),
            accounts: Accounts::default(),
            synth,
            data,
            next_index: AtomicU64::new(10),
            callers: Callers::default(),
        }
    }

    /// A server that answers 200 with an empty body and keeps every request's head.
    async fn recording_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_heads = heads.clone();
        let addr = crate::test_server::serve(move |head| {
            seen_heads.lock().unwrap().push(head.to_owned());
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
        })
        .await;
        (addr, heads)
    }

    #[tokio::test]
    async fn fhir_requests_carry_the_bearer_token_and_healthz_does_not() {
        let (addr, heads) = recording_server().await;
        let ctx = ctx(addr);
        let (_, t) = probe(&ctx, Workload::Read, 1).await;
        assert_eq!(t.errors, 0, "{:?}", t.error_samples);
        let (_, t) = probe(&ctx, Workload::Healthz, 1).await;
        assert_eq!(t.errors, 0, "{:?}", t.error_samples);
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let has_bearer = |h: &str| {
            h.lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer test-token"))
        };
        assert!(heads[0].starts_with("GET /fhir/Patient/p"), "{}", heads[0]);
        assert!(has_bearer(&heads[0]), "{}", heads[0]);
        assert!(heads[1].starts_with("GET /healthz"), "{}", heads[1]);
        assert!(!heads[1].to_ascii_lowercase().contains("authorization"));
    }

    #[test]
    fn dataset_orders_children_and_keeps_their_indexes() {
        let c = ctx(([127, 0, 0, 1], 9).into());
        assert_eq!(c.data.patients, ["p0", "p1"]);
        assert_eq!(c.data.patient_index, [0, 1]);
        assert_eq!(c.data.resources[1], ("Condition", "c0".to_owned()));
    }

    #[tokio::test]
    async fn a_404_or_405_on_the_first_request_means_not_supported() {
        for status in ["404 Not Found", "405 Method Not Allowed"] {
            let ctx = ctx(fake_server(status).await);
            for w in [Workload::SearchNhs, Workload::Everything] {
                let (verdict, t) = probe(&ctx, w, 1).await;
                assert!(matches!(verdict, Probe::Unsupported(_)), "{status} {w:?}");
                assert_eq!(t.errors, 1);
            }
        }
        // Any other failure is not "unsupported": the run goes on and counts the errors.
        let ctx = ctx(fake_server("500 Internal Server Error").await);
        let (verdict, t) = probe(&ctx, Workload::SearchChain, 1).await;
        assert!(matches!(verdict, Probe::Go));
        assert_eq!(t.errors, 1);
        let (verdict, t) = probe(&ctx, Workload::Healthz, 1).await;
        assert!(matches!(verdict, Probe::Go));
        assert_eq!(t.errors, 1);
    }

    #[test]
    fn updates_keep_what_access_decisions_read() {
        let s = Synth::new(3, 20_000);
        let mut all = vec![s.patient(0)];
        all.extend(s.dependents(0, "Patient/p0"));
        for r in all {
            for n in 0..4 {
                let mut v = r.clone();
                mutate(&mut v, n);
                assert_ne!(v, r, "{}", r["resourceType"]);
                for k in [
                    "active",
                    "meta",
                    "extension",
                    "participant",
                    "patient",
                    "subject",
                ] {
                    assert_eq!(v[k], r[k], "{} {k}", r["resourceType"]);
                }
            }
        }
    }

    #[test]
    fn transaction_responses_are_checked() {
        let ok = json!({
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                { "response": { "status": "201 Created", "location": "http://h/fhir/Patient/p/_history/1" } },
                { "response": { "status": "201", "location": "http://h/fhir/Observation/o/_history/1" } },
            ]
        });
        let body = serde_json::to_vec(&ok).unwrap();
        assert_eq!(
            transaction_response(&body, 2).unwrap(),
            [
                ("Patient".to_owned(), "p".to_owned()),
                ("Observation".to_owned(), "o".to_owned())
            ]
        );
        assert!(
            transaction_response(&body, 3)
                .unwrap_err()
                .contains("2 entries")
        );
        let mut bad = ok.clone();
        bad["entry"][1]["response"]["status"] = json!("200 OK");
        let body = serde_json::to_vec(&bad).unwrap();
        assert!(
            transaction_response(&body, 2)
                .unwrap_err()
                .contains("entry 1")
        );
        let mut bad = ok;
        bad["type"] = json!("batch-response");
        let body = serde_json::to_vec(&bad).unwrap();
        assert!(transaction_response(&body, 2).is_err());
        assert!(transaction_response(b"nope", 2).is_err());
    }
}
