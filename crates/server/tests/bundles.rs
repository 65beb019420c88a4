//! Batch and transaction bundles (`POST /fhir`) and conditional update/delete, through HTTP
//! on both databases.

mod common;

use common::*;

const SYS: &str = "https://example.org/passport-test-ids";

fn patient(ident: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": SYS, "value": ident }],
        "name": [{ "family": "Bundlechild", "given": ["Sam"] }],
        "gender": "male",
        "birthDate": "2018-02-03"
    })
}

fn entry(full_url: Option<&str>, method: &str, url: &str, resource: Option<Value>) -> Value {
    let mut e = json!({ "request": { "method": method, "url": url } });
    if let Some(u) = full_url {
        e["fullUrl"] = json!(u);
    }
    if let Some(r) = resource {
        e["resource"] = r;
    }
    e
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "type": kind, "entry": entries })
}

async fn send(srv: &common::TestServer, b: &Value) -> (StatusCode, Value) {
    let resp = srv.post("/fhir", b).await;
    let status = resp.status();
    (status, json_body(resp).await)
}

/// The response bundle's entry statuses (the numeric part).
fn statuses(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["response"]["status"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `Type/id` from an entry's `response.location`.
fn located(e: &Value) -> (String, String) {
    let loc = e["response"]["location"].as_str().expect("location");
    let path = loc.split("/fhir/").nth(1).unwrap();
    let mut parts = path.split('/');
    (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    )
}

async fn read(srv: &common::TestServer, path: &str) -> Value {
    let r = srv.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    json_body(r).await
}

async fn history_len(srv: &common::TestServer, path: &str) -> usize {
    let h = read(srv, path).await;
    h["entry"].as_array().map_or(0, Vec::len)
}

fn first_expressions(outcome: &Value) -> Vec<String> {
    expressions(outcome)
}

on_both_databases!(batch_entries_succeed_and_fail_independently, |srv| {
    let mut invalid = patient("B2");
    invalid["gender"] = json!("robot");
    let mut put = patient("B4");
    put["id"] = json!("batch-put");
    let b = bundle(
        "batch",
        vec![
            entry(None, "POST", "Patient", Some(patient("B1"))),
            entry(None, "POST", "Patient", Some(invalid)),
            entry(None, "GET", "Patient/does-not-exist", None),
            entry(None, "PUT", "Patient/batch-put", Some(put)),
            entry(None, "DELETE", "Patient/never-was", None),
            entry(None, "GET", "Patient/batch-put", None),
            entry(None, "FROB", "Patient", None),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["resourceType"], "Bundle");
    assert_eq!(resp["type"], "batch-response");
    assert_eq!(
        statuses(&resp),
        vec!["201", "422", "404", "201", "404", "200", "400"]
    );
    let e = resp["entry"].as_array().unwrap();
    // Successes: location, etag, lastModified, the resource.
    assert_eq!(e[0]["response"]["etag"], "W/\"1\"");
    assert!(
        e[0]["response"]["lastModified"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let (t, id) = located(&e[0]);
    assert_eq!(t, "Patient");
    assert_eq!(e[0]["resource"]["id"], id.as_str());
    assert_eq!(e[3]["resource"]["id"], "batch-put");
    assert_eq!(e[5]["resource"]["id"], "batch-put");
    // Failures: an OperationOutcome, no resource.
    for i in [1, 2, 4, 6] {
        assert_eq!(
            e[i]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        assert!(e[i].get("resource").is_none());
    }
    // The successes are stored, the failure is not.
    read(&srv, &format!("/fhir/Patient/{id}")).await;
    assert_eq!(history_len(&srv, "/fhir/Patient/_history").await, 2);
});

on_both_databases!(transaction_rewrites_urn_uuid_references, |srv| {
    let pat = "urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-000000000001";
    let cond = json!({
        "resourceType": "Condition",
        "subject": { "reference": pat },
        "code": { "text": "Asthma" }
    });
    let obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": { "text": "Body height" },
        "subject": { "reference": pat },
        "performer": [{ "reference": pat }],
        "contained": [{
            "resourceType": "Observation",
            "id": "inner",
            "status": "final",
            "code": { "text": "Inner" },
            "subject": { "reference": pat }
        }],
        "hasMember": [{ "reference": "#inner" }],
        "valueQuantity": { "value": 1.23, "unit": "m" }
    });
    let b = bundle(
        "transaction",
        vec![
            entry(
                Some("urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-000000000002"),
                "POST",
                "Condition",
                Some(cond),
            ),
            entry(
                Some("urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-000000000003"),
                "POST",
                "Observation",
                Some(obs),
            ),
            entry(Some(pat), "POST", "Patient", Some(patient("T1"))),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["type"], "transaction-response");
    assert_eq!(statuses(&resp), vec!["201", "201", "201"]);
    let e = resp["entry"].as_array().unwrap();
    let (t, pid) = located(&e[2]);
    assert_eq!(t, "Patient");
    let want = format!("Patient/{pid}");
    let (_, cid) = located(&e[0]);
    let (_, oid) = located(&e[1]);
    let c = read(&srv, &format!("/fhir/Condition/{cid}")).await;
    assert_eq!(c["subject"]["reference"], want.as_str());
    let o = read(&srv, &format!("/fhir/Observation/{oid}")).await;
    assert_eq!(o["subject"]["reference"], want.as_str());
    assert_eq!(o["performer"][0]["reference"], want.as_str());
    assert_eq!(o["contained"][0]["subject"]["reference"], want.as_str());
    assert_eq!(o["hasMember"][0]["reference"], "#inner");
    // Decimal text survives the rewrite.
    let raw = srv
        .get(&format!("/fhir/Observation/{oid}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(raw.contains("1.23"), "{raw}");
    assert_eq!(e[0]["resource"]["subject"]["reference"], want.as_str());
});

on_both_databases!(a_failing_entry_stores_nothing, |srv| {
    let pat = "urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-00000000000a";
    let mut entries = vec![
        entry(Some(pat), "POST", "Patient", Some(patient("A1"))),
        entry(None, "POST", "Patient", Some(patient("A2"))),
        entry(
            None,
            "PUT",
            "Patient/atomic-put",
            Some({
                let mut p = patient("A3");
                p["id"] = json!("atomic-put");
                p
            }),
        ),
        entry(
            None,
            "POST",
            "Condition",
            Some(json!({
                "resourceType": "Condition", "subject": {"reference": pat}, "code": {"text": "x"}
            })),
        ),
        entry(None, "POST", "Patient", Some(patient("A4"))),
    ];
    // Entry 5: an Observation without its required status.
    entries.push(entry(None, "POST", "Observation", Some(json!({
        "resourceType": "Observation", "code": {"text": "no status"}, "subject": {"reference": pat}
    }))));
    entries.push(entry(None, "POST", "Patient", Some(patient("A6"))));
    let (status, oo) = send(&srv, &bundle("transaction", entries)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let ex = first_expressions(&oo);
    assert!(ex.iter().any(|x| x == "Bundle.entry[5]"), "{ex:?}");
    assert!(
        ex.iter().any(|x| x.starts_with("Bundle.entry[5].resource")),
        "{ex:?}"
    );
    for t in ["Patient", "Condition", "Observation"] {
        assert_eq!(
            history_len(&srv, &format!("/fhir/{t}/_history")).await,
            0,
            "{t}"
        );
    }
    assert_eq!(history_len(&srv, "/fhir/_history").await, 0);
    let r = srv.get("/fhir/Patient/atomic-put").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});

on_both_databases!(transaction_conditional_entries, |srv| {
    let existing = srv.create(&patient("C-X")).await;
    let doomed = srv.create(&patient("C-Z")).await;
    let x_url = "urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-0000000000c1";
    let mut update = patient("C-X");
    update["name"] = json!([{ "family": "Renamed" }]);
    let mut cond_create = entry(Some(x_url), "POST", "Patient", Some(patient("C-X")));
    cond_create["request"]["ifNoneExist"] = json!(format!("identifier={SYS}|C-X"));
    let mut fresh = entry(None, "POST", "Patient", Some(patient("C-Y")));
    fresh["request"]["ifNoneExist"] = json!(format!("identifier={SYS}|C-Y"));
    let b = bundle(
        "transaction",
        vec![
            cond_create,
            fresh,
            entry(
                None,
                "PUT",
                &format!("Patient?identifier={SYS}|C-X"),
                Some(update),
            ),
            entry(
                None,
                "DELETE",
                &format!("Patient?identifier={SYS}|C-Z"),
                None,
            ),
            entry(
                None,
                "DELETE",
                &format!("Patient?identifier={SYS}|nobody"),
                None,
            ),
            entry(
                None,
                "POST",
                "Condition",
                Some(json!({
                    "resourceType": "Condition", "subject": {"reference": x_url}, "code": {"text": "y"}
                })),
            ),
            entry(
                None,
                "PUT",
                &format!("Patient?identifier={SYS}|C-NEW"),
                Some(patient("C-NEW")),
            ),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        statuses(&resp),
        vec!["200", "201", "200", "200", "204", "201", "201"]
    );
    let e = resp["entry"].as_array().unwrap();
    assert_eq!(located(&e[0]).1, existing);
    assert_eq!(located(&e[2]).1, existing);
    assert_eq!(e[2]["response"]["etag"], "W/\"2\"");
    let x = read(&srv, &format!("/fhir/Patient/{existing}")).await;
    assert_eq!(x["name"][0]["family"], "Renamed");
    assert_eq!(x["meta"]["versionId"], "2");
    assert_eq!(
        srv.get(&format!("/fhir/Patient/{doomed}")).await.status(),
        StatusCode::GONE
    );
    let (_, cid) = located(&e[5]);
    let c = read(&srv, &format!("/fhir/Condition/{cid}")).await;
    assert_eq!(c["subject"]["reference"], format!("Patient/{existing}"));
    // Several matches: the conditional update fails the transaction with 412.
    srv.create(&patient("C-X")).await;
    let b = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Patient", Some(patient("C-Q"))),
            entry(
                None,
                "PUT",
                &format!("Patient?identifier={SYS}|C-X"),
                Some(patient("C-X")),
            ),
        ],
    );
    let (status, oo) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{oo}");
    assert!(expressions(&oo).contains(&"Bundle.entry[1]".to_owned()));
    // An unknown criterion is refused, never ignored.
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "DELETE",
            "Patient?frobnicate=Bundlechild",
            None,
        )],
    );
    let (status, _) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

on_both_databases!(conditional_references_resolve_to_one_match, |srv| {
    let pid = srv.create(&patient("R-1")).await;
    let cond = |r: &str| json!({ "resourceType": "Condition", "subject": {"reference": r}, "code": {"text": "z"} });
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Condition",
            Some(cond(&format!("Patient?identifier={SYS}|R-1"))),
        )],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (_, cid) = located(&resp["entry"][0]);
    let c = read(&srv, &format!("/fhir/Condition/{cid}")).await;
    assert_eq!(c["subject"]["reference"], format!("Patient/{pid}"));
    // No match: 404, nothing stored.
    let b = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Patient", Some(patient("R-2"))),
            entry(
                None,
                "POST",
                "Condition",
                Some(cond(&format!("Patient?identifier={SYS}|nobody"))),
            ),
        ],
    );
    let (status, oo) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{oo}");
    assert!(expressions(&oo).contains(&"Bundle.entry[1]".to_owned()));
    // Two matches: 412.
    srv.create(&patient("R-1")).await;
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Condition",
            Some(cond(&format!("Patient?identifier={SYS}|R-1"))),
        )],
    );
    let (status, _) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    // A urn:uuid reference to nothing in the bundle fails cleanly.
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Condition",
            Some(cond("urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-0000000000ff")),
        )],
    );
    let (status, _) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(history_len(&srv, "/fhir/Condition/_history").await, 1);
    assert_eq!(history_len(&srv, "/fhir/Patient/_history").await, 2);
});

on_both_databases!(deletes_are_processed_before_creates, |srv| {
    let old = srv.create(&patient("O-1")).await;
    // Listed first, processed second: by then the only match has been deleted.
    let mut create = entry(None, "POST", "Patient", Some(patient("O-1")));
    create["request"]["ifNoneExist"] = json!(format!("identifier={SYS}|O-1"));
    let b = bundle(
        "transaction",
        vec![
            create,
            entry(
                None,
                "DELETE",
                &format!("Patient?identifier={SYS}|O-1"),
                None,
            ),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(statuses(&resp), vec!["201", "200"]);
    let (_, new) = located(&resp["entry"][0]);
    assert_ne!(new, old);
    assert_eq!(
        srv.get(&format!("/fhir/Patient/{old}")).await.status(),
        StatusCode::GONE
    );
    read(&srv, &format!("/fhir/Patient/{new}")).await;
    // One resource changed by two entries: refused.
    let mut p = patient("O-2");
    p["id"] = json!(new.clone());
    let b = bundle(
        "transaction",
        vec![
            entry(None, "PUT", &format!("Patient/{new}"), Some(p)),
            entry(None, "DELETE", &format!("Patient/{new}"), None),
        ],
    );
    let (status, _) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

on_both_databases!(concurrent_transactions_lose_no_update, |srv| {
    let mut shared = patient("S-1");
    shared["id"] = json!("shared");
    assert_eq!(
        srv.put("/fhir/Patient/shared", &shared).await.status(),
        StatusCode::CREATED
    );
    // Ten transactions naming version 1: exactly one wins, the rest get 412.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let client = srv.client.clone();
            let url = srv.url("/fhir");
            let mut p = shared.clone();
            p["name"] = json!([{ "family": format!("Writer{i}") }]);
            let mut put = entry(None, "PUT", "Patient/shared", Some(p));
            put["request"]["ifMatch"] = json!("W/\"1\"");
            let b = bundle(
                "transaction",
                vec![
                    put,
                    entry(
                        None,
                        "POST",
                        "Patient",
                        Some(patient(&format!("S-new-{i}"))),
                    ),
                ],
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", "application/fhir+json")
                    .body(serde_json::to_vec(&b).unwrap())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::OK).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::PRECONDITION_FAILED)
            .count(),
        9,
        "{codes:?}"
    );
    let s = read(&srv, "/fhir/Patient/shared").await;
    assert_eq!(s["meta"]["versionId"], "2");
    // 1 create + 1 update + the winner's one new patient.
    assert_eq!(history_len(&srv, "/fhir/Patient/_history").await, 3);

    // Without ifMatch, each transaction is re-planned after losing a race: every change lands.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = srv.client.clone();
            let url = srv.url("/fhir");
            let patch = json!([{ "op": "add", "path": "/name/-", "value": { "family": format!("P{i}") } }]);
            let data = b64(&serde_json::to_vec(&patch).unwrap());
            let b = bundle("transaction", vec![entry(None, "PATCH", "Patient/shared", Some(json!({
                "resourceType": "Binary", "contentType": "application/json-patch+json", "data": data
            })))]);
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", "application/fhir+json")
                    .body(serde_json::to_vec(&b).unwrap())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let s = read(&srv, "/fhir/Patient/shared").await;
    assert_eq!(s["meta"]["versionId"], "10");
    assert_eq!(s["name"].as_array().unwrap().len(), 9);
});

on_both_databases!(batch_reads, |srv| {
    let id = srv.create(&patient("G-1")).await;
    let mut not_modified = entry(None, "GET", &format!("Patient/{id}"), None);
    not_modified["request"]["ifNoneMatch"] = json!("W/\"1\"");
    let b = bundle(
        "batch",
        vec![
            entry(None, "GET", &format!("Patient/{id}"), None),
            entry(None, "GET", &format!("Patient/{id}/_history/1"), None),
            entry(None, "GET", &format!("Patient/{id}/_history"), None),
            entry(
                None,
                "GET",
                &format!("{}/fhir/Patient/{id}", srv.base),
                None,
            ),
            entry(None, "GET", "Patient/missing", None),
            entry(
                None,
                "GET",
                "https://elsewhere.example/fhir/Patient/x",
                None,
            ),
            not_modified,
            entry(None, "GET", &format!("Patient?identifier={SYS}|G-1"), None),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        statuses(&resp),
        vec!["200", "200", "200", "200", "404", "400", "304", "200"]
    );
    let e = resp["entry"].as_array().unwrap();
    assert_eq!(e[0]["resource"]["id"], id.as_str());
    assert_eq!(e[0]["fullUrl"], format!("{}/fhir/Patient/{id}", srv.base));
    assert_eq!(e[0]["response"]["etag"], "W/\"1\"");
    assert_eq!(e[1]["resource"]["meta"]["versionId"], "1");
    assert_eq!(e[2]["resource"]["resourceType"], "Bundle");
    assert_eq!(e[2]["resource"]["type"], "history");
    assert_eq!(e[3]["resource"]["id"], id.as_str());
    assert_eq!(
        e[4]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(e[7]["resource"]["type"], "searchset");
    assert_eq!(e[7]["resource"]["entry"][0]["resource"]["id"], id.as_str());
});

on_both_databases!(batch_patch_and_entry_independence, |srv| {
    let id = srv.create(&patient("P-1")).await;
    let patch = json!([{ "op": "replace", "path": "/gender", "value": "female" }]);
    let data = b64(&serde_json::to_vec(&patch).unwrap());
    let binary = json!({ "resourceType": "Binary", "contentType": "application/json-patch+json", "data": data });
    let pat = "urn:uuid:0f0e7e0a-1a2b-4c3d-8e9f-0000000000b1";
    let b = bundle(
        "batch",
        vec![
            entry(None, "PATCH", &format!("Patient/{id}"), Some(binary)),
            entry(Some(pat), "POST", "Patient", Some(patient("P-2"))),
            // Batch entries may not depend on each other.
            entry(
                None,
                "POST",
                "Condition",
                Some(json!({
                    "resourceType": "Condition", "subject": {"reference": pat}, "code": {"text": "q"}
                })),
            ),
            entry(
                None,
                "PATCH",
                &format!("Patient/{id}"),
                Some(json!({"resourceType": "Parameters"})),
            ),
        ],
    );
    let (status, resp) = send(&srv, &b).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(statuses(&resp), vec!["200", "201", "400", "400"]);
    let p = read(&srv, &format!("/fhir/Patient/{id}")).await;
    assert_eq!(p["gender"], "female");
    // The same PATCH in a transaction.
    let patch = json!([{ "op": "replace", "path": "/gender", "value": "other" }]);
    let data = b64(&serde_json::to_vec(&patch).unwrap());
    let mut e = entry(
        None,
        "PATCH",
        &format!("Patient/{id}"),
        Some(json!({
            "resourceType": "Binary", "contentType": "application/json-patch+json", "data": data
        })),
    );
    e["request"]["ifMatch"] = json!("W/\"2\"");
    let (status, resp) = send(&srv, &bundle("transaction", vec![e])).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["entry"][0]["response"]["etag"], "W/\"3\"");
    assert_eq!(
        read(&srv, &format!("/fhir/Patient/{id}")).await["gender"],
        "other"
    );
});

on_both_databases!(bundle_kinds_and_shapes, |srv| {
    let (status, _) = send(&srv, &bundle("collection", vec![])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(&srv, &patient("K")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, resp) = send(&srv, &bundle("transaction", vec![])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["type"], "transaction-response");
    // Prefer: return=minimal leaves resources out.
    let resp = srv
        .send(
            reqwest::Method::POST,
            "/fhir",
            &bundle(
                "transaction",
                vec![entry(None, "POST", "Patient", Some(patient("K-1")))],
            ),
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_body(resp).await;
    assert!(body["entry"][0].get("resource").is_none());
    assert!(body["entry"][0]["response"]["location"].is_string());
    // GET entries of a transaction run after its writes, and see them.
    let mut put = patient("K-3");
    put["id"] = json!("k-three");
    let (status, resp) = send(
        &srv,
        &bundle(
            "transaction",
            vec![
                entry(None, "GET", "Patient/k-three", None),
                entry(None, "PUT", "Patient/k-three", Some(put)),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(statuses(&resp), vec!["200", "201"]);
    assert_eq!(resp["entry"][0]["resource"]["id"], "k-three");
    // A transaction's malformed entry is named.
    let (status, oo) = send(
        &srv,
        &bundle(
            "transaction",
            vec![
                entry(None, "POST", "Patient", Some(patient("K-2"))),
                json!({"request": {"method": "POST"}}),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        expressions(&oo).contains(&"Bundle.entry[1]".to_owned()),
        "{oo}"
    );
    assert_eq!(history_len(&srv, "/fhir/Patient/_history").await, 2);
});

on_both_databases!(rest_conditional_update_and_delete, |srv| {
    let q = format!("/fhir/Patient?identifier={SYS}|U-1");
    // No match, no id: created.
    let r = srv.put(&q, &patient("U-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = json_body(r).await["id"].as_str().unwrap().to_owned();
    // One match: updated.
    let mut p = patient("U-1");
    p["gender"] = json!("female");
    let r = srv.put(&q, &p).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r), "W/\"2\"");
    let body = json_body(r).await;
    assert_eq!(body["id"], id.as_str());
    // A body id that is not the match's: 400.
    p["id"] = json!("someone-else");
    assert_eq!(srv.put(&q, &p).await.status(), StatusCode::BAD_REQUEST);
    // If-Match is honoured.
    p["id"] = json!(id.clone());
    let r = srv
        .send(reqwest::Method::PUT, &q, &p, &[("if-match", "W/\"1\"")])
        .await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // No match, unused id: created with that id; used id: 409.
    let mut chosen = patient("U-2");
    chosen["id"] = json!("chosen-id");
    let r = srv
        .put(&format!("/fhir/Patient?identifier={SYS}|U-2"), &chosen)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json_body(r).await["id"], "chosen-id");
    let mut taken = patient("U-3");
    taken["id"] = json!("chosen-id");
    let r = srv
        .put(&format!("/fhir/Patient?identifier={SYS}|U-3"), &taken)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Unknown criteria are refused; so is a missing query.
    assert_eq!(
        srv.put("/fhir/Patient?frobnicate=x", &patient("U-9"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        srv.put("/fhir/Patient", &patient("U-9")).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Several matches: 412 for both.
    srv.create(&patient("U-1")).await;
    assert_eq!(
        srv.put(&q, &patient("U-1")).await.status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        srv.delete(&q).await.status(),
        StatusCode::PRECONDITION_FAILED
    );
    // Delete: none → 204, one → deleted.
    assert_eq!(
        srv.delete(&format!("/fhir/Patient?identifier={SYS}|nobody"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.delete(&format!("/fhir/Patient?_id={id}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        srv.get(&format!("/fhir/Patient/{id}")).await.status(),
        StatusCode::GONE
    );
    // The CapabilityStatement says so.
    let cs = read(&srv, "/fhir/metadata").await;
    let r0 = &cs["rest"][0]["resource"][0];
    assert_eq!(r0["conditionalUpdate"], true);
    assert_eq!(r0["conditionalDelete"], "single");
    let codes: Vec<&str> = cs["rest"][0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"transaction") && codes.contains(&"batch"));
});

on_both_databases!(shared_examples, |srv| {
    let dir = examples_dir();
    let load = |p: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(p)).expect(p)).unwrap()
    };
    // HL7's transaction example refers to resources that are not here (Patient/123a at
    // version 2, Patient/234) and to an operation: it fails as a whole, cleanly.
    let tx = load("hl7-r4-core/Bundle/Bundle-bundle-transaction.json");
    let (status, oo) = send(&srv, &tx).await;
    assert!(status.is_client_error(), "{status}: {oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(
        expressions(&oo)
            .iter()
            .any(|x| x.starts_with("Bundle.entry[")),
        "{oo}"
    );
    eprintln!(
        "HL7 transaction example: {status} {}",
        oo["issue"][0]["diagnostics"]
    );
    assert_eq!(history_len(&srv, "/fhir/_history").await, 0);
    // Its resolvable part (the creates and updates) succeeds.
    let mut part = tx.clone();
    let entries: Vec<Value> = tx["entry"].as_array().unwrap()[..4].to_vec();
    part["entry"] = json!(entries);
    let (status, resp) = send(&srv, &part).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(statuses(&resp), vec!["201", "201", "201", "201"]);
    read(&srv, "/fhir/Patient/123").await;

    // UK Core's batch of reads from another server: each entry fails on its own.
    let (status, resp) = send(
        &srv,
        &load("uk-core-stu2/Bundle/UKCore-Bundle-Batch-Example.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    for e in resp["entry"].as_array().unwrap() {
        let s: u16 = e["response"]["status"].as_str().unwrap()[..3]
            .parse()
            .unwrap();
        assert!((400..500).contains(&s), "{e}");
        assert_eq!(e["response"]["outcome"]["resourceType"], "OperationOutcome");
    }
    // UK Core's batch of creates: every entry answered, none with a server error.
    let post = load("uk-core-stu2/Bundle/UKCore-Bundle-BatchPOST-Example.json");
    let n = post["entry"].as_array().unwrap().len();
    let (status, resp) = send(&srv, &post).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let got = statuses(&resp);
    assert_eq!(got.len(), n);
    for (s, e) in got.iter().zip(resp["entry"].as_array().unwrap()) {
        assert!(s == "201" || s.starts_with('4'), "{e}");
    }
    eprintln!("UK Core BatchPOST statuses: {got:?}");
});

/// Standard base64 with padding.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
