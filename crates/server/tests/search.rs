//! Search through HTTP, on SQLite and PostgreSQL: parameter types, modifiers, prefixes,
//! chains, `_has`, includes, sorting, paging, compartments and `$everything`.

mod common;

use common::*;

const MRN: &str = "https://example.org/mrn";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

async fn search(srv: &TestServer, path: &str) -> Value {
    let resp = srv.get(path).await;
    let status = resp.status();
    let body = json_body(resp).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    assert_eq!(body["resourceType"], "Bundle", "{body}");
    assert_eq!(body["type"], "searchset", "{body}");
    body
}

/// The ids of the `match` entries, in order.
fn ids(bundle: &Value) -> Vec<String> {
    entries(bundle, "match")
}

fn entries(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| e["resource"]["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

fn path_of(srv: &TestServer, url: &str) -> String {
    url.strip_prefix(&srv.base).unwrap_or(url).to_owned()
}

fn patient(family: &str, given: &str, birth: &str, gender: &str, mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": gender,
    })
}

fn observation(subject: &str, code: &str, when: &str, value: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": format!("code {code}")}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    })
}

/// The harness's check finds what FHIR JSON forbids.
#[test]
fn the_fhir_json_check_finds_empty_values() {
    assert!(
        fhir_json_faults(&json!({"resourceType": "Bundle", "total": 0, "entry": [{"a": 1}]}))
            .is_empty()
    );
    assert_eq!(
        fhir_json_faults(&json!({"entry": [], "meta": {}, "id": "", "x": [{"y": [""]}]})),
        vec![
            "$.entry: []",
            "$.meta: {}",
            "$.id: \"\"",
            "$.x[0].y[0]: \"\""
        ]
    );
}

// An empty result is a Bundle without `entry` (never `"entry": []`), with or without a
// total, searching a type, a compartment, `_history` or through `_search`.
on_both_databases!(empty_results_have_no_empty_entry, |srv| {
    for path in [
        "/fhir/Patient?family=nobody-at-all",
        "/fhir/Observation?code=none&_total=accurate",
        "/fhir/Patient/none/Observation",
        "/fhir/Condition/_history",
        "/fhir/Patient?family=nobody-at-all&_summary=count",
    ] {
        let resp = srv.client.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["resourceType"], "Bundle", "{path}: {body}");
        assert!(body.get("entry").is_none(), "{path}: {body}");
        assert!(fhir_json_faults(&body).is_empty(), "{path}: {body}");
    }
});

// For each case: two resources that differ in one parameter's value, and a query that must
// find exactly the first. All failures are reported together.
on_both_databases!(each_parameter_matches_and_excludes, |srv| {
    let p = srv
        .create(&patient("Case", "P", "2015-01-01", "female", "case-p"))
        .await;
    let pref = format!("Patient/{p}");
    // (type, query, matching resource, other resource)
    let cases: Vec<(&str, String, Value, Value)> = vec![
        (
            "Patient",
            "family=Smith".into(),
            patient("Smith", "A", "2010-01-01", "male", "m1"),
            patient("Jones", "A", "2010-01-01", "male", "m2"),
        ),
        (
            "Patient",
            "given=Alice".into(),
            patient("X", "Alice", "2010-01-01", "male", "m3"),
            patient("X", "Bob", "2010-01-01", "male", "m4"),
        ),
        (
            "Patient",
            "name=smi".into(),
            patient("Smithers", "Q", "2010-01-01", "male", "m5"),
            patient("Brown", "Q", "2010-01-01", "male", "m6"),
        ),
        (
            "Patient",
            "birthdate=2011-02-03".into(),
            patient("D", "D", "2011-02-03", "male", "m7"),
            patient("D", "D", "2011-02-04", "male", "m8"),
        ),
        (
            "Patient",
            "gender=other".into(),
            patient("G", "G", "2010-01-01", "other", "m9"),
            patient("G", "G", "2010-01-01", "unknown", "m10"),
        ),
        (
            "Patient",
            format!("identifier={MRN}|only-1"),
            patient("I", "I", "2010-01-01", "male", "only-1"),
            patient("I", "I", "2010-01-01", "male", "only-2"),
        ),
        (
            "Patient",
            "active=false".into(),
            json!({"resourceType": "Patient", "active": false}),
            json!({"resourceType": "Patient", "active": true}),
        ),
        (
            "Patient",
            "address-city=Leeds".into(),
            json!({"resourceType": "Patient", "address": [{"city": "Leeds"}]}),
            json!({"resourceType": "Patient", "address": [{"city": "York"}]}),
        ),
        (
            "Patient",
            "address-postalcode=LS1".into(),
            json!({"resourceType": "Patient", "address": [{"postalCode": "LS1 4AP"}]}),
            json!({"resourceType": "Patient", "address": [{"postalCode": "YO1 7HH"}]}),
        ),
        (
            "Patient",
            "phone=0113 496 0000".into(),
            json!({"resourceType": "Patient", "telecom": [{"system": "phone", "value": "0113 496 0000"}]}),
            json!({"resourceType": "Patient", "telecom": [{"system": "phone", "value": "0113 496 0001"}]}),
        ),
        (
            "Patient",
            "email=a@example.org".into(),
            json!({"resourceType": "Patient", "telecom": [{"system": "email", "value": "a@example.org"}]}),
            json!({"resourceType": "Patient", "telecom": [{"system": "email", "value": "b@example.org"}]}),
        ),
        (
            "Observation",
            "code=http://loinc.org|29463-7".into(),
            observation(&pref, "29463-7", "2020-01-01", 10.0),
            observation(&pref, "8302-2", "2020-01-01", 10.0),
        ),
        (
            "Observation",
            "date=2020-02".into(),
            observation(&pref, "x-date", "2020-02-10", 10.0),
            observation(&pref, "x-date", "2020-03-10", 10.0),
        ),
        (
            "Observation",
            "value-quantity=gt70|http://unitsofmeasure.org|kg".into(),
            observation(&pref, "x-vq", "2020-01-01", 71.0),
            observation(&pref, "x-vq", "2020-01-01", 69.0),
        ),
        (
            "Observation",
            "code-value-quantity=http://loinc.org|x-cvq$ge5".into(),
            observation(&pref, "x-cvq", "2020-01-01", 5.0),
            observation(&pref, "x-cvq", "2020-01-01", 4.0),
        ),
        (
            "Observation",
            "status=amended".into(),
            json!({"resourceType": "Observation", "status": "amended", "code": {"text": "s"}}),
            json!({"resourceType": "Observation", "status": "preliminary", "code": {"text": "s"}}),
        ),
        (
            "Observation",
            "category=vital-signs".into(),
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]}),
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]}),
        ),
        (
            "Observation",
            format!("subject={pref}"),
            observation(&pref, "x-subj", "2020-01-01", 1.0),
            observation("Patient/someone-else", "x-subj", "2020-01-01", 1.0),
        ),
        (
            "Condition",
            format!("patient={p}"),
            json!({"resourceType": "Condition", "subject": {"reference": pref}, "code": {"text": "a"}}),
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/nobody"}, "code": {"text": "a"}}),
        ),
        (
            "Condition",
            "onset-date=ge2021-01-01".into(),
            json!({"resourceType": "Condition", "subject": {"reference": pref}, "onsetDateTime": "2021-06-01"}),
            json!({"resourceType": "Condition", "subject": {"reference": pref}, "onsetDateTime": "2020-06-01"}),
        ),
        (
            "Immunization",
            "vaccine-code=http://snomed.info/sct|39114911000001105".into(),
            json!({"resourceType": "Immunization", "status": "completed", "patient": {"reference": pref}, "occurrenceDateTime": "2020-01-01",
                   "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "39114911000001105"}]}}),
            json!({"resourceType": "Immunization", "status": "completed", "patient": {"reference": pref}, "occurrenceDateTime": "2020-01-01",
                   "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}}),
        ),
        (
            "Organization",
            "name=Leeds Teaching".into(),
            json!({"resourceType": "Organization", "name": "Leeds Teaching Hospitals"}),
            json!({"resourceType": "Organization", "name": "York Hospital"}),
        ),
        (
            "Patient",
            "_tag=http://example.org/tags|t1".into(),
            json!({"resourceType": "Patient", "meta": {"tag": [{"system": "http://example.org/tags", "code": "t1"}]}}),
            json!({"resourceType": "Patient", "meta": {"tag": [{"system": "http://example.org/tags", "code": "t2"}]}}),
        ),
        (
            "Patient",
            "_profile=http://example.org/StructureDefinition/p1".into(),
            json!({"resourceType": "Patient", "meta": {"profile": ["http://example.org/StructureDefinition/p1"]}}),
            json!({"resourceType": "Patient", "meta": {"profile": ["http://example.org/StructureDefinition/p2"]}}),
        ),
    ];
    let mut failures = Vec::new();
    for (ty, query, yes, no) in cases {
        let a = srv.create(&yes).await;
        let b = srv.create(&no).await;
        let bundle = search(
            &srv,
            &format!(
                "/fhir/{ty}?{}",
                query
                    .replace(' ', "%20")
                    .replace('|', "%7C")
                    .replace('$', "%24")
            ),
        )
        .await;
        let found = ids(&bundle);
        if !found.contains(&a) || found.contains(&b) {
            failures.push(format!(
                "{ty}?{query}: found {found:?}, wanted {a} and not {b}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
});

on_both_databases!(dates_follow_precision_and_time_zones, |srv| {
    let a = srv
        .create(&patient("D", "A", "2019-03-10", "male", "d1"))
        .await;
    let b = srv
        .create(&patient("D", "B", "2019-06-01", "male", "d2"))
        .await;
    let c = srv
        .create(&patient("D", "C", "2018-12-31", "male", "d3"))
        .await;
    let year = ids(&search(&srv, "/fhir/Patient?birthdate=2019").await);
    assert!(
        year.contains(&a) && year.contains(&b) && !year.contains(&c),
        "{year:?}"
    );
    let ge = ids(&search(&srv, "/fhir/Patient?birthdate=ge2019-05-01").await);
    assert!(
        ge.contains(&b) && !ge.contains(&a) && !ge.contains(&c),
        "{ge:?}"
    );
    let lt = ids(&search(&srv, "/fhir/Patient?birthdate=lt2019-01-01").await);
    assert!(lt.contains(&c) && !lt.contains(&a), "{lt:?}");
    let ne = ids(&search(&srv, "/fhir/Patient?birthdate=ne2019-03-10&family=D").await);
    assert!(!ne.contains(&a) && ne.contains(&b), "{ne:?}");

    let s = format!("Patient/{a}");
    let early = srv
        .create(&observation(&s, "tz", "2019-05-01T08:30:00Z", 1.0))
        .await;
    let late = srv
        .create(&observation(&s, "tz", "2019-05-01T09:30:00Z", 1.0))
        .await;
    // 10:00 at +01:00 is 09:00Z.
    let found = ids(&search(
        &srv,
        "/fhir/Observation?code=tz&date=lt2019-05-01T10:00:00%2B01:00",
    )
    .await);
    assert_eq!(found, vec![early.clone()]);
    let found = ids(&search(
        &srv,
        "/fhir/Observation?code=tz&date=gt2019-05-01T10:00:00%2B01:00",
    )
    .await);
    assert_eq!(found, vec![late.clone()]);
    let found = ids(&search(&srv, "/fhir/Observation?code=tz&date=2019-05-01").await);
    assert_eq!(found.len(), 2);
    // Bad values are a 400 naming the parameter.
    let oo = expect_outcome(
        srv.get("/fhir/Patient?birthdate=yesterday").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(oo.to_string().contains("birthdate"), "{oo}");
    let oo = expect_outcome(
        srv.get("/fhir/Patient?birthdate=xx2019").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(oo.to_string().contains("birthdate"), "{oo}");
});

on_both_databases!(strings_and_tokens, |srv| {
    let zoe = srv
        .create(&patient("Zoë", "Ann", "2019-01-01", "female", "s1"))
        .await;
    let zed = srv
        .create(&patient("Zed", "Bo", "2019-01-01", "male", "s2"))
        .await;
    let found = ids(&search(&srv, "/fhir/Patient?name=zoe").await);
    assert_eq!(found, vec![zoe.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?family:exact=Zo%C3%AB").await);
    assert_eq!(found, vec![zoe.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?family:exact=zoe").await);
    assert!(found.is_empty(), "{found:?}");
    let found = ids(&search(&srv, "/fhir/Patient?family:contains=ED").await);
    assert_eq!(found, vec![zed.clone()]);
    // OR with commas, AND with repetition.
    let found = ids(&search(&srv, "/fhir/Patient?family=zoe,zed&_sort=family").await);
    assert_eq!(found, vec![zed.clone(), zoe.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?family=zoe,zed&gender=male").await);
    assert_eq!(found, vec![zed.clone()]);

    // Tokens with and without system.
    let found = ids(&search(&srv, &format!("/fhir/Patient?identifier={MRN}%7Cs1")).await);
    assert_eq!(found, vec![zoe.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?identifier=s2").await);
    assert_eq!(found, vec![zed.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?identifier=%7Cs2").await);
    assert!(found.is_empty());
    let found = ids(&search(
        &srv,
        &format!("/fhir/Patient?identifier={MRN}%7C&family=zoe,zed"),
    )
    .await);
    assert_eq!(found.len(), 2);
    let found = ids(&search(&srv, "/fhir/Patient?gender:not=male&family=zoe,zed").await);
    assert_eq!(found, vec![zoe.clone()]);
    // :missing
    let nobirth = srv
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Zoe-Missing"}]}))
        .await;
    let found = ids(&search(&srv, "/fhir/Patient?birthdate:missing=true&family=zoe").await);
    assert_eq!(found, vec![nobirth.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?birthdate:missing=false&family=zoe").await);
    assert_eq!(found, vec![zoe.clone()]);
    // :text on a coding's display.
    let o = srv
        .create(&observation(
            &format!("Patient/{zoe}"),
            "t-1",
            "2020-01-01",
            1.0,
        ))
        .await;
    let found = ids(&search(&srv, "/fhir/Observation?code:text=code%20t-1").await);
    assert_eq!(found, vec![o]);
    // _id
    let found = ids(&search(
        &srv,
        &format!("/fhir/Patient?_id={zed},{nobirth}&_sort=_id"),
    )
    .await);
    let mut want = vec![zed.clone(), nobirth.clone()];
    want.sort();
    assert_eq!(found, want);
    // Unknown modifier → 400.
    expect_outcome(
        srv.get("/fhir/Patient?family:fuzzy=zoe").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
});

on_both_databases!(chains_has_and_includes, |srv| {
    let org = srv
        .create(&json!({"resourceType": "Organization", "name": "Leeds GP"}))
        .await;
    let mut p1 = patient("Chain", "One", "2019-01-01", "male", "c1");
    p1["identifier"] = json!([{"system": NHS, "value": "9990000018"}]);
    p1["managingOrganization"] = json!({"reference": format!("Organization/{org}")});
    let p1 = srv.create(&p1).await;
    let p2 = srv
        .create(&patient("Other", "Two", "2019-01-01", "male", "c2"))
        .await;
    let c1 = srv.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{p1}")}, "code": {"text": "asthma"}})).await;
    let c2 = srv.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{p2}")}, "code": {"text": "asthma"}})).await;
    let o1 = srv
        .create(&observation(
            &format!("Patient/{p1}"),
            "has-1",
            "2020-01-01",
            3.0,
        ))
        .await;

    let found = ids(&search(
        &srv,
        &format!("/fhir/Condition?subject:Patient.identifier={NHS}%7C9990000018"),
    )
    .await);
    assert_eq!(found, vec![c1.clone()]);
    let found = ids(&search(&srv, "/fhir/Condition?subject.name=other").await);
    assert_eq!(found, vec![c2.clone()]);
    let found = ids(&search(&srv, "/fhir/Condition?subject.organization.name=leeds").await);
    assert_eq!(found, vec![c1.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?_has:Observation:patient:code=has-1").await);
    assert_eq!(found, vec![p1.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?_has:Observation:subject:code=nothing").await);
    assert!(found.is_empty());

    // _include and _revinclude (+ :iterate).
    let b = search(
        &srv,
        &format!("/fhir/Condition?_id={c1}&_include=Condition:subject"),
    )
    .await;
    assert_eq!(ids(&b), vec![c1.clone()]);
    assert_eq!(entries(&b, "include"), vec![p1.clone()]);
    let b = search(&srv, &format!("/fhir/Condition?_id={c1}&_include=Condition:subject&_include:iterate=Patient:organization")).await;
    let mut inc = entries(&b, "include");
    inc.sort();
    let mut want = vec![p1.clone(), org.clone()];
    want.sort();
    assert_eq!(inc, want);
    let b = search(
        &srv,
        &format!(
            "/fhir/Patient?_id={p1}&_revinclude=Condition:subject&_revinclude=Observation:subject"
        ),
    )
    .await;
    assert_eq!(ids(&b), vec![p1.clone()]);
    let mut inc = entries(&b, "include");
    inc.sort();
    let mut want = vec![c1.clone(), o1.clone()];
    want.sort();
    assert_eq!(inc, want);
});

on_both_databases!(sorting_summary_elements_total, |srv| {
    let a = srv
        .create(&patient("Sort", "B", "2012-01-01", "male", "o1"))
        .await;
    let b = srv
        .create(&patient("Sort", "A", "2012-01-01", "male", "o2"))
        .await;
    let c = srv
        .create(&patient("Sort", "C", "2010-01-01", "female", "o3"))
        .await;
    let found = ids(&search(&srv, "/fhir/Patient?family=sort&_sort=-birthdate,given").await);
    assert_eq!(found, vec![b.clone(), a.clone(), c.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?family=sort&_sort=gender,-given").await);
    assert_eq!(found, vec![c.clone(), a.clone(), b.clone()]);
    let found = ids(&search(&srv, "/fhir/Patient?family=sort&_sort=-_lastUpdated").await);
    assert_eq!(found, vec![c.clone(), b.clone(), a.clone()]);

    let bundle = search(&srv, "/fhir/Patient?family=sort&_summary=count").await;
    assert_eq!(bundle["total"], 3);
    assert!(
        bundle["entry"].as_array().is_none_or(|e| e.is_empty()),
        "{bundle}"
    );

    let bundle = search(&srv, &format!("/fhir/Patient?_id={a}&_elements=gender")).await;
    let r = &bundle["entry"][0]["resource"];
    assert_eq!(r["gender"], "male");
    assert!(
        r.get("name").is_none() && r.get("birthDate").is_none(),
        "{r}"
    );
    assert!(r["meta"]["tag"].to_string().contains("SUBSETTED"));

    let bundle = search(&srv, "/fhir/Patient?family=sort&_count=1&_total=accurate").await;
    assert_eq!(bundle["total"], 3);
    assert_eq!(ids(&bundle).len(), 1);
    let bundle = search(&srv, "/fhir/Patient?family=sort&_count=1&_total=none").await;
    assert!(bundle.get("total").is_none());
    // Fits on one page: the total is free.
    let bundle = search(&srv, "/fhir/Patient?family=sort").await;
    assert_eq!(bundle["total"], 3);
    // _sort by an unknown parameter is refused.
    expect_outcome(
        srv.get("/fhir/Patient?_sort=nope").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
});

on_both_databases!(paging_is_stable_while_others_write, |srv| {
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            srv.create(&patient(
                "Page",
                &format!("G{i}"),
                "2010-01-01",
                "male",
                &format!("pg{i}"),
            ))
            .await,
        );
    }
    for sort in ["", "&_sort=given", "&_sort=-birthdate,given"] {
        let mut seen = Vec::new();
        let mut path = format!("/fhir/Patient?family=page&_count=3{sort}");
        let mut pages = 0;
        loop {
            let bundle = search(&srv, &path).await;
            seen.extend(ids(&bundle));
            pages += 1;
            if pages == 1 && sort.is_empty() {
                // Another client writes between pages: an update and a new resource.
                let mut p = patient("Page", "G0", "2010-01-01", "male", "pg0");
                p["id"] = json!(made[0]);
                p["gender"] = json!("female");
                let r = srv.put(&format!("/fhir/Patient/{}", made[0]), &p).await;
                assert_eq!(r.status(), StatusCode::OK);
            }
            match next_link(&bundle) {
                Some(n) => path = path_of(&srv, &n),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no duplicates ({sort}): {seen:?}");
        assert_eq!(seen.len(), 7, "every resource once ({sort}): {seen:?}");
        assert_eq!(pages, 3, "{sort}");
    }
    // POST _search with a form body gives the same result.
    let resp = srv
        .client
        .post(srv.url("/fhir/Patient/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("family=page&_count=100")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bundle = json_body(resp).await;
    assert_eq!(ids(&bundle).len(), 7);
});

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

// Forward with `next` to the end, then back with `previous` to the start: the same pages,
// for the default order and for sorts (ascending, descending, with values missing).
on_both_databases!(previous_links_walk_back_the_same_pages, |srv| {
    for i in 0..8 {
        let mut p = patient(
            "Prev",
            &format!("G{i}"),
            "2010-01-01",
            "male",
            &format!("pv{i}"),
        );
        if i % 3 == 0 {
            // Some without a birth date: NULL sort values.
            p.as_object_mut().unwrap().remove("birthDate");
        } else {
            p["birthDate"] = json!(format!("2010-01-0{}", 1 + i % 4));
        }
        srv.create(&p).await;
    }
    for sort in [
        "",
        "&_sort=given",
        "&_sort=-birthdate,given",
        "&_sort=birthdate",
    ] {
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut path = format!("/fhir/Patient?family=prev&_count=3{sort}");
        let mut bundle = search(&srv, &path).await;
        assert!(
            link(&bundle, "previous").is_none(),
            "the first page has no previous"
        );
        loop {
            pages.push(ids(&bundle));
            match next_link(&bundle) {
                Some(n) => {
                    path = path_of(&srv, &n);
                    bundle = search(&srv, &path).await;
                }
                None => break,
            }
        }
        assert_eq!(pages.len(), 3, "{sort}: {pages:?}");
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 8);
        // Back from the last page.
        let mut back = vec![ids(&bundle)];
        while let Some(p) = link(&bundle, "previous") {
            bundle = search(&srv, &path_of(&srv, &p)).await;
            back.push(ids(&bundle));
            assert!(back.len() <= 3, "{sort}: too many pages back: {back:?}");
        }
        back.reverse();
        assert_eq!(back, pages, "{sort}: the same pages backwards");
        // A page reached backwards leads forward again.
        let n = next_link(&bundle).expect("the first page, reached backwards, has next");
        let again = search(&srv, &path_of(&srv, &n)).await;
        assert_eq!(ids(&again), pages[1], "{sort}");
    }
});

on_both_databases!(unknown_parameters_strict_and_lenient, |srv| {
    let a = srv
        .create(&patient("Lenient", "A", "2010-01-01", "male", "l1"))
        .await;
    let bundle = search(&srv, "/fhir/Patient?family=lenient&frobnicate=1").await;
    assert_eq!(ids(&bundle), vec![a]);
    let outcome = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("an outcome entry");
    assert_eq!(outcome["resource"]["resourceType"], "OperationOutcome");
    assert!(outcome.to_string().contains("frobnicate"));
    let resp = srv
        .client
        .get(srv.url("/fhir/Patient?family=lenient&frobnicate=1"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    let oo = expect_outcome(resp, StatusCode::BAD_REQUEST).await;
    assert!(oo.to_string().contains("frobnicate"));
    let resp = srv
        .client
        .get(srv.url("/fhir/Patient?family=lenient"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
});

on_both_databases!(compartment_and_everything, |srv| {
    let p = srv
        .create(&patient("Comp", "A", "2010-01-01", "male", "cp1"))
        .await;
    let q = srv
        .create(&patient("Comp", "B", "2010-01-01", "male", "cp2"))
        .await;
    let mut mine = vec![p.clone()];
    for i in 0..4 {
        mine.push(
            srv.create(&observation(
                &format!("Patient/{p}"),
                &format!("e{i}"),
                "2020-01-01",
                1.0,
            ))
            .await,
        );
    }
    mine.push(srv.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{p}")}, "code": {"text": "x"}})).await);
    let theirs = srv
        .create(&observation(
            &format!("Patient/{q}"),
            "e9",
            "2020-01-01",
            1.0,
        ))
        .await;

    let found = ids(&search(&srv, &format!("/fhir/Patient/{p}/Observation")).await);
    assert_eq!(found.len(), 4);
    assert!(!found.contains(&theirs));
    let found = ids(&search(&srv, &format!("/fhir/Patient/{p}/Observation?code=e1")).await);
    assert_eq!(found, vec![mine[2].clone()]);
    let found = ids(&search(&srv, &format!("/fhir/Patient/{p}/Condition")).await);
    assert_eq!(found, vec![mine[5].clone()]);

    let mut seen = Vec::new();
    let mut path = format!("/fhir/Patient/{p}/$everything?_count=2");
    let mut pages = 0;
    loop {
        let b = search(&srv, &path).await;
        seen.extend(ids(&b));
        pages += 1;
        match next_link(&b) {
            Some(n) => path = path_of(&srv, &n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    mine.sort();
    assert_eq!(seen, mine);
    let b = search(
        &srv,
        &format!("/fhir/Patient/{p}/$everything?_type=Condition"),
    )
    .await;
    assert_eq!(ids(&b).len(), 1);
    expect_outcome(
        srv.get("/fhir/Patient/nobody/$everything").await,
        StatusCode::NOT_FOUND,
    )
    .await;
});

/// A value of the right type for a parameter, to check every declared one is accepted.
fn sample_value(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "token" => "http://example.org|x",
        "string" => "x",
        "date" => "ge2019-01-01",
        "reference" => "Patient/x",
        "quantity" => "gt1|http://unitsofmeasure.org|kg",
        "number" => "1",
        "uri" => "http://example.org/x",
        _ => return None,
    })
}

// Every parameter the CapabilityStatement declares, for every type, is accepted under
// `Prefer: handling=strict` (with a value of its type, and with :missing), and finds nothing
// in an empty database; composites are searched with a value built from their components.
on_both_databases!(every_declared_parameter_is_accepted, |srv| {
    let cs = json_body(srv.get("/fhir/metadata").await).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for r in cs["rest"][0]["resource"].as_array().unwrap() {
        let ty = r["type"].as_str().unwrap();
        let mut query = Vec::new();
        for p in r["searchParam"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let kind = p["type"].as_str().unwrap();
            let value = match kind {
                "composite" => {
                    let def = fhir::search::param(ty, name).expect("declared parameters exist");
                    let second = match def.components[1].kind {
                        fhir::search::ParamType::Token => "y",
                        fhir::search::ParamType::Date => "ge2019",
                        fhir::search::ParamType::String => "y",
                        _ => "gt1",
                    };
                    format!("x${second}")
                }
                k => sample_value(k)
                    .unwrap_or_else(|| panic!("{ty}.{name}: type {k}"))
                    .to_owned(),
            };
            query.push((name.to_owned(), value));
            query.push((format!("{name}:missing"), "false".to_owned()));
        }
        // In chunks, so URLs stay short.
        for chunk in query.chunks(16) {
            let mut ser = form_urlencoded_like(chunk);
            ser.insert(0, '?');
            let path = format!("/fhir/{ty}{ser}");
            let resp = common::checked(
                srv.client
                    .get(srv.url(&path))
                    .header("prefer", "handling=strict")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            checked += chunk.len();
            if resp.status() != StatusCode::OK {
                failures.push(format!(
                    "{path}: {} {}",
                    resp.status(),
                    resp.text().await.unwrap()
                ));
            }
        }
    }
    assert!(checked > 500, "only {checked} parameters checked");
    failures.truncate(10);
    assert!(
        failures.is_empty(),
        "failures (first 10):\n{}",
        failures.join("\n")
    );
});

fn form_urlencoded_like(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
