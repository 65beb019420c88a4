//! The family's sharing choices, stored as FHIR R4 Consent resources and applied over the
//! regional defaults.
//!
//! # The Consent shape
//!
//! ```json
//! {
//!   "resourceType": "Consent",
//!   "status": "active",
//!   "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
//!                         "code": "patient-privacy"}]},
//!   "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
//!   "patient": {"reference": "Patient/123"},
//!   "dateTime": "2026-05-01T09:30:00Z",
//!   "performer": [{"reference": "RelatedPerson/mum-of-123"}],
//!   "policyRule": {"coding": [{"system": "https://passport.nhs.uk/fhir/CodeSystem/passport-consent-policy",
//!                              "code": "sharing"}]},
//!   "provision": {
//!     "provision": [
//!       {"type": "permit",
//!        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
//!                   "reference": {"identifier": {"system": "https://passport.nhs.uk/fhir/CodeSystem/passport-sector",
//!                                                "value": "education"}}}],
//!        "code": [{"coding": [{"system": "https://passport.nhs.uk/fhir/CodeSystem/passport-section",
//!                              "code": "allergies"}]}]},
//!       {"type": "deny",
//!        "actor": [{"role": {...IRCP...}, "reference": {"reference": "Organization/st-marys-school"}}],
//!        "code": [{"coding": [{"system": "...passport-section", "code": "emergency"}]}],
//!        "period": {"end": "2026-09-01"}}
//!     ]
//!   }
//! }
//! ```
//!
//! Reading rules ([`SharingChoices::from_consents`]):
//! - only Consents with `status` `active` count;
//! - each `provision.provision[]` (and the top-level `provision` itself, if it names an
//!   actor) is one rule per actor; the top-level `type` of a provision without actors is
//!   ignored — the regional default is the base;
//! - actor: `reference.reference` `Organization/<id>` (one organisation),
//!   `RelatedPerson/<id>` (one family member — used by a young person who controls their
//!   own passport, or to grant a parent without parental responsibility), or
//!   `reference.identifier` with system [`crate::SECTOR_SYSTEM`] (every organisation of
//!   that sector); other actors are ignored;
//! - sections: codings in [`crate::SECTION_SYSTEM`] found in `code[]` or `class[]`; no
//!   `code`/`class` at all means every section; codes present but none recognised means
//!   the rule is skipped (it never widens to "everything" by mistake);
//! - `period` (`start`/`end`, on the provision or inherited from the top level) limits when
//!   the rule applies;
//! - precedence: organisation rules beat sector rules, which beat the regional default;
//!   at the same level, deny beats permit.

use serde_json::{Value, json};

use crate::policy::RegionalPolicy;
use crate::section::{SECTION_SYSTEM, Section, SectionSet};
use crate::subject::{SECTOR_SYSTEM, Sector};
use crate::time::Timestamp;

/// Policy code written in `Consent.policyRule`.
pub const CONSENT_POLICY_SYSTEM: &str =
    "https://passport.nhs.uk/fhir/CodeSystem/passport-consent-policy";

/// Who a sharing rule is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    Sector(Sector),
    /// An Organization's logical id.
    Organisation(String),
    /// A RelatedPerson's logical id (a family member).
    RelatedPerson(String),
}

/// One rule: permit or deny some sections to an actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingRule {
    pub actor: Actor,
    pub sections: SectionSet,
    pub permit: bool,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl SharingRule {
    pub fn in_force(&self, now: Timestamp) -> bool {
        now.within(self.start, self.end)
    }
}

/// All of a child's sharing choices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharingChoices {
    pub rules: Vec<SharingRule>,
}

/// What a member of staff's organisation sees of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub visible: SectionSet,
    /// Visible only because of a family's permit (beyond the regional default).
    pub by_choice: SectionSet,
}

impl SharingChoices {
    pub fn new() -> SharingChoices {
        SharingChoices::default()
    }

    /// Adds a permit rule (builder style).
    pub fn permit(mut self, actor: Actor, sections: SectionSet) -> SharingChoices {
        self.rules.push(SharingRule {
            actor,
            sections,
            permit: true,
            start: None,
            end: None,
        });
        self
    }

    /// Adds a deny rule (builder style).
    pub fn deny(mut self, actor: Actor, sections: SectionSet) -> SharingChoices {
        self.rules.push(SharingRule {
            actor,
            sections,
            permit: false,
            start: None,
            end: None,
        });
        self
    }

    /// Reads the rules of a child's Consent resources (see the module docs for the shape).
    pub fn from_consents(consents: &[Value]) -> SharingChoices {
        let mut rules = Vec::new();
        for consent in consents {
            if consent.get("resourceType").and_then(Value::as_str) != Some("Consent")
                || consent.get("status").and_then(Value::as_str) != Some("active")
            {
                continue;
            }
            let Some(top) = consent.get("provision") else {
                continue;
            };
            // An unreadable period on the whole provision: drop its permits, keep its
            // denials unbounded (never share more than was meant).
            let top_period = period(top);
            read_provision(top, top_period, &mut rules);
            for nested in top
                .get("provision")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                read_provision(nested, top_period, &mut rules);
            }
        }
        SharingChoices { rules }
    }

    /// These choices as one Consent resource in the documented shape. `performer` is a
    /// reference such as `RelatedPerson/abc` or `Patient/123` (who made the choices);
    /// `date_time` a FHIR dateTime.
    pub fn to_consent(&self, patient: &str, performer: &str, date_time: &str) -> Value {
        let provisions: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let reference = match &r.actor {
                    Actor::Sector(s) => json!({"identifier": {"system": SECTOR_SYSTEM, "value": s.code()}}),
                    Actor::Organisation(id) => json!({"reference": format!("Organization/{id}")}),
                    Actor::RelatedPerson(id) => json!({"reference": format!("RelatedPerson/{id}")}),
                };
                let mut p = json!({
                    "type": if r.permit { "permit" } else { "deny" },
                    "actor": [{
                        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                        "reference": reference
                    }],
                });
                if r.sections != SectionSet::ALL {
                    p["code"] = r
                        .sections
                        .iter()
                        .map(|s| json!({"coding": [{"system": SECTION_SYSTEM, "code": s.code()}]}))
                        .collect();
                }
                if r.start.is_some() || r.end.is_some() {
                    let mut per = serde_json::Map::new();
                    if let Some(s) = r.start {
                        per.insert("start".into(), Value::String(instant(s)));
                    }
                    if let Some(e) = r.end {
                        per.insert("end".into(), Value::String(instant(e)));
                    }
                    p["period"] = Value::Object(per);
                }
                p
            })
            .collect();
        let mut consent = json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{patient}")},
            "dateTime": date_time,
            "performer": [{"reference": performer}],
            "policyRule": {"coding": [{"system": CONSENT_POLICY_SYSTEM, "code": "sharing"}]},
        });
        // No rules (the regional default): no provision at all — FHIR forbids empty arrays.
        if !provisions.is_empty() {
            consent["provision"] = json!({"provision": provisions});
        }
        consent
    }

    /// What an organisation of a sector sees: regional default, then the family's
    /// sector rules, then their organisation rules (deny beats permit at each level).
    pub fn staff_view(
        &self,
        policy: &RegionalPolicy,
        organisation: &str,
        sector: Sector,
        now: Timestamp,
    ) -> View {
        let default = policy.sector_default(sector);
        let (mut sp, mut sd, mut op, mut od) = (
            SectionSet::EMPTY,
            SectionSet::EMPTY,
            SectionSet::EMPTY,
            SectionSet::EMPTY,
        );
        for r in self.rules.iter().filter(|r| r.in_force(now)) {
            let slot = match &r.actor {
                Actor::Sector(s) if *s == sector => {
                    if r.permit {
                        &mut sp
                    } else {
                        &mut sd
                    }
                }
                Actor::Organisation(o) if o == organisation => {
                    if r.permit {
                        &mut op
                    } else {
                        &mut od
                    }
                }
                _ => continue,
            };
            *slot = slot.union(r.sections);
        }
        let visible = default.union(sp).minus(sd).union(op).minus(od);
        View {
            visible,
            by_choice: visible.minus(default),
        }
    }

    /// Sections permitted and denied to one family member (`RelatedPerson` id) now.
    pub fn family_rules(&self, related_person: &str, now: Timestamp) -> (SectionSet, SectionSet) {
        let (mut permit, mut deny) = (SectionSet::EMPTY, SectionSet::EMPTY);
        for r in self.rules.iter().filter(|r| r.in_force(now)) {
            if matches!(&r.actor, Actor::RelatedPerson(id) if id == related_person) {
                if r.permit {
                    permit = permit.union(r.sections);
                } else {
                    deny = deny.union(r.sections);
                }
            }
        }
        (permit, deny)
    }
}

/// A provision's `period` bounds. A bound that is present but cannot be read is `Err`.
type Bounds = (Option<Timestamp>, Option<Timestamp>);

fn period(p: &Value) -> Result<Bounds, ()> {
    let at = |k: &str| match p.get("period").and_then(|per| per.get(k)) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| Timestamp::parse(s).ok())
            .map(Some)
            .ok_or(()),
    };
    Ok((at("start")?, at("end")?))
}

fn read_provision(p: &Value, inherited: Result<Bounds, ()>, out: &mut Vec<SharingRule>) {
    let Some(actors) = p.get("actor").and_then(Value::as_array) else {
        return;
    };
    let permit = match p.get("type").and_then(Value::as_str) {
        Some("permit") => true,
        Some("deny") => false,
        _ => return,
    };
    let mut coded = false;
    let mut sections = SectionSet::EMPTY;
    for key in ["code", "class"] {
        for item in p.get(key).and_then(Value::as_array).into_iter().flatten() {
            coded = true;
            // `code` is CodeableConcept (codings inside); `class` is Coding.
            let codings = item
                .get("coding")
                .and_then(Value::as_array)
                .map_or_else(|| vec![item], |c| c.iter().collect());
            for c in codings {
                if c.get("system").and_then(Value::as_str) == Some(SECTION_SYSTEM)
                    && let Some(s) = c
                        .get("code")
                        .and_then(Value::as_str)
                        .and_then(Section::from_code)
                {
                    sections.insert(s);
                }
            }
        }
    }
    if !coded {
        sections = SectionSet::ALL;
    } else if sections.is_empty() {
        return;
    }
    let (start, end) = match (period(p), inherited) {
        (Ok((s, e)), Ok((is, ie))) => (s.or(is), e.or(ie)),
        // An unreadable bound: a permit is dropped, a denial applies without limit.
        _ if permit => return,
        _ => (None, None),
    };
    for a in actors {
        let Some(r) = a.get("reference") else {
            continue;
        };
        let actor = if let Some(s) = r.get("reference").and_then(Value::as_str) {
            if let Some(id) = s.strip_prefix("Organization/") {
                Actor::Organisation(id.to_owned())
            } else if let Some(id) = s.strip_prefix("RelatedPerson/") {
                Actor::RelatedPerson(id.to_owned())
            } else {
                continue;
            }
        } else if let Some(id) = r.get("identifier")
            && id.get("system").and_then(Value::as_str) == Some(SECTOR_SYSTEM)
            && let Some(sector) = id
                .get("value")
                .and_then(Value::as_str)
                .and_then(Sector::from_code)
        {
            Actor::Sector(sector)
        } else {
            continue;
        };
        out.push(SharingRule {
            actor,
            sections,
            permit,
            start,
            end,
        });
    }
}

fn instant(t: Timestamp) -> String {
    let d = t.date();
    let secs = t.unix().rem_euclid(86_400);
    format!(
        "{d}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod no_rules_tests {
    use super::*;

    #[test]
    fn no_choices_is_a_valid_consent_with_no_rules() {
        let c = SharingChoices::new().to_consent("c1", "RelatedPerson/r1", "2026-01-01");
        assert!(c.get("provision").is_none(), "{c}");
        assert!(SharingChoices::from_consents(&[c]).rules.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Section::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-05-01T12:00:00Z").unwrap()
    }

    #[test]
    fn builder_output_reads_back_identically() {
        let mut choices = SharingChoices::new()
            .permit(
                Actor::Sector(Sector::Education),
                SectionSet::of(&[Allergies, Medicines]),
            )
            .deny(
                Actor::Organisation("school-1".into()),
                SectionSet::of(&[Emergency]),
            )
            .deny(Actor::RelatedPerson("dad".into()), SectionSet::ALL);
        choices.rules[1].end = Some(Timestamp::parse("2026-09-01T00:00:00Z").unwrap());
        let consent = choices.to_consent("123", "RelatedPerson/mum", "2026-05-01T09:30:00Z");
        assert_eq!(SharingChoices::from_consents(&[consent]), choices);
    }

    #[test]
    fn organisation_beats_sector_beats_default_and_deny_beats_permit() {
        let p = RegionalPolicy::default();
        let c = SharingChoices::new()
            .deny(
                Actor::Sector(Sector::Education),
                SectionSet::of(&[Emergency]),
            )
            .permit(
                Actor::Organisation("school-1".into()),
                SectionSet::of(&[Emergency, Allergies]),
            )
            .deny(
                Actor::Organisation("school-1".into()),
                SectionSet::of(&[Allergies]),
            );
        let other = c.staff_view(&p, "school-2", Sector::Education, now());
        assert!(!other.visible.contains(Emergency));
        assert!(other.visible.contains(Education));
        let one = c.staff_view(&p, "school-1", Sector::Education, now());
        assert!(one.visible.contains(Emergency));
        assert!(!one.visible.contains(Allergies));
        assert!(one.by_choice.is_empty());
    }

    #[test]
    fn skips_inactive_unknown_and_expired() {
        let consent = json!({"resourceType": "Consent", "status": "active", "provision": {"provision": [
            {"type": "permit", "actor": [{"reference": {"identifier": {"system": SECTOR_SYSTEM, "value": "leisure"}}}],
             "code": [{"coding": [{"system": SECTION_SYSTEM, "code": "not-a-section"}]}]},
            {"type": "permit", "actor": [{"reference": {"identifier": {"system": SECTOR_SYSTEM, "value": "leisure"}}}],
             "code": [{"coding": [{"system": SECTION_SYSTEM, "code": "medicines"}]}],
             "period": {"end": "2026-04-30"}},
            {"type": "permit", "actor": [{"reference": {"reference": "Practitioner/x"}}]}
        ]}});
        let mut draft = consent.clone();
        draft["status"] = json!("draft");
        draft["provision"]["provision"][1]["period"] = json!({});
        let unreadable = json!({"resourceType": "Consent", "status": "active", "provision": {"provision": [
            {"type": "permit", "actor": [{"reference": {"reference": "Organization/club"}}], "period": {"end": "soon"}},
            {"type": "deny", "actor": [{"reference": {"reference": "Organization/club"}}], "period": {"end": "soon"},
             "code": [{"coding": [{"system": SECTION_SYSTEM, "code": "about-me"}]}]}
        ]}});
        let u = SharingChoices::from_consents(&[unreadable]);
        assert_eq!(u.rules.len(), 1);
        assert!(!u.rules[0].permit && u.rules[0].end.is_none());
        let c = SharingChoices::from_consents(&[consent, draft]);
        assert_eq!(c.rules.len(), 1);
        let v = c.staff_view(&RegionalPolicy::default(), "club", Sector::Leisure, now());
        assert!(!v.visible.contains(Medicines));
    }
}
