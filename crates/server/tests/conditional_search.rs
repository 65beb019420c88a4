//! Conditions evaluated by the search engine: conditional create, update and delete, and a
//! transaction's `ifNoneExist`, with criteria other than `identifier`/`_id`.

mod common;

use common::*;

const SYS: &str = "https://example.org/cond";

fn child(ident: &str, family: &str, birth: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": SYS, "value": ident}],
        "name": [{"family": family, "given": ["Kim"]}],
        "birthDate": birth,
    })
}

on_both_databases!(
    conditional_update_delete_and_transactions_use_search,
    |srv| {
        // Conditional update by identifier (the store re-checks it): create, then update.
        let q = format!("/fhir/Patient?identifier={SYS}|cu-1");
        let r = srv.put(&q, &child("cu-1", "Updaton", "2017-01-01")).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = json_body(r).await["id"].as_str().unwrap().to_owned();
        let r = srv.put(&q, &child("cu-1", "Updaton", "2017-01-02")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_body(r).await;
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["birthDate"], "2017-01-02");

        // Conditional update by other criteria (a search): family + birthdate.
        let q2 = "/fhir/Patient?family=updaton&birthdate=2017-01-02";
        let r = srv.put(q2, &child("cu-1", "Updaton", "2017-01-02")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(json_body(r).await["id"], id.as_str());

        // Conditional delete by name: none → 204; two → 412; one → deleted.
        assert_eq!(
            srv.delete("/fhir/Patient?name=deletington").await.status(),
            StatusCode::NO_CONTENT
        );
        let d1 = srv
            .create(&child("cd-1", "Deletington", "2016-01-01"))
            .await;
        let d2 = srv
            .create(&child("cd-2", "Deletington", "2016-01-02"))
            .await;
        expect_outcome(
            srv.delete("/fhir/Patient?name=deletington").await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        let r = srv
            .delete("/fhir/Patient?name=deletington&birthdate=2016-01-02")
            .await;
        assert!(r.status().is_success(), "{}", r.status());
        assert_eq!(
            srv.get(&format!("/fhir/Patient/{d2}")).await.status(),
            StatusCode::GONE
        );
        let r = srv.delete("/fhir/Patient?name=deletington").await;
        assert!(r.status().is_success(), "{}", r.status());
        assert_eq!(
            srv.get(&format!("/fhir/Patient/{d1}")).await.status(),
            StatusCode::GONE
        );

        // Unknown parameters and modifiers are 400, never ignored.
        for q in [
            "/fhir/Patient?frobnicate=1",
            "/fhir/Patient?name:frobnicate=x",
            "/fhir/Patient?birthdate=yesterday",
        ] {
            expect_outcome(srv.delete(q).await, StatusCode::BAD_REQUEST).await;
        }

        // A transaction's ifNoneExist on family + birthdate: the second finds the first.
        let tx = |ident: &str| {
            json!({
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{
                    "resource": child(ident, "Transactor", "2015-05-05"),
                    "request": {
                        "method": "POST",
                        "url": "Patient",
                        "ifNoneExist": "family=transactor&birthdate=2015-05-05",
                    },
                }],
            })
        };
        let r = srv.post("/fhir", &tx("tx-1")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let first = json_body(r).await;
        assert!(
            first["entry"][0]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("201"),
            "{first}"
        );
        let r = srv.post("/fhir", &tx("tx-2")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let second = json_body(r).await;
        assert!(
            second["entry"][0]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("200"),
            "{second}"
        );
        assert_eq!(
            first["entry"][0]["response"]["location"],
            second["entry"][0]["response"]["location"]
        );
    }
);
