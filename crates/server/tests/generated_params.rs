//! For every search parameter the CapabilityStatement declares, for every type: two valid
//! resources generated from the definitions (`param_gen`) that differ in that parameter's
//! value, both created through HTTP, and a search (`Prefer: handling=strict`) that must find
//! the first and not the second. All failures are reported together.

mod common;
mod param_gen;

use common::*;

/// Declared parameters not tested here (`*`: every parameter of the type), with the reason.
const SKIPPED: &[(&str, &str, &str)] = &[(
    "AuditEvent",
    "*",
    "AuditEvents are recorded by the server only: POST /fhir/AuditEvent is 405, so no \
     AuditEvent with chosen values can be made through the API",
)];

/// `(type, param)` → the resources A/B and search value are made by the server, not by the
/// generator.
fn server_made(param: &str) -> bool {
    matches!(param, "_id" | "_lastUpdated")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Creates `resources` of one type in one batch; their ids (or the error) in order.
async fn create_all(srv: &TestServer, resources: &[Value]) -> Vec<Result<String, String>> {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            })
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
    let resp = srv.post("/fhir", &bundle).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_body(resp).await;
    body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let status = e["response"]["status"].as_str().unwrap_or("");
            if !status.starts_with("201") {
                return Err(format!("{status}: {}", e["response"]["outcome"]));
            }
            let loc = e["response"]["location"].as_str().unwrap_or("");
            let after = loc.split("/fhir/").nth(1).unwrap_or("");
            Ok(after.split('/').nth(1).unwrap_or("").to_owned())
        })
        .collect()
}

on_both_databases!(every_declared_parameter_matches_and_excludes, |srv| {
    let generator = param_gen::Generator::new();
    let cs = json_body(srv.get("/fhir/metadata").await).await;
    let mut failures: Vec<String> = Vec::new();
    let (mut declared, mut tested, mut skipped) = (0, 0, 0);
    for r in cs["rest"][0]["resource"].as_array().unwrap() {
        let ty = r["type"].as_str().unwrap();
        let mut cases = Vec::new();
        for sp in r["searchParam"].as_array().into_iter().flatten() {
            let name = sp["name"].as_str().unwrap();
            declared += 1;
            if SKIPPED
                .iter()
                .any(|(t, p, _)| *t == ty && (*p == name || *p == "*"))
            {
                skipped += 1;
                continue;
            }
            let def = fhir::search::param(ty, name).expect("declared parameters are defined");
            if server_made(name) {
                let base = generator.minimal(ty);
                cases.push(param_gen::Case {
                    resource_type: ty.to_owned(),
                    param: name.to_owned(),
                    a: base.clone(),
                    b: base,
                    others: Vec::new(),
                    value: String::new(),
                });
                continue;
            }
            match generator.case(def) {
                Ok(c) => cases.push(c),
                Err(e) => failures.push(format!("{ty}.{name}: generator: {e}")),
            }
        }
        if cases.is_empty() {
            continue;
        }
        let resources: Vec<Value> = cases
            .iter()
            .flat_map(|c| [&c.a, &c.b].into_iter().chain(&c.others).cloned())
            .collect();
        let mut ids = create_all(&srv, &resources).await.into_iter();
        for c in &cases {
            let made: Vec<Result<String, String>> = ids.by_ref().take(2 + c.others.len()).collect();
            let bodies: Vec<&Value> = [&c.a, &c.b].into_iter().chain(&c.others).collect();
            let mut refused = false;
            for (i, res) in made.iter().enumerate() {
                if let Err(e) = res {
                    refused = true;
                    failures.push(format!(
                        "{ty}.{}: create #{i} (0: A) refused: {e}\n  {}",
                        c.param, bodies[i]
                    ));
                }
            }
            if refused {
                continue;
            }
            let made: Vec<String> = made.into_iter().map(Result::unwrap).collect();
            let a = made[0].clone();
            let value = match c.param.as_str() {
                "_id" => a.clone(),
                "_lastUpdated" => {
                    let read = json_body(srv.get(&format!("/fhir/{ty}/{a}")).await).await;
                    read["meta"]["lastUpdated"].as_str().unwrap().to_owned()
                }
                _ => c.value.clone(),
            };
            let path = format!("/fhir/{ty}?{}={}&_count=1000", enc(&c.param), enc(&value));
            // `PARAM_GEN_DUMP=1 cargo test --test generated_params -- --nocapture` shows
            // every generated case.
            if std::env::var_os("PARAM_GEN_DUMP").is_some() {
                eprintln!("{path}\n  A = {}\n  B = {}", c.a, c.b);
            }
            let resp = srv
                .client
                .get(srv.url(&path))
                .header("prefer", "handling=strict")
                .send()
                .await
                .unwrap();
            tested += 1;
            if resp.status() != StatusCode::OK {
                failures.push(format!(
                    "{ty}.{}: GET {path}: {} {}",
                    c.param,
                    resp.status(),
                    resp.text().await.unwrap()
                ));
                continue;
            }
            let bundle = json_body(resp).await;
            let found: Vec<&str> = bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["resource"]["id"].as_str())
                .collect();
            if !found.contains(&a.as_str()) {
                failures.push(format!(
                    "{ty}.{}: GET {path} does not find A\n  A = {}",
                    c.param, c.a
                ));
            }
            for (i, other) in made.iter().enumerate().skip(1) {
                if found.contains(&other.as_str()) {
                    failures.push(format!(
                        "{ty}.{}: GET {path} finds #{i} too\n  #{i} = {}",
                        c.param, bodies[i]
                    ));
                }
            }
        }
    }
    eprintln!("declared {declared}, tested {tested}, skipped {skipped}");
    assert_eq!(
        declared,
        tested
            + skipped
            + failures
                .iter()
                .filter(|f| f.contains(": generator: "))
                .count(),
        "every declared parameter is tested or skipped\n{}",
        failures.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
});
