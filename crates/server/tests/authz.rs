//! Enforcement through the real HTTP API: who is asking (tokens), facts about the child
//! loaded from the FHIR data (and seen at once when they change), redaction, and the
//! AuditEvent of every interaction. The hand-written matrix is in tests/matrix.rs.

mod common;

use common::{StatusCode, TestServer, Value, json};
use passport_server::web::directory::{self, NewFamily, NewOrganisation, NewStaff};

const SECTION: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-section";

/// A member of staff: (account id, Practitioner id).
async fn staff(srv: &TestServer, org: &str, role: access::Role, email: &str) -> (String, String) {
    let created = directory::create_staff(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewStaff {
            organisation: org.into(),
            role,
            email: email.into(),
            name: "Sam Carer".into(),
            password: "correct horse battery staple".into(),
        },
    )
    .await
    .unwrap();
    let account = srv
        .state
        .domain
        .data()
        .test_store()
        .account(&created.account_id)
        .await
        .unwrap()
        .unwrap();
    (created.account_id, account.practitioner_id.unwrap())
}

/// A family sign-in: (account id, Person id).
async fn family(srv: &TestServer, email: &str) -> (String, String) {
    let created = directory::create_family(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewFamily {
            email: email.into(),
            name: "Alex Parent".into(),
            password: "correct horse battery staple".into(),
        },
    )
    .await
    .unwrap();
    let account = srv
        .state
        .domain
        .data()
        .test_store()
        .account(&created.account_id)
        .await
        .unwrap()
        .unwrap();
    (created.account_id, account.person_id.unwrap())
}

async fn get(srv: &TestServer, token: &str, path: &str) -> (StatusCode, Value) {
    let r = get_response(srv, token, path).await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A GET with `token`, its FHIR body checked by the harness.
async fn get_response(srv: &TestServer, token: &str, path: &str) -> reqwest::Response {
    common::checked(
        srv.anonymous
            .get(srv.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn put(srv: &TestServer, token: &str, resource: &Value) -> StatusCode {
    let path = format!(
        "/fhir/{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    srv.anonymous
        .put(srv.url(&path))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

/// Reads as the harness's regional client (sees everything).
async fn admin_read(srv: &TestServer, path: &str) -> Value {
    let r = srv.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

fn child(nhs_hidden: bool) -> Value {
    let mut p = json!({
        "resourceType": "Patient",
        "birthDate": "2018-03-04",
        "name": [{"family": "Child", "given": ["Casey"]}],
        "address": [{"line": ["1 Secret Lane"], "postalCode": "LS1 1AA"}]
    });
    if nhs_hidden {
        p["extension"] = json!([{
            "url": "https://passport.nhs.uk/fhir/StructureDefinition/address-hidden",
            "valueBoolean": true
        }]);
    }
    p
}

fn condition(patient: &str, section: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "meta": {"tag": [{"system": SECTION, "code": section}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "code": {"text": "Epilepsy"}
    })
}

fn care_team(patient: &str, member: &str, status: &str) -> Value {
    json!({
        "resourceType": "CareTeam",
        "status": status,
        "subject": {"reference": format!("Patient/{patient}")},
        "participant": [{"member": {"reference": member}}]
    })
}

on_both_databases!(no_data_without_a_valid_token, |srv| {
    let child = srv.create(&child(false)).await;
    let path = format!("/fhir/Patient/{child}");
    // No token: 401, WWW-Authenticate without an error code (RFC 6750 §3.1), nothing of
    // the resource.
    let r = srv.anonymous.get(srv.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="passport""#
    );
    let body = common::json_body(r).await;
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert!(!body.to_string().contains(&child));
    // A malformed header, a forged token, a token for another server: 401 invalid_token.
    for auth in ["Basic Zm9vOmJhcg==", "Bearer not-a-jwt", "Bearer a.b.c"] {
        let r = srv
            .anonymous
            .get(srv.url(&path))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Writes and searches too; only the CapabilityStatement is open.
    let r = srv
        .anonymous
        .post(srv.url("/fhir/Patient"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = srv
        .anonymous
        .get(srv.url("/fhir/Patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = srv
        .anonymous
        .get(srv.url("/fhir/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The harness's token works until it is revoked; then at once it does not.
    assert_eq!(srv.get(&path).await.status(), StatusCode::OK);
    let (id, secret) = passport_server::register_regional_client(&srv.state, "revoker")
        .await
        .unwrap();
    let token =
        common::client_credentials(&srv.base, &srv.anonymous, &id, &secret, "system/*.rs").await;
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::OK);
    let r = srv
        .anonymous
        .post(srv.url("/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::UNAUTHORIZED);
    // A read-only token cannot write.
    let r = srv
        .anonymous
        .post(srv.url("/fhir/Observation"))
        .bearer_auth(
            common::client_credentials(&srv.base, &srv.anonymous, &id, &secret, "system/*.rs")
                .await,
        )
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": format!("Patient/{child}")}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
});

// Searches find a care team's children inside their SQL (`access_member`, migration 16),
// not from the child facts the reads use: for every shape of care team the two agree —
// status, the team's and the participant's periods, `onBehalfOf`, PractitionerRole members
// (the clinician's and another's), and a child with a sharing choice (its own facts).
// Every route and method of the FHIR API's route table needs a token, except the
// CapabilityStatement: without one, 401 with `WWW-Authenticate` and an OperationOutcome.
// The table is iterated, so a new route is covered without editing this test.
on_both_databases!(every_fhir_route_needs_a_token, |srv| {
    let child = srv.create(&child(false)).await;
    let mut checked = 0;
    for route in passport_server::fhir_api::table() {
        let path = route
            .path
            .replace("{type}", "Patient")
            .replace("{id}", &child)
            .replace("{compartment}", "Observation")
            .replace("{vid}", "1");
        for (method, interaction) in &route.interactions {
            let r = srv
                .anonymous
                .request(method.clone(), srv.url(&path))
                .header("content-type", "application/fhir+json")
                .body("{}")
                .send()
                .await
                .unwrap();
            if path == "/fhir/metadata" {
                assert_eq!(r.status(), StatusCode::OK, "{method} {path}");
                continue;
            }
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} ({interaction})"
            );
            assert!(
                r.headers().contains_key("www-authenticate"),
                "{method} {path}"
            );
            let body = common::json_body(r).await;
            assert_eq!(body["resourceType"], "OperationOutcome", "{method} {path}");
            assert!(!body.to_string().contains(&child), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} interactions in the table");
});

on_both_databases!(care_team_searches_agree_with_reads, |srv| {
    let hospital = common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
    let (account, practitioner) = staff(
        &srv,
        &hospital,
        access::Role::Clinician,
        "dr.who@example.nhs.uk",
    )
    .await;
    let (other_account, _) = staff(
        &srv,
        &hospital,
        access::Role::Clinician,
        "dr.no@example.nhs.uk",
    )
    .await;
    let role_of = |account: String| {
        let srv = &srv;
        async move {
            srv.state
                .domain
                .data()
                .test_store()
                .account(&account)
                .await
                .unwrap()
                .unwrap()
                .practitioner_role_id
                .unwrap()
        }
    };
    let (mine, theirs) = (role_of(account.clone()).await, role_of(other_account).await);
    let token = common::user_token(
        &srv,
        &account,
        &format!("Practitioner/{practitioner}"),
        "openid fhirUser user/*.rs",
    )
    .await;
    let org = format!("Organization/{hospital}");
    let me = format!("Practitioner/{practitioner}");
    let participant = |member: &str| json!({"member": {"reference": member}});
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "active",
            json!({"status": "active", "participant": [participant(&org)]}),
            true,
        ),
        (
            "inactive",
            json!({"status": "inactive", "participant": [participant(&org)]}),
            false,
        ),
        (
            "ended",
            json!({"status": "active", "period": {"end": "2020-01-01"},
                         "participant": [participant(&org)]}),
            false,
        ),
        (
            "not yet",
            json!({"status": "active", "period": {"start": "2999-01-01"},
                           "participant": [participant(&org)]}),
            false,
        ),
        (
            "participant ended",
            json!({"status": "active", "participant": [
            {"member": {"reference": org}, "period": {"end": "2020-01-01T00:00:00Z"}}]}),
            false,
        ),
        (
            "on behalf of",
            json!({"status": "active", "participant": [
            {"member": {"reference": "Practitioner/someone-else"},
             "onBehalfOf": {"reference": org}}]}),
            true,
        ),
        (
            "practitioner",
            json!({"status": "active", "participant": [participant(&me)]}),
            true,
        ),
        (
            "my role",
            json!({"status": "active",
                           "participant": [participant(&format!("PractitionerRole/{mine}"))]}),
            true,
        ),
        (
            "their role",
            json!({"status": "active",
                              "participant": [participant(&format!("PractitionerRole/{theirs}"))]}),
            false,
        ),
    ];
    let mut expected_total = 0;
    for (name, mut team, visible) in cases {
        let kid = srv.create(&child(false)).await;
        let cond = srv.create(&condition(&kid, "conditions")).await;
        team["resourceType"] = json!("CareTeam");
        team["subject"] = json!({"reference": format!("Patient/{kid}")});
        srv.create(&team).await;
        let read = get(&srv, &token, &format!("/fhir/Condition/{cond}"))
            .await
            .0;
        let (_, found) = get(
            &srv,
            &token,
            &format!("/fhir/Condition?subject=Patient/{kid}&_total=accurate"),
        )
        .await;
        assert_eq!(read == StatusCode::OK, visible, "{name}: read");
        assert_eq!(found["total"], u64::from(visible), "{name}: search {found}");
        expected_total += u64::from(visible);
    }
    let (_, count) = get(&srv, &token, "/fhir/Condition?_summary=count").await;
    assert_eq!(count["total"], expected_total, "{count}");

    // A child with a sharing choice is given its own facts: the hospital's view of
    // conditions withdrawn for this child alone.
    let kid = srv.create(&child(false)).await;
    let cond = srv.create(&condition(&kid, "conditions")).await;
    srv.create(&care_team(&kid, &org, "active")).await;
    let (_, before) = get(
        &srv,
        &token,
        &format!("/fhir/Condition?subject=Patient/{kid}"),
    )
    .await;
    assert_eq!(
        before["entry"][0]["resource"]["id"],
        json!(cond),
        "{before}"
    );
    let choices = access::SharingChoices::default().deny(
        access::Actor::Organisation(hospital.clone()),
        access::SectionSet::of(&[access::Section::Conditions]),
    );
    srv.create(&choices.to_consent(&kid, &format!("Patient/{kid}"), "2026-01-01"))
        .await;
    let read = get(&srv, &token, &format!("/fhir/Condition/{cond}"))
        .await
        .0;
    let (_, after) = get(
        &srv,
        &token,
        &format!("/fhir/Condition?subject=Patient/{kid}&_total=accurate"),
    )
    .await;
    assert_eq!(
        read,
        StatusCode::NOT_FOUND,
        "the choice withdraws the condition"
    );
    assert_eq!(after["total"], 0, "{after}");
});

on_both_databases!(care_team_membership_is_seen_at_once, |srv| {
    let hospital = common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
    let (account, practitioner) = staff(
        &srv,
        &hospital,
        access::Role::Clinician,
        "dr.who@example.nhs.uk",
    )
    .await;
    let token = common::user_token(
        &srv,
        &account,
        &format!("Practitioner/{practitioner}"),
        "openid fhirUser user/*.cruds",
    )
    .await;
    let kid = srv.create(&child(false)).await;
    let cond = srv.create(&condition(&kid, "conditions")).await;
    let path = format!("/fhir/Condition/{cond}");

    // Not in the care team: as if it did not exist — the same answer as a missing id.
    let (s, body) = get(&srv, &token, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s2, missing) = get(&srv, &token, "/fhir/Condition/no-such-id").await;
    assert_eq!(s2, StatusCode::NOT_FOUND);
    assert_eq!(body["issue"][0]["code"], missing["issue"][0]["code"]);
    assert!(!body.to_string().contains(&kid));
    let (_, search) = get(
        &srv,
        &token,
        &format!("/fhir/Condition?subject=Patient/{kid}&_total=accurate"),
    )
    .await;
    assert_eq!(search["total"], 0, "{search}");
    assert!(
        search["entry"].as_array().is_none_or(Vec::is_empty),
        "{search}"
    );
    let (_, count) = get(&srv, &token, "/fhir/Condition?_summary=count").await;
    assert_eq!(count["total"], 0);

    // The organisation joins the care team: at once visible (the facts cache forgets).
    let team = srv
        .create(&care_team(
            &kid,
            &format!("Organization/{hospital}"),
            "active",
        ))
        .await;
    let (s, body) = get(&srv, &token, &path).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, search) = get(
        &srv,
        &token,
        &format!("/fhir/Condition?subject=Patient/{kid}&_total=accurate"),
    )
    .await;
    assert_eq!(search["total"], 1);
    let (_, count) = get(&srv, &token, "/fhir/Condition?_summary=count").await;
    assert_eq!(count["total"], 1);
    let (s, everything) = get(&srv, &token, &format!("/fhir/Patient/{kid}/$everything")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(everything["entry"].as_array().unwrap().len() >= 3);
    // And may change it (a clinician writes conditions).
    let mut changed = admin_read(&srv, &path).await;
    changed["code"]["text"] = json!("Epilepsy, focal");
    assert_eq!(put(&srv, &token, &changed).await, StatusCode::OK);

    // The care team ends: at once gone again, reads and writes.
    let mut ended = admin_read(&srv, &format!("/fhir/CareTeam/{team}")).await;
    ended["status"] = json!("inactive");
    assert_eq!(
        srv.put(&format!("/fhir/CareTeam/{team}"), &ended)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(put(&srv, &token, &changed).await, StatusCode::NOT_FOUND);
    let (s, _) = get(&srv, &token, &format!("/fhir/Patient/{kid}/$everything")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&srv, &token, &format!("{path}/_history")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A PractitionerRole member is that one person.
    let role_id = srv
        .state
        .domain
        .data()
        .test_store()
        .account(&account)
        .await
        .unwrap()
        .unwrap()
        .practitioner_role_id
        .unwrap();
    srv.create(&care_team(
        &kid,
        &format!("PractitionerRole/{role_id}"),
        "active",
    ))
    .await;
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::OK);

    // A deactivated account's token stops working: at once when this process deactivates
    // (the pages, which forget cached callers), within RECHECK_US when another process
    // (the CLI) does — as here, through the store alone.
    srv.state
        .domain
        .data()
        .test_store()
        .set_account_active(&account, false)
        .await
        .unwrap();
    let until = std::time::Instant::now()
        + std::time::Duration::from_micros(
            passport_server::authz::authenticate::RECHECK_US as u64 + 500_000,
        );
    loop {
        let s = get(&srv, &token, &path).await.0;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            std::time::Instant::now() < until,
            "still accepted after RECHECK_US"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
});

on_both_databases!(family_links_and_redaction, |srv| {
    let (account, person) = family(&srv, "alex@example.com").await;
    let token = common::user_token(
        &srv,
        &account,
        &format!("Person/{person}"),
        "openid fhirUser user/*.cruds",
    )
    .await;
    let kid = srv.create(&child(true)).await;
    let about = srv.create(&condition(&kid, "about-me")).await;
    let path = format!("/fhir/Condition/{about}");
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::NOT_FOUND);

    // A pending (inactive) link gives nothing.
    let rp = srv
        .create(&json!({
            "resourceType": "RelatedPerson",
            "active": false,
            "patient": {"reference": format!("Patient/{kid}")},
            "extension": [{"url": "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility", "valueBoolean": true}],
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}]
        }))
        .await;
    let mut p = admin_read(&srv, &format!("/fhir/Person/{person}")).await;
    p["link"] = json!([{"target": {"reference": format!("RelatedPerson/{rp}")}}]);
    assert_eq!(
        srv.put(&format!("/fhir/Person/{person}"), &p)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::NOT_FOUND);

    // Confirmed: a parent with parental responsibility sees the passport...
    let mut link = admin_read(&srv, &format!("/fhir/RelatedPerson/{rp}")).await;
    link["active"] = json!(true);
    assert_eq!(
        srv.put(&format!("/fhir/RelatedPerson/{rp}"), &link)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::OK);
    // ...but not the hidden address, in a read or in a search.
    let (s, patient) = get(&srv, &token, &format!("/fhir/Patient/{kid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(patient.get("address").is_none(), "{patient}");
    assert!(!patient.to_string().contains("Secret Lane"));
    let (_, found) = get(&srv, &token, &format!("/fhir/Patient?_id={kid}")).await;
    assert!(!found.to_string().contains("Secret Lane"), "{found}");
    assert!(
        admin_read(&srv, &format!("/fhir/Patient/{kid}"))
            .await
            .to_string()
            .contains("Secret Lane")
    );

    // A court order withholding the whole passport: nothing again.
    link["extension"] = json!([
        {"url": "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility", "valueBoolean": true},
        {"url": "https://passport.nhs.uk/fhir/StructureDefinition/court-order-restricts", "valueCode": "all"}
    ]);
    assert_eq!(
        srv.put(&format!("/fhir/RelatedPerson/{rp}"), &link)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(get(&srv, &token, &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&srv, &token, &format!("/fhir/Patient/{kid}")).await.0,
        StatusCode::NOT_FOUND
    );
});

on_both_databases!(every_interaction_is_audited_per_child, |srv| {
    let hospital = common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
    let (account, practitioner) =
        staff(&srv, &hospital, access::Role::Nurse, "nurse@example.nhs.uk").await;
    let token = common::user_token(
        &srv,
        &account,
        &format!("Practitioner/{practitioner}"),
        "openid fhirUser user/*.cruds",
    )
    .await;
    let a = srv.create(&child(false)).await;
    let b = srv.create(&child(false)).await;
    for kid in [&a, &b] {
        srv.create(&care_team(
            kid,
            &format!("Organization/{hospital}"),
            "active",
        ))
        .await;
        srv.create(&condition(kid, "conditions")).await;
    }
    let audit_of = |patient: String| {
        let state = srv.state.clone();
        let practitioner = practitioner.clone();
        async move {
            state.domain.audit.flush().await;
            state
                .domain
                .data()
                .test_store()
                .list_audit(&passport_store::audit::AuditQuery {
                    patient_id: Some(patient),
                    count: 100,
                    include_safeguarding: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|e| serde_json::from_slice::<Value>(&e.record.event).unwrap())
                .filter(|e| e.to_string().contains(&practitioner))
                .collect::<Vec<Value>>()
        }
    };
    // One search over both children: an AuditEvent in each child's log.
    let (s, _) = get(&srv, &token, "/fhir/Condition").await;
    assert_eq!(s, StatusCode::OK);
    for kid in [&a, &b] {
        let events = audit_of(kid.clone()).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["subtype"][0]["code"], "search-type");
        assert_eq!(
            events[0]["agent"][0]["who"]["reference"],
            format!("Practitioner/{practitioner}")
        );
        assert_eq!(
            events[0]["agent"][1]["who"]["reference"],
            format!("Organization/{hospital}")
        );
        assert_eq!(events[0]["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
    }
    // A read, and a write (recorded in the write's own transaction).
    let (s, _) = get(&srv, &token, &format!("/fhir/Patient/{a}")).await;
    assert_eq!(s, StatusCode::OK);
    let r = srv
        .anonymous
        .post(srv.url("/fhir/Condition"))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(condition(&a, "conditions").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let kinds: Vec<String> = audit_of(a.clone())
        .await
        .iter()
        .map(|e| e["subtype"][0]["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "read").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "create").count(),
        1,
        "{kinds:?}"
    );
    // A refusal is audited too (with a failure outcome), without naming the child.
    let outsider = srv.create(&child(false)).await;
    let (s, _) = get(&srv, &token, &format!("/fhir/Patient/{outsider}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(audit_of(outsider.clone()).await.is_empty());
    srv.state.domain.audit.flush().await;
    let all = srv
        .state
        .domain
        .data()
        .test_store()
        .list_audit(&passport_store::audit::AuditQuery {
            count: 1000,
            include_safeguarding: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.iter().any(|e| {
        let v: Value = serde_json::from_slice(&e.record.event).unwrap();
        v["outcome"] == "4" && v.to_string().contains(&practitioner)
    }));
});

on_both_databases!(
    break_glass_opens_emergency_content_only_until_it_expires,
    |srv| {
        let ambulance =
            common::organisation(&srv, "Ambulance Trust", access::Sector::EmergencyServices).await;
        let (account, practitioner) = staff(
            &srv,
            &ambulance,
            access::Role::Clinician,
            "para@example.nhs.uk",
        )
        .await;
        let token = common::user_token(
            &srv,
            &account,
            &format!("Practitioner/{practitioner}"),
            "openid fhirUser user/*.cruds",
        )
        .await;
        let kid = srv.create(&child(false)).await;
        let emergency = srv.create(&condition(&kid, "emergency")).await;
        let private = srv.create(&condition(&kid, "conditions")).await;
        let e_path = format!("/fhir/Condition/{emergency}");
        assert_eq!(get(&srv, &token, &e_path).await.0, StatusCode::NOT_FOUND);

        let now = passport_server::clock::now_us();
        let grant = |id: &str, starts_us: i64| passport_store::break_glass::BreakGlassRow {
            id: id.into(),
            patient_id: kid.clone(),
            practitioner_id: practitioner.clone(),
            account_id: account.clone(),
            organisation_id: ambulance.clone(),
            reason: "Seizure at the roadside".into(),
            starts_us,
            expires_us: starts_us + 4 * 3600 * 1_000_000,
            reviewed_us: None,
            reviewed_by: None,
        };
        // An expired grant opens nothing.
        srv.state
            .domain
            .data()
            .test_store()
            .create_break_glass(&grant("old", now - 5 * 3600 * 1_000_000))
            .await
            .unwrap();
        srv.state.domain.facts.forget(&kid);
        assert_eq!(get(&srv, &token, &e_path).await.0, StatusCode::NOT_FOUND);
        // A current one opens the emergency content, for reading only, and nothing else.
        srv.state
            .domain
            .data()
            .test_store()
            .create_break_glass(&grant("now", now - 1_000_000))
            .await
            .unwrap();
        srv.state.domain.facts.forget(&kid);
        let (s, body) = get(&srv, &token, &e_path).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            get(&srv, &token, &format!("/fhir/Condition/{private}"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (_, found) = get(
            &srv,
            &token,
            &format!("/fhir/Condition?subject=Patient/{kid}"),
        )
        .await;
        let ids: Vec<&str> = found["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [emergency.as_str()]);
        let mut changed = body.clone();
        changed["code"]["text"] = json!("changed");
        assert_eq!(put(&srv, &token, &changed).await, StatusCode::FORBIDDEN);
        // The read is audited as emergency treatment in the child's log.
        srv.state.domain.audit.flush().await;
        let events = srv
            .state
            .domain
            .data()
            .test_store()
            .list_audit(&passport_store::audit::AuditQuery {
                patient_id: Some(kid.clone()),
                count: 100,
                include_safeguarding: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(events.iter().any(|e| {
            let v: Value = serde_json::from_slice(&e.record.event).unwrap();
            v["subtype"][0]["code"] == "read"
                && v["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
        }));
    }
);

on_both_databases!(
    the_privacy_officer_searches_the_access_log_others_find_nothing,
    |srv| {
        let hospital =
            common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
        let (nurse, nurse_p) =
            staff(&srv, &hospital, access::Role::Nurse, "n@example.nhs.uk").await;
        let (po, po_p) = staff(
            &srv,
            &hospital,
            access::Role::PrivacyOfficer,
            "po@example.nhs.uk",
        )
        .await;
        let nurse_token = common::user_token(
            &srv,
            &nurse,
            &format!("Practitioner/{nurse_p}"),
            "openid fhirUser user/*.rs",
        )
        .await;
        let po_token = common::user_token(
            &srv,
            &po,
            &format!("Practitioner/{po_p}"),
            "openid fhirUser user/*.rs",
        )
        .await;
        let kid = srv.create(&child(false)).await;
        srv.create(&care_team(
            &kid,
            &format!("Organization/{hospital}"),
            "active",
        ))
        .await;
        let cond = srv.create(&condition(&kid, "conditions")).await;
        assert_eq!(
            get(&srv, &nurse_token, &format!("/fhir/Condition/{cond}"))
                .await
                .0,
            StatusCode::OK
        );
        srv.state.domain.audit.flush().await;

        let path = format!("/fhir/AuditEvent?patient=Patient/{kid}&_count=2");
        let (s, page) = get(&srv, &po_token, &path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let entries = page["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            entries
                .iter()
                .all(|e| e["resource"]["resourceType"] == "AuditEvent")
        );
        // Newest first; the nurse's read of the condition is among this child's records.
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next");
        let mut all: Vec<Value> = entries.iter().map(|e| e["resource"].clone()).collect();
        let mut next = next.map(|l| l["url"].as_str().unwrap().to_owned());
        while let Some(url) = next {
            let (_, p) = get(&srv, &po_token, url.trim_start_matches(&srv.base)).await;
            all.extend(
                p["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["resource"].clone()),
            );
            next = p["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
        }
        assert!(all.iter().any(|e| e["subtype"][0]["code"] == "read"
            && e["agent"][0]["who"]["reference"] == format!("Practitioner/{nurse_p}")));
        // A clinician or nurse finds nothing — the same answer as no records.
        let (s, none) = get(&srv, &nurse_token, &path).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(none["total"], 0, "{none}");
        // Writing AuditEvents through the API is refused for everyone.
        let r = srv
            .post("/fhir/AuditEvent", &json!({"resourceType": "AuditEvent"}))
            .await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
);

on_both_databases!(families_are_reminded_before_the_hand_over, |srv| {
    let (_account, person) = family(&srv, "pat@example.com").await;
    // One child turns 16 in 30 days, another in several years.
    let now_s = passport_server::clock::now_us() / 1_000_000;
    let soon = access::Timestamp::from_unix(now_s + 30 * 86_400)
        .date()
        .add_years(-16)
        .to_string();
    let mut links = Vec::new();
    let mut kids = Vec::new();
    for (given, birth) in [("Robin", soon.as_str()), ("Kit", "2020-01-01")] {
        let mut c = child(false);
        c["birthDate"] = json!(birth);
        c["name"] = json!([{"text": given}]);
        let kid = srv.create(&c).await;
        let rp = srv
            .create(&json!({
                "resourceType": "RelatedPerson", "active": true,
                "patient": {"reference": format!("Patient/{kid}")},
                "extension": [{"url": "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility", "valueBoolean": true}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "FTH"}]}]
            }))
            .await;
        links.push(json!({"target": {"reference": format!("RelatedPerson/{rp}")}}));
        kids.push(kid);
    }
    let mut p = admin_read(&srv, &format!("/fhir/Person/{person}")).await;
    p["link"] = json!(links);
    assert_eq!(
        srv.put(&format!("/fhir/Person/{person}"), &p)
            .await
            .status(),
        StatusCode::OK
    );

    let mut b = common::browser::Browser::new(&srv.base);
    let signed = b
        .sign_in("pat@example.com", common::browser::PASSWORD)
        .await;
    assert_eq!(signed.status, 303);
    let home = b.get("/").await;
    assert!(home.body.contains("Robin turns 16 on"), "{}", home.body);
    assert!(!home.body.contains("Kit turns"), "{}", home.body);
    let sharing = b.get(&format!("/passport/{}/sharing", kids[0])).await;
    assert_eq!(sharing.status, 200);
    assert!(
        sharing.body.contains("id=\"handover-reminder\""),
        "{}",
        sharing.body
    );
    let other = b.get(&format!("/passport/{}/sharing", kids[1])).await;
    assert!(!other.body.contains("handover-reminder"));
});

// ---------------------------------------------------------------------------------------
// Issue 8: an outside probe's findings (items 2, 3, 5, 6)

const HIDDEN: &str = "https://passport.nhs.uk/fhir/StructureDefinition/address-hidden";
const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// A child whose first address carries the hidden-address marker (the form an earlier
/// docs/DATA-MODEL.md gave), with a second address that must be hidden too.
fn child_marked_on_address() -> Value {
    json!({
        "resourceType": "Patient",
        "birthDate": "2018-03-04",
        "name": [{"family": "Child", "given": ["Casey"]}],
        "address": [
            {"line": ["1 Secret Lane"], "postalCode": "LS1 1AA",
             "extension": [{"url": HIDDEN, "valueBoolean": true}]},
            {"line": ["2 Hidden Row"], "postalCode": "LS2 2BB"}
        ]
    })
}

fn has_marker_on_patient(p: &Value) -> bool {
    p["extension"].as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e["url"] == HIDDEN && e["valueBoolean"] == true)
    })
}

// Item 2: the marker on an address hides every address from a parent outside the care
// team; every write moves it to the Patient; data stored before is moved at start-up.
on_both_databases!(a_hidden_address_marker_on_an_address_is_honoured, |srv| {
    let (account, person) = family(&srv, "hid@example.com").await;
    let token = common::user_token(
        &srv,
        &account,
        &format!("Person/{person}"),
        "openid fhirUser user/*.cruds",
    )
    .await;
    let parent_sees = |kid: String, token: String| {
        let srv = &srv;
        async move {
            let (s, p) = get(srv, &token, &format!("/fhir/Patient/{kid}")).await;
            assert_eq!(s, StatusCode::OK, "{p}");
            let (_, found) = get(srv, &token, &format!("/fhir/Patient?_id={kid}")).await;
            format!("{p}{found}")
        }
    };

    // Written through the API (a create, and an update in a transaction): stored with the
    // marker on the Patient, and every address hidden from the parent.
    let kid = srv.create(&child_marked_on_address()).await;
    let stored = admin_read(&srv, &format!("/fhir/Patient/{kid}")).await;
    assert!(has_marker_on_patient(&stored), "{stored}");
    assert!(stored["address"][0].get("extension").is_none(), "{stored}");
    assert!(stored.to_string().contains("Secret Lane"));
    common::link_parent(&srv, &person, &[&kid]).await;
    let seen = parent_sees(kid.clone(), token.clone()).await;
    assert!(
        !seen.contains("Secret Lane") && !seen.contains("Hidden Row"),
        "{seen}"
    );

    let other = srv.create(&child(false)).await;
    let mut body = child_marked_on_address();
    body["id"] = json!(other);
    let r = srv
        .post(
            "/fhir",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                "resource": body,
                "request": {"method": "PUT", "url": format!("Patient/{other}")}
            }]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stored = admin_read(&srv, &format!("/fhir/Patient/{other}")).await;
    assert!(has_marker_on_patient(&stored), "{stored}");
    assert!(stored["address"][0].get("extension").is_none(), "{stored}");

    // Stored before this fix (written straight to the store, as the old code kept it):
    // honoured at once, and moved to the Patient by the next start, audited.
    let old = srv.create(&child(false)).await;
    common::link_parent(&srv, &person, &[&old]).await;
    let current = srv
        .state
        .domain
        .data()
        .test_store()
        .read("Patient", &old)
        .await
        .unwrap()
        .unwrap();
    let mut legacy = child_marked_on_address();
    legacy["id"] = json!(old);
    // Stamped without the write path's checks, which would move the marker: this is the
    // shape an earlier version stored.
    let serde_json::Value::Object(map) = legacy else {
        unreachable!()
    };
    let write = passport_server::records::stamp("Patient", &old, map, Some(&current));
    srv.state
        .domain
        .data()
        .test_store()
        .write(write)
        .await
        .unwrap();
    srv.state.domain.facts.forget(&old);
    let raw = admin_read(&srv, &format!("/fhir/Patient/{old}")).await;
    assert!(
        !has_marker_on_patient(&raw),
        "planted in the old form: {raw}"
    );
    let seen = parent_sees(old.clone(), token.clone()).await;
    assert!(
        !seen.contains("Secret Lane") && !seen.contains("Hidden Row"),
        "{seen}"
    );

    let (url, dir) = srv.stop().await;
    let srv = common::spawn_on(url, dir, None).await;
    let moved = admin_read(&srv, &format!("/fhir/Patient/{old}")).await;
    assert!(has_marker_on_patient(&moved), "{moved}");
    assert!(moved["address"][0].get("extension").is_none(), "{moved}");
    assert_eq!(moved["meta"]["versionId"], "3", "a new version: {moved}");
    assert!(
        moved.to_string().contains("Secret Lane"),
        "nothing else changed"
    );
    // Only that Patient got a new version (the others were already in the right form).
    let again = admin_read(&srv, &format!("/fhir/Patient/{kid}")).await;
    assert_eq!(again["meta"]["versionId"], "1");
    srv.state.domain.audit.flush().await;
    let events = srv
        .state
        .domain
        .data()
        .test_store()
        .list_audit(&passport_store::audit::AuditQuery {
            patient_id: Some(old.clone()),
            count: 100,
            include_safeguarding: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| {
            let v: Value = serde_json::from_slice(&e.record.event).unwrap();
            v["subtype"][0]["code"] == "update"
                && v["agent"][0]["who"]["display"]
                    .as_str()
                    .is_some_and(|d| d.contains("operator"))
                && v["entity"]
                    .to_string()
                    .contains(&format!("Patient/{old}/_history/3"))
        }),
        "the start-up change is audited as the operator"
    );
    // A second start changes nothing.
    let report = passport_server::startup::run(&srv.state.domain)
        .await
        .unwrap();
    assert!(report.markers_moved.is_empty(), "{report:?}");
});

// Item 3: a role its organisation's sector may not have is refused when the account is
// made, deactivated at start-up if it exists already, and stays deactivated.
on_both_databases!(roles_belong_to_their_sectors, |srv| {
    let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
    let hospital = common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
    let refused = directory::create_staff(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewStaff {
            organisation: school.clone(),
            role: access::Role::Clinician,
            email: "fake.doctor@example.sch.uk".into(),
            name: "Fake Doctor".into(),
            password: "correct horse battery staple".into(),
        },
    )
    .await;
    assert!(
        matches!(refused, Err(directory::DirectoryError::Invalid(ref m)) if m.contains("cannot be given")),
        "{refused:?}"
    );
    assert!(
        srv.state
            .domain
            .data()
            .test_store()
            .account_by_login("fake.doctor@example.sch.uk")
            .await
            .unwrap()
            .is_none()
    );
    // One made before this fix (straight into the store, as the old code allowed).
    let (good, _) = staff(
        &srv,
        &school,
        access::Role::SchoolStaff,
        "tom@example.sch.uk",
    )
    .await;
    let (doc, _) = staff(
        &srv,
        &hospital,
        access::Role::Clinician,
        "ada@example.nhs.uk",
    )
    .await;
    let mut fake = srv
        .state
        .domain
        .data()
        .test_store()
        .account(&good)
        .await
        .unwrap()
        .unwrap();
    fake.id = uuid::Uuid::now_v7().to_string();
    fake.login = "minted@example.sch.uk".into();
    fake.role = Some("clinician".into());
    assert!(
        srv.state
            .domain
            .data()
            .test_store()
            .create_account(&fake)
            .await
            .unwrap()
    );

    let (url, dir) = srv.stop().await;
    let srv = common::spawn_on(url, dir, None).await;
    let active = |id: String| {
        let srv = &srv;
        async move {
            srv.state
                .domain
                .data()
                .test_store()
                .account(&id)
                .await
                .unwrap()
                .unwrap()
                .active
        }
    };
    assert!(!active(fake.id.clone()).await, "deactivated at start-up");
    assert!(active(good.clone()).await && active(doc.clone()).await);
    // It stays deactivated: reactivation is refused.
    assert!(matches!(
        directory::set_account_active(&srv.state.domain, &fake.id, true).await,
        Err(directory::DirectoryError::Invalid(_))
    ));
    assert!(!active(fake.id.clone()).await);
    // The deactivation is in the audit log, as the operator's.
    srv.state.domain.audit.flush().await;
    let all = srv
        .state
        .domain
        .data()
        .test_store()
        .list_audit(&passport_store::audit::AuditQuery {
            count: 1000,
            include_safeguarding: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let role_ref = format!(
        "PractitionerRole/{}",
        fake.practitioner_role_id.clone().unwrap()
    );
    assert!(all.iter().any(|e| {
        let v: Value = serde_json::from_slice(&e.record.event).unwrap();
        v.to_string().contains(&role_ref) && v.to_string().contains("operator")
    }));
    // The regional roles belong to the region's own organisation only.
    for org in [&school, &hospital] {
        let r = directory::create_staff(
            &srv.state.domain,
            &passport_server::records::Agent::operator("test fixture"),
            NewStaff {
                organisation: org.to_string(),
                role: access::Role::RegionalAdmin,
                email: format!("boss-{org}@example.nhs.uk"),
                name: "Boss".into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await;
        assert!(
            matches!(r, Err(directory::DirectoryError::Invalid(_))),
            "{r:?}"
        );
    }
    let region = directory::create_regional_organisation(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewOrganisation {
            name: "North Children's Passport".into(),
            sector: access::Sector::CommunityHealth,
            ods: None,
            school_urn: None,
            region: "north".into(),
        },
    )
    .await
    .unwrap();
    for role in [access::Role::RegionalAdmin, access::Role::Commissioner] {
        staff(
            &srv,
            &region,
            role,
            &format!("{}@example.nhs.uk", role.code()),
        )
        .await;
    }
});

/// The answer to one probe, with the NHS Number tried replaced by `N` (a refusal may
/// repeat what the caller sent; it must say nothing else).
async fn probe_answer(r: reqwest::Response, nhs: &str) -> (StatusCode, String) {
    let status = r.status();
    let body = r.text().await.unwrap();
    (status, body.replace(nhs, "N"))
}

/// Conditional update, conditional create, transaction `ifNoneExist` and a conditional
/// reference in a transaction, for one NHS Number, as `token`.
async fn passport_probes(srv: &TestServer, token: &str, nhs: &str) -> Vec<(StatusCode, String)> {
    let ident = format!("{NHS_SYSTEM}|{nhs}");
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": NHS_SYSTEM, "value": nhs}],
        "birthDate": "2018-03-04"
    });
    let send =
        |method: reqwest::Method, path: String, body: Value, header: Option<(&str, String)>| {
            let mut req = srv
                .anonymous
                .request(method, srv.url(&path))
                .bearer_auth(token)
                .header("content-type", "application/fhir+json")
                .body(body.to_string());
            if let Some((k, v)) = header {
                req = req.header(k, v);
            }
            req.send()
        };
    let mut out = Vec::new();
    let r = send(
        reqwest::Method::PUT,
        format!("/fhir/Patient?identifier={}", ident.replace('|', "%7C")),
        patient.clone(),
        None,
    )
    .await
    .unwrap();
    out.push(probe_answer(r, nhs).await);
    let r = send(
        reqwest::Method::POST,
        "/fhir/Patient".into(),
        patient.clone(),
        Some(("if-none-exist", format!("identifier={ident}"))),
    )
    .await
    .unwrap();
    out.push(probe_answer(r, nhs).await);
    let r = send(
        reqwest::Method::POST,
        "/fhir".into(),
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": patient,
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={ident}")}
        }]}),
        None,
    )
    .await
    .unwrap();
    out.push(probe_answer(r, nhs).await);
    let r = send(
        reqwest::Method::POST,
        "/fhir".into(),
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {
                "resourceType": "Observation", "status": "final",
                "meta": {"tag": [{"system": SECTION, "code": "education"}]},
                "code": {"text": "Reading age"},
                "subject": {"reference": format!("Patient?identifier={ident}")}
            },
            "request": {"method": "POST", "url": "Observation"}
        }]}),
        None,
    )
    .await
    .unwrap();
    out.push(probe_answer(r, nhs).await);
    out
}

// Item 5: "a passport already exists" is told only to those whose role may create
// passports; a school's system and a family's app get for a used NHS Number exactly the
// answer an unused one gets.
on_both_databases!(
    a_used_nhs_number_looks_unused_to_those_who_cannot_create_passports,
    |srv| {
        const USED: &str = "9434765919";
        const UNUSED: &str = "9990000018";
        let mut used = child(false);
        used["identifier"] = json!([{"system": NHS_SYSTEM, "value": USED}]);
        srv.create(&used).await;

        let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
        let (account, person) = family(&srv, "probe@example.com").await;
        let callers = [
            (
                "school system, read only",
                common::system_token(&srv, &school, "system/*.rs").await,
            ),
            (
                "school system, read and write",
                common::system_token(&srv, &school, "system/*.cruds").await,
            ),
            (
                "family app",
                common::user_token(
                    &srv,
                    &account,
                    &format!("Person/{person}"),
                    "openid fhirUser user/*.cruds",
                )
                .await,
            ),
        ];
        for (who, token) in &callers {
            let a = passport_probes(&srv, token, USED).await;
            let b = passport_probes(&srv, token, UNUSED).await;
            for (i, (used, unused)) in a.iter().zip(&b).enumerate() {
                assert_eq!(used, unused, "{who}, probe {i}: used vs unused NHS Number");
                assert!(
                    !used.1.contains("already exists"),
                    "{who}, probe {i}: {}",
                    used.1
                );
            }
        }
        // Those who may create passports are still told, so there is one passport per child.
        let hospital =
            common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
        let token = common::system_token(&srv, &hospital, "system/*.cruds").await;
        let told = passport_probes(&srv, &token, USED).await;
        assert_eq!(told[0].0, StatusCode::CONFLICT, "{}", told[0].1);
        assert!(told[0].1.contains("already exists"), "{}", told[0].1);
    }
);

fn education_allergy(patient: &str) -> Value {
    json!({
        "resourceType": "AllergyIntolerance",
        "meta": {"tag": [{"system": SECTION, "code": "education"}]},
        "patient": {"reference": format!("Patient/{patient}")},
        "code": {"text": "Peanut"}
    })
}

/// A PUT of `resource` as `token`, alone or as the one entry of a transaction: (status,
/// body with `id` replaced by `ID`).
async fn put_via(
    srv: &TestServer,
    token: &str,
    resource: &Value,
    in_transaction: bool,
) -> (StatusCode, String) {
    if in_transaction {
        return put_in_transaction(srv, token, resource).await;
    }
    let id = resource["id"].as_str().unwrap();
    let r = srv
        .anonymous
        .put(srv.url(&format!("/fhir/AllergyIntolerance/{id}")))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.text().await.unwrap().replace(id, "ID"))
}

/// The same PUT as the one entry of a transaction: (status, body with `id` replaced).
async fn put_in_transaction(
    srv: &TestServer,
    token: &str,
    resource: &Value,
) -> (StatusCode, String) {
    let id = resource["id"].as_str().unwrap();
    let r = srv
        .anonymous
        .post(srv.url("/fhir"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                "resource": resource,
                "request": {"method": "PUT", "url": format!("AllergyIntolerance/{id}")}
            }]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.text().await.unwrap().replace(id, "ID"))
}

// Item 6: an update never moves a resource to another child; an id whose history the
// caller cannot see answers as a hidden live id does; a deleted id is restored only by
// someone who may see what it held; unused ids may still be created by update.
on_both_databases!(an_update_never_moves_a_resource_to_another_child, |srv| {
    let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
    let token = common::system_token(&srv, &school, "system/*.cruds").await;
    let x = srv.create(&child(false)).await;
    let z = srv.create(&child(false)).await;
    let y = srv.create(&child(false)).await;
    for kid in [&x, &z] {
        srv.create(&care_team(kid, &format!("Organization/{school}"), "active"))
            .await;
    }
    // Child Y (not the school's): one live allergy, one deleted.
    let y_live = srv.create(&education_allergy(&y)).await;
    let y_gone = srv.create(&education_allergy(&y)).await;
    assert_eq!(
        srv.delete(&format!("/fhir/AllergyIntolerance/{y_gone}"))
            .await
            .status(),
        StatusCode::OK
    );
    let history_of = |id: String| {
        let srv = &srv;
        async move {
            admin_read(srv, &format!("/fhir/AllergyIntolerance/{id}/_history")).await["entry"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };

    for tx in [false, true] {
        // Y's deleted record, written with content about X: refused exactly as Y's live
        // (hidden) record is.
        let mut onto_deleted = education_allergy(&x);
        onto_deleted["id"] = json!(y_gone);
        let mut onto_live = education_allergy(&x);
        onto_live["id"] = json!(y_live);
        let deleted = put_via(&srv, &token, &onto_deleted, tx).await;
        let live = put_via(&srv, &token, &onto_live, tx).await;
        assert_eq!(deleted.0, StatusCode::NOT_FOUND, "{}", deleted.1);
        assert_eq!(deleted, live);
        assert_eq!(
            history_of(y_gone.clone()).await,
            2,
            "Y's history is untouched"
        );
        assert_eq!(history_of(y_live.clone()).await, 1);
    }

    // The school's own (visible) record of X cannot be moved to Z: told so (409).
    let mut mine = admin_read(
        &srv,
        &format!(
            "/fhir/AllergyIntolerance/{}",
            srv.create(&education_allergy(&x)).await
        ),
    )
    .await;
    mine["patient"] = json!({"reference": format!("Patient/{z}")});
    for tx in [false, true] {
        let (s, body) = put_via(&srv, &token, &mine, tx).await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        assert!(body.contains("another child"), "{body}");
    }
    // Deleted by the school: not movable either, but restored for the same child.
    let id = mine["id"].as_str().unwrap().to_owned();
    let r = srv
        .anonymous
        .delete(srv.url(&format!("/fhir/AllergyIntolerance/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        put_via(&srv, &token, &mine, false).await.0,
        StatusCode::CONFLICT
    );
    mine["patient"] = json!({"reference": format!("Patient/{x}")});
    assert_eq!(
        put_via(&srv, &token, &mine, false).await.0,
        StatusCode::CREATED
    );
    // An id never used is still created by update.
    let mut fresh = education_allergy(&x);
    fresh["id"] = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(
        put_via(&srv, &token, &fresh, false).await.0,
        StatusCode::CREATED
    );
    let mut fresh = education_allergy(&x);
    fresh["id"] = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(
        put_in_transaction(&srv, &token, &fresh).await.0,
        StatusCode::OK
    );
});

fn tagged(mut resource: Value, section: &str) -> Value {
    resource["meta"] = json!({"tag": [{"system": SECTION, "code": section}]});
    resource
}

/// Asserts a 403 `insufficient_scope` naming `scope`, in the header and the outcome.
async fn assert_insufficient_scope(srv: &TestServer, token: &str, path: &str, scope: &str) {
    let r = get_response(srv, token, path).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "GET {path}");
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(r#"Bearer realm="passport", error="insufficient_scope", scope="{scope}""#),
        "GET {path}"
    );
    let oo = common::json_body(r).await;
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["code"], "forbidden");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(scope),
        "GET {path}: {oo}"
    );
}

// Issue 9: a token whose scopes do not cover a type at all is told so (403
// insufficient_scope), never given an empty Bundle an app would read as "no allergies".
// Granular scopes cover their type; `_include`, `_revinclude` and `$everything` leave
// uncovered types out; resources of a covered type the caller may not see stay hidden.
on_both_databases!(a_type_the_scopes_do_not_cover_is_refused_not_empty, |srv| {
    let hospital = common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
    let (account, practitioner) = staff(
        &srv,
        &hospital,
        access::Role::Clinician,
        "dr.scope@example.nhs.uk",
    )
    .await;
    let kid = srv.create(&child(false)).await;
    srv.create(&care_team(
        &kid,
        &format!("Organization/{hospital}"),
        "active",
    ))
    .await;
    let subject = json!({"reference": format!("Patient/{kid}")});
    let allergy = srv
        .create(&tagged(
            json!({"resourceType": "AllergyIntolerance", "patient": subject,
                   "code": {"text": "Peanut"}}),
            "allergies",
        ))
        .await;
    let cond = srv.create(&condition(&kid, "conditions")).await;
    let obs = srv
        .create(&tagged(
            json!({"resourceType": "Observation", "status": "final", "subject": subject,
                   "code": {"text": "Seizure diary"}}),
            "conditions",
        ))
        .await;
    let as_user = |scope: &'static str| {
        let (srv, account, practitioner) = (&srv, &account, &practitioner);
        async move {
            common::user_token(
                srv,
                account,
                &format!("Practitioner/{practitioner}"),
                &format!("openid fhirUser {scope}"),
            )
            .await
        }
    };

    // Conditions only.
    let token = as_user("user/Condition.rs").await;
    for (path, scope) in [
        (
            format!("/fhir/AllergyIntolerance?patient=Patient/{kid}"),
            "user/AllergyIntolerance.s",
        ),
        (
            "/fhir/AllergyIntolerance".to_owned(),
            "user/AllergyIntolerance.s",
        ),
        (
            format!("/fhir/Patient/{kid}/AllergyIntolerance"),
            "user/AllergyIntolerance.s",
        ),
        (
            format!("/fhir/AllergyIntolerance/{allergy}"),
            "user/AllergyIntolerance.r",
        ),
        // Even an id that does not exist: the answer is about the type.
        (
            "/fhir/AllergyIntolerance/no-such-id".to_owned(),
            "user/AllergyIntolerance.r",
        ),
        (
            format!("/fhir/AllergyIntolerance/{allergy}/_history/1"),
            "user/AllergyIntolerance.r",
        ),
        (
            format!("/fhir/AllergyIntolerance/{allergy}/_history"),
            "user/AllergyIntolerance.r",
        ),
        (
            "/fhir/AllergyIntolerance/_history".to_owned(),
            "user/AllergyIntolerance.r",
        ),
        (format!("/fhir/Patient/{kid}"), "user/Patient.r"),
        (format!("/fhir/Patient/{kid}/$everything"), "user/Patient.r"),
    ] {
        assert_insufficient_scope(&srv, &token, &path, scope).await;
    }
    // The covered type answers; its `_include` of the (uncovered) Patient is left out.
    let (s, b) = get(
        &srv,
        &token,
        &format!("/fhir/Condition?subject=Patient/{kid}&_include=Condition:subject"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let types: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Condition"], "{b}");
    assert_eq!(
        get(&srv, &token, &format!("/fhir/Condition/{cond}"))
            .await
            .0,
        StatusCode::OK
    );
    // A batch's entries answer each as its own request would.
    let r = common::checked(
        srv.anonymous
            .post(srv.url("/fhir"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Bundle", "type": "batch", "entry": [
                    {"request": {"method": "GET", "url": format!("AllergyIntolerance?patient=Patient/{kid}")}},
                    {"request": {"method": "GET", "url": format!("Condition/{cond}")}}
                ]})
                .to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let b = common::json_body(r).await;
    assert_eq!(b["entry"][0]["response"]["status"], "403 Forbidden", "{b}");
    assert!(
        b["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("200"),
        "{b}"
    );

    // Patient and conditions: `$everything` works and leaves the allergy out;
    // `_revinclude` of allergies is left out too.
    let token = as_user("user/Patient.rs user/Condition.rs").await;
    let (s, b) = get(&srv, &token, &format!("/fhir/Patient/{kid}/$everything")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut types: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["Condition", "Patient"], "{b}");
    let (s, b) = get(
        &srv,
        &token,
        &format!("/fhir/Patient?_id={kid}&_revinclude=AllergyIntolerance:patient&_revinclude=Condition:subject"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut types: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["Condition", "Patient"], "{b}");

    // A granular scope covers its type: what it does not reach is simply not there.
    for scope in [
        "user/Observation.rs?category=laboratory",
        "user/Observation.rs?_tag=https://passport.nhs.uk/fhir/CodeSystem/passport-section|education",
    ] {
        let token = as_user(scope).await;
        let (s, b) = get(
            &srv,
            &token,
            &format!("/fhir/Observation?subject=Patient/{kid}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{scope}: {b}");
        assert!(b.get("entry").is_none(), "{scope}: {b}");
        assert_eq!(
            get(&srv, &token, &format!("/fhir/Observation/{obs}"))
                .await
                .0,
            StatusCode::NOT_FOUND,
            "{scope}"
        );
        assert_insufficient_scope(&srv, &token, "/fhir/Condition", "user/Condition.s").await;
    }
    let token = as_user(
        "user/Observation.rs?_tag=https://passport.nhs.uk/fhir/CodeSystem/passport-section|conditions",
    )
    .await;
    let (s, b) = get(
        &srv,
        &token,
        &format!("/fhir/Observation?subject=Patient/{kid}"),
    )
    .await;
    assert_eq!(
        (s, b["entry"][0]["resource"]["id"].as_str()),
        (StatusCode::OK, Some(obs.as_str())),
        "{b}"
    );

    // Read without search, and search without read.
    let token = as_user("user/AllergyIntolerance.r").await;
    assert_eq!(
        get(&srv, &token, &format!("/fhir/AllergyIntolerance/{allergy}"))
            .await
            .0,
        StatusCode::OK
    );
    assert_insufficient_scope(
        &srv,
        &token,
        "/fhir/AllergyIntolerance",
        "user/AllergyIntolerance.s",
    )
    .await;

    // A backend client is named system/ scopes; covered but hidden stays 404.
    let token = common::system_token(&srv, &hospital, "system/Condition.rs").await;
    assert_insufficient_scope(
        &srv,
        &token,
        &format!("/fhir/AllergyIntolerance/{allergy}"),
        "system/AllergyIntolerance.r",
    )
    .await;
    assert_eq!(
        get(&srv, &token, "/fhir/Condition/no-such-id").await.0,
        StatusCode::NOT_FOUND
    );
});

/// A version written straight to the store, as code before issue 9 kept it (no section
/// is added): `resource` must carry its `id`.
fn stored_as_before(resource: Value, version: i64) -> passport_store::Write {
    let Value::Object(mut map) = resource else {
        unreachable!()
    };
    let rtype = map["resourceType"].as_str().unwrap().to_owned();
    let id = map["id"].as_str().unwrap().to_owned();
    let now = passport_server::clock::now_us();
    fhir::meta::stamp(
        &mut map,
        &id,
        version,
        &passport_server::clock::instant(now),
    );
    let value = Value::Object(map);
    passport_store::Write {
        index: fhir::search::extract(&value),
        access: passport_server::authz::access_inputs(&value),
        resource_type: rtype,
        id,
        replaces: (version > 1).then_some(version - 1),
        version_id: version,
        last_updated_us: now,
        deleted: false,
        body: serde_json::to_vec(&value).unwrap().into(),
        unless_exists: None,
        audit: Vec::new(),
    }
}

fn sections_of(v: &Value) -> Vec<&'static str> {
    access::Section::from_resource_meta(v)
        .iter()
        .map(|s| s.code())
        .collect()
}

// Issue 9 item 5: every item has a section. A write without one gets the previous
// version's or its type's default (recorded in meta.tag); items stored before get theirs
// at start-up; so an emergency-services clinician sees an allergy written without a tag.
on_both_databases!(every_item_has_a_section, |srv| {
    let ambulance =
        common::organisation(&srv, "North Ambulance", access::Sector::EmergencyServices).await;
    let club = common::organisation(&srv, "Riverside Swimming Club", access::Sector::Leisure).await;
    let (paramedic, paramedic_practitioner) = staff(
        &srv,
        &ambulance,
        access::Role::Clinician,
        "para@example.nhs.uk",
    )
    .await;
    let (coach, coach_practitioner) =
        staff(&srv, &club, access::Role::LeisureStaff, "coach@example.org").await;
    let kid = srv.create(&child(false)).await;
    for org in [&ambulance, &club] {
        srv.create(&care_team(&kid, &format!("Organization/{org}"), "active"))
            .await;
    }
    let subject = json!({"reference": format!("Patient/{kid}")});

    // Creates without a section: the type's default, in meta.tag.
    let patient = admin_read(&srv, &format!("/fhir/Patient/{kid}")).await;
    assert_eq!(sections_of(&patient), ["about-me"], "{patient}");
    let allergy = srv
        .create(
            &json!({"resourceType": "AllergyIntolerance", "patient": subject,
                        "code": {"text": "Peanut"}}),
        )
        .await;
    let stored = admin_read(&srv, &format!("/fhir/AllergyIntolerance/{allergy}")).await;
    assert_eq!(sections_of(&stored), ["allergies"], "{stored}");
    for (resource, expected) in [
        (
            json!({"resourceType": "MedicationStatement", "status": "active", "subject": subject,
                   "medicationCodeableConcept": {"text": "Adrenaline auto-injector"}}),
            "medicines",
        ),
        (
            json!({"resourceType": "Condition", "subject": subject, "code": {"text": "Epilepsy"}}),
            "conditions",
        ),
        (
            json!({"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject,
                   "category": [{"text": "Emergency protocol"}]}),
            "emergency",
        ),
        (
            json!({"resourceType": "RelatedPerson", "patient": subject, "name": [{"family": "Jones"}]}),
            "contacts",
        ),
    ] {
        let ty = resource["resourceType"].as_str().unwrap().to_owned();
        let id = srv.create(&resource).await;
        let stored = admin_read(&srv, &format!("/fhir/{ty}/{id}")).await;
        assert_eq!(sections_of(&stored), [expected], "{stored}");
    }
    // In a transaction too; an Observation has no default (its content decides).
    let r = srv
        .post(
            "/fhir",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:0b4c3f44-5b7e-4f1c-9a55-3d2c1e0f9a01",
                 "resource": {"resourceType": "AllergyIntolerance", "patient": subject, "code": {"text": "Latex"}},
                 "request": {"method": "POST", "url": "AllergyIntolerance"}},
                {"resource": {"resourceType": "Observation", "status": "final", "subject": subject, "code": {"text": "Weight"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]}),
        )
        .await;
    let b = common::json_body(r).await;
    let loc = |i: usize| {
        b["entry"][i]["response"]["location"]
            .as_str()
            .unwrap()
            .split("/_history")
            .next()
            .unwrap()
            .trim_start_matches(&format!("{}/", srv.fhir_base()))
            .to_owned()
    };
    let latex = admin_read(&srv, &format!("/fhir/{}", loc(0))).await;
    assert_eq!(sections_of(&latex), ["allergies"], "{latex}");
    let weight = admin_read(&srv, &format!("/fhir/{}", loc(1))).await;
    assert!(sections_of(&weight).is_empty(), "{weight}");

    // An update without a section keeps the previous version's (not the default).
    let mut tagged = json!({"resourceType": "AllergyIntolerance", "patient": subject,
        "code": {"text": "Egg"}, "meta": {"tag": [{"system": SECTION, "code": "education"}]}});
    let egg = srv.create(&tagged).await;
    tagged["id"] = json!(egg);
    tagged.as_object_mut().unwrap().remove("meta");
    tagged["code"]["text"] = json!("Egg (baked egg tolerated)");
    let r = srv
        .put(&format!("/fhir/AllergyIntolerance/{egg}"), &tagged)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let updated = admin_read(&srv, &format!("/fhir/AllergyIntolerance/{egg}")).await;
    assert_eq!(
        (updated["meta"]["versionId"].as_str(), sections_of(&updated)),
        (Some("2"), vec!["education"]),
        "{updated}"
    );
    // A patch that removes the tags: the previous version's again.
    let r = srv
        .client
        .patch(srv.url(&format!("/fhir/AllergyIntolerance/{egg}")))
        .header("content-type", "application/json-patch+json")
        .body(json!([{"op": "remove", "path": "/meta/tag"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patched = admin_read(&srv, &format!("/fhir/AllergyIntolerance/{egg}")).await;
    assert_eq!(sections_of(&patched), ["education"], "{patched}");

    // The emergency-services clinician sees the allergy written without a tag; the club
    // sees the child's Patient (about me) but not the allergy.
    let para = common::user_token(
        &srv,
        &paramedic,
        &format!("Practitioner/{paramedic_practitioner}"),
        "openid fhirUser user/*.rs",
    )
    .await;
    let (s, found) = get(
        &srv,
        &para,
        &format!("/fhir/AllergyIntolerance?patient=Patient/{kid}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = found["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert!(ids.contains(&allergy.as_str()), "{found}");
    let leisure = common::user_token(
        &srv,
        &coach,
        &format!("Practitioner/{coach_practitioner}"),
        "openid fhirUser user/*.rs",
    )
    .await;
    assert_eq!(
        get(&srv, &leisure, &format!("/fhir/Patient/{kid}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(
            &srv,
            &leisure,
            &format!("/fhir/AllergyIntolerance/{allergy}")
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Stored before this change, without any section: invisible to the ambulance crew
    // until the next start gives it its default (a new version, audited as the operator).
    let old_allergy = uuid::Uuid::now_v7().to_string();
    let old_rp = uuid::Uuid::now_v7().to_string();
    let old_kid = uuid::Uuid::now_v7().to_string();
    srv.state
        .domain
        .data()
        .test_store()
        .write_all(vec![
            stored_as_before(
                json!({"resourceType": "Patient", "id": old_kid, "birthDate": "2016-05-06",
                       "name": [{"family": "Old", "given": ["Olly"]}]}),
                1,
            ),
            stored_as_before(
                json!({"resourceType": "AllergyIntolerance", "id": old_allergy,
                       "patient": {"reference": format!("Patient/{old_kid}")},
                       "code": {"text": "Peanut"}}),
                1,
            ),
            stored_as_before(
                json!({"resourceType": "RelatedPerson", "id": old_rp,
                       "patient": {"reference": format!("Patient/{old_kid}")},
                       "name": [{"family": "Old"}]}),
                1,
            ),
        ])
        .await
        .map_err(|e| e.error)
        .unwrap();
    srv.create(&care_team(
        &old_kid,
        &format!("Organization/{ambulance}"),
        "active",
    ))
    .await;
    assert_eq!(
        get(
            &srv,
            &para,
            &format!("/fhir/AllergyIntolerance/{old_allergy}")
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "untagged: only health and social care"
    );
    let (url, dir) = srv.stop().await;
    let srv = common::spawn_on(url, dir, None).await;
    for (path, expected) in [
        (
            format!("/fhir/AllergyIntolerance/{old_allergy}"),
            "allergies",
        ),
        (format!("/fhir/RelatedPerson/{old_rp}"), "contacts"),
        (format!("/fhir/Patient/{old_kid}"), "about-me"),
    ] {
        let v = admin_read(&srv, &path).await;
        assert_eq!(
            (v["meta"]["versionId"].as_str(), sections_of(&v)),
            (Some("2"), vec![expected]),
            "{v}"
        );
    }
    // Nothing else changed: items that had sections keep their version.
    let v = admin_read(&srv, &format!("/fhir/AllergyIntolerance/{allergy}")).await;
    assert_eq!(v["meta"]["versionId"], "1");
    let v = admin_read(&srv, &format!("/fhir/AllergyIntolerance/{egg}")).await;
    assert_eq!(v["meta"]["versionId"], "3");
    let para = common::user_token(
        &srv,
        &paramedic,
        &format!("Practitioner/{paramedic_practitioner}"),
        "openid fhirUser user/*.rs",
    )
    .await;
    let (s, v) = get(
        &srv,
        &para,
        &format!("/fhir/AllergyIntolerance/{old_allergy}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    srv.state.domain.audit.flush().await;
    let events = srv
        .state
        .domain
        .data()
        .test_store()
        .list_audit(&passport_store::audit::AuditQuery {
            patient_id: Some(old_kid.clone()),
            count: 100,
            include_safeguarding: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| {
            let v: Value = serde_json::from_slice(&e.record.event).unwrap();
            v["agent"][0]["who"]["display"]
                .as_str()
                .is_some_and(|d| d.contains("operator"))
                && v["entity"]
                    .to_string()
                    .contains(&format!("AllergyIntolerance/{old_allergy}/_history/2"))
        }),
        "the start-up change is audited as the operator"
    );
    // A second start changes nothing.
    let report = passport_server::startup::run(&srv.state.domain)
        .await
        .unwrap();
    assert!(report.sections_given.is_empty(), "{report:?}");
});

on_both_databases!(
    a_child_with_thousands_of_care_teams_keeps_its_facts,
    |srv| {
        // More CareTeams than a child's facts are read with in one statement (1,000 of each of
        // four types): the Patient, sorted after them, must not be crowded out — the child
        // would have no facts, so no care team, and its care team could not read it.
        let kid = srv.create(&child(false)).await;
        let hospital =
            common::organisation(&srv, "St Elsewhere", access::Sector::HospitalTrust).await;
        let team = care_team(&kid, &format!("Organization/{hospital}"), "active");
        for _ in 0..9 {
            let entries: Vec<Value> = (0..450)
                .map(
                    |_| json!({"resource": team, "request": {"method": "POST", "url": "CareTeam"}}),
                )
                .collect();
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            let r = srv.post("/fhir", &bundle).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        }
        let token = common::system_token(&srv, &hospital, "system/*.rs").await;
        let r = srv
            .anonymous
            .get(srv.url(&format!("/fhir/Patient/{kid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
);
