//! The passport pages over real HTTP, on SQLite and PostgreSQL (issue 10): a parent adds an
//! allergy through the core template's form (coded substance, reaction, severity, date); it
//! waits for review; a clinician sees what changed, checks it (a Provenance, the item
//! confirmed) and "what changed" empties; the parent's change reopens the review; two
//! carers' edits of one item give a conflict page; ending an item the FHIR way moves it out
//! of the current passport; "not shared with you" and "none recorded" are told apart; bad
//! input saves nothing; every record-changing route is audited.

mod common;

use common::browser::{Browser, PASSWORD};
use common::fixture;
use common::passport::{World, family, option_value, staff, world};
use passport_server::region::{self, Spec};
use serde_json::Value;

/// The allergies of Mia as stored (current versions), by id.
async fn allergies(w: &World) -> Vec<Value> {
    let rows = w
        .store
        .records()
        .everything(
            &domain::types::search::EverythingQuery {
                patient_id: w.mia.clone(),
                members: vec![("AllergyIntolerance".into(), vec!["patient".into()])],
                since_us: None,
                count: 100,
                after: None,
            },
            domain::types::search::Visibility::System,
        )
        .await
        .unwrap();
    rows.iter()
        .map(|m| serde_json::from_slice::<Value>(&m.body).unwrap())
        .filter(|v| v["resourceType"] == "AllergyIntolerance")
        .collect()
}

async fn of_type(w: &World, ty: &str, param: &str) -> Vec<Value> {
    let rows = w
        .store
        .records()
        .everything(
            &domain::types::search::EverythingQuery {
                patient_id: w.mia.clone(),
                members: vec![(ty.into(), vec![param.into()])],
                since_us: None,
                count: 100,
                after: None,
            },
            domain::types::search::Visibility::System,
        )
        .await
        .unwrap();
    rows.iter()
        .map(|m| serde_json::from_slice::<Value>(&m.body).unwrap())
        .filter(|v| v["resourceType"] == ty)
        .collect()
}

fn milk_allergy<'a>(fields: &mut Vec<(&'a str, &'a str)>, milk: &'a str) {
    fields.extend([
        ("allergy-substance", milk),
        ("allergy-reaction", "other"),
        ("allergy-reaction-other", "Hives on the face"),
        ("allergy-severity", "moderate"),
        ("allergy-date-day", "3"),
        ("allergy-date-month", "2"),
        ("allergy-date-year", "2024"),
    ]);
}

on_both_databases!(
    a_parent_adds_an_allergy_and_the_clinician_checks_it,
    |srv| {
        let w = world(&srv.database_url).await;
        let base = srv.base.clone();
        let passport = format!("/passport/{}", w.mia);
        let mut sam = family(&base, "sam@example.com").await;

        // The passport at a glance: the recorded allergy, every section present.
        let p = sam.get(&passport).await;
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains("Mia Jones's passport"), "{}", p.body);
        assert!(p.body.contains("943 476 5919") && p.body.contains("27 March 2019"));
        assert!(p.body.contains("Peanut allergy"));
        assert!(
            !p.body.contains("Not shared with you"),
            "a parent sees every section"
        );

        // The core template's allergy form, with the substance coded from the subset.
        let add = format!("{passport}/add/allergy");
        let form = sam.get(&add).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let milk = option_value(&form.body, "Cow&#x27;s milk");
        assert!(milk.starts_with("http://snomed.info/sct|"), "{milk}");
        let mut fields = vec![];
        milk_allergy(&mut fields, &milk);
        let saved = sam.submit(&add, &add, &fields).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let stored = allergies(&w).await;
        let new = stored
            .iter()
            .find(|a| a["code"]["text"] == "Cow's milk")
            .expect("stored as an AllergyIntolerance")
            .clone();
        let id = new["id"].as_str().unwrap().to_owned();
        assert_eq!(new["code"]["coding"][0]["system"], "http://snomed.info/sct");
        assert_eq!(
            new["reaction"][0]["manifestation"][0]["text"],
            "Hives on the face"
        );
        assert_eq!(new["reaction"][0]["severity"], "moderate");
        assert_eq!(new["onsetDateTime"], "2024-02-03");
        assert_eq!(
            new["verificationStatus"]["coding"][0]["code"],
            "unconfirmed"
        );
        assert!(domain::passport::awaiting(&new));
        // Its answers: one QuestionnaireResponse, in the allergies section only, against the
        // published template version.
        let qrs = of_type(&w, "QuestionnaireResponse", "subject").await;
        assert_eq!(qrs.len(), 1, "{qrs:?}");
        assert_eq!(
            access::Section::from_resource_meta(&qrs[0]),
            access::SectionSet::of(&[access::Section::Allergies])
        );
        assert_eq!(
            qrs[0]["questionnaire"],
            "https://passport.nhs.uk/fhir/Questionnaire/core|2"
        );
        let p = sam.get(&passport).await;
        assert!(
            p.body.contains("Added by family — waiting for review"),
            "{}",
            p.body
        );
        assert!(p.body.contains("Hives on the face") && p.body.contains("Moderate"));

        // The clinician: waiting on the passport, listed in what changed, checked.
        let mut cara = staff(&base, &w, "cara@example.nhs.uk").await;
        let p = cara.get(&passport).await;
        assert!(p.body.contains("waiting-review"), "{}", p.body);
        let changes = cara.get(&format!("{passport}/changes")).await;
        assert_eq!(changes.status, 200);
        assert!(changes.body.contains("Cow&#x27;s milk") || changes.body.contains("Cow's milk"));
        assert!(changes.body.contains("Hives on the face"));
        let checked = cara
            .submit(
                &format!("{passport}/changes"),
                &format!("{passport}/item/AllergyIntolerance/{id}/checked"),
                &[("version", "1")],
            )
            .await;
        assert_eq!(checked.status, 303, "{}", checked.body);
        let after = cara.get(&format!("{passport}/changes")).await;
        assert!(after.body.contains("nothing-changed"), "{}", after.body);
        let now: Value = allergies(&w)
            .await
            .into_iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap();
        assert_eq!(now["verificationStatus"]["coding"][0]["code"], "confirmed");
        assert!(!domain::passport::awaiting(&now));
        let provenance = of_type(&w, "Provenance", "patient").await;
        assert_eq!(provenance.len(), 1, "{provenance:?}");
        assert_eq!(
            provenance[0]["target"][0]["reference"],
            format!("AllergyIntolerance/{id}/_history/2")
        );
        assert_eq!(
            access::Section::from_resource_meta(&provenance[0]),
            access::SectionSet::of(&[access::Section::Allergies]),
            "the Provenance carries its target's section"
        );
        let p = sam.get(&passport).await;
        assert!(p.body.contains("Checked by Cara Carer"), "{}", p.body);

        // The parent changes it: waiting again, and the clinician sees before and after.
        let item = format!("{passport}/item/AllergyIntolerance/{id}");
        let form = sam.get(&item).await;
        assert_eq!(form.hidden("version"), "2");
        assert!(
            form.body.contains("Hives on the face"),
            "the form is filled in"
        );
        let mut fields = vec![("version", "2")];
        milk_allergy(&mut fields, &milk);
        fields.retain(|(k, _)| *k != "allergy-severity");
        fields.push(("allergy-severity", "severe"));
        let saved = sam.submit(&item, &item, &fields).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let changes = cara.get(&format!("{passport}/changes")).await;
        assert!(
            changes.body.contains("Moderate") && changes.body.contains("Severe"),
            "{}",
            changes.body
        );
        let p = sam.get(&passport).await;
        assert!(p.body.contains("Added by family — waiting for review"));
        w.store.close().await;
    }
);

on_both_databases!(two_carers_editing_one_item_get_a_conflict, |srv| {
    let w = world(&srv.database_url).await;
    let base = srv.base.clone();
    let item = format!("/passport/{}/item/AllergyIntolerance/mia-allergy", w.mia);
    let mut first = family(&base, "sam@example.com").await;
    let mut second = family(&base, "sam@example.com").await;
    let a = first.get(&item).await;
    let b = second.get(&item).await;
    assert_eq!(a.hidden("version"), b.hidden("version"));
    let version = a.hidden("version");
    let post = |who: &str| {
        vec![
            ("version".to_owned(), version.clone()),
            ("allergy-substance".to_owned(), "other".to_owned()),
            (
                "allergy-substance-other".to_owned(),
                format!("Peanut ({who})"),
            ),
        ]
    };
    let mut one = post("first");
    one.push(("csrf_token".into(), a.csrf()));
    let saved = first.post(&item, &one).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let mut two = post("second");
    two.push(("csrf_token".into(), b.csrf()));
    let clash = second.post(&item, &two).await;
    assert_eq!(clash.status, 409, "{}", clash.body);
    assert!(clash.body.contains("Someone else changed this item"));
    let stored = allergies(&w).await;
    let a = stored.iter().find(|a| a["id"] == "mia-allergy").unwrap();
    assert_eq!(
        a["code"]["text"], "Peanut (first)",
        "the first change kept, not overwritten"
    );
    w.store.close().await;
});

on_both_databases!(not_shared_and_none_recorded_are_told_apart, |srv| {
    let w = world(&srv.database_url).await;
    let mut tom = staff(&srv.base, &w, "tom@example.sch.uk").await;
    let p = tom.get(&format!("/passport/{}", w.mia)).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let section = |code: &str| {
        let start = p.body.find(&format!("id=\"{code}\"")).unwrap();
        let end = p.body[start..].find("</section>").unwrap() + start;
        p.body[start..end].to_owned()
    };
    // Schools see allergies and medicines by default (docs/SECURITY.md §5.1).
    assert!(section("allergies").contains("Peanut allergy"));
    assert!(section("medicines").contains("Salbutamol inhaler"));
    // Conditions hold an item but are not shared with schools: "not shared", never "none".
    assert!(section("conditions").contains("Not shared with you"));
    assert!(!section("conditions").contains("Asthma"));
    // Social care holds nothing and is not shared: the same words, so nothing is learnt.
    assert!(section("social-care").contains("Not shared with you"));
    // The emergency protocol is shared with schools by default and empty: "none recorded".
    let emergency = section("emergency");
    assert!(
        emergency.contains("None recorded") || emergency.contains("Not shared with you"),
        "{emergency}"
    );
    // A parent sees every section; an empty one reads "None recorded".
    let mut sam = family(&srv.base, "sam@example.com").await;
    let p = sam.get(&format!("/passport/{}", w.mia)).await;
    assert!(!p.body.contains("Not shared with you"));
    assert!(p.body.contains("social-care-none"));
    // Nobody outside the care team or the family sees a passport at all.
    let mut nosy = family(&srv.base, "nosy@example.com").await;
    assert_eq!(nosy.get(&format!("/passport/{}", w.mia)).await.status, 404);
    let mut erin = staff(&srv.base, &w, "erin@example.nhs.uk").await;
    assert_eq!(erin.get(&format!("/passport/{}", w.mia)).await.status, 404);
    w.store.close().await;
});

on_both_databases!(bad_input_saves_nothing, |srv| {
    let w = world(&srv.database_url).await;
    let add = format!("/passport/{}/add/allergy", w.mia);
    let mut sam = family(&srv.base, "sam@example.com").await;
    let before = allergies(&w).await.len();
    for (fields, field) in [
        (
            vec![
                ("allergy-substance", "other"),
                ("allergy-substance-other", "Sesame"),
                ("allergy-date-day", "31"),
                ("allergy-date-month", "2"),
                ("allergy-date-year", "2024"),
            ],
            "allergy-date",
        ),
        (vec![("allergy-severity", "mild")], "allergy-substance"),
        (
            vec![("allergy-substance", "http://snomed.info/sct|1")],
            "allergy-substance",
        ),
    ] {
        let p = sam.submit(&add, &add, &fields).await;
        assert_eq!(p.status, 400, "{}", p.body);
        assert!(p.has_error_summary_for(field), "{field}: {}", p.body);
    }
    assert_eq!(allergies(&w).await.len(), before, "nothing saved");
    // A form without the session's CSRF token is refused.
    let p = sam
        .post(
            &add,
            &[
                ("allergy-substance", "other"),
                ("allergy-substance-other", "x"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(allergies(&w).await.len(), before);
    w.store.close().await;
});

on_both_databases!(ending_items_the_fhir_way, |srv| {
    let w = world(&srv.database_url).await;
    let passport = format!("/passport/{}", w.mia);
    let mut sam = family(&srv.base, "sam@example.com").await;
    // The recorded peanut allergy is no longer true: resolved, out of the current view,
    // in "no longer current".
    let item = format!("{passport}/item/AllergyIntolerance/mia-allergy");
    let form = sam.get(&item).await;
    let ended = sam
        .submit(
            &item,
            &format!("{item}/end"),
            &[
                ("version", &form.hidden("version")),
                ("how", "no-longer-true"),
            ],
        )
        .await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    let a = allergies(&w).await;
    let peanut = a.iter().find(|a| a["id"] == "mia-allergy").unwrap();
    assert_eq!(peanut["clinicalStatus"]["coding"][0]["code"], "resolved");
    assert!(peanut["lastOccurrence"].is_string());
    let p = sam.get(&passport).await;
    let allergies_section = p.body[p.body.find("id=\"allergies\"").unwrap()..].to_owned();
    let allergies_section = &allergies_section[..allergies_section.find("</section>").unwrap()];
    assert!(
        allergies_section.contains("No longer current (1)"),
        "{allergies_section}"
    );
    assert!(
        allergies_section.contains("allergies-none"),
        "no current allergy left"
    );

    // The family may delete only their own unchecked item.
    let add = format!("{passport}/add/allergy");
    let saved = sam
        .submit(
            &add,
            &add,
            &[
                ("allergy-substance", "other"),
                ("allergy-substance-other", "Kiwi"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303);
    let kiwi = allergies(&w)
        .await
        .into_iter()
        .find(|a| a["code"]["text"] == "Kiwi")
        .unwrap();
    let kiwi_item = format!(
        "{passport}/item/AllergyIntolerance/{}",
        kiwi["id"].as_str().unwrap()
    );
    let form = sam.get(&kiwi_item).await;
    assert!(form.body.contains("id=\"delete\""), "{}", form.body);
    let gone = sam
        .submit(
            &kiwi_item,
            &format!("{kiwi_item}/end"),
            &[("version", "1"), ("how", "delete")],
        )
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    assert!(
        allergies(&w)
            .await
            .iter()
            .all(|a| a["code"]["text"] != "Kiwi")
    );
    // The clinician's condition was recorded by the care team: the family cannot delete it.
    let cond = format!("{passport}/item/Condition/mia-condition");
    let refused = sam
        .submit(
            &cond,
            &format!("{cond}/end"),
            &[("version", "1"), ("how", "delete")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The clinician marks it entered in error: hidden from the passport, kept in history.
    let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
    let wrong = cara
        .submit(
            &cond,
            &format!("{cond}/end"),
            &[("version", "1"), ("how", "entered-in-error")],
        )
        .await;
    assert_eq!(wrong.status, 303, "{}", wrong.body);
    let p = sam.get(&passport).await;
    assert!(!p.body.contains("Asthma diagnosis"));
    let c = of_type(&w, "Condition", "subject").await;
    assert_eq!(
        c[0]["verificationStatus"]["coding"][0]["code"],
        "entered-in-error"
    );
    assert!(c[0]["clinicalStatus"].is_null(), "FHIR con-5");
    w.store.close().await;
});

// Every page route that changes a passport item leaves an AuditEvent in the child's
// record naming the person. The table is iterated: a new route of that kind fails here
// until it is exercised.
on_both_databases!(every_record_route_is_audited, |srv| {
    use passport_server::web::{Effect, table};
    let w = world(&srv.database_url).await;
    let routes: std::collections::BTreeSet<&str> = table()
        .iter()
        .filter(|r| r.post == Some(Effect::Record))
        .map(|r| r.path)
        .collect();
    let passport = format!("/passport/{}", w.mia);
    let mut sam = family(&srv.base, "sam@example.com").await;
    let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
    let trail = |w: &World| {
        let store = w.store.clone();
        let mia = w.mia.clone();
        async move {
            let log = store
                .data()
                .test_store()
                .list_audit(&passport_store::AuditQuery {
                    patient_id: Some(mia),
                    count: 500,
                    ..Default::default()
                })
                .await
                .unwrap();
            log.iter()
                .filter_map(|e| {
                    let ev: Value = serde_json::from_slice(&e.record.event).ok()?;
                    (ev["action"] != "R").then(|| {
                        ev["agent"][0]["who"]["display"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned()
                    })
                })
                .collect::<Vec<String>>()
        }
    };
    let mut checked = std::collections::BTreeSet::new();
    let mut expect = |route: &'static str, who: &str, before: usize, after: &[String]| {
        assert!(
            after[..after.len() - before].iter().any(|a| a == who),
            "{route}: no change by {who}: {after:?}"
        );
        checked.insert(route);
    };
    let add = format!("{passport}/add/allergy");
    let n = trail(&w).await.len();
    let p = sam
        .submit(
            &add,
            &add,
            &[
                ("allergy-substance", "other"),
                ("allergy-substance-other", "Egg"),
            ],
        )
        .await;
    assert_eq!(p.status, 303);
    let t = trail(&w).await;
    expect("/passport/{patient}/add/{form}", "Sam Jones", n, &t);
    let egg = allergies(&w)
        .await
        .into_iter()
        .find(|a| a["code"]["text"] == "Egg")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = format!("{passport}/item/AllergyIntolerance/{egg}");
    let n = trail(&w).await.len();
    let p = sam
        .submit(
            &item,
            &item,
            &[
                ("version", "1"),
                ("allergy-substance", "other"),
                ("allergy-substance-other", "Eggs"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    expect(
        "/passport/{patient}/item/{type}/{id}",
        "Sam Jones",
        n,
        &trail(&w).await,
    );
    let n = trail(&w).await.len();
    let p = cara
        .submit(
            &format!("{passport}/changes"),
            &format!("{item}/checked"),
            &[("version", "2")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    expect(
        "/passport/{patient}/item/{type}/{id}/checked",
        "Cara Carer",
        n,
        &trail(&w).await,
    );
    let n = trail(&w).await.len();
    let p = cara
        .submit(
            &item,
            &format!("{item}/end"),
            &[("version", "3"), ("how", "no-longer-true")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    expect(
        "/passport/{patient}/item/{type}/{id}/end",
        "Cara Carer",
        n,
        &trail(&w).await,
    );
    let n = trail(&w).await.len();
    let p = cara
        .submit(
            &format!("{passport}/changes"),
            &format!("{passport}/review-date"),
            &[
                ("next-review-day", "1"),
                ("next-review-month", "6"),
                ("next-review-year", "2099"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    expect(
        "/passport/{patient}/review-date",
        "Cara Carer",
        n,
        &trail(&w).await,
    );
    // A photo, by the parent.
    let n = trail(&w).await.len();
    let page = format!("{passport}/photo");
    let csrf = sam.get(&page).await.csrf();
    let p = sam
        .post_multipart(
            &page,
            &[("csrf_token", &csrf)],
            ("photo", "me.jpg", &jpeg_with_location()),
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    expect(
        "/passport/{patient}/photo",
        "Sam Jones",
        n,
        &trail(&w).await,
    );
    // A professional asks to join Mia's care team: audited under Mia's record.
    let n = trail(&w).await.len();
    let mut sol = staff(&srv.base, &w, "sol@example.gov.uk").await;
    let p = sol
        .submit(
            "/passports/join",
            "/passports/join",
            &[("nhs_number", "9434765919"), ("birth_date", "27/3/2019")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    expect("/passports/join", "Sol Social", n, &trail(&w).await);
    assert_eq!(checked, routes, "the route table's record-changing routes");
    w.store.close().await;
});

on_both_databases!(the_regional_admin_previews_and_publishes_templates, |srv| {
    let w = world(&srv.database_url).await;
    let mut rae = staff(&srv.base, &w, "rae@example.nhs.uk").await;
    let list = rae.get("/admin/templates").await;
    assert_eq!(list.status, 200, "{}", list.body);
    for id in templates::IDS {
        assert!(
            list.body.contains(&format!("/admin/templates/{id}")),
            "{id}: {}",
            list.body
        );
    }
    assert!(list.body.contains("Not published yet"));
    // The preview shows every question, its section and the escalation rules.
    let epilepsy = rae.get("/admin/templates/epilepsy").await;
    assert_eq!(epilepsy.status, 200);
    assert!(
        epilepsy.body.contains("Escalation rule E1"),
        "{}",
        epilepsy.body
    );
    assert!(
        epilepsy.body.contains("entered by the child's clinician"),
        "{}",
        epilepsy.body
    );
    let published = rae
        .submit(
            "/admin/templates",
            "/admin/templates",
            &[("template", "epilepsy")],
        )
        .await;
    assert_eq!(published.status, 303, "{}", published.body);
    let stored = w
        .store
        .records()
        .read("Questionnaire", "epilepsy")
        .await
        .unwrap()
        .expect("published");
    let q: Value = serde_json::from_slice(&stored.body).unwrap();
    assert_eq!(
        q["url"],
        "https://passport.nhs.uk/fhir/Questionnaire/epilepsy"
    );
    // Publishing the same version again writes nothing new.
    rae.submit(
        "/admin/templates",
        "/admin/templates",
        &[("template", "epilepsy")],
    )
    .await;
    let again = w
        .store
        .records()
        .read("Questionnaire", "epilepsy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version_id, stored.version_id);
    // Nobody else publishes.
    let mut oli = staff(&srv.base, &w, "oli@example.nhs.uk").await;
    assert_eq!(oli.get("/admin/templates").await.status, 403);
    let mut sam = family(&srv.base, "sam@example.com").await;
    assert_eq!(sam.get("/admin/templates/core").await.status, 403);
    w.store.close().await;
});

// Every page shows a signed-in person who they are signed in as, the places they use and
// signing out; signed-out pages show none of it.
on_both_databases!(every_signed_in_page_has_the_header, |srv| {
    let w = world(&srv.database_url).await;
    let mut anon = Browser::new(&srv.base).unescaping_slashes();
    let signin = anon.get("/sign-in").await;
    assert!(!signin.body.contains("id=\"sign-out\""));
    let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
    for path in ["/", "/passports", &format!("/passport/{}", w.mia)] {
        let p = cara.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(
            p.body.contains("id=\"signed-in-name\">Cara Carer<"),
            "{path}"
        );
        assert!(p.body.contains("id=\"sign-out\""), "{path}");
        assert!(
            p.body.contains("href=\"/passports\""),
            "{path}: the care team's children"
        );
    }
    let mut sam = family(&srv.base, "sam@example.com").await;
    let home = sam.get("/").await;
    assert!(home.body.contains("id=\"signed-in-name\">Sam Jones<"));
    assert!(
        !home.body.contains("href=\"/passports\""),
        "not for families"
    );
    // The header's sign-out form works.
    let out = sam.post("/sign-out", &[("csrf_token", home.csrf())]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(sam.get(&format!("/passport/{}", w.mia)).await.status, 303);
    w.store.close().await;
});

/// Each section of a passport page: (code, shared, item labels).
fn sections(body: &str) -> Vec<(String, bool, Vec<String>)> {
    body.split("<section class=\"passport-section\" id=\"")
        .skip(1)
        .map(|part| {
            let part = &part[..part.find("</section>").unwrap()];
            let code = part[..part.find('"').unwrap()].to_owned();
            let labels = part
                .split("<h3 class=\"nhsuk-card__heading nhsuk-heading-s\">")
                .skip(1)
                .map(|l| l[..l.find("</h3>").unwrap()].to_owned())
                .collect();
            (code, !part.contains("Not shared with you"), labels)
        })
        .collect()
}

// The sharing preview "what Hill Primary sees" is what Hill Primary's staff get, before
// and after the family changes what schools see.
on_both_databases!(the_sharing_preview_is_what_the_school_sees, |srv| {
    let w = world(&srv.database_url).await;
    let school = w.region.org("school").to_owned();
    let mut sam = family(&srv.base, "sam@example.com").await;
    let mut tom = staff(&srv.base, &w, "tom@example.sch.uk").await;
    let sharing = format!("/passport/{}/sharing", w.mia);
    let page = sam.get(&sharing).await;
    assert!(
        page.body.contains("What Hill Primary sees"),
        "{}",
        page.body
    );
    let preview_path = format!("/passport/{}/sharing/{school}", w.mia);
    for round in 0..2 {
        let preview = sam.get(&preview_path).await;
        assert_eq!(preview.status, 200, "{}", preview.body);
        let seen = tom.get(&format!("/passport/{}", w.mia)).await;
        assert_eq!(
            sections(&preview.body),
            sections(&seen.body),
            "round {round}"
        );
        assert!(!sections(&seen.body).is_empty());
        // The family stops sharing medicines with schools (allergies stay).
        let schools = format!("{sharing}/sector/education");
        let fields: Vec<(&str, &str)> = ["emergency", "allergies", "communication", "contacts"]
            .iter()
            .map(|s| match *s {
                "emergency" => ("share-emergency", "yes"),
                "allergies" => ("share-allergies", "yes"),
                "communication" => ("share-communication", "yes"),
                _ => ("share-contacts", "yes"),
            })
            .collect();
        let saved = sam.submit(&schools, &schools, &fields).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
    }
    let seen = tom.get(&format!("/passport/{}", w.mia)).await;
    let medicines = sections(&seen.body)
        .into_iter()
        .find(|(c, _, _)| c == "medicines")
        .unwrap();
    assert!(!medicines.1, "medicines no longer shared with the school");
    // Only the person in control previews; only organisations in the care team.
    let mut gran = family(&srv.base, "gran@example.com").await;
    assert_eq!(gran.get(&preview_path).await.status, 404);
    assert_eq!(tom.get(&preview_path).await.status, 404);
    let er = w.region.org("er").to_owned();
    assert_eq!(
        sam.get(&format!("/passport/{}/sharing/{er}", w.mia))
            .await
            .status,
        404
    );
    w.store.close().await;
});

// The care team: who is in it; health and social-care members add and remove
// organisations; the person in control of the passport removes one; nobody else changes it.
on_both_databases!(
    the_care_team_is_managed_by_its_members_and_the_family,
    |srv| {
        let w = world(&srv.database_url).await;
        let team = format!("/passport/{}/care-team", w.mia);
        let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
        let p = cara.get(&team).await;
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(
            p.body.contains("Riverside Children&#x27;s Hospital")
                && p.body.contains("Hill Primary")
        );
        let members = &p.body[p.body.find("id=\"care-team\"").unwrap()..];
        let members = &members[..members.find("</dl>").unwrap()];
        assert!(!members.contains("Hilltop Surgery"), "{members}");
        assert!(p.body.contains("Add to the care team"), "the GP is offered");
        // The clinician adds the GP practice.
        let gp = w.region.org("gp").to_owned();
        let added = cara
            .submit(&team, &team, &[("action", "add"), ("organisation", &gp)])
            .await;
        assert_eq!(added.status, 303, "{}", added.body);
        let mut gina = staff(&srv.base, &w, "gina@example.nhs.uk").await;
        assert_eq!(
            gina.get(&format!("/passport/{}", w.mia)).await.status,
            200,
            "the GP now sees Mia"
        );
        // Adding nothing is an inline error.
        let none = cara
            .submit(&team, &team, &[("action", "add"), ("organisation", "")])
            .await;
        assert_eq!(none.status, 400);
        assert!(none.has_error_summary_for("organisation"));
        // The school's staff see the team but may not change it.
        let mut tom = staff(&srv.base, &w, "tom@example.sch.uk").await;
        let p = tom.get(&team).await;
        assert_eq!(p.status, 200);
        assert!(!p.body.contains("Add to the care team"));
        let school = w.region.org("school").to_owned();
        let refused = tom
            .submit(&team, &team, &[("action", "remove"), ("organisation", &gp)])
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        // A relative without parental responsibility may not either; the parent may remove.
        let mut gran = family(&srv.base, "gran@example.com").await;
        let home = gran.get("/").await;
        let refused = gran
            .post(
                &team,
                &[
                    ("action", "remove"),
                    ("organisation", school.as_str()),
                    ("csrf_token", home.csrf().as_str()),
                ],
            )
            .await;
        assert!(matches!(refused.status, 403 | 404), "{}", refused.body);
        let mut sam = family(&srv.base, "sam@example.com").await;
        let removed = sam
            .submit(
                &team,
                &team,
                &[("action", "remove"), ("organisation", &school)],
            )
            .await;
        assert_eq!(removed.status, 303, "{}", removed.body);
        assert_eq!(
            tom.get(&format!("/passport/{}", w.mia)).await.status,
            404,
            "the school no longer sees Mia"
        );
        // Someone with no relationship sees no care team at all.
        let mut nosy = family(&srv.base, "nosy@example.com").await;
        assert_eq!(nosy.get(&team).await.status, 404);
        w.store.close().await;
    }
);

// Sections whose answers fill no structured resource (what matters to me, the emergency
// protocol…) are filled in through their template forms too: the answers are the item,
// one per child for a single form, reviewed like any other.
on_both_databases!(
    what_matters_and_the_emergency_protocol_are_filled_in,
    |srv| {
        let w = world(&srv.database_url).await;
        let passport = format!("/passport/{}", w.mia);
        let mut sam = family(&srv.base, "sam@example.com").await;
        let p = sam.get(&passport).await;
        assert!(p.body.contains("/add/what-matters"), "{}", p.body);
        let add = format!("{passport}/add/what-matters");
        let form = sam.get(&add).await;
        assert!(form.body.contains("Likes") && form.body.contains("Calming strategies"));
        let saved = sam
            .submit(
                &add,
                &add,
                &[
                    ("what-matters-to-me", "Being with my brother"),
                    ("likes", "Trains and swimming"),
                    ("calming", "A quiet room and my blue blanket"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let p = sam.get(&passport).await;
        let section = |body: &str, code: &str| {
            let start = body.find(&format!("id=\"{code}\"")).unwrap();
            let end = body[start..].find("</section>").unwrap() + start;
            body[start..end].to_owned()
        };
        let matters = section(&p.body, "what-matters");
        assert!(
            matters.contains("A quiet room and my blue blanket"),
            "{matters}"
        );
        assert!(matters.contains("waiting for review"));
        assert!(
            !matters.contains("/add/what-matters"),
            "one per child: changed, not added"
        );
        assert!(
            matters.contains("/item/QuestionnaireResponse/"),
            "{matters}"
        );
        // Nothing empty is saved.
        let emergency_add = format!("{passport}/add/emergency-protocol");
        let communication_add = format!("{passport}/add/communication");
        let empty = sam
            .submit(&communication_add, &communication_add, &[])
            .await;
        assert_eq!(empty.status, 422, "{}", empty.body);

        // The clinician writes the emergency protocol: checked by them as they save it.
        let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
        let saved = cara
            .submit(
                &emergency_add,
                &emergency_add,
                &[
                    (
                        "emergency-recognise",
                        "Stiffening then jerking of arms and legs",
                    ),
                    (
                        "emergency-what-to-do",
                        "Time the seizure; keep her safe; do not restrain",
                    ),
                    (
                        "emergency-call-999",
                        "Seizure over 5 minutes, or a second one",
                    ),
                    ("emergency-rescue-medicine", "Buccal midazolam"),
                    ("emergency-rescue-dose", "5 mg (0.5 mL)"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        // The school (emergency shared with schools by default) reads it as written; what
        // matters to Mia is not shared with schools.
        let mut tom = staff(&srv.base, &w, "tom@example.sch.uk").await;
        let p = tom.get(&passport).await;
        let emergency = section(&p.body, "emergency");
        assert!(emergency.contains("5 mg (0.5 mL)"), "{emergency}");
        assert!(emergency.contains("Checked by Cara Carer"), "{emergency}");
        assert!(section(&p.body, "what-matters").contains("Not shared with you"));
        // The clinician checks the family's answers; what changed then is empty.
        let changes = cara.get(&format!("{passport}/changes")).await;
        assert!(
            changes.body.contains("A quiet room and my blue blanket"),
            "{}",
            changes.body
        );
        let form_start = changes.body.find("/checked\"").unwrap();
        let action_start = changes.body[..form_start].rfind("action=\"").unwrap() + 8;
        let action = changes.body[action_start..form_start + 8].to_owned();
        let checked = cara
            .submit(&format!("{passport}/changes"), &action, &[("version", "1")])
            .await;
        assert_eq!(checked.status, 303, "{}", checked.body);
        assert!(
            cara.get(&format!("{passport}/changes"))
                .await
                .body
                .contains("nothing-changed")
        );
        w.store.close().await;
    }
);

// The next review: set by the care team on the review screen (a date in the future),
// shown on the passport and in the caseload; an overdue review is a warning on both.
on_both_databases!(
    the_next_review_is_set_shown_and_warned_when_overdue,
    |srv| {
        let w = world(&srv.database_url).await;
        let passport = format!("/passport/{}", w.mia);
        let changes = format!("{passport}/changes");
        let to = format!("{passport}/review-date");
        let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
        let p = cara.get(&passport).await;
        assert!(
            p.body.contains("Not checked by the care team yet"),
            "{}",
            p.body
        );
        // Not a real date, or not in the future: an inline error, nothing saved.
        for (d, m, y) in [("31", "2", "2099"), ("1", "1", "2020"), ("", "", "")] {
            let bad = cara
                .submit(
                    &changes,
                    &to,
                    &[
                        ("next-review-day", d),
                        ("next-review-month", m),
                        ("next-review-year", y),
                    ],
                )
                .await;
            assert_eq!(bad.status, 400, "{d}/{m}/{y}: {}", bad.body);
            assert!(bad.has_error_summary_for("next-review"));
        }
        let set = cara
            .submit(
                &changes,
                &to,
                &[
                    ("next-review-day", "1"),
                    ("next-review-month", "6"),
                    ("next-review-year", "2099"),
                ],
            )
            .await;
        assert_eq!(set.status, 303, "{}", set.body);
        let p = cara.get(&passport).await;
        assert!(p.body.contains("Next review by 1 June 2099"), "{}", p.body);
        assert!(!p.body.contains("review-overdue"));
        let list = cara.get("/passports").await;
        assert!(list.body.contains("1 June 2099"), "{}", list.body);
        // The family cannot set it.
        let mut sam = family(&srv.base, "sam@example.com").await;
        let home = sam.get("/").await;
        let refused = sam
            .post(
                &to,
                &[
                    ("next-review-day", "1"),
                    ("next-review-month", "6"),
                    ("next-review-year", "2098"),
                    ("csrf_token", home.csrf().as_str()),
                ],
            )
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        // A review date that has passed (stored as an earlier version of the service would have
        // kept it): warned on the passport and first in the caseload.
        let plan = of_type(&w, "CarePlan", "subject").await;
        let plan = plan
            .iter()
            .find(|p| domain::passport::is_review_plan(p))
            .unwrap();
        let stored = w
            .store
            .records()
            .read("CarePlan", plan["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        let mut past = plan.clone();
        past["period"]["end"] = serde_json::json!("2020-01-01");
        w.store
            .records()
            .write(
                &fixture(),
                passport_server::records::new_version(past, Some(&stored)).unwrap(),
            )
            .await
            .unwrap();
        let p = sam.get(&passport).await;
        assert!(p.body.contains("review-overdue"), "{}", p.body);
        assert!(p.body.contains("1 January 2020"));
        // The emergency view warns as plainly.
        let e = sam.get(&format!("{passport}/emergency")).await;
        assert!(e.body.contains("id=\"review-overdue\""), "{}", e.body);
        assert!(e.body.contains("1 January 2020"));
        let list = cara.get("/passports").await;
        assert!(
            list.body.contains("Overdue: 1 January 2020"),
            "{}",
            list.body
        );
        w.store.close().await;
    }
);

// The passport page's weight on the wire (issue 10: ≤ 150 KB compressed, photo excluded):
// the page and every stylesheet, script and image it links, fetched as a browser does
// (static files gzipped; pages themselves are never compressed, see `web/assets.rs`).
on_both_databases!(the_passport_page_weighs_under_150_kb, |srv| {
    let w = world(&srv.database_url).await;
    let mut sam = family(&srv.base, "sam@example.com").await;
    let page = sam.get(&format!("/passport/{}", w.mia)).await;
    assert_eq!(page.status, 200);
    let mut total = page.body.len();
    let mut assets = Vec::new();
    for attr in ["href=\"/assets/", "src=\"/assets/"] {
        for part in page.body.split(attr).skip(1) {
            assets.push(format!("/assets/{}", &part[..part.find('"').unwrap()]));
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with("nhsuk-frontend.min.css")),
        "{assets:?}"
    );
    let client = reqwest::Client::new();
    for a in &assets {
        let r = client
            .get(format!("{}{a}", srv.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{a}");
        if a.ends_with(".css") {
            assert_eq!(r.headers()["content-encoding"], "gzip", "{a}");
        }
        total += r.bytes().await.unwrap().len();
    }
    assert!(total <= 150 * 1024, "{total} bytes: {assets:?}");
    println!(
        "passport page weight: {total} bytes on the wire ({} assets)",
        assets.len()
    );
    w.store.close().await;
});

// A professional finds a child of their care teams by NHS Number and date of birth, or by
// name and date of birth; nothing else finds them.
on_both_databases!(a_professional_finds_a_child, |srv| {
    let w = world(&srv.database_url).await;
    let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
    let to = format!("/passport/{}", w.mia);
    for fields in [
        vec![("nhs_number", "943 476 5919"), ("birth_date", "27/03/2019")],
        vec![("name", "Mia Jones"), ("birth_date", "27/03/2019")],
        vec![("name", "mia jones"), ("birth_date", "2019-03-27")],
    ] {
        let p = cara.submit("/passports", "/passports", &fields).await;
        assert_eq!(p.status, 303, "{fields:?}: {}", p.body);
        assert_eq!(p.location, to);
    }
    for (fields, field) in [
        (
            vec![("nhs_number", "943 476 5919"), ("birth_date", "28/03/2019")],
            "nhs_number",
        ),
        (
            vec![("name", "Mia Smith"), ("birth_date", "27/03/2019")],
            "nhs_number",
        ),
        (
            vec![("nhs_number", "943 476 5918"), ("birth_date", "27/03/2019")],
            "nhs_number",
        ),
        (vec![("birth_date", "27/03/2019")], "nhs_number"),
        (
            vec![("name", "Mia Jones"), ("birth_date", "31/02/2019")],
            "birth_date",
        ),
    ] {
        let p = cara.submit("/passports", "/passports", &fields).await;
        assert_eq!(p.status, 400, "{fields:?}");
        assert!(p.has_error_summary_for(field), "{fields:?}: {}", p.body);
    }
    // Someone outside the care team does not find her.
    let mut erin = staff(&srv.base, &w, "erin@example.nhs.uk").await;
    let p = erin
        .submit(
            "/passports",
            "/passports",
            &[("name", "Mia Jones"), ("birth_date", "27/03/2019")],
        )
        .await;
    assert_eq!(p.status, 400);
    let p = erin
        .submit(
            "/passports",
            "/passports",
            &[("nhs_number", "943 476 5919"), ("birth_date", "27/03/2019")],
        )
        .await;
    assert_eq!(p.status, 400);
    w.store.close().await;
});

// A care team with more children than the list reads at once lists the limit, says so,
// and still finds any child.
on_both_databases!(a_large_caseload_is_listed_in_part, |srv| {
    let store = passport_server::Domain::open(domain::Settings::admin(
        &srv.database_url,
        "https://passport.test",
    ))
    .await
    .unwrap();
    let mut spec = Spec::standard(PASSWORD);
    let template = spec.children[0].clone();
    // 201 more children in the hospital's care team, NHS Numbers from the test range.
    let mut k = 0u32;
    while spec.children.len() < 202 {
        k += 1;
        let first9 = format!("{:09}", 900_000_000 + k);
        let digits: [u8; 9] = std::array::from_fn(|i| first9.as_bytes()[i] - b'0');
        let Some(n) = fhir::nhs_number::NhsNumber::from_first9(digits) else {
            continue;
        };
        let mut c = template.clone();
        c.key = format!("child-{k}");
        c.nhs_number = n.digits().iter().map(|d| char::from(b'0' + d)).collect();
        c.links.clear();
        c.items.clear();
        spec.children.push(c);
    }
    let r = region::seed(&store, &fixture(), &spec).await.unwrap();
    let w = World {
        mia: r.child("mia").to_owned(),
        region: r,
        store,
    };
    let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
    let list = cara.get("/passports").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("id=\"caseload-limited\""),
        "{}",
        list.body
    );
    assert!(list.body.contains("202 children"));
    assert_eq!(
        list.body
            .matches("<tr class=\"nhsuk-table__row\"><td")
            .count(),
        200
    );
    let found = cara
        .submit(
            "/passports",
            "/passports",
            &[("nhs_number", "943 476 5919"), ("birth_date", "27/03/2019")],
        )
        .await;
    assert_eq!(found.status, 303);
    w.store.close().await;
});

/// The id of the first item of `ty` linked from a page.
fn item_id(body: &str, ty: &str) -> String {
    let at = body
        .find(&format!("/item/{ty}/"))
        .unwrap_or_else(|| panic!("no {ty} item on the page"));
    let rest = &body[at + 7 + ty.len()..];
    rest[..rest.find(['"', '/']).unwrap()].to_owned()
}

// Every form's answers land in the structured resource its type has (issue 10 §1): a
// reasonable adjustment is a Flag, the weight an Observation in kg with its date, the
// emergency protocol an emergency CarePlan; answers with no element of their own ("who
// gives it", "when to call 999") are kept on the item, shown, and offered again when it is
// changed.
on_both_databases!(
    every_form_writes_its_structured_resource_and_keeps_every_answer,
    |srv| {
        let w = world(&srv.database_url).await;
        let passport = format!("/passport/{}", w.mia);
        let mut sam = family(&srv.base, "sam@example.com").await;

        // A medicine's answers with no element of their own survive a change. The dose and
        // when to give it are the clinician's (the template's clinician-entered): the
        // family's form shows them but does not ask, and a dose posted anyway is not saved.
        let add = format!("{passport}/add/medicine");
        let form = sam.get(&add).await;
        assert!(
            !form.body.contains("name=\"medicine-dose\""),
            "no dose field for the family"
        );
        assert!(form.body.contains("The child's clinician enters this"));
        let paracetamol = option_value(&form.body, "Paracetamol");
        let saved = sam
            .submit(
                &add,
                &add,
                &[
                    ("medicine-product", paracetamol.as_str()),
                    ("medicine-dose", "2000 mg"),
                    ("medicine-given-by", "Mum, at breakfast"),
                    ("medicine-at-school", "yes"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let meds = of_type(&w, "MedicationStatement", "subject").await;
        let med = meds
            .iter()
            .find(|m| m["medicationCodeableConcept"]["text"] == "Paracetamol")
            .expect("saved");
        assert!(med["dosage"].is_null(), "no family dose: {med}");
        let p = sam.get(&passport).await;
        assert!(
            p.body.contains("Mum, at breakfast"),
            "shown on the passport"
        );
        assert!(!p.body.contains("2000 mg"));
        let id = item_id(
            &p.body[p.body.find(">Paracetamol<").unwrap()..],
            "MedicationStatement",
        );
        let item = format!("{passport}/item/MedicationStatement/{id}");
        let change = sam.get(&item).await;
        assert!(
            change.body.contains("value=\"Mum, at breakfast\""),
            "offered again when changed: {}",
            change.body
        );
        // The clinician enters the dose; the family's next change keeps it.
        let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
        let change = cara.get(&item).await;
        let saved = cara
            .submit(
                &item,
                &item,
                &[
                    ("version", change.hidden("version").as_str()),
                    ("medicine-product", paracetamol.as_str()),
                    ("medicine-dose", "240 mg"),
                    ("medicine-given-by", "Mum, at breakfast"),
                    ("medicine-at-school", "yes"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let change = sam.get(&item).await;
        assert!(
            change.body.contains("240 mg"),
            "shown to the family, not asked"
        );
        let saved = sam
            .submit(
                &item,
                &item,
                &[
                    ("version", change.hidden("version").as_str()),
                    ("medicine-product", paracetamol.as_str()),
                    ("medicine-given-by", "Gran, at breakfast"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let med = of_type(&w, "MedicationStatement", "subject")
            .await
            .into_iter()
            .find(|m| m["id"] == id.as_str())
            .unwrap();
        assert_eq!(
            med["dosage"][0]["text"], "240 mg",
            "the clinician's dose is kept"
        );
        assert!(med["extension"].to_string().contains("Gran, at breakfast"));

        // The clinician records the weight (kg, with its date) and the emergency protocol,
        // which the family reads but does not write.
        let add = format!("{passport}/add/emergency-protocol");
        assert_eq!(sam.get(&add).await.status, 403);
        assert!(
            !sam.get(&passport)
                .await
                .body
                .contains(&format!("href=\"{add}\""))
        );
        let add = format!("{passport}/add/weight");
        let undated = cara.submit(&add, &add, &[("weight-kg", "18.5")]).await;
        assert_eq!(undated.status, 422, "a weight needs its date");
        assert!(of_type(&w, "Observation", "subject").await.is_empty());
        let saved = cara
            .submit(
                &add,
                &add,
                &[
                    ("weight-kg", "18.5"),
                    ("weight-date-day", "2"),
                    ("weight-date-month", "11"),
                    ("weight-date-year", "2026"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let weight = &of_type(&w, "Observation", "subject").await[0];
        assert_eq!(weight["valueQuantity"]["value"], 18.5);
        assert_eq!(weight["valueQuantity"]["code"], "kg");
        assert_eq!(
            weight["valueQuantity"]["system"],
            "http://unitsofmeasure.org"
        );
        assert_eq!(weight["effectiveDateTime"], "2026-11-02");
        assert_eq!(weight["status"], "final");
        // Shown with its unit, never a bare number.
        let p = cara.get(&passport).await;
        assert!(
            p.body.contains("18.5 kg"),
            "the weight's unit on the passport"
        );

        let add = format!("{passport}/add/emergency-protocol");
        let saved = cara
            .submit(
                &add,
                &add,
                &[
                    ("emergency-recognise", "Stiffening then jerking"),
                    ("emergency-what-to-do", "Time the seizure; keep her safe"),
                    ("emergency-call-999", "Seizure over 5 minutes"),
                    ("emergency-rescue-medicine", "Buccal midazolam"),
                    ("emergency-rescue-dose", "5 mg (0.5 mL)"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let plans = of_type(&w, "CarePlan", "subject").await;
        let plan = plans
            .iter()
            .find(|p| p["title"] == "Emergency protocol")
            .expect("an emergency CarePlan");
        assert_eq!(plan["status"], "active");
        assert_eq!(plan["category"][0]["coding"][0]["code"], "emergency");
        assert_eq!(
            plan["activity"][0]["detail"]["description"],
            "Time the seizure; keep her safe"
        );
        let kept = plan["extension"].to_string();
        for answer in [
            "Stiffening then jerking",
            "Seizure over 5 minutes",
            "5 mg (0.5 mL)",
        ] {
            assert!(kept.contains(answer), "{answer} in {kept}");
        }
        let p = cara.get(&passport).await;
        let emergency = &p.body[p.body.find("id=\"emergency\"").unwrap()..];
        let emergency = &emergency[..emergency.find("</section>").unwrap()];
        for answer in [
            "Stiffening then jerking",
            "Seizure over 5 minutes",
            "5 mg (0.5 mL)",
        ] {
            assert!(emergency.contains(answer), "{answer} in {emergency}");
        }

        // A reasonable adjustment, from the NHS list: a Flag of the communication section.
        let add = format!("{passport}/add/adjustment");
        let form = sam.get(&add).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let first = option_value(&form.body, "Noise intolerance");
        let saved = sam
            .submit(
                &add,
                &add,
                &[
                    ("adjustments", first.as_str()),
                    ("adjustments-consent", "yes"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let flags = of_type(&w, "Flag", "subject").await;
        assert_eq!(flags.len(), 1);
        let (system, code) = first.split_once('|').unwrap();
        assert_eq!(flags[0]["code"]["coding"][0]["system"], system);
        assert_eq!(flags[0]["code"]["coding"][0]["code"], code);
        assert!(
            flags[0]["meta"]["tag"]
                .to_string()
                .contains("\"communication\"")
        );

        // The adjustment no longer needed: inactive from today, out of the current view.
        let p = sam.get(&passport).await;
        let flag_id = item_id(
            &p.body[p.body.find("id=\"communication\"").unwrap()..],
            "Flag",
        );
        let item = format!("{passport}/item/Flag/{flag_id}");
        let form = sam.get(&item).await;
        let ended = sam
            .submit(
                &item,
                &format!("{item}/end"),
                &[
                    ("version", &form.hidden("version")),
                    ("how", "no-longer-true"),
                ],
            )
            .await;
        assert_eq!(ended.status, 303, "{}", ended.body);
        let flag = &of_type(&w, "Flag", "subject").await[0];
        assert_eq!(flag["status"], "inactive");
        assert!(flag["period"]["end"].is_string());
        let p = sam.get(&passport).await;
        let communication = &p.body[p.body.find("id=\"communication\"").unwrap()..];
        let communication = &communication[..communication.find("</section>").unwrap()];
        assert!(
            communication.contains("No longer current (1)"),
            "{communication}"
        );
        w.store.close().await;
    }
);

/// The hidden `request` and `version` of the request whose card mentions `text`.
fn request_fields(body: &str, text: &str) -> (String, String) {
    let at = body
        .find(text)
        .unwrap_or_else(|| panic!("no request {text}"));
    let field = |name: &str| {
        let key = format!("name=\"{name}\" value=\"");
        let start = body[at..].find(&key).unwrap() + at + key.len();
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    };
    (field("request"), field("version"))
}

// Care-team requests (issue 10 §2, §3): a professional outside the team asks to join by NHS
// Number and date of birth (the answer is the same whether or not there is such a child);
// the person in control of the passport agrees, and the professional joins in their own
// right, not their whole organisation; the family asks to add a club and a clinician of the
// team agrees; a declined request opens nothing; the family sees every step in the access
// log; a professional member is removed like an organisation.
on_both_databases!(
    the_family_asks_to_add_and_professionals_ask_to_join,
    |srv| {
        let w = world(&srv.database_url).await;
        let passport = format!("/passport/{}", w.mia);
        let team = format!("{passport}/care-team");
        let requests = || async { of_type(&w, "Communication", "subject").await };

        // Sol (children's social care, not in the team) cannot see Mia, and asks to join.
        let mut sol = staff(&srv.base, &w, "sol@example.gov.uk").await;
        assert_eq!(sol.get(&passport).await.status, 404);
        let caseload = sol.get("/passports").await;
        assert!(caseload.body.contains("href=\"/passports/join\""));
        let join = "/passports/join";
        assert_eq!(sol.get(join).await.status, 200);
        let bad = sol
            .submit(
                join,
                join,
                &[("nhs_number", "123"), ("birth_date", "27/3/2019")],
            )
            .await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("nhsuk-error-summary"));
        let wrong_birthday = sol
            .submit(
                join,
                join,
                &[("nhs_number", "943 476 5919"), ("birth_date", "1/1/2018")],
            )
            .await;
        let asked = sol
            .submit(
                join,
                join,
                &[("nhs_number", "943 476 5919"), ("birth_date", "27/3/2019")],
            )
            .await;
        assert_eq!((wrong_birthday.status, asked.status), (200, 200));
        let said = |b: &str| b[b.find("<main").unwrap()..].to_owned();
        assert_eq!(
            said(&wrong_birthday.body),
            said(&asked.body),
            "asking reveals nothing"
        );
        assert_eq!(requests().await.len(), 1);
        sol.submit(
            join,
            join,
            &[("nhs_number", "9434765919"), ("birth_date", "27/3/2019")],
        )
        .await;
        assert_eq!(requests().await.len(), 1, "asking again changes nothing");
        assert_eq!(
            sol.get(&passport).await.status,
            404,
            "not before the family agrees"
        );

        // Only the person in control answers it: not the clinician, not Gran.
        let mut cara = staff(&srv.base, &w, "cara@example.nhs.uk").await;
        assert!(!cara.get(&team).await.body.contains("asks to join"));
        let mut sam = family(&srv.base, "sam@example.com").await;
        let page = sam.get(&team).await;
        assert!(
            page.body.contains(
                "Sol Social (Social worker, North Children&#x27;s Services) asks to join"
            ),
            "{}",
            page.body
        );
        let (id, version) = request_fields(&page.body, "asks to join");
        let agree = [
            ("action", "agree"),
            ("request", id.as_str()),
            ("version", version.as_str()),
        ];
        // Gran (no parental responsibility) sees no care team, and cannot answer.
        let mut gran = family(&srv.base, "gran@example.com").await;
        let csrf = gran.get("/").await.csrf();
        let refused = gran
            .post(
                &team,
                &[agree.to_vec(), vec![("csrf_token", csrf.as_str())]].concat(),
            )
            .await;
        assert_eq!(refused.status, 404);
        assert_eq!(cara.submit(&team, &team, &agree).await.status, 403);
        let agreed = sam.submit(&team, &team, &agree).await;
        assert_eq!(agreed.status, 303, "{}", agreed.body);
        assert_eq!(requests().await[0]["status"], "completed");
        // Sol joins as an individual: sees the passport; North Children's Services does not.
        assert_eq!(sol.get(&passport).await.status, 200);
        let facts = domain::facts::child_facts(&w.store, &w.mia).await.unwrap();
        assert!(!facts.in_care_team(None, Some(w.region.org("social-care"))));
        let page = sam.get(&team).await;
        let professionals = &page.body[page.body.find("id=\"professionals\"").unwrap()..];
        assert!(professionals.contains("Sol Social"), "{professionals}");
        assert!(!page.body.contains("asks to join"), "answered");

        // The family asks to add the swimming club; a clinician of the team agrees.
        let club = w.region.org("club").to_owned();
        let mut cody = staff(&srv.base, &w, "cody@example.org.uk").await;
        assert_eq!(cody.get(&passport).await.status, 404);
        let asked = sam
            .submit(
                &team,
                &team,
                &[("action", "ask"), ("organisation", club.as_str())],
            )
            .await;
        assert_eq!(asked.status, 303, "{}", asked.body);
        let page = sam.get(&team).await;
        assert!(page.body.contains("Add Riverside Swimming Club"));
        assert!(page.body.contains("Waiting for an answer"));
        let page = cara.get(&team).await;
        let (id, version) = request_fields(&page.body, "Add Riverside Swimming Club");
        let agree = [
            ("action", "agree"),
            ("request", id.as_str()),
            ("version", version.as_str()),
        ];
        assert_eq!(sam.submit(&team, &team, &agree).await.status, 403);
        let agreed = cara.submit(&team, &team, &agree).await;
        assert_eq!(agreed.status, 303, "{}", agreed.body);
        assert_eq!(cody.get(&passport).await.status, 200);

        // Gina asks to join; the family declines: nothing opens.
        let mut gina = staff(&srv.base, &w, "gina@example.nhs.uk").await;
        gina.submit(
            join,
            join,
            &[("nhs_number", "9434765919"), ("birth_date", "27/3/2019")],
        )
        .await;
        let page = sam.get(&team).await;
        let (id, version) = request_fields(&page.body, "Gina GP");
        let declined = sam
            .submit(
                &team,
                &team,
                &[
                    ("action", "decline"),
                    ("request", id.as_str()),
                    ("version", version.as_str()),
                ],
            )
            .await;
        assert_eq!(declined.status, 303, "{}", declined.body);
        assert_eq!(gina.get(&passport).await.status, 404);
        let gina_asked = requests()
            .await
            .into_iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap();
        assert_eq!(gina_asked["status"], "not-done");

        // Every step is in the family's access log (reads are audited through the audit
        // queue, so the page may lag the last read by a moment).
        let mut log = sam.get(&format!("{passport}/access-log")).await;
        for _ in 0..50 {
            if log.body.contains("looked at the passport: ") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            log = sam.get(&format!("{passport}/access-log")).await;
        }
        for who in ["Sol Social", "Gina GP", "Cara Carer"] {
            assert!(log.body.contains(who), "{who} in the access log");
        }
        for words in [
            "asked for a change to the care team",
            "answered a request to change the care team",
            "looked at the passport: ",
        ] {
            assert!(log.body.contains(words), "{words} in the access log");
        }

        // The parent removes Sol: Mia's passport closes to Sol again.
        let key = "name=\"member\" value=\"";
        let sol_ref = professionals[professionals.find(key).unwrap() + key.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(sol_ref.starts_with("Practitioner/"), "{sol_ref}");
        let removed = sam
            .submit(
                &team,
                &team,
                &[("action", "remove"), ("member", sol_ref.as_str())],
            )
            .await;
        assert_eq!(removed.status, 303, "{}", removed.body);
        assert_eq!(sol.get(&passport).await.status, 404);
        w.store.close().await;
    }
);

/// A JPEG's structure with an Exif block giving where it was taken (the cleaner walks
/// segments; it does not decode the picture).
fn jpeg_with_location() -> Vec<u8> {
    let segment = |marker: u8, body: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        s.extend_from_slice(body);
        s
    };
    let mut j = vec![0xFF, 0xD8];
    j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    j.extend(segment(
        0xE1,
        b"Exif\0\0MM\0*GPSLatitude 53.8N GPSLongitude 1.5W",
    ));
    j.extend(segment(0xDB, &[0; 65]));
    j.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    j.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    j.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
    j
}

// The child's photo (issue 10 §2): size-limited, location metadata stripped before it is
// stored, shown on the passport to those who may see "about me" and to nobody else; a bad
// upload is an inline error and saves nothing; a new photo is a new version.
on_both_databases!(
    the_photo_is_cleaned_limited_and_shown_only_to_those_who_may_see_it,
    |srv| {
        let w = world(&srv.database_url).await;
        let passport = format!("/passport/{}", w.mia);
        let page = format!("{passport}/photo");
        let mut sam = family(&srv.base, "sam@example.com").await;
        let p = sam.get(&passport).await;
        assert!(
            p.body.contains(&format!("href=\"{page}\"")),
            "an add-a-photo link"
        );
        let form = sam.get(&page).await;
        assert_eq!(form.status, 200, "{}", form.body);
        assert!(form.body.contains("enctype=\"multipart/form-data\""));
        let csrf = form.csrf();
        let photos = || async { of_type(&w, "DocumentReference", "subject").await };

        // Refused, nothing stored: too large, not an image, no file, a forged form.
        let big = vec![0xFF; 5 * 1024 * 1024 + 1];
        let refused = sam
            .post_multipart(&page, &[("csrf_token", &csrf)], ("photo", "big.jpg", &big))
            .await;
        assert_eq!(refused.status, 400);
        assert!(
            refused.body.contains("smaller than 5 MB"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains("nhsuk-error-summary"));
        let gif = sam
            .post_multipart(
                &page,
                &[("csrf_token", &csrf)],
                ("photo", "me.gif", b"GIF89a...."),
            )
            .await;
        assert!(gif.body.contains("must be a JPEG or PNG"), "{}", gif.body);
        let none = sam
            .post_multipart(&page, &[("csrf_token", &csrf)], ("photo", "", b""))
            .await;
        assert!(none.body.contains("Choose a photo"));
        let forged = sam
            .post_multipart(
                &page,
                &[("csrf_token", "x")],
                ("photo", "me.jpg", &jpeg_with_location()),
            )
            .await;
        assert_eq!(forged.status, 403);
        assert!(photos().await.is_empty(), "nothing saved");

        // Saved without where it was taken; waiting for review; shown on the passport.
        let saved = sam
            .post_multipart(
                &page,
                &[("csrf_token", &csrf)],
                ("photo", "me.jpg", &jpeg_with_location()),
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let stored = photos().await;
        assert_eq!(stored.len(), 1);
        assert!(
            !stored[0].to_string().contains("R1BT"),
            "no base64 'GPS' left"
        );
        let id = stored[0]["id"].as_str().unwrap().to_owned();
        let src = format!("{passport}/photo/{id}");
        let p = sam.get(&passport).await;
        assert!(
            p.body.contains(&format!("src=\"{src}\"")),
            "shown on the passport"
        );
        let (status, ct, bytes) = sam.get_bytes(&src).await;
        assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
        assert!(bytes.starts_with(&[0xFF, 0xD8]) && bytes.ends_with(&[0xFF, 0xD9]));
        assert!(!bytes.windows(3).any(|w| w == b"GPS"), "location removed");
        assert!(!bytes.windows(4).any(|w| w == b"Exif"));

        // The school (about me shared with schools) sees it; someone with no link does not.
        let mut tom = staff(&srv.base, &w, "tom@example.sch.uk").await;
        assert_eq!(tom.get_bytes(&src).await.0, 200);
        let mut nosy = family(&srv.base, "nosy@example.com").await;
        assert_eq!(nosy.get_bytes(&src).await.0, 404);
        let mut cody = staff(&srv.base, &w, "cody@example.org.uk").await;
        assert_eq!(cody.get_bytes(&src).await.0, 404);

        // A new photo is a new version of the same item.
        let form = sam.get(&page).await;
        assert!(
            form.body.contains(&format!("src=\"{src}\"")),
            "the current photo shown"
        );
        let again = sam
            .post_multipart(
                &page,
                &[("csrf_token", &form.csrf())],
                ("photo", "me2.jpg", &jpeg_with_location()),
            )
            .await;
        assert_eq!(again.status, 303, "{}", again.body);
        let stored = photos().await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["meta"]["versionId"], "2");
        w.store.close().await;
    }
);
