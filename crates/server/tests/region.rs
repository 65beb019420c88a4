//! The shared region fixture (`domain::region`), on SQLite and PostgreSQL: what it builds
//! is there, every record it writes went through the one write path (an AuditEvent naming
//! the operator, in the child's audit log), a spec that cannot be built writes nothing, and
//! the demo built with it loads once.

mod common;

use access::{Role, Sector};
use common::fixture;
use passport_server::region::{self, Spec};
use passport_store::AuditQuery;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

async fn open(url: &str) -> std::sync::Arc<passport_server::Domain> {
    passport_server::Domain::open(domain::Settings::admin(url, "https://passport.test"))
        .await
        .unwrap()
}

async fn organisations(d: &passport_server::Domain) -> usize {
    passport_server::web::directory::list_organisations(d)
        .await
        .unwrap()
        .len()
}

on_both_databases!(the_standard_region_is_built_through_the_one_path, |srv| {
    let d = open(&srv.database_url).await;
    let spec = Spec::standard(PASSWORD);
    let r = region::seed(&d, &fixture(), &spec).await.unwrap();
    assert_eq!(r.organisations.len(), spec.organisations.len());
    assert_eq!(organisations(&d).await, spec.organisations.len());
    for s in &spec.staff {
        let login = r.staff(&s.email);
        let account = d.data().account(&login.account_id).await.unwrap().unwrap();
        assert_eq!(account.role.as_deref(), Some(s.role.code()), "{}", s.email);
        assert_eq!(
            account.organisation_id.as_deref(),
            Some(r.org(&s.org)),
            "{}",
            s.email
        );
        assert_eq!(login.totp_secret.len(), 20, "{}", s.email);
    }
    for f in &spec.families {
        let account = d.data().account(&r.families[&f.email]).await.unwrap();
        assert!(
            account.is_some_and(|a| a.person_id.is_some()),
            "{}",
            f.email
        );
    }
    // Mia: her Patient, a care team naming the hospital, her records with their sections,
    // her family links — each written with an AuditEvent naming the operator.
    let mia = r.child("mia");
    let patient = d.records().read("Patient", mia).await.unwrap().unwrap();
    let body: Value = serde_json::from_slice(&patient.body).unwrap();
    assert_eq!(body["identifier"][0]["value"], "9434765919");
    let log = d
        .data()
        .test_store()
        .list_audit(&AuditQuery {
            patient_id: Some(mia.to_owned()),
            include_safeguarding: true,
            count: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let created: Vec<Value> = log
        .iter()
        .map(|e| serde_json::from_slice(&e.record.event).unwrap())
        .filter(|e: &Value| e["action"] == "C")
        .collect();
    // What was written: the entity that is not the child (who is an entity of each event),
    // or the child's Patient itself.
    let types: Vec<String> = created
        .iter()
        .map(|e| {
            let refs: Vec<&str> = e["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["what"]["reference"].as_str())
                .collect();
            let written = refs.iter().find(|r| !r.starts_with("Patient/"));
            written
                .map_or("Patient", |r| r.split('/').next().unwrap())
                .to_owned()
        })
        .collect();
    for (ty, n) in [
        ("Patient", 1),
        ("CareTeam", 1),
        ("AllergyIntolerance", 1),
        ("Condition", 1),
        ("MedicationStatement", 2),
        ("RelatedPerson", 2),
    ] {
        assert_eq!(
            types.iter().filter(|t| *t == ty).count(),
            n,
            "{ty} creations audited: {types:?}"
        );
    }
    assert!(
        created
            .iter()
            .all(|e| e.to_string().contains("test fixture")),
        "every creation names the operator"
    );
    d.close().await;
});

on_both_databases!(a_spec_that_cannot_be_built_writes_nothing, |srv| {
    let d = open(&srv.database_url).await;
    let good = Spec::standard(PASSWORD);
    let mut bad_role = good.clone();
    bad_role.staff.push(region::Staff {
        org: "school".into(),
        role: Role::Clinician,
        email: "dr.school@example.sch.uk".into(),
        name: "Not A Clinician".into(),
    });
    let mut bad_key = good.clone();
    bad_key.children[0].care_team.push("nowhere".into());
    let mut bad_nhs = good.clone();
    bad_nhs.children[0].nhs_number = "9434765918".into();
    let mut bad_item = good.clone();
    bad_item.children[0]
        .items
        .push(serde_json::json!({ "resourceType": "Condition", "code": "not a concept" }));
    let mut twice = good.clone();
    twice.families.push(twice.families[0].clone());
    let mut short = good.clone();
    short.password = "short".into();
    for (what, spec) in [
        ("a clinician at a school", bad_role),
        ("an unknown organisation", bad_key),
        ("an NHS Number failing its check", bad_nhs),
        ("an invalid item", bad_item),
        ("an email used twice", twice),
        ("a short password", short),
    ] {
        let e = region::seed(&d, &fixture(), &spec).await;
        assert!(
            matches!(
                e,
                Err(passport_server::web::directory::DirectoryError::Invalid(_))
            ),
            "{what}: {e:?}"
        );
        assert_eq!(organisations(&d).await, 0, "{what}: nothing written");
    }
    // A sector's own roles are fine.
    let mut ok = good;
    ok.staff.push(region::Staff {
        org: "school".into(),
        role: Role::SchoolStaff,
        email: "ms.class@example.sch.uk".into(),
        name: "Ms Class".into(),
    });
    assert!(
        ok.organisations
            .iter()
            .any(|o| o.sector == Sector::Education)
    );
    region::seed(&d, &fixture(), &ok).await.unwrap();
    d.close().await;
});

on_both_databases!(the_demo_region_loads_once, |srv| {
    let d = open(&srv.database_url).await;
    let sign_ins = passport_server::demo::load(&d)
        .await
        .unwrap()
        .expect("made now");
    // Staff sign in with a password and an authenticator; families with a password.
    assert!(sign_ins.iter().any(|s| s.totp_uri.is_some()));
    assert!(sign_ins.iter().any(|s| s.totp_uri.is_none()));
    assert!(sign_ins.iter().all(|s| s.password.len() >= 12));
    let before = organisations(&d).await;
    assert!(passport_server::demo::load(&d).await.unwrap().is_none());
    assert_eq!(
        organisations(&d).await,
        before,
        "loading again adds nothing"
    );
    // The README's example child is there with its records.
    let child = d.records().read("Patient", "demo-child-1").await.unwrap();
    assert!(child.is_some());
    let allergy = d
        .records()
        .read("AllergyIntolerance", "demo-child-1-allergy")
        .await
        .unwrap();
    assert!(allergy.is_some());
    d.close().await;
});
