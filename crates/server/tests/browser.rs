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
use passport_server::web::{directory, onboarding};

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

/// For the admin, privacy, break-glass, sharing and access-log pages: a regional admin (of
/// the region's own organisation), an organisation admin at `org`, an emergency department with a clinician and a privacy
/// officer, and a child in `org`'s care team with a linked parent.
async fn seed_more(store: &passport_server::Domain, org: &str) -> serde_json::Value {
    let er = directory::create_organisation(
        store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewOrganisation {
            name: "Northgate Emergency Department".into(),
            sector: Sector::HospitalTrust,
            ods: Some("RYY".into()),
            school_urn: None,
            region: "North".into(),
        },
    )
    .await
    .unwrap();
    // The regional admin works for the region's own organisation (docs/SECURITY.md §3).
    let region = directory::create_regional_organisation(
        store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewOrganisation {
            name: "North Children's Passport".into(),
            sector: Sector::CommunityHealth,
            ods: Some("QNN".into()),
            school_urn: None,
            region: "North".into(),
        },
    )
    .await
    .unwrap();
    let mut people = serde_json::Map::new();
    for (key, at, role, email) in [
        (
            "regional",
            region.as_str(),
            Role::RegionalAdmin,
            "rae@example.nhs.uk",
        ),
        (
            "orgAdmin",
            org,
            Role::OrganisationAdmin,
            "oli@example.nhs.uk",
        ),
        (
            "erClinician",
            er.as_str(),
            Role::Clinician,
            "erin@example.nhs.uk",
        ),
        (
            "officer",
            er.as_str(),
            Role::PrivacyOfficer,
            "pat@example.nhs.uk",
        ),
    ] {
        let made = directory::create_staff(
            store,
            &passport_server::records::Agent::operator("test fixture"),
            directory::NewStaff {
                organisation: at.into(),
                role,
                email: email.into(),
                name: format!("{key} person"),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
        people.insert(
            key.into(),
            serde_json::json!({ "email": email, "password": PASSWORD,
                                "secretHex": hex(&made.totp_secret.unwrap()) }),
        );
    }
    let child = onboarding::Child {
        id: uuid::Uuid::now_v7().to_string(),
        nhs_number: "9000000009".into(),
        given: "Leo".into(),
        family: "Khan".into(),
        birth_date: "2018-05-01".into(),
    };
    let writes = onboarding::new_child_writes(&child, org).unwrap();
    store
        .data()
        .test_store()
        .write_all(writes)
        .await
        .map_err(|e| e.error)
        .unwrap();
    directory::create_family(
        store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "kim@example.com".into(),
            name: "Kim Khan".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    let kim = store
        .data()
        .test_store()
        .account_by_login("kim@example.com")
        .await
        .unwrap()
        .unwrap();
    onboarding::bind(store, &fixture(), &kim, &child.id, "MTH", true)
        .await
        .unwrap();
    people.insert(
        "parent".into(),
        serde_json::json!({ "email": "kim@example.com", "password": PASSWORD }),
    );
    people.insert(
        "child".into(),
        serde_json::json!({ "id": child.id, "nhs": child.nhs_number, "dob": "01/05/2018" }),
    );
    serde_json::Value::Object(people)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser() {
    if let Some(why) = missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("browser tests cannot run under CI: {why}");
        }
        eprintln!("browser tests skipped: {why}");
        return;
    }
    let srv = common::spawn(common::Backend::Sqlite).await.unwrap();
    let store = passport_server::Domain::open(domain::Settings::admin(
        &srv.database_url,
        "https://passport.test",
    ))
    .await
    .unwrap();
    let org = directory::create_organisation(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewOrganisation {
            name: "Riverside Children's Hospital".into(),
            sector: Sector::HospitalTrust,
            ods: Some("RXX".into()),
            school_urn: None,
            region: "North".into(),
        },
    )
    .await
    .unwrap();
    let staff = directory::create_staff(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewStaff {
            organisation: org.clone(),
            role: Role::Clinician,
            email: "ada@example.nhs.uk".into(),
            name: "Ada Clinician".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    directory::create_family(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "sam@example.com".into(),
            name: "Sam Parent".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    // Asks to join a child's passport while signed in (/register).
    directory::create_family(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "alex.jones@example.com".into(),
            name: "Alex Jones".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    let reset = directory::issue_password_reset(&store, "sam@example.com", &srv.base, 3600)
        .await
        .unwrap();
    let more = seed_more(&store, &org).await;
    let fixture = serde_json::json!({
        "more": more,
        "staff": { "email": "ada@example.nhs.uk", "password": PASSWORD,
                   "secretHex": hex(&staff.totp_secret.unwrap()) },
        "family": { "email": "sam@example.com", "password": PASSWORD },
        "asker": { "email": "alex.jones@example.com", "password": PASSWORD },
        "resetPath": reset.strip_prefix(&srv.base).unwrap(),
    })
    .to_string();
    let base = srv.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("tests/browser/run.mjs")
            .arg(&base)
            .arg(&fixture)
            .current_dir(repo())
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    store.close().await;
    assert!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
}
