//! `passport admin import-clinic-list` through the real binary: a file with a bad row
//! writes nothing; a good one prints a CSV of codes and links.

use std::process::Command;

fn passport(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(args)
        .env("PASSPORT_LOG", "warn")
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_is_all_or_nothing() {
    let dir = std::env::temp_dir().join(format!("passport-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/p.db", dir.display());
    let (ok, _, err) = passport(&[
        "admin",
        "create-org",
        "--database",
        &db,
        "--name",
        "Riverside",
        "--sector",
        "hospital-trust",
        "--ods",
        "RXX",
        "--region",
        "North",
    ]);
    assert!(ok, "{err}");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "nhs_number,given,family,birth_date,parent_email\n\
         9434765919,Amy,Ray,2019-01-01,amy@example.com\n\
         9434765918,Ben,Ray,2019-01-01,\n",
    )
    .unwrap();
    let args = |csv: &std::path::Path| {
        vec![
            "admin".to_owned(),
            "import-clinic-list".into(),
            "--database".into(),
            db.clone(),
            "--org".into(),
            "RXX".into(),
            "--csv".into(),
            csv.display().to_string(),
            "--base-url".into(),
            "https://passport.example".into(),
        ]
    };
    let a = args(&bad);
    let (ok, out, err) = passport(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("line 3:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");

    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "nhs_number,given,family,birth_date\n9434765919,Amy,Ray,01/01/2019\n",
    )
    .unwrap();
    let a = args(&good);
    let (ok, out, err) = passport(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "nhs_number,patient_id,new_passport,parent_email,code,link"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].starts_with("9434765919,"), "{out}");
    assert!(lines[1].contains(",yes,"), "{out}");
    assert!(lines[1].contains("https://passport.example/join/"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
