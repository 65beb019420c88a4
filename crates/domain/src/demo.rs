//! Demo data for a first look at a fresh install: two entirely fictitious children with a
//! few records each. Loaded through the same validation as the API, with fixed ids so that
//! loading twice changes nothing. Codes come from `testdata/clinical/terminology.csv`.
//! Every record carries its section explicitly (`meta.tag`, docs/SECURITY.md §5): the
//! demo is what people look at first, and a record without a section is seen by fewer
//! people than it should be (an allergy hidden from an ambulance crew, issue 9).

use passport_store::StoreError;
use serde_json::{Value, json};

use crate::records::{Agent, Records, new_version};

const SCT: &str = "http://snomed.info/sct";
const DMD: &str = "https://dmd.nhs.uk";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display })
}

/// `{"tag": [section]}` for `meta`.
fn section(s: access::Section) -> Value {
    json!({ "tag": [s.tag()] })
}

fn resources() -> Vec<Value> {
    use access::Section::{AboutMe, Allergies, Conditions, Contacts, Medicines};
    let mut out = Vec::new();
    // (id, NHS Number from the test range 999…, given, family, birth date, gender, condition)
    let children = [
        (
            "demo-child-1",
            "9990000018",
            "Amira",
            "Demo",
            "2015-04-12",
            "female",
            ("84757009", "Epilepsy"),
        ),
        (
            "demo-child-2",
            "9990000026",
            "Leo",
            "Sample",
            "2018-09-30",
            "male",
            ("233678006", "Childhood asthma"),
        ),
    ];
    for (id, nhs, given, family, dob, gender, (code, display)) in children {
        let subject = json!({ "reference": format!("Patient/{id}") });
        out.push(json!({
            "resourceType": "Patient", "id": id, "meta": section(AboutMe),
            "identifier": [{ "system": NHS, "value": nhs }],
            "name": [{ "use": "official", "family": family, "given": [given] }],
            "gender": gender, "birthDate": dob,
        }));
        out.push(json!({
            "resourceType": "Condition", "id": format!("{id}-condition"), "meta": section(Conditions),
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            "code": concept(SCT, code, display),
            "subject": subject,
        }));
        out.push(json!({
            "resourceType": "AllergyIntolerance", "id": format!("{id}-allergy"), "meta": section(Allergies),
            "code": concept(SCT, "91935009", "Allergy to peanut"),
            "patient": subject,
            "reaction": [{ "substance": concept(SCT, "762952008", "Peanut"),
                           "manifestation": [{ "text": "Swelling of lips and face" }] }],
        }));
        out.push(json!({
            "resourceType": "MedicationStatement", "id": format!("{id}-medicine"), "meta": section(Medicines),
            "status": "active",
            "medicationCodeableConcept": concept(DMD, "65502005", "Adrenaline"),
            "subject": subject,
            "dosage": [{ "text": "Auto-injector if anaphylaxis; call 999" }],
        }));
        out.push(json!({
            "resourceType": "RelatedPerson", "id": format!("{id}-parent"), "meta": section(Contacts),
            "patient": subject,
            "relationship": [concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "PRN", "parent")],
            "name": [{ "family": family, "given": ["Sam"] }],
            "telecom": [{ "system": "phone", "value": "07700 900000", "use": "mobile" }],
        }));
    }
    out
}

/// Loads the demo records that are not there yet, as the operator (audited). Returns how
/// many were added.
pub async fn load(records: &Records<'_>) -> Result<usize, StoreError> {
    let agent = Agent::operator("demo data");
    let mut added = 0;
    for resource in resources() {
        let write = new_version(resource, None)
            .unwrap_or_else(|e| panic!("demo data must be valid FHIR: {e}"));
        match records.write(&agent, write).await {
            Ok(_) => added += 1,
            Err(StoreError::VersionConflict { .. }) => {} // already loaded
            Err(e) => return Err(e),
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_demo_record_has_its_section() {
        for r in super::resources() {
            let ty = r["resourceType"].as_str().unwrap();
            let tagged = access::Section::from_resource_meta(&r);
            assert!(!tagged.is_empty(), "{ty} {} has no section", r["id"]);
            assert_eq!(tagged, access::default_sections(ty, &r), "{ty}");
        }
    }
}
