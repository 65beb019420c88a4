//! Demo data for a first look at a fresh install: a small fictitious region (organisations
//! in every sector, staff in each kind of role, two families) and two entirely fictitious
//! children with a few records each, built by the shared region fixture (`region::seed`)
//! through the one write path, audited as the operator. Loaded once: a database that holds
//! the demo region already is left as it is. Codes come from
//! `testdata/clinical/terminology.csv`. Every record carries its section explicitly
//! (`meta.tag`, docs/SECURITY.md §5): the demo is what people look at first, and a record
//! without a section is seen by fewer people than it should be (issue 9).
//!
//! Sign-ins get a random password and TOTP secret when the region is made, shown once
//! (`Loaded::sign_ins`); nothing guessable is ever stored (docs/SECURITY.md).

use access::{Role, Section, Sector};
use serde_json::{Value, json};

use crate::Domain;
use crate::directory::{self, DirectoryError};
use crate::records::Agent;
use crate::region::{self, ChildSpec, Family, Link, Org, Spec, Staff, in_section};

const SCT: &str = "http://snomed.info/sct";
const DMD: &str = "https://dmd.nhs.uk";

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display })
}

/// The demo region's own organisation code: its presence means the demo is loaded.
const REGION_ODS: &str = "DEMO0";

/// The demo region.
fn spec(password: &str) -> Spec {
    let (org, staff, family, parent) = (Org::new, Staff::new, Family::new, Link::confirmed);
    let region_org = org(
        "region",
        "Demo Region Children's Passport",
        Sector::CommunityHealth,
        REGION_ODS,
    )
    .regional();
    // (id, NHS Number from the test range 999…, given, family, birth date, condition, parent)
    let children = [
        (
            "demo-child-1",
            "9990000018",
            "Amira",
            "Demo",
            "2015-04-12",
            ("84757009", "Epilepsy"),
            parent("sam.demo@example.com", "MTH"),
        ),
        (
            "demo-child-2",
            "9990000026",
            "Leo",
            "Sample",
            "2018-09-30",
            ("233678006", "Childhood asthma"),
            parent("alex.sample@example.com", "FTH"),
        ),
    ];
    Spec {
        region: "Demo".into(),
        password: password.into(),
        organisations: vec![
            region_org,
            org(
                "hospital",
                "Demo Children's Hospital",
                Sector::HospitalTrust,
                "DEMO1",
            ),
            org("gp", "Demo Surgery", Sector::GpPractice, "DEMO2"),
            org(
                "community",
                "Demo Community Nursing",
                Sector::CommunityHealth,
                "DEMO3",
            ),
            org("school", "Demo Primary School", Sector::Education, "DEMO4"),
            org(
                "social-care",
                "Demo Children's Services",
                Sector::SocialCare,
                "DEMO5",
            ),
            org("club", "Demo Swimming Club", Sector::Leisure, "DEMO6"),
            org(
                "ambulance",
                "Demo Ambulance Service",
                Sector::EmergencyServices,
                "DEMO7",
            ),
        ],
        staff: vec![
            staff(
                "region",
                Role::RegionalAdmin,
                "regional.admin@demo.example",
                "Rae Regional",
            ),
            staff(
                "region",
                Role::Commissioner,
                "commissioner@demo.example",
                "Cam Commissioner",
            ),
            staff(
                "hospital",
                Role::OrganisationAdmin,
                "hospital.admin@demo.example",
                "Oli Admin",
            ),
            staff(
                "hospital",
                Role::Clinician,
                "clinician@demo.example",
                "Dr Cara Clinician",
            ),
            staff("hospital", Role::Nurse, "nurse@demo.example", "Nia Nurse"),
            staff(
                "hospital",
                Role::PrivacyOfficer,
                "privacy@demo.example",
                "Pat Privacy",
            ),
            staff("gp", Role::Clinician, "gp@demo.example", "Dr Gina GP"),
            staff(
                "ambulance",
                Role::Clinician,
                "paramedic@demo.example",
                "Perry Paramedic",
            ),
            staff(
                "school",
                Role::SchoolStaff,
                "teacher@demo.example",
                "Tom Teacher",
            ),
            staff(
                "social-care",
                Role::SocialWorker,
                "social.worker@demo.example",
                "Sol Social",
            ),
            staff(
                "club",
                Role::LeisureStaff,
                "coach@demo.example",
                "Cody Coach",
            ),
        ],
        families: vec![
            family("sam.demo@example.com", "Sam Demo"),
            family("alex.sample@example.com", "Alex Sample"),
        ],
        children: children
            .into_iter()
            .map(
                |(id, nhs, given, surname, dob, condition, link)| ChildSpec {
                    key: id.into(),
                    id: Some(id.into()),
                    given: given.into(),
                    family: surname.into(),
                    nhs_number: nhs.into(),
                    birth_date: dob.into(),
                    care_team: vec!["hospital".into(), "gp".into(), "school".into()],
                    links: vec![link],
                    items: items(id, surname, condition),
                },
            )
            .collect(),
    }
}

/// A child's records (the fixture sets their subject).
fn items(id: &str, surname: &str, (code, display): (&str, &str)) -> Vec<Value> {
    vec![
        in_section(
            json!({
                "resourceType": "Condition", "id": format!("{id}-condition"),
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "code": concept(SCT, code, display),
            }),
            Section::Conditions,
        ),
        in_section(
            json!({
                "resourceType": "AllergyIntolerance", "id": format!("{id}-allergy"),
                "code": concept(SCT, "91935009", "Allergy to peanut"),
                "reaction": [{ "substance": concept(SCT, "762952008", "Peanut"),
                               "manifestation": [{ "text": "Swelling of lips and face" }] }],
            }),
            Section::Allergies,
        ),
        in_section(
            json!({
                "resourceType": "MedicationStatement", "id": format!("{id}-medicine"),
                "status": "active",
                "medicationCodeableConcept": concept(DMD, "65502005", "Adrenaline"),
                "dosage": [{ "text": "Auto-injector if anaphylaxis; call 999" }],
            }),
            Section::Medicines,
        ),
        in_section(
            json!({
                "resourceType": "RelatedPerson", "id": format!("{id}-parent"),
                "relationship": [concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "PRN", "parent")],
                "name": [{ "family": surname, "given": ["Sam"] }],
                "telecom": [{ "system": "phone", "value": "07700 900000", "use": "mobile" }],
            }),
            Section::Contacts,
        ),
    ]
}

/// One demo sign-in, shown once when the demo region is made.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub who: String,
    pub email: String,
    pub password: String,
    /// Staff: the `otpauth://` URI for an authenticator app.
    pub totp_uri: Option<String>,
}

/// Loads the demo region unless it is there already, as the operator (audited). Returns
/// the sign-ins when it was made now, `None` when it was there.
pub async fn load(d: &Domain) -> Result<Option<Vec<SignIn>>, DirectoryError> {
    match directory::find_organisation(d, REGION_ODS).await {
        Ok(_) => return Ok(None),
        Err(DirectoryError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let password = crate::auth::random_token();
    let spec = spec(&password);
    let built = region::seed(d, &Agent::operator("demo data"), &spec).await?;
    let mut out = Vec::new();
    for s in &spec.staff {
        let login = built.staff(&s.email);
        out.push(SignIn {
            who: format!("{} ({})", s.name, s.role.code()),
            email: s.email.clone(),
            password: password.clone(),
            totp_uri: Some(crate::auth::totp_uri(&login.totp_secret, &s.email)),
        });
    }
    for f in &spec.families {
        out.push(SignIn {
            who: format!("{} (family)", f.name),
            email: f.email.clone(),
            password: password.clone(),
            totp_uri: None,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_demo_record_has_its_section() {
        for child in super::spec("unused").children {
            for r in child.items {
                let ty = r["resourceType"].as_str().unwrap();
                let tagged = access::Section::from_resource_meta(&r);
                assert!(!tagged.is_empty(), "{ty} {} has no section", r["id"]);
                assert_eq!(tagged, access::default_sections(ty, &r), "{ty}");
            }
        }
    }
}
