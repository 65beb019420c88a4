//! Property test (issue 12): generated search strings and mutated resources thrown at the
//! API on SQLite and PostgreSQL never get a 5xx. A 4xx is the right answer to most of them;
//! a 2xx is fine too. Each failure names the request, so it can be replayed.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

const TYPES: &[&str] = &[
    "Patient",
    "Observation",
    "Condition",
    "CarePlan",
    "AllergyIntolerance",
    "MedicationStatement",
    "Consent",
    "NoSuchType",
];

const NAMES: &[&str] = &[
    "name",
    "family",
    "given",
    "birthdate",
    "gender",
    "identifier",
    "_id",
    "_lastUpdated",
    "code",
    "value-quantity",
    "date",
    "subject",
    "patient",
    "status",
    "category",
    "subject:Patient.name",
    "patient.birthdate",
    "_has:Observation:patient:code",
    "name:exact",
    "name:contains",
    "name:missing",
    "code:not",
    "code:text",
    "code:above",
    "identifier:of-type",
    "subject:missing",
    "component-code-value-quantity",
    "_sort",
    "_count",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_cursor",
    "_before",
    "_format",
    "_tag",
    "_security",
    "_profile",
    "no-such-param",
    "_text",
    "",
];

/// Values: plain words, numbers at and past the edges of a double, dates, prefixes,
/// escapes, separators, control characters and broken percent-encodings.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        prop::sample::select(vec![
            "1e999999999",
            "-1e999999999",
            "1e-999999999",
            "NaN",
            "inf",
            "-0",
            "0.0000000001",
            "99999999999999999999999999",
            "gt1e308",
            "ap5",
            "sa2020",
            "eb2020-13-45",
            "2020-02-30",
            "2020-01-01T25:00:00Z",
            "9999",
            "0000-00-00",
            "-1",
            "",
            "http://loinc.org|",
            "|",
            "||",
            "a|b|c",
            "\\",
            "\\,",
            ",,,,",
            "a,b,c",
            "%00",
            "%0A",
            "%FF",
            "%",
            "%zz",
            "%C0%80",
            "\u{0}",
            "\u{1F600}",
            "Patient/",
            "Patient/../../x",
            "a:b:c",
            "*",
            "name",
            "-name",
            "Observation:subject",
            "Observation:subject:Patient",
            "true",
            "count",
            "estimate",
            "garbage==",
        ])
        .prop_map(str::to_owned),
        "[\\PC]{0,40}",
        "[a-z]{0,3}[\\x00-\\x1f\\x7f][a-z]{0,3}",
        prop::collection::vec("[a-z]{1,4}", 1..120).prop_map(|v| v.join(",")),
    ]
}

/// A search, a history, a `_search` POST, or a read of a generated id.
fn search() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec((prop::sample::select(NAMES), value()), 0..12),
        prop::sample::select(vec!["", "/_history", "/_search", "/ID", "/ID/_history/ID"]),
        value(),
    )
        .prop_map(|(ty, pairs, suffix, id)| {
            let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let suffix = suffix.replace("ID", &id);
            let q: Vec<String> = pairs
                .iter()
                .map(|(n, v)| {
                    // Half encoded properly, half sent as written (a client may send either).
                    if v.len() % 2 == 0 {
                        format!(
                            "{n}={}",
                            form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                        )
                    } else {
                        format!("{n}={v}")
                    }
                })
                .collect();
            format!("/fhir/{ty}{suffix}?{}", q.join("&"))
        })
}

/// A JSON value that is wrong in some interesting way.
fn odd_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[\\PC]{0,20}".prop_map(Value::from),
        Just(Value::from("A\u{0}B")),
        Just(Value::from("x".repeat(70_000))),
        Just(json!({})),
        Just(json!([])),
        Just(json!({"reference": "Patient/../x"})),
        Just(json!({"value": 1.0e308, "unit": "mg"})),
        // Past the range of a double (the crate keeps numbers as written).
        Just(serde_json::from_str::<Value>(r#"{"value": 1e999999999, "unit": "mg"}"#).unwrap()),
        Just(serde_json::from_str::<Value>("-1e999999999").unwrap()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Sets the element at a path of (generated) keys to `v`, creating objects on the way.
fn mutate(mut r: Value, keys: &[String], v: Value) -> Value {
    let mut at = &mut r;
    for (i, k) in keys.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let obj = at.as_object_mut().unwrap();
        if i + 1 == keys.len() {
            obj.insert(k.clone(), v);
            return r;
        }
        at = obj.entry(k.clone()).or_insert_with(|| json!({}));
    }
    r
}

const KEYS: &[&str] = &[
    "id",
    "meta",
    "resourceType",
    "name",
    "family",
    "given",
    "birthDate",
    "gender",
    "identifier",
    "system",
    "value",
    "subject",
    "reference",
    "code",
    "coding",
    "valueQuantity",
    "effectiveDateTime",
    "status",
    "text",
    "div",
    "extension",
    "url",
    "contained",
    "telecom",
    "address",
    "period",
    "start",
    "component",
    "category",
];

fn mutation() -> impl Strategy<Value = (usize, Vec<String>, Value, bool)> {
    (
        0..3usize,
        prop::collection::vec(prop::sample::select(KEYS).prop_map(str::to_owned), 1..4),
        odd_json(),
        any::<bool>(),
    )
}

fn bases(patient: &str) -> [Value; 3] {
    [
        json!({"resourceType": "Patient", "name": [{"family": "Hostile", "given": ["Test"]}],
               "birthDate": "2015-04-01"}),
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
               "subject": {"reference": format!("Patient/{patient}")},
               "valueQuantity": {"value": 20.5, "unit": "kg"}}),
        json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{patient}")},
               "code": {"text": "Epilepsy"}}),
    ]
}

fn no_5xx(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(srv) = rt.block_on(common::spawn(backend)) else {
        return;
    };
    let patient = rt.block_on(srv.create(&json!({"resourceType": "Patient"})));
    let cases = |n| RunnerConfig {
        cases: n,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let count = |s: reqwest::StatusCode| {
        *statuses.lock().unwrap().entry(s.as_u16()).or_default() += 1;
    };
    let mut runner = TestRunner::new(cases(500));
    let result = runner.run(&search(), |path| {
        let status = rt.block_on(async {
            // `_search` is POSTed with the criteria as a form (FHIR R4 §3.1.0.8).
            let resp = match path.split_once("/_search?") {
                Some((ty, form)) => {
                    srv.client
                        .post(srv.url(&format!("{ty}/_search")))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form.to_owned())
                        .send()
                        .await
                }
                None => srv.client.get(srv.url(&path)).send().await,
            };
            resp.map(|r| r.status()).map_err(|e| e.to_string())
        });
        match status {
            Ok(s) if s.is_server_error() => Err(TestCaseError::fail(format!("{s} for GET {path}"))),
            Ok(s) => {
                count(s);
                Ok(())
            }
            // The client could not even form the request (not the server's doing).
            Err(e) if e.contains("builder error") => Ok(()),
            Err(e) => Err(TestCaseError::fail(format!("GET {path}: {e}"))),
        }
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
    let mut runner = TestRunner::new(cases(500));
    let result = runner.run(&mutation(), |(which, keys, v, put)| {
        let resource = mutate(bases(&patient)[which].clone(), &keys, v);
        let status = rt.block_on(async {
            let ty = resource["resourceType"]
                .as_str()
                .unwrap_or("Patient")
                .to_owned();
            let req = if put {
                srv.client.put(srv.url(&format!("/fhir/{ty}/{patient}")))
            } else {
                srv.client.post(srv.url(&format!("/fhir/{ty}")))
            };
            req.header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(&resource).unwrap())
                .send()
                .await
                .map(|r| r.status())
                .map_err(|e| e.to_string())
        });
        match status {
            Ok(s) if s.is_server_error() => Err(TestCaseError::fail(format!(
                "{s} for {} of {resource}",
                if put { "PUT" } else { "POST" }
            ))),
            Ok(s) => {
                count(s);
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(e)),
        }
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
    // Printed so a run shows the mix was not all one answer.
    let statuses = statuses.into_inner().unwrap();
    println!("{backend:?}: statuses {statuses:?}");
    assert!(statuses.len() >= 3, "too little variety: {statuses:?}");
    rt.block_on(srv.stop());
}

#[test]
fn hostile_requests_never_get_a_5xx_sqlite() {
    no_5xx(Backend::Sqlite);
}

#[test]
fn hostile_requests_never_get_a_5xx_postgres() {
    no_5xx(Backend::Postgres);
}
