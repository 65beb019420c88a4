//! Hidden addresses. When a child's address is hidden (for example a child placed away
//! from a parent who is a risk), it is removed before anything is shown to anyone outside
//! the child's care team — including family members and break-glass users.
//!
//! A Patient is marked with the extension [`ADDRESS_HIDDEN_EXTENSION`]
//! (`valueBoolean: true`); callers copy that into [`ChildFacts::address_hidden`] with
//! [`address_hidden`].

use serde_json::{Value, json};

use crate::child::ChildFacts;
use crate::subject::{Identity, Subject};

/// Extension on Patient: `{"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}`.
pub const ADDRESS_HIDDEN_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/address-hidden";
/// The `meta.security` coding added to a redacted copy (HL7's "redacted" marker).
pub const REDACTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Whether a Patient resource carries the hidden-address extension.
pub fn address_hidden(patient: &Value) -> bool {
    patient
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|exts| {
            exts.iter().any(|e| {
                e.get("url").and_then(Value::as_str) == Some(ADDRESS_HIDDEN_EXTENSION)
                    && e.get("valueBoolean").and_then(Value::as_bool) == Some(true)
            })
        })
}

/// Whether this subject may see the child's hidden address: members of the child's care
/// team (people, or backend clients of a care-team organisation), and trusted regional
/// integrations (which carry the record between systems) only.
pub fn sees_hidden_address(subject: &Subject, child: &ChildFacts) -> bool {
    match &subject.identity {
        Identity::Staff(s) => {
            s.role.sees_child_records()
                && child.in_care_team(Some(&s.practitioner), Some(&s.organisation))
        }
        Identity::System(c) => c.regional || child.in_care_team(None, c.organisation.as_deref()),
        _ => false,
    }
}

/// A copy of `resource` with addresses removed, or `None` if nothing needs removing (show
/// it as it is). Removes `Patient.address`, `Patient.contact[].address` and
/// `RelatedPerson.address` (family members usually share the child's address) when the
/// child's address is hidden — or the Patient itself carries the marker — and the viewer
/// is outside the care team. The copy is marked `REDACTED` in `meta.security`.
pub fn redact(resource: &Value, subject: &Subject, child: &ChildFacts) -> Option<Value> {
    let ty = resource.get("resourceType").and_then(Value::as_str)?;
    if !(child.address_hidden || address_hidden(resource)) || sees_hidden_address(subject, child) {
        return None;
    }
    let mut out = resource.clone();
    let obj = out.as_object_mut()?;
    let mut removed = false;
    match ty {
        "Patient" => {
            removed |= obj.remove("address").is_some();
            if let Some(contacts) = obj.get_mut("contact").and_then(Value::as_array_mut) {
                for c in contacts {
                    removed |= c
                        .as_object_mut()
                        .is_some_and(|c| c.remove("address").is_some());
                }
            }
        }
        "RelatedPerson" => removed |= obj.remove("address").is_some(),
        _ => {}
    }
    if !removed {
        return None;
    }
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let security = meta.entry("security").or_insert_with(|| json!([]));
        if let Some(list) = security.as_array_mut() {
            list.push(json!({"system": REDACTED_SYSTEM, "code": "REDACTED"}));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::{CareTeamMember, FamilyLink, FamilyRole};
    use crate::label::LabelSet;
    use crate::subject::{Role, Sector, Staff};

    fn staff(practitioner: &str, org: &str) -> Subject {
        Subject::session(Identity::Staff(Staff {
            practitioner: practitioner.into(),
            role: Role::Clinician,
            organisation: org.into(),
            sector: Sector::HospitalTrust,
            region: "r".into(),
            cleared: LabelSet::EMPTY,
        }))
    }

    #[test]
    fn hides_addresses_outside_the_care_team() {
        let patient = json!({"resourceType": "Patient", "id": "p1",
            "extension": [{"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}],
            "address": [{"line": ["1 Secret Street"]}],
            "contact": [{"name": {"text": "Gran"}, "address": {"line": ["1 Secret Street"]}}]});
        let mut child = ChildFacts::new("p1");
        child.address_hidden = address_hidden(&patient);
        child
            .care_team
            .push(CareTeamMember::Organisation("trust".into()));
        child
            .family
            .push(FamilyLink::new("mum", "rp-mum", FamilyRole::Parent, true));
        assert!(child.address_hidden);

        assert_eq!(redact(&patient, &staff("dr", "trust"), &child), None);
        for viewer in [
            staff("dr", "elsewhere"),
            Subject::session(Identity::Family {
                person: "mum".into(),
            }),
        ] {
            let r = redact(&patient, &viewer, &child).expect("redacted");
            assert!(r.get("address").is_none());
            assert!(r["contact"][0].get("address").is_none());
            assert_eq!(r["contact"][0]["name"]["text"], "Gran");
            assert_eq!(r["meta"]["security"][0]["code"], "REDACTED");
        }
        let rp = json!({"resourceType": "RelatedPerson", "address": [{"line": ["x"]}]});
        assert!(
            redact(&rp, &staff("dr", "elsewhere"), &child)
                .unwrap()
                .get("address")
                .is_none()
        );
        let cond = json!({"resourceType": "Condition"});
        assert_eq!(redact(&cond, &staff("dr", "elsewhere"), &child), None);
        child.address_hidden = false;
        assert_eq!(redact(&rp, &staff("dr", "elsewhere"), &child), None);
    }
}
