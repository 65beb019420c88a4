//! Reading a passport: every item of the child's record the caller may see, section by
//! section, with its review state; audited once per page.

use access::{Action, Section, SectionSet};
use passport_store::StoreError;
use passport_store::search::{EverythingQuery, Visibility};
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Purpose};
use crate::guard::{Caller, Guard};

/// Every version-current resource in the child's record, undecided (the caller's guard
/// decides each before anything is shown).
pub async fn compartment(d: &Domain, patient: &str) -> Result<Vec<Value>, StoreError> {
    let members = fhir::compartment::everything_members(|_| true);
    let rows = d
        .records()
        .everything(
            &EverythingQuery {
                patient_id: patient.to_owned(),
                members,
                since_us: None,
                count: 5000,
                after: None,
            },
            Visibility::System,
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| serde_json::from_slice(&m.body).ok())
        .collect())
}

/// The child's passport as `caller` may see it, audited as one read of the record.
pub async fn view(d: &Domain, caller: &Caller, patient: &str) -> Result<View, Failed> {
    view_as(d, caller, patient, Interaction::Read).await
}

/// The child's facts, the sections `caller` may read, and now; not found for a child who
/// does not exist.
async fn readable(
    d: &Domain,
    caller: &Caller,
    patient: &str,
) -> Result<(std::sync::Arc<access::ChildFacts>, SectionSet, i64), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if facts.patient.is_empty() {
        return Err(Failed::NotFound);
    }
    let now = crate::clock::now_us();
    let readable = access::readable_sections(
        &d.policy,
        &caller.subject,
        &facts,
        crate::facts::timestamp(now),
    );
    Ok((facts, readable, now))
}

/// The child's name for a page's heading (a form, the review page), if the caller may see
/// some of the passport: decided as the passport is, without reading the whole record, and
/// audited as one read of the child's details.
pub async fn name(d: &Domain, caller: &Caller, patient: &str) -> Result<String, Failed> {
    let (v, guard, now) = openable(d, caller, patient).await?;
    audit_read(
        d,
        caller,
        &guard,
        patient,
        now,
        Interaction::Read,
        vec![Section::AboutMe.code()],
    )
    .await?;
    Ok(child_name(&v))
}

/// The child's Patient if `caller` may open the passport — some section readable, or the
/// Patient itself — with the guard that decided and now; not found otherwise. Decided as
/// the passport is, without reading the whole record; not audited.
async fn openable<'a>(
    d: &'a Domain,
    caller: &'a Caller,
    patient: &str,
) -> Result<(Value, Guard<'a>, i64), Failed> {
    let (_, readable, now) = readable(d, caller, patient).await?;
    let stored = d
        .records()
        .read("Patient", patient)
        .await?
        .filter(|s| !s.deleted)
        .ok_or(Failed::NotFound)?;
    let v = body(&stored);
    let mut guard = Guard::new(d, caller);
    if readable == SectionSet::EMPTY && !guard.decide(Action::Read, &v).await?.allow {
        return Err(Failed::NotFound);
    }
    Ok((v, guard, now))
}

/// Would [`view`] show `caller` this child's passport (rather than "not found")? Decided as
/// the passport is, without reading the record or auditing: for a page that links to it
/// (the home page lists a family's children, and links only the passports they may open).
pub async fn may_open(d: &Domain, caller: &Caller, patient: &str) -> Result<bool, StoreError> {
    match openable(d, caller, patient).await {
        Ok(_) => Ok(true),
        Err(Failed::Store(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// "Mia Jones", from the Patient's first name.
fn child_name(patient: &Value) -> String {
    let name = &patient["name"][0];
    format!(
        "{} {}",
        name["given"][0].as_str().unwrap_or_default(),
        name["family"].as_str().unwrap_or_default()
    )
    .trim()
    .to_owned()
}

/// A child's passport for a list (a professional's caseload): as [`view`], audited as a
/// search that found the child rather than as opening the passport.
pub async fn summary(d: &Domain, caller: &Caller, patient: &str) -> Result<View, Failed> {
    view_as(d, caller, patient, Interaction::SearchType).await
}

/// What a member of `organisation`'s staff in the child's care team would see, for the
/// person in control of the passport choosing what to share ("what St Mary's School
/// sees"). Built by the same decision as every read: the caller is that organisation's
/// typical member of staff (its sector's everyday role, no security-label clearance).
/// Audited as a read by `controller`, who sees at least as much themselves.
pub async fn preview(
    d: &Domain,
    controller: &Caller,
    patient: &str,
    organisation: &crate::directory::Organisation,
) -> Result<View, Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if !controls(d, controller, &facts) {
        return Err(Failed::NotFound);
    }
    let in_team = facts.in_care_team(None, Some(&organisation.id));
    if !in_team {
        return Err(Failed::NotFound);
    }
    let shown_as = Caller {
        subject: access::Subject::session(access::Identity::Staff(access::Staff {
            practitioner: "preview".into(),
            role: typical_role(organisation.sector),
            organisation: organisation.id.clone(),
            sector: organisation.sector,
            region: organisation.region.clone(),
            cleared: access::LabelSet::EMPTY,
        })),
        who: controller.who.clone(),
        purpose: controller.purpose,
    };
    view_for(
        d,
        &shown_as,
        controller,
        patient,
        Interaction::Read,
        Content::All,
    )
    .await
}

/// Whether `caller` controls the passport's sharing (may change its Consent): the person
/// who chooses what is shared, makes card links and previews what others see.
pub fn controls(d: &Domain, caller: &Caller, facts: &access::ChildFacts) -> bool {
    access::decide(
        &d.policy,
        &caller.subject,
        Action::Update,
        &access::ResourceFacts::new("Consent", SectionSet::EMPTY, access::LabelSet::EMPTY),
        Some(facts),
        crate::facts::timestamp(crate::clock::now_us()),
    )
    .allow
}

/// The everyday role of a sector's staff, for previews.
pub fn typical_role(sector: access::Sector) -> access::Role {
    use access::{Role, Sector};
    match sector {
        Sector::Education => Role::SchoolStaff,
        Sector::Leisure => Role::LeisureStaff,
        Sector::SocialCare => Role::SocialWorker,
        _ => Role::Clinician,
    }
}

async fn view_as(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    interaction: Interaction,
) -> Result<View, Failed> {
    view_for(d, caller, caller, patient, interaction, Content::All).await
}

/// What a view holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Every section the caller may see.
    All,
    /// The emergency content only ([`access::emergency`]).
    Emergency,
}

/// The child's emergency information as `caller` may see it: the emergency content
/// ([`access::emergency`]) — for the care team and the family within what they may see,
/// for break-glass and a card link exactly that — in the order an emergency needs it.
/// Audited as one read of those sections.
pub async fn emergency(d: &Domain, caller: &Caller, patient: &str) -> Result<Emergency, Failed> {
    let view = view_for(
        d,
        caller,
        caller,
        patient,
        Interaction::Read,
        Content::Emergency,
    )
    .await?;
    Ok(Emergency::from(view))
}

/// The emergency view: a passport [`View`] of the emergency content, its sections in
/// grouped and ordered as people act on them (allergies first, who to call with phone
/// numbers, then how the child communicates).
#[derive(Debug, Clone, Serialize)]
pub struct Emergency {
    pub patient: String,
    pub name: String,
    pub birth_date: String,
    pub nhs_number: String,
    /// Allergies; the emergency protocol; current medicines; who to call; how I
    /// communicate and what calms me.
    pub parts: Vec<EmergencyPart>,
    pub waiting: usize,
    pub last_checked: Option<LastChecked>,
    pub next_review: Option<String>,
    pub review_overdue: bool,
}

/// A heading of the emergency view and the sections under it.
#[derive(Debug, Clone, Serialize)]
pub struct EmergencyPart {
    pub code: &'static str,
    pub title: &'static str,
    pub sections: Vec<SectionView>,
}

impl From<View> for Emergency {
    fn from(v: View) -> Emergency {
        let mut sections = v.sections;
        let mut take = |s: Section| {
            let at = sections.iter().position(|x| x.code == s.code());
            at.map(|i| sections.remove(i))
        };
        let mut emergency = take(Section::Emergency);
        // Who to call: the escalation contacts of the emergency protocol, then the key
        // contacts, each in the order they were written.
        let mut escalation = emergency.clone();
        if let (Some(e), Some(c)) = (&mut emergency, &mut escalation) {
            let is_contact = |i: &Item| i.form == Some("escalation-contact");
            e.items.retain(|i| !is_contact(i));
            e.earlier.retain(|i| !is_contact(i));
            c.items.retain(is_contact);
            c.earlier.retain(is_contact);
            c.title = "Escalation contacts";
            c.forms.clear();
        }
        if let Some(e) = &mut emergency {
            e.forms.retain(|f| *f != "escalation-contact");
        }
        let part = |code, title, s: Vec<Option<SectionView>>| EmergencyPart {
            code,
            title,
            sections: s.into_iter().flatten().collect(),
        };
        let parts = vec![
            part("allergies", "Allergies", vec![take(Section::Allergies)]),
            part("protocol", "Emergency protocol", vec![emergency]),
            part(
                "medicines",
                "Current medicines",
                vec![take(Section::Medicines)],
            ),
            part(
                "who-to-call",
                "Who to call",
                vec![escalation, take(Section::Contacts)],
            ),
            part(
                "communication",
                "How I communicate and what calms me",
                vec![take(Section::Communication), take(Section::WhatMatters)],
            ),
        ];
        Emergency {
            patient: v.patient,
            name: v.name,
            birth_date: v.birth_date,
            nhs_number: v.nhs_number,
            parts,
            waiting: v.waiting,
            last_checked: v.last_checked,
            next_review: v.next_review,
            review_overdue: v.review_overdue,
        }
    }
}

/// The passport as `caller` may see it, audited as `audited_as`'s `interaction`.
async fn view_for(
    d: &Domain,
    caller: &Caller,
    audited_as: &Caller,
    patient: &str,
    interaction: Interaction,
    content: Content,
) -> Result<View, Failed> {
    let (facts, mut readable, now) = readable(d, caller, patient).await?;
    let emergency = content == Content::Emergency;
    if emergency {
        readable = readable.intersection(access::EMERGENCY_READABLE);
    }
    let mut guard = Guard::new(d, caller);
    // One read of the child's record: the compartment holds the Patient itself.
    let all = compartment(d, patient).await?;
    let patient_json = all
        .iter()
        .find(|v| v["resourceType"] == "Patient" && v["id"] == patient)
        .cloned()
        .ok_or(Failed::NotFound)?;
    // Someone with no relationship (or a refused one) sees no passport at all.
    if readable == SectionSet::EMPTY && !guard.decide(Action::Read, &patient_json).await?.allow {
        return Err(Failed::NotFound);
    }
    let mut provenance = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    let mut next_review = None;
    for v in all {
        let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
        // The emergency view says how far to trust it to whoever reads it: the review
        // date is about the passport, not the child's health.
        if emergency && review::is_review_plan(&v) {
            next_review = v["period"]["end"].as_str().map(str::to_owned);
            continue;
        }
        if !guard.decide(Action::Read, &v).await?.allow {
            continue;
        }
        if emergency && !access::is_emergency_content(&access::ResourceFacts::from_json(&v)) {
            continue;
        }
        if ty == "Provenance" {
            provenance.push(v);
        } else if review::is_review_plan(&v) {
            next_review = v["period"]["end"].as_str().map(str::to_owned);
        } else if (!NOT_ITEMS.contains(&ty.as_str()) && !is_family_link(&v))
            // Answers kept as the item itself (what matters to me…); other answers are
            // already shown through the resource they fill.
            || forms::form_of(&v).is_some_and(|f| f.answers_only())
        {
            items.push(v);
        }
    }
    let checked = checks(&provenance);
    // The last check of anything in the passport, and by whom.
    let last_checked = provenance
        .iter()
        .filter(|p| p["recorded"].is_string())
        .max_by(|a, b| a["recorded"].as_str().cmp(&b["recorded"].as_str()))
        .map(|p| LastChecked {
            date: p["recorded"]
                .as_str()
                .and_then(crate::dates::long_date)
                .unwrap_or_default(),
            by: p["agent"][0]["who"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    let writable = writable_forms(d, caller, &facts, now);
    let mut sections: Vec<SectionView> = Section::ALL
        .iter()
        .filter(|&&s| !emergency || access::EMERGENCY_READABLE.contains(s))
        .map(|&s| SectionView {
            code: s.code(),
            title: s.display(),
            shared: readable.contains(s),
            items: Vec::new(),
            earlier: Vec::new(),
            forms: writable
                .iter()
                .filter(|f| f.section == s)
                .map(|f| f.key)
                .collect(),
            writable: false,
        })
        .collect();
    let mut waiting = 0;
    let mut waiting_items = Vec::new();
    for v in items {
        if entered_in_error(&v) {
            continue;
        }
        let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let status = if awaiting(&v) {
            Status::Waiting { by_family: true }
        } else {
            checked
                .get(&format!("{ty}/{id}"))
                .map(|(_, s)| s.clone())
                .unwrap_or(Status::Recorded)
        };
        let item = Item {
            version: v["meta"]["versionId"]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(1),
            label: label(&v),
            details: details(&v),
            form: forms::form_of(&v).map(|f| f.key),
            current: is_current(&v),
            photo: photo::is_photo(&v).then(|| format!("/passport/{patient}/photo/{id}")),
            status,
            resource_type: ty,
            id,
        };
        if matches!(item.status, Status::Waiting { .. }) {
            if item.current {
                waiting += 1;
            }
            waiting_items.push(v.clone());
        }
        // Shown under each section it is tagged with that the caller may see.
        for s in Section::from_resource_meta(&v).iter() {
            let Some(view) = sections.iter_mut().find(|x| x.code == s.code()) else {
                continue;
            };
            if !view.shared {
                continue;
            }
            if item.current {
                view.items.push(item.clone());
            } else {
                view.earlier.push(item.clone());
            }
        }
    }
    // A form of which a child has one item (what matters to me) is changed, not added to.
    for s in &mut sections {
        s.writable = !s.forms.is_empty();
        let present: Vec<&str> = s.items.iter().filter_map(|i| i.form).collect();
        s.forms
            .retain(|k| forms::form(k).is_none_or(|f| f.repeats || !present.contains(k)));
    }
    let shown: Vec<&'static str> = sections
        .iter()
        .filter(|s| s.shared)
        .map(|s| s.code)
        .collect();
    audit_read(d, audited_as, &guard, patient, now, interaction, shown).await?;
    Ok(View {
        patient: patient.to_owned(),
        name: child_name(&patient_json),
        birth_date: patient_json["birthDate"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        nhs_number: fhir::nhs_number::of(&patient_json)
            .unwrap_or_default()
            .to_owned(),
        sections,
        waiting,
        review_overdue: next_review
            .as_deref()
            .is_some_and(|d| d < crate::dates::today().as_str()),
        next_review,
        last_checked,
        controls: controls(d, caller, &facts),
        waiting_items,
    })
}

/// A RelatedPerson that is a family member's sign-in link (shown on the sharing pages, not
/// as a contact item).
fn is_family_link(v: &Value) -> bool {
    v["resourceType"] == "RelatedPerson"
        && v["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["system"] == crate::directory::LOGIN_SYSTEM)
}

/// The forms whose items `caller` may create in this child's record (decided on a
/// sample item of each form's section).
fn writable_forms(
    d: &Domain,
    caller: &Caller,
    facts: &access::ChildFacts,
    now: i64,
) -> Vec<&'static Form> {
    let family = is_family(caller);
    FORMS
        .iter()
        .filter(|f| !(family && f.clinical))
        .filter(|f| {
            let r = access::ResourceFacts::new(
                f.resource_type,
                SectionSet::of(&[f.section]),
                access::LabelSet::EMPTY,
            );
            access::decide(
                &d.policy,
                &caller.subject,
                Action::Create,
                &r,
                Some(facts),
                crate::facts::timestamp(now),
            )
            .allow
        })
        .collect()
}

async fn audit_read(
    d: &Domain,
    caller: &Caller,
    guard: &Guard<'_>,
    patient: &str,
    now: i64,
    interaction: Interaction,
    sections: Vec<&'static str>,
) -> Result<(), StoreError> {
    let mut spec = AuditEventSpec::new(EventKind::Rest(interaction), caller.who.clone());
    spec.sections = sections;
    spec.recorded_us = now;
    spec.purpose = if guard.safeguarding {
        Purpose::Safeguarding
    } else if guard.break_glass {
        Purpose::EmergencyTreatment
    } else {
        caller.purpose
    };
    spec.patient_id = Some(patient.to_owned());
    spec.resource = Some((
        "Patient".into(),
        (interaction == Interaction::Read).then(|| patient.to_owned()),
        None,
    ));
    d.audit
        .submit(spec.to_record(d.base_url()))
        .await
        .map_err(|_| StoreError::Closed)
}
