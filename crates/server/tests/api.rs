//! The FHIR REST interactions, through HTTP, on SQLite and PostgreSQL.

mod common;
use common::*;

/// A raw request and the status it must get: method, path, content type, body, headers.
type RawCase<'a> = (
    reqwest::Method,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a [(&'a str, &'a str)],
    StatusCode,
);

fn patient(nhs: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs }],
        "name": [{ "family": "Testchild", "given": ["Alex"] }],
        "gender": "female",
        "birthDate": "2016-05-01"
    })
}

on_both_databases!(health_and_readiness, |srv| {
    let r = srv.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = srv.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
});

on_both_databases!(capability_statement_lists_what_is_implemented, |srv| {
    let cs = json_body(srv.get("/fhir/metadata").await).await;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in [
        "Patient",
        "Condition",
        "Consent",
        "Subscription",
        "AuditEvent",
        "Binary",
    ] {
        assert!(types.contains(&t), "{t} missing");
    }
    assert_eq!(types.len(), fhir::types::SUPPORTED_TYPES.len());
    // Search is implemented for every type, so it is declared (with its parameters).
    for r in resources {
        let codes: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"search-type"));
        assert!(!r["searchParam"].as_array().unwrap().is_empty());
        // AuditEvents: written by the server only, searched in the audit chain.
        let audit = r["type"] == "AuditEvent";
        assert_eq!(codes.contains(&"vread") && codes.contains(&"patch"), !audit);
    }
});

on_both_databases!(create_then_read_returns_the_stored_bytes, |srv| {
    let mut body = patient("9990000018");
    body["id"] = json!("client-chosen-is-ignored");
    let resp = srv.post("/fhir/Patient", &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(etag(&resp), "W/\"1\"");
    assert!(resp.headers().get("last-modified").is_some());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created_text = resp.text().await.unwrap();
    let created: Value = serde_json::from_str(&created_text).unwrap();
    let id = created["id"].as_str().unwrap();
    assert_ne!(id, "client-chosen-is-ignored");
    assert_eq!(
        location,
        format!("{}/fhir/Patient/{id}/_history/1", srv.base)
    );
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(
        created["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let read = srv.get(&format!("/fhir/Patient/{id}")).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(etag(&read), "W/\"1\"");
    assert_eq!(
        read.text().await.unwrap(),
        created_text,
        "a read returns exactly the stored bytes"
    );

    let missing = srv.get("/fhir/Patient/does-not-exist").await;
    expect_outcome(missing, StatusCode::NOT_FOUND).await;
});

on_both_databases!(what_is_stored_is_what_was_sent, |srv| {
    // Decimal precision, element order and extensions survive.
    let text = r#"{"resourceType":"Observation","status":"final","extension":[{"url":"https://example.org/fhir/StructureDefinition/made-up","valueString":"kept"}],"code":{"text":"Body weight"},"valueQuantity":{"value":21.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},"note":[{"text":"zero-padded 1.0e2 stays"}],"component":[{"code":{"text":"x"},"valueQuantity":{"value":0.000100}}]}"#;
    let resp = common::checked(
        srv.client
            .post(srv.url("/fhir/Observation"))
            .header("content-type", "application/fhir+json")
            .body(text)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored = resp.text().await.unwrap();
    assert!(stored.contains(r#""value":21.50"#), "{stored}");
    assert!(stored.contains(r#""value":0.000100"#), "{stored}");
    let order: Vec<usize> = [
        "\"status\"",
        "\"extension\"",
        "\"code\"",
        "\"valueQuantity\"",
        "\"note\"",
    ]
    .iter()
    .map(|k| stored.find(k).unwrap())
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "element order kept: {stored}"
    );
    assert!(stored.contains("made-up"));
});

on_both_databases!(update_vread_and_if_match, |srv| {
    let id = srv.create(&patient("9990000018")).await;
    let path = format!("/fhir/Patient/{id}");
    let mut v: Value = srv.get(&path).await.json().await.unwrap();
    v["gender"] = json!("male");
    let r = srv
        .send(reqwest::Method::PUT, &path, &v, &[("if-match", "W/\"1\"")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r), "W/\"2\"");
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["meta"]["versionId"], "2");
    assert_eq!(v2["gender"], "male");

    // A stale If-Match is refused and changes nothing.
    v["gender"] = json!("other");
    let r = srv
        .send(reqwest::Method::PUT, &path, &v, &[("if-match", "W/\"1\"")])
        .await;
    let oo = expect_outcome(r, StatusCode::PRECONDITION_FAILED).await;
    assert!(oo.to_string().contains("version 2"), "{oo}");
    let now: Value = srv.get(&path).await.json().await.unwrap();
    assert_eq!(now["gender"], "male");

    // vread of each version.
    let old: Value = srv
        .get(&format!("{path}/_history/1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["gender"], "female");
    expect_outcome(
        srv.get(&format!("{path}/_history/9")).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Conditional read.
    let r = srv
        .client
        .get(srv.url(&path))
        .header("if-none-match", "W/\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
});

on_both_databases!(update_as_create_and_id_agreement, |srv| {
    let mut p = patient("9990000018");
    p["id"] = json!("child-42");
    let r = srv.put("/fhir/Patient/child-42", &p).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/fhir/Patient/child-42/_history/1", srv.base)
    );
    let r = srv.put("/fhir/Patient/child-43", &p).await;
    expect_outcome(r, StatusCode::BAD_REQUEST).await;
    let mut no_id = patient("9990000018");
    no_id.as_object_mut().unwrap().remove("id");
    expect_outcome(
        srv.put("/fhir/Patient/child-42", &no_id).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let r = srv.post("/fhir/Condition", &p).await;
    expect_outcome(r, StatusCode::BAD_REQUEST).await;
    expect_outcome(
        srv.put("/fhir/Patient/bad%20id", &p).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
});

on_both_databases!(delete_makes_a_version_and_reads_answer_410, |srv| {
    let id = srv.create(&patient("9990000018")).await;
    let path = format!("/fhir/Patient/{id}");
    let r = srv.delete(&path).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r), "W/\"2\"");
    let gone = srv.get(&path).await;
    assert_eq!(etag(&gone), "W/\"2\"");
    expect_outcome(gone, StatusCode::GONE).await;
    expect_outcome(
        srv.get(&format!("{path}/_history/2")).await,
        StatusCode::GONE,
    )
    .await;
    // Nothing is lost: the earlier version is still there.
    assert_eq!(
        srv.get(&format!("{path}/_history/1")).await.status(),
        StatusCode::OK
    );
    // Deleting again makes no new version.
    assert_eq!(etag(&srv.delete(&path).await), "W/\"2\"");
    // Re-creating continues the version sequence.
    let mut p = patient("9990000018");
    p["id"] = json!(id);
    let r = srv.put(&path, &p).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(etag(&r), "W/\"3\"");
    expect_outcome(
        srv.delete("/fhir/Patient/never-was").await,
        StatusCode::NOT_FOUND,
    )
    .await;
});

on_both_databases!(json_patch, |srv| {
    let id = srv.create(&patient("9990000018")).await;
    let path = format!("/fhir/Patient/{id}");
    let patch = |ops: Value, headers: Vec<(&'static str, &'static str)>| {
        let mut req = srv
            .client
            .patch(srv.url(&path))
            .header("content-type", "application/json-patch+json")
            .body(ops.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { Ok::<_, reqwest::Error>(common::checked(req.send().await?).await) }
    };
    let r = patch(
        json!([{"op": "replace", "path": "/gender", "value": "male"}]),
        vec![("if-match", "W/\"1\"")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["gender"].as_str(), v["meta"]["versionId"].as_str()),
        (Some("male"), Some("2"))
    );
    // The patched result is validated: a code outside the required binding is refused.
    let r = patch(
        json!([{"op": "replace", "path": "/gender", "value": "robot"}]),
        vec![],
    )
    .await
    .unwrap();
    let oo = expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        expressions(&oo).iter().any(|e| e.contains("gender")),
        "{oo}"
    );
    // A patch that cannot apply, a stale If-Match, a wrong media type.
    let r = patch(json!([{"op": "remove", "path": "/nothing/here"}]), vec![])
        .await
        .unwrap();
    expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = patch(
        json!([{"op": "replace", "path": "/gender", "value": "female"}]),
        vec![("if-match", "W/\"1\"")],
    )
    .await
    .unwrap();
    expect_outcome(r, StatusCode::PRECONDITION_FAILED).await;
    let r = srv
        .send(reqwest::Method::PATCH, &path, &json!([]), &[])
        .await;
    expect_outcome(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let v: Value = srv.get(&path).await.json().await.unwrap();
    assert_eq!(
        v["meta"]["versionId"], "2",
        "failed patches made no version"
    );
});

on_both_databases!(conditional_create, |srv| {
    let cond = [(
        "if-none-exist",
        "identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
    )];
    let p = patient("9990000018");
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &p, &cond)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &p, &cond)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a match returns the existing resource"
    );
    let again: Value = r.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    // Without a system, or by a different value.
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &p,
            &[("if-none-exist", "identifier=9990000018")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &patient("9990000026"),
            &[("if-none-exist", "identifier=9990000026")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Two matches: 412.
    srv.create(&patient("9990000018")).await;
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &p, &cond)
        .await;
    expect_outcome(r, StatusCode::PRECONDITION_FAILED).await;
    // A parameter it does not know is refused, not ignored; so is a result parameter.
    for bad in ["frobnicate=x", "identifier=9990000026&_count=1"] {
        let r = srv
            .send(
                reqwest::Method::POST,
                "/fhir/Patient",
                &p,
                &[("if-none-exist", bad)],
            )
            .await;
        expect_outcome(r, StatusCode::BAD_REQUEST).await;
    }
    // Any search parameter: family and birthdate (searched, then created).
    let cond = [("if-none-exist", "family=condington&birthdate=2019-03-04")];
    let mut c = patient("9990000034");
    c["name"] = json!([{"family": "Condington", "given": ["Ada"]}]);
    c["birthDate"] = json!("2019-03-04");
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &c, &cond)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &c, &cond)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the match is returned");
    let again: Value = r.json().await.unwrap();
    assert_eq!(made["id"], again["id"]);
    // Same family, another birth date: no match, a new resource.
    let other = [("if-none-exist", "family=condington&birthdate=2019-03-05")];
    let r = srv
        .send(reqwest::Method::POST, "/fhir/Patient", &c, &other)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Now `family` alone matches two: 412.
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &c,
            &[("if-none-exist", "family=condington")],
        )
        .await;
    expect_outcome(r, StatusCode::PRECONDITION_FAILED).await;
});

on_both_databases!(history_levels_since_at_and_paging, |srv| {
    let a = srv.create(&patient("9990000018")).await;
    let b = srv.create(&patient("9990000026")).await;
    let cond = json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{a}")}, "code": {"text": "Epilepsy"}});
    let pa = format!("/fhir/Patient/{a}");
    let mut v: Value = srv.get(&pa).await.json().await.unwrap();
    let mid: Value = v["meta"]["lastUpdated"].clone();
    let cond_id = srv.create(&cond).await;
    let cond_at: Value = srv
        .get(&format!("/fhir/Condition/{cond_id}"))
        .await
        .json()
        .await
        .unwrap();
    let cond_at = cond_at["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    v["gender"] = json!("male");
    assert_eq!(srv.put(&pa, &v).await.status(), StatusCode::OK);
    srv.delete(&pa).await;

    let h = json_body(srv.get(&format!("{pa}/_history")).await).await;
    assert_eq!(h["type"], "history");
    let entries = h["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["request"]["method"], "DELETE");
    assert!(entries[0].get("resource").is_none());
    assert_eq!(entries[1]["resource"]["meta"]["versionId"], "2");
    assert_eq!(entries[2]["request"]["method"], "POST");
    assert_eq!(entries[2]["response"]["etag"], "W/\"1\"");

    let t = json_body(srv.get("/fhir/Patient/_history").await).await;
    assert_eq!(t["entry"].as_array().unwrap().len(), 4);
    let s = json_body(srv.get("/fhir/_history").await).await;
    assert_eq!(s["entry"].as_array().unwrap().len(), 5);

    // _since: only what changed at or after the Condition was created (it, then a's
    // update and deletion).
    let since = json_body(srv.get(&format!("/fhir/_history?_since={cond_at}")).await).await;
    let methods: Vec<&str> = since["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"], "{since}");

    // _at: what was current at `mid` — version 1 of a only.
    let at = json_body(
        srv.get(&format!("{pa}/_history?_at={}", mid.as_str().unwrap()))
            .await,
    )
    .await;
    let at_entries = at["entry"].as_array().unwrap();
    assert_eq!(at_entries.len(), 1, "{at}");
    assert_eq!(at_entries[0]["response"]["etag"], "W/\"1\"");

    // Paging with _count follows next links to the end, with no repeats, even while writing.
    let mut url = srv.url("/fhir/_history?_count=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = json_body(srv.client.get(&url).send().await.unwrap()).await;
        for e in page["entry"].as_array().unwrap() {
            seen.push(format!("{}|{}", e["fullUrl"], e["response"]["etag"]));
        }
        pages += 1;
        if pages == 1 {
            srv.create(&patient("9990000034")).await; // a write between pages
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next");
        match next {
            Some(l) => url = l["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5);
    let _ = b;
    expect_outcome(
        srv.get("/fhir/Patient/nope/_history").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_outcome(
        srv.get("/fhir/_history?_since=yesterday").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
});

on_both_databases!(prefer_return, |srv| {
    let p = patient("9990000018");
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &p,
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("location").is_some());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &p,
            &[("prefer", "return=OperationOutcome")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let r = srv
        .send(
            reqwest::Method::POST,
            "/fhir/Patient",
            &p,
            &[("prefer", "return=representation")],
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resourceType"], "Patient");
});

on_both_databases!(
    bad_input_is_refused_with_an_outcome_and_nothing_stored,
    |srv| {
        expect_outcome(
            srv.post("/fhir/Unicorn", &json!({"resourceType": "Unicorn"}))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_outcome(srv.get("/fhir/Basic/1").await, StatusCode::NOT_FOUND).await;
        expect_outcome(srv.get("/nowhere").await, StatusCode::NOT_FOUND).await;
        use reqwest::Method;
        let json = Some("application/fhir+json");
        let cases: &[RawCase] = &[
            (
                Method::POST,
                "/fhir/Patient",
                json,
                "{not json",
                &[],
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/fhir/Patient",
                json,
                "[1,2]",
                &[],
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/fhir/Patient",
                Some("text/plain"),
                "{}",
                &[],
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                Method::POST,
                "/fhir/Patient",
                None,
                "{}",
                &[],
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                Method::GET,
                "/fhir/metadata",
                None,
                "",
                &[("accept", "application/fhir+xml")],
                StatusCode::NOT_ACCEPTABLE,
            ),
            // (OPTIONS is answered for CORS preflight: tests/authorize.rs.)
            (
                Method::TRACE,
                "/fhir/Patient/x",
                None,
                "",
                &[],
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ];
        for (method, path, content_type, body, headers, status) in cases {
            let r = srv
                .raw(method.clone(), path, *content_type, body, headers)
                .await;
            expect_outcome(r, *status).await;
        }

        // Structurally invalid: 422 naming the element.
        let r = srv
            .post(
                "/fhir/Patient",
                &json!({"resourceType": "Patient", "birthDate": "2019-13-45"}),
            )
            .await;
        let oo = expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            expressions(&oo).iter().any(|e| e == "Patient.birthDate"),
            "{oo}"
        );
        let r = srv
            .post(
                "/fhir/Patient",
                &json!({"resourceType": "Patient", "favouriteColour": "blue"}),
            )
            .await;
        let oo = expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            expressions(&oo)
                .iter()
                .any(|e| e.contains("favouriteColour")),
            "{oo}"
        );

        // A bad NHS Number, with a message that says so.
        let r = srv.post("/fhir/Patient", &patient("9912003890")).await;
        let oo = expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            expressions(&oo)
                .iter()
                .any(|e| e.starts_with("Patient.identifier[0]")),
            "{oo}"
        );
        assert!(oo.to_string().to_lowercase().contains("nhs number"), "{oo}");
        let r = srv.post("/fhir/Patient", &patient("12345")).await;
        expect_outcome(r, StatusCode::UNPROCESSABLE_ENTITY).await;

        // Nothing was stored by any of that.
        let h = json_body(srv.get("/fhir/_history").await).await;
        assert!(
            h.get("entry").is_none(),
            "an empty history has no entry: {h}"
        );
    }
);

/// The body limit is configurable (10 MiB by default); over it is 413, whether the size is
/// declared up front or only found while reading a chunked body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some((url, dir)) = common::fresh_database(backend) else {
            continue;
        };
        let srv = common::spawn_on(url, dir, Some(64 * 1024)).await;
        let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(80 * 1024)}]});
        expect_outcome(
            srv.post("/fhir/Patient", &big).await,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
        // A chunked body declares no length: the limit is found while reading.
        let status = chunked_put(&srv, "/fhir/Patient/a", 80 * 1024).await;
        assert_eq!(status, 413);
        let ok = srv
            .post(
                "/fhir/Patient",
                &json!({"resourceType": "Patient", "gender": "male"}),
            )
            .await;
        assert_eq!(ok.status(), StatusCode::CREATED);
    }
}

/// Sends a PUT with a chunked body of about `size` bytes over a raw socket; returns the status.
async fn chunked_put(srv: &common::TestServer, path: &str, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        srv.token
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8 * 1024];
    for _ in 0..size / chunk.len() {
        if sock
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
        {
            break;
        }
        let _ = sock.write_all(&chunk).await;
        let _ = sock.write_all(b"\r\n").await;
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = sock.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

on_both_databases!(
    parent_and_clinician_editing_at_once_cannot_lose_an_update,
    |srv| {
        let id = srv.create(&patient("9990000018")).await;
        let path = format!("/fhir/Patient/{id}");
        let base: Value = srv.get(&path).await.json().await.unwrap();
        let mut parent = base.clone();
        parent["name"][0]["given"] = json!(["Alexandra"]);
        let mut clinician = base.clone();
        clinician["gender"] = json!("unknown");
        let (a, b) = tokio::join!(
            srv.send(
                reqwest::Method::PUT,
                &path,
                &parent,
                &[("if-match", "W/\"1\"")]
            ),
            srv.send(
                reqwest::Method::PUT,
                &path,
                &clinician,
                &[("if-match", "W/\"1\"")]
            ),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
        let h = json_body(srv.get(&format!("{path}/_history")).await).await;
        assert_eq!(h["entry"].as_array().unwrap().len(), 2);
    }
);

on_both_databases!(
    concurrent_updates_without_if_match_are_all_versioned,
    |srv| {
        let id = srv.create(&patient("9990000018")).await;
        let path = format!("/fhir/Patient/{id}");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let client = srv.client.clone();
            let url = srv.url(&path);
            let mut body = patient("9990000018");
            body["id"] = json!(id);
            body["name"][0]["given"] = json!([format!("Name{i}")]);
            tasks.push(tokio::spawn(async move {
                client
                    .put(url)
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK);
        }
        let v: Value = srv.get(&path).await.json().await.unwrap();
        assert_eq!(v["meta"]["versionId"], "21");
        let h = json_body(srv.get(&format!("{path}/_history?_count=100")).await).await;
        assert_eq!(h["entry"].as_array().unwrap().len(), 21);
    }
);

on_both_databases!(graceful_shutdown_loses_nothing_acknowledged, |srv| {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = srv.client.clone();
        let url = srv.url("/fhir/Patient");
        let mut body = patient("9990000018");
        body["name"][0]["given"] = json!([format!("C{i}")]);
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=minimal")
                .body(body.to_string())
                .send()
                .await;
            r.ok()
                .filter(|r| r.status() == StatusCode::CREATED)
                .map(|r| r.headers()["location"].to_str().unwrap().to_owned())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (url, dir) = srv.stop().await;
    let mut acknowledged = Vec::new();
    for t in tasks {
        if let Some(loc) = t.await.unwrap() {
            acknowledged.push(loc);
        }
    }
    let srv2 = common::spawn_on(url, dir, None).await;
    for loc in &acknowledged {
        let path = loc
            .split("/fhir/")
            .nth(1)
            .unwrap()
            .split("/_history")
            .next()
            .unwrap();
        assert_eq!(
            srv2.get(&format!("/fhir/{path}")).await.status(),
            StatusCode::OK,
            "{loc} lost"
        );
    }
});

#[test]
fn round_trip_property_through_http() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(common::spawn(Backend::Sqlite)).unwrap();
    let decimal = (any::<i64>(), 0u32..8).prop_map(|(n, scale)| {
        let s = n.unsigned_abs().to_string();
        let sign = if n < 0 { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{s}")
        } else {
            format!("{sign}{s}.{}", "0".repeat(scale as usize - 1) + "5")
        }
    });
    let text = "[^\\p{Cc}]{1,40}".prop_filter("FHIR strings are not blank", |s: &String| {
        !s.trim().is_empty() && s.trim() == s
    });
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    runner
        .run(&(decimal, text), |(dec, text)| {
            let body = format!(
                r#"{{"resourceType":"Observation","status":"final","code":{{"text":{}}},"valueQuantity":{{"value":{dec},"unit":"kg"}}}}"#,
                serde_json::to_string(&text).unwrap()
            );
            let (status, stored, read) = rt.block_on(async {
                let r = common::checked(srv.client.post(srv.url("/fhir/Observation")).header("content-type", "application/fhir+json").body(body.clone()).send().await.unwrap()).await;
                let status = r.status();
                let stored: Value = r.json().await.unwrap();
                let read = srv.get(&format!("/fhir/Observation/{}", stored["id"].as_str().unwrap_or("x"))).await.text().await.unwrap();
                (status, stored, read)
            });
            prop_assert_eq!(status, StatusCode::CREATED);
            prop_assert!(read.contains(&format!(r#""value":{dec}"#)), "decimal {} changed: {}", dec, read);
            prop_assert_eq!(&stored["code"]["text"], &json!(text));
            Ok(())
        })
        .unwrap();
}
