//! The sharing pages, made for a phone: the person in control of the passport
//! (`access::controller`: parents with parental responsibility, or the young person after
//! the hand-over or when Gillick competent) reads, in plain words, what each kind of
//! organisation sees, and changes one thing per page:
//!
//! - `/passport/{patient}/sharing`: the summary, one line per sector ("Schools, nurseries
//!   and colleges see allergies, medicines and the emergency protocol"), its exceptions,
//!   and each organisation of the care team with a link to what it sees;
//! - `/passport/{patient}/sharing/sector/{sector}`: one question, what that sector sees;
//! - `/passport/{patient}/sharing/organisation/{org}`: one question, what one
//!   organisation sees, or "the same as others of its kind" (the exception removed): "not
//!   schools, except St Mary's".
//!
//! The choices are the child's one sharing `Consent` (the shape in `access::consent`),
//! created or replaced by a new version through the validated, versioned write path, with
//! its `ConsentChange` AuditEvent committed in the same transaction. Each page changes its
//! own rules and keeps every other rule as it is. An organisation's rules win over its
//! sector's (`SharingChoices::staff_view`), which is what makes an exception.

use std::sync::Arc;

use access::{
    Action, Actor, RegionalPolicy, ResourceFacts, Section, SectionSet, Sector, SharingChoices,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

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
pub(super) fn performer(
    who: &SignedIn,
    p: &Passport,
    policy: &RegionalPolicy,
    now_us: i64,
) -> Option<String> {
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

/// A sector in the plural, as a sentence's subject ("Schools, nurseries and colleges").
fn sector_plural(sector: Sector) -> &'static str {
    match sector {
        Sector::HospitalTrust => "Hospitals",
        Sector::GpPractice => "GP practices",
        Sector::CommunityHealth => "Community health teams",
        Sector::SocialCare => "Children's social care teams",
        Sector::Education => "Schools, nurseries and colleges",
        Sector::Leisure => "Clubs, leisure and voluntary organisations",
        Sector::EmergencyServices => {
            "Emergency services (ambulance crews and emergency departments)"
        }
    }
}

/// Sections in words: "allergies, medicines and the emergency protocol".
fn in_words(set: SectionSet) -> String {
    let names: Vec<String> = Section::ALL
        .iter()
        .filter(|s| set.contains(**s))
        .map(|s| match s {
            Section::Emergency => "the emergency protocol".to_owned(),
            Section::AboutMe => "\"about me\"".to_owned(),
            Section::WhatMatters => "what matters to them".to_owned(),
            other => other.display().to_lowercase(),
        })
        .collect();
    match names.as_slice() {
        [] => "nothing in the passport".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The sector's view with no organisation rule: what its organisations see by default.
fn sector_view(
    choices: &SharingChoices,
    policy: &RegionalPolicy,
    sector: Sector,
    now_us: i64,
) -> SectionSet {
    choices
        .staff_view(policy, "", sector, guard::timestamp(now_us))
        .visible
}

/// Organisations with a rule of their own, and those of the care team, as the summary
/// lists them.
async fn organisations(
    st: &AppState,
    p: &Passport,
) -> Result<Vec<domain::directory::Organisation>, guard::PageError> {
    let mut ids: Vec<String> = p
        .facts
        .care_team
        .iter()
        .filter_map(|m| match m {
            access::CareTeamMember::Organisation(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    for r in &p.facts.sharing.rules {
        if let Actor::Organisation(id) = &r.actor
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(o) = super::directory::organisation(&st.domain, &id).await?
            && !o.regional
        {
            out.push(o);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether the choices hold a rule about this organisation.
fn has_own_rule(choices: &SharingChoices, org: &str) -> bool {
    choices
        .rules
        .iter()
        .any(|r| matches!(&r.actor, Actor::Organisation(o) if o == org))
}

/// The signed-in controller of the passport, or the page that refuses them.
async fn open(
    st: &AppState,
    headers: &HeaderMap,
    patient: &str,
) -> Result<Result<(SignedIn, Passport, String, i64), axum::response::Response>, guard::PageError> {
    let who = match guard::signed_in(st, headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(Err(r)),
    };
    let now = clock::now_us();
    Ok(match controller(st, &who, patient, now).await? {
        Ok((p, performer)) => Ok((who, p, performer, now)),
        Err(r) => Err(r),
    })
}

/// `GET /passport/{patient}/sharing`: what each kind of organisation sees, in words.
pub async fn summary(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    query: RawQuery,
) -> PageResult {
    let (_, p, _, now) = match open(&st, &headers, &patient).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let policy = RegionalPolicy::default();
    let choices = &p.facts.sharing;
    let orgs = organisations(&st, &p).await?;
    let team: Vec<&str> = p
        .facts
        .care_team
        .iter()
        .filter_map(|m| match m {
            access::CareTeamMember::Organisation(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let sectors: Vec<Value> = Sector::ALL
        .iter()
        .map(|&sector| {
            let sees = sector_view(choices, &policy, sector, now);
            let exceptions: Vec<Value> = orgs
                .iter()
                .filter(|o| o.sector == sector && has_own_rule(choices, &o.id))
                .map(|o| {
                    let own = choices
                        .staff_view(&policy, &o.id, sector, guard::timestamp(now))
                        .visible;
                    json!({ "id": o.id, "name": o.name, "sees": in_words(own) })
                })
                .collect();
            json!({
                "code": sector.code(), "label": sector_plural(sector),
                "sees": in_words(sees),
                "default": sees == policy.sector_default(sector),
                "exceptions": exceptions,
            })
        })
        .collect();
    let team: Vec<Value> = orgs
        .iter()
        .filter(|o| team.contains(&o.id.as_str()))
        .map(|o| {
            let own = choices
                .staff_view(&policy, &o.id, o.sector, guard::timestamp(now))
                .visible;
            json!({ "id": o.id, "name": o.name, "sees": in_words(own),
                    "own": has_own_rule(choices, &o.id),
                    "kind": sector_plural(o.sector).to_lowercase() })
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        "sharing.html",
        json!({ "child": p.name, "patient": patient, "sectors": sectors, "team": team,
                "handover": child_facts::handover_reminder(&p, now),
                "saved": query.0.as_deref() == Some("saved") }),
    ))
}

/// The checkboxes of one question: every section, ticked where `chosen`, with the
/// region's default and (for an organisation) its sector's choice as hints.
fn boxes(chosen: SectionSet, default: SectionSet) -> Vec<Value> {
    Section::ALL
        .iter()
        .map(|&s| {
            json!({ "code": s.code(), "label": s.display(),
                    "chosen": chosen.contains(s), "default": default.contains(s) })
        })
        .collect()
}

/// The sections ticked on a posted question.
fn ticked(f: &std::collections::HashMap<String, String>) -> SectionSet {
    Section::ALL
        .into_iter()
        .filter(|s| f.contains_key(&format!("share-{}", s.code())))
        .collect()
}

/// `GET /passport/{patient}/sharing/sector/{sector}`: one question, what a sector sees.
pub async fn sector_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, code)): Path<(String, String)>,
) -> PageResult {
    let Some(sector) = Sector::from_code(&code) else {
        return Ok(guard::not_found());
    };
    let (who, p, _, now) = match open(&st, &headers, &patient).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let policy = RegionalPolicy::default();
    let sees = sector_view(&p.facts.sharing, &policy, sector, now);
    Ok(page(
        StatusCode::OK,
        "sharing_question.html",
        json!({ "child": p.name, "patient": patient,
                "question": format!("What can {} see?", sector_plural(sector).to_lowercase()),
                "hint": format!("Only those in {}'s care team see anything. Sections marked \"shared by default\" are what the region shares unless you choose otherwise.", p.name),
                "action": format!("/passport/{patient}/sharing/sector/{code}"),
                "boxes": boxes(sees, policy.sector_default(sector)),
                "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passport/{patient}/sharing/sector/{sector}`: saves what a sector sees; rules
/// about single organisations and family members stay as they are.
pub async fn save_sector(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, code)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let Some(sector) = Sector::from_code(&code) else {
        return Ok(guard::not_found());
    };
    let f = form(&body);
    let (who, p, performer, now) = match open(&st, &headers, &patient).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let back = format!("/passport/{patient}/sharing/sector/{code}");
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((&back, "Go back to the question"))));
    }
    let policy = RegionalPolicy::default();
    let mut choices = without(&p.facts.sharing, &Actor::Sector(sector));
    let wanted = ticked(&f);
    let default = policy.sector_default(sector);
    choices = with_difference(choices, Actor::Sector(sector), wanted, default);
    store(&st, &who, &patient, &performer, &choices, now).await?;
    Ok(see_other(&format!("/passport/{patient}/sharing?saved")))
}

/// `GET /passport/{patient}/sharing/organisation/{org}`: one question, what one
/// organisation sees (or the same as others of its kind).
pub async fn organisation_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, org)): Path<(String, String)>,
) -> PageResult {
    let (who, p, _, now) = match open(&st, &headers, &patient).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let Some(o) = organisations(&st, &p)
        .await?
        .into_iter()
        .find(|o| o.id == org)
    else {
        return Ok(guard::no_such_passport());
    };
    let policy = RegionalPolicy::default();
    let own = p
        .facts
        .sharing
        .staff_view(&policy, &o.id, o.sector, guard::timestamp(now))
        .visible;
    let others = sector_view(&p.facts.sharing, &policy, o.sector, now);
    Ok(page(
        StatusCode::OK,
        "sharing_question.html",
        json!({ "child": p.name, "patient": patient,
                "question": format!("What can {} see?", o.name),
                "hint": format!("Other {} see {}. What you choose here is for {} only.",
                                sector_plural(o.sector).to_lowercase(), in_words(others), o.name),
                "action": format!("/passport/{patient}/sharing/organisation/{org}"),
                "boxes": boxes(own, others),
                "default_words": "Shared with others of its kind",
                "same": { "kind": sector_plural(o.sector).to_lowercase(), "own": has_own_rule(&p.facts.sharing, &o.id) },
                "preview": p.facts.in_care_team(None, Some(&o.id)).then(|| format!("/passport/{patient}/sharing/{org}")),
                "name": o.name,
                "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passport/{patient}/sharing/organisation/{org}`: saves one organisation's
/// exception, or removes it (`same`).
pub async fn save_organisation(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, org)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    let (who, p, performer, now) = match open(&st, &headers, &patient).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let back = format!("/passport/{patient}/sharing/organisation/{org}");
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((&back, "Go back to the question"))));
    }
    let Some(o) = organisations(&st, &p)
        .await?
        .into_iter()
        .find(|o| o.id == org)
    else {
        return Ok(guard::no_such_passport());
    };
    let policy = RegionalPolicy::default();
    let actor = Actor::Organisation(o.id.clone());
    let mut choices = without(&p.facts.sharing, &actor);
    if f.get("same").map(String::as_str) != Some("yes") {
        let others = sector_view(&choices, &policy, o.sector, now);
        choices = with_difference(choices, actor, ticked(&f), others);
    }
    store(&st, &who, &patient, &performer, &choices, now).await?;
    Ok(see_other(&format!("/passport/{patient}/sharing?saved")))
}

/// The choices without `actor`'s rules.
fn without(choices: &SharingChoices, actor: &Actor) -> SharingChoices {
    SharingChoices {
        rules: choices
            .rules
            .iter()
            .filter(|r| &r.actor != actor)
            .cloned()
            .collect(),
    }
}

/// `choices` with rules that make `actor` see `wanted` where it would otherwise see `base`.
fn with_difference(
    mut choices: SharingChoices,
    actor: Actor,
    wanted: SectionSet,
    base: SectionSet,
) -> SharingChoices {
    let (more, fewer) = (wanted.minus(base), base.minus(wanted));
    if !more.is_empty() {
        choices = choices.permit(actor.clone(), more);
    }
    if !fewer.is_empty() {
        choices = choices.deny(actor, fewer);
    }
    choices
}

/// Saves the choices as the child's sharing Consent: a new version of the one there is
/// (a change made meanwhile is a conflict, not lost), audited as the performer.
async fn store(
    st: &AppState,
    who: &SignedIn,
    patient: &str,
    performer: &str,
    choices: &SharingChoices,
    now: i64,
) -> Result<(), guard::PageError> {
    let existing = crate::authz::facts::referring(
        &st.domain.records(),
        "Consent",
        "patient",
        "Patient",
        &[patient.to_owned()],
    )
    .await?
    .into_iter()
    .find(is_sharing)
    .and_then(|v| v["id"].as_str().map(str::to_owned));
    let current = match &existing {
        Some(id) => st.domain.records().read("Consent", id).await?,
        None => None,
    };
    let mut consent = choices.to_consent(patient, performer, &clock::instant(now));
    let id = existing.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    consent["id"] = json!(id);
    let write = new_version(consent, current.as_ref().filter(|c| !c.deleted))?;
    let actor = Agent::new(
        Who {
            person: Named::new(performer.to_owned(), who.cur.account.display_name.clone()),
            ..Who::default()
        },
        if performer.starts_with("Patient/") {
            Purpose::PatientRequest
        } else {
            Purpose::FamilyRequest
        },
    );
    st.domain.records().write(&actor, write).await?;
    Ok(())
}
