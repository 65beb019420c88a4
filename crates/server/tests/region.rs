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
        totp: None,
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
        totp: None,
    });
    assert!(
        ok.organisations
            .iter()
            .any(|o| o.sector == Sector::Education)
    );
    region::seed(&d, &fixture(), &ok).await.unwrap();
    d.close().await;
});

on_both_databases!(
    the_demo_region_loads_once_and_its_sign_ins_work_only_in_demo_mode,
    |srv| {
        use passport_server::demo::{self, Loaded};
        let demo_srv = common::spawn_demo_on(srv.database_url.clone()).await;
        let d = demo_srv.state.domain.clone();
        let Loaded::Made { sign_ins, notes } = demo::load(&d).await.unwrap() else {
            panic!("made now");
        };
        assert_eq!(sign_ins, demo::sign_ins());
        assert!(notes.iter().any(|n| n.contains("/card/")), "{notes:?}");
        let before = organisations(&d).await;
        assert!(matches!(
            demo::load(&d).await.unwrap(),
            Loaded::AlreadyThere
        ));
        assert_eq!(
            organisations(&d).await,
            before,
            "loading again adds nothing"
        );

        // Every child has a filled passport: the README's first child, the last one.
        for id in ["demo-child-1", &format!("demo-child-{}", demo::CHILDREN)] {
            assert!(
                d.records().read("Patient", id).await.unwrap().is_some(),
                "{id}"
            );
        }

        // The history carries its dates, in the order it happened: the clinician's entries
        // two months ago, a parent's additions a month ago and their review ten days ago
        // (the second child); the first child's additions, two days ago, still wait.
        let days_ago = |stamp: &serde_json::Value| {
            let at = passport_server::clock::parse_fhir_datetime(stamp.as_str().unwrap())
                .unwrap_or_else(|| panic!("a date: {stamp}"));
            (passport_server::clock::now_us() - at) / 86_400_000_000
        };
        let record = |id: &'static str| {
            let d = d.clone();
            async move { domain::passport::compartment(&d, id).await.unwrap() }
        };
        let second = record("demo-child-2").await;
        let of = |all: &[serde_json::Value], ty: &str| -> Vec<serde_json::Value> {
            all.iter()
                .filter(|v| v["resourceType"] == ty)
                .cloned()
                .collect()
        };
        for c in of(&second, "Condition") {
            assert_eq!(days_ago(&c["meta"]["lastUpdated"]), 59, "{c}");
        }
        let authored: Vec<i64> = of(&second, "QuestionnaireResponse")
            .iter()
            .map(|q| days_ago(&q["authored"]))
            .collect();
        assert!(authored.contains(&59), "clinic visit: {authored:?}");
        assert!(
            authored.contains(&29),
            "the parent's additions: {authored:?}"
        );
        let reviews: Vec<i64> = of(&second, "Provenance")
            .iter()
            .filter(|p| p["agent"][0]["who"]["display"].is_string())
            .map(|p| days_ago(&p["recorded"]))
            .collect();
        assert!(reviews.contains(&9), "reviewed ten days ago: {reviews:?}");
        let first = record("demo-child-1").await;
        let waiting: Vec<i64> = first
            .iter()
            .filter(|v| domain::passport::awaiting(v))
            .map(|v| days_ago(&v["meta"]["lastUpdated"]))
            .collect();
        assert!(
            !waiting.is_empty() && waiting.iter().all(|d| *d == 2),
            "{waiting:?}"
        );
        for v in second.iter().chain(&first) {
            assert!(
                days_ago(&v["meta"]["lastUpdated"]) >= 0,
                "nothing after now: {v}"
            );
        }

        // Every row of docs/DEMO.md signs in on the demo server, staff with their TOTP.
        for s in &sign_ins {
            let mut b = common::browser::Browser::new(&demo_srv.base);
            let p = b.sign_in(&s.username, &s.password).await;
            assert_eq!(p.status, 303, "{}: {}", s.username, p.body);
            match &s.totp {
                None => assert_eq!(p.location, "/", "{}", s.username),
                Some(secret) => {
                    assert_eq!(p.location, "/sign-in/code", "{}", s.username);
                    let derived = demo::totp_secret(&s.username);
                    assert_eq!(&passport_server::web::auth::base32(&derived), secret);
                    let secret = derived;
                    let form = b.get("/sign-in/code").await;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let code = passport_server::web::auth::totp_code(&secret, now);
                    let p = b
                        .post(
                            "/sign-in/code",
                            &[("code", &code), ("csrf_token", &form.csrf())],
                        )
                        .await;
                    assert_eq!(p.status, 303, "{}: {}", s.username, p.body);
                }
            }
            let home = b.get("/").await;
            assert!(
                home.body.contains("id=\"signed-in-name\""),
                "{}",
                s.username
            );
        }

        // The same sign-ins on a server started without --demo: refused.
        for s in sign_ins.iter().step_by(9) {
            let mut b = common::browser::Browser::new(&srv.base);
            let p = b.sign_in(&s.username, &s.password).await;
            assert_eq!(p.status, 400, "{} signed in without --demo", s.username);
        }
        d.close().await;
    }
);

// Demo mode refuses a database that holds anything but the demo region.
on_both_databases!(the_demo_refuses_a_database_with_other_data, |srv| {
    let d = open(&srv.database_url).await;
    region::seed(&d, &fixture(), &Spec::standard("a-long-password-1"))
        .await
        .unwrap();
    let before = organisations(&d).await;
    let refused = passport_server::demo::load(&d).await;
    assert!(
        refused
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("not the demo region")),
        "{:?}",
        refused.err()
    );
    assert_eq!(organisations(&d).await, before, "nothing added");
    d.close().await;
});

// The emergency view of a demo child of each condition template shows every value the
// demo entered in its emergency information: reactions, doses, routes, phone numbers and
// each step of the protocol.
on_both_databases!(
    the_emergency_view_shows_every_value_of_every_demo_template,
    |srv| {
        use passport_server::demo::{self, DEMO_PASSWORD};
        let demo_srv = common::spawn_demo_on(srv.database_url.clone()).await;
        let d = demo_srv.state.domain.clone();
        demo::load(&d).await.unwrap();
        let mut b = common::browser::Browser::new(&demo_srv.base).unescaping_slashes();
        let login = "clinician.hospital@demo.example";
        let p = b.sign_in(login, DEMO_PASSWORD).await;
        assert_eq!(p.location, "/sign-in/code");
        let form = b.get("/sign-in/code").await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let code = passport_server::web::auth::totp_code(&demo::totp_secret(login), now);
        let p = b
            .post(
                "/sign-in/code",
                &[("code", &code), ("csrf_token", &form.csrf())],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        for i in 0..6 {
            let page = b
                .get(&format!("/passport/demo-child-{}/emergency", i + 1))
                .await;
            assert_eq!(page.status, 200, "{}", page.body);
            let text = page.body.replace("&#x27;", "'").replace("&quot;", "\"");
            for value in demo::entered(i) {
                assert!(text.contains(&value), "child {}: {value}", i + 1);
            }
        }
        d.close().await;
    }
);

// Every staff request reads its organisation; the directory keeps it for a second, but a
// change written through the one path is seen at once.
on_both_databases!(an_organisation_changed_is_seen_at_once, |srv| {
    use passport_server::web::directory;
    let d = open(&srv.database_url).await;
    let r = region::seed(&d, &fixture(), &Spec::standard(PASSWORD))
        .await
        .unwrap();
    let id = r.org("hospital").to_owned();
    let before = directory::organisation(&d, &id).await.unwrap().unwrap();
    // Read again within the second: the same answer.
    assert_eq!(
        directory::organisation(&d, &id).await.unwrap(),
        Some(before.clone())
    );
    let stored = d
        .records()
        .read("Organization", &id)
        .await
        .unwrap()
        .unwrap();
    let mut body: Value = serde_json::from_slice(&stored.body).unwrap();
    body["name"] = "Renamed Children's Hospital".into();
    let write = passport_server::records::new_version(body, Some(&stored)).unwrap();
    d.records().write(&fixture(), write).await.unwrap();
    let after = directory::organisation(&d, &id).await.unwrap().unwrap();
    assert_eq!(after.name, "Renamed Children's Hospital");
    assert_ne!(after, before);
    d.close().await;
});
