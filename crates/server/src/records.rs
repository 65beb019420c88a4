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
use passport_store::{AuditRecord, Store, StoreError, Stored, Write, WriteAllError};
use serde_json::Value;

use crate::AppState;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Named, Purpose, Who};
use crate::authz::facts::FactsCache;
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

/// Where writes go: the store, the server's base URL (the AuditEvents' observer) and, in
/// the server process, the observers to tell.
pub struct Records<'a> {
    store: &'a Store,
    base: &'a str,
    facts: Option<&'a FactsCache>,
}

impl<'a> Records<'a> {
    /// The server's records.
    pub fn of(st: &'a AppState) -> Records<'a> {
        Records {
            store: &st.store,
            base: st.config.base(),
            facts: Some(&st.authz.facts),
        }
    }

    /// Records written by another process (`passport admin`): a running server sees the
    /// changes to child facts when its cached facts expire (`authz::facts::MAX_AGE_US`).
    pub fn elsewhere(store: &'a Store, base: &'a str) -> Records<'a> {
        Records {
            store,
            base,
            facts: None,
        }
    }

    /// The store, for reads.
    pub fn store(&self) -> &'a Store {
        self.store
    }

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
        self.tell(seen);
        Ok(stored)
    }

    /// Stores writes whose AuditEvents are already attached in one transaction, then tells
    /// the observers.
    pub async fn store_all(&self, writes: Vec<Write>) -> Result<Vec<Stored>, WriteAllError> {
        let seen = observed(&writes);
        let stored = self.store.write_all(writes).await?;
        self.tell(seen);
        Ok(stored)
    }

    /// Tells the observers what was stored.
    fn tell(&self, seen: Vec<Observed>) {
        if let Some(facts) = self.facts {
            for (ty, id, replaced, body) in seen {
                facts.wrote(&ty, &id, replaced, &body);
            }
        }
    }
}

/// What an observer is told of a write: type, id, whether it replaced a version, body.
type Observed = (String, String, bool, Bytes);

fn observed(writes: &[Write]) -> Vec<Observed> {
    writes
        .iter()
        .filter(|w| crate::authz::facts::FACT_TYPES.contains(&w.resource_type.as_str()))
        .map(|w| {
            (
                w.resource_type.clone(),
                w.id.clone(),
                w.replaces.is_some(),
                w.body.clone(),
            )
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

/// Why a resource cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The next version of `resource` (which carries its `id`): validated, given its type's
/// default sections if it has none (`access::ensure_sections`; pages build each new
/// version from the current one, so an update keeps its sections), stamped (`replaces`
/// the current version, or `None` for a new resource), indexed.
pub fn new_version(resource: Value, replaces: Option<i64>, now: i64) -> Result<Write, Invalid> {
    let issues = fhir::validate(&resource);
    if !issues.is_empty() {
        return Err(Invalid(format!(
            "the {} would not be valid FHIR: {issues:?}",
            resource["resourceType"]
        )));
    }
    let Value::Object(mut map) = resource else {
        return Err(Invalid("not a JSON object".into()));
    };
    access::ensure_sections(&mut map, None);
    let rtype = map["resourceType"].as_str().unwrap_or_default().to_owned();
    let id = map["id"].as_str().unwrap_or_default().to_owned();
    let version = replaces.unwrap_or(0) + 1;
    fhir::meta::stamp(&mut map, &id, version, &clock::instant(now));
    let value = Value::Object(map);
    Ok(Write {
        index: fhir::search::extract(&value),
        access: crate::authz::access_inputs(&value),
        resource_type: rtype,
        id,
        replaces,
        version_id: version,
        last_updated_us: now,
        deleted: false,
        body: Bytes::from(serde_json::to_vec(&value).expect("JSON serialises")),
        unless_exists: None,
        audit: Vec::new(),
    })
}

/// The deletion of the current version `current`. (The store keeps the deleted version's
/// access inputs on the deletion; they are read here for its AuditEvents.)
pub fn deletion(current: &Stored, now: i64) -> Write {
    let body: Value = serde_json::from_slice(&current.body).unwrap_or(Value::Null);
    Write {
        index: Vec::new(),
        access: crate::authz::access_inputs(&body),
        resource_type: current.resource_type.clone(),
        id: current.id.clone(),
        replaces: Some(current.version_id),
        version_id: current.version_id + 1,
        last_updated_us: now,
        deleted: true,
        body: Bytes::new(),
        unless_exists: None,
        audit: Vec::new(),
    }
}
