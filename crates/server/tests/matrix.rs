//! The authorisation matrix (`access::matrix::MATRIX`) through the real HTTP API, on SQLite
//! and PostgreSQL, plus leak checks with canary resources.
//!
//! **Rows.** For each row, a fresh world is built over HTTP as the harness's regional
//! client (and through the store-backed directory helpers): the Organization of the row's
//! sector, the subject (staff: Practitioner + PractitionerRole + account; family: Person
//! linked to a RelatedPerson with the row's parental responsibility / court order / granted
//! sections; young person: an account whose token's `fhirUser` is their Patient; system:
//! a client of the organisation, by `client_credentials`), the child Patient (age band,
//! Gillick / capacity / looked-after extensions), the CareTeam, the Consent of the row's
//! sharing choices (`SharingChoices::to_consent`) and the resource with the row's section
//! tag and label. The facts come from the matrix's own helpers (`Case::child_facts`,
//! `Case::resource_json`), with its fixed ids replaced by the real ones; the expected answer
//! is the row's, never `decide`'s. User tokens come from `oauth::issue_authorization_code`
//! and the real PKCE code exchange at `/oauth/token`. Every row's request is also sent
//! without a token (401 + `WWW-Authenticate`), and every response is checked for canaries.
//!
//! **Canaries.** A child with no care team and no family holds a resource in every section
//! (and untagged) with every label (and none), each carrying a unique `CANARY-…` marker.
//! Representative subjects (each staff sector; staff and a school's system through their
//! organisation; a cleared clinician; break-glass; a parent, a foster carer with granted
//! sections, a parent under a court order; a young person) each get their own child, whose
//! Patient they see, with a hidden address and an item in every section and with every
//! label (those they may not see are secrets for them). Searches, includes, history,
//! totals, counts, `$everything`, compartment searches, reads, vreads, conditional writes,
//! bundles and error paths must never show a marker or a hidden id, totals must count only
//! what the subject sees, and a hidden resource must answer exactly as a nonexistent one
//! does.
//!
//! **Criteria oracles.** Canaries and items carry a value for every parameter type (token,
//! `:text`, string prefix / `:contains` / `:exact`, date, quantity, composite, reference,
//! uri). A criterion that only hidden data meets must answer (status, body, total, next
//! link, entries) exactly as one that nothing meets: on the item's type, through `_has` on
//! the child's Patient, through chains, as a count; sorted and paged one at a time, a
//! child's items come as the same search restricted to what the subject sees; a page of
//! history or `$everything` as long as what they see has no next page; criteria and sort
//! keys on a hidden address answer as if there were none. Positive controls (the regional
//! client) show each probe finds what it was planted for. Every canary and hidden item is
//! probed for every subject: every criterion of a few items (see [`oracle_checks`]), and
//! sampled criteria of the rest (a different one per subject), keep the run short.
//!
//! Rows that cannot be expressed over HTTP yet are skipped, counted and printed with the
//! reason. All failures are collected and reported together.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use access::matrix::{Case, Child, MATRIX, Rel, Sharing, Token, Who};
use access::{
    Action, Actor, CareTeamMember, FamilyLink, FamilyRole, LABEL_SYSTEM, Role, SECTION_SYSTEM,
    Sector, SecurityLabel,
};
use base64::Engine;
use common::{Backend, StatusCode, TestServer, Value, json};
use passport_server::authz::facts::{
    COURT_ORDER_EXTENSION, GILLICK_EXTENSION, GRANTED_EXTENSION, LACKS_CAPACITY_EXTENSION,
    LOOKED_AFTER_EXTENSION, PARENTAL_RESPONSIBILITY_EXTENSION,
};
use passport_server::oauth::{self, ClientSpec, CodeRequest};
use passport_server::web::directory::{self, LOGIN_SYSTEM, NewOrganisation, ROLE_SYSTEM};
use passport_store::accounts::{Account, AccountKind};
use reqwest::Method;
use sha2::Digest;

const REDIRECT: &str = "https://matrix.example/cb";
const VERIFIER: &str = "matrix-test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
/// Everything a user app may be granted in these tests.
const APP_SCOPE: &str =
    "openid fhirUser launch launch/patient offline_access user/*.cruds patient/*.cruds";
const CODE_SYSTEM: &str = "https://matrix.example/code";
const ID_SYSTEM: &str = "https://matrix.example/id";

/// Section codes, and `""` for untagged.
const SECTIONS: [&str; 12] = [
    "about-me",
    "communication",
    "what-matters",
    "conditions",
    "allergies",
    "medicines",
    "equipment",
    "contacts",
    "emergency",
    "education",
    "social-care",
    "",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let srv = common::spawn(Backend::Sqlite).await.expect("sqlite");
    run(srv, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(srv) = common::spawn(Backend::Postgres).await else {
        return;
    };
    run(srv, "PostgreSQL").await;
}

async fn run(srv: TestServer, backend: &str) {
    let started = Instant::now();
    let app = oauth::create_client(
        srv.state.domain.data(),
        ClientSpec {
            name: "matrix-app".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![REDIRECT.into()],
            public: true,
            scope: APP_SCOPE.into(),
            ..Default::default()
        },
    )
    .await
    .expect("app client")
    .client
    .client_id;
    let mut w = W {
        srv: &srv,
        app,
        year: time::OffsetDateTime::now_utc().year(),
        run: uuid::Uuid::new_v4().simple().to_string(),
        secrets: Vec::new(),
        failures: Vec::new(),
        grouped: BTreeMap::new(),
        requests: 0,
        oracle_time: std::time::Duration::ZERO,
    };

    // Canaries first, so that every row's response is checked against them too (and a
    // first page of any search holds them).
    let canaries = plant_canaries(&mut w).await;
    let planted = started.elapsed();

    let mut ran = 0usize;
    let mut refused_at_token = 0usize;
    let mut skipped: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for (i, case) in MATRIX.iter().enumerate() {
        if let Some(reason) = skip_reason(case) {
            skipped.entry(reason).or_default().push(i);
            continue;
        }
        match run_row(&mut w, i, case).await {
            Ok(RowRun::Ran) => ran += 1,
            Ok(RowRun::RefusedAtToken) => {
                ran += 1;
                refused_at_token += 1;
            }
            Err(e) => w.fail(format!(
                "row {i}: {}\n        setup failed: {e}",
                case.describe()
            )),
        }
    }
    let rows_done = started.elapsed();

    leak_checks(&mut w, &canaries).await;

    let n_skipped: usize = skipped.values().map(Vec::len).sum();
    println!(
        "\n== authorisation matrix over HTTP ({backend}) ==\n{} rows: {ran} run ({refused_at_token} of them denied by the authorisation server, which refused the token's scope), {n_skipped} skipped",
        MATRIX.len()
    );
    for (reason, rows) in &skipped {
        println!("  skipped {:>3}: {reason}", rows.len());
        for r in rows {
            println!("      row {r}: {}", MATRIX[*r].describe());
        }
    }
    println!(
        "canaries: {} resources of one child; {} secrets checked; {} requests in all\ntime: canaries {:.1?}, rows {:.1?}, leak checks {:.1?} (of which criteria oracles {:.1?}), total {:.1?}",
        canaries.resources.len(),
        w.secrets.len(),
        w.requests,
        planted,
        rows_done - planted,
        started.elapsed() - rows_done,
        w.oracle_time,
        started.elapsed()
    );
    for (first, more) in std::mem::take(&mut w.grouped).into_values() {
        w.failures.push(if more > 0 {
            format!("{first}\n        (and {more} more like it)")
        } else {
            first
        });
    }
    assert!(
        w.failures.is_empty(),
        "{} failure(s) on {backend}:\n{}",
        w.failures.len(),
        w.failures.join("\n")
    );
    srv.stop().await;
}

/// Why a row cannot run over HTTP yet (`None`: it runs).
fn skip_reason(case: &Case) -> Option<&'static str> {
    if !fhir::types::is_supported(type_of(case.resource)) {
        return Some(
            "the resource type is not one this server supports (fhir::types::SUPPORTED_TYPES)",
        );
    }
    if type_of(case.resource) == "AuditEvent" {
        return Some(
            "AuditEvent: the access log is the audit chain, not stored resources — a row's AuditEvent cannot be planted through the API (writes are 405) and there is no read by id; the search through the chain is tested in tests/authz.rs",
        );
    }
    if case.who == Who::CardLink {
        return Some(
            "a card link is a page, not an API caller (no token carries it): its rows are run through the card-link page in tests/emergency.rs",
        );
    }
    if case.action == Action::Aggregate {
        return Some("Action::Aggregate: no aggregate-figures endpoint (MeasureReport) yet");
    }
    if case.action == Action::Export {
        return Some("Action::Export: no export endpoint ($export / print / document) yet");
    }
    if case.rel == Rel::NoChild && case.resource == "Condition" {
        return Some(
            "a Condition of no child: Condition.subject is 1..1 in R4, so it cannot be stored",
        );
    }
    None
}

enum RowRun {
    Ran,
    /// The token was refused at the authorisation server (e.g. `system/` scopes for a
    /// person): the interaction is denied before it reaches the API.
    RefusedAtToken,
}

/// A captured HTTP response.
struct Resp {
    status: StatusCode,
    /// `name: value` of every header, one a line.
    headers: String,
    www_authenticate: Option<String>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn summary(&self) -> String {
        let mut b = self.body.clone();
        b.truncate(600);
        format!("{} {b}", self.status)
    }
}

/// The test's world on one server.
struct W<'a> {
    srv: &'a TestServer,
    /// The user app (public, PKCE).
    app: String,
    year: i32,
    run: String,
    /// Canary markers and ids of resources no tested subject may see.
    secrets: Vec<String>,
    failures: Vec<String>,
    /// Failures of one kind seen for many subjects and resources: the first of each, and
    /// how many more.
    grouped: BTreeMap<String, (String, usize)>,
    requests: usize,
    /// Time spent on the criteria oracles (part of the leak checks).
    oracle_time: std::time::Duration,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn challenge() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

impl W<'_> {
    fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }

    /// A failure reported once per `kind` (with a count of the others).
    fn fail_grouped(&mut self, kind: String, msg: String) {
        self.grouped
            .entry(kind)
            .and_modify(|(_, n)| *n += 1)
            .or_insert((msg, 0));
    }

    /// Sends a request with `token` (none: anonymous).
    async fn send(
        &mut self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.requests += 1;
        let mut req = self.srv.anonymous.request(method, self.srv.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n");
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let body = resp.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            www_authenticate,
            body,
        }
    }

    /// As the harness's regional client (every child, every label).
    async fn regional(&mut self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let token = self.srv.token.clone();
        self.send(Some(&token), method, path, body, &[]).await
    }

    /// Creates `resource` as the regional client; its id.
    async fn create(&mut self, resource: &Value) -> Result<String, String> {
        let ty = resource["resourceType"].as_str().unwrap_or("").to_owned();
        let r = self
            .regional(Method::POST, &format!("/fhir/{ty}"), Some(resource))
            .await;
        if r.status != StatusCode::CREATED {
            return Err(format!("creating {ty}: {}", r.summary()));
        }
        r.json()["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("creating {ty}: no id"))
    }

    /// Checks a response (to a request `sent`, path and body) for secrets it did not name.
    fn leak_check(&mut self, ctx: &str, sent: &str, r: &Resp) {
        let leaked: Vec<&String> = self
            .secrets
            .iter()
            .filter(|s| !sent.contains(s.as_str()))
            .filter(|s| r.body.contains(s.as_str()) || r.headers.contains(s.as_str()))
            .collect();
        if !leaked.is_empty() {
            let msg = format!("{ctx}: LEAK of {leaked:?} in {}", r.summary());
            // One report per kind of request, whichever subject and type showed it.
            let mut kind = ctx.split_once(": ").map_or(ctx, |(_, k)| k).to_owned();
            for s in &self.secrets {
                kind = kind.replace(s.as_str(), "<ID>");
            }
            for t in types_longest_first() {
                kind = kind.replace(t, "<T>");
            }
            self.fail_grouped(format!("leak {kind}"), msg);
        }
    }

    /// The same request without a token: 401 with `WWW-Authenticate: Bearer …`.
    async fn anonymous_check(
        &mut self,
        ctx: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) {
        let r = self.send(None, method, path, body, &[]).await;
        check_401(self, ctx, &r);
    }

    async fn organisation(&mut self, sector: Sector) -> Result<String, String> {
        self.organisation_for(None, sector).await
    }

    /// The organisation a member of staff with `role` works for: the region's own one for
    /// the regional roles (the only place they may be given, docs/SECURITY.md §3).
    async fn organisation_for(
        &mut self,
        role: Option<Role>,
        sector: Sector,
    ) -> Result<String, String> {
        let org = NewOrganisation {
            name: format!("{} {}", sector.code(), &new_id()[24..]),
            sector,
            ods: None,
            school_urn: None,
            region: "north".into(),
        };
        let store = &self.srv.state.domain;
        if matches!(role, Some(Role::RegionalAdmin | Role::Commissioner)) {
            directory::create_regional_organisation(
                store,
                &passport_server::records::Agent::operator("test fixture"),
                org,
            )
            .await
        } else {
            directory::create_organisation(
                store,
                &passport_server::records::Agent::operator("test fixture"),
                org,
            )
            .await
        }
        .map_err(|e| e.to_string())
    }

    /// A member of staff, as `directory::create_staff` makes one (Practitioner +
    /// PractitionerRole over the FHIR API, then the account) without the password hash that
    /// no test here signs in with. Returns (practitioner id, account id).
    async fn staff(
        &mut self,
        role: Role,
        org: &str,
        cleared: Vec<String>,
    ) -> Result<(String, String), String> {
        let login = format!("staff-{}@matrix.example", new_id());
        let practitioner = self
            .create(&json!({
                "resourceType": "Practitioner", "active": true,
                "identifier": [{"system": LOGIN_SYSTEM, "value": login}],
                "name": [{"text": "Matrix Staff", "family": "Staff"}],
            }))
            .await?;
        let practitioner_role = self
            .create(&json!({
                "resourceType": "PractitionerRole", "active": true,
                "practitioner": {"reference": format!("Practitioner/{practitioner}")},
                "organization": {"reference": format!("Organization/{org}")},
                "code": [{"coding": [{"system": ROLE_SYSTEM, "code": role.code()}]}],
            }))
            .await?;
        let account = Account {
            id: new_id(),
            login,
            kind: AccountKind::Staff,
            password_hash: "unused: signs in by token only".into(),
            totp_secret: None,
            role: Some(role.code().into()),
            organisation_id: Some(org.into()),
            practitioner_id: Some(practitioner.clone()),
            practitioner_role_id: Some(practitioner_role),
            person_id: None,
            display_name: "Matrix Staff".into(),
            active: true,
            created_us: passport_server::clock::now_us(),
            cleared,
        };
        self.account(&account).await?;
        Ok((practitioner, account.id))
    }

    /// A family sign-in: a Person linking `links` (references), and an account. Returns
    /// (person id, account id).
    async fn family(&mut self, links: &[String]) -> Result<(String, String), String> {
        let login = format!("family-{}@matrix.example", new_id());
        let mut person = json!({
            "resourceType": "Person", "active": true,
            "identifier": [{"system": LOGIN_SYSTEM, "value": login}],
            "name": [{"text": "Sam Matrix", "family": "Matrix", "given": ["Sam"]}],
        });
        if !links.is_empty() {
            person["link"] = links
                .iter()
                .map(|l| json!({"target": {"reference": l}}))
                .collect();
        }
        let person = self.create(&person).await?;
        let account = Account {
            id: new_id(),
            login,
            kind: AccountKind::Family,
            password_hash: "unused: signs in by token only".into(),
            totp_secret: None,
            role: None,
            organisation_id: None,
            practitioner_id: None,
            practitioner_role_id: None,
            person_id: Some(person.clone()),
            display_name: "Sam Matrix".into(),
            active: true,
            created_us: passport_server::clock::now_us(),
            cleared: Vec::new(),
        };
        self.account(&account).await?;
        Ok((person, account.id))
    }

    async fn account(&mut self, account: &Account) -> Result<(), String> {
        match self
            .srv
            .state
            .domain
            .data()
            .test_store()
            .create_account(account)
            .await
        {
            Ok(true) => Ok(()),
            other => Err(format!("account: {other:?}")),
        }
    }

    /// A RelatedPerson of `child` with the link's facts (DATA-MODEL.md, authz::facts).
    async fn related_person(&mut self, child: &str, link: &FamilyLink) -> Result<String, String> {
        let code = match link.role {
            FamilyRole::Parent => "MTH",
            FamilyRole::FosterCarer => "PRNFOST",
            FamilyRole::Other => "FAMMEMB",
        };
        let mut ext = vec![json!({
            "url": PARENTAL_RESPONSIBILITY_EXTENSION,
            "valueBoolean": link.parental_responsibility,
        })];
        if let Some(order) = link.court_order {
            if order == access::SectionSet::ALL {
                ext.push(json!({"url": COURT_ORDER_EXTENSION, "valueCode": "all"}));
            } else {
                for s in order.iter() {
                    ext.push(json!({"url": COURT_ORDER_EXTENSION, "valueCode": s.code()}));
                }
            }
        }
        for s in link.granted.iter() {
            ext.push(json!({"url": GRANTED_EXTENSION, "valueCode": s.code()}));
        }
        self.create(&json!({
            "resourceType": "RelatedPerson",
            "extension": ext,
            "active": true,
            "patient": {"reference": format!("Patient/{child}")},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code}]}],
            "name": [{"text": "Sam Matrix", "family": "Matrix", "given": ["Sam"]}],
        }))
        .await
    }

    /// A child of the age band, with its extensions; `meta` for a row about the Patient.
    fn patient(&self, band: Child, meta: Option<&Value>, marker: &str) -> Value {
        let age = match band {
            Child::Over16 | Child::Over16LacksCapacity => 17,
            _ => 12,
        };
        let mut ext = Vec::new();
        for (flag, url) in [
            (band == Child::Under16Gillick, GILLICK_EXTENSION),
            (band == Child::Over16LacksCapacity, LACKS_CAPACITY_EXTENSION),
            (band == Child::LookedAfter, LOOKED_AFTER_EXTENSION),
        ] {
            if flag {
                ext.push(json!({"url": url, "valueBoolean": true}));
            }
        }
        let mut p = json!({
            "resourceType": "Patient",
            "name": [{"text": format!("{marker} Child"), "family": "Child"}],
            "birthDate": format!("{}-01-01", self.year - age),
        });
        if !ext.is_empty() {
            p["extension"] = Value::Array(ext);
        }
        if let Some(m) = meta {
            p["meta"] = m.clone();
        }
        p
    }

    /// A user token: the code the authorise page would issue, exchanged with PKCE.
    async fn user_token(
        &mut self,
        account: &str,
        fhir_user: &str,
        scope: &str,
        patient: Option<&str>,
    ) -> Result<String, String> {
        let code = oauth::issue_authorization_code(
            &self.srv.state,
            &CodeRequest {
                client_id: self.app.clone(),
                redirect_uri: REDIRECT.into(),
                scope: scope.into(),
                code_challenge: challenge(),
                subject: account.into(),
                fhir_user: Some(fhir_user.into()),
                patient: patient.map(str::to_owned),
            },
        )
        .await
        .map_err(|e| format!("{} {}", e.error, e.description))?;
        self.requests += 1;
        let resp = self
            .srv
            .anonymous
            .post(self.srv.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", &self.app),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            return Err(format!("code exchange: {status} {body}"));
        }
        if body["patient"].as_str() != patient {
            return Err(format!("launch patient not in the token response: {body}"));
        }
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// A backend-services client (of `org`, or regional) and its secret.
    async fn system_client(
        &mut self,
        org: Option<&str>,
        regional: bool,
    ) -> Result<(String, String), String> {
        let created = oauth::create_client(
            self.srv.state.domain.data(),
            ClientSpec {
                name: "matrix-system".into(),
                grant_types: vec!["client_credentials".into()],
                scope: "system/*.cruds".into(),
                organisation_id: org.map(str::to_owned),
                regional,
                ..Default::default()
            },
        )
        .await?;
        Ok((
            created.client.client_id,
            created.client_secret.ok_or("no secret")?,
        ))
    }

    /// `client_credentials` with `client_secret_basic`.
    async fn system_token(
        &mut self,
        id: &str,
        secret: &str,
        scope: &str,
    ) -> Result<String, String> {
        self.requests += 1;
        let resp = self
            .srv
            .anonymous
            .post(self.srv.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            return Err(format!("client_credentials: {status} {body}"));
        }
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// The newest entry of a type's history, as the regional client sees it.
    async fn newest(&mut self, ty: &str) -> String {
        let r = self
            .regional(Method::GET, &format!("/fhir/{ty}/_history?_count=1"), None)
            .await;
        let v = r.json();
        format!(
            "{} {}",
            v["entry"][0]["fullUrl"], v["entry"][0]["resource"]["meta"]["versionId"]
        )
    }

    async fn version_of(&mut self, ty: &str, id: &str) -> String {
        let r = self
            .regional(Method::GET, &format!("/fhir/{ty}/{id}"), None)
            .await;
        format!("{} v{}", r.status, r.json()["meta"]["versionId"])
    }
}

fn check_401(w: &mut W<'_>, ctx: &str, r: &Resp) {
    if r.status != StatusCode::UNAUTHORIZED {
        w.fail(format!(
            "{ctx}: without a token: expected 401, got {}",
            r.summary()
        ));
    } else if !r
        .www_authenticate
        .as_deref()
        .is_some_and(|h| h.starts_with("Bearer"))
    {
        w.fail(format!(
            "{ctx}: a 401 without WWW-Authenticate: Bearer (got {:?})",
            r.www_authenticate
        ));
    } else if r.json()["resourceType"] != "OperationOutcome" {
        w.fail(format!(
            "{ctx}: a 401 without an OperationOutcome: {}",
            r.summary()
        ));
    }
}

/// Fills what R4 requires of each type the matrix uses (the row's own elements kept).
fn complete(r: &mut Value, marker: &str) {
    let ty = r["resourceType"].as_str().unwrap_or("").to_owned();
    let text = json!({"text": marker});
    match ty.as_str() {
        "Condition" | "AllergyIntolerance" => {
            r["code"] = text.clone();
            r["note"] = json!([{"text": marker}]);
        }
        "QuestionnaireResponse" => {
            r["status"] = json!("completed");
            r["item"] = json!([{"linkId": "1", "text": marker}]);
        }
        "CarePlan" => {
            r["status"] = json!("active");
            r["intent"] = json!("plan");
            r["description"] = json!(marker);
        }
        "MedicationStatement" => {
            if r.get("status").is_none() {
                r["status"] = json!("active");
            }
            r["medicationCodeableConcept"] = text.clone();
            r["note"] = json!([{"text": marker}]);
        }
        "MedicationRequest" => {
            if r.get("status").is_none() {
                r["status"] = json!("active");
            }
            r["intent"] = json!("order");
            r["medicationCodeableConcept"] = text.clone();
            r["note"] = json!([{"text": marker}]);
        }
        "Device" => r["note"] = json!([{"text": marker}]),
        "DeviceUseStatement" => {
            r["status"] = json!("active");
            r["device"] = json!({"display": marker});
            r["note"] = json!([{"text": marker}]);
        }
        "Observation" => {
            r["status"] = json!("final");
            if r.get("code").is_none() {
                r["code"] = text.clone();
            }
            r["note"] = json!([{"text": marker}]);
        }
        "RelatedPerson" => r["name"] = json!([{"text": marker}]),
        "Questionnaire" => {
            r["status"] = json!("active");
            r["title"] = json!(marker);
        }
        "Organization" => r["name"] = json!(marker),
        "Medication" => r["code"] = text.clone(),
        "Patient" => r["name"] = json!([{"text": marker}]),
        "Consent" => {
            let patient = r["patient"]["reference"]
                .as_str()
                .and_then(|p| p.strip_prefix("Patient/"))
                .unwrap_or("")
                .to_owned();
            let c = empty_consent(&patient);
            let meta = r["meta"].clone();
            *r = c;
            r["meta"] = meta;
        }
        _ => {}
    }
    if r["meta"].as_object().is_some_and(|m| m.is_empty()) {
        r.as_object_mut().unwrap().remove("meta");
    }
}

/// An active sharing Consent of `child` with no rules (the regional default stands).
/// `SharingChoices::to_consent` of no rules writes `provision.provision: []`, which is not
/// valid FHIR; a top-level provision without actors is ignored by the reader.
fn empty_consent(child: &str) -> Value {
    let mut c = access::SharingChoices::new().to_consent(
        child,
        &format!("Patient/{child}"),
        "2026-01-01T10:00:00Z",
    );
    c["provision"] = json!({"type": "permit"});
    c
}

/// The resource type and optional status of a row's `resource`.
fn type_of(resource: &str) -> &str {
    resource.split_once(':').map_or(resource, |(t, _)| t)
}

/// Builds one row's world, runs its interaction and checks the answer.
async fn run_row(w: &mut W<'_>, i: usize, case: &Case) -> Result<RowRun, String> {
    let ctx = format!("row {i}: {}", case.describe());
    let ty = type_of(case.resource);
    let facts = case.child_facts();
    let (role, sector) = match case.who {
        Who::Staff(r, s) | Who::Cleared(r, s, _) => (Some(r), s),
        Who::System(s) => (None, s),
        _ => (None, Sector::HospitalTrust),
    };
    let org = w.organisation_for(role, sector).await?;
    let other_org = match case.sharing {
        Sharing::OtherOrgPermits(_) => Some(w.organisation(sector).await?),
        _ => None,
    };
    let row_json = case.resource_json();
    let marker = format!("ROW-{i}-{}", w.run);

    // The child (for a row about the Patient itself, the child carries its tags).
    let patient_is_row = ty == "Patient" && case.rel != Rel::NoChild;
    let meta = patient_is_row.then(|| row_json["meta"].clone());
    let child = w
        .create(&w.patient(case.child, meta.as_ref(), &marker))
        .await?;
    let needs_other = case.rel == Rel::OtherChild || matches!(case.token, Token::OtherPatient(_));
    let other_child = if needs_other {
        Some(w.create(&w.patient(Child::Under16, None, &marker)).await?)
    } else {
        None
    };

    // The subject.
    enum Subj {
        User { account: String, fhir_user: String },
        System { id: String, secret: String },
        Anonymous,
    }
    let mut practitioner = None;
    let mut related_person = None;
    let mut own_patient = child.clone();
    let subject = match case.who {
        Who::Staff(role, _) | Who::Cleared(role, _, _) => {
            let cleared = match case.who {
                Who::Cleared(_, _, label) => vec![label.code().to_owned()],
                _ => Vec::new(),
            };
            let (p, account) = w.staff(role, &org, cleared).await?;
            practitioner = Some(p.clone());
            Subj::User {
                account,
                fhir_user: format!("Practitioner/{p}"),
            }
        }
        Who::Family => {
            let mut links = Vec::new();
            if let Some(link) = facts.as_ref().and_then(|f| f.family.first()) {
                let rp = w.related_person(&child, link).await?;
                links.push(format!("RelatedPerson/{rp}"));
                related_person = Some(rp);
            }
            if case.rel == Rel::OtherChild {
                let other = other_child.clone().expect("made above");
                let link = FamilyLink::new("", "", FamilyRole::Parent, true);
                let rp = w.related_person(&other, &link).await?;
                links.push(format!("RelatedPerson/{rp}"));
            }
            let (person, account) = w.family(&links).await?;
            Subj::User {
                account,
                fhir_user: format!("Person/{person}"),
            }
        }
        Who::YoungPerson => {
            if case.rel == Rel::OtherChild {
                own_patient = other_child.clone().expect("made above");
            }
            let (_, account) = w.family(&[format!("Patient/{own_patient}")]).await?;
            Subj::User {
                account,
                fhir_user: format!("Patient/{own_patient}"),
            }
        }
        Who::System(_) => {
            let (id, secret) = w.system_client(Some(&org), false).await?;
            Subj::System { id, secret }
        }
        Who::Regional => {
            let (id, secret) = w.system_client(None, true).await?;
            Subj::System { id, secret }
        }
        Who::Anonymous => Subj::Anonymous,
        Who::CardLink => unreachable!("skipped"),
    };

    // Break-glass, as the /break-glass page stores it: an hour ago for four hours, or
    // (expired) five hours ago.
    if matches!(case.rel, Rel::BreakGlass | Rel::BreakGlassExpired) {
        let hour = 3_600_000_000i64;
        let now = passport_server::clock::now_us();
        let starts = if case.rel == Rel::BreakGlass {
            now - hour
        } else {
            now - 5 * hour
        };
        let account = match &subject {
            Subj::User { account, .. } => account.clone(),
            _ => return Err("break-glass rows are for staff".into()),
        };
        w.srv
            .state
            .domain
            .data()
            .test_store()
            .create_break_glass(&passport_store::break_glass::BreakGlassRow {
                id: new_id(),
                patient_id: child.clone(),
                practitioner_id: practitioner.clone().unwrap_or_default(),
                account_id: account,
                organisation_id: org.clone(),
                reason: "Unconscious in A&E".into(),
                starts_us: starts,
                expires_us: starts + 4 * hour,
                reviewed_us: None,
                reviewed_by: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        w.srv.state.domain.facts.forget(&child);
    }

    // Care team and sharing choices, from the row's facts with the real ids.
    if let Some(f) = &facts {
        let members: Vec<Value> = f
            .care_team
            .iter()
            .map(|m| match m {
                CareTeamMember::Practitioner(_) => json!({"member": {"reference": format!(
                    "Practitioner/{}", practitioner.clone().unwrap_or_default())}}),
                CareTeamMember::Organisation(_) => {
                    json!({"member": {"reference": format!("Organization/{org}")}})
                }
            })
            .collect();
        if !members.is_empty() {
            w.create(&json!({
                "resourceType": "CareTeam", "status": "active",
                "subject": {"reference": format!("Patient/{child}")},
                "participant": members,
            }))
            .await?;
        }
        if !f.sharing.rules.is_empty() {
            let mut choices = f.sharing.clone();
            for rule in &mut choices.rules {
                rule.actor = match &rule.actor {
                    Actor::Organisation(o) if o == "org-1" => Actor::Organisation(org.clone()),
                    Actor::Organisation(_) => {
                        Actor::Organisation(other_org.clone().ok_or("no other organisation")?)
                    }
                    Actor::RelatedPerson(_) => Actor::RelatedPerson(
                        related_person
                            .clone()
                            .ok_or("no RelatedPerson for the choice")?,
                    ),
                    a => a.clone(),
                };
            }
            let performer = match &related_person {
                Some(rp) => format!("RelatedPerson/{rp}"),
                None => format!("Patient/{child}"),
            };
            w.create(&choices.to_consent(&child, &performer, "2026-01-01T10:00:00Z"))
                .await?;
        }
    }

    // The row's resource, with the real child.
    let mut resource: Value = serde_json::from_str(
        &row_json
            .to_string()
            .replace("Patient/child-1", &format!("Patient/{child}")),
    )
    .expect("JSON");
    resource.as_object_mut().unwrap().remove("id");
    complete(&mut resource, &marker);
    let id = if patient_is_row {
        Some(child.clone())
    } else if ty == "AuditEvent" {
        // AuditEvents are written by the server only. They live in the hash-chained audit log, never among the resources a row
        // could name by id (and the API has no read of one by id).
        return Err("AuditEvents are kept in the audit chain, not as resources with ids".into());
    } else if case.action == Action::Create {
        None
    } else {
        Some(w.create(&resource).await?)
    };

    // The token.
    let (scope, launch) = match case.token {
        Token::Session => match case.who {
            Who::YoungPerson => ("patient/*.cruds", Some(own_patient.clone())),
            Who::System(_) | Who::Regional => ("system/*.cruds", None),
            _ => ("user/*.cruds", None),
        },
        Token::Scopes(s) => (s, s.contains("patient/").then(|| child.clone())),
        Token::OtherPatient(s) => (s, other_child.clone()),
    };
    let token = match &subject {
        Subj::User { account, fhir_user } => w
            .user_token(account, fhir_user, scope, launch.as_deref())
            .await
            .map(Some),
        Subj::System { id, secret } => w.system_token(id, secret, scope).await.map(Some),
        Subj::Anonymous => Ok(None),
    };
    let token = match token {
        Ok(t) => t,
        Err(refusal) => {
            if case.expect.allow {
                w.fail(format!("{ctx}\n        the token was refused: {refusal}"));
            }
            return Ok(RowRun::RefusedAtToken);
        }
    };

    // The interaction.
    let path_id = id.clone().unwrap_or_default();
    let (method, path, body) = match case.action {
        Action::Read => (Method::GET, format!("/fhir/{ty}/{path_id}"), None),
        Action::Search => (Method::GET, format!("/fhir/{ty}?_id={path_id}"), None),
        Action::History => (Method::GET, format!("/fhir/{ty}/{path_id}/_history"), None),
        Action::Create => (Method::POST, format!("/fhir/{ty}"), Some(resource.clone())),
        Action::Update => {
            let mut changed = resource.clone();
            changed["id"] = json!(path_id);
            changed["language"] = json!("en-GB");
            (Method::PUT, format!("/fhir/{ty}/{path_id}"), Some(changed))
        }
        Action::Delete => (Method::DELETE, format!("/fhir/{ty}/{path_id}"), None),
        Action::Export | Action::Aggregate => unreachable!("skipped"),
    };
    let before = match case.action {
        Action::Create => Some(w.newest(ty).await),
        Action::Update | Action::Delete => Some(w.version_of(ty, &path_id).await),
        _ => None,
    };
    let r = w
        .send(token.as_deref(), method.clone(), &path, body.as_ref(), &[])
        .await;
    let sent = format!(
        "{path} {}",
        body.as_ref().map(Value::to_string).unwrap_or_default()
    );
    w.leak_check(&ctx, &sent, &r);
    w.anonymous_check(&ctx, method, &path, body.as_ref()).await;

    let Some(_) = token else {
        // An anonymous row: the API answers 401 before anything else.
        if case.expect.allow {
            w.fail(format!("{ctx}\n        an anonymous row cannot be allowed"));
        }
        check_401(w, &ctx, &r);
        return Ok(RowRun::Ran);
    };
    let expect = case.expect;
    let v = r.json();
    // A read, history or search of a type the token's scopes do not cover at all (granular
    // scopes count as covering their type) is refused as such: 403 insufficient_scope, not
    // the 404 or empty searchset of a hidden resource (issue 9).
    let mut scopes = access::Scopes::parse(scope).expect("the row's scopes parse");
    if let Some(p) = &launch {
        scopes = scopes.with_patient(p.clone());
    }
    let uncovered = matches!(case.action, Action::Read | Action::Search | Action::History)
        && !scopes.covers(ty, case.action, matches!(subject, Subj::System { .. }));
    let problem: Option<String> = match (case.action, expect.allow) {
        _ if uncovered => (expect.allow
            || r.status != StatusCode::FORBIDDEN
            || v["resourceType"] != "OperationOutcome"
            || !r
                .www_authenticate
                .as_deref()
                .is_some_and(|h| h.contains(r#"error="insufficient_scope""#)))
        .then(|| "expected 403 insufficient_scope (the scopes do not cover the type)".into()),
        (Action::Read, true) => (r.status != StatusCode::OK || v["id"] != json!(path_id))
            .then(|| "expected 200 with the resource".into()),
        (Action::Read, false) | (Action::History, false) => {
            if r.status != StatusCode::NOT_FOUND || v["resourceType"] != "OperationOutcome" {
                Some("expected 404 with an OperationOutcome".into())
            } else {
                let said: Vec<&str> = [
                    expect.reason.code(),
                    expect.reason.message(),
                    child.as_str(),
                    case.section,
                    case.label,
                ]
                .into_iter()
                .filter(|s| !s.is_empty() && r.body.contains(*s))
                .collect();
                (!said.is_empty()).then(|| format!("the 404 mentions {said:?}"))
            }
        }
        (Action::Search, allow) => {
            let found = v["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["resource"]["id"] == json!(path_id));
            if r.status != StatusCode::OK || v["type"] != "searchset" {
                Some("expected a searchset".into())
            } else if allow && !found {
                Some("expected the resource in the searchset".into())
            } else if !allow && (found || v["total"] != json!(0)) {
                Some("expected a searchset without it, total 0".into())
            } else {
                None
            }
        }
        (Action::History, true) => (r.status != StatusCode::OK
            || v["entry"].as_array().is_none_or(Vec::is_empty))
        .then(|| "expected 200 with history entries".into()),
        (Action::Create, true) => (r.status != StatusCode::CREATED).then(|| "expected 201".into()),
        (Action::Update | Action::Delete, true) => {
            (r.status != StatusCode::OK).then(|| "expected 200".into())
        }
        (Action::Create | Action::Update | Action::Delete, false) => {
            // AuditEvents are never written through the API (405 before any decision).
            let refused = matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)
                || ty == "AuditEvent" && r.status == StatusCode::METHOD_NOT_ALLOWED;
            if !refused {
                Some("expected 403 or 404".into())
            } else {
                let after = match case.action {
                    Action::Create => w.newest(ty).await,
                    _ => w.version_of(ty, &path_id).await,
                };
                (before.as_deref() != Some(after.as_str())).then(|| {
                    format!("the refused write changed what is stored: {before:?} → {after:?}")
                })
            }
        }
        (Action::Export | Action::Aggregate, _) => None,
    };
    if let Some(p) = problem {
        w.fail(format!("{ctx}\n        {p}; got {}", r.summary()));
    }
    Ok(RowRun::Ran)
}

// ---------------------------------------------------------------------------------------
// Canaries

struct Canaries {
    child: String,
    /// (type, id) of every canary resource.
    resources: Vec<(String, String)>,
    /// The code every canary Observation carries.
    shared_code: String,
    /// The identifier value of one canary Observation.
    identifier: String,
    /// Every canary but the Consent, with the criteria that find it.
    probed: Vec<Probed>,
    /// Chained criteria (on the type given) that only the canary child meets.
    chains: Vec<(String, Probe)>,
}

fn canary_type(section: &str) -> &'static str {
    match section {
        "about-me" | "what-matters" | "education" => "QuestionnaireResponse",
        "communication" | "" => "Observation",
        "conditions" => "Condition",
        "allergies" => "AllergyIntolerance",
        "medicines" => "MedicationStatement",
        "equipment" => "Device",
        "contacts" => "RelatedPerson",
        _ => "CarePlan",
    }
}

/// A resource of `ty` in `section` with `label` about `child`, carrying `marker`.
fn item(ty: &str, child: &str, section: &str, label: &str, marker: &str) -> Value {
    let mut r = json!({"resourceType": ty, "meta": {}});
    if !section.is_empty() {
        r["meta"]["tag"] = json!([{"system": SECTION_SYSTEM, "code": section}]);
    }
    if !label.is_empty() {
        r["meta"]["security"] = json!([{"system": LABEL_SYSTEM, "code": label}]);
    }
    let reference = json!({"reference": format!("Patient/{child}")});
    match ty {
        "RelatedPerson" | "AllergyIntolerance" | "Device" => r["patient"] = reference,
        _ => r["subject"] = reference,
    }
    complete(&mut r, marker);
    r
}

async fn plant_canaries(w: &mut W<'_>) -> Canaries {
    let marker = || format!("CANARY-{}", uuid::Uuid::new_v4());
    let child_marker = marker();
    let child_identifier = marker();
    let mut p = w.patient(Child::Under16, None, &child_marker);
    p["identifier"] = json!([{"system": ID_SYSTEM, "value": child_identifier}]);
    let child = w.create(&p).await.expect("canary child");
    w.secrets.push(child_marker.clone());
    w.secrets.push(child_identifier.clone());
    w.secrets.push(child.clone());
    let shared_code = format!("shared-{}", w.run);
    let identifier = format!("CANARY-ID-{}", w.run);
    let mut resources = Vec::new();
    let mut probed = Vec::new();
    let labels = std::iter::once("").chain(SecurityLabel::ALL.iter().map(|l| l.code()));
    let mut k = 0;
    for label in labels {
        for section in SECTIONS {
            let ty = canary_type(section);
            let m = marker();
            let (mut r, mut probes) = probed_item(ty, &child, section, label, &m, k, CANARY_VALUES);
            k += 1;
            if ty == "Observation" {
                r["code"]["coding"]
                    .as_array_mut()
                    .expect("coded")
                    .insert(0, json!({"system": CODE_SYSTEM, "code": shared_code}));
                if resources
                    .iter()
                    .all(|(t, _): &(String, String)| t != "Observation")
                {
                    r["identifier"]
                        .as_array_mut()
                        .expect("identified")
                        .push(json!({"system": ID_SYSTEM, "value": identifier}));
                }
            }
            let id = w.create(&r).await.expect("canary");
            // Every canary belongs to a child nobody tested relates to.
            probes.push(probe(
                child_ref(ty),
                format!("Patient/{child}"),
                format!("Patient/{}", new_id()),
            ));
            probes.push(probe("_id", id.clone(), new_id()));
            w.secrets.push(m.clone());
            w.secrets.push(id.clone());
            resources.push((ty.to_owned(), id.clone()));
            probed.push(Probed {
                ty: ty.to_owned(),
                id,
                marker: m,
                label: label.to_owned(),
                probes,
            });
        }
    }
    // The child's (empty) sharing choices, too.
    let c = empty_consent(&child);
    let id = w.create(&c).await.expect("canary consent");
    w.secrets.push(id.clone());
    resources.push(("Consent".into(), id));
    w.secrets.push(identifier.clone());
    // Chains that reach the canary child (its name, identifier, id, and its Conditions).
    let miss = marker();
    let condition = probed
        .iter()
        .find(|p| p.ty == "Condition")
        .expect("a canary Condition");
    let chains = vec![
        (
            "Observation".to_owned(),
            probe("subject:Patient.name", prefix(&child_marker), prefix(&miss)),
        ),
        (
            "CarePlan".to_owned(),
            probe(
                "subject:Patient.name:contains",
                middle(&child_marker),
                middle(&miss),
            ),
        ),
        (
            "Condition".to_owned(),
            probe(
                "subject.identifier",
                format!("{ID_SYSTEM}|{child_identifier}"),
                format!("{ID_SYSTEM}|{miss}"),
            ),
        ),
        (
            "AllergyIntolerance".to_owned(),
            probe("patient:Patient._id", child.clone(), new_id()),
        ),
        (
            "Observation".to_owned(),
            probe(
                "subject:Patient._has:Condition:subject:code:text",
                prefix(&condition.marker),
                prefix(&miss),
            ),
        ),
    ];
    Canaries {
        child,
        resources,
        shared_code,
        identifier,
        probed,
        chains,
    }
}

/// How a representative relates to their own child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Their Practitioner is in the child's care team.
    CareTeam,
    /// Their organisation is in the care team (staff, or a backend client of it).
    CareTeamOrg,
    /// No relationship: an active break-glass grant.
    BreakGlass,
    /// A parent with parental responsibility (with a second child), or the young person's
    /// own account.
    Own,
    /// A foster carer of a looked-after child, granted about me and emergency.
    FosterGranted,
    /// A parent with parental responsibility under a court order withholding education.
    CourtOrderEducation,
}

/// A representative subject for the leak checks.
struct Rep {
    name: String,
    token: String,
    own_child: String,
    /// A second child they relate to (a parent's), with an address they may see.
    sibling: Option<String>,
    /// Their child's items with a value for every parameter type (see [`oracle_items`]).
    items: Vec<Probed>,
    /// Ids of the items a CarePlan they see refers to (`CarePlan.addresses`).
    referenced: Vec<String>,
    /// Their child's address, hidden outside the care team.
    address: HiddenAddress,
}

/// The values of an address (each part starts with the same letter, so that sorting by
/// any part puts it before or after another's).
#[derive(Clone)]
struct Addr {
    line: String,
    city: String,
    postcode: String,
}

impl Addr {
    fn new(first: char) -> Addr {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Addr {
            line: format!("{first}line {}", &hex[..6]),
            city: format!("{first}city{}", &hex[6..16]),
            postcode: format!("{first}P{}", &hex[16..22]),
        }
    }
    fn json(&self) -> Value {
        json!([{"use": "home", "line": [self.line], "city": self.city, "postalCode": self.postcode}])
    }
    fn secrets(&self) -> [String; 3] {
        [self.line.clone(), self.city.clone(), self.postcode.clone()]
    }
}

/// A representative's child's hidden address, and their contact's (a RelatedPerson item).
struct HiddenAddress {
    child: Addr,
    contact: Addr,
}

/// Section tags every related subject sees (about me; emergency for break-glass).
fn rep_child_meta() -> Value {
    json!({"tag": [
        {"system": SECTION_SYSTEM, "code": "about-me"},
        {"system": SECTION_SYSTEM, "code": "emergency"},
    ]})
}

async fn representative(w: &mut W<'_>, kind: Who, via: Via, crowd_code: Option<&str>) -> Rep {
    let srv = w.srv;
    let store = &srv.state.domain;
    let band = match (kind, via) {
        (Who::YoungPerson, _) => Child::Over16,
        (_, Via::FosterGranted) => Child::LookedAfter,
        _ => Child::Under16,
    };
    // The child: tagged so that everyone related sees the Patient, with a hidden address.
    let address = HiddenAddress {
        child: Addr::new('A'),
        contact: Addr::new('A'),
    };
    let mut p = w.patient(band, Some(&rep_child_meta()), "Rep");
    let mut ext = p["extension"].as_array().cloned().unwrap_or_default();
    ext.push(json!({"url": access::ADDRESS_HIDDEN_EXTENSION, "valueBoolean": true}));
    p["extension"] = Value::Array(ext);
    p["address"] = address.child.json();
    let child = w.create(&p).await.expect("rep child");
    let mut sibling = None;
    let name = match via {
        Via::CareTeam => format!("{kind:?} in the care team"),
        Via::CareTeamOrg => format!("{kind:?} of an organisation in the care team"),
        Via::BreakGlass => format!("{kind:?} by break-glass"),
        Via::Own => format!("{kind:?}"),
        Via::FosterGranted => format!("{kind:?} (foster carer, granted about me + emergency)"),
        Via::CourtOrderEducation => format!("{kind:?} (court order withholding education)"),
    };
    let login = format!("rep-{}@matrix.example", new_id());
    let password = "correct horse battery staple".to_owned();
    let token = match kind {
        Who::Staff(role, sector) | Who::Cleared(role, sector, _) => {
            let org = w.organisation_for(Some(role), sector).await.expect("org");
            let created = directory::create_staff(
                store,
                &passport_server::records::Agent::operator("test fixture"),
                directory::NewStaff {
                    organisation: org.clone(),
                    role,
                    email: login.clone(),
                    name: "Rep Staff".into(),
                    password,
                },
            )
            .await
            .expect("staff");
            if let Who::Cleared(_, _, label) = kind {
                store
                    .data()
                    .set_account_cleared(&created.account_id, &[label.code().to_owned()])
                    .await
                    .expect("cleared");
            }
            let account = store
                .data()
                .account(&created.account_id)
                .await
                .unwrap()
                .unwrap();
            let practitioner = account.practitioner_id.clone().unwrap();
            let member = match via {
                Via::CareTeamOrg => Some(format!("Organization/{org}")),
                Via::BreakGlass => None,
                _ => Some(format!("Practitioner/{practitioner}")),
            };
            if let Some(member) = member {
                w.create(&json!({"resourceType": "CareTeam", "status": "active",
                    "subject": {"reference": format!("Patient/{child}")},
                    "participant": [{"member": {"reference": member}}]}))
                    .await
                    .expect("care team");
            } else {
                // As the /break-glass page stores it: from an hour ago, for four hours.
                let hour = 3_600_000_000i64;
                let starts = passport_server::clock::now_us() - hour;
                store
                    .data()
                    .test_store()
                    .create_break_glass(&passport_store::break_glass::BreakGlassRow {
                        id: new_id(),
                        patient_id: child.clone(),
                        practitioner_id: practitioner.clone(),
                        account_id: created.account_id.clone(),
                        organisation_id: org.clone(),
                        reason: "Unconscious in A&E".into(),
                        starts_us: starts,
                        expires_us: starts + 4 * hour,
                        reviewed_us: None,
                        reviewed_by: None,
                    })
                    .await
                    .expect("break-glass");
                srv.state.domain.facts.forget(&child);
            }
            w.user_token(
                &created.account_id,
                &format!("Practitioner/{practitioner}"),
                "user/*.cruds",
                None,
            )
            .await
            .expect("token")
        }
        Who::Family => {
            let mut links = Vec::new();
            if via == Via::FosterGranted {
                let mut link = FamilyLink::new("", "", FamilyRole::FosterCarer, false);
                link.granted =
                    access::SectionSet::of(&[access::Section::AboutMe, access::Section::Emergency]);
                links.push(w.related_person(&child, &link).await.expect("rp"));
            } else if via == Via::CourtOrderEducation {
                let mut link = FamilyLink::new("", "", FamilyRole::Parent, true);
                link.court_order = Some(access::SectionSet::of(&[access::Section::Education]));
                links.push(w.related_person(&child, &link).await.expect("rp"));
            } else {
                let link = FamilyLink::new("", "", FamilyRole::Parent, true);
                links.push(w.related_person(&child, &link).await.expect("rp"));
                // A second child, whose address is not hidden (sorted beside the first).
                let mut s = w.patient(Child::Under16, Some(&rep_child_meta()), "Rep sibling");
                s["address"] = Addr::new('M').json();
                let s = w.create(&s).await.expect("sibling");
                links.push(w.related_person(&s, &link).await.expect("rp"));
                sibling = Some(s);
            }
            let created = directory::create_family(
                store,
                &passport_server::records::Agent::operator("test fixture"),
                directory::NewFamily {
                    email: login.clone(),
                    name: "Rep Parent".into(),
                    password,
                },
            )
            .await
            .expect("family");
            let account = store
                .data()
                .account(&created.account_id)
                .await
                .unwrap()
                .unwrap();
            let person = account.person_id.clone().unwrap();
            // Link the Person to the children's RelatedPersons (DATA-MODEL.md).
            let mut p = w
                .regional(Method::GET, &format!("/fhir/Person/{person}"), None)
                .await
                .json();
            p["link"] = links
                .iter()
                .map(|rp| json!({"target": {"reference": format!("RelatedPerson/{rp}")}}))
                .collect();
            let r = w
                .regional(Method::PUT, &format!("/fhir/Person/{person}"), Some(&p))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.summary());
            w.user_token(
                &created.account_id,
                &format!("Person/{person}"),
                "user/*.cruds",
                None,
            )
            .await
            .expect("token")
        }
        Who::YoungPerson => {
            let (_, account) = w.family(&[format!("Patient/{child}")]).await.expect("yp");
            w.user_token(
                &account,
                &format!("Patient/{child}"),
                "patient/*.cruds",
                Some(&child),
            )
            .await
            .expect("token")
        }
        Who::System(sector) => {
            let org = w.organisation(sector).await.expect("org");
            w.create(&json!({"resourceType": "CareTeam", "status": "active",
                "subject": {"reference": format!("Patient/{child}")},
                "participant": [{"member": {"reference": format!("Organization/{org}")}}]}))
                .await
                .expect("care team");
            let (id, secret) = w.system_client(Some(&org), false).await.expect("client");
            w.system_token(&id, &secret, "system/*.cruds")
                .await
                .expect("token")
        }
        _ => unreachable!(),
    };
    // Items with a value for every parameter type, in every section and with every label.
    let items = oracle_items(w, &child, &address.contact).await;
    // Their own child's items: one everyone related sees (which refers to the child's
    // Conditions), one untagged (health and social care), and one hidden from every one
    // of them (safeguarding: nobody is cleared).
    let referenced: Vec<String> = items
        .iter()
        .filter(|i| i.ty == "Condition")
        .map(|i| i.id.clone())
        .collect();
    let mut plan = item("CarePlan", &child, "emergency", "", "Rep emergency plan");
    plan["addresses"] = referenced
        .iter()
        .map(|id| json!({"reference": format!("Condition/{id}")}))
        .collect();
    w.create(&plan).await.expect("own item");
    let mut obs = item("Observation", &child, "", "", "Rep observation");
    if let Some(code) = crowd_code {
        obs["code"] = json!({"coding": [{"system": CODE_SYSTEM, "code": code}]});
    }
    w.create(&obs).await.expect("own observation");
    let hidden = format!("HIDDEN-{}", uuid::Uuid::new_v4());
    let id = w
        .create(&item(
            "CarePlan",
            &child,
            "emergency",
            "safeguarding",
            &hidden,
        ))
        .await
        .expect("hidden item");
    w.secrets.push(hidden);
    w.secrets.push(id);
    Rep {
        name,
        token,
        own_child: child,
        sibling,
        items,
        referenced,
        address,
    }
}

/// The supported resource types, longest name first (so that `RelatedPerson` is replaced
/// before `Person`).
fn types_longest_first() -> Vec<&'static str> {
    let mut t = fhir::types::SUPPORTED_TYPES.to_vec();
    t.sort_by_key(|t| std::cmp::Reverse(t.len()));
    t
}

/// Replaces `ids` by a placeholder and drops what differs between any two responses
/// (timestamps, ids of bundles) so that answers can be compared.
fn normalised(body: &str, ids: &[&str]) -> String {
    let mut b = body.to_owned();
    for id in ids {
        b = b.replace(id, "<ID>");
    }
    let mut v: Value = match serde_json::from_str(&b) {
        Ok(v) => v,
        Err(_) => return b,
    };
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "id",
                    "lastUpdated",
                    "timestamp",
                    "fullUrl",
                    "location",
                    "etag",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v.to_string()
}

async fn leak_checks(w: &mut W<'_>, c: &Canaries) {
    let kinds = [
        (
            Who::Staff(Role::Clinician, Sector::HospitalTrust),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::Clinician, Sector::GpPractice),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::Nurse, Sector::CommunityHealth),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::SocialWorker, Sector::SocialCare),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::SchoolStaff, Sector::Education),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::LeisureStaff, Sector::Leisure),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::Clinician, Sector::EmergencyServices),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::Commissioner, Sector::CommunityHealth),
            Via::CareTeam,
        ),
        (Who::Family, Via::Own),
        (Who::YoungPerson, Via::Own),
        (Who::System(Sector::HospitalTrust), Via::CareTeamOrg),
        // The probe's school system client in the child's care team.
        (Who::System(Sector::Education), Via::CareTeamOrg),
        (
            Who::Staff(Role::SchoolStaff, Sector::Education),
            Via::CareTeamOrg,
        ),
        (
            Who::Cleared(
                Role::Clinician,
                Sector::HospitalTrust,
                SecurityLabel::MentalHealth,
            ),
            Via::CareTeam,
        ),
        (
            Who::Staff(Role::AlliedHealthProfessional, Sector::EmergencyServices),
            Via::BreakGlass,
        ),
        (Who::Family, Via::FosterGranted),
        (Who::Family, Via::CourtOrderEducation),
    ];
    let mut reps = Vec::new();
    for (n, (kind, via)) in kinds.into_iter().enumerate() {
        // The first (a hospital clinician) shares the canaries' Observation code.
        let crowd = (n == 0).then_some(c.shared_code.as_str());
        reps.push(representative(w, kind, via, crowd).await);
    }
    // The probes find what they are meant to (else every comparison below would pass
    // however the server answered).
    let started = Instant::now();
    positive_controls(w, c, &reps).await;
    w.oracle_time += started.elapsed();
    for (n, rep) in reps.iter().enumerate() {
        // What of their own child's record this subject may not see is a secret too, for
        // every check of theirs.
        let hidden = hidden_items(w, rep).await;
        let sees_address = sees_address(w, rep).await;
        let before = w.secrets.len();
        for i in &hidden {
            w.secrets.push(i.marker.clone());
            if !rep.referenced.contains(&i.id) {
                w.secrets.push(i.id.clone());
            }
        }
        if !sees_address {
            w.secrets.extend(rep.address.child.secrets());
            w.secrets.extend(rep.address.contact.secrets());
        }
        leak_checks_for(w, c, rep, n == 0).await;
        let started = Instant::now();
        oracle_checks(w, c, rep, &hidden, sees_address, n).await;
        w.oracle_time += started.elapsed();
        w.secrets.truncate(before);
    }
}

async fn leak_checks_for(w: &mut W<'_>, c: &Canaries, rep: &Rep, crowd: bool) {
    let t = Some(rep.token.as_str());
    let who = rep.name.clone();
    let nobody = new_id();
    let get = |p: &str| (Method::GET, p.to_owned());

    // Searches of every type: no canary, and totals / counts as many as are shown.
    let types = [
        "Observation",
        "Condition",
        "CarePlan",
        "QuestionnaireResponse",
        "AllergyIntolerance",
        "MedicationStatement",
        "Device",
        "RelatedPerson",
        "Patient",
        "Consent",
        "CareTeam",
        "AuditEvent",
        "Person",
    ];
    for ty in types {
        let plain = w
            .send(
                t,
                Method::GET,
                &format!("/fhir/{ty}?_count=1000"),
                None,
                &[],
            )
            .await;
        let ctx = format!("{who}: GET {ty}");
        w.leak_check(&ctx, "", &plain);
        if plain.status != StatusCode::OK {
            w.fail(format!("{ctx}: {}", plain.summary()));
            continue;
        }
        let shown = plain.json()["entry"].as_array().map_or(0, |e| {
            e.iter().filter(|e| e["search"]["mode"] == "match").count()
        });
        for q in ["_total=accurate", "_summary=count"] {
            let r = w
                .send(t, Method::GET, &format!("/fhir/{ty}?{q}"), None, &[])
                .await;
            let ctx = format!("{who}: GET {ty}?{q}");
            w.leak_check(&ctx, "", &r);
            if r.json()["total"] != json!(shown) {
                w.fail(format!(
                    "{ctx}: total {} but {shown} shown: {}",
                    r.json()["total"],
                    r.summary()
                ));
            }
        }
        let r = w
            .send(
                t,
                Method::GET,
                &format!("/fhir/{ty}/_history?_count=1000"),
                None,
                &[],
            )
            .await;
        w.leak_check(&format!("{who}: {ty}/_history"), "", &r);
        // One at a time: the next-page link must not carry a hidden match's position.
        let r = w
            .send(t, Method::GET, &format!("/fhir/{ty}?_count=1"), None, &[])
            .await;
        w.leak_check(&format!("{who}: {ty}?_count=1"), "", &r);
    }

    // Includes, system history, searches naming canaries, everything.
    let own = rep.own_child.clone();
    let requests = vec![
        get("/fhir/Observation?_include=Observation:subject"),
        get("/fhir/Observation?_include=Observation:patient&_total=accurate"),
        get("/fhir/Patient?_revinclude=Observation:subject"),
        get(
            "/fhir/Patient?_revinclude=CarePlan:subject&_revinclude=Condition:subject&_revinclude=RelatedPerson:patient",
        ),
        get("/fhir/CarePlan?_include=CarePlan:subject&_revinclude:iterate=Observation:subject"),
        get("/fhir/_history?_count=1000"),
        get("/fhir/_history?_count=1"),
        get(&format!(
            "/fhir/Observation?code={CODE_SYSTEM}|{}&_total=accurate",
            c.shared_code
        )),
        get(&format!(
            "/fhir/Observation?identifier={ID_SYSTEM}|{}",
            c.identifier
        )),
        get("/fhir/Patient?name=CANARY&_total=accurate"),
        get("/fhir/Observation?subject:Patient.name=CANARY&_total=accurate"),
        get(&format!("/fhir/Patient/{own}/$everything")),
        get(&format!("/fhir/Patient/{own}/$everything?_count=1")),
        get(&format!("/fhir/Patient/{own}/CarePlan?_count=1")),
        get(&format!(
            "/fhir/Observation?subject=Patient/{}&_sort=bogus",
            c.child
        )),
        get(&format!(
            "/fhir/Observation?subject=Patient/{}&_count=abc",
            c.child
        )),
    ];
    for (method, path) in requests {
        let r = w.send(t, method, &path, None, &[]).await;
        w.leak_check(&format!("{who}: GET {path}"), &path, &r);
        let v = r.json();
        // Only the first rep's own Observation shares the canaries' code.
        let total_zero_expected = path.contains("CANARY")
            || path.contains(&c.identifier)
            || (path.contains(&c.shared_code) && !crowd);
        if total_zero_expected
            && v["resourceType"] == "Bundle"
            && v["total"].is_number()
            && v["total"] != json!(0)
        {
            w.fail(format!(
                "{who}: GET {path}: expected total 0: {}",
                r.summary()
            ));
        }
    }
    // Strict handling of an unknown parameter naming a canary.
    let path = format!("/fhir/Observation?subject=Patient/{}&bogus=1", c.child);
    let r = w
        .send(
            t,
            Method::GET,
            &path,
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    w.leak_check(&format!("{who}: strict {path}"), &path, &r);

    // Hidden and nonexistent answer alike: the canary child ...
    let pairs = [
        ("Patient/{}/$everything", "everything"),
        ("Patient/{}/Observation", "compartment"),
        ("Patient/{}", "read"),
        ("Patient/{}/_history", "history"),
        ("Patient/{}/_history/1", "vread"),
    ];
    for (template, what) in pairs {
        let hidden = format!("/fhir/{}", template.replace("{}", &c.child));
        let missing = format!("/fhir/{}", template.replace("{}", &nobody));
        same_answer(w, t, &who, what, &hidden, &missing, &[&c.child, &nobody]).await;
    }
    // ... and each canary resource.
    for (k, (ty, id)) in c.resources.iter().enumerate() {
        let hidden = format!("/fhir/{ty}/{id}");
        let missing = format!("/fhir/{ty}/{nobody}");
        same_answer(w, t, &who, "read", &hidden, &missing, &[id, &nobody]).await;
        if k % 6 == 0 {
            for suffix in ["/_history", "/_history/1", "/_history/2", "/_history/x"] {
                same_answer(
                    w,
                    t,
                    &who,
                    "history/vread",
                    &format!("{hidden}{suffix}"),
                    &format!("{missing}{suffix}"),
                    &[id, &nobody],
                )
                .await;
            }
            let (h, m) = (
                w.send(t, Method::DELETE, &hidden, None, &[]).await,
                w.send(t, Method::DELETE, &missing, None, &[]).await,
            );
            compare(w, &who, "delete", &hidden, &h, &m, &[id, &nobody]);
            let patch = json!([{"op": "add", "path": "/language", "value": "en"}]);
            let send_patch = |path: String| {
                let mut req = w
                    .srv
                    .anonymous
                    .patch(w.srv.url(&path))
                    .header("content-type", "application/json-patch+json")
                    .body(patch.to_string());
                req = req.bearer_auth(&rep.token);
                req
            };
            let (h, m) = (
                capture(send_patch(hidden.clone())).await,
                capture(send_patch(missing.clone())).await,
            );
            w.requests += 2;
            compare(w, &who, "patch", &hidden, &h, &m, &[id, &nobody]);
        }
    }

    // Conditional writes whose criteria match only canaries answer as for no match.
    let body = |child: &str| {
        let mut o = item("Observation", child, "about-me", "", "Rep conditional");
        o["code"] = json!({"text": "conditional"});
        o
    };
    let own_body = body(&own);
    let hidden = format!("/fhir/Observation?subject=Patient/{}", c.child);
    let missing = format!("/fhir/Observation?subject=Patient/{nobody}");
    let h = w.send(t, Method::PUT, &hidden, Some(&own_body), &[]).await;
    let m = w.send(t, Method::PUT, &missing, Some(&own_body), &[]).await;
    compare(
        w,
        &who,
        "conditional update",
        &hidden,
        &h,
        &m,
        &[&c.child, &nobody],
    );
    let h = w.send(t, Method::DELETE, &hidden, None, &[]).await;
    let m = w.send(t, Method::DELETE, &missing, None, &[]).await;
    compare(
        w,
        &who,
        "conditional delete",
        &hidden,
        &h,
        &m,
        &[&c.child, &nobody],
    );
    let cond = format!("identifier={ID_SYSTEM}|{}", c.identifier);
    let control = format!("identifier={ID_SYSTEM}|nobody-{nobody}");
    let h = w
        .send(
            t,
            Method::POST,
            "/fhir/Observation",
            Some(&own_body),
            &[("if-none-exist", &cond)],
        )
        .await;
    let m = w
        .send(
            t,
            Method::POST,
            "/fhir/Observation",
            Some(&own_body),
            &[("if-none-exist", &control)],
        )
        .await;
    compare(
        w,
        &who,
        "If-None-Exist",
        &cond,
        &h,
        &m,
        &[&c.identifier, &format!("nobody-{nobody}")],
    );

    // Bundles reading canaries answer entry by entry as for nonexistent ones.
    for kind in ["batch", "transaction"] {
        let bundle = |child: &str, obs: &str| {
            json!({"resourceType": "Bundle", "type": kind, "entry": [
                {"request": {"method": "GET", "url": format!("Patient/{child}")}},
                {"request": {"method": "GET", "url": format!("Observation/{obs}")}},
                {"request": {"method": "GET", "url": format!("Observation?subject=Patient/{child}")}},
                {"request": {"method": "GET", "url": format!("Observation/{obs}/_history")}},
            ]})
        };
        let obs = &c.resources[1].1;
        let hb = bundle(&c.child, obs);
        let mb = bundle(&nobody, &nobody);
        let h = w.send(t, Method::POST, "/fhir", Some(&hb), &[]).await;
        let m = w.send(t, Method::POST, "/fhir", Some(&mb), &[]).await;
        w.leak_check(&format!("{who}: {kind}"), &hb.to_string(), &h);
        let statuses = |r: &Resp| -> Vec<Value> {
            r.json()["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["response"]["status"].clone())
                .collect()
        };
        if h.status != m.status || statuses(&h) != statuses(&m) {
            w.fail(format!(
                "{who}: {kind} of canaries answers differently from one of nonexistent ids:\n        canaries: {}\n        nobody:   {}",
                h.summary(),
                m.summary()
            ));
        }
    }

    // Canaries are still there, unchanged, whatever was tried.
    for (ty, id) in c.resources.iter().step_by(6) {
        let v = w.version_of(ty, id).await;
        if v != "200 OK v\"1\"" {
            w.fail(format!("{who}: canary {ty}/{id} was changed: {v}"));
        }
    }

    // Matches hidden from the caller must not crowd out the one they may see: the
    // conditional update names the canaries' code, which the rep's own Observation has too.
    if crowd {
        let mut o = item("Observation", &own, "", "", "Rep observation");
        o["code"] = json!({"coding": [{"system": CODE_SYSTEM, "code": c.shared_code}]});
        o["language"] = json!("en-GB");
        let path = format!("/fhir/Observation?code={CODE_SYSTEM}|{}", c.shared_code);
        let r = w.send(t, Method::PUT, &path, Some(&o), &[]).await;
        w.leak_check(&format!("{who}: crowded conditional update"), &path, &r);
        if r.status != StatusCode::OK {
            w.fail(format!(
                "{who}: PUT {path}: the caller sees one match (their own Observation), so the conditional update must update it (200); got {} — matches hidden from the caller were counted against the match limit",
                r.summary()
            ));
        }
    }
}

async fn capture(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n");
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    Resp {
        status,
        headers,
        www_authenticate,
        body: resp.text().await.unwrap_or_default(),
    }
}

/// GETs `hidden` and `missing` and requires the same answer.
async fn same_answer(
    w: &mut W<'_>,
    t: Option<&str>,
    who: &str,
    what: &str,
    hidden: &str,
    missing: &str,
    ids: &[&str],
) {
    let h = w.send(t, Method::GET, hidden, None, &[]).await;
    let m = w.send(t, Method::GET, missing, None, &[]).await;
    compare(w, who, what, hidden, &h, &m, ids);
}

/// The answer about something hidden (`h`) must be the answer about nothing (`m`): same
/// status, same body once the ids are set aside, and no secret the request did not name.
fn compare(w: &mut W<'_>, who: &str, what: &str, sent: &str, h: &Resp, m: &Resp, ids: &[&str]) {
    let ctx = format!("{who}: {what} {sent}");
    w.leak_check(&ctx, sent, h);
    // One report per kind of difference, whichever subject and type showed it.
    let kind = |b: &str| {
        let mut b = normalised(b, ids);
        for t in types_longest_first() {
            b = b.replace(&format!("{t}/<ID>"), "<REF>");
        }
        b
    };
    let kind = if h.status == m.status {
        format!("{what} {} {} {}", h.status, kind(&h.body), kind(&m.body))
    } else {
        format!("{what} {} {}", h.status, m.status)
    };
    if h.status != m.status {
        w.fail_grouped(kind, format!(
            "{ctx}: status {} for a hidden resource but {} for a nonexistent one\n        hidden:  {}\n        missing: {}",
            h.status,
            m.status,
            h.summary(),
            m.summary()
        ));
    } else if normalised(&h.body, ids) != normalised(&m.body, ids) {
        w.fail_grouped(kind, format!(
            "{ctx}: the body for a hidden resource differs from that for a nonexistent one\n        hidden:  {}\n        missing: {}",
            h.summary(),
            m.summary()
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Criteria oracles: a criterion that only hidden data meets must answer exactly as one
// that nothing meets (status, body, total, next link, entries), through every parameter
// type, `_has`, chains, sorting, paging, totals, history and `$everything`.

/// `&_count=1&_total=accurate`: one page shows the total, the entries and whether there
/// is a next page.
const PAGE: &str = "&_count=1&_total=accurate";
const COUNT: &str = "&_summary=count";
const UCUM: &str = "http://unitsofmeasure.org";
/// Item types that between them carry every parameter type (token, `:text`, string prefix /
/// `:contains` / `:exact`, date, quantity, composite, reference, uri).
const FULL_TYPES: [&str; 3] = ["Observation", "Condition", "Device"];
/// The types of the planted items, and a parameter of each to sort by.
const ORACLE_TYPES: [(&str, &str); 8] = [
    ("Observation", "date"),
    ("Condition", "recorded-date"),
    ("AllergyIntolerance", "date"),
    ("MedicationStatement", "effective"),
    ("CarePlan", "date"),
    ("QuestionnaireResponse", "authored"),
    ("Device", "device-name"),
    ("RelatedPerson", "name"),
];

/// One criterion on a planted resource: `param=hit` finds it (and, in its scope, nothing
/// else); `param=miss` finds nothing at all.
#[derive(Debug, Clone)]
struct Probe {
    param: String,
    hit: String,
    miss: String,
}

fn probe(param: &str, hit: impl Into<String>, miss: impl Into<String>) -> Probe {
    Probe {
        param: param.to_owned(),
        hit: hit.into(),
        miss: miss.into(),
    }
}

/// A planted resource and the criteria that find it.
#[derive(Debug, Clone)]
struct Probed {
    ty: String,
    id: String,
    marker: String,
    /// Its security label (`""`: none).
    label: String,
    probes: Vec<Probe>,
}

/// Where planted values fall: dates from 1 January of `year`, numbers from `base`, and
/// whether range criteria (`lt`) are probed too (the canaries: every one is hidden from
/// every representative, so a range over them all meets only hidden data).
#[derive(Clone, Copy)]
struct Values {
    year: i32,
    base: i64,
    ranges: bool,
}

const CANARY_VALUES: Values = Values {
    year: 2080,
    base: 1000,
    ranges: true,
};
const ORACLE_VALUES: Values = Values {
    year: 2090,
    base: 5000,
    ranges: false,
};

/// The first 20 characters of a marker (`CANARY-`/`ORACLE-` and part of a UUID): what a
/// prefix guess would be.
fn prefix(marker: &str) -> String {
    marker[..20].to_owned()
}

/// A piece from the middle of a marker: what a `:contains` guess would be.
fn middle(marker: &str) -> String {
    marker[10..24].to_owned()
}

/// The reference parameter by which a resource of `ty` belongs to its child.
fn child_ref(ty: &str) -> &'static str {
    match ty {
        "RelatedPerson" | "AllergyIntolerance" | "Device" => "patient",
        _ => "subject",
    }
}

/// `yyyy-mm-dd`, `days` after 1 January of `year`.
fn day(year: i32, days: i64) -> String {
    let d = time::Date::from_calendar_date(year, time::Month::January, 1).expect("a date")
        + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// [`item`] with a value for each parameter type its type is searched by (token, `:text`,
/// string prefix / `:contains` / `:exact`, date, quantity, composite, reference, uri), each
/// unique to it (`k`: its index), and the criteria that find it.
fn probed_item(
    ty: &str,
    child: &str,
    section: &str,
    label: &str,
    marker: &str,
    k: i64,
    v: Values,
) -> (Value, Vec<Probe>) {
    let mut r = item(ty, child, section, label, marker);
    let head = &marker[..7];
    let miss = format!("{head}{}", uuid::Uuid::new_v4());
    let date = day(v.year, k);
    let miss_date = day(v.year - 40, k);
    let num = v.base + k;
    let miss_num = 900_000 + k;
    let coded = json!({"coding": [{"system": CODE_SYSTEM, "code": marker}], "text": marker});
    let identifier = json!({"system": ID_SYSTEM, "value": marker});
    let someone = || format!("Practitioner/{}", new_id());
    let mut p = vec![probe(
        "identifier",
        format!("{ID_SYSTEM}|{marker}"),
        format!("{ID_SYSTEM}|{miss}"),
    )];
    let token = |param: &str| {
        probe(
            param,
            format!("{CODE_SYSTEM}|{marker}"),
            format!("{CODE_SYSTEM}|{miss}"),
        )
    };
    let text = |param: &str| probe(&format!("{param}:text"), prefix(marker), prefix(&miss));
    let on = |param: &str| probe(param, date.clone(), miss_date.clone());
    let range = |param: &str| {
        probe(
            param,
            format!("lt{}-01-01", v.year + 1),
            format!("lt{}-01-01", v.year - 40),
        )
    };
    let reference = |param: &str, to: String| probe(param, to, someone());
    match ty {
        "Observation" => {
            let who = someone();
            r["code"] = coded;
            r["valueQuantity"] = json!({"value": num, "unit": "mg", "system": UCUM, "code": "mg"});
            r["effectiveDateTime"] = json!(date);
            r["performer"] = json!([{"reference": who}]);
            p.extend([
                token("code"),
                text("code"),
                probe("value-quantity", num.to_string(), miss_num.to_string()),
                probe(
                    "value-quantity",
                    format!("{num}|{UCUM}|mg"),
                    format!("{miss_num}|{UCUM}|mg"),
                ),
                probe(
                    "code-value-quantity",
                    format!("{CODE_SYSTEM}|{marker}${num}"),
                    format!("{CODE_SYSTEM}|{miss}${num}"),
                ),
                on("date"),
                reference("performer", who),
            ]);
            if v.ranges {
                p.push(range("date"));
                p.push(probe(
                    "value-quantity",
                    format!("lt{}", v.base + 1000),
                    "lt0",
                ));
            }
        }
        "Condition" => {
            let who = someone();
            r["code"] = coded;
            r["onsetString"] = json!(marker);
            r["recordedDate"] = json!(date);
            r["abatementAge"] = json!({"value": num, "unit": "a", "system": UCUM, "code": "a"});
            r["clinicalStatus"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "resolved"}]});
            r["asserter"] = json!({"reference": who});
            p.extend([
                token("code"),
                text("code"),
                probe("onset-info", prefix(marker), prefix(&miss)),
                probe("onset-info:contains", middle(marker), middle(&miss)),
                probe("onset-info:exact", marker, miss.clone()),
                on("recorded-date"),
                probe("abatement-age", num.to_string(), miss_num.to_string()),
                reference("asserter", who),
            ]);
            if v.ranges {
                p.push(range("recorded-date"));
            }
        }
        "AllergyIntolerance" => {
            let who = someone();
            r["code"] = coded;
            r["recordedDate"] = json!(date);
            r["asserter"] = json!({"reference": who});
            p.extend([
                token("code"),
                text("code"),
                on("date"),
                reference("asserter", who),
            ]);
        }
        "MedicationStatement" => {
            let who = someone();
            r["medicationCodeableConcept"] = coded;
            r["effectiveDateTime"] = json!(date);
            r["informationSource"] = json!({"reference": who});
            p.extend([
                token("code"),
                text("code"),
                on("effective"),
                reference("source", who),
            ]);
        }
        "Device" => {
            let owner = format!("Organization/{}", new_id());
            r["deviceName"] = json!([{"name": marker, "type": "user-friendly-name"}]);
            r["manufacturer"] = json!(marker);
            r["url"] = json!(format!("https://matrix.example/device/{marker}"));
            r["type"] = json!({"text": marker});
            r["owner"] = json!({"reference": owner});
            p.extend([
                probe("device-name", prefix(marker), prefix(&miss)),
                probe("device-name:contains", middle(marker), middle(&miss)),
                probe("manufacturer:exact", marker, miss.clone()),
                probe(
                    "url",
                    format!("https://matrix.example/device/{marker}"),
                    format!("https://matrix.example/device/{miss}"),
                ),
                text("type"),
                probe("organization", owner, format!("Organization/{}", new_id())),
            ]);
        }
        "RelatedPerson" => {
            r["name"] = json!([{"text": marker, "family": marker}]);
            r["birthDate"] = json!(date);
            p.extend([
                probe("name", prefix(marker), prefix(&miss)),
                probe("name:contains", middle(marker), middle(&miss)),
                probe("name:exact", marker, miss.clone()),
                on("birthdate"),
            ]);
            if v.ranges {
                p.push(range("birthdate"));
            }
        }
        "CarePlan" => {
            let team = format!("CareTeam/{}", new_id());
            r["category"] = json!([coded]);
            r["period"] = json!({"start": date, "end": date});
            r["instantiatesUri"] = json!([format!("https://matrix.example/plan/{marker}")]);
            r["careTeam"] = json!([{"reference": team}]);
            p.extend([
                token("category"),
                text("category"),
                on("date"),
                probe(
                    "instantiates-uri",
                    format!("https://matrix.example/plan/{marker}"),
                    format!("https://matrix.example/plan/{miss}"),
                ),
                probe("care-team", team, format!("CareTeam/{}", new_id())),
            ]);
        }
        "QuestionnaireResponse" => {
            let who = someone();
            r["authored"] = json!(date);
            r["author"] = json!({"reference": who});
            p.extend([on("authored"), reference("author", who)]);
            if v.ranges {
                p.push(range("authored"));
            }
        }
        _ => unreachable!("{ty} is not an item type"),
    }
    r["identifier"] = if ty == "QuestionnaireResponse" {
        identifier
    } else {
        json!([identifier])
    };
    (r, p)
}

/// A representative's child's items: one in each section (and untagged), a stopped
/// medicine (break-glass opens only current ones), and one with each label (in the
/// emergency section, which every related subject sees), each with [`probed_item`]'s
/// values. The contact (a RelatedPerson) has `contact` as its address.
async fn oracle_items(w: &mut W<'_>, child: &str, contact: &Addr) -> Vec<Probed> {
    let mut specs: Vec<(&str, &str, &str)> =
        SECTIONS.iter().map(|s| (canary_type(s), *s, "")).collect();
    let stopped = specs.len();
    specs.push(("MedicationStatement", "medicines", ""));
    let labelled = [
        "Condition",
        "Observation",
        "MedicationStatement",
        "AllergyIntolerance",
        "Device",
    ];
    for (label, ty) in SecurityLabel::ALL.iter().zip(labelled) {
        specs.push((ty, "emergency", label.code()));
    }
    let mut out = Vec::new();
    for (k, (ty, section, label)) in specs.into_iter().enumerate() {
        let m = format!("ORACLE-{}", uuid::Uuid::new_v4());
        let (mut r, mut probes) =
            probed_item(ty, child, section, label, &m, k as i64, ORACLE_VALUES);
        if k == stopped {
            r["status"] = json!("stopped");
        }
        if ty == "RelatedPerson" {
            r["address"] = contact.json();
        }
        let id = w.create(&r).await.expect("oracle item");
        probes.push(probe("_id", id.clone(), new_id()));
        out.push(Probed {
            ty: ty.to_owned(),
            id,
            marker: m,
            label: label.to_owned(),
            probes,
        });
    }
    out
}

/// The representative's own items they may not see (read by id: 404).
async fn hidden_items<'r>(w: &mut W<'_>, rep: &'r Rep) -> Vec<&'r Probed> {
    let mut hidden = Vec::new();
    for i in &rep.items {
        let r = w
            .send(
                Some(&rep.token),
                Method::GET,
                &format!("/fhir/{}/{}", i.ty, i.id),
                None,
                &[],
            )
            .await;
        match r.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => hidden.push(i),
            _ => w.fail(format!(
                "{}: read of their child's {}/{}: {}",
                rep.name,
                i.ty,
                i.id,
                r.summary()
            )),
        }
    }
    // Nobody tested is cleared for safeguarding.
    if !hidden.iter().any(|i| i.label == "safeguarding") {
        w.fail(format!(
            "{}: every item of their child is visible, even the safeguarding one",
            rep.name
        ));
    }
    hidden
}

/// Does the representative see their child's (hidden) address?
async fn sees_address(w: &mut W<'_>, rep: &Rep) -> bool {
    let r = w
        .send(
            Some(&rep.token),
            Method::GET,
            &format!("/fhir/Patient/{}", rep.own_child),
            None,
            &[],
        )
        .await;
    r.status == StatusCode::OK && r.body.contains(&rep.address.child.postcode)
}

/// (what, path finding the item, path finding nothing) for a criterion on a canary: on its
/// own type, and (`has`) through `_has` on the canary child.
fn canary_paths(c: &Canaries, i: &Probed, p: &Probe, has: bool) -> Vec<(String, String, String)> {
    let ty = &i.ty;
    let mut out = vec![(
        format!("{ty}?{} (a child they have no relationship with)", p.param),
        format!("/fhir/{ty}?{}={}", p.param, p.hit),
        format!("/fhir/{ty}?{}={}", p.param, p.miss),
    )];
    if has {
        let has = format!("_has:{ty}:{}:{}", child_ref(ty), p.param);
        out.push((
            format!("Patient?{has} (a child they have no relationship with)"),
            format!("/fhir/Patient?_id={}&{has}={}", c.child, p.hit),
            format!("/fhir/Patient?_id={}&{has}={}", c.child, p.miss),
        ));
    }
    out
}

/// (what, hit path, miss path) for a criterion on an item of the representative's own
/// child: on its own type (with the child as a criterion too), and through `_has` on the
/// child's Patient (which they see).
fn own_paths(rep: &Rep, i: &Probed, p: &Probe) -> Vec<(String, String, String)> {
    let (ty, own) = (&i.ty, &rep.own_child);
    let has = format!("_has:{ty}:{}:{}", child_ref(ty), p.param);
    vec![
        (
            format!(
                "{ty}?patient=<their child>&{} (an item of their child)",
                p.param
            ),
            format!("/fhir/{ty}?patient=Patient/{own}&{}={}", p.param, p.hit),
            format!("/fhir/{ty}?patient=Patient/{own}&{}={}", p.param, p.miss),
        ),
        (
            format!("Patient?_id=<their child>&{has}"),
            format!("/fhir/Patient?_id={own}&{has}={}", p.hit),
            format!("/fhir/Patient?_id={own}&{has}={}", p.miss),
        ),
    ]
}

/// Chains from a CarePlan they see (about their child, referring to the child's
/// Conditions) to an item of their child: through the Patient and `_has` (with the item's
/// `j`-th criterion), and, for a Condition, `condition:Condition.<param>` (every one).
fn own_chain_paths(rep: &Rep, i: &Probed, j: usize) -> Vec<(String, String, String)> {
    let (ty, own) = (&i.ty, &rep.own_child);
    let plans = format!("/fhir/CarePlan?patient=Patient/{own}");
    let p = &i.probes[j % i.probes.len()];
    let chain = format!("subject:Patient._has:{ty}:{}:{}", child_ref(ty), p.param);
    let mut out = vec![(
        format!("CarePlan?{chain}"),
        format!("{plans}&{chain}={}", p.hit),
        format!("{plans}&{chain}={}", p.miss),
    )];
    if ty == "Condition" && rep.referenced.contains(&i.id) {
        for p in &i.probes {
            let chain = format!("condition:Condition.{}", p.param);
            out.push((
                format!("CarePlan?{chain}"),
                format!("{plans}&{chain}={}", p.hit),
                format!("{plans}&{chain}={}", p.miss),
            ));
        }
    }
    out
}

/// (what, hit path, miss path) for criteria on the child's hidden address (and their
/// contact's), directly, through `_has` and through a chain.
fn address_paths(rep: &Rep) -> Vec<(String, String, String)> {
    let own = &rep.own_child;
    let (a, c) = (&rep.address.child, &rep.address.contact);
    let (ma, mc) = (Addr::new('A'), Addr::new('A'));
    let patient = format!("/fhir/Patient?_id={own}");
    let pair = |what: &str, base: &str, param: &str, hit: &str, miss: &str| {
        (
            format!("{what}{param}"),
            format!("{base}&{param}={hit}"),
            format!("{base}&{param}={miss}"),
        )
    };
    vec![
        pair(
            "Patient?_id=<child>&",
            &patient,
            "address-postalcode",
            &a.postcode,
            &ma.postcode,
        ),
        pair(
            "Patient?_id=<child>&",
            &patient,
            "address",
            &a.city[..8],
            &ma.city[..8],
        ),
        pair(
            "Patient?_id=<child>&",
            &patient,
            "address:contains",
            &a.city[3..12],
            &ma.city[3..12],
        ),
        pair(
            "Patient?_id=<child>&",
            &patient,
            "address-city:exact",
            &a.city,
            &ma.city,
        ),
        pair(
            "Patient?_id=<child>&",
            &patient,
            "address-use",
            "home",
            "temp",
        ),
        (
            "Patient?_id=<child>&address:missing=false".into(),
            format!("{patient}&address:missing=false"),
            format!("{patient}&address-postalcode={}", ma.postcode),
        ),
        pair(
            "RelatedPerson?patient=<child>&",
            &format!("/fhir/RelatedPerson?patient=Patient/{own}"),
            "address-postalcode",
            &c.postcode,
            &mc.postcode,
        ),
        pair(
            "RelatedPerson?patient=<child>&",
            &format!("/fhir/RelatedPerson?patient=Patient/{own}"),
            "address:contains",
            &c.city[3..12],
            &mc.city[3..12],
        ),
        pair(
            "Patient?_id=<child>&",
            &patient,
            "_has:RelatedPerson:patient:address-city",
            &c.city,
            &mc.city,
        ),
        pair(
            "CarePlan?patient=<child>&",
            &format!("/fhir/CarePlan?patient=Patient/{own}"),
            "subject:Patient.address-postalcode",
            &a.postcode,
            &ma.postcode,
        ),
    ]
}

/// Every probe finds what it was planted for when asked by the regional client (which
/// sees everything), so a comparison of a hidden match with no match tests something.
async fn positive_controls(w: &mut W<'_>, c: &Canaries, reps: &[Rep]) {
    // Probes are made per type by the same code for every item: every criterion of the
    // first canary and the first item of the first subject's child of each type, on the
    // type and through `_has`; one of each other; every chain; the first subject's and the
    // parent's hidden addresses.
    let mut paths = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in &c.probed {
        if seen.insert(i.ty.clone()) {
            for p in &i.probes {
                paths.extend(canary_paths(c, i, p, true));
            }
        } else {
            paths.extend(canary_paths(c, i, &i.probes[0], false));
        }
    }
    for (ty, p) in &c.chains {
        paths.push((
            format!("{ty}?{}", p.param),
            format!("/fhir/{ty}?{}={}", p.param, p.hit),
            String::new(),
        ));
    }
    let rep = &reps[0];
    let mut seen = std::collections::HashSet::new();
    for i in &rep.items {
        if seen.insert(i.ty.clone()) {
            for p in &i.probes {
                paths.extend(own_paths(rep, i, p));
            }
            paths.extend(own_chain_paths(rep, i, 0));
        } else {
            paths.extend(own_paths(rep, i, &i.probes[0]));
            paths.extend(own_chain_paths(rep, i, 0).into_iter().take(1));
        }
    }
    for rep in reps
        .iter()
        .filter(|r| r.sibling.is_some())
        .chain(&reps[..1])
    {
        paths.extend(
            address_paths(rep)
                .into_iter()
                .filter(|(what, _, _)| !what.contains(":missing")),
        );
    }
    for (what, hit, _) in paths {
        let r = w.regional(Method::GET, &format!("{hit}{PAGE}"), None).await;
        if r.status != StatusCode::OK || r.json()["total"].as_u64().unwrap_or(0) == 0 {
            w.fail_grouped(
                format!("positive control {what}"),
                format!(
                    "positive control: {what}: GET {hit} must find the planted resource for the regional client: {}",
                    r.summary()
                ),
            );
        }
    }
}

/// What decides whether two answers differ.
#[derive(Debug, PartialEq)]
struct Shape {
    status: u16,
    total: Value,
    next: bool,
    entries: usize,
}

fn shape(r: &Resp) -> Shape {
    let v = r.json();
    Shape {
        status: r.status.as_u16(),
        total: v["total"].clone(),
        next: next_link(&v).is_some(),
        entries: v["entry"].as_array().map_or(0, Vec::len),
    }
}

fn next_link(v: &Value) -> Option<String> {
    v["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// Ids of a bundle's matches, in order.
fn match_ids(v: &Value) -> Vec<String> {
    v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "include" && e["search"]["mode"] != "outcome")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect()
}

/// The body without its links' URLs (which repeat the criteria), as [`normalised`].
fn without_links(body: &str) -> String {
    let mut v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => return body.to_owned(),
    };
    if let Some(links) = v["link"].as_array_mut() {
        for l in links.iter_mut().filter_map(Value::as_object_mut) {
            l.remove("url");
        }
    }
    normalised(&v.to_string(), &[])
}

/// GETs `hit + suffix` (a criterion only hidden data meets) and `miss + suffix` (one
/// nothing meets): the same status and body, and nothing found.
#[allow(clippy::too_many_arguments)]
async fn oracle_pair(
    w: &mut W<'_>,
    t: Option<&str>,
    who: &str,
    what: &str,
    hit: &str,
    miss: &str,
    suffix: &str,
) {
    let (hit, miss) = (format!("{hit}{suffix}"), format!("{miss}{suffix}"));
    let h = w.send(t, Method::GET, &hit, None, &[]).await;
    let m = w.send(t, Method::GET, &miss, None, &[]).await;
    let ctx = format!("{who}: GET {hit}");
    w.leak_check(&ctx, &hit, &h);
    let (hs, ms) = (shape(&h), shape(&m));
    let nothing = hs.status != 200 || (hs.total == json!(0) && !hs.next && hs.entries == 0);
    if hs != ms || without_links(&h.body) != without_links(&m.body) || !nothing {
        w.fail_grouped(
            format!("oracle {what}{suffix} {hs:?} {ms:?}"),
            format!(
                "{ctx}\n        a criterion only hidden data meets answers {hs:?}, one nothing meets {ms:?}\n        hidden:  {}\n        nothing: {}",
                h.summary(),
                m.summary()
            ),
        );
    }
}

/// A search followed page by page: (ids, has a next link) per page, the first page's
/// total, and any status other than 200.
#[derive(Debug, PartialEq)]
struct Walk {
    pages: Vec<(Vec<String>, bool)>,
    total: Value,
    status: Option<u16>,
}

async fn walk(w: &mut W<'_>, t: Option<&str>, who: &str, first: &str) -> Walk {
    let mut out = Walk {
        pages: Vec::new(),
        total: Value::Null,
        status: None,
    };
    let mut path = first.to_owned();
    for n in 0..20 {
        let r = w.send(t, Method::GET, &path, None, &[]).await;
        w.leak_check(&format!("{who}: GET {first} (page {n})"), first, &r);
        if r.status != StatusCode::OK {
            out.status = Some(r.status.as_u16());
            break;
        }
        let v = r.json();
        if n == 0 {
            out.total = v["total"].clone();
        }
        let next = next_link(&v);
        out.pages.push((match_ids(&v), next.is_some()));
        match next {
            Some(url) => path = url.strip_prefix(&w.srv.base).unwrap_or(&url).to_owned(),
            None => break,
        }
    }
    out
}

async fn oracle_checks(
    w: &mut W<'_>,
    c: &Canaries,
    rep: &Rep,
    hidden: &[&Probed],
    sees_address: bool,
    n: usize,
) {
    let token = rep.token.clone();
    let t = Some(token.as_str());
    let who = rep.name.clone();

    // The canaries (a child they have no relationship with): every criterion of the
    // first canary of one type (a different type for each subject, so that every type's
    // every criterion is tried by two subjects), one criterion (a different one for each
    // subject) of every other canary, and one of each type through `_has` on the child.
    let full = ORACLE_TYPES[n % ORACLE_TYPES.len()].0;
    let mut seen = std::collections::HashSet::new();
    for (k, i) in c.probed.iter().enumerate() {
        let first = seen.insert(i.ty.clone());
        let one = &i.probes[(k + n) % i.probes.len()];
        let chosen: Vec<&Probe> = if first && i.ty == full {
            i.probes.iter().collect()
        } else {
            vec![one]
        };
        for p in chosen {
            let (what, hit, miss) = canary_paths(c, i, p, false).remove(0);
            oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
        }
        if first {
            let (what, hit, miss) = canary_paths(c, i, one, true).remove(1);
            oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
        }
    }
    for (ty, p) in &c.chains {
        let what = format!("{ty}?{} (a child they have no relationship with)", p.param);
        let hit = format!("/fhir/{ty}?{}={}", p.param, p.hit);
        let miss = format!("/fhir/{ty}?{}={}", p.param, p.miss);
        oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
    }

    // Their own child's items hidden from them (the probe's case: the child's Patient is
    // visible, items in it are not). The first hidden Observation, Condition and Device
    // (which between them carry every parameter type): every criterion, on the type and
    // through `_has` on the child's Patient, one also as a count. The first hidden item of
    // each other type: two criteria on the type, one through `_has`. Every other hidden
    // item: one criterion both ways (a different one for each subject). And chains from a
    // CarePlan they see, through the Patient and `_has`, and to the Conditions it refers to.
    let mut seen = std::collections::HashSet::new();
    for (k, i) in hidden.iter().enumerate() {
        let first = seen.insert(i.ty.clone());
        let every = first && FULL_TYPES.contains(&i.ty.as_str());
        let pick = |j: usize| &i.probes[(k + n + j) % i.probes.len()];
        let (on_type, through_has): (Vec<&Probe>, Vec<&Probe>) = if every {
            (i.probes.iter().collect(), i.probes.iter().collect())
        } else if first {
            (vec![pick(0), pick(1)], vec![pick(0)])
        } else {
            (vec![pick(0)], vec![pick(0)])
        };
        for p in on_type {
            let (what, hit, miss) = own_paths(rep, i, p).remove(0);
            oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
        }
        for p in through_has {
            let (what, hit, miss) = own_paths(rep, i, p).remove(1);
            oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
        }
        if every {
            for (what, hit, miss) in own_paths(rep, i, pick(0)) {
                oracle_pair(w, t, &who, &what, &hit, &miss, COUNT).await;
            }
        }
        let chains = own_chain_paths(rep, i, k + n);
        let take = if every { chains.len() } else { 2 };
        for (what, hit, miss) in chains.into_iter().take(take) {
            oracle_pair(w, t, &who, &what, &hit, &miss, PAGE).await;
        }
    }

    // Sorting, paging and totals in their child's record.
    for (k, (ty, key)) in ORACLE_TYPES.into_iter().enumerate() {
        // Ascending for half, descending for the other half (the other way round for the
        // next subject).
        let key = if (k + n).is_multiple_of(2) {
            key.to_owned()
        } else {
            format!("-{key}")
        };
        sorted_and_paged(w, t, &who, rep, ty, &key).await;
    }
    // History and `$everything`: a page exactly as long as what they see has no next page.
    history_and_everything(w, t, &who, rep).await;
    // The hidden address.
    hidden_address(w, t, &who, rep, sees_address).await;
}

/// `ty` in their child's record: a page of exactly the visible count has no next link and
/// the totals count only what they see; sorted by `key` one at a time, the pages are
/// those of the same search restricted by `_id` to what they see (so hidden items, which
/// sort among the visible ones, take no part in the order or the paging).
async fn sorted_and_paged(
    w: &mut W<'_>,
    t: Option<&str>,
    who: &str,
    rep: &Rep,
    ty: &str,
    key: &str,
) {
    let base = format!("/fhir/{ty}?patient=Patient/{}", rep.own_child);
    let all = w
        .send(t, Method::GET, &format!("{base}&_count=1000"), None, &[])
        .await;
    w.leak_check(&format!("{who}: GET {base}"), &base, &all);
    if all.status != StatusCode::OK {
        return; // they cannot search the type (checked elsewhere)
    }
    let ids = match_ids(&all.json());
    let n = ids.len();
    for (q, entries, next) in [
        (format!("_count={}&_total=accurate", n.max(1)), n, false),
        ("_summary=count".to_owned(), 0, false),
    ] {
        let path = format!("{base}&{q}");
        let r = w.send(t, Method::GET, &path, None, &[]).await;
        w.leak_check(&format!("{who}: GET {path}"), &path, &r);
        let s = shape(&r);
        let want = Shape {
            status: 200,
            total: json!(n),
            next,
            entries,
        };
        if s != want {
            w.fail_grouped(
                format!("paging {ty}?{q} {s:?} {want:?}"),
                format!(
                    "{who}: GET {path}: they see {n} ({ids:?}), so expected {want:?}; got {s:?}: {}",
                    r.summary()
                ),
            );
        }
    }
    let only = if ids.is_empty() {
        new_id()
    } else {
        ids.join(",")
    };
    let q = format!("&_sort={key}{PAGE}");
    let in_record = walk(w, t, who, &format!("{base}{q}")).await;
    let visible = walk(w, t, who, &format!("/fhir/{ty}?_id={only}{q}")).await;
    if in_record != visible {
        w.fail_grouped(
            format!("sort {ty} {key}"),
            format!(
                "{who}: {ty} of their child sorted by {key}, one at a time, differs from the same search of only what they see:\n        record:  {in_record:?}\n        visible: {visible:?}"
            ),
        );
    }
}

/// Type and system history, and `$everything` of their child: with `_count` the number of
/// entries they see, no next link; with `_count=1`, a next link only if they see more.
async fn history_and_everything(w: &mut W<'_>, t: Option<&str>, who: &str, rep: &Rep) {
    let mut bases: Vec<String> = ORACLE_TYPES
        .iter()
        .map(|(ty, _)| format!("/fhir/{ty}/_history"))
        .collect();
    // The child's Patient, reference data (which belongs to no child), and everything.
    for ty in ["Patient", "Practitioner", "Organization"] {
        bases.push(format!("/fhir/{ty}/_history"));
    }
    bases.push("/fhir/_history".into());
    bases.push(format!("/fhir/Patient/{}/$everything", rep.own_child));
    for base in bases {
        let all = w
            .send(t, Method::GET, &format!("{base}?_count=1000"), None, &[])
            .await;
        w.leak_check(&format!("{who}: GET {base}"), &base, &all);
        let v = all.json();
        if all.status != StatusCode::OK || next_link(&v).is_some() {
            continue; // not theirs to ask (checked elsewhere), or more than a page
        }
        let n = v["entry"].as_array().map_or(0, Vec::len);
        let counts = if n > 1 { vec![n, 1] } else { vec![1] };
        for count in counts {
            let path = format!("{base}?_count={count}");
            let r = w.send(t, Method::GET, &path, None, &[]).await;
            w.leak_check(&format!("{who}: GET {path}"), &path, &r);
            let s = shape(&r);
            if s.status != 200 || s.entries != n.min(count) || s.next != (n > count) {
                w.fail_grouped(
                    format!(
                        "history {who} {} _count={} {s:?}",
                        base.replace(&rep.own_child, "<child>"),
                        if count == 1 { "1" } else { "n" }
                    ),
                    format!(
                        "{who}: GET {path}: they see {n} entries, so expected {} entries and {} next link; got {s:?}: {}",
                        n.min(count),
                        if n > count { "a" } else { "no" },
                        r.summary()
                    ),
                );
            }
        }
    }
}

/// Criteria and sort keys on the child's hidden address answer, for whoever may not see
/// it, as if there were no address; whoever may see it finds the child by it.
async fn hidden_address(w: &mut W<'_>, t: Option<&str>, who: &str, rep: &Rep, sees: bool) {
    let own = rep.own_child.clone();
    if sees {
        let path = format!(
            "/fhir/Patient?_id={own}&address-postalcode={}{PAGE}",
            rep.address.child.postcode
        );
        let r = w.send(t, Method::GET, &path, None, &[]).await;
        if r.json()["total"] != json!(1) {
            w.fail(format!(
                "{who}: GET {path}: they see the address, so the child is found by it: {}",
                r.summary()
            ));
        }
        return;
    }
    for (what, hit, miss) in address_paths(rep) {
        oracle_pair(
            w,
            t,
            who,
            &format!("{what} (hidden address)"),
            &hit,
            &miss,
            PAGE,
        )
        .await;
    }
    // As if there were no address: `:missing=true` and `:not` find the child wherever
    // `_id` alone does.
    let total = |r: &Resp| r.json()["total"].clone();
    let plain = w
        .send(
            t,
            Method::GET,
            &format!("/fhir/Patient?_id={own}{PAGE}"),
            None,
            &[],
        )
        .await;
    for q in ["address:missing=true", "address-use:not=home"] {
        let path = format!("/fhir/Patient?_id={own}&{q}{PAGE}");
        let r = w.send(t, Method::GET, &path, None, &[]).await;
        w.leak_check(&format!("{who}: GET {path}"), &path, &r);
        if total(&r) != total(&plain) {
            w.fail_grouped(
                format!("hidden address {q}"),
                format!(
                    "{who}: GET {path}: total {} but _id alone finds {} (the hidden address must count as none)",
                    total(&r),
                    total(&plain)
                ),
            );
        }
    }
    // Sorted by the hidden address, the order of what they see is the same whatever the
    // address holds (before it, their other child's; after the change, after it).
    let keys = ["address", "-address", "address-city", "-address-postalcode"];
    let mut orders = Vec::new();
    let pair = rep.sibling.as_ref().map(|s| format!("{own},{s}"));
    let mut regional = Vec::new();
    for round in 0..2 {
        if round == 1 {
            let mut p = w
                .regional(Method::GET, &format!("/fhir/Patient/{own}"), None)
                .await
                .json();
            let z = Addr::new('Z');
            p["address"] = z.json();
            w.secrets.extend(z.secrets());
            let r = w
                .regional(Method::PUT, &format!("/fhir/Patient/{own}"), Some(&p))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.summary());
        }
        let mut order = Vec::new();
        for key in keys {
            let path = format!("/fhir/Patient?_sort={key}&_count=1000");
            let r = w.send(t, Method::GET, &path, None, &[]).await;
            w.leak_check(&format!("{who}: GET {path}"), &path, &r);
            order.push((key, r.status.as_u16(), match_ids(&r.json())));
        }
        orders.push(order);
        if let Some(pair) = &pair {
            let path = format!("/fhir/Patient?_id={pair}&_sort=address");
            regional.push(match_ids(
                &w.regional(Method::GET, &path, None).await.json(),
            ));
        }
    }
    if orders[0] != orders[1] {
        w.fail_grouped(
            "hidden address sort".into(),
            format!(
                "{who}: Patients sorted by the hidden address come in another order once it changes:\n        before: {:?}\n        after:  {:?}",
                orders[0], orders[1]
            ),
        );
    }
    if let [before, after] = &regional[..]
        && (before.len() != 2 || before == after)
    {
        w.fail(format!(
            "positive control: the regional client sees the address, so sorting by it must reorder the two children when it changes: {before:?} then {after:?}"
        ));
    }
    if let Some(s) = &rep.sibling
        && !orders[0][0].2.contains(s)
    {
        w.fail(format!(
            "{who}: GET Patient?_sort=address does not show their second child: {:?}",
            orders[0][0]
        ));
    }
}
