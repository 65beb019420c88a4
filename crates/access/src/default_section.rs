//! Every item has a section (docs/SECURITY.md §5, issue 9). An item written without any
//! section tag gets one at write time, recorded in `meta.tag` like any other, so the
//! decision still reads only the tag:
//!
//! - an **update** keeps the sections of the version it replaces;
//! - a **create** (or an update of an item that had none) gets its type's default
//!   ([`default_sections`]).
//!
//! | type | default section |
//! |---|---|
//! | AllergyIntolerance | allergies |
//! | MedicationStatement, MedicationRequest, MedicationAdministration, MedicationDispense | medicines |
//! | Condition | conditions |
//! | CarePlan with an emergency category | emergency |
//! | any other CarePlan | conditions (a plan of care is health information; tag it to share it wider) |
//! | Flag | conditions (an alert can be about anything, a risk as much as a reasonable adjustment: kept among health, social care and emergency services unless tagged) |
//! | Patient | about me |
//! | RelatedPerson | contacts |
//!
//! Other types get no default: their content decides their section (an Observation can
//! be "about me" or "education"), so until they are tagged they stay under the strict rule
//! for untagged items. Types that belong to no child (organisations, staff, medicines…)
//! and the family's sharing choices (Consent, decided by their own rule) get none.
//!
//! Pure, like the rest of this crate: the write paths (the FHIR API's, the pages', the
//! demo loader and the start-up step for stored items) call [`ensure_sections`].

use serde_json::{Map, Value};

use crate::section::{SECTION_SYSTEM, Section, SectionSet};

/// The section an item of `resource_type` gets when written without any (see the table
/// above); empty when its type has no default.
pub fn default_sections(resource_type: &str, resource: &Value) -> SectionSet {
    use Section::*;
    let one = |s| SectionSet::of(&[s]);
    match resource_type {
        "AllergyIntolerance" => one(Allergies),
        "MedicationStatement"
        | "MedicationRequest"
        | "MedicationAdministration"
        | "MedicationDispense" => one(Medicines),
        "Condition" | "Flag" => one(Conditions),
        "CarePlan" if emergency_care_plan(resource) => one(Emergency),
        "CarePlan" => one(Conditions),
        "Patient" => one(AboutMe),
        "RelatedPerson" => one(Contacts),
        _ => SectionSet::EMPTY,
    }
}

/// A CarePlan whose `category` says it is an emergency plan: a coding `emergency` in the
/// section code system, or a category whose text or coding display mentions "emergency".
fn emergency_care_plan(resource: &Value) -> bool {
    let mentions = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.to_ascii_lowercase().contains("emergency"))
    };
    resource
        .get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            mentions(c.get("text"))
                || c.get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|coding| {
                        (coding.get("system").and_then(Value::as_str) == Some(SECTION_SYSTEM)
                            && coding.get("code").and_then(Value::as_str)
                                == Some(Section::Emergency.code()))
                            || mentions(coding.get("display"))
                    })
        })
}

/// Gives `resource` its sections if it carries none: those of `previous` (the version it
/// replaces) if that had any, else its type's default. Returns the sections added (empty
/// when it had some already, or its type has no default).
pub fn ensure_sections(resource: &mut Map<String, Value>, previous: Option<&Value>) -> SectionSet {
    let current = Value::Object(std::mem::take(resource));
    let had = Section::from_resource_meta(&current);
    let Value::Object(map) = current else {
        unreachable!("built from a map")
    };
    *resource = map;
    if !had.is_empty() {
        return SectionSet::EMPTY;
    }
    let kept = previous
        .map(Section::from_resource_meta)
        .unwrap_or(SectionSet::EMPTY);
    let add = if kept.is_empty() {
        let ty = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        default_sections(&ty, &Value::Object(resource.clone()))
    } else {
        kept
    };
    if add.is_empty() {
        return add;
    }
    let meta = resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let tags = meta
        .as_object_mut()
        .expect("an object")
        .entry("tag")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !tags.is_array() {
        *tags = Value::Array(Vec::new());
    }
    let list = tags.as_array_mut().expect("an array");
    for s in add.iter() {
        list.push(s.tag());
    }
    add
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_by_type() {
        use Section::*;
        let d = |t: &str, v: Value| default_sections(t, &v);
        assert_eq!(
            d("AllergyIntolerance", json!({})),
            SectionSet::of(&[Allergies])
        );
        assert_eq!(
            d("MedicationStatement", json!({})),
            SectionSet::of(&[Medicines])
        );
        assert_eq!(
            d("MedicationRequest", json!({})),
            SectionSet::of(&[Medicines])
        );
        assert_eq!(d("Condition", json!({})), SectionSet::of(&[Conditions]));
        assert_eq!(d("Flag", json!({})), SectionSet::of(&[Conditions]));
        assert_eq!(d("Patient", json!({})), SectionSet::of(&[AboutMe]));
        assert_eq!(d("RelatedPerson", json!({})), SectionSet::of(&[Contacts]));
        assert_eq!(d("CarePlan", json!({})), SectionSet::of(&[Conditions]));
        for emergency in [
            json!({"category": [{"text": "Emergency protocol"}]}),
            json!({"category": [{"coding": [{"system": SECTION_SYSTEM, "code": "emergency"}]}]}),
            json!({"category": [{"coding": [{"system": "http://x", "code": "1", "display": "Emergency care plan"}]}]}),
        ] {
            assert_eq!(d("CarePlan", emergency), SectionSet::of(&[Emergency]));
        }
        for none in [
            "Observation",
            "Organization",
            "Practitioner",
            "Medication",
            "Consent",
            "Person",
        ] {
            assert!(d(none, json!({})).is_empty(), "{none}");
        }
    }

    #[test]
    fn tags_only_what_has_none_and_keeps_the_previous_sections() {
        // Untagged create: the default, beside other tags.
        let mut m = map(json!({"resourceType": "AllergyIntolerance",
            "meta": {"tag": [{"system": "http://other", "code": "x"}]}}));
        assert_eq!(
            ensure_sections(&mut m, None),
            SectionSet::of(&[Section::Allergies])
        );
        assert_eq!(
            Value::Object(m.clone())["meta"]["tag"],
            json!([{"system": "http://other", "code": "x"}, Section::Allergies.tag()])
        );
        // Already tagged: left alone.
        let before = m.clone();
        assert!(ensure_sections(&mut m, None).is_empty());
        assert_eq!(m, before);
        // Update without tags: the previous version's sections, not the default.
        let previous = json!({"resourceType": "AllergyIntolerance",
            "meta": {"tag": [Section::Education.tag(), Section::Emergency.tag()]}});
        let mut m = map(json!({"resourceType": "AllergyIntolerance"}));
        assert_eq!(
            ensure_sections(&mut m, Some(&previous)),
            SectionSet::of(&[Section::Education, Section::Emergency])
        );
        assert_eq!(
            Section::from_resource_meta(&Value::Object(m)),
            SectionSet::of(&[Section::Education, Section::Emergency])
        );
        // A previous version without sections: the default.
        let mut m = map(json!({"resourceType": "Patient"}));
        let untagged = json!({"resourceType": "Patient"});
        assert_eq!(
            ensure_sections(&mut m, Some(&untagged)),
            SectionSet::of(&[Section::AboutMe])
        );
        // No default: nothing added, no empty meta left behind.
        let mut m = map(json!({"resourceType": "Observation"}));
        assert!(ensure_sections(&mut m, None).is_empty());
        assert!(m.get("meta").is_none());
    }
}
