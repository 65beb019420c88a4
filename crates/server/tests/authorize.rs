//! The SMART authorisation endpoint and launches over real HTTP, on SQLite and PostgreSQL:
//! requests that must not redirect (unknown client, redirect-URI mismatch), errors sent back
//! to the app (PKCE, aud, scope), sign-in and back, deny, the EHR launch from `/launch` to a
//! token response carrying the patient, launch replay and another account's launch, the
//! standalone patient picker (only the user's children), and CSRF on the forms. A real
//! client library in a real browser is in `smart_in_a_real_browser` (tests/browser/smart.mjs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use access::{Role, Sector};
use base64::Engine;
use common::browser::{Browser, PASSWORD, Page, now_secs};
use common::fixture;
use passport_server::oauth::{self, ClientSpec};
use passport_server::web::auth;
use passport_store::accounts::Account;
use serde_json::Value;
use sha2::Digest;

const APP: &str = "https://app.example";

type Srv = common::TestServer;

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

struct World {
    client_id: String,
    staff_secret: Vec<u8>,
    /// sam@example.com: children Mia and Leo (active), Ava (pending).
    sam: Account,
    mia: String,
    leo: String,
    zoe: String,
    ava: String,
}

/// A valid NHS Number (modulus 11) made from `n`.
fn nhs(n: u32) -> String {
    (n..)
        .find_map(|k| {
            let s = format!("{:09}", 943_000_000 + k);
            let first9: [u8; 9] = std::array::from_fn(|i| s.as_bytes()[i] - b'0');
            fhir::nhs_number::NhsNumber::from_first9(first9)
                .map(|n| n.digits().iter().map(|d| char::from(b'0' + d)).collect())
        })
        .unwrap()
}

/// Two organisations; Ada, a clinician at the hospital; Mia and Leo in the hospital's care
/// team (Sam their mother), Zoe and Ava in the GP's (Kim Zoe's father; Sam's link to Ava
/// still waiting for a professional). Built by the shared region fixture.
async fn world(srv: &Srv) -> World {
    use passport_server::region::{ChildSpec, Family, Link, Org, Spec, Staff, seed};
    let st = &srv.state;
    let org = |key: &str, name: &str, sector, ods: &str| Org {
        key: key.into(),
        name: name.into(),
        sector,
        ods: Some(ods.into()),
        regional: false,
    };
    let child = |key: &str, given: &str, n: u32, org: &str, links: Vec<Link>| ChildSpec {
        key: key.into(),
        id: None,
        given: given.into(),
        family: "Jones".into(),
        nhs_number: nhs(n),
        birth_date: "2019-03-27".into(),
        care_team: vec![org.into()],
        links,
        items: Vec::new(),
    };
    let link = |family: &str, relationship: &str, active| Link {
        family: family.into(),
        relationship: relationship.into(),
        active,
    };
    let spec = Spec {
        region: "North".into(),
        password: PASSWORD.into(),
        organisations: vec![
            org(
                "hospital",
                "Riverside Children's Hospital",
                Sector::HospitalTrust,
                "RXX",
            ),
            org("gp", "Hilltop GP", Sector::GpPractice, "G1"),
        ],
        staff: vec![Staff {
            org: "hospital".into(),
            role: Role::Clinician,
            email: "ada@example.nhs.uk".into(),
            name: "Ada Clinician".into(),
            totp: None,
        }],
        families: vec![
            Family {
                email: "sam@example.com".into(),
                name: "Sam Jones".into(),
            },
            Family {
                email: "kim@example.com".into(),
                name: "Kim Jones".into(),
            },
        ],
        children: vec![
            child(
                "mia",
                "Mia",
                1,
                "hospital",
                vec![link("sam@example.com", "MTH", true)],
            ),
            child(
                "leo",
                "Leo",
                20,
                "hospital",
                vec![link("sam@example.com", "MTH", true)],
            ),
            child(
                "zoe",
                "Zoe",
                40,
                "gp",
                vec![link("kim@example.com", "FTH", true)],
            ),
            child(
                "ava",
                "Ava",
                60,
                "gp",
                vec![link("sam@example.com", "MTH", false)],
            ),
        ],
    };
    let r = seed(&st.domain, &fixture(), &spec).await.unwrap();
    let sam = st
        .domain
        .data()
        .account(&r.families["sam@example.com"])
        .await
        .unwrap()
        .unwrap();
    let created = oauth::create_client(
        st.domain.data(),
        ClientSpec {
            name: "Growth Chart".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec![format!("{APP}/callback")],
            public: true,
            scope: "openid fhirUser launch launch/patient offline_access patient/*.rs".into(),
            launch_uri: Some(format!("{APP}/launch")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    World {
        client_id: created.client.client_id,
        staff_secret: r.staff("ada@example.nhs.uk").totp_secret.clone(),
        sam,
        mia: r.child("mia").to_owned(),
        leo: r.child("leo").to_owned(),
        zoe: r.child("zoe").to_owned(),
        ava: r.child("ava").to_owned(),
    }
}

/// The query of an authorisation request; `tweak` changes or removes (`None`) parameters.
fn authorize_query(
    srv: &Srv,
    w: &World,
    challenge: &str,
    tweak: &[(&str, Option<&str>)],
) -> String {
    let aud = srv.fhir_base();
    let redirect = format!("{APP}/callback");
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &w.client_id),
        ("redirect_uri", &redirect),
        ("scope", "openid fhirUser launch/patient patient/*.rs"),
        ("state", "st4te"),
        ("aud", &aud),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in tweak {
        params.retain(|(n, _)| n != k);
        if let Some(v) = v {
            params.push((k, v));
        }
    }
    format!(
        "/oauth/authorize?{}",
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    )
}

/// Exchanges a code at the token endpoint.
async fn exchange(srv: &Srv, w: &World, code: &str, verifier: &str) -> (u16, Value) {
    let redirect = format!("{APP}/callback");
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/token", srv.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect),
            ("client_id", &w.client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn assert_redirect_error(p: &Page, error: &str) {
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(
        p.location.starts_with(&format!("{APP}/callback?")),
        "{}",
        p.location
    );
    let q = p.query();
    assert_eq!(
        q.get("error").map(String::as_str),
        Some(error),
        "{}",
        p.location
    );
    assert!(q.contains_key("error_description"));
    assert_eq!(q.get("state").map(String::as_str), Some("st4te"));
}

on_both_databases!(bad_client_or_redirect_uri_shows_a_page, |srv| {
    let w = world(&srv).await;
    let (_, ch) = pkce();
    let mut b = Browser::new(&srv.base);
    for tweak in [
        ("redirect_uri", Some("http://evil.example/callback")),
        ("redirect_uri", Some("https://app.example/callback/extra")),
        ("redirect_uri", None),
        ("client_id", Some("no-such-client")),
        ("client_id", None),
    ] {
        let p = b.get(&authorize_query(&srv, &w, &ch, &[tweak])).await;
        assert_eq!(p.status, 400, "{tweak:?}");
        assert_eq!(p.location, "", "never redirected: {tweak:?}");
        assert!(
            p.body.contains("This app cannot use Passport"),
            "{}",
            p.body
        );
    }
    // A repeated parameter is refused with a page too.
    let q = authorize_query(&srv, &w, &ch, &[]) + "&state=again";
    let p = b.get(&q).await;
    assert_eq!((p.status, p.location.as_str()), (400, ""));
});

on_both_databases!(errors_go_back_to_the_app, |srv| {
    let w = world(&srv).await;
    let (_, ch) = pkce();
    let mut b = Browser::new(&srv.base);
    // Missing PKCE, plain PKCE, a malformed challenge.
    for tweak in [
        vec![("code_challenge", None), ("code_challenge_method", None)],
        vec![("code_challenge_method", Some("plain"))],
        vec![("code_challenge", Some("short"))],
    ] {
        let p = b.get(&authorize_query(&srv, &w, &ch, &tweak)).await;
        assert_redirect_error(&p, "invalid_request");
    }
    // Wrong audience.
    let p = b
        .get(&authorize_query(
            &srv,
            &w,
            &ch,
            &[("aud", Some("http://other.example/fhir"))],
        ))
        .await;
    assert_redirect_error(&p, "invalid_request");
    assert!(p.query()["error_description"].contains("aud"));
    // Scope beyond the client's; system scopes; patient scopes without a patient.
    for scope in [
        "launch/patient user/*.rs",
        "launch/patient patient/*.cruds",
        "system/*.rs",
        "patient/*.rs",
    ] {
        let p = b
            .get(&authorize_query(&srv, &w, &ch, &[("scope", Some(scope))]))
            .await;
        assert_redirect_error(&p, "invalid_scope");
    }
    // Not a code request.
    let p = b
        .get(&authorize_query(
            &srv,
            &w,
            &ch,
            &[("response_type", Some("token"))],
        ))
        .await;
    assert_redirect_error(&p, "unsupported_response_type");
    // The launch scope without a launch; a launch nobody created.
    let p = b
        .get(&authorize_query(
            &srv,
            &w,
            &ch,
            &[("scope", Some("launch patient/*.rs"))],
        ))
        .await;
    assert_redirect_error(&p, "invalid_request");
    let p = b
        .get(&authorize_query(
            &srv,
            &w,
            &ch,
            &[
                ("scope", Some("launch patient/*.rs")),
                ("launch", Some("made-up")),
            ],
        ))
        .await;
    assert_redirect_error(&p, "invalid_request");
    // No state: still sent back, without state.
    let p = b
        .get(&authorize_query(&srv, &w, &ch, &[("state", None)]))
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.query()["error"], "invalid_request");
});

on_both_databases!(sign_in_and_come_back, |srv| {
    let w = world(&srv).await;
    let (verifier, ch) = pkce();
    let q = authorize_query(&srv, &w, &ch, &[]);
    // Family member: signed out → sign-in with next → back to the request → picker.
    let mut b = Browser::new(&srv.base);
    let p = b.get(&q).await;
    assert_eq!(p.status, 303);
    assert!(p.location.starts_with("/sign-in?next="), "{}", p.location);
    let form = b.get(&p.location).await;
    assert!(form.body.contains("id=\"sign-in-for-app\""));
    let next = form.hidden("next");
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    let p = b
        .post(
            "/sign-in",
            &[
                ("email", "sam@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &form.csrf()),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location, next);
    let picker = b.get(&p.location).await;
    assert_eq!(picker.status, 200, "{}", picker.body);
    assert!(picker.body.contains("Which child is this for?"));

    // Staff: the way back survives the TOTP step.
    let mut s = Browser::new(&srv.base);
    let p = s.get(&q).await;
    let form = s.get(&p.location).await;
    let next = form.hidden("next");
    let p = s
        .post(
            "/sign-in",
            &[
                ("email", "ada@example.nhs.uk"),
                ("password", PASSWORD),
                ("csrf_token", &form.csrf()),
                ("next", &next),
            ],
        )
        .await;
    assert!(
        p.location.starts_with("/sign-in/code?next="),
        "{}",
        p.location
    );
    let code_form = s.get(&p.location).await;
    assert_eq!(code_form.hidden("next"), next);
    let p = s
        .post(
            "/sign-in/code",
            &[
                (
                    "code",
                    auth::totp_code(&w.staff_secret, now_secs()).as_str(),
                ),
                ("csrf_token", &code_form.csrf()),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(p.location, next);
    // Staff see the children of their organisation's care teams.
    let picker = s.get(&next).await;
    assert!(picker.body.contains(&w.mia) && picker.body.contains(&w.leo));
    assert!(!picker.body.contains(&w.zoe) && !picker.body.contains(&w.ava));
    // Staff complete a standalone launch: fhirUser is their Practitioner.
    let fields = picker.hidden_fields();
    let mut pick = fields.clone();
    pick.push(("patient".into(), w.leo.clone()));
    let approve = s.post("/oauth/authorize", &pick).await;
    assert_eq!(approve.status, 200, "{}", approve.body);
    let mut allow = approve.hidden_fields();
    allow.push(("decision".into(), "allow".into()));
    let p = s.post("/oauth/authorize", &allow).await;
    let (status, tok) = exchange(&srv, &w, &p.query()["code"], &verifier).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["patient"], w.leo.as_str());
    let claims = oauth::verify_access_token(&srv.state, tok["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.fhir_user.unwrap().starts_with("Practitioner/"));

    // Only a local path to /oauth/authorize is a way back.
    for bad in [
        "//evil.example/x",
        "https://evil.example/",
        "/oauth/authorizeX",
        "/",
        "/oauth/authorize?\u{7f}",
    ] {
        let mut o = Browser::new(&srv.base);
        let form = o.get("/sign-in").await;
        let p = o
            .post(
                "/sign-in",
                &[
                    ("email", "kim@example.com"),
                    ("password", PASSWORD),
                    ("csrf_token", &form.csrf()),
                    ("next", bad),
                ],
            )
            .await;
        if bad.contains('\u{7f}') {
            // A control character in any field: the form is refused before sign-in.
            assert_eq!(p.status, 400, "{bad:?}");
            assert!(p.body.contains("control character U+007F"), "{}", p.body);
        } else {
            assert_eq!(p.location, "/", "{bad:?}");
        }
    }
});

on_both_databases!(standalone_picker_lists_only_the_users_children, |srv| {
    let w = world(&srv).await;
    let (verifier, ch) = pkce();
    let mut b = Browser::new(&srv.base);
    assert_eq!(b.sign_in("sam@example.com", PASSWORD).await.location, "/");
    let picker = b.get(&authorize_query(&srv, &w, &ch, &[])).await;
    assert_eq!(picker.status, 200);
    assert!(
        picker.body.contains("Mia Jones (born 27 March 2019)"),
        "{}",
        picker.body
    );
    assert!(picker.body.contains(&w.mia) && picker.body.contains(&w.leo));
    // Not another family's child, nor a link still waiting for a professional.
    assert!(!picker.body.contains(&w.zoe), "another family's child");
    assert!(!picker.body.contains(&w.ava), "a pending link");
    let fields = picker.hidden_fields();

    // A forged choice, or none, is refused on the picker.
    for forged in [Some(w.zoe.as_str()), Some(w.ava.as_str()), None] {
        let mut f = fields.clone();
        if let Some(id) = forged {
            f.push(("patient".into(), id.into()));
        }
        let p = b.post("/oauth/authorize", &f).await;
        assert_eq!(p.status, 400, "{forged:?}");
        assert!(p.body.contains("Select the child this is for"));
    }
    // Nor may a forged approval name another child.
    let mut f: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "step" {
                    "decide".into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    f.push(("patient".into(), w.zoe.clone()));
    f.push(("decision".into(), "allow".into()));
    let p = b.post("/oauth/authorize", &f).await;
    assert_eq!(p.status, 400);
    assert_eq!(p.location, "");

    // CSRF: the approval form with a wrong token is refused.
    let mut pick = fields.clone();
    pick.push(("patient".into(), w.leo.clone()));
    let approve = b.post("/oauth/authorize", &pick).await;
    assert_eq!(approve.status, 200);
    assert!(approve.body.contains("Allow Growth Chart to use Passport?"));
    assert!(approve.body.contains("This is for <strong>Leo Jones"));
    assert!(
        approve
            .body
            .contains("see everything in this child&#x27;s passport"),
        "{}",
        approve.body
    );
    // The approval page lets its form lead to the app (CSP form-action).
    let mut allow = approve.hidden_fields();
    allow.push(("decision".into(), "allow".into()));
    let forged: Vec<(String, String)> = allow
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "csrf_token" {
                    "x".repeat(43)
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let p = b.post("/oauth/authorize", &forged).await;
    assert_eq!(p.status, 403);

    // Allow: a code for Leo, exchanged for a token with patient = Leo.
    let p = b.post("/oauth/authorize", &allow).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location.starts_with(&format!("{APP}/callback?")));
    assert_eq!(p.query()["state"], "st4te");
    let (status, tok) = exchange(&srv, &w, &p.query()["code"], &verifier).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["patient"], w.leo.as_str());
    assert_eq!(tok["scope"], "openid fhirUser launch/patient patient/*.rs");
    let claims = oauth::verify_access_token(&srv.state, tok["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub, w.sam.id);
    assert_eq!(
        claims.fhir_user,
        Some(format!("Person/{}", w.sam.person_id.clone().unwrap()))
    );
});

on_both_databases!(deny_sends_access_denied, |srv| {
    let w = world(&srv).await;
    let (_, ch) = pkce();
    let mut b = Browser::new(&srv.base);
    b.sign_in("kim@example.com", PASSWORD).await;
    let picker = b.get(&authorize_query(&srv, &w, &ch, &[])).await;
    // One child: still chosen, then confirmed on the approval page.
    assert!(picker.body.contains(&w.zoe));
    let mut pick = picker.hidden_fields();
    pick.push(("patient".into(), w.zoe.clone()));
    let approve = b.post("/oauth/authorize", &pick).await;
    let mut deny = approve.hidden_fields();
    deny.push(("decision".into(), "deny".into()));
    let p = b.post("/oauth/authorize", &deny).await;
    assert_redirect_error(&p, "access_denied");
    assert!(!p.query().contains_key("code"));
    // An app without patient scopes goes straight to the approval page.
    let approve = b
        .get(&authorize_query(
            &srv,
            &w,
            &ch,
            &[("scope", Some("openid fhirUser"))],
        ))
        .await;
    assert_eq!(approve.status, 200);
    assert!(approve.body.contains("Allow Growth Chart"));
    assert!(!approve.body.contains("child-in-context"));
});

/// Opens the app from `/launch` for `patient`; returns the launch value.
async fn open_app(b: &mut Browser, srv: &Srv, w: &World, patient: &str) -> String {
    let list = b.get("/launch").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(&format!("/launch?patient={patient}")),
        "{}",
        list.body
    );
    let apps = b.get(&format!("/launch?patient={patient}")).await;
    assert_eq!(apps.status, 200, "{}", apps.body);
    assert!(apps.body.contains("Open Growth Chart"));
    let p = b
        .post(
            "/launch",
            &[
                ("client_id", w.client_id.as_str()),
                ("patient", patient),
                ("csrf_token", &apps.csrf()),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(
        p.location.starts_with(&format!("{APP}/launch?")),
        "{}",
        p.location
    );
    let q = p.query();
    assert_eq!(q["iss"], srv.fhir_base());
    q["launch"].clone()
}

on_both_databases!(ehr_launch_gives_the_patient, |srv| {
    let w = world(&srv).await;
    let (verifier, ch) = pkce();
    let mut b = Browser::new(&srv.base);
    b.sign_in("sam@example.com", PASSWORD).await;
    let launch = open_app(&mut b, &srv, &w, &w.mia).await;
    let scope = "openid fhirUser launch patient/*.rs offline_access";
    let q = authorize_query(
        &srv,
        &w,
        &ch,
        &[("scope", Some(scope)), ("launch", Some(&launch))],
    );
    let approve = b.get(&q).await;
    assert_eq!(approve.status, 200, "{}", approve.body);
    assert!(approve.body.contains("This is for <strong>Mia Jones"));
    let mut allow = approve.hidden_fields();
    allow.push(("decision".into(), "allow".into()));
    let p = b.post("/oauth/authorize", &allow).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (status, tok) = exchange(&srv, &w, &p.query()["code"], &verifier).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["patient"], w.mia.as_str());
    assert!(tok["refresh_token"].is_string());

    // The launch worked once: a second request with it goes back as an error.
    let p = b.get(&q).await;
    assert_redirect_error(&p, "invalid_request");
    let p = b.post("/oauth/authorize", &allow).await;
    assert_redirect_error(&p, "invalid_request");
});

on_both_databases!(launch_is_the_launching_accounts_only, |srv| {
    let w = world(&srv).await;
    let (_, ch) = pkce();
    let mut sam = Browser::new(&srv.base);
    sam.sign_in("sam@example.com", PASSWORD).await;
    let launch = open_app(&mut sam, &srv, &w, &w.leo).await;
    let q = authorize_query(
        &srv,
        &w,
        &ch,
        &[
            ("scope", Some("launch patient/*.rs")),
            ("launch", Some(&launch)),
        ],
    );
    // Kim cannot use Sam's launch.
    let mut kim = Browser::new(&srv.base);
    kim.sign_in("kim@example.com", PASSWORD).await;
    let p = kim.get(&q).await;
    assert_redirect_error(&p, "invalid_request");
    // Nor open an app with a child she cannot see, nor see the child's apps page.
    let apps = kim.get(&format!("/launch?patient={}", w.zoe)).await;
    let p = kim
        .post(
            "/launch",
            &[
                ("client_id", w.client_id.as_str()),
                ("patient", w.mia.as_str()),
                ("csrf_token", &apps.csrf()),
            ],
        )
        .await;
    assert_eq!(p.status, 404);
    assert_eq!(
        kim.get(&format!("/launch?patient={}", w.mia)).await.status,
        404
    );
    // A forged CSRF token, or an unknown app, is refused.
    let p = kim
        .post(
            "/launch",
            &[
                ("client_id", w.client_id.as_str()),
                ("patient", w.zoe.as_str()),
                ("csrf_token", "nope"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    let p = kim
        .post(
            "/launch",
            &[
                ("client_id", "no-such-app"),
                ("patient", w.zoe.as_str()),
                ("csrf_token", &apps.csrf()),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    // Sam still can (Kim's attempt did not use it up), and deny uses it up.
    let approve = sam.get(&q).await;
    assert_eq!(approve.status, 200, "{}", approve.body);
    let mut deny = approve.hidden_fields();
    deny.push(("decision".into(), "deny".into()));
    assert_redirect_error(&sam.post("/oauth/authorize", &deny).await, "access_denied");
    assert_redirect_error(&sam.get(&q).await, "invalid_request");
    // Signed out: the launch pages send you to sign in.
    assert_eq!(
        Browser::new(&srv.base).get("/launch").await.location,
        "/sign-in"
    );
});

on_both_databases!(discovery_and_cors_for_browser_apps, |srv| {
    let http = reqwest::Client::new();
    let smart: Value = http
        .get(format!("{}/fhir/.well-known/smart-configuration", srv.base))
        .header("origin", APP)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for cap in [
        "launch-ehr",
        "launch-standalone",
        "context-ehr-patient",
        "context-standalone-patient",
        "authorize-post",
    ] {
        assert!(
            smart["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == cap),
            "{cap}"
        );
    }
    // A browser app's preflight for a FHIR read with a bearer token.
    let pre = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/fhir/Patient/x", srv.base),
        )
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    // The pages (cookies) get no CORS headers.
    let page = http
        .get(format!("{}/sign-in", srv.base))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
});

// ---------------------------------------------------------------------------------------
// A real SMART client library (the npm package `fhirclient`) in headless Chromium.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn browser_missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    for dir in [
        "tests/browser/node_modules/playwright-core",
        "tests/browser/node_modules/axe-core",
        "tests/browser/node_modules/fhirclient",
        "web-assets/node_modules/nhsuk-frontend",
    ] {
        if !repo().join(dir).exists() {
            return Some(format!("{dir} missing (run `npm ci` in its folder)"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_in_a_real_browser() {
    if let Some(why) = browser_missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("browser tests cannot run under CI: {why}");
        }
        eprintln!("SMART browser test skipped: {why}");
        return;
    }
    let srv = common::spawn(common::Backend::Sqlite).await.unwrap();
    let w = world(&srv).await;
    // The test app's origin: a free port for tests/browser/smart.mjs's static server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = format!("http://127.0.0.1:{port}");
    let client = oauth::create_client(
        srv.state.domain.data(),
        ClientSpec {
            name: "Growth Chart (browser)".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![format!("{app}/index.html")],
            public: true,
            scope: "openid fhirUser launch launch/patient patient/*.rs".into(),
            launch_uri: Some(format!("{app}/launch.html")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let fixture = serde_json::json!({
        "base": srv.base,
        "appPort": port,
        "clientId": client.client.client_id,
        "family": { "email": "sam@example.com", "password": PASSWORD },
        "children": { "mia": w.mia, "leo": w.leo },
    })
    .to_string();
    let stdout = common::browser::run_node("smart.mjs", vec![fixture]).await;
    // What the app read is the launch patient, as the token said.
    assert!(
        stdout.contains(&format!("ehr patient {}", w.mia)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("standalone patient {}", w.leo)),
        "{stdout}"
    );
    srv.stop().await;
}
