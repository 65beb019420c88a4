//! Browser tests: starts the real server (SQLite) with seeded accounts, then runs
//! `node tests/browser/run.mjs <base-url> <fixture>` — playwright-core driving Debian's
//! Chromium, axe-core on every page type, the full sign-in flow, CSRF refusal, and no
//! request to any other host. Without Chromium, Node or `npm ci` in tests/browser (and
//! web-assets), it prints "browser tests skipped: …" and passes — unless `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use access::{Role, Sector};
use common::fixture;
use passport_server::region;
use passport_server::web::directory;

const PASSWORD: &str = "correct horse battery staple";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    for dir in [
        "tests/browser/node_modules/playwright-core",
        "tests/browser/node_modules/axe-core",
        "web-assets/node_modules/nhsuk-frontend",
    ] {
        if !repo().join(dir).exists() {
            return Some(format!("{dir} missing (run `npm ci` in its folder)"));
        }
    }
    None
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The browser suite's region, built by the shared fixture (`region::seed`): a hospital
/// with Ada (clinician) and an organisation admin; an emergency department with a clinician
/// and a privacy officer; the region's own organisation with its admin; Sam (family, no
/// child: the password-reset journey) and Alex (asks to join a passport); and Leo, in the
/// hospital's care team, with his parent Kim.
fn spec() -> region::Spec {
    let org = |key: &str, name: &str, sector, ods: &str, regional| region::Org {
        key: key.into(),
        name: name.into(),
        sector,
        ods: Some(ods.into()),
        regional,
    };
    let staff = |org: &str, role, email: &str, name: &str| region::Staff {
        org: org.into(),
        role,
        email: email.into(),
        name: name.into(),
        totp: None,
    };
    let family = |email: &str, name: &str| region::Family {
        email: email.into(),
        name: name.into(),
    };
    region::Spec {
        region: "North".into(),
        password: PASSWORD.into(),
        organisations: vec![
            org(
                "hospital",
                "Riverside Children's Hospital",
                Sector::HospitalTrust,
                "RXX",
                false,
            ),
            org(
                "er",
                "Northgate Emergency Department",
                Sector::HospitalTrust,
                "RYY",
                false,
            ),
            org("school", "Hill Primary", Sector::Education, "SCH1", false),
            // The regional admin works for the region's own organisation (docs/SECURITY.md §3).
            org(
                "region",
                "North Children's Passport",
                Sector::CommunityHealth,
                "QNN",
                true,
            ),
        ],
        staff: vec![
            staff(
                "hospital",
                Role::Clinician,
                "ada@example.nhs.uk",
                "Ada Clinician",
            ),
            staff(
                "region",
                Role::RegionalAdmin,
                "rae@example.nhs.uk",
                "regional person",
            ),
            staff(
                "hospital",
                Role::OrganisationAdmin,
                "oli@example.nhs.uk",
                "orgAdmin person",
            ),
            staff(
                "er",
                Role::Clinician,
                "erin@example.nhs.uk",
                "erClinician person",
            ),
            staff(
                "hospital",
                Role::Clinician,
                "cara@example.nhs.uk",
                "Cara Carer",
            ),
            staff(
                "school",
                Role::SchoolStaff,
                "tom@example.sch.uk",
                "Tom Teacher",
            ),
            staff(
                "er",
                Role::PrivacyOfficer,
                "pat@example.nhs.uk",
                "officer person",
            ),
        ],
        families: vec![
            family("sam@example.com", "Sam Parent"),
            family("alex.jones@example.com", "Alex Jones"),
            family("kim@example.com", "Kim Khan"),
        ],
        children: vec![region::ChildSpec {
            key: "leo".into(),
            id: None,
            given: "Leo".into(),
            family: "Khan".into(),
            nhs_number: "9000000009".into(),
            birth_date: "2018-05-01".into(),
            care_team: vec!["hospital".into(), "school".into()],
            links: vec![region::Link {
                family: "kim@example.com".into(),
                relationship: "MTH".into(),
                active: true,
            }],
            items: Vec::new(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser_on_sqlite() {
    in_a_real_browser(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser_on_postgres() {
    in_a_real_browser(common::Backend::Postgres).await;
}

/// `false` (after saying why) when the browser tests cannot run here; a failure under CI.
fn can_run() -> bool {
    let Some(why) = missing() else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("browser tests cannot run under CI: {why}");
    }
    eprintln!("browser tests skipped: {why}");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_region_in_a_real_browser_on_sqlite() {
    demo_region_in_a_real_browser(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_region_in_a_real_browser_on_postgres() {
    demo_region_in_a_real_browser(common::Backend::Postgres).await;
}

/// Every row of docs/DEMO.md signs in in Chromium on a `--demo` server, and every kind of
/// page each account can reach by following links opens and passes axe-core
/// (tests/browser/demo.mjs).
async fn demo_region_in_a_real_browser(backend: common::Backend) {
    if !can_run() {
        return;
    }
    let Some((url, _dir)) = common::fresh_database(backend) else {
        return;
    };
    let srv = common::spawn_demo_on(url).await;
    passport_server::demo::load(&srv.state.domain)
        .await
        .unwrap();
    common::browser::run_node("demo.mjs", vec![srv.base.clone()]).await;
    srv.stop().await;
}

async fn in_a_real_browser(backend: common::Backend) {
    if !can_run() {
        return;
    }
    // Without a PostgreSQL server, `spawn` says the suite is skipped (a failure under CI).
    let Some(srv) = common::spawn(backend).await else {
        return;
    };
    let store = passport_server::Domain::open(domain::Settings::admin(
        &srv.database_url,
        "https://passport.test",
    ))
    .await
    .unwrap();
    let r = region::seed(&store, &fixture(), &spec()).await.unwrap();
    let login = |email: &str| {
        serde_json::json!({ "email": email, "password": PASSWORD,
                            "secretHex": hex(&r.staff(email).totp_secret) })
    };
    let more = serde_json::json!({
        "regional": login("rae@example.nhs.uk"),
        "orgAdmin": login("oli@example.nhs.uk"),
        "erClinician": login("erin@example.nhs.uk"),
        "officer": login("pat@example.nhs.uk"),
        "clinician": login("cara@example.nhs.uk"),
        "teacher": login("tom@example.sch.uk"),
        "school": r.org("school"),
        "parent": { "email": "kim@example.com", "password": PASSWORD },
        "child": { "id": r.child("leo"), "nhs": "9000000009", "dob": "01/05/2018" },
    });
    let reset = directory::issue_password_reset(&store, "sam@example.com", &srv.base, 3600)
        .await
        .unwrap();
    let fixture = serde_json::json!({
        "more": more,
        "staff": login("ada@example.nhs.uk"),
        "family": { "email": "sam@example.com", "password": PASSWORD },
        "asker": { "email": "alex.jones@example.com", "password": PASSWORD },
        "resetPath": reset.strip_prefix(&srv.base).unwrap(),
    })
    .to_string();
    common::browser::run_node("run.mjs", vec![srv.base.clone(), fixture]).await;
    store.close().await;
}
