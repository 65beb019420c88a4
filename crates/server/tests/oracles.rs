//! The outside probe's criteria oracles (issue 8), exactly as it ran them, on SQLite and
//! PostgreSQL: a search criterion matched against data the caller may not see answered
//! questions about it (1 result or 0, a `next` link or none, a total). Every search must
//! answer as if the hidden data did not exist. tests/matrix.rs covers the class for every
//! representative subject; these are the probe's own requests.

mod common;

use common::{StatusCode, TestServer, Value, json};
use passport_server::web::directory::{self, NewFamily};

const SECTION: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-section";
const HIDDEN_ADDRESS: &str = "https://passport.nhs.uk/fhir/StructureDefinition/address-hidden";

/// A parent's sign-in (Person) and token by the real code exchange: (token, Person id).
async fn parent_token(srv: &TestServer) -> (String, String) {
    let created = directory::create_family(
        &srv.state.domain,
        &passport_server::records::Agent::operator("test fixture"),
        NewFamily {
            email: "parent@example.com".into(),
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
    let person = account.person_id.unwrap();
    let token = common::user_token(
        srv,
        &created.account_id,
        &format!("Person/{person}"),
        "openid fhirUser user/*.cruds",
    )
    .await;
    (token, person)
}

/// A child whose Patient everyone related sees (about me).
fn child(address: Option<(&str, &str)>, hidden: bool) -> Value {
    let mut p = json!({
        "resourceType": "Patient",
        "meta": {"tag": [{"system": SECTION, "code": "about-me"}]},
        "birthDate": "2018-03-04",
        "name": [{"family": "Child", "given": ["Casey"]}],
    });
    if let Some((line, postcode)) = address {
        p["address"] =
            json!([{"use": "home", "line": [line], "city": "Leeds", "postalCode": postcode}]);
    }
    if hidden {
        p["extension"] = json!([{"url": HIDDEN_ADDRESS, "valueBoolean": true}]);
    }
    p
}

fn in_section(mut r: Value, patient: &str, section: &str) -> Value {
    r["meta"] = json!({"tag": [{"system": SECTION, "code": section}]});
    r["subject"] = json!({"reference": format!("Patient/{patient}")});
    r
}

async fn get(srv: &TestServer, token: &str, path: &str) -> (StatusCode, Value) {
    let r = srv
        .anonymous
        .get(srv.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// What a search answer tells: status, total, whether there is a next page, the ids found.
fn answer(status: StatusCode, v: &Value) -> (u16, Value, bool, Vec<String>) {
    let next = v["link"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| l["relation"] == "next");
    let ids = v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    (status.as_u16(), v["total"].clone(), next, ids)
}

/// The body without what differs between any two answers (ids, times, link URLs, which
/// repeat the query).
fn normalised(v: &Value) -> Value {
    let mut v = v.clone();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["id", "lastUpdated", "url", "fullUrl"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// `guess` (a criterion only hidden data meets) answers exactly as `nothing` (one nothing
/// meets): a searchset with total 0, no entries and no next page.
async fn same_as_nothing(srv: &TestServer, token: &str, guess: &str, nothing: &str) {
    let (gs, g) = get(srv, token, guess).await;
    let (ns, n) = get(srv, token, nothing).await;
    assert_eq!(
        answer(gs, &g),
        (200, json!(0), false, vec![]),
        "GET {guess} tells what hidden data holds: {g}"
    );
    assert_eq!(answer(gs, &g), answer(ns, &n), "GET {guess} / {nothing}");
    assert_eq!(
        normalised(&g),
        normalised(&n),
        "GET {guess}: {g}\nvs {nothing}: {n}"
    );
}

/// The regional client (sees everything) finds one match: the guess is right.
async fn right_guess(srv: &TestServer, path: &str) {
    let v: Value = srv.get(path).await.json().await.unwrap();
    assert_eq!(
        v["total"], 1,
        "the guess is right, so the regional client finds it: {v}"
    );
}

// (1) A school's system, in child X's care team, sees X's Patient but not X's Conditions:
// guessing a Condition's text through `_has` (prefix, `:contains`), or on the Condition
// type itself, learns nothing.
on_both_databases!(a_school_cannot_guess_a_hidden_condition, |srv| {
    let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
    let token = common::system_token(&srv, &school, "system/*.cruds").await;
    let x = srv.create(&child(None, false)).await;
    srv.create(&json!({
        "resourceType": "CareTeam", "status": "active",
        "subject": {"reference": format!("Patient/{x}")},
        "participant": [{"member": {"reference": format!("Organization/{school}")}}]
    }))
    .await;
    let condition = srv
        .create(&in_section(
            json!({"resourceType": "Condition",
                   "code": {"text": "Epilepsy with focal seizures"},
                   "onsetString": "Since infancy"}),
            &x,
            "conditions",
        ))
        .await;

    // The school sees the child, not the Condition.
    let (s, v) = get(&srv, &token, &format!("/fhir/Patient?_id={x}")).await;
    assert_eq!(answer(s, &v).3, vec![x.clone()], "{v}");
    let (s, _) = get(&srv, &token, &format!("/fhir/Condition/{condition}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let guesses = [
        // The probe's request: a prefix of the hidden Condition's code.text.
        ("_has:Condition:subject:code:text", "Epil", "Asth"),
        // A string parameter with `:contains`.
        (
            "_has:Condition:subject:onset-info:contains",
            "infan",
            "teena",
        ),
        ("_has:Condition:subject:onset-info", "Since", "Until"),
    ];
    for (param, right, wrong) in guesses {
        for extra in ["", "&_total=accurate", "&_count=1", "&_summary=count"] {
            let path = |v: &str| format!("/fhir/Patient?_id={x}&{param}={v}{extra}");
            right_guess(&srv, &format!("{}&_total=accurate", path(right))).await;
            same_as_nothing(&srv, &token, &path(right), &path(wrong)).await;
        }
    }
    // On the Condition type itself, and through a chain from the child.
    for (path, right, wrong) in [
        (
            format!("/fhir/Condition?patient=Patient/{x}&code:text="),
            "Epil",
            "Asth",
        ),
        (
            format!("/fhir/Condition?subject:Patient._id={x}&onset-info:contains="),
            "infan",
            "teena",
        ),
    ] {
        right_guess(&srv, &format!("{path}{right}&_total=accurate")).await;
        same_as_nothing(
            &srv,
            &token,
            &format!("{path}{right}&_count=1&_total=accurate"),
            &format!("{path}{wrong}&_count=1&_total=accurate"),
        )
        .await;
    }
});

// (2) Paging and totals: rows the caller may not see make no `next` link and count in no
// total — searches, type history and `$everything`.
on_both_databases!(hidden_rows_make_no_pages_and_no_totals, |srv| {
    let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
    let token = common::system_token(&srv, &school, "system/*.cruds").await;
    // X: in the school's care team, with one Observation the school sees (about me),
    // written first, then hidden ones (conditions). H: a child the school has nothing to
    // do with, whose Observations are in a section schools see.
    let x = srv.create(&child(None, false)).await;
    srv.create(&json!({
        "resourceType": "CareTeam", "status": "active",
        "subject": {"reference": format!("Patient/{x}")},
        "participant": [{"member": {"reference": format!("Organization/{school}")}}]
    }))
    .await;
    let obs = |text: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": text}});
    let seen = srv
        .create(&in_section(obs("Likes trains"), &x, "about-me"))
        .await;
    let h = srv.create(&child(None, false)).await;
    for n in 0..3 {
        srv.create(&in_section(obs(&format!("Seizure {n}")), &x, "conditions"))
            .await;
        srv.create(&in_section(obs(&format!("Height {n}")), &h, "about-me"))
            .await;
    }
    srv.create(&in_section(
        json!({"resourceType": "Condition", "code": {"text": "Epilepsy"}}),
        &x,
        "conditions",
    ))
    .await;

    // The probe's request: a hidden child's Observations, one at a time, answer as a child
    // that does not exist.
    let nobody = uuid::Uuid::now_v7().to_string();
    let v: Value = srv
        .get(&format!(
            "/fhir/Observation?patient=Patient/{h}&_total=accurate"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], 3, "the regional client finds them: {v}");
    for q in [
        "_count=1&_total=accurate",
        "_count=1",
        "_summary=count",
        "_total=accurate",
    ] {
        let path = |c: &str| format!("/fhir/Observation?patient=Patient/{c}&{q}");
        same_as_nothing(&srv, &token, &path(&h), &path(&nobody)).await;
    }
    // The visible child's: only the one the school sees, on one page, counted once.
    for q in [
        "_count=1&_total=accurate",
        "_sort=-_lastUpdated&_count=1&_total=accurate",
    ] {
        let (s, v) = get(
            &srv,
            &token,
            &format!("/fhir/Observation?patient=Patient/{x}&{q}"),
        )
        .await;
        assert_eq!(
            answer(s, &v),
            (200, json!(1), false, vec![seen.clone()]),
            "{q}: {v}"
        );
    }

    // Type history, one at a time: the school sees one Observation version; the newer
    // hidden ones make no next page.
    let (s, all) = get(&srv, &token, "/fhir/Observation/_history?_count=1000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(answer(s, &all).3, vec![seen.clone()], "{all}");
    let (s, v) = get(&srv, &token, "/fhir/Observation/_history?_count=1").await;
    assert!(!answer(s, &v).2, "a next page made of hidden versions: {v}");
    assert_eq!(answer(s, &v).3, vec![seen.clone()], "{v}");
    let (s, v) = get(&srv, &token, "/fhir/Condition/_history?_count=1").await;
    assert_eq!(answer(s, &v), (200, Value::Null, false, vec![]), "{v}");

    // $everything of the visible child: exactly what the school sees, on one page of that
    // size; one at a time, as many pages.
    let (s, all) = get(
        &srv,
        &token,
        &format!("/fhir/Patient/{x}/$everything?_count=1000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let shown = answer(s, &all).3;
    assert!(shown.contains(&x) && shown.contains(&seen), "{all}");
    let (s, v) = get(
        &srv,
        &token,
        &format!("/fhir/Patient/{x}/$everything?_count={}", shown.len()),
    )
    .await;
    assert!(!answer(s, &v).2, "a next page made of hidden rows: {v}");
    assert_eq!(answer(s, &v).3, shown, "{v}");
    let mut pages = Vec::new();
    let mut path = format!("/fhir/Patient/{x}/$everything?_count=1");
    loop {
        let (s, v) = get(&srv, &token, &path).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let ids = answer(s, &v).3;
        assert_eq!(
            ids.len(),
            1,
            "every page holds one (none is emptied by hidden rows): {v}"
        );
        pages.extend(ids);
        let next = v["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str());
        match next {
            Some(url) => path = url.strip_prefix(&srv.base).unwrap().to_owned(),
            None => break,
        }
        assert!(
            pages.len() <= shown.len(),
            "more pages than rows: {pages:?}"
        );
    }
    assert_eq!(pages, shown);
    // The hidden child's answers as a child that does not exist.
    let (hs, hv) = get(
        &srv,
        &token,
        &format!("/fhir/Patient/{h}/$everything?_count=1"),
    )
    .await;
    let (ns, nv) = get(
        &srv,
        &token,
        &format!("/fhir/Patient/{nobody}/$everything?_count=1"),
    )
    .await;
    assert_eq!(hs, ns, "{hv} / {nv}");
    assert_eq!(
        normalised(&hv).to_string().replace(&h, "<ID>"),
        normalised(&nv).to_string().replace(&nobody, "<ID>")
    );
});

// (3) A parent outside the care team sees their child's Patient, not the hidden address:
// criteria and sort keys on the address answer as if there were none.
on_both_databases!(a_hidden_address_is_no_criterion, |srv| {
    let (token, person) = parent_token(&srv).await;
    let x = srv
        .create(&child(Some(("Aaa Secret Lane", "HX9 9QZ")), true))
        .await;
    let y = srv
        .create(&child(Some(("Mmm Open Road", "LS2 2BB")), false))
        .await;
    common::link_parent(&srv, &person, &[&x, &y]).await;
    let (s, v) = get(&srv, &token, &format!("/fhir/Patient/{x}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !v.to_string().contains("Secret"),
        "the address is hidden: {v}"
    );

    for (param, right, wrong) in [
        // The probe's requests.
        ("address", "Aaa", "Bbb"),
        ("address-postalcode", "HX9", "ZZ1"),
        ("address:contains", "Secret", "Public"),
        ("address-city:exact", "Leeds", "York"),
        ("address-use", "home", "temp"),
    ] {
        for extra in ["&_total=accurate", "&_count=1", "&_summary=count"] {
            let path = |v: &str| format!("/fhir/Patient?_id={x}&{param}={v}{extra}");
            right_guess(&srv, &format!("{}&_total=accurate", path(right))).await;
            same_as_nothing(&srv, &token, &path(right), &path(wrong)).await;
        }
    }
    // An address that is there, but hidden, is not one: `:missing=false` finds nothing,
    // `:missing=true` finds the child.
    same_as_nothing(
        &srv,
        &token,
        &format!("/fhir/Patient?_id={x}&address:missing=false&_total=accurate"),
        &format!("/fhir/Patient?_id={x}&address-postalcode=ZZ1&_total=accurate"),
    )
    .await;
    let (s, v) = get(
        &srv,
        &token,
        &format!("/fhir/Patient?_id={x}&address:missing=true"),
    )
    .await;
    assert_eq!(answer(s, &v).3, vec![x.clone()], "{v}");
    // Through a chain and `_has` from what the parent sees.
    let plan = srv
        .create(&in_section(
            json!({"resourceType": "CarePlan", "status": "active", "intent": "plan"}),
            &x,
            "emergency",
        ))
        .await;
    let (s, v) = get(&srv, &token, &format!("/fhir/CarePlan/{plan}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let chain =
        |v: &str| format!("/fhir/CarePlan?subject:Patient.address-postalcode={v}&_total=accurate");
    right_guess(&srv, &chain("HX9")).await;
    same_as_nothing(&srv, &token, &chain("HX9"), &chain("ZZ1")).await;
    let has = |v: &str| {
        format!(
            "/fhir/Patient?_id={x}&_has:CarePlan:subject:subject:Patient.address:contains={v}&_total=accurate"
        )
    };
    right_guess(&srv, &has("Secret")).await;
    same_as_nothing(&srv, &token, &has("Secret"), &has("Public")).await;

    // Sorted by the hidden address: the same order whatever it holds (the regional
    // client's order changes, so the sort key is the address).
    let order = |who: Option<&str>| {
        let srv = &srv;
        let (x, y) = (x.clone(), y.clone());
        let token = who.map(str::to_owned);
        async move {
            let mut out = Vec::new();
            for key in ["address", "-address", "address-postalcode", "-address-city"] {
                let path = format!("/fhir/Patient?_id={x},{y}&_sort={key}");
                let v: Value = match &token {
                    Some(t) => get(srv, t, &path).await.1,
                    None => srv.get(&path).await.json().await.unwrap(),
                };
                out.push(answer(StatusCode::OK, &v).3);
            }
            out
        }
    };
    let (parent_before, regional_before) = (order(Some(&token)).await, order(None).await);
    assert_eq!(parent_before[0].len(), 2, "{parent_before:?}");
    let mut p: Value = srv
        .get(&format!("/fhir/Patient/{x}"))
        .await
        .json()
        .await
        .unwrap();
    p["address"] = json!([{"use": "home", "line": ["Zzz Secret Lane"], "city": "Zzzville", "postalCode": "ZZ9 9ZZ"}]);
    assert_eq!(
        srv.put(&format!("/fhir/Patient/{x}"), &p).await.status(),
        StatusCode::OK
    );
    let (parent_after, regional_after) = (order(Some(&token)).await, order(None).await);
    assert_ne!(
        regional_before[0], regional_after[0],
        "the regional client sorts by the address"
    );
    assert_eq!(
        parent_before, parent_after,
        "the parent's order follows the hidden address"
    );
});

/// A transaction's status and body, with the id it names written as `<id>` (so answers about
/// two ids compare).
async fn transaction_answer(
    srv: &TestServer,
    token: &str,
    id: &str,
    bundle: &Value,
) -> (StatusCode, String) {
    let r = reqwest::Client::new()
        .post(srv.url("/fhir"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body.to_string().replace(id, "<id>"))
}

// `If-Match` on a resource the caller may not see answers exactly as on one that does not
// exist — single update, patch and delete, and a transaction's `ifMatch` — so a 412 naming a
// version, or a 404 where a missing id gets a 412, tells nothing (found after the probe).
on_both_databases!(if_match_tells_nothing_of_a_hidden_resource, |srv| {
    let school = common::organisation(&srv, "Hill Primary", access::Sector::Education).await;
    let token = common::system_token(&srv, &school, "system/*.cruds").await;
    // H: a child the school has nothing to do with, with a condition.
    let h = srv.create(&child(None, false)).await;
    let hidden = srv
        .create(&in_section(
            json!({"resourceType": "Condition", "code": {"text": "Epilepsy"}}),
            &h,
            "conditions",
        ))
        .await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let client = reqwest::Client::new();
    let answer_for = |id: &str, method: reqwest::Method, version: &str| {
        let (client, token, h) = (client.clone(), token.clone(), h.clone());
        let url = srv.url(&format!("/fhir/Condition/{id}"));
        let (id, version) = (id.to_owned(), version.to_owned());
        async move {
            let mut req = client
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header("if-match", format!("W/\"{version}\""));
            req = match method.as_str() {
                "PUT" => req.header("content-type", "application/fhir+json").body(
                    json!({"resourceType": "Condition", "id": id, "code": {"text": "x"},
                           "subject": {"reference": format!("Patient/{h}")}})
                    .to_string(),
                ),
                "PATCH" => req
                    .header("content-type", "application/json-patch+json")
                    .body(
                        json!([{"op": "replace", "path": "/code/text", "value": "x"}]).to_string(),
                    ),
                _ => req,
            };
            let r = req.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body.to_string().replace(&id, "<id>"))
        }
    };
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        for version in ["1", "7"] {
            let seen = answer_for(&hidden, method.clone(), version).await;
            let none = answer_for(&nobody, method.clone(), version).await;
            assert_eq!(seen, none, "{method} with If-Match W/\"{version}\"");
            assert_eq!(
                seen.0,
                StatusCode::PRECONDITION_FAILED,
                "{method}: {}",
                seen.1
            );
        }
    }
    // The same in a transaction.
    let tx = |id: &str, version: &str| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": format!("Condition/{id}"),
             "resource": {"resourceType": "Condition", "id": id, "code": {"text": "x"},
                          "subject": {"reference": format!("Patient/{h}")}},
             "request": {"method": "PUT", "url": format!("Condition/{id}"),
                         "ifMatch": format!("W/\"{version}\"")}}]})
    };
    for version in ["1", "7"] {
        let mut answers = Vec::new();
        for id in [&hidden, &nobody] {
            answers.push(transaction_answer(&srv, &token, id, &tx(id, version)).await);
        }
        assert_eq!(
            answers[0], answers[1],
            "transaction ifMatch W/\"{version}\""
        );
        assert_eq!(
            answers[0].0,
            StatusCode::PRECONDITION_FAILED,
            "{}",
            answers[0].1
        );
    }
    // The resource is unchanged.
    let r = srv.get(&format!("/fhir/Condition/{hidden}")).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["versionId"], "1");
    assert_eq!(v["code"]["text"], "Epilepsy");

    // Deleted: a transaction's PATCH says "gone" only to someone who could read it.
    let r = srv
        .send(
            reqwest::Method::DELETE,
            &format!("/fhir/Condition/{hidden}"),
            &Value::Null,
            &[],
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let patch = |id: &str| {
        use base64::Engine;
        let doc = json!([{"op": "replace", "path": "/code/text", "value": "x"}]).to_string();
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                          "data": base64::engine::general_purpose::STANDARD.encode(doc)},
             "request": {"method": "PATCH", "url": format!("Condition/{id}")}}]})
    };
    let mut answers = Vec::new();
    for id in [&hidden, &nobody] {
        answers.push(transaction_answer(&srv, &token, id, &patch(id)).await);
    }
    assert_eq!(
        answers[0], answers[1],
        "transaction PATCH of a hidden deletion"
    );
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND, "{}", answers[0].1);
});
