//! Hidden addresses. When a child's address is hidden (for example a child placed away
//! from a parent who is a risk), it is removed before anything is shown to anyone outside
//! the child's care team — including family members and break-glass users.
//!
//! A Patient is marked with the extension [`ADDRESS_HIDDEN_EXTENSION`]
//! (`valueBoolean: true`) on the Patient itself (`Patient.extension`): it hides every
//! address of the child. Callers copy that into [`ChildFacts::address_hidden`] with
//! [`address_hidden`].
//!
//! The same extension on one address (`Patient.address.extension`, which an earlier
//! version of docs/DATA-MODEL.md described) is moved to the Patient on every write
//! ([`normalise_hidden_address`]) and by a start-up step for data stored before; it is
//! also honoured when reading (an old version in a history), so no form of the marker
//! is ever ignored.

use serde_json::{Value, json};

use crate::child::ChildFacts;
use crate::subject::{Identity, Subject};

/// Extension on Patient: `{"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}`.
pub const ADDRESS_HIDDEN_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/address-hidden";
/// The `meta.security` coding added to a redacted copy (HL7's "redacted" marker).
pub const REDACTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Whether `extensions` (a JSON `extension` list) holds the marker set to true.
fn marked(extensions: Option<&Value>) -> bool {
    extensions.and_then(Value::as_array).is_some_and(|exts| {
        exts.iter().any(|e| {
            e.get("url").and_then(Value::as_str) == Some(ADDRESS_HIDDEN_EXTENSION)
                && e.get("valueBoolean").and_then(Value::as_bool) == Some(true)
        })
    })
}

/// Whether a Patient resource carries the hidden-address marker: on the Patient, or (the
/// older form) on any of its addresses.
pub fn address_hidden(patient: &Value) -> bool {
    marked(patient.get("extension"))
        || patient
            .get("address")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|addr| marked(addr.get("extension"))))
}

/// Whether a Patient carries the marker on one of its addresses (the form
/// [`normalise_hidden_address`] moves).
pub fn has_per_address_marker(patient: &Value) -> bool {
    patient
        .get("address")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|addr| {
                addr.get("extension")
                    .and_then(Value::as_array)
                    .is_some_and(|exts| {
                        exts.iter().any(|e| {
                            e.get("url").and_then(Value::as_str) == Some(ADDRESS_HIDDEN_EXTENSION)
                        })
                    })
            })
        })
}

/// Moves a hidden-address marker from a Patient's addresses to the Patient itself, where
/// it hides every address of the child. A marker set to true on any address sets the
/// Patient's (replacing a `false` one there); markers on addresses are removed either way,
/// and an address's `extension` list left empty is removed. Returns whether anything
/// changed. Leaves anything that is not a Patient alone.
pub fn normalise_hidden_address(resource: &mut serde_json::Map<String, Value>) -> bool {
    if resource.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return false;
    }
    let mut moved = false;
    let mut hide = false;
    if let Some(addresses) = resource.get_mut("address").and_then(Value::as_array_mut) {
        for addr in addresses.iter_mut().filter_map(Value::as_object_mut) {
            let Some(exts) = addr.get_mut("extension").and_then(Value::as_array_mut) else {
                continue;
            };
            let before = exts.len();
            hide |= marked(Some(&Value::Array(exts.clone())));
            exts.retain(|e| e.get("url").and_then(Value::as_str) != Some(ADDRESS_HIDDEN_EXTENSION));
            moved |= exts.len() != before;
            if exts.is_empty() {
                addr.remove("extension");
            }
        }
    }
    if hide && !marked(resource.get("extension")) {
        let exts = resource
            .entry("extension")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = exts.as_array_mut() {
            list.retain(|e| e.get("url").and_then(Value::as_str) != Some(ADDRESS_HIDDEN_EXTENSION));
            list.push(json!({"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}));
        } else {
            *exts = json!([{"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}]);
        }
    }
    moved
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
                for c in contacts.iter_mut() {
                    removed |= c
                        .as_object_mut()
                        .is_some_and(|c| c.remove("address").is_some());
                }
                // A contact that held only an address is left out, not shown as `{}`
                // (FHIR JSON has no empty objects or arrays).
                contacts.retain(|c| c.as_object().is_none_or(|c| !c.is_empty()));
                if contacts.is_empty() {
                    obj.remove("contact");
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
        // A contact that held only an address goes; no empty object or array is left.
        let only = json!({"resourceType": "Patient", "id": "p1",
            "contact": [{"address": {"line": ["1 Secret Street"]}}]});
        let r = redact(&only, &staff("dr", "elsewhere"), &child).expect("redacted");
        assert!(r.get("contact").is_none(), "{r}");
        let two = json!({"resourceType": "Patient", "id": "p1",
            "contact": [{"address": {"line": ["x"]}}, {"name": {"text": "Gran"}}]});
        let r = redact(&two, &staff("dr", "elsewhere"), &child).expect("redacted");
        assert_eq!(r["contact"], json!([{"name": {"text": "Gran"}}]));
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

    #[test]
    fn a_marker_on_one_address_hides_them_all_and_moves_to_the_patient() {
        let mut patient = json!({"resourceType": "Patient", "id": "p1",
        "extension": [{"url": "https://example.org/other", "valueBoolean": true},
                      {"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": false}],
        "address": [
            {"line": ["1 Secret Street"], "extension": [
                {"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}]},
            {"line": ["2 Other Street"], "extension": [
                {"url": "https://example.org/keep", "valueString": "x"}]}
        ]});
        // Honoured as it is (an old version read back)...
        assert!(address_hidden(&patient));
        let mut child = ChildFacts::new("p1");
        child.address_hidden = address_hidden(&patient);
        let r = redact(&patient, &staff("dr", "elsewhere"), &child).expect("redacted");
        assert!(r.get("address").is_none());
        // ...and moved to the Patient on write.
        let Value::Object(map) = &mut patient else {
            unreachable!()
        };
        assert!(has_per_address_marker(&Value::Object(map.clone())));
        assert!(normalise_hidden_address(map));
        let v = Value::Object(map.clone());
        assert!(!has_per_address_marker(&v));
        assert!(address_hidden(&v));
        assert_eq!(
            v["extension"],
            json!([{"url": "https://example.org/other", "valueBoolean": true},
                   {"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}])
        );
        assert!(v["address"][0].get("extension").is_none());
        assert_eq!(
            v["address"][1]["extension"][0]["url"],
            "https://example.org/keep"
        );
        assert!(!normalise_hidden_address(map), "idempotent");

        // A false marker on an address is dropped without hiding anything.
        let mut open = json!({"resourceType": "Patient", "address": [{"line": ["x"],
            "extension": [{"url": ADDRESS_HIDDEN_EXTENSION, "valueBoolean": false}]}]});
        let Value::Object(map) = &mut open else {
            unreachable!()
        };
        assert!(normalise_hidden_address(map));
        assert!(!address_hidden(&Value::Object(map.clone())));
        assert!(map.get("extension").is_none());
    }
}
