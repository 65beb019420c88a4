//! `passport admin …` end to end: organisations and accounts through the real binary.

use std::io::Write;
use std::process::{Command, Stdio};

fn passport(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(args)
        .env("PASSPORT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn organisations_and_users() {
    let dir = std::env::temp_dir().join(format!("passport-admin-{}", uuid::Uuid::new_v4()));
    let db = format!("sqlite://{}/p.db", dir.display());
    let db = db.as_str();
    let (ok, out, err) = passport(
        &[
            "admin",
            "create-org",
            "--database",
            db,
            "--name",
            "Riverside Children's Hospital",
            "--sector",
            "hospital-trust",
            "--ods",
            "RXX",
            "--region",
            "North",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("created organisation "));
    let (ok, _, err) = passport(
        &[
            "admin",
            "create-org",
            "--database",
            db,
            "--name",
            "Again",
            "--sector",
            "hospital-trust",
            "--ods",
            "RXX",
            "--region",
            "North",
        ],
        None,
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = passport(
        &[
            "admin",
            "create-org",
            "--database",
            db,
            "--name",
            "X",
            "--sector",
            "castle",
            "--region",
            "N",
        ],
        None,
    );
    assert!(!ok && err.contains("unknown sector"), "{err}");
    let (ok, out, err) = passport(
        &[
            "admin",
            "create-user",
            "--database",
            db,
            "--org",
            "RXX",
            "--role",
            "clinician",
            "--email",
            "Ada@Example.NHS.uk",
            "--name",
            "Ada Clinician",
            "--password-stdin",
        ],
        Some("a long passphrase\n"),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("otpauth://totp/Passport%3Aada%40example.nhs.uk?secret="),
        "{out}"
    );
    assert!(!out.contains("reset-password"), "{out}");
    let (ok, _, err) = passport(
        &[
            "admin",
            "create-user",
            "--database",
            db,
            "--org",
            "RXX",
            "--role",
            "clinician",
            "--email",
            "ada@example.nhs.uk",
            "--password-stdin",
        ],
        Some("a long passphrase\n"),
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, out, err) = passport(
        &[
            "admin",
            "create-user",
            "--database",
            db,
            "--role",
            "family",
            "--email",
            "sam@example.com",
            "--name",
            "Sam Parent",
            "--base-url",
            "https://passport.example",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("https://passport.example/reset-password/"),
        "{out}"
    );
    let (ok, out, _) = passport(&["admin", "list-orgs", "--database", db], None);
    assert!(
        ok && out.contains("Riverside Children's Hospital\thospital-trust\tRXX\t\tNorth"),
        "{out}"
    );
    let (ok, out, _) = passport(&["admin", "list-users", "--database", db], None);
    assert!(ok);
    assert!(
        out.contains("ada@example.nhs.uk\tstaff\tclinician\t"),
        "{out}"
    );
    assert!(
        out.contains("sam@example.com\tfamily\t\t\tyes\tSam Parent"),
        "{out}"
    );
    let (ok, _, _) = passport(
        &[
            "admin",
            "deactivate-user",
            "--database",
            db,
            "--email",
            "sam@example.com",
        ],
        None,
    );
    assert!(ok);
    let (_, out, _) = passport(&["admin", "list-users", "--database", db], None);
    assert!(out.contains("sam@example.com\tfamily\t\t\tno\t"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Roles are given only in their sectors (docs/SECURITY.md §3): a school cannot have a
/// clinician, and regional roles belong to the region's own organisation.
#[test]
fn roles_only_in_their_sectors() {
    let dir = std::env::temp_dir().join(format!("passport-admin-{}", uuid::Uuid::new_v4()));
    let db = format!("sqlite://{}/p.db", dir.display());
    let db = db.as_str();
    let org = |name: &str, sector: &str, ods: &str, regional: bool| {
        let mut args = vec![
            "admin",
            "create-org",
            "--database",
            db,
            "--name",
            name,
            "--sector",
            sector,
            "--ods",
            ods,
            "--region",
            "North",
        ];
        if regional {
            args.push("--regional");
        }
        let (ok, _, err) = passport(&args, None);
        assert!(ok, "{err}");
    };
    org("Hill Primary", "education", "SCH1", false);
    org(
        "Riverside Children's Hospital",
        "hospital-trust",
        "RXX",
        false,
    );
    org("North Children's Passport", "community-health", "QNN", true);
    let user = |org: &str, role: &str, email: &str| {
        passport(
            &[
                "admin",
                "create-user",
                "--database",
                db,
                "--org",
                org,
                "--role",
                role,
                "--email",
                email,
                "--password-stdin",
            ],
            Some("a long passphrase\n"),
        )
    };
    let (ok, _, err) = user("SCH1", "clinician", "fake@example.sch.uk");
    assert!(!ok && err.contains("cannot be given"), "{err}");
    let (ok, _, err) = user("SCH1", "nurse", "fake2@example.sch.uk");
    assert!(!ok && err.contains("cannot be given"), "{err}");
    let (ok, _, err) = user("RXX", "regional-admin", "boss@example.nhs.uk");
    assert!(!ok && err.contains("region's own organisation"), "{err}");
    let (ok, _, err) = user("RXX", "school-staff", "tt@example.nhs.uk");
    assert!(!ok && err.contains("cannot be given"), "{err}");
    for (org, role, email) in [
        ("SCH1", "school-staff", "tom@example.sch.uk"),
        ("SCH1", "organisation-admin", "oli@example.sch.uk"),
        ("RXX", "clinician", "ada@example.nhs.uk"),
        ("QNN", "regional-admin", "rae@example.nhs.uk"),
        ("QNN", "commissioner", "cam@example.nhs.uk"),
    ] {
        let (ok, _, err) = user(org, role, email);
        assert!(ok, "{role} at {org}: {err}");
    }
    let (ok, out, _) = passport(&["admin", "list-users", "--database", db], None);
    assert!(ok);
    assert!(!out.contains("fake"), "{out}");
    let (ok, out, _) = passport(&["admin", "list-orgs", "--database", db], None);
    assert!(ok && out.contains("QNN\t\tNorth\tyes"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `seed-region` builds a region from a JSON spec (the shared fixture) and prints the ids it
/// made; a spec it cannot build (a role its sector does not allow, an unknown field) exits
/// non-zero and writes nothing.
#[test]
fn seed_region_from_a_spec() {
    let dir = std::env::temp_dir().join(format!("passport-admin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/p.db", dir.display());
    let spec = dir.join("region.json");
    let write = |v: serde_json::Value| std::fs::write(&spec, v.to_string()).unwrap();
    let seed = || {
        passport(
            &[
                "admin",
                "seed-region",
                "--database",
                &db,
                "--spec",
                spec.to_str().unwrap(),
            ],
            Some("a long enough passphrase\n"),
        )
    };
    let orgs = serde_json::json!([
        { "key": "hospital", "name": "Riverside Children's Hospital", "sector": "hospital-trust", "ods": "RXX" },
        { "key": "school", "name": "Hill Primary", "sector": "education" }
    ]);
    let child = serde_json::json!({
        "key": "mia", "given": "Mia", "family": "Jones", "nhs_number": "9434765919",
        "birth_date": "2019-03-27", "care_team": ["hospital", "school"],
        "links": [{ "family": "sam@example.com", "relationship": "MTH", "active": true }],
        "items": [{ "resourceType": "AllergyIntolerance", "code": { "text": "Peanut allergy" } }]
    });
    // Refused before anything is written.
    for bad in [
        serde_json::json!({ "region": "North", "organisations": orgs,
            "staff": [{ "org": "school", "role": "clinician", "email": "a@example.sch.uk", "name": "A B" }] }),
        serde_json::json!({ "region": "North", "organisations": orgs, "colour": "blue" }),
    ] {
        write(bad);
        let (ok, out, err) = seed();
        assert!(!ok, "refused: {out}");
        assert!(!err.is_empty());
        let (ok, out, _) = passport(&["admin", "list-orgs", "--database", &db], None);
        assert!(ok);
        assert!(!out.contains("Riverside"), "nothing written: {out}");
    }
    write(serde_json::json!({
        "region": "North", "organisations": orgs,
        "staff": [{ "org": "hospital", "role": "clinician", "email": "ada@example.nhs.uk", "name": "Ada Clinician" }],
        "families": [{ "email": "sam@example.com", "name": "Sam Jones" }],
        "children": [child]
    }));
    let (ok, out, err) = seed();
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(made["organisations"]["hospital"].is_string(), "{made}");
    assert!(made["children"]["mia"].is_string(), "{made}");
    let secret = made["staff"]["ada@example.nhs.uk"]["totp_secret"]
        .as_str()
        .unwrap();
    assert_eq!(secret.len(), 32, "20 bytes in base32");
    let (_, users, _) = passport(&["admin", "list-users", "--database", &db], None);
    assert!(users.contains("ada@example.nhs.uk") && users.contains("sam@example.com"));
    let _ = std::fs::remove_dir_all(dir);
}
