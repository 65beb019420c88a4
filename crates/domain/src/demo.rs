//! The demo region (`passport serve --demo`, what `scripts/serve` runs): a synthetic region
//! that shows the service in one command. Loaded once; a database that holds it already
//! is left as it is, and **a database holding anything else is refused** (no demo account
//! is ever added to real data).
//!
//! - Organisations in every sector, and the region's own.
//! - One member of staff for every role-and-sector pair the service allows
//!   (`access::Role::allowed_in`), and one family member of each kind (a parent with
//!   parental responsibility, a foster carer, a relative without it, a parent whose link
//!   waits for the care team).
//! - [`CHILDREN`] children with filled passports across every condition template
//!   (epilepsy, asthma, type 1 diabetes, anaphylaxis, adrenal insufficiency, complex
//!   needs), written **through the passport's own forms as the people who would write
//!   them** (`passport::save`): the clinician enters the protocol, doses and escalation
//!   contacts; families add allergies, what matters and how the child communicates, which
//!   wait for review until a clinician checks some of them (`passport::check`).
//! - Invitations in each state, a card link, a break-glass event.
//!
//! Synthetic only: names are invented, NHS Numbers are from the test range (999…).
//! Every demo sign-in ends in [`DEMO_DOMAIN`], shares [`DEMO_PASSWORD`] and (staff) a TOTP
//! secret derived from the login ([`totp_secret`]), all published in docs/DEMO.md — so they
//! work **only on a server started with `--demo`** (`is_demo_login`, checked at sign-in).

use std::collections::HashMap;

use access::{Role, Sector};
use sha2::{Digest, Sha256};

use crate::Domain;
use crate::directory::{self, DirectoryError};
use crate::guard::Caller;
use crate::passport::{self, Target, forms};
use crate::records::Agent;
use crate::region::{self, ChildSpec, Family, Link, Org, Region, Spec, Staff};

/// Every demo login ends with this (a reserved example domain, RFC 2606).
pub const DEMO_DOMAIN: &str = "@demo.example";
/// Every demo account's password (published: demo accounts work only in demo mode).
pub const DEMO_PASSWORD: &str = "demo-passport-2026";
/// How many children the demo region holds.
pub const CHILDREN: usize = 50;
/// The demo region's own organisation code: its presence means the demo is loaded.
const REGION_ODS: &str = "DEMO0";

/// Whether a login is a demo sign-in (refused unless the server runs with `--demo`).
pub fn is_demo_login(login: &str) -> bool {
    login.to_ascii_lowercase().ends_with(DEMO_DOMAIN)
}

/// A demo account's TOTP secret: derived from its login, so docs/DEMO.md can list it.
pub fn totp_secret(login: &str) -> Vec<u8> {
    Sha256::digest(format!("passport demo TOTP {login}").as_bytes())[..20].to_vec()
}

/// The demo's organisations: (key, name, sector, ODS code).
const ORGS: [(&str, &str, Sector, &str); 7] = [
    (
        "hospital",
        "Demo Children's Hospital",
        Sector::HospitalTrust,
        "DEMO1",
    ),
    ("gp", "Demo Surgery", Sector::GpPractice, "DEMO2"),
    (
        "community",
        "Demo Community Children's Nursing",
        Sector::CommunityHealth,
        "DEMO3",
    ),
    ("school", "Demo Primary School", Sector::Education, "DEMO4"),
    (
        "social-care",
        "Demo Children's Services",
        Sector::SocialCare,
        "DEMO5",
    ),
    ("club", "Demo Swimming Club", Sector::Leisure, "DEMO6"),
    (
        "ambulance",
        "Demo Ambulance Service",
        Sector::EmergencyServices,
        "DEMO7",
    ),
];
const REGION_NAME: &str = "Demo Region Children's Passport";

const FIRST: [&str; 50] = [
    "Amira", "Leo", "Isla", "Noah", "Freya", "Arlo", "Maya", "Theo", "Ava", "Rohan", "Esme", "Kai",
    "Zara", "Finn", "Lily", "Omar", "Poppy", "Ezra", "Nia", "Jude", "Ruby", "Idris", "Elsie",
    "Musa", "Ivy", "Reuben", "Aisha", "Otis", "Mabel", "Yusuf", "Hazel", "Arthur", "Sana", "Felix",
    "Iris", "Kofi", "Daisy", "Luca", "Alba", "Hugo", "Layla", "Milo", "Orla", "Ravi", "Edie",
    "Sami", "Willow", "Jonah", "Anaya", "Rory",
];
const SURNAMES: [&str; 25] = [
    "Demo",
    "Sample",
    "Example",
    "Testwell",
    "Mockford",
    "Placeley",
    "Fictor",
    "Synthe",
    "Dummer",
    "Modelby",
    "Proto",
    "Trialton",
    "Pilotson",
    "Specimen",
    "Draftley",
    "Sketchley",
    "Outline",
    "Templeton",
    "Patterson-Demo",
    "Mockridge",
    "Illustra",
    "Practis",
    "Rehearse",
    "Dryrun",
    "Stubbs",
];

/// A member of staff's name: first names by position, surnames by role.
fn staff_name(i: usize, role: Role) -> String {
    let first = FIRST[(i * 7 + 3) % FIRST.len()];
    let surname = match role {
        Role::Clinician => "Clinician",
        Role::Nurse => "Nurse",
        Role::AlliedHealthProfessional => "Therapist",
        Role::ClinicalAdmin => "Clerk",
        Role::SocialWorker => "Social",
        Role::SchoolStaff => "Teacher",
        Role::LeisureStaff => "Coach",
        Role::OrganisationAdmin => "Admin",
        Role::PrivacyOfficer => "Privacy",
        Role::RegionalAdmin => "Regional",
        Role::Commissioner => "Commissioner",
    };
    let title = if role == Role::Clinician { "Dr " } else { "" };
    format!("{title}{first} {surname}")
}

/// One demo sign-in: a row of docs/DEMO.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The role in words, or the kind of family member.
    pub role: String,
    /// The sector in words ("" for a family member).
    pub sector: String,
    pub organisation: String,
    pub username: String,
    pub password: String,
    /// Staff: the base32 TOTP secret for an authenticator app.
    pub totp: Option<String>,
}

/// The kinds of family member: (login, name, kind in words, relationship code, active).
const FAMILIES: [(&str, &str, &str, &str, bool); 4] = [
    (
        "parent@demo.example",
        "Sam Demo",
        "Parent with parental responsibility",
        "MTH",
        true,
    ),
    (
        "foster.carer@demo.example",
        "Fran Fostercare",
        "Foster carer",
        "PRNFOST",
        true,
    ),
    (
        "grandparent@demo.example",
        "Gwen Demo",
        "Relative without parental responsibility",
        "FAMMEMB",
        true,
    ),
    (
        "waiting.parent@demo.example",
        "Wes Sample",
        "Parent whose link waits for the care team",
        "FTH",
        false,
    ),
];

/// Staff of the demo: every role at every organisation whose sector allows it; the
/// regional roles at the region's own organisation.
fn staff() -> Vec<(Staff, &'static str, Sector)> {
    let mut out = Vec::new();
    let mut i = 0;
    for role in [Role::RegionalAdmin, Role::Commissioner] {
        let email = format!("{}{DEMO_DOMAIN}", role.code());
        let mut s = Staff::new("region", role, &email, &staff_name(i, role));
        s.totp = Some(totp_secret(&email));
        out.push((s, REGION_NAME, Sector::CommunityHealth));
        i += 1;
    }
    for (key, name, sector, _) in ORGS {
        for role in Role::ALL {
            if matches!(role, Role::RegionalAdmin | Role::Commissioner)
                || !role.allowed_in(sector, false)
            {
                continue;
            }
            let email = format!("{}.{key}{DEMO_DOMAIN}", role.code());
            let mut s = Staff::new(key, role, &email, &staff_name(i, role));
            s.totp = Some(totp_secret(&email));
            out.push((s, name, sector));
            i += 1;
        }
    }
    out
}

/// The demo sign-ins, in docs/DEMO.md's order: staff, then family members.
pub fn sign_ins() -> Vec<SignIn> {
    let mut out: Vec<SignIn> = staff()
        .into_iter()
        .map(|(s, org, sector)| SignIn {
            role: s.role.words().to_owned(),
            sector: if s.org == "region" {
                "Region".to_owned()
            } else {
                sector_words(sector).to_owned()
            },
            organisation: org.to_owned(),
            username: s.email.clone(),
            password: DEMO_PASSWORD.to_owned(),
            totp: s.totp.as_deref().map(crate::auth::base32),
        })
        .collect();
    out.extend(FAMILIES.iter().map(|(login, _, kind, _, _)| SignIn {
        role: (*kind).to_owned(),
        sector: "Family".to_owned(),
        organisation: String::new(),
        username: (*login).to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        totp: None,
    }));
    out
}

/// The sign-ins as docs/DEMO.md's table (its columns are fixed by the issue that asked
/// for it: `role | sector | organisation | username | password | TOTP secret`).
pub fn table() -> String {
    let mut out = String::from(
        "| role | sector | organisation | username | password | TOTP secret |\n|---|---|---|---|---|---|\n",
    );
    for s in sign_ins() {
        out.push_str(&format!(
            "| {} | {} | {} | `{}` | `{}` | {} |\n",
            s.role,
            s.sector,
            s.organisation,
            s.username,
            s.password,
            s.totp
                .map(|t| format!("`{t}`"))
                .unwrap_or_else(|| "none (families sign in with a password)".into())
        ));
    }
    out
}

fn sector_words(s: Sector) -> &'static str {
    match s {
        Sector::HospitalTrust => "Hospital trust",
        Sector::GpPractice => "GP practice",
        Sector::CommunityHealth => "Community health",
        Sector::SocialCare => "Social care",
        Sector::Education => "Education",
        Sector::Leisure => "Leisure",
        Sector::EmergencyServices => "Emergency services",
    }
}

/// An NHS Number from the test range: 999 then six digits, and its modulus-11 check digit
/// (numbers whose check would be 10 are skipped by the caller).
fn nhs_number(n: usize) -> Option<String> {
    let body = format!("999{:06}", n);
    let sum: u32 = body
        .bytes()
        .zip((2..=10).rev())
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return None,
        c => c,
    };
    Some(format!("{body}{check}"))
}

/// The children: (given, family, NHS Number, birth date), [`CHILDREN`] of them.
fn children() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let mut n = 100;
    while out.len() < CHILDREN {
        n += 1;
        let Some(nhs) = nhs_number(n) else { continue };
        let i = out.len();
        let birth = format!(
            "{}-{:02}-{:02}",
            2010 + (i * 5) % 15,
            1 + (i * 7) % 12,
            1 + (i * 11) % 28
        );
        out.push((
            FIRST[i].to_owned(),
            SURNAMES[i % SURNAMES.len()].to_owned(),
            nhs,
            birth,
        ));
    }
    out
}

/// The demo region's directory and children (their items are written afterwards, through
/// the forms).
fn spec() -> Spec {
    let mut organisations =
        vec![Org::new("region", REGION_NAME, Sector::CommunityHealth, REGION_ODS).regional()];
    organisations.extend(
        ORGS.iter()
            .map(|(key, name, sector, ods)| Org::new(key, name, *sector, ods)),
    );
    let children = children()
        .into_iter()
        .enumerate()
        .map(|(i, (given, family, nhs, birth))| {
            let mut care_team = vec![
                "hospital".to_owned(),
                "gp".to_owned(),
                "community".to_owned(),
            ];
            // Most children are at school; some swim; the looked-after ones have a social
            // worker; the ambulance service knows a few (one break-glass is for another).
            if i % 5 != 4 {
                care_team.push("school".into());
            }
            if i % 4 == 1 {
                care_team.push("club".into());
            }
            if i == 3 || i.is_multiple_of(9) {
                care_team.push("social-care".into());
            }
            if i % 6 == 2 {
                care_team.push("ambulance".into());
            }
            let links = FAMILIES
                .iter()
                .filter(|f| family_children(f.0).contains(&i))
                .map(|(login, _, _, rel, active)| Link {
                    family: (*login).to_owned(),
                    relationship: (*rel).to_owned(),
                    active: *active,
                })
                .collect();
            ChildSpec {
                key: format!("child-{i}"),
                // Fixed ids: the README names the first.
                id: Some(format!("demo-child-{}", i + 1)),
                given,
                family,
                nhs_number: nhs,
                birth_date: birth,
                care_team,
                links,
                items: Vec::new(),
            }
        })
        .collect();
    Spec {
        region: "Demo".into(),
        password: DEMO_PASSWORD.into(),
        organisations,
        staff: staff().into_iter().map(|(s, _, _)| s).collect(),
        families: FAMILIES
            .iter()
            .map(|(login, name, _, _, _)| Family::new(login, name))
            .collect(),
        children,
    }
}

/// The children (by position) each family member is linked to.
fn family_children(login: &str) -> &'static [usize] {
    match login {
        "parent@demo.example" => &[0, 1, 2],
        "foster.carer@demo.example" => &[3],
        "grandparent@demo.example" => &[0],
        _ => &[4],
    }
}

/// A condition template's demo content.
struct Plan {
    condition: &'static str,
    recognise: &'static str,
    what_to_do: &'static str,
    call_999: &'static str,
    rescue: &'static str,
    rescue_dose: &'static str,
    rescue_route: &'static str,
    /// (product option or text, dose, route, when).
    medicines: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// (substance option, reaction, severity).
    allergy: Option<(&'static str, &'static str, &'static str)>,
    nurse_team: &'static str,
}

const PLANS: [Plan; 6] = [
    Plan {
        condition: "Epilepsy",
        recognise: "Stiffening of arms and legs, then rhythmic jerking; lips may go blue",
        what_to_do: "Note the time. Move hard objects away and cushion the head; do not restrain. When the jerking stops, turn onto the side",
        call_999: "Seizure still going 5 minutes after the rescue medicine, difficulty breathing, or injured",
        rescue: "Buccal midazolam",
        rescue_dose: "5 mg (0.5 mL) as prescribed",
        rescue_route: "buccal",
        medicines: &[(
            "Levetiracetam oral solution",
            "250 mg",
            "by mouth",
            "Twice a day, 8am and 8pm",
        )],
        allergy: None,
        nurse_team: "Epilepsy nurse specialists",
    },
    Plan {
        condition: "Asthma",
        recognise: "Coughing, wheezing, tight chest, too breathless to talk or eat",
        what_to_do: "Sit upright. Give 1 puff of the blue reliever through the spacer every 30 to 60 seconds, up to 10 puffs",
        call_999: "No better after 10 puffs, or too breathless to talk: call 999 and repeat the 10 puffs after 10 minutes",
        rescue: "Salbutamol inhaler (blue) with spacer",
        rescue_dose: "Up to 10 puffs",
        rescue_route: "inhaled",
        medicines: &[
            (
                "Salbutamol 100micrograms/dose inhaler CFC free",
                "2 puffs through the spacer",
                "inhaled",
                "When wheezy or before sport",
            ),
            (
                "Beclometasone 100micrograms/dose inhaler CFC free",
                "1 puff",
                "inhaled",
                "Morning and evening",
            ),
        ],
        allergy: Some((
            "Allergic reaction to wasp sting",
            "Swelling around the sting",
            "mild",
        )),
        nurse_team: "Children's asthma nurses",
    },
    Plan {
        condition: "Diabetes mellitus type 1",
        recognise: "Shaky, sweaty, pale, grumpy or confused; glucose under 4 mmol/L",
        what_to_do: "Give fast-acting glucose, recheck in 15 minutes and repeat if still under 4; then a starchy snack",
        call_999: "Unconscious, fitting or unable to swallow: nothing by mouth, call 999",
        rescue: "Glucose gel",
        rescue_dose: "1 tube (10 g of glucose)",
        rescue_route: "by mouth",
        medicines: &[
            (
                "Insulin aspart 100units/ml solution for injection 3ml pre-filled disposable devices",
                "1 unit per 10 g carbohydrate",
                "subcutaneous injection",
                "With meals",
            ),
            (
                "Insulin glargine 100units/ml solution for injection 3ml pre-filled disposable devices",
                "12 units",
                "subcutaneous injection",
                "At bedtime",
            ),
        ],
        allergy: None,
        nurse_team: "Children's diabetes team",
    },
    Plan {
        condition: "Anaphylaxis",
        recognise: "Swollen lips or tongue, wheeze, hoarse voice, pale and floppy or collapsed",
        what_to_do: "Lie down with legs raised (sit up if breathing is hard). Give the adrenaline auto-injector into the outer thigh",
        call_999: "Always, straight after the adrenaline; say \"anaphylaxis\". A second injector after 5 minutes if no better",
        rescue: "Adrenaline auto-injector",
        rescue_dose: "300 micrograms",
        rescue_route: "intramuscular injection",
        medicines: &[(
            "Adrenaline",
            "300 micrograms auto-injector",
            "intramuscular injection",
            "In anaphylaxis; two carried at all times",
        )],
        allergy: Some(("Peanut", "Anaphylaxis", "severe")),
        nurse_team: "Children's allergy clinic",
    },
    Plan {
        condition: "Primary adrenocortical insufficiency",
        recognise: "Vomiting, pale, drowsy or floppy; unwell with a temperature",
        what_to_do: "Give a double dose of hydrocortisone by mouth. If vomiting or drowsy, give the emergency injection",
        call_999: "After any emergency injection; say \"adrenal crisis\" and show this plan",
        rescue: "Hydrocortisone sodium phosphate injection",
        rescue_dose: "100 mg",
        rescue_route: "intramuscular injection",
        medicines: &[(
            "Hydrocortisone tablets",
            "5 mg",
            "by mouth",
            "Three times a day",
        )],
        allergy: Some((
            "Substance with penicillin structure",
            "Rash all over",
            "moderate",
        )),
        nurse_team: "Paediatric endocrine nurses",
    },
    Plan {
        condition: "Cerebral palsy",
        recognise: "A change in colour, breathing or tone; unusual crying can mean pain",
        what_to_do: "Stay with him, check the gastrostomy site, use his communication book to ask what is wrong",
        call_999: "Difficulty breathing, or a seizure over 5 minutes",
        rescue: "Buccal midazolam",
        rescue_dose: "2.5 mg (0.25 mL) as prescribed",
        rescue_route: "buccal",
        medicines: &[(
            "Baclofen oral solution",
            "5 mg",
            "via gastrostomy",
            "Three times a day",
        )],
        allergy: Some(("Allergy to latex", "Hives where gloves touch", "moderate")),
        nurse_team: "Complex needs nursing team",
    },
];

/// What the demo enters in the emergency information of child `i` (by position): each
/// value the emergency view must show — reaction, dose, route, phone numbers, each
/// protocol step (the route and severity as the page words them).
pub fn entered(i: usize) -> Vec<String> {
    let plan = &PLANS[i % PLANS.len()];
    let sentence = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    };
    let mut out: Vec<String> = [
        plan.recognise,
        plan.what_to_do,
        plan.call_999,
        plan.rescue,
        plan.rescue_dose,
        plan.nurse_team,
        "01632 960999",
        "A quiet room, my blue blanket and gentle singing",
        "Talks in short sentences; uses Makaton signs when upset",
        "Goes quiet and rubs the sore place",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push(sentence(plan.rescue_route));
    out.push(format!("01632 960{:03}", 100 + i));
    out.push(format!("07700 900{:03}", 100 + i));
    for (_, dose, route, when) in plan.medicines {
        out.extend([dose.to_string(), sentence(route), when.to_string()]);
    }
    if let Some((_, reaction, severity)) = plan.allergy {
        out.extend([reaction.to_string(), sentence(severity)]);
    }
    out
}

/// The demo's people as callers.
struct People {
    clinician: Caller,
    family: HashMap<&'static str, (Caller, String)>,
}

async fn caller(d: &Domain, login: &str) -> Result<(Caller, String), DirectoryError> {
    let account = d
        .data()
        .account_by_login(login)
        .await?
        .ok_or_else(|| DirectoryError::NotFound(login.to_owned()))?;
    let identity = directory::identity(d, &account).await?;
    Ok((Caller::signed_in(d, &account, identity).await, account.id))
}

/// Fills a form of `patient`'s passport as `who` would: `fields` as the page posts them
/// (a choice by its option's words).
async fn fill(
    d: &Domain,
    who: &Caller,
    patient: &str,
    form: &str,
    fields: &[(&str, &str)],
) -> Result<String, DirectoryError> {
    let invalid = |m: String| DirectoryError::Invalid(format!("demo {form}: {m}"));
    let f = forms::form(form).ok_or_else(|| invalid("no such form".into()))?;
    let q = passport::templates::published(d, f.questionnaire).await?;
    let qs = forms::questions(f, &q);
    let family = matches!(who.subject.identity, access::Identity::Family { .. });
    let theirs: Vec<forms::Question> = qs
        .iter()
        .filter(|q| !(family && q.clinician_only))
        .cloned()
        .collect();
    let mut posted = HashMap::new();
    for (k, v) in fields {
        let q = qs.iter().find(|q| q.link_id == *k);
        let value = match q.and_then(|q| q.options.iter().find(|o| o.label == *v)) {
            Some(o) => o.value.clone(),
            None if q.is_some_and(|q| q.kind == "open-choice") => {
                posted.insert(format!("{k}-other"), (*v).to_owned());
                "other".to_owned()
            }
            None => (*v).to_owned(),
        };
        posted.insert((*k).to_owned(), value);
    }
    let answers = forms::answers(&theirs, &posted, &crate::dates::today())
        .map_err(|e| invalid(format!("{e:?}")))?;
    passport::save(d, who, patient, f, Target::New, &answers)
        .await
        .map_err(|e| invalid(e.to_string()))
}

/// Checks every item of the child waiting for review, as the clinician.
async fn check_all(d: &Domain, who: &Caller, patient: &str) -> Result<(), DirectoryError> {
    let view = passport::view(d, who, patient)
        .await
        .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
    for v in &view.waiting_items {
        let opened = passport::Opened {
            patient,
            resource_type: v["resourceType"].as_str().unwrap_or_default(),
            id: v["id"].as_str().unwrap_or_default(),
            version: v["meta"]["versionId"]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(1),
        };
        passport::check(d, who, &opened)
            .await
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// The family member who writes child `i`'s own part of the passport (what matters, how
/// they communicate, an allergy they know of), if one is linked with parental
/// responsibility; otherwise it was recorded at clinic by the clinician.
fn family_writer(people: &People, i: usize) -> Option<&Caller> {
    FAMILIES
        .iter()
        .find(|f| {
            f.4 && family_children(f.0).contains(&i)
                && crate::onboarding::implies_parental_responsibility(f.3)
        })
        .and_then(|f| people.family.get(f.0))
        .map(|(c, _)| c)
}

/// Whether child `i`'s family items wait for review (the first child's): the others
/// written by a family member were checked by the clinician.
fn family_items_wait(i: usize) -> bool {
    i == 0
}

/// Writes the clinician's part of one child's passport through the forms: the condition,
/// medicines with their doses, the emergency protocol, escalation contacts, a weight
/// measured that day.
async fn clinical_part(
    d: &Domain,
    people: &People,
    i: usize,
    patient: &str,
) -> Result<(), DirectoryError> {
    let plan = &PLANS[i % PLANS.len()];
    let cl = &people.clinician;
    fill(
        d,
        cl,
        patient,
        "condition",
        &[("conditions", plan.condition)],
    )
    .await?;
    for (product, dose, route, when) in plan.medicines {
        fill(
            d,
            cl,
            patient,
            "medicine",
            &[
                ("medicine-product", product),
                ("medicine-dose", dose),
                ("medicine-route", route),
                ("medicine-when", when),
                (
                    "medicine-given-by",
                    "Parent at home; trained staff at school",
                ),
            ],
        )
        .await?;
    }
    fill(
        d,
        cl,
        patient,
        "emergency-protocol",
        &[
            ("emergency-recognise", plan.recognise),
            ("emergency-what-to-do", plan.what_to_do),
            ("emergency-call-999", plan.call_999),
            ("emergency-rescue-medicine", plan.rescue),
            ("emergency-rescue-dose", plan.rescue_dose),
            ("emergency-rescue-route", plan.rescue_route),
        ],
    )
    .await?;
    let phone = format!("01632 960{:03}", 100 + i);
    // Weighed at the clinic visit: the demo clock's today.
    let today = crate::dates::today();
    let measured = (
        &today[..4],
        today[5..7].trim_start_matches('0'),
        today[8..].trim_start_matches('0'),
    );
    fill(
        d,
        cl,
        patient,
        "escalation-contact",
        &[
            ("escalation-name", plan.nurse_team),
            (
                "escalation-role",
                "Specialist nurses, Demo Children's Hospital",
            ),
            ("escalation-phone", &phone),
            ("escalation-out-of-hours", "01632 960999"),
            (
                "escalation-when",
                "After any rescue medicine, or for advice",
            ),
        ],
    )
    .await?;
    fill(
        d,
        cl,
        patient,
        "weight",
        &[
            ("weight-kg", &format!("{}", 14 + (i * 3) % 40)),
            ("weight-date-day", measured.2),
            ("weight-date-month", measured.1),
            ("weight-date-year", measured.0),
        ],
    )
    .await?;
    if i % PLANS.len() == 5 {
        fill(
            d,
            cl,
            patient,
            "equipment",
            &[
                ("device", "Gastrostomy tube in situ"),
                ("device-details", "12 Fr balloon button"),
                ("device-kit-location", "Spare button kit in his school bag"),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Writes the family's part of child `i`'s passport as `writer` (the family member, or the
/// clinician recording it at clinic).
async fn family_part(
    d: &Domain,
    writer: &Caller,
    i: usize,
    patient: &str,
) -> Result<(), DirectoryError> {
    let plan = &PLANS[i % PLANS.len()];
    if let Some((substance, reaction, severity)) = plan.allergy {
        fill(
            d,
            writer,
            patient,
            "allergy",
            &[
                ("allergy-substance", substance),
                ("allergy-reaction", reaction),
                ("allergy-severity", severity),
                ("allergy-date-day", "14"),
                ("allergy-date-month", "6"),
                ("allergy-date-year", "2023"),
            ],
        )
        .await?;
    }
    fill(
        d,
        writer,
        patient,
        "what-matters",
        &[
            (
                "what-matters-to-me",
                "Being with my family and my friends at school",
            ),
            ("likes", "Music, swimming, dinosaurs"),
            ("dislikes", "Loud sudden noises"),
            (
                "calming",
                "A quiet room, my blue blanket and gentle singing",
            ),
            ("routines", "Same bedtime story every night"),
        ],
    )
    .await?;
    fill(
        d,
        writer,
        patient,
        "communication",
        &[
            ("main-language", "English"),
            (
                "communication-description",
                "Talks in short sentences; uses Makaton signs when upset",
            ),
            ("how-i-show-pain", "Goes quiet and rubs the sore place"),
            ("how-i-show-distress", "Rocks and covers ears"),
        ],
    )
    .await?;
    fill(
        d,
        writer,
        patient,
        "key-contact",
        &[
            ("key-contact-name", "Parent or carer"),
            ("key-contact-relationship", "Parent"),
            ("key-contact-phone", &format!("07700 900{:03}", 100 + i)),
            ("key-contact-when", "Always, first"),
        ],
    )
    .await?;
    Ok(())
}

/// Invitations in each state (pending, redeemed, expired, revoked), a card link made by
/// the parent and a break-glass by the ambulance service's paramedic.
async fn events(
    d: &Domain,
    built: &Region,
    people: &People,
) -> Result<Vec<String>, DirectoryError> {
    let now = crate::clock::now_us();
    let hospital = built.org("hospital").to_owned();
    let mut notes = Vec::new();
    let invite = |child: usize, expires: i64| {
        crate::onboarding::new_invitation(
            built.child(&format!("child-{child}")),
            None,
            Some(&hospital),
            None,
            now - 3_600_000_000,
            expires,
        )
    };
    let (pending, pending_code) = invite(5, 14 * 86_400);
    let (redeemed, _) = invite(6, 14 * 86_400);
    let (expired, _) = invite(7, 60);
    let (revoked, _) = invite(8, 14 * 86_400);
    let (redeemed_hash, revoked_id) = (redeemed.code_hash.clone(), revoked.id.clone());
    d.data()
        .create_invitations(vec![pending, redeemed, expired, revoked])
        .await?;
    let (_, parent_account) = &people.family["parent@demo.example"];
    d.data()
        .redeem_invitation(&redeemed_hash, parent_account, now)
        .await?
        .ok();
    d.data().revoke_invitation(&revoked_id, now).await?;
    notes.push(format!(
        "An invitation waits for a parent of {}: code {pending_code}",
        built.child("child-5")
    ));
    let (parent, parent_id) = &people.family["parent@demo.example"];
    // The third child's (the first is 16 and controls her own passport).
    let child = built.child("child-2");
    let (_, token) = crate::card_link::create(d, parent, parent_id, child, 366, None)
        .await
        .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
    notes.push(format!(
        "Card link of demo-child-3: {}/card/{token}",
        d.base_url()
    ));
    // Break-glass by the ambulance clinician for a child the service does not know.
    let (medic, medic_account) = caller(d, &format!("clinician.ambulance{DEMO_DOMAIN}")).await?;
    let target = built.child("child-1");
    let facts = crate::facts::child_facts(d, target).await?;
    if let access::Identity::Staff(staff) = &medic.subject.identity {
        let request = crate::break_glass::Request {
            child_id: target,
            reason: "Collapsed at the swimming pool; parents not yet reached",
            subject: &medic.subject,
            account_id: &medic_account,
            organisation_id: &staff.organisation.clone(),
            who: medic.who.clone(),
        };
        crate::break_glass::open(d, &facts, request).await?.ok();
    }
    Ok(notes)
}

/// Whether the database holds anything but the demo region (an organisation or an
/// account that is not the demo's).
async fn holds_other_data(d: &Domain) -> Result<bool, DirectoryError> {
    let orgs = directory::list_organisations(d).await?;
    let other_org = orgs.iter().any(|o| {
        !o.ods
            .as_deref()
            .is_some_and(|c| c.starts_with("DEMO") && c.len() == 5)
    });
    let accounts = d.data().list_accounts().await?;
    Ok(other_org || accounts.iter().any(|a| !is_demo_login(&a.login)))
}

/// What loading the demo gave.
pub enum Loaded {
    /// Made now: the sign-ins, and notes (an invitation code, the card link).
    Made {
        sign_ins: Vec<SignIn>,
        notes: Vec<String>,
    },
    /// It was there already.
    AlreadyThere,
}

/// Loads the demo region unless it is there already, as the operator (audited). Refuses a
/// database that holds anything else.
pub async fn load(d: &Domain) -> Result<Loaded, DirectoryError> {
    let there = match directory::find_organisation(d, REGION_ODS).await {
        Ok(_) => true,
        Err(DirectoryError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    if holds_other_data(d).await? {
        return Err(DirectoryError::Invalid(
            "this database holds data that is not the demo region's: demo mode runs only on an empty database or on one holding the demo region"
                .into(),
        ));
    }
    if there {
        return Ok(Loaded::AlreadyThere);
    }
    let spec = spec();
    // The region's history carries its dates (`clock::as_of`), in the order it happened:
    // the region three months ago, each child's clinic visit two months ago, the family's
    // additions a month ago, the clinician's review ten days ago, and the additions that
    // still wait for review two days ago; invitations, the card link and the break-glass
    // are today's.
    let now = crate::clock::now_us();
    let at = |days: i64, i: usize| now - days * 86_400_000_000 + i as i64 * 600_000_000;
    let built = crate::clock::as_of(
        at(90, 0),
        region::seed(d, &Agent::operator("demo data"), &spec),
    )
    .await?;
    let mut family = HashMap::new();
    for (login, ..) in FAMILIES {
        family.insert(login, caller(d, login).await?);
    }
    let people = People {
        clinician: caller(d, &format!("clinician.hospital{DEMO_DOMAIN}"))
            .await?
            .0,
        family,
    };
    let child = |i: usize| built.child(&format!("child-{i}"));
    for i in 0..CHILDREN {
        crate::clock::as_of(at(60, i), async {
            clinical_part(d, &people, i, child(i)).await?;
            if family_writer(&people, i).is_none() {
                family_part(d, &people.clinician, i, child(i)).await?;
            }
            Ok::<_, DirectoryError>(())
        })
        .await?;
    }
    let families: Vec<(usize, &Caller)> = (0..CHILDREN)
        .filter_map(|i| family_writer(&people, i).map(|w| (i, w)))
        .collect();
    for &(i, writer) in families.iter().filter(|(i, _)| !family_items_wait(*i)) {
        crate::clock::as_of(at(30, i), family_part(d, writer, i, child(i))).await?;
    }
    for &(i, _) in families.iter().filter(|(i, _)| !family_items_wait(*i)) {
        crate::clock::as_of(at(10, i), check_all(d, &people.clinician, child(i))).await?;
    }
    for &(i, writer) in families.iter().filter(|(i, _)| family_items_wait(*i)) {
        crate::clock::as_of(at(2, i), family_part(d, writer, i, child(i))).await?;
    }
    let notes = events(d, &built, &people).await?;
    Ok(Loaded::Made {
        sign_ins: sign_ins(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sign_in_per_role_and_sector_and_per_kind_of_family_member() {
        let rows = sign_ins();
        let staff: Vec<&SignIn> = rows.iter().filter(|r| r.totp.is_some()).collect();
        // Every role-and-sector pair the service allows, once.
        let mut pairs = std::collections::BTreeSet::new();
        for sector in Sector::ALL {
            for role in Role::ALL {
                if role.allowed_in(sector, false)
                    && !matches!(role, Role::RegionalAdmin | Role::Commissioner)
                {
                    pairs.insert((role.words().to_owned(), sector_words(sector).to_owned()));
                }
            }
        }
        pairs.insert(("Regional administrator".into(), "Region".into()));
        pairs.insert(("Commissioner".into(), "Region".into()));
        let got: std::collections::BTreeSet<(String, String)> = staff
            .iter()
            .map(|r| (r.role.clone(), r.sector.clone()))
            .collect();
        assert_eq!(got, pairs);
        assert_eq!(staff.len(), pairs.len(), "no pair twice");
        assert_eq!(rows.len() - staff.len(), FAMILIES.len());
        assert!(rows.iter().all(|r| is_demo_login(&r.username)));
        assert!(!is_demo_login("someone@nhs.net"));
    }

    #[test]
    fn synthetic_children_have_test_range_nhs_numbers() {
        let kids = children();
        assert_eq!(kids.len(), CHILDREN);
        for (_, _, nhs, birth) in &kids {
            assert!(nhs.starts_with("999") && nhs.len() == 10, "{nhs}");
            let digits: Vec<u8> = nhs.bytes().map(|b| b - b'0').collect();
            let first9: [u8; 9] = digits[..9].try_into().unwrap();
            assert_eq!(
                fhir::nhs_number::check_digit(&first9),
                Some(digits[9]),
                "{nhs}"
            );
            assert!(crate::dates::parse_parts(&birth[8..], &birth[5..7], &birth[..4]).is_some());
        }
        let numbers: std::collections::BTreeSet<_> = kids.iter().map(|k| &k.2).collect();
        assert_eq!(numbers.len(), CHILDREN);
        spec().check().unwrap();
    }
}
