//! The write path of FHIR resources made outside the FHIR API: the pages (onboarding,
//! family links, sharing choices), the demo data, start-up steps and `passport admin`.
//!
//! Every such write is built here ([`new_version`], [`deletion`]: validated, given its
//! default sections, stamped, indexed, with the access decision's inputs), carries an
//! AuditEvent per child it touches, naming who made it ([`Agent`]), stored in the same
//! transaction as those events ([`Records::write_all`]), and then told to the observers
//! (today the child facts cache, which forgets what the write may change). The FHIR API's
//! interactions store through [`Records::store_all`] too, with AuditEvents built from the
//! request's caller after the access decision (`authz::audit`).
//!
//! The pages decide who may make a change before they call this (a member of the child's
//! care team confirms a family link, a parent with parental responsibility sets sharing
//! choices, …); their writes are not run through `access::decide` as API writes are,
//! because the person acts through a step the policy defines rather than by writing the
//! resource (a parent may never write a RelatedPerson, yet accepting an invitation makes
//! one). The AuditEvent says who took the step.

use bytes::Bytes;
use passport_store::search::{EverythingQuery, Match, SearchQuery, SearchResult, Visibility};
use passport_store::{
    AuditRecord, HistoryEntry, HistoryQuery, Store, StoreError, Stored, TokenCriterion, Write,
    WriteAllError,
};
use serde_json::{Map, Value};

use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Named, Purpose, Who};
use crate::clock;

/// Who made a change, as its AuditEvents name them, and why.
#[derive(Debug, Clone)]
pub struct Agent {
    pub who: Who,
    pub purpose: Purpose,
}

impl Agent {
    pub fn new(who: Who, purpose: Purpose) -> Agent {
        Agent { who, purpose }
    }

    /// The service's operator (start-up steps, the demo data, `passport admin`), named by
    /// what acted: e.g. "start-up data check".
    pub fn operator(what: &str) -> Agent {
        Agent {
            who: Who {
                person: Named {
                    reference: None,
                    display: format!("Passport operator ({what})"),
                },
                ..Who::default()
            },
            purpose: Purpose::Operations,
        }
    }
}

impl Agent {
    /// The AuditEvent of this agent's change (`kind`) to `resource` (type, id, version) in
    /// `patient`'s record, recorded at `now_us`.
    pub fn event(
        &self,
        base: &str,
        kind: EventKind,
        patient: Option<&str>,
        resource: (&str, &str, Option<i64>),
        now_us: i64,
    ) -> AuditRecord {
        let mut spec = AuditEventSpec::new(kind, self.who.clone());
        spec.recorded_us = now_us;
        spec.purpose = self.purpose;
        spec.patient_id = patient.map(str::to_owned);
        spec.resource = Some((
            resource.0.to_owned(),
            Some(resource.1.to_owned()),
            resource.2,
        ));
        spec.to_record(base)
    }
}

/// Told of every write once its transaction has committed: the child facts cache
/// ([`crate::facts::FactsCache`]) and the organisations read recently
/// ([`crate::directory::OrganisationCache`]); subscriptions, sync and metrics plug in here.
pub trait Observer: Send + Sync {
    fn stored(&self, write: &Observed);
}

/// What an observer is told of a stored write.
#[derive(Debug, Clone)]
pub struct Observed {
    pub resource_type: String,
    pub id: String,
    /// Whether it replaced an earlier version.
    pub replaced: bool,
    /// The new body (empty for a deletion).
    pub body: Bytes,
}

/// The FHIR resources: reads, searches and history, and the one write path.
///
/// **Reads** return what is stored, or what a [`Visibility`] lets through (searches and
/// history apply the caller's views inside the query). Deciding each resource a caller
/// receives and auditing the read is the surface's guard (`server::authz`), which holds the
/// caller. The domain's own reads — child facts, a caller's views, the start-up checks —
/// are system reads made to take a decision or keep data in line, not disclosures to a
/// person, so they are not audited one by one (docs/SECURITY.md "Audit").
pub struct Records<'a> {
    store: &'a Store,
    base: &'a str,
    observers: Vec<&'a dyn Observer>,
}

impl<'a> Records<'a> {
    /// The domain's records; writes are told to its observers.
    pub fn of(domain: &'a Domain) -> Records<'a> {
        Records {
            store: domain.store(),
            base: domain.base_url(),
            observers: vec![&domain.facts, &domain.organisations],
        }
    }

    /// The base URL AuditEvents name as their observer.
    pub fn base(&self) -> &'a str {
        self.base
    }

    // ---- reads

    /// The current version of `resource_type/id` (a deletion if it was deleted).
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        self.store.read(resource_type, id).await
    }

    /// One version of `resource_type/id`.
    pub async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<Stored>, StoreError> {
        self.store.vread(resource_type, id, version_id).await
    }

    /// The ids of current `resource_type` resources matching every token criterion (no
    /// visibility: conditional operations and the duplicate-passport check decide after).
    pub async fn find_by_tokens(
        &self,
        resource_type: &str,
        criteria: &[TokenCriterion],
    ) -> Result<Vec<String>, StoreError> {
        self.store.find_by_tokens(resource_type, criteria).await
    }

    /// A search page, as `vis` may see it.
    pub async fn search(
        &self,
        q: &SearchQuery,
        vis: Visibility<'_>,
    ) -> Result<SearchResult, StoreError> {
        self.store.search(q, vis).await
    }

    /// `_include` targets of `ids` (decided round by round by the caller).
    pub async fn include(
        &self,
        source_type: &str,
        ids: &[String],
        param: Option<&str>,
        target_type: Option<&str>,
    ) -> Result<Vec<Match>, StoreError> {
        self.store
            .include(source_type, ids, param, target_type)
            .await
    }

    /// `_revinclude` sources pointing at `ids`.
    pub async fn revinclude(
        &self,
        source_type: &str,
        param: Option<&str>,
        target_type: &str,
        ids: &[String],
    ) -> Result<Vec<Match>, StoreError> {
        self.store
            .revinclude(source_type, param, target_type, ids)
            .await
    }

    /// A child's whole record (`$everything`), as `vis` may see it.
    pub async fn everything(
        &self,
        q: &EverythingQuery,
        vis: Visibility<'_>,
    ) -> Result<Vec<Match>, StoreError> {
        self.store.everything(q, vis).await
    }

    /// History, newest first, as `vis` may see it.
    pub async fn history(
        &self,
        q: &HistoryQuery,
        vis: Visibility<'_>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.store.history(q, vis).await
    }

    // ---- writes

    /// Stores one change made by `actor` (see [`Records::write_all`]).
    pub async fn write(&self, actor: &Agent, mut write: Write) -> Result<Stored, StoreError> {
        let events = audit_events(self.base, actor, &write, clock::now_us());
        write.audit.extend(events);
        self.store_one(write).await
    }

    /// Stores changes made by `actor` in one transaction, each with its AuditEvents (one
    /// per child whose record it is in; one with no child otherwise).
    pub async fn write_all(
        &self,
        actor: &Agent,
        mut writes: Vec<Write>,
    ) -> Result<Vec<Stored>, WriteAllError> {
        let now = clock::now_us();
        for w in &mut writes {
            let events = audit_events(self.base, actor, w, now);
            w.audit.extend(events);
        }
        self.store_all(writes).await
    }

    /// Stores one write whose AuditEvents are already attached (the FHIR API's, built
    /// after its access decision), then tells the observers.
    pub async fn store_one(&self, write: Write) -> Result<Stored, StoreError> {
        let seen = observed(std::slice::from_ref(&write));
        let stored = self.store.write(write).await?;
        self.tell(&seen);
        Ok(stored)
    }

    /// Stores writes whose AuditEvents are already attached in one transaction, then tells
    /// the observers.
    pub async fn store_all(&self, writes: Vec<Write>) -> Result<Vec<Stored>, WriteAllError> {
        let seen = observed(&writes);
        let stored = self.store.write_all(writes).await?;
        self.tell(&seen);
        Ok(stored)
    }

    /// Appends AuditEvents that go with no write (a step that changed something kept
    /// outside FHIR, e.g. an account deactivated), durably, before returning.
    pub async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        self.store.append_audit(records).await.map(|_| ())
    }

    fn tell(&self, seen: &[Observed]) {
        for o in &self.observers {
            for w in seen {
                o.stored(w);
            }
        }
    }
}

fn observed(writes: &[Write]) -> Vec<Observed> {
    writes
        .iter()
        .map(|w| Observed {
            resource_type: w.resource_type.clone(),
            id: w.id.clone(),
            replaced: w.replaces.is_some(),
            body: w.body.clone(),
        })
        .collect()
}

/// The AuditEvents of one write by `actor`.
fn audit_events(base: &str, actor: &Agent, w: &Write, now: i64) -> Vec<AuditRecord> {
    let interaction = if w.deleted {
        Interaction::Delete
    } else if w.replaces.is_some() {
        Interaction::Update
    } else {
        Interaction::Create
    };
    let kind = if w.resource_type == "Consent" {
        EventKind::ConsentChange(interaction)
    } else {
        EventKind::Rest(interaction)
    };
    let resource = (w.resource_type.as_str(), w.id.as_str(), Some(w.version_id));
    if w.access.patients.is_empty() {
        vec![actor.event(base, kind, None, resource, now)]
    } else {
        w.access
            .patients
            .iter()
            .map(|p| actor.event(base, kind, Some(p), resource, now))
            .collect()
    }
}

/// How many times a write that lost a race (another writer replaced the version it read)
/// is re-read and re-applied before giving up. Each retry is a fresh decision, never a
/// blind overwrite.
pub const MAX_RETRIES: u32 = 64;

/// Why a resource cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The write path's checks of a body on its way in: the hidden-address marker moved to
/// the Patient (`access::normalise_hidden_address`), then FHIR validation (errors and
/// fatal issues refuse it; warnings do not).
pub fn validate(mut map: Map<String, Value>) -> Result<Map<String, Value>, Vec<fhir::Issue>> {
    access::normalise_hidden_address(&mut map);
    let value = Value::Object(map);
    let issues: Vec<fhir::Issue> = fhir::validate(&value)
        .into_iter()
        .filter(|i| i.severity == fhir::Severity::Error || i.severity == fhir::Severity::Fatal)
        .collect();
    if !issues.is_empty() {
        return Err(issues);
    }
    let Value::Object(map) = value else {
        unreachable!("validated as an object")
    };
    Ok(map)
}

/// Gives a body written without any section tag its sections (`access::ensure_sections`,
/// docs/SECURITY.md §5): an update keeps those of `previous`, the version it replaces;
/// a create (or an update of an item that had none) gets its type's default. Every write
/// passes through here after [`validate`], where the version it replaces is known, and
/// before its access decision, so the decision sees the sections stored.
pub fn with_sections(mut map: Map<String, Value>, previous: Option<&Stored>) -> Map<String, Value> {
    let previous = previous
        .filter(|p| !p.deleted)
        .and_then(|p| serde_json::from_slice::<Value>(&p.body).ok());
    access::ensure_sections(&mut map, previous.as_ref());
    map
}

/// Stamps server-owned meta (id, version, lastUpdated), indexes, computes the access
/// inputs and serialises: the version of `resource_type/id` that replaces `replaces` (or
/// the first). The only place a body is serialised on the way in; reads then serve these
/// bytes as they are.
pub fn stamp(
    resource_type: &str,
    id: &str,
    mut map: Map<String, Value>,
    replaces: Option<&Stored>,
) -> Write {
    let version_id = replaces.map_or(1, |s| s.version_id + 1);
    // lastUpdated never goes backwards for one resource, even if the clock does.
    let last_updated_us = clock::now_us().max(replaces.map_or(0, |s| s.last_updated_us + 1));
    fhir::meta::stamp(&mut map, id, version_id, &clock::instant(last_updated_us));
    let value = Value::Object(map);
    // Extracted here, on the request's task, not on the store's single writer thread.
    let index = fhir::search::extract(&value);
    let access = crate::inputs::access_inputs(&value);
    let body = Bytes::from(serde_json::to_vec(&value).expect("a JSON value always serialises"));
    Write {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        replaces: replaces.map(|s| s.version_id),
        version_id,
        last_updated_us,
        deleted: false,
        body,
        index,
        access,
        unless_exists: None,
        audit: Vec::new(),
    }
}

/// The next version of `resource` (which carries its `resourceType` and `id`) after
/// `current` (`None`: a new resource): [`validate`], [`with_sections`], [`stamp`].
pub fn new_version(resource: Value, current: Option<&Stored>) -> Result<Write, Invalid> {
    let Value::Object(map) = resource else {
        return Err(Invalid("not a JSON object".into()));
    };
    let rtype = map
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let map = validate(map).map_err(|issues| {
        Invalid(format!(
            "the {rtype} would not be valid FHIR: {}",
            issues
                .iter()
                .map(|i| format!("{} ({})", i.diagnostics, i.expression))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let map = with_sections(map, current);
    Ok(stamp(&rtype, &id, map, current))
}

/// The version that deletes `existing` (its current, non-deleted version). It carries the
/// deleted version's access inputs (for its AuditEvents and the store's history views).
pub fn deletion(existing: &Stored) -> Write {
    let body: Value = serde_json::from_slice(&existing.body).unwrap_or(Value::Null);
    Write {
        index: Vec::new(),
        access: crate::inputs::access_inputs(&body),
        resource_type: existing.resource_type.clone(),
        id: existing.id.clone(),
        replaces: Some(existing.version_id),
        version_id: existing.version_id + 1,
        last_updated_us: clock::now_us().max(existing.last_updated_us + 1),
        deleted: true,
        body: Bytes::new(),
        unless_exists: None,
        audit: Vec::new(),
    }
}
