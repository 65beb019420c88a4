//! Auditing: building FHIR AuditEvents, recording them, checkpointing the chain, and the
//! family's plain-words access log.
//!
//! * **Writes** attach their AuditEvent to the [`passport_store::Write`] (`Write::audit`), so
//!   it commits in the same transaction as the resource (and vanishes with it if the write
//!   is refused — record the refusal with [`Auditor::submit`]). On SQLite it is chained in
//!   that transaction; on PostgreSQL it commits into the audit outbox and this module's task
//!   chains it ([`passport_store::Store::drain_audit_outbox`]) on its next flush tick (every
//!   `flush_interval`, even with nothing queued), with its next batch, on
//!   [`Auditor::flush`] and at [`Auditor::close`] (before the final checkpoint): within about
//!   `flush_interval`, well within a second. The record keeps its `recorded` time; its place
//!   in the chain is when it was chained ([`passport_store::audit`], "The outbox").
//! * **Everything else** (reads, searches, sign-ins, exports…) goes through the [`Auditor`]:
//!   a bounded queue in front of one background task that appends batches to the store's
//!   hash chain ([`passport_store::Store::append_audit`]; on SQLite through the writer thread,
//!   group-committed with the writes). A batch is appended when it reaches [`MAX_BATCH`]
//!   records or `flush_interval` (default 200 ms) after its first record, so every record is
//!   durable well within a second. When the queue is full, [`Auditor::submit`] waits: a
//!   record is never dropped. A failed append is retried (the queue then fills and requests
//!   wait). [`Auditor::close`] (graceful shutdown) appends what is left.
//! * **Checkpoints**: the same task signs the chain head every `checkpoint_interval` (when
//!   it moved) and at close, appending to the checkpoint file outside the database
//!   ([`passport_store::audit`] has the formats and `passport audit verify`'s checks).
//!
//! # The AuditEvent ([`AuditEventSpec::to_record`], FHIR R4)
//!
//! * `type`/`subtype`: `audit-event-type|rest` + `restful-interaction|<read, search-type…>`
//!   for the REST interactions; DICOM `110114` User Authentication + `110122` Login /
//!   `110123` Logout for sign-in/out (a failed sign-in is a Login with outcome `4`);
//!   DICOM `110106` Export; DICOM `110113` Security Alert + `110127` Emergency Override
//!   Started for break-glass; consent changes are `rest` + `create`/`update` on the Consent,
//!   with a second subtype `consent-change` from [`PASSPORT_EVENT_SYSTEM`].
//! * `agent[0]`: the person (`who`: a Practitioner/RelatedPerson/Patient reference with
//!   display), `requestor: true`, `network.address` (type `2`, IP). `agent[1]` (when known):
//!   their organisation — `who` a Reference(Organization) with display, type `v3-RoleClass|PROV`,
//!   `requestor: false`. R4 has no organisation element on an agent; a second agent is the
//!   R4-valid way (as IHE BALP does). `agent[2]` (when known): the client application,
//!   `who` a Reference(Device) or display, type DICOM `110150` Application.
//! * `source.observer`: this server (identifier = its base URL), type `4` Application Server.
//! * `entity`: the child (`Patient/<id>`, role `1` Patient), the resource read or written
//!   (role `4` Domain Resource, versioned reference when known), and for a search a `query`
//!   entity (role `24`) whose `query` is the search's query string, base64 as FHIR
//!   requires. **Personal data**: the query may hold an NHS number; it belongs in the
//!   AuditEvent (the privacy officer must see what was looked for), which is itself
//!   protected data, but it is never written to the process log (`tracing`) and never
//!   shown in the family's access log.
//! * `purposeOfEvent`: `v3-ActReason` `TREAT`, `ETREAT` (break-glass), `FAMRQT`/`PATRQT`
//!   (the family, the young person), `HOPERAT` (operations), or `safeguarding` from
//!   [`PASSPORT_PURPOSE_SYSTEM`] — the last makes the record
//!   [`Sensitivity::Safeguarding`]: only the privacy officer sees it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use passport_store::audit::AuditKey;
use passport_store::{AuditRecord, ChainHead, Sensitivity, Store};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock;

/// The most records appended together.
pub const MAX_BATCH: usize = 512;
/// Code system of Passport's own AuditEvent subtypes (`consent-change`).
pub const PASSPORT_EVENT_SYSTEM: &str = "urn:x-passport:audit-event";
/// Code system of Passport's own purposes of use (`safeguarding`).
pub const PASSPORT_PURPOSE_SYSTEM: &str = "urn:x-passport:purpose-of-use";

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

// ---------------------------------------------------------------------------------------
// The recorder

/// How the auditor runs.
#[derive(Debug, Clone)]
pub struct AuditorConfig {
    /// Records that may wait in the queue before submitters wait.
    pub queue: usize,
    /// The longest a record waits before its batch is appended.
    pub flush_interval: Duration,
    /// How often the chain head is signed (if it moved).
    pub checkpoint_interval: Duration,
    /// Where checkpoints go; `None`: no checkpoints (tests of the queue alone).
    pub checkpoint_file: Option<PathBuf>,
}

/// Why a record was not accepted: the auditor is closed (the record is handed back).
#[derive(Debug, thiserror::Error)]
#[error("the audit recorder is closed")]
pub struct AuditClosed(pub AuditRecord);

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<Result<(), String>>),
}

/// The queue in front of the background task that appends audit records.
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    /// The receiver until [`Auditor::spawn`] hands it to the task.
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    config: AuditorConfig,
    key: Option<std::sync::Arc<AuditKey>>,
}

impl Auditor {
    /// A recorder not yet running: records queue up (and submitters wait once `queue` are
    /// waiting) until [`Auditor::spawn`].
    pub fn new(config: AuditorConfig, key: Option<AuditKey>) -> Auditor {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        Auditor {
            tx,
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
            config,
            key: key.map(std::sync::Arc::new),
        }
    }

    /// Starts the background task appending to `store`. Once only.
    pub fn spawn(&self, store: std::sync::Arc<Store>) {
        let Some(rx) = lock(&self.rx).take() else {
            return;
        };
        let task = Task {
            config: self.config.clone(),
            key: self.key.clone(),
            batch: Vec::new(),
            checkpointed: None,
        };
        *lock(&self.task) = Some(tokio::spawn(task.run(store, rx)));
    }

    /// Queues a record; waits while the queue is full. Returns once queued (durable within
    /// `flush_interval` plus an append); [`Auditor::flush`] waits for durability.
    pub async fn submit(&self, record: AuditRecord) -> Result<(), AuditClosed> {
        self.tx
            .send(Msg::Record(record))
            .await
            .map_err(|e| match e.0 {
                Msg::Record(r) => AuditClosed(r),
                _ => unreachable!(),
            })
    }

    /// Waits until every record submitted before this call is durable and chained, and
    /// every write's record committed before it is chained (the PostgreSQL outbox drained).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Appends whatever is queued, drains the audit outbox, writes a final checkpoint, and
    /// stops taking records (later submissions get [`AuditClosed`]). Idempotent.
    pub async fn close(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).await.is_err() {
            return Ok(());
        }
        let result = rx.await.unwrap_or(Ok(()));
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Task {
    config: AuditorConfig,
    key: Option<std::sync::Arc<AuditKey>>,
    batch: Vec<AuditRecord>,
    /// The head last signed.
    checkpointed: Option<ChainHead>,
}

impl Task {
    async fn run(mut self, store: std::sync::Arc<Store>, mut rx: mpsc::Receiver<Msg>) {
        let store = &*store;
        let mut checkpoint_tick = tokio::time::interval(self.config.checkpoint_interval);
        checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoint_tick.tick().await;
        // Writes' records wait in PostgreSQL's audit outbox until chained: at least this
        // often, even with nothing queued here (every appended batch chains them too).
        let mut drain_tick = tokio::time::interval(self.config.flush_interval);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        drain_tick.tick().await;
        loop {
            // Wait for a first record (or a tick).
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = drain_tick.tick() => {
                    self.drain(store).await;
                    continue;
                }
                _ = checkpoint_tick.tick() => {
                    self.checkpoint(store).await;
                    continue;
                }
            };
            let Some(first) = first else { break };
            let deadline = tokio::time::Instant::now() + self.config.flush_interval;
            let mut next = Some(first);
            // Gather until the batch is full, the deadline passes, or someone waits on it.
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Record(r) => {
                        self.batch.push(r);
                        if self.batch.len() >= MAX_BATCH {
                            self.append(store, false).await;
                        }
                    }
                    Msg::Flush(done) => {
                        self.append(store, false).await;
                        self.drain(store).await;
                        let _ = done.send(());
                    }
                    Msg::Close(done) => {
                        let result = self.close(store, &mut rx).await;
                        let _ = done.send(result);
                        return;
                    }
                }
                if self.batch.is_empty() {
                    break;
                }
                next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => Some(m),
                    Ok(None) | Err(_) => None,
                };
            }
            self.append(store, false).await;
        }
        // Every sender is gone (the auditor was dropped without close).
        let _ = self.close(store, &mut rx).await;
    }

    /// Appends the batch; retries until it is stored (a record is never dropped). When
    /// `closing`, gives up after about ten seconds and reports the loss.
    async fn append(&mut self, store: &Store, closing: bool) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let mut attempt: u32 = 0;
        loop {
            match store.append_audit(self.batch.clone()).await {
                Ok(()) => {
                    self.batch.clear();
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, records = self.batch.len(), attempt,
                        "cannot append audit records; retrying (requests wait meanwhile)");
                    if closing && attempt >= 20 {
                        return false;
                    }
                    let ms = 50u64 * u64::from(attempt.min(20));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
    }

    async fn close(&mut self, store: &Store, rx: &mut mpsc::Receiver<Msg>) -> Result<(), String> {
        rx.close();
        let mut waiting = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Record(r) => self.batch.push(r),
                Msg::Flush(done) => waiting.push(done),
                Msg::Close(done) => {
                    let _ = done.send(Ok(()));
                }
            }
        }
        let n = self.batch.len();
        let appended = self.append(store, true).await;
        // Chain the writes' records too, so the final checkpoint covers them.
        let drained = self.drain(store).await;
        for done in waiting {
            let _ = done.send(());
        }
        self.checkpoint(store).await;
        if !appended {
            Err(format!("{n} audit records could not be stored at shutdown"))
        } else if !drained {
            Err(
                "the audit outbox could not be chained at shutdown (its records are stored; \
                 the next drain chains them)"
                    .into(),
            )
        } else {
            Ok(())
        }
    }

    /// Chains the writes' records waiting in the audit outbox (PostgreSQL; nothing on
    /// SQLite). A failure is logged; the rows stay and the next tick tries again.
    async fn drain(&mut self, store: &Store) -> bool {
        match store.drain_audit_outbox().await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot chain the audit outbox; will retry");
                false
            }
        }
    }

    async fn checkpoint(&mut self, store: &Store) {
        let (Some(key), Some(path)) = (&self.key, &self.config.checkpoint_file) else {
            return;
        };
        let head = match store.audit_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit chain head");
                return;
            }
        };
        let Some(head) = head else { return };
        if self.checkpointed == Some(head) {
            return;
        }
        let c = key.checkpoint(head, clock::now_us());
        let p = path.clone();
        let written =
            tokio::task::spawn_blocking(move || passport_store::audit::append_checkpoint(&p, &c))
                .await;
        match written {
            Ok(Ok(())) => self.checkpointed = Some(head),
            Ok(Err(e)) => {
                tracing::error!(error = %e, path = %path.display(), "cannot write an audit checkpoint")
            }
            Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The AuditEvent

/// A FHIR RESTful interaction (`http://hl7.org/fhir/restful-interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Create,
    SearchType,
    SearchSystem,
    Capabilities,
    Transaction,
    Batch,
    Operation,
}

impl Interaction {
    pub fn code(self) -> &'static str {
        use Interaction::*;
        match self {
            Read => "read",
            Vread => "vread",
            Update => "update",
            Patch => "patch",
            Delete => "delete",
            HistoryInstance => "history-instance",
            HistoryType => "history-type",
            HistorySystem => "history-system",
            Create => "create",
            SearchType => "search-type",
            SearchSystem => "search-system",
            Capabilities => "capabilities",
            Transaction => "transaction",
            Batch => "batch",
            Operation => "operation",
        }
    }

    /// The action it is.
    pub fn action(self) -> Action {
        use Interaction::*;
        match self {
            Create => Action::Create,
            Update | Patch => Action::Update,
            Delete => Action::Delete,
            Transaction | Batch | Operation => Action::Execute,
            _ => Action::Read,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Rest(Interaction),
    /// A sign-in (a failed one has a failure outcome).
    Login,
    Logout,
    Export,
    /// Emergency access beyond the usual permissions.
    BreakGlass,
    /// A Consent created or changed (`Interaction::Create` or `Update`).
    ConsentChange(Interaction),
    /// A card link made (`Interaction::Create`) or revoked (`Update`).
    CardLink(Interaction),
}

/// `AuditEvent.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

/// `AuditEvent.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused or failed without harm (a failed sign-in, a 4xx).
    MinorFailure,
    SeriousFailure,
    /// A server error.
    MajorFailure,
}

impl Outcome {
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
            Outcome::MajorFailure => "12",
        }
    }

    /// From an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Success,
            400..=499 => Outcome::MinorFailure,
            _ => Outcome::MajorFailure,
        }
    }
}

/// Why (`purposeOfEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Care of the child.
    Treatment,
    /// Break-glass.
    EmergencyTreatment,
    /// The family, on behalf of the child.
    FamilyRequest,
    /// The young person themselves.
    PatientRequest,
    /// Running the service.
    Operations,
    /// Safeguarding (child protection): seen only by the privacy officer.
    Safeguarding,
}

impl Purpose {
    fn coding(self) -> Coding<'static> {
        let (system, code, display) = match self {
            Purpose::Treatment => (ACT_REASON, "TREAT", "treatment"),
            Purpose::EmergencyTreatment => (ACT_REASON, "ETREAT", "Emergency Treatment"),
            Purpose::FamilyRequest => (ACT_REASON, "FAMRQT", "family requested"),
            Purpose::PatientRequest => (ACT_REASON, "PATRQT", "patient requested"),
            Purpose::Operations => (ACT_REASON, "HOPERAT", "healthcare operations"),
            Purpose::Safeguarding => (
                PASSPORT_PURPOSE_SYSTEM,
                "safeguarding",
                "Safeguarding (child protection)",
            ),
        };
        Coding {
            system,
            code,
            display,
        }
    }

    pub fn sensitivity(self) -> Sensitivity {
        match self {
            Purpose::Safeguarding => Sensitivity::Safeguarding,
            _ => Sensitivity::Normal,
        }
    }
}

/// A reference with a name to show (`reference` may be absent: a display alone).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Named {
    /// `Type/id`, e.g. `Practitioner/123`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display: String,
}

impl Named {
    pub fn new(reference: impl Into<String>, display: impl Into<String>) -> Named {
        Named {
            reference: Some(reference.into()),
            display: display.into(),
        }
    }
}

/// Who.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Who {
    /// The person (Practitioner, RelatedPerson, Patient…), or a display alone for an
    /// unknown user (a failed sign-in: the name tried, never a password).
    pub person: Named,
    /// Their organisation, if any.
    pub organisation: Option<Named>,
    /// The client application (an OAuth client), if any.
    pub client: Option<Named>,
    /// Where the request came from (an IP address).
    pub network_address: Option<String>,
}

/// One AuditEvent to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventSpec {
    pub kind: EventKind,
    pub outcome: Outcome,
    /// Why it failed, for a failure (never personal data).
    pub outcome_desc: Option<String>,
    pub recorded_us: i64,
    pub who: Who,
    pub purpose: Purpose,
    /// The child concerned (a Patient id).
    pub patient_id: Option<String>,
    /// The resource read or written: `(type, id, version)`; for a search, the type alone.
    pub resource: Option<(String, Option<String>, Option<i64>)>,
    /// A search's query string (kept in the AuditEvent only; see the module docs).
    pub query: Option<String>,
    /// The passport sections a page showed (codes, passport order): recorded on the
    /// child's entity (`detail` "sections") so the access log can say what was looked at.
    pub sections: Vec<&'static str>,
}

impl AuditEventSpec {
    /// A successful event of `kind` by `who` now, for treatment, about nothing yet.
    pub fn new(kind: EventKind, who: Who) -> AuditEventSpec {
        AuditEventSpec {
            kind,
            outcome: Outcome::Success,
            outcome_desc: None,
            recorded_us: clock::now_us(),
            who,
            purpose: Purpose::Treatment,
            patient_id: None,
            resource: None,
            query: None,
            sections: Vec::new(),
        }
    }

    pub fn action(&self) -> Action {
        match self.kind {
            EventKind::Rest(i) | EventKind::ConsentChange(i) | EventKind::CardLink(i) => i.action(),
            EventKind::Login | EventKind::Logout | EventKind::BreakGlass | EventKind::Export => {
                Action::Execute
            }
        }
    }

    /// The record to append: the AuditEvent's bytes, the child and the sensitivity.
    pub fn to_record(&self, server_base: &str) -> AuditRecord {
        AuditRecord {
            recorded_us: self.recorded_us,
            patient_id: self.patient_id.clone(),
            sensitivity: self.purpose.sensitivity(),
            // Written straight from borrowed parts: every request writes one, and building
            // a `Value` first cost about as much as the search it records.
            event: Bytes::from(
                serde_json::to_vec(&self.event(server_base)).expect("JSON serialises"),
            ),
        }
    }

    /// The AuditEvent (with a fresh id), borrowing from `self`. `server_base` names the
    /// observer.
    fn event<'a>(&'a self, server_base: &'a str) -> Event<'a> {
        let rest = |i: Interaction| Coding {
            system: "http://hl7.org/fhir/restful-interaction",
            code: i.code(),
            display: i.code(),
        };
        let rest_type = Coding {
            system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
            code: "rest",
            display: "RESTful Operation",
        };
        let dcm = |code, display| Coding {
            system: DCM,
            code,
            display,
        };
        let (event_type, subtype) = match self.kind {
            EventKind::Rest(i) => (rest_type, vec![rest(i)]),
            EventKind::ConsentChange(i) => (
                rest_type,
                vec![
                    rest(i),
                    Coding {
                        system: PASSPORT_EVENT_SYSTEM,
                        code: "consent-change",
                        display: "Consent changed",
                    },
                ],
            ),
            EventKind::CardLink(i) => (
                rest_type,
                vec![
                    rest(i),
                    Coding {
                        system: PASSPORT_EVENT_SYSTEM,
                        code: "card-link",
                        display: "Card link",
                    },
                ],
            ),
            EventKind::Login => (
                dcm("110114", "User Authentication"),
                vec![dcm("110122", "Login")],
            ),
            EventKind::Logout => (
                dcm("110114", "User Authentication"),
                vec![dcm("110123", "Logout")],
            ),
            EventKind::Export => (dcm("110106", "Export"), vec![]),
            EventKind::BreakGlass => (
                dcm("110113", "Security Alert"),
                vec![dcm("110127", "Emergency Override Started")],
            ),
        };
        let mut agent = vec![Agent {
            kind: None,
            who: &self.who.person,
            requestor: true,
            network: self
                .who
                .network_address
                .as_deref()
                .map(|address| Network { address, kind: "2" }),
        }];
        if let Some(org) = &self.who.organisation {
            agent.push(Agent {
                kind: Some(CodeableConcept {
                    coding: [Coding {
                        system: "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                        code: "PROV",
                        display: "healthcare provider",
                    }],
                }),
                who: org,
                requestor: false,
                network: None,
            });
        }
        if let Some(client) = &self.who.client {
            agent.push(Agent {
                kind: Some(CodeableConcept {
                    coding: [dcm("110150", "Application")],
                }),
                who: client,
                requestor: false,
                network: None,
            });
        }
        let object_role = |code, display| Coding {
            system: "http://terminology.hl7.org/CodeSystem/object-role",
            code,
            display,
        };
        let entity_type = |code, display| Coding {
            system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
            code,
            display,
        };
        let mut entity = Vec::new();
        if let Some(p) = &self.patient_id {
            entity.push(Entity::Patient {
                what: Reference {
                    reference: format!("Patient/{p}"),
                },
                kind: entity_type("1", "Person"),
                role: object_role("1", "Patient"),
                detail: (!self.sections.is_empty()).then(|| {
                    [Detail {
                        kind: "sections",
                        value_string: self.sections.join(","),
                    }]
                }),
            });
        }
        if let Some((t, id, version)) = &self.resource {
            let is_patient = t == "Patient" && id.is_some() && id == &self.patient_id;
            if !is_patient || version.is_some() {
                entity.push(Entity::Resource {
                    kind: Coding {
                        system: "http://hl7.org/fhir/resource-types",
                        code: t,
                        display: t,
                    },
                    role: object_role("4", "Domain Resource"),
                    what: id.as_ref().map(|id| Reference {
                        reference: match version {
                            Some(v) => format!("{t}/{id}/_history/{v}"),
                            None => format!("{t}/{id}"),
                        },
                    }),
                });
            }
        }
        if let Some(q) = &self.query {
            entity.push(Entity::Query {
                kind: entity_type("2", "System Object"),
                role: object_role("24", "Query"),
                query: base64(q.as_bytes()),
                description: self
                    .resource
                    .as_ref()
                    .map(|(t, _, _)| format!("search of {t}")),
            });
        }
        Event {
            resource_type: "AuditEvent",
            id: uuid::Uuid::now_v7().to_string(),
            kind: event_type,
            subtype,
            action: self.action().code(),
            recorded: clock::instant(self.recorded_us),
            outcome: self.outcome.code(),
            outcome_desc: self.outcome_desc.as_deref(),
            purpose_of_event: [CodeableConcept {
                coding: [self.purpose.coding()],
            }],
            agent,
            source: Source {
                site: "Passport",
                observer: Observer {
                    identifier: Identifier {
                        system: "urn:ietf:rfc:3986",
                        value: server_base,
                    },
                    display: "Passport FHIR server",
                },
                kind: [Coding {
                    system: "http://terminology.hl7.org/CodeSystem/security-source-type",
                    code: "4",
                    display: "Application Server",
                }],
            },
            entity,
        }
    }
}

// The AuditEvent's parts as R4 writes them, fields in the order they are written (the
// stored bytes are hashed into the chain, so the order is part of the record).

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: Coding<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subtype: Vec<Coding<'a>>,
    action: &'static str,
    recorded: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_desc: Option<&'a str>,
    purpose_of_event: [CodeableConcept<'a>; 1],
    agent: Vec<Agent<'a>>,
    source: Source<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entity: Vec<Entity<'a>>,
}

#[derive(serde::Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    display: &'a str,
}

#[derive(serde::Serialize)]
struct CodeableConcept<'a> {
    coding: [Coding<'a>; 1],
}

#[derive(serde::Serialize)]
struct Agent<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept<'a>>,
    who: &'a Named,
    requestor: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network<'a>>,
}

#[derive(serde::Serialize)]
struct Network<'a> {
    address: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
struct Reference {
    reference: String,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Entity<'a> {
    Patient {
        what: Reference,
        #[serde(rename = "type")]
        kind: Coding<'a>,
        role: Coding<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<[Detail; 1]>,
    },
    Resource {
        #[serde(rename = "type")]
        kind: Coding<'a>,
        role: Coding<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        what: Option<Reference>,
    },
    Query {
        #[serde(rename = "type")]
        kind: Coding<'a>,
        role: Coding<'a>,
        query: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "type")]
    kind: &'static str,
    value_string: String,
}

#[derive(serde::Serialize)]
struct Source<'a> {
    site: &'static str,
    observer: Observer<'a>,
    #[serde(rename = "type")]
    kind: [Coding<'static>; 1],
}

#[derive(serde::Serialize)]
struct Observer<'a> {
    identifier: Identifier<'a>,
    display: &'static str,
}

#[derive(serde::Serialize)]
struct Identifier<'a> {
    system: &'static str,
    value: &'a str,
}

/// Standard base64 with padding (for `entity.query`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The family's access log, in plain words

/// One line of the family's access log: "Dr A Smith (St Elsewhere Hospital) viewed
/// allergies on 3 March 2027 at 14:05". Times are UK time (GMT, or BST in summer). Never
/// shows the search query. `None` if the bytes are not an AuditEvent.
pub fn plain_words(event: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(event).ok()?;
    if v.get("resourceType")?.as_str()? != "AuditEvent" {
        return None;
    }
    let agents = v.get("agent")?.as_array()?;
    let requestor = agents
        .iter()
        .find(|a| a.get("requestor").and_then(Value::as_bool) == Some(true))
        .or(agents.first())?;
    let name = display_of(requestor).unwrap_or_else(|| "Someone".to_owned());
    let org = agents
        .iter()
        .filter(|a| !std::ptr::eq(*a, requestor))
        .find(|a| {
            a.pointer("/who/reference")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with("Organization/"))
                || a.pointer("/type/coding/0/code").and_then(Value::as_str) == Some("PROV")
        })
        .and_then(display_of);
    let who = match org {
        Some(o) => format!("{name} ({o})"),
        None => name,
    };
    let failed = v
        .get("outcome")
        .and_then(Value::as_str)
        .is_some_and(|o| o != "0");
    let subtype = |system: &str| {
        v.get("subtype")?
            .as_array()?
            .iter()
            .find(|c| c.get("system").and_then(Value::as_str) == Some(system))
            .and_then(|c| c.get("code")?.as_str())
    };
    let type_code = v
        .pointer("/type/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let resource_type = v
        .get("entity")
        .and_then(Value::as_array)
        .and_then(|es| {
            es.iter()
                .filter(|e| e.pointer("/role/code").and_then(Value::as_str) != Some("1"))
                .find_map(|e| e.pointer("/type/code").and_then(Value::as_str))
        })
        .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    let what = resource_type.map_or("the record", plain_resource);
    // The child's own Patient read (the passport page): its only entity is the child.
    let about_patient = v.get("entity").and_then(Value::as_array).is_some_and(|es| {
        es.iter().any(|e| {
            e.pointer("/what/reference")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with("Patient/"))
        })
    });
    let when = v
        .get("recorded")
        .and_then(Value::as_str)
        .and_then(clock::parse_fhir_datetime)
        .map(uk_time)
        .unwrap_or_default();
    let action = v.get("action").and_then(Value::as_str).unwrap_or("R");
    let doing = match (
        type_code,
        subtype("http://hl7.org/fhir/restful-interaction"),
    ) {
        ("110114", _) => match subtype(DCM) {
            Some("110123") => "signed out".to_owned(),
            _ if failed => "tried to sign in but could not".to_owned(),
            _ => "signed in".to_owned(),
        },
        ("110106", _) => format!("exported {what}"),
        ("110113", _) => format!("used emergency access to see {what}"),
        (_, Some(s)) if s.starts_with("search") => format!("looked through {what}"),
        (_, Some(s)) if s.starts_with("history") || s == "vread" => {
            format!("viewed earlier versions of {what}")
        }
        _ => {
            let verb = match action {
                "C" => "added to",
                "U" => "changed",
                "D" => "removed",
                "E" => "used",
                _ => "viewed",
            };
            if subtype(PASSPORT_EVENT_SYSTEM) == Some("consent-change") {
                format!("{verb} consent settings")
            } else if subtype(PASSPORT_EVENT_SYSTEM) == Some("card-link") {
                match action {
                    "C" => "made a card link".to_owned(),
                    _ => "stopped a card link".to_owned(),
                }
            } else if action == "R" && resource_type.is_none() && about_patient {
                // The passport page is audited as one read of the child's record, naming
                // the sections it showed.
                match sections_seen(&v) {
                    Some(words) => format!("looked at the passport: {words}"),
                    None => "looked at the passport".to_owned(),
                }
            } else if resource_type == Some("Communication")
                && let Some(words) = care_team_request(&v)
            {
                words.to_owned()
            } else {
                format!("{verb} {what}")
            }
        }
    };
    let refused = if failed && type_code != "110114" {
        " (refused)"
    } else {
        ""
    };
    Some(
        format!("{who} {doing}{refused} on {when}")
            .trim_end()
            .to_owned(),
    )
}

/// The sections a passport page showed, in words ("allergies, medicines and the emergency
/// protocol"), from the child's entity.
fn sections_seen(v: &Value) -> Option<String> {
    let list = v["entity"]
        .as_array()?
        .iter()
        .flat_map(|e| e["detail"].as_array().into_iter().flatten())
        .find(|d| d["type"] == "sections")?["valueString"]
        .as_str()?;
    let words: Vec<String> = list
        .split(',')
        .filter_map(access::Section::from_code)
        .map(|s| match s {
            access::Section::Emergency => "the emergency protocol".to_owned(),
            access::Section::AboutMe => "about me".to_owned(),
            other => other.display().to_lowercase(),
        })
        .collect();
    match words.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [rest @ .., last] => Some(format!("{} and {last}", rest.join(", "))),
    }
}

/// A care-team request in words, from its AuditEvent: asked (created) or answered
/// (changed).
fn care_team_request(v: &Value) -> Option<&'static str> {
    match v.get("action").and_then(Value::as_str)? {
        "C" => Some("asked for a change to the care team"),
        "U" => Some("answered a request to change the care team"),
        _ => None,
    }
}

fn display_of(agent: &Value) -> Option<String> {
    agent
        .pointer("/who/display")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A resource type in words a family knows.
pub fn plain_resource(resource_type: &str) -> &'static str {
    match resource_type {
        "AllergyIntolerance" => "allergies",
        "Immunization" | "ImmunizationRecommendation" => "immunisations",
        "Observation" => "measurements and test results",
        "Condition" => "health conditions",
        "MedicationStatement" | "MedicationRequest" | "Medication" => "medicines",
        "Procedure" => "operations and procedures",
        "Encounter" | "Appointment" => "appointments and visits",
        "DocumentReference" | "Composition" | "Bundle" => "documents",
        "CarePlan" | "Goal" => "care plans",
        "Patient" => "personal details",
        "RelatedPerson" => "family contacts",
        "Consent" => "consent settings",
        "DiagnosticReport" => "test reports",
        "Flag" => "alerts",
        "QuestionnaireResponse" => "answers in the passport",
        "Provenance" => "the care team's checks",
        _ => "the record",
    }
}

/// "3 March 2027 at 14:05", UK time: BST (UTC+1) from 01:00 UTC on the last Sunday of
/// March to 01:00 UTC on the last Sunday of October, GMT otherwise.
pub fn uk_time(us: i64) -> String {
    use time::{Date, Month, OffsetDateTime, Time, Weekday};
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let last_sunday = |month: Month| {
        let mut d = Date::from_calendar_date(utc.year(), month, 31).expect("31st exists");
        while d.weekday() != Weekday::Sunday {
            d = d.previous_day().expect("a previous day");
        }
        d.with_time(Time::from_hms(1, 0, 0).expect("01:00"))
            .assume_utc()
    };
    let summer = utc >= last_sunday(Month::March) && utc < last_sunday(Month::October);
    let local = if summer {
        utc + time::Duration::hours(1)
    } else {
        utc
    };
    format!(
        "{} {} {} at {:02}:{:02}",
        local.day(),
        month_name(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

fn month_name(m: time::Month) -> &'static str {
    use time::Month::*;
    match m {
        January => "January",
        February => "February",
        March => "March",
        April => "April",
        May => "May",
        June => "June",
        July => "July",
        August => "August",
        September => "September",
        October => "October",
        November => "November",
        December => "December",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        clock::parse_fhir_datetime(s).unwrap()
    }

    /// The stored AuditEvent, read back as JSON.
    fn event_json(spec: &AuditEventSpec, server_base: &str) -> Value {
        serde_json::from_slice(&spec.to_record(server_base).event).expect("an AuditEvent")
    }

    fn dr_smith() -> Who {
        Who {
            person: Named::new("Practitioner/p1", "Dr A Smith"),
            organisation: Some(Named::new("Organization/o1", "St Elsewhere Hospital")),
            client: Some(Named::new("Device/app", "Ward app")),
            network_address: Some("192.0.2.7".into()),
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn uk_time_follows_bst() {
        assert_eq!(uk_time(us("2027-03-03T14:05:00Z")), "3 March 2027 at 14:05");
        assert_eq!(uk_time(us("2027-07-01T13:05:00Z")), "1 July 2027 at 14:05");
        // 2027: BST starts Sunday 28 March, ends Sunday 31 October, at 01:00 UTC.
        assert_eq!(
            uk_time(us("2027-03-28T00:59:00Z")),
            "28 March 2027 at 00:59"
        );
        assert_eq!(
            uk_time(us("2027-03-28T01:00:00Z")),
            "28 March 2027 at 02:00"
        );
        assert_eq!(
            uk_time(us("2027-10-31T00:59:00Z")),
            "31 October 2027 at 01:59"
        );
        assert_eq!(
            uk_time(us("2027-10-31T01:00:00Z")),
            "31 October 2027 at 01:00"
        );
    }

    #[test]
    fn plain_words_for_a_read() {
        let mut spec = AuditEventSpec::new(EventKind::Rest(Interaction::Read), dr_smith());
        spec.recorded_us = us("2027-03-03T14:05:00Z");
        spec.patient_id = Some("child1".into());
        spec.resource = Some(("AllergyIntolerance".into(), Some("a1".into()), Some(2)));
        let record = spec.to_record("http://passport.test");
        assert_eq!(
            plain_words(&record.event).unwrap(),
            "Dr A Smith (St Elsewhere Hospital) viewed allergies on 3 March 2027 at 14:05"
        );
        assert_eq!(record.patient_id.as_deref(), Some("child1"));
        assert_eq!(record.sensitivity, Sensitivity::Normal);
        // Opening the passport page is one read of the child's Patient.
        spec.resource = Some(("Patient".into(), Some("child1".into()), None));
        let record = spec.to_record("http://passport.test");
        assert_eq!(
            plain_words(&record.event).unwrap(),
            "Dr A Smith (St Elsewhere Hospital) looked at the passport on 3 March 2027 at 14:05"
        );
        // It names the sections the page showed, in words a parent uses.
        spec.sections = vec!["allergies", "medicines", "emergency"];
        let record = spec.to_record("http://passport.test");
        assert_eq!(
            plain_words(&record.event).unwrap(),
            "Dr A Smith (St Elsewhere Hospital) looked at the passport: allergies, medicines and the emergency protocol on 3 March 2027 at 14:05"
        );
        // A care-team request, asked and answered.
        let mut asked = AuditEventSpec::new(EventKind::Rest(Interaction::Create), dr_smith());
        asked.recorded_us = us("2027-03-03T14:05:00Z");
        asked.patient_id = Some("child1".into());
        asked.resource = Some(("Communication".into(), Some("r1".into()), Some(1)));
        assert_eq!(
            plain_words(&asked.to_record("http://x").event).unwrap(),
            "Dr A Smith (St Elsewhere Hospital) asked for a change to the care team on 3 March 2027 at 14:05"
        );
    }

    #[test]
    fn plain_words_never_show_the_query() {
        let mut spec = AuditEventSpec::new(EventKind::Rest(Interaction::SearchType), dr_smith());
        spec.recorded_us = us("2027-03-03T14:05:00Z");
        spec.resource = Some(("Patient".into(), None, None));
        spec.query = Some("identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919".into());
        let record = spec.to_record("http://passport.test");
        let words = plain_words(&record.event).unwrap();
        assert!(!words.contains("9434765919"), "{words}");
        assert_eq!(
            words,
            "Dr A Smith (St Elsewhere Hospital) looked through personal details on 3 March 2027 at 14:05"
        );
        let v: Value = serde_json::from_slice(&record.event).unwrap();
        assert_eq!(
            v["entity"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|e| e["query"].as_str()),
            Some(base64(spec.query.as_deref().unwrap().as_bytes()).as_str())
        );
    }

    #[test]
    fn safeguarding_purpose_is_sensitive() {
        let mut spec = AuditEventSpec::new(EventKind::Rest(Interaction::Read), dr_smith());
        spec.purpose = Purpose::Safeguarding;
        assert_eq!(
            spec.to_record("http://x").sensitivity,
            Sensitivity::Safeguarding
        );
    }

    #[test]
    fn failed_sign_in_and_break_glass_words() {
        let mut spec = AuditEventSpec::new(
            EventKind::Login,
            Who {
                person: Named {
                    reference: None,
                    display: "asmith".into(),
                },
                ..Who::default()
            },
        );
        spec.recorded_us = us("2027-01-10T09:00:00Z");
        spec.outcome = Outcome::MinorFailure;
        let e = spec.to_record("http://x").event;
        assert_eq!(
            plain_words(&e).unwrap(),
            "asmith tried to sign in but could not on 10 January 2027 at 09:00"
        );
        let mut bg = AuditEventSpec::new(EventKind::BreakGlass, dr_smith());
        bg.purpose = Purpose::EmergencyTreatment;
        bg.recorded_us = us("2027-01-10T09:00:00Z");
        bg.patient_id = Some("c".into());
        bg.resource = Some(("Condition".into(), None, None));
        assert_eq!(
            plain_words(&bg.to_record("http://x").event).unwrap(),
            "Dr A Smith (St Elsewhere Hospital) used emergency access to see health conditions on 10 January 2027 at 09:00"
        );
    }

    /// The stored bytes of an event with every part (they are hashed into the chain, so
    /// their order and form are part of the record): as they were written before the event
    /// was serialised from borrowed parts; the id aside, which is fresh each time.
    #[test]
    fn the_stored_bytes_keep_their_form() {
        let mut spec = AuditEventSpec::new(
            EventKind::ConsentChange(Interaction::Update),
            Who {
                person: Named::new("Practitioner/p1", "Dr \"A\" Smith\n"),
                ..dr_smith()
            },
        );
        spec.recorded_us = 1_800_000_000_123_457;
        spec.outcome = Outcome::MinorFailure;
        spec.outcome_desc = Some("refused ü".into());
        spec.patient_id = Some("child1".into());
        spec.resource = Some(("Observation".into(), Some("o1".into()), Some(3)));
        spec.query = Some("code=1234&x=é".into());
        spec.purpose = Purpose::Safeguarding;
        spec.sections = vec!["allergies", "medicines"];
        let record = spec.to_record("http://passport.test/fhir");
        let text = String::from_utf8(record.event.to_vec()).unwrap();
        let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 36);
        let expected = r#"{"resourceType":"AuditEvent","id":"ID","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"update","display":"update"},{"system":"urn:x-passport:audit-event","code":"consent-change","display":"Consent changed"}],"action":"U","recorded":"2027-01-15T08:00:00.123457Z","outcome":"4","outcomeDesc":"refused ü","purposeOfEvent":[{"coding":[{"system":"urn:x-passport:purpose-of-use","code":"safeguarding","display":"Safeguarding (child protection)"}]}],"agent":[{"who":{"reference":"Practitioner/p1","display":"Dr \"A\" Smith\n"},"requestor":true,"network":{"address":"192.0.2.7","type":"2"}},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleClass","code":"PROV","display":"healthcare provider"}]},"who":{"reference":"Organization/o1","display":"St Elsewhere Hospital"},"requestor":false},{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110150","display":"Application"}]},"who":{"reference":"Device/app","display":"Ward app"},"requestor":false}],"source":{"site":"Passport","observer":{"identifier":{"system":"urn:ietf:rfc:3986","value":"http://passport.test/fhir"},"display":"Passport FHIR server"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":"Patient/child1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"},"detail":[{"type":"sections","valueString":"allergies,medicines"}]},{"type":{"system":"http://hl7.org/fhir/resource-types","code":"Observation","display":"Observation"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"},"what":{"reference":"Observation/o1/_history/3"}},{"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"},"query":"Y29kZT0xMjM0Jng9w6k=","description":"search of Observation"}]}"#;
        assert_eq!(text.replacen(&id, "ID", 1), expected);
        let mut value = event_json(&spec, "http://passport.test/fhir");
        value["id"] = Value::String("ID".into());
        assert_eq!(serde_json::to_string(&value).unwrap(), expected);
        // An event without the optional parts leaves them out (no nulls, no empty lists).
        let bare = AuditEventSpec::new(
            EventKind::Export,
            Who {
                person: Named {
                    reference: None,
                    display: "someone".into(),
                },
                ..Who::default()
            },
        );
        let bare = event_json(&bare, "http://x");
        assert_eq!(
            bare["agent"],
            serde_json::json!([{"who": {"display": "someone"}, "requestor": true}])
        );
        for absent in ["subtype", "outcomeDesc", "entity"] {
            assert!(bare.get(absent).is_none(), "{absent}: {bare}");
        }
    }

    /// Every kind of event builds a valid R4 AuditEvent.
    #[test]
    fn events_are_valid_r4() {
        let kinds = [
            EventKind::Rest(Interaction::Read),
            EventKind::Rest(Interaction::Vread),
            EventKind::Rest(Interaction::SearchType),
            EventKind::Rest(Interaction::Create),
            EventKind::Rest(Interaction::Update),
            EventKind::Rest(Interaction::Delete),
            EventKind::Rest(Interaction::HistoryInstance),
            EventKind::Login,
            EventKind::Logout,
            EventKind::Export,
            EventKind::BreakGlass,
            EventKind::ConsentChange(Interaction::Update),
            EventKind::CardLink(Interaction::Create),
        ];
        for kind in kinds {
            for outcome in [
                Outcome::Success,
                Outcome::MinorFailure,
                Outcome::MajorFailure,
            ] {
                let mut spec = AuditEventSpec::new(kind, dr_smith());
                spec.outcome = outcome;
                if outcome != Outcome::Success {
                    spec.outcome_desc = Some("refused".into());
                }
                spec.patient_id = Some("child1".into());
                spec.resource = Some(("Observation".into(), Some("o1".into()), Some(3)));
                spec.query = Some("code=1234".into());
                spec.purpose = Purpose::Safeguarding;
                let v = event_json(&spec, "http://passport.test");
                let errors: Vec<_> = fhir::validate(&v)
                    .into_iter()
                    .filter(|i| {
                        i.severity == fhir::Severity::Error || i.severity == fhir::Severity::Fatal
                    })
                    .collect();
                assert!(errors.is_empty(), "{kind:?}: {errors:?}\n{v:#}");
                assert!(plain_words(&serde_json::to_vec(&v).unwrap()).is_some());
            }
        }
        // A bare event (no optional parts) too.
        let bare = AuditEventSpec::new(
            EventKind::Logout,
            Who {
                person: Named::new("Patient/child1", "Sam"),
                ..Who::default()
            },
        );
        assert!(
            fhir::validate(&event_json(&bare, "http://x"))
                .iter()
                .all(|i| i.severity != fhir::Severity::Error)
        );
    }
}
