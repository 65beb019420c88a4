//! Care-team membership inside the SQL (migration 16): a search applying a
//! `GrantChildren::CareTeam` grant sees exactly the children whose current, active CareTeam
//! names the caller at the time given; `access_member` follows every CareTeam write, is
//! filled in for CareTeams stored before it, and `care_team_exceptions` finds the children
//! with their own facts.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::must;
use passport_store::search::{
    CareTeamOf, Filter, GrantChildren, RowGrant, RowRule, SearchQuery, View, Views, Visibility,
};
use passport_store::{AccessInputs, CareTeamMemberRow, Store, Write};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

fn write(resource: &Value, replaces: Option<i64>, members: Vec<CareTeamMemberRow>) -> Write {
    let patients = match resource["resourceType"].as_str() {
        Some("Patient") => vec![resource["id"].as_str().unwrap().to_owned()],
        _ => resource
            .pointer("/subject/reference")
            .or_else(|| resource.pointer("/patient/reference"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("Patient/"))
            .map(|p| vec![p.to_owned()])
            .unwrap_or_default(),
    };
    Write {
        resource_type: resource["resourceType"].as_str().unwrap().into(),
        id: resource["id"].as_str().unwrap().into(),
        replaces,
        version_id: replaces.map_or(1, |v| v + 1),
        last_updated_us: NOW * 1_000_000,
        deleted: false,
        body: Bytes::from(resource.to_string()),
        index: fhir::search::extract(resource),
        access: AccessInputs {
            patients,
            sections: 0,
            labels: 0,
            active_medication: false,
            members,
        },
        unless_exists: None,
        audit: Vec::new(),
    }
}

fn member(ty: &'static str, id: &str, starts: Option<i64>, ends: Option<i64>) -> CareTeamMemberRow {
    CareTeamMemberRow {
        member_type: ty,
        member_id: id.into(),
        starts,
        ends,
    }
}

fn team(id: &str, patient: &str) -> Value {
    json!({"resourceType": "CareTeam", "id": id, "status": "active",
           "subject": {"reference": format!("Patient/{patient}")}})
}

/// The caller of `of` sees its care team's children's rows (untagged, unlabelled).
struct CareTeamView(CareTeamOf);

impl Views for CareTeamView {
    fn view(&self, _: &str) -> Arc<View> {
        Arc::new(View {
            no_child: Vec::new(),
            grants: vec![RowGrant {
                children: GrantChildren::CareTeam(self.0.clone()),
                rule: RowRule {
                    sections: 0,
                    untagged: true,
                    current_medicines: None,
                    tags: Vec::new(),
                    not_cleared: 0,
                },
                address: true,
            }],
        })
    }
    fn redacted(&self, _: &str, _: &str) -> bool {
        false
    }
}

fn caller(org: Option<&str>, practitioner: Option<&str>, roles: &[&str], now: i64) -> CareTeamOf {
    CareTeamOf {
        organisation: org.map(str::to_owned),
        practitioner: practitioner.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        except: Vec::new(),
        now,
    }
}

/// A child's Patient and one Condition (`cond-<kid>`) in its record.
async fn child_with_condition(store: &Store, kid: &str) {
    must(
        store,
        write(&json!({"resourceType": "Patient", "id": kid}), None, vec![]),
    )
    .await;
    let cond = json!({"resourceType": "Condition", "id": format!("cond-{kid}"),
                      "subject": {"reference": format!("Patient/{kid}")}});
    must(store, write(&cond, None, vec![])).await;
}

/// The children whose Condition the caller finds (sorted).
async fn seen(store: &Store, of: CareTeamOf) -> Vec<String> {
    seen_through(store, &CareTeamView(of)).await
}

/// The Conditions (ids without `cond-`, sorted) a caller with `view` finds.
async fn seen_through(store: &Store, view: &dyn Views) -> Vec<String> {
    let q = SearchQuery {
        resource_type: "Condition".into(),
        filters: Vec::<Filter>::new(),
        sort: Vec::new(),
        count: 100,
        after: None,
        before: None,
        total: true,
    };
    let found = store.search(&q, Visibility::Caller(view)).await.unwrap();
    let mut kids: Vec<String> = found
        .matches
        .iter()
        .map(|m| m.id.trim_start_matches("cond-").to_owned())
        .collect();
    kids.sort();
    assert_eq!(found.total, Some(kids.len() as u64), "the count agrees");
    kids
}

async fn care_team_membership(store: &Store) {
    for kid in ["k1", "k2", "k3", "k4"] {
        child_with_condition(store, kid).await;
    }
    // k1: the hospital, for good. k2: the hospital until NOW, then the GP. k3: a role of
    // practitioner p1. k4: nobody's.
    must(
        store,
        write(
            &team("t1", "k1"),
            None,
            vec![member("Organization", "hosp", None, None)],
        ),
    )
    .await;
    must(
        store,
        write(
            &team("t2", "k2"),
            None,
            vec![
                member("Organization", "hosp", Some(NOW - 100), Some(NOW)),
                member("Organization", "gp", Some(NOW), None),
            ],
        ),
    )
    .await;
    must(
        store,
        write(
            &team("t3", "k3"),
            None,
            vec![member("PractitionerRole", "role1", None, None)],
        ),
    )
    .await;

    assert_eq!(
        seen(store, caller(Some("hosp"), None, &[], NOW - 1)).await,
        ["k1", "k2"]
    );
    assert_eq!(
        seen(store, caller(Some("hosp"), None, &[], NOW)).await,
        ["k1"],
        "ends are exclusive"
    );
    assert_eq!(
        seen(store, caller(Some("gp"), None, &[], NOW - 1)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        seen(store, caller(Some("gp"), None, &[], NOW)).await,
        ["k2"],
        "starts are inclusive"
    );
    assert_eq!(
        seen(store, caller(None, Some("p1"), &["role1"], NOW)).await,
        ["k3"]
    );
    assert_eq!(
        seen(store, caller(None, Some("p1"), &[], NOW)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        seen(store, caller(Some("hosp"), Some("p1"), &["role1"], NOW - 1)).await,
        ["k1", "k2", "k3"]
    );
    let mut except = caller(Some("hosp"), None, &[], NOW - 1);
    except.except = vec!["k1".into()];
    assert_eq!(
        seen(store, except).await,
        ["k2"],
        "an exception is left out"
    );

    // An update replaces the rows; a deletion removes them.
    let mut ended = team("t1", "k1");
    ended["status"] = json!("inactive");
    must(store, write(&ended, Some(1), vec![])).await;
    assert_eq!(
        seen(store, caller(Some("hosp"), None, &[], NOW - 1)).await,
        ["k2"]
    );
    must(
        store,
        write(
            &team("t1", "k1"),
            Some(2),
            vec![member("Organization", "hosp", None, None)],
        ),
    )
    .await;
    assert_eq!(
        seen(store, caller(Some("hosp"), None, &[], NOW - 1)).await,
        ["k1", "k2"]
    );
    must(store, common::delete("CareTeam", "t1", 3, NOW * 1_000_000)).await;
    assert_eq!(
        seen(store, caller(Some("hosp"), None, &[], NOW - 1)).await,
        ["k2"]
    );

    // The children with their own facts: a Consent (k2), a break-glass grant (none here).
    let hosp = caller(Some("hosp"), None, &[], NOW);
    assert_eq!(
        store.care_team_exceptions(&hosp).await.unwrap(),
        Vec::<String>::new()
    );
    let consent = json!({"resourceType": "Consent", "id": "c2", "status": "active",
                         "patient": {"reference": "Patient/k2"}});
    must(store, write(&consent, None, vec![])).await;
    assert_eq!(store.care_team_exceptions(&hosp).await.unwrap(), ["k2"]);
    assert_eq!(
        store
            .care_team_exceptions(&caller(Some("elsewhere"), None, &[], NOW))
            .await
            .unwrap(),
        Vec::<String>::new()
    );

    // A database from before migration 16: the fill at start-up gives the CareTeams their
    // rows again, from their stored bodies.
    passport_store::testing::as_before_care_team_members(store)
        .await
        .unwrap();
    assert_eq!(
        seen(store, caller(Some("gp"), None, &[], NOW)).await,
        Vec::<String>::new()
    );
    let filled = store
        .fill_access_inputs(|body| {
            let v: Value = serde_json::from_slice(body).unwrap();
            let members = match v["id"].as_str() {
                Some("t2") => vec![member("Organization", "gp", Some(NOW), None)],
                Some("t3") => vec![member("PractitionerRole", "role1", None, None)],
                _ => Vec::new(),
            };
            write(&v, None, members).access
        })
        .await
        .unwrap();
    assert!(filled >= 2, "{filled}");
    assert_eq!(
        seen(store, caller(Some("gp"), None, &[], NOW)).await,
        ["k2"]
    );
    assert_eq!(
        seen(store, caller(None, Some("p1"), &["role1"], NOW)).await,
        ["k3"]
    );
}

both_backends!(care_team_membership);

/// The caller sees these children's rows (a family, a role's children) and, optionally,
/// its care team's.
struct ListedView(Vec<String>, Option<CareTeamOf>);

impl Views for ListedView {
    fn view(&self, _: &str) -> Arc<View> {
        let rule = RowRule {
            sections: 0,
            untagged: true,
            current_medicines: None,
            tags: Vec::new(),
            not_cleared: 0,
        };
        let mut grants = vec![RowGrant {
            children: GrantChildren::Listed(self.0.clone()),
            rule: rule.clone(),
            address: true,
        }];
        if let Some(of) = &self.1 {
            grants.push(RowGrant {
                children: GrantChildren::CareTeam(of.clone()),
                rule,
                address: true,
            });
        }
        Arc::new(View {
            no_child: Vec::new(),
            grants,
        })
    }
    fn redacted(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// Listed children are tested one way for a family's few and another for many (see
/// `search::in_list`): both see exactly the listed children's rows, and a row in two
/// children's records only when both are listed (or in the caller's care team).
async fn listed_children(store: &Store) {
    let kids: Vec<String> = (1..=12).map(|i| format!("k{i:02}")).collect();
    for kid in &kids {
        child_with_condition(store, kid).await;
    }
    // One row in the records of k01 and k12.
    let mut shared = write(
        &json!({"resourceType": "Condition", "id": "cond-shared",
                "subject": {"reference": "Patient/k01"}}),
        None,
        vec![],
    );
    shared.access.patients = vec!["k01".into(), "k12".into()];
    must(store, shared).await;
    must(
        store,
        write(
            &team("t12", "k12"),
            None,
            vec![member("Organization", "hosp", None, None)],
        ),
    )
    .await;

    let seen_by = |listed: &[String], team: Option<CareTeamOf>| {
        let view = ListedView(listed.to_vec(), team);
        async move { seen_through(store, &view).await }
    };
    for n in [1, 2, 8, 9, 11, 12] {
        let listed = &kids[..n];
        let mut want: Vec<String> = listed.to_vec();
        if n == 12 {
            want.push("shared".into());
        }
        want.sort();
        assert_eq!(seen_by(listed, None).await, want, "{n} children listed");
    }
    // k12 through the care team, k01 listed: the shared row is admitted by both.
    let hosp = caller(Some("hosp"), None, &[], NOW);
    assert_eq!(
        seen_by(&kids[..1], Some(hosp.clone())).await,
        ["k01", "k12", "shared"]
    );
    assert_eq!(
        seen_by(&kids[1..10], Some(hosp)).await,
        [
            "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k12"
        ]
    );
}

both_backends!(listed_children);
