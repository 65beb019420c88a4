//! A region — organisations, staff, families and children with their records — built
//! through the directory and onboarding services, so that every record goes through
//! `Records` and is audited as the operator who seeded it.
//!
//! One fixture for everything that needs a populated region: the integration tests
//! ([`Spec::standard`] or a suite's own [`Spec`]), the demo (`demo::load`) and the
//! benchmark's synthetic region (`passport admin seed-region`). Before this there were five
//! hand-built copies, several of which wrote to the store directly and skipped the audit.

use std::collections::BTreeMap;

use access::{Role, Section, Sector};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::Domain;
use crate::directory::{self, DirectoryError, NewFamily, NewOrganisation, NewStaff};
use crate::onboarding::{self, Child};
use crate::records::{Agent, new_version};

/// An organisation of the region; `key` names it within the [`Spec`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub key: String,
    pub name: String,
    /// In JSON, its code (`hospital-trust`, `education`…).
    #[serde(deserialize_with = "sector_code")]
    pub sector: Sector,
    #[serde(default)]
    pub ods: Option<String>,
    /// The region's own organisation (where the regional admin and commissioners work).
    #[serde(default)]
    pub regional: bool,
}

/// A member of staff at the organisation keyed `org`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staff {
    pub org: String,
    /// In JSON, its code (`clinician`, `school-staff`…).
    #[serde(deserialize_with = "role_code")]
    pub role: Role,
    pub email: String,
    pub name: String,
    /// A fixed TOTP secret (the demo's, published in docs/DEMO.md); random if `None`.
    #[serde(skip)]
    pub totp: Option<Vec<u8>>,
}

/// A family member's account (password sign-in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    pub email: String,
    pub name: String,
}

/// A family member's link to a child: `relationship` is a v3 RoleCode (`MTH`, `FTH`,
/// `FAMMEMB`…); `active` false leaves it waiting for a professional to confirm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub family: String,
    pub relationship: String,
    pub active: bool,
}

/// A child: the passport (Patient + care team), family links and records. `items` are FHIR
/// resources without their subject (set here) and with or without ids and sections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildSpec {
    pub key: String,
    /// A fixed Patient id (the demo's, which the README names); a new one if `None`.
    #[serde(default)]
    pub id: Option<String>,
    pub given: String,
    pub family: String,
    pub nhs_number: String,
    pub birth_date: String,
    /// Organisation keys; the care team names them all.
    pub care_team: Vec<String>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub items: Vec<Value>,
}

/// What to build. In JSON (`passport admin seed-region --spec`) the password is not part of
/// the file: it comes on standard input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub region: String,
    /// Every account's password.
    #[serde(skip)]
    pub password: String,
    pub organisations: Vec<Org>,
    #[serde(default)]
    pub staff: Vec<Staff>,
    #[serde(default)]
    pub families: Vec<Family>,
    #[serde(default)]
    pub children: Vec<ChildSpec>,
}

fn sector_code<'de, D: Deserializer<'de>>(d: D) -> Result<Sector, D::Error> {
    let code = String::deserialize(d)?;
    Sector::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("no sector {code:?}")))
}

fn role_code<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    let code = String::deserialize(d)?;
    Role::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("no role {code:?}")))
}

/// A member of staff as built: what a test or the demo needs to sign them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffLogin {
    pub email: String,
    pub account_id: String,
    /// In JSON, base32 (what an authenticator app takes).
    #[serde(serialize_with = "base32")]
    pub totp_secret: Vec<u8>,
}

fn base32<S: Serializer>(secret: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::auth::base32(secret))
}

/// What was built, by the keys of the [`Spec`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Region {
    /// Organisation key → Organization id.
    pub organisations: BTreeMap<String, String>,
    /// Email → sign-in.
    pub staff: BTreeMap<String, StaffLogin>,
    /// Email → account id.
    pub families: BTreeMap<String, String>,
    /// Child key → Patient id.
    pub children: BTreeMap<String, String>,
}

impl Org {
    pub fn new(key: &str, name: &str, sector: Sector, ods: &str) -> Org {
        Org {
            key: key.into(),
            name: name.into(),
            sector,
            ods: Some(ods.into()),
            regional: false,
        }
    }

    /// The region's own organisation.
    pub fn regional(mut self) -> Org {
        self.regional = true;
        self
    }
}

impl Staff {
    pub fn new(org: &str, role: Role, email: &str, name: &str) -> Staff {
        Staff {
            org: org.into(),
            role,
            email: email.into(),
            name: name.into(),
            totp: None,
        }
    }
}

impl Family {
    pub fn new(email: &str, name: &str) -> Family {
        Family {
            email: email.into(),
            name: name.into(),
        }
    }
}

impl Link {
    /// A link in force (a parent confirmed by the care team, or by invitation).
    pub fn confirmed(family: &str, relationship: &str) -> Link {
        Link {
            family: family.into(),
            relationship: relationship.into(),
            active: true,
        }
    }
}

impl Region {
    pub fn org(&self, key: &str) -> &str {
        &self.organisations[key]
    }
    pub fn staff(&self, email: &str) -> &StaffLogin {
        &self.staff[email]
    }
    pub fn child(&self, key: &str) -> &str {
        &self.children[key]
    }
}

/// Builds `spec` in `d` as the operator `by`. For an empty region: an organisation code
/// or email that exists already is refused (nothing is merged into real data).
pub async fn seed(d: &Domain, by: &Agent, spec: &Spec) -> Result<Region, DirectoryError> {
    spec.check()?;
    let mut out = Region::default();
    for o in &spec.organisations {
        let new = NewOrganisation {
            name: o.name.clone(),
            sector: o.sector,
            ods: o.ods.clone(),
            school_urn: None,
            region: spec.region.clone(),
        };
        let id = if o.regional {
            directory::create_regional_organisation(d, by, new).await?
        } else {
            directory::create_organisation(d, by, new).await?
        };
        out.organisations.insert(o.key.clone(), id);
    }
    let org_id = |key: &str| {
        out.organisations.get(key).cloned().ok_or_else(|| {
            DirectoryError::Invalid(format!("the region has no organisation {key:?}"))
        })
    };
    let mut staff = BTreeMap::new();
    for s in &spec.staff {
        let created = directory::create_staff_with_totp(
            d,
            by,
            NewStaff {
                organisation: org_id(&s.org)?,
                role: s.role,
                email: s.email.clone(),
                name: s.name.clone(),
                password: spec.password.clone(),
            },
            s.totp.clone(),
        )
        .await?;
        let login = StaffLogin {
            email: s.email.clone(),
            account_id: created.account_id,
            totp_secret: created.totp_secret.unwrap_or_default(),
        };
        staff.insert(s.email.clone(), login);
    }
    let mut families = BTreeMap::new();
    for f in &spec.families {
        let created = directory::create_family(
            d,
            by,
            NewFamily {
                email: f.email.clone(),
                name: f.name.clone(),
                password: spec.password.clone(),
            },
        )
        .await?;
        families.insert(f.email.clone(), created.account_id);
    }
    let mut children = BTreeMap::new();
    for c in &spec.children {
        let team = c
            .care_team
            .iter()
            .map(|k| org_id(k))
            .collect::<Result<Vec<_>, _>>()?;
        let child = Child {
            id: c.id.clone().unwrap_or_else(onboarding::new_id),
            nhs_number: c.nhs_number.clone(),
            given: c.given.clone(),
            family: c.family.clone(),
            birth_date: c.birth_date.clone(),
        };
        let mut writes = onboarding::new_child_writes_with_team(&child, &team)?;
        for item in &c.items {
            writes.push(new_version(about(item, &child.id), None)?);
        }
        d.records()
            .write_all(by, writes)
            .await
            .map_err(|e| DirectoryError::Store(e.error))?;
        for link in &c.links {
            let account_id = families.get(&link.family).ok_or_else(|| {
                DirectoryError::Invalid(format!("the region has no family {:?}", link.family))
            })?;
            let account = d
                .data()
                .account(account_id)
                .await?
                .ok_or_else(|| DirectoryError::NotFound(link.family.clone()))?;
            onboarding::bind(d, by, &account, &child.id, &link.relationship, link.active).await?;
        }
        children.insert(c.key.clone(), child.id);
    }
    out.staff = staff;
    out.families = families;
    out.children = children;
    Ok(out)
}

impl Spec {
    /// What can be checked before anything is written: keys that name something, unique
    /// keys and emails, roles their sectors allow, valid NHS Numbers and dates, the
    /// password's length. A spec that fails here writes nothing.
    pub fn check(&self) -> Result<(), DirectoryError> {
        let bad = |m: String| Err(DirectoryError::Invalid(m));
        directory::check_password(&self.password)?;
        let mut orgs = BTreeMap::new();
        for o in &self.organisations {
            if orgs.insert(o.key.as_str(), o).is_some() {
                return bad(format!("organisation key {:?} is used twice", o.key));
            }
        }
        let mut emails = std::collections::BTreeSet::new();
        for s in &self.staff {
            let Some(o) = orgs.get(s.org.as_str()) else {
                return bad(format!("{}: no organisation {:?}", s.email, s.org));
            };
            if !s.role.allowed_in(o.sector, o.regional) {
                return bad(format!(
                    "{}: a {} cannot work at {} ({})",
                    s.email,
                    s.role.code(),
                    o.name,
                    o.sector.code()
                ));
            }
            if !emails.insert(directory::normalise_login(&s.email)?) {
                return bad(format!("{} is used twice", s.email));
            }
        }
        for f in &self.families {
            if !emails.insert(directory::normalise_login(&f.email)?) {
                return bad(format!("{} is used twice", f.email));
            }
        }
        let mut keys = std::collections::BTreeSet::new();
        for c in &self.children {
            if !keys.insert(c.key.as_str()) {
                return bad(format!("child key {:?} is used twice", c.key));
            }
            if onboarding::parse_nhs_number(&c.nhs_number).is_none() {
                return bad(format!(
                    "{}: {:?} is not an NHS Number",
                    c.key, c.nhs_number
                ));
            }
            if onboarding::parse_birth_date(&c.birth_date).is_none() {
                return bad(format!(
                    "{}: {:?} is not a date of birth",
                    c.key, c.birth_date
                ));
            }
            if c.care_team.is_empty() {
                return bad(format!("{}: the care team names no organisation", c.key));
            }
            if let Some(k) = c.care_team.iter().find(|k| !orgs.contains_key(k.as_str())) {
                return bad(format!("{}: no organisation {k:?}", c.key));
            }
            let families: Vec<&str> = self.families.iter().map(|f| f.email.as_str()).collect();
            if let Some(l) = c
                .links
                .iter()
                .find(|l| !families.contains(&l.family.as_str()))
            {
                return bad(format!("{}: no family {:?}", c.key, l.family));
            }
            for item in &c.items {
                if let Err(e) = new_version(about(item, "x"), None) {
                    return bad(format!("{}: an item is not valid FHIR: {}", c.key, e.0));
                }
            }
        }
        Ok(())
    }
}

/// `item` about the child `patient_id`, with an id if it had none.
fn about(item: &Value, patient_id: &str) -> Value {
    let mut r = item.clone();
    let subject = json!({ "reference": format!("Patient/{patient_id}") });
    // The types whose reference to the child is `patient`; the others use `subject`.
    match r["resourceType"].as_str() {
        Some("AllergyIntolerance" | "RelatedPerson" | "Immunization") => r["patient"] = subject,
        _ => r["subject"] = subject,
    }
    if r["id"].is_null() {
        r["id"] = json!(onboarding::new_id());
    }
    r
}

/// `resource` tagged with its section (`meta.tag`).
pub fn in_section(mut resource: Value, section: Section) -> Value {
    resource["meta"] = json!({ "tag": [section.tag()] });
    resource
}

impl Spec {
    /// The region the integration tests share: "North", with a children's hospital, an
    /// emergency department, a GP practice, a school, a social-care team, a leisure club
    /// and the region's own organisation; staff in each kind of role; three family
    /// accounts; and Mia Jones (NHS 943 476 5919), in the hospital's care team, with a
    /// parent (parental responsibility), a grandparent (without) and records in four
    /// sections (the allergy `mia-allergy`, the condition `mia-condition`).
    /// `nosy@example.com` is linked to nobody.
    pub fn standard(password: &str) -> Spec {
        let (org, staff, family) = (Org::new, Staff::new, Family::new);
        let region_org = org(
            "region",
            "North Children's Passport",
            Sector::CommunityHealth,
            "QNN",
        )
        .regional();
        Spec {
            region: "North".into(),
            password: password.into(),
            organisations: vec![
                org(
                    "hospital",
                    "Riverside Children's Hospital",
                    Sector::HospitalTrust,
                    "RXX",
                ),
                org(
                    "er",
                    "Northgate Emergency Department",
                    Sector::HospitalTrust,
                    "RYY",
                ),
                org("gp", "Hilltop Surgery", Sector::GpPractice, "GPX1"),
                org("school", "Hill Primary", Sector::Education, "SCH1"),
                org(
                    "social-care",
                    "North Children's Services",
                    Sector::SocialCare,
                    "LA1",
                ),
                org("club", "Riverside Swimming Club", Sector::Leisure, "CLUB1"),
                region_org,
            ],
            staff: vec![
                staff(
                    "region",
                    Role::RegionalAdmin,
                    "rae@example.nhs.uk",
                    "Rae Regional",
                ),
                staff(
                    "hospital",
                    Role::OrganisationAdmin,
                    "oli@example.nhs.uk",
                    "Oli Admin",
                ),
                staff(
                    "hospital",
                    Role::Clinician,
                    "cara@example.nhs.uk",
                    "Cara Carer",
                ),
                staff("er", Role::Clinician, "erin@example.nhs.uk", "Erin Medic"),
                staff(
                    "er",
                    Role::PrivacyOfficer,
                    "pat@example.nhs.uk",
                    "Pat Privacy",
                ),
                staff("gp", Role::Clinician, "gina@example.nhs.uk", "Gina GP"),
                staff(
                    "school",
                    Role::SchoolStaff,
                    "tom@example.sch.uk",
                    "Tom Teacher",
                ),
                staff(
                    "social-care",
                    Role::SocialWorker,
                    "sol@example.gov.uk",
                    "Sol Social",
                ),
                staff(
                    "club",
                    Role::LeisureStaff,
                    "cody@example.org.uk",
                    "Cody Coach",
                ),
            ],
            families: vec![
                family("sam@example.com", "Sam Jones"),
                family("gran@example.com", "Gran Jones"),
                family("nosy@example.com", "Nosy Parker"),
            ],
            children: vec![ChildSpec {
                key: "mia".into(),
                id: None,
                given: "Mia".into(),
                family: "Jones".into(),
                nhs_number: "9434765919".into(),
                birth_date: "2019-03-27".into(),
                care_team: vec!["hospital".into()],
                links: vec![
                    Link::confirmed("sam@example.com", "MTH"),
                    Link::confirmed("gran@example.com", "FAMMEMB"),
                ],
                items: vec![
                    in_section(
                        json!({ "resourceType": "AllergyIntolerance", "id": "mia-allergy", "code": { "text": "Peanut allergy" } }),
                        Section::Allergies,
                    ),
                    in_section(
                        json!({ "resourceType": "Condition", "id": "mia-condition", "code": { "text": "Asthma diagnosis" } }),
                        Section::Conditions,
                    ),
                    in_section(
                        json!({ "resourceType": "MedicationStatement", "status": "active", "medicationCodeableConcept": { "text": "Salbutamol inhaler" } }),
                        Section::Medicines,
                    ),
                    in_section(
                        json!({ "resourceType": "MedicationStatement", "status": "completed", "medicationCodeableConcept": { "text": "Amoxicillin course" } }),
                        Section::Medicines,
                    ),
                ],
            }],
        }
    }
}
