//! The decision applied to resources: one [`Guard`] per request (or page) remembers the
//! child facts it loaded and which children it touched (for its AuditEvent). Its refusals
//! are [`Refused`]; each surface turns them into its own answer (the API: a 404 exactly like
//! a missing resource, 403, 403 `insufficient_scope`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use access::{Action, ChildFacts, Decision, Reason, ResourceFacts, Timestamp};
use bytes::Bytes;
use passport_store::StoreError;
use serde_json::Value;

use crate::Domain;
use crate::audit::{Purpose, Who};
use crate::facts::child_facts;
use crate::views::CallerViews;

/// Who is asking — from an access token, a signed-in session, or the operator — and how
/// the audit trail names them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: access::Subject,
    pub who: Who,
    /// Why they act (the AuditEvent's `purposeOfEvent`); break-glass reads override it.
    pub purpose: Purpose,
}

impl Caller {
    /// A person signed in to the pages, as `identity` (from their account).
    pub async fn signed_in(
        d: &Domain,
        account: &passport_store::accounts::Account,
        identity: access::Identity,
    ) -> Caller {
        let purpose = match &identity {
            access::Identity::Family { .. } => Purpose::FamilyRequest,
            access::Identity::YoungPerson { .. } => Purpose::PatientRequest,
            _ => Purpose::Treatment,
        };
        Caller {
            who: crate::directory::account_who(d, account).await,
            subject: access::Subject::session(identity),
            purpose,
        }
    }
}

/// Why the guard refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The caller may not know the resource exists: answer exactly as for a missing one.
    #[error("{resource_type}/{id} does not exist")]
    NotFound { resource_type: String, id: String },
    /// The caller may see it but not make this change: the plain-English reason and code.
    #[error("{0}")]
    Forbidden(String),
    /// The token's scopes do not cover the type at all: the scope it would need.
    #[error("{message}")]
    InsufficientScope { scope: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Refusal<T> = std::result::Result<T, Refused>;

pub struct Guard<'a> {
    pub domain: &'a Domain,
    pub caller: &'a Caller,
    now: Timestamp,
    memo: HashMap<String, Arc<ChildFacts>>,
    /// Children whose records this request was allowed to touch.
    pub patients: BTreeSet<String>,
    /// Some access relied on break-glass (the AuditEvent is an emergency one).
    pub break_glass: bool,
    /// Some resource was withheld (for the AuditEvent's description; never in responses).
    pub withheld: usize,
    /// Something labelled safeguarding was touched: the AuditEvent's purpose is
    /// safeguarding, which only the privacy officer sees in the access log.
    pub safeguarding: bool,
    views: Option<Arc<CallerViews>>,
}

/// What a refused read looks like: exactly what a missing resource looks like.
pub fn not_found(resource_type: &str, id: &str) -> Refused {
    Refused::NotFound {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
    }
}

/// Whether the caller may know that `body` exists, for a write with `action`: they may
/// read it, or (a write-only token) make this change to it. Otherwise the write answers
/// as if there were nothing there.
pub async fn may_touch(
    guard: &mut Guard<'_>,
    action: Action,
    body: &Bytes,
) -> Result<bool, StoreError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    Ok(guard.decide(Action::Read, &v).await?.allow || guard.decide(action, &v).await?.allow)
}

impl<'a> Guard<'a> {
    pub fn new(domain: &'a Domain, caller: &'a Caller) -> Guard<'a> {
        Guard {
            domain,
            caller,
            now: crate::facts::timestamp(crate::clock::now_us()),
            memo: HashMap::new(),
            patients: BTreeSet::new(),
            break_glass: false,
            withheld: 0,
            safeguarding: false,
            views: None,
        }
    }

    /// What this caller's searches may see, applied inside the store's queries (loaded
    /// once per request).
    pub async fn views(&mut self) -> Result<Arc<CallerViews>, StoreError> {
        if let Some(v) = &self.views {
            return Ok(v.clone());
        }
        let v = self
            .domain
            .views
            .get(
                self.domain,
                &self.caller.subject,
                crate::clock::now_us(),
                &mut self.memo,
            )
            .await?;
        self.views = Some(v.clone());
        Ok(v)
    }

    async fn facts(&mut self, patient: &str) -> Result<Arc<ChildFacts>, StoreError> {
        if let Some(f) = self.memo.get(patient) {
            return Ok(f.clone());
        }
        let f = child_facts(self.domain, patient).await?;
        self.memo.insert(patient.to_owned(), f.clone());
        Ok(f)
    }

    /// The decision for `action` on `resource`: allowed only if allowed for every child
    /// whose record it is in (usually one). Remembers the children of allowed decisions.
    pub async fn decide(
        &mut self,
        action: Action,
        resource: &Value,
    ) -> Result<Decision, StoreError> {
        let facts = ResourceFacts::from_json(resource);
        let patients = fhir::compartment::patients_of(resource);
        let policy = &self.domain.policy;
        if patients.is_empty() {
            return Ok(access::decide(
                policy,
                &self.caller.subject,
                action,
                &facts,
                None,
                self.now,
            ));
        }
        let mut last = None;
        for p in &patients {
            let child = self.facts(p).await?;
            let d = access::decide(
                policy,
                &self.caller.subject,
                action,
                &facts,
                Some(&child),
                self.now,
            );
            if !d.allow {
                self.withheld += 1;
                return Ok(d);
            }
            last = Some(d);
        }
        let d = last.expect("at least one patient");
        if facts.labels.contains(access::SecurityLabel::Safeguarding) {
            self.safeguarding = true;
        }
        if d.reason == Reason::AllowedByBreakGlass {
            self.break_glass = true;
        }
        self.patients.extend(patients);
        Ok(d)
    }

    /// Refuses `action` (read, history or search) on a type the token's scopes do not
    /// cover at all, granular scopes included: 403 `insufficient_scope` naming the scope
    /// it would need. An app must be able to tell "nothing recorded" from "not allowed to
    /// ask". Resources of a covered type that the caller may not see stay hidden exactly
    /// as missing ones are (the decision, per resource); `_include`, `_revinclude`,
    /// `$everything` and system-wide history leave uncovered types out instead.
    pub fn require_scope(&self, resource_type: &str, action: Action) -> Refusal<()> {
        let subject = &self.caller.subject;
        let is_system = matches!(subject.identity, access::Identity::System(_));
        if subject.scopes.covers(resource_type, action, is_system) {
            return Ok(());
        }
        let scope = subject
            .scopes
            .needed_scope(resource_type, action, is_system);
        let verb = match action {
            Action::Search => "search",
            Action::History => "read the history of",
            _ => "read",
        };
        Err(Refused::InsufficientScope {
            message: format!(
                "this access token's scopes do not allow it to {verb} {resource_type} resources; it needs the scope {scope}"
            ),
            scope,
        })
    }

    /// Whether the caller's role may create passports: the decision allows them to
    /// create a Patient that is no child's yet (the onboarding roles and systems, whose
    /// token's scopes allow it).
    pub fn may_create_passport(&self) -> bool {
        let facts = ResourceFacts::from_json(&serde_json::json!({"resourceType": "Patient"}));
        access::decide(
            &self.domain.policy,
            &self.caller.subject,
            Action::Create,
            &facts,
            None,
            self.now,
        )
        .allow
    }

    /// A stored body the caller may read (`action` Read, Search, History or Export),
    /// redacted where the child's address is hidden from them; `None` if refused.
    pub async fn readable(
        &mut self,
        action: Action,
        body: &Bytes,
    ) -> Result<Option<Bytes>, StoreError> {
        one_large_at_a_time(body.len(), async {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return Ok(None);
            };
            if !self.decide(action, &v).await?.allow {
                return Ok(None);
            }
            Ok(Some(
                self.redacted(&v).await?.unwrap_or_else(|| body.clone()),
            ))
        })
        .await
    }

    /// A redacted copy if the resource shows an address hidden from this caller.
    async fn redacted(&mut self, v: &Value) -> Result<Option<Bytes>, StoreError> {
        if !matches!(
            v.get("resourceType").and_then(Value::as_str),
            Some("Patient" | "RelatedPerson")
        ) {
            return Ok(None);
        }
        for p in fhir::compartment::patients_of(v) {
            let child = self.facts(&p).await?;
            if let Some(r) = access::redact(v, &self.caller.subject, &child) {
                return Ok(Some(Bytes::from(
                    serde_json::to_vec(&r).unwrap_or_default(),
                )));
            }
        }
        Ok(None)
    }

    /// Checks a read of one resource: `Ok(body to serve)`, or the not-found a missing
    /// resource gets.
    pub async fn read(
        &mut self,
        action: Action,
        resource_type: &str,
        id: &str,
        body: &Bytes,
    ) -> Refusal<Bytes> {
        self.readable(action, body)
            .await?
            .ok_or_else(|| not_found(resource_type, id))
    }

    /// Checks a write. `old`: the stored version it replaces or deletes (must be readable
    /// by the caller, else the write answers not-found, and allowed for `action`); `new`:
    /// the new body (create, update). A write the caller may see but not make is a 403
    /// giving the plain-English reason.
    pub async fn write(
        &mut self,
        action: Action,
        resource_type: &str,
        id: &str,
        old: Option<&Bytes>,
        new: Option<&Value>,
    ) -> Refusal<()> {
        if let Some(old) = old {
            let v: Value = serde_json::from_slice(old).unwrap_or(Value::Null);
            let d = self.decide(action, &v).await?;
            if !d.allow && !self.decide(Action::Read, &v).await?.allow {
                return Err(not_found(resource_type, id));
            }
            if !d.allow {
                return Err(forbidden(d));
            }
        }
        if let Some(new) = new {
            let d = self.decide(action, new).await?;
            if !d.allow {
                return Err(forbidden(d));
            }
        }
        Ok(())
    }
}

fn forbidden(d: Decision) -> Refused {
    Refused::Forbidden(format!("{} ({})", d.reason.message(), d.reason.code()))
}

/// Bodies at least this large are worked on (parsed, decided, redacted) one at a time
/// across the process: parsed, a resource takes tens of times its size in memory (a 7.6 MB
/// Observation of many small components took 400 MB), so eight at once could take
/// gigabytes. Ordinary resources are a few kilobytes and never wait.
pub const LARGE_BODY: usize = 1024 * 1024;

static LARGE_BODIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

tokio::task_local! {
    /// Set while this task holds the large-body permit (so work nested inside, such as a
    /// write's decision reading the version it replaces, does not wait for itself).
    static HOLDING: ();
}

/// Runs `work` on a body of `len` bytes: one of at least [`LARGE_BODY`] waits for the one
/// permit for such work and holds it throughout; smaller bodies go straight on.
pub async fn one_large_at_a_time<F: std::future::Future>(len: usize, work: F) -> F::Output {
    if len < LARGE_BODY || HOLDING.try_with(|_| ()).is_ok() {
        return work.await;
    }
    let _permit = LARGE_BODIES.acquire().await;
    HOLDING.scope((), work).await
}
