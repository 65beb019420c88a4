//! The AuditEvent of every `/fhir` interaction.
//!
//! Handlers attach a [`Note`] to their response (what was done, to which resource, for
//! which children); [`record`] — part of the authentication layer — turns it into
//! AuditEvents when the response leaves, with the outcome of the final status. One
//! AuditEvent per child touched, so that each child's access log is complete; one with no
//! child when none was touched (a refusal, an empty search, reference data).
//!
//! Writes put theirs in the write's own transaction ([`written`]): the Note then says it
//! is recorded. Reads go through the batching [`crate::audit::Auditor`], which makes them
//! durable within a second and makes requests wait rather than drop a record.

use std::sync::Arc;

use axum::http::Method;
use axum::response::IntoResponse;
use axum::response::Response;
use domain::types::{AuditRecord, Stored, Write};

use super::{Caller, Guard};
use crate::AppState;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Outcome, Purpose};

/// What a handler did, for the AuditEvent.
#[derive(Debug, Clone)]
pub struct Note {
    pub interaction: Interaction,
    /// `(type, id, version)`; for a search, the type alone.
    pub resource: Option<(String, Option<String>, Option<i64>)>,
    pub patients: Vec<String>,
    pub purpose: Option<Purpose>,
    /// A search's query string.
    pub query: Option<String>,
    /// Already recorded in the write's transaction.
    pub recorded: bool,
}

fn purpose_of(guard: &Guard<'_>) -> Option<Purpose> {
    if guard.safeguarding {
        Some(Purpose::Safeguarding)
    } else if guard.break_glass {
        Some(Purpose::EmergencyTreatment)
    } else {
        None
    }
}

impl Note {
    /// A read (or vread) of `stored`.
    pub fn read(guard: &Guard<'_>, interaction: Interaction, stored: &Stored) -> Note {
        Note {
            interaction,
            resource: Some((
                stored.resource_type.clone(),
                Some(stored.id.clone()),
                Some(stored.version_id),
            )),
            patients: guard.patients.iter().cloned().collect(),
            purpose: purpose_of(guard),
            query: None,
            recorded: false,
        }
    }

    /// A search, history or operation over `resource_type` (or the whole server).
    pub fn search(
        guard: &Guard<'_>,
        interaction: Interaction,
        resource_type: Option<&str>,
        query: Option<String>,
    ) -> Note {
        Note {
            interaction,
            resource: resource_type.map(|t| (t.to_owned(), None, None)),
            patients: guard.patients.iter().cloned().collect(),
            purpose: purpose_of(guard),
            query: query.filter(|q| !q.is_empty()),
            recorded: false,
        }
    }

    /// Attaches this note to `response` for [`record`].
    pub fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(Arc::new(self));
        response
    }
}

/// The AuditEvents of a write, to put in the write's transaction, and the note saying so.
pub struct Written {
    pub records: Vec<AuditRecord>,
    pub note: Note,
}

/// The AuditEvents of `write` by the guard's caller (one per child).
pub fn written(
    st: &AppState,
    guard: &Guard<'_>,
    interaction: Interaction,
    write: &Write,
) -> Written {
    let kind = if write.resource_type == "Consent" {
        EventKind::ConsentChange(interaction)
    } else {
        EventKind::Rest(interaction)
    };
    let note = Note {
        interaction,
        resource: Some((
            write.resource_type.clone(),
            Some(write.id.clone()),
            Some(write.version_id),
        )),
        patients: guard.patients.iter().cloned().collect(),
        purpose: purpose_of(guard),
        query: None,
        recorded: true,
    };
    let records = specs(guard.caller, kind, &note, Outcome::Success, None)
        .iter()
        .map(|s| s.to_record(st.config.base()))
        .collect();
    Written { records, note }
}

fn specs(
    caller: &Caller,
    kind: EventKind,
    note: &Note,
    outcome: Outcome,
    outcome_desc: Option<String>,
) -> Vec<AuditEventSpec> {
    let one = |patient: Option<&String>| {
        let mut s = AuditEventSpec::new(kind, caller.who.clone());
        s.outcome = outcome;
        s.outcome_desc = outcome_desc.clone();
        s.purpose = note.purpose.unwrap_or(caller.purpose);
        s.patient_id = patient.cloned();
        s.resource = note.resource.clone();
        s.query = note.query.clone();
        s
    };
    if note.patients.is_empty() {
        vec![one(None)]
    } else {
        note.patients.iter().map(|p| one(Some(p))).collect()
    }
}

/// Records a sign-in, failed sign-in or sign-out (through the batching auditor).
/// `who.person.display` for a failed attempt is the login tried — never the password.
pub async fn sign_in_event(
    st: &AppState,
    kind: EventKind,
    who: crate::audit::Who,
    outcome: Outcome,
    why: Option<&str>,
) {
    let mut spec = AuditEventSpec::new(kind, who);
    spec.outcome = outcome;
    spec.outcome_desc = why.map(str::to_owned);
    spec.purpose = Purpose::Operations;
    if st
        .domain
        .audit
        .submit(spec.to_record(st.config.base()))
        .await
        .is_err()
    {
        tracing::error!("the auditor has stopped; a sign-in event could not be recorded");
    }
}

/// The interaction a request was, when its handler left no note (it failed early).
fn interaction_of(method: &Method, path: &str) -> Interaction {
    let segments: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let history = segments.contains(&"_history");
    match (method, segments.as_slice()) {
        (&Method::POST, []) => Interaction::Transaction,
        (&Method::GET, []) => Interaction::SearchSystem,
        (&Method::GET, ["_history"]) => Interaction::HistorySystem,
        (&Method::GET, [_, "_history"]) => Interaction::HistoryType,
        (&Method::GET, [_, _, "_history"]) => Interaction::HistoryInstance,
        (&Method::GET, [_, _, "_history", _]) => Interaction::Vread,
        (&Method::GET, [_]) | (&Method::POST, [_, "_search"]) => Interaction::SearchType,
        (&Method::GET, [_, _]) => Interaction::Read,
        (&Method::GET, [_, _, op]) if op.starts_with('$') => Interaction::Operation,
        (&Method::GET, [_, _, _]) => Interaction::SearchType,
        (&Method::POST, _) => Interaction::Create,
        (&Method::PUT, _) => Interaction::Update,
        (&Method::PATCH, _) => Interaction::Patch,
        (&Method::DELETE, _) => Interaction::Delete,
        _ if history => Interaction::HistoryInstance,
        _ => Interaction::Operation,
    }
}

/// Records the AuditEvents of a finished request (see the module docs). Waits if the
/// auditor's queue is full; if the auditor has stopped (shutdown), the response becomes a
/// 503 rather than go out unaudited.
pub async fn record(
    st: &AppState,
    caller: &Caller,
    method: &Method,
    path: &str,
    response: Response,
) -> Response {
    let note = response.extensions().get::<Arc<Note>>().cloned();
    if note
        .as_ref()
        .is_some_and(|n| n.recorded && response.status().is_success())
    {
        return response;
    }
    let status = response.status();
    let outcome = Outcome::of_status(status.as_u16());
    let desc = (!status.is_success()).then(|| format!("HTTP {}", status.as_u16()));
    let note = match note {
        Some(n) => Note {
            recorded: false,
            ..(*n).clone()
        },
        None => Note {
            interaction: interaction_of(method, path),
            resource: None,
            patients: Vec::new(),
            purpose: None,
            query: None,
            recorded: false,
        },
    };
    let kind = EventKind::Rest(note.interaction);
    for spec in specs(caller, kind, &note, outcome, desc) {
        if st
            .domain
            .audit
            .submit(spec.to_record(st.config.base()))
            .await
            .is_err()
        {
            return crate::error::ApiError::Unavailable(
                "the server is shutting down; try again shortly".into(),
            )
            .into_response();
        }
    }
    response
}
