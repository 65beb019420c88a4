//! The sharing-choices page, `/passport/{patient}/sharing`: the person in control of the
//! passport (`access::controller`: parents with parental responsibility, or the young
//! person after the hand-over or when Gillick competent) chooses, for each sector, which
//! sections organisations of that sector see, starting from the regional default.
//!
//! The choices are the child's one sharing `Consent` (the shape in `access::consent`),
//! created or replaced by a new version through the validated, versioned write path, with
//! its `ConsentChange` AuditEvent committed in the same transaction. Rules the page does
//! not show (about one organisation or one family member) are kept as they are.

use std::sync::Arc;

use access::{
    Action, Actor, RegionalPolicy, ResourceFacts, Section, SectionSet, Sector, SharingChoices,
};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::admin::sector_name;
use super::child_facts::{self, Passport};
use super::guard::{self, PageResult, SignedIn, form};
use super::templates::{csrf_refused, page, see_other};
use crate::audit::{Named, Purpose, Who};
use crate::records::{Agent, new_version};
use crate::{AppState, clock};

/// Is this Consent the child's sharing choices (not some other consent)?
fn is_sharing(consent: &Value) -> bool {
    consent["status"] == "active"
        && consent["policyRule"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["system"] == access::consent::CONSENT_POLICY_SYSTEM && c["code"] == "sharing"
            })
}

/// Who is deciding, as the Consent's performer; `None` if they are not in control.
fn performer(who: &SignedIn, p: &Passport, policy: &RegionalPolicy, now_us: i64) -> Option<String> {
    let subject = access::Subject::session(who.identity.clone());
    let consent = ResourceFacts::new("Consent", SectionSet::EMPTY, access::LabelSet::default());
    let may = access::decide(
        policy,
        &subject,
        Action::Update,
        &consent,
        Some(&p.facts),
        guard::timestamp(now_us),
    );
    if !may.allow {
        return None;
    }
    match &who.identity {
        access::Identity::Family { person } => p
            .facts
            .family_link(person)
            .map(|l| format!("RelatedPerson/{}", l.related_person)),
        access::Identity::YoungPerson { patient } => Some(format!("Patient/{patient}")),
        _ => None,
    }
}

/// The passport and the performer, or the refusal: 404 for someone with no link to the
/// child (as if there were no passport), 403 for a linked person not in control.
async fn controller(
    st: &AppState,
    who: &SignedIn,
    patient: &str,
    now_us: i64,
) -> Result<Result<(Passport, String), axum::response::Response>, guard::PageError> {
    let policy = RegionalPolicy::default();
    let Some(p) = child_facts::load(st, patient).await? else {
        return Ok(Err(guard::no_such_passport()));
    };
    let linked = match &who.identity {
        access::Identity::Family { person } => p.facts.family_link(person).is_some(),
        access::Identity::YoungPerson { patient: own } => own == patient,
        _ => false,
    };
    if !linked {
        return Ok(Err(guard::no_such_passport()));
    }
    match performer(who, &p, &policy, now_us) {
        Some(perf) => Ok(Ok((p, perf))),
        None => Ok(Err(guard::forbidden(
            "Only the person in control of this passport can change who it is shared with: a parent with parental responsibility, or the young person once they have taken it over.",
        ))),
    }
}

fn rows(choices: &SharingChoices, policy: &RegionalPolicy, now_us: i64) -> Vec<Value> {
    let now = guard::timestamp(now_us);
    Sector::ALL
        .iter()
        .map(|&sector| {
            let default = policy.sector_default(sector);
            // No organisation: the sector-wide view (organisation rules are kept, not shown).
            let chosen = choices.staff_view(policy, "", sector, now).visible;
            let sections: Vec<Value> = Section::ALL
                .iter()
                .map(|&s| {
                    json!({ "code": s.code(), "label": s.display(),
                            "default": default.contains(s), "chosen": chosen.contains(s) })
                })
                .collect();
            json!({ "code": sector.code(), "label": sector_name(sector), "sections": sections })
        })
        .collect()
}

/// `GET /passport/{patient}/sharing`
pub async fn form_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    query: axum::extract::RawQuery,
) -> PageResult {
    let who = match guard::signed_in(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let now = clock::now_us();
    let (p, _) = match controller(&st, &who, &patient, now).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    // Each organisation in the care team, to preview what it sees.
    let mut team = Vec::new();
    for m in &p.facts.care_team {
        if let access::CareTeamMember::Organisation(id) = m
            && let Some(o) = super::directory::organisation(&st.domain, id).await?
        {
            team.push(json!({ "id": o.id, "name": o.name }));
        }
    }
    Ok(page(
        StatusCode::OK,
        "sharing.html",
        json!({ "child": p.name, "patient": patient, "team": team, "rows": rows(&p.facts.sharing, &RegionalPolicy::default(), now),
                "handover": child_facts::handover_reminder(&p, now),
                "saved": query.0.as_deref() == Some("saved"), "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passport/{patient}/sharing`: saves the choices as the child's sharing Consent.
pub async fn save(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> PageResult {
    let who = match guard::signed_in(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    let back = format!("/passport/{patient}/sharing");
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((&back, "Go back to sharing choices"))));
    }
    let now = clock::now_us();
    let (p, performer) = match controller(&st, &who, &patient, now).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let policy = RegionalPolicy::default();
    // What the page does not show stays as it was.
    let mut choices = SharingChoices {
        rules: p
            .facts
            .sharing
            .rules
            .iter()
            .filter(|r| !matches!(r.actor, Actor::Sector(_)))
            .cloned()
            .collect(),
    };
    for sector in Sector::ALL {
        let wanted: SectionSet = Section::ALL
            .into_iter()
            .filter(|s| f.contains_key(&format!("share-{}-{}", sector.code(), s.code())))
            .collect();
        let default = policy.sector_default(sector);
        let more = wanted.minus(default);
        let fewer = default.minus(wanted);
        if !more.is_empty() {
            choices = choices.permit(Actor::Sector(sector), more);
        }
        if !fewer.is_empty() {
            choices = choices.deny(Actor::Sector(sector), fewer);
        }
    }
    let existing = crate::authz::facts::referring(
        &st.domain.records(),
        "Consent",
        "patient",
        "Patient",
        std::slice::from_ref(&patient),
    )
    .await?
    .into_iter()
    .find(is_sharing)
    .and_then(|v| v["id"].as_str().map(str::to_owned));
    // The version this one replaces: a change made meanwhile is a conflict, not lost.
    let current = match &existing {
        Some(id) => st.domain.records().read("Consent", id).await?,
        None => None,
    };
    let mut consent = choices.to_consent(&patient, &performer, &clock::instant(now));
    let id = existing.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    consent["id"] = json!(id);
    let write = new_version(consent, current.as_ref().filter(|c| !c.deleted))?;
    let actor = Agent::new(
        Who {
            person: Named::new(performer.clone(), who.cur.account.display_name.clone()),
            ..Who::default()
        },
        if performer.starts_with("Patient/") {
            Purpose::PatientRequest
        } else {
            Purpose::FamilyRequest
        },
    );
    st.domain.records().write(&actor, write).await?;
    Ok(see_other(&format!("{back}?saved")))
}
