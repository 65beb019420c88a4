//! Family onboarding over real HTTP, on SQLite and PostgreSQL: clinic invitations (issue,
//! redeem, expired / reused / unknown codes), self-registration (pending, confirm, decline,
//! the same answer for an unknown child), the clinic-list import (all or nothing), the
//! passport states, and CSRF on every new form.

mod common;

use access::{Role, Sector};
use common::browser::{Browser, PASSWORD, Page};
use common::fixture;
use passport_server::web::{directory, onboarding};
use passport_store::onboarding::PassportState;
use passport_store::{SystemMatch, TokenCriterion};
use serde_json::Value;

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

struct Seeded {
    store: std::sync::Arc<passport_server::Domain>,
    org: String,
    other_org: String,
    staff: Vec<u8>,
    outsider: Vec<u8>,
}

async fn seed(url: &str) -> Seeded {
    let store =
        passport_server::Domain::open(domain::Settings::admin(url, "https://passport.test"))
            .await
            .unwrap();
    let mut orgs = Vec::new();
    for (name, ods) in [
        ("Riverside Children's Hospital", "RXX"),
        ("Hilltop GP", "G1"),
    ] {
        orgs.push(
            directory::create_organisation(
                &store,
                &passport_server::records::Agent::operator("test fixture"),
                directory::NewOrganisation {
                    name: name.into(),
                    sector: Sector::HospitalTrust,
                    ods: Some(ods.into()),
                    school_urn: None,
                    region: "North".into(),
                },
            )
            .await
            .unwrap(),
        );
    }
    let mut secrets = Vec::new();
    for (org, email) in [
        (&orgs[0], "ada@example.nhs.uk"),
        (&orgs[1], "bob@example.nhs.uk"),
    ] {
        let s = directory::create_staff(
            &store,
            &passport_server::records::Agent::operator("test fixture"),
            directory::NewStaff {
                organisation: org.clone(),
                role: Role::Clinician,
                email: email.into(),
                name: "A Clinician".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
        secrets.push(s.totp_secret.unwrap());
    }
    Seeded {
        store,
        org: orgs[0].clone(),
        other_org: orgs[1].clone(),
        outsider: secrets.pop().unwrap(),
        staff: secrets.pop().unwrap(),
    }
}

/// The current version, read from the history (this second handle's SQLite read cache
/// does not see the server's writes).
async fn read(store: &passport_server::Domain, t: &str, id: &str) -> Option<Value> {
    let h = store
        .data()
        .test_store()
        .history(
            &passport_store::HistoryQuery {
                resource_type: Some(t.into()),
                id: Some(id.into()),
                count: 1,
                ..Default::default()
            },
            passport_store::search::Visibility::System,
        )
        .await
        .unwrap();
    h.first()
        .map(|e| &e.version)
        .filter(|s| !s.deleted)
        .map(|s| serde_json::from_slice(&s.body).unwrap())
}

/// The RelatedPersons the Person of `login` links to.
async fn links_of(store: &passport_server::Domain, login: &str) -> Vec<Value> {
    let ids = store
        .data()
        .test_store()
        .find_by_tokens(
            "Person",
            &[TokenCriterion {
                param: "identifier".into(),
                system: SystemMatch::Is(directory::LOGIN_SYSTEM.into()),
                code: login.into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "one Person for {login}");
    let person = read(store, "Person", &ids[0]).await.unwrap();
    let mut out = Vec::new();
    for l in person["link"].as_array().into_iter().flatten() {
        let rp = l["target"]["reference"].as_str().unwrap();
        let rp = rp.strip_prefix("RelatedPerson/").unwrap();
        if let Some(v) = read(store, "RelatedPerson", rp).await {
            out.push(v);
        }
    }
    out
}

async fn issue(b: &mut Browser, nhs_number: &str) -> (String, Page) {
    let p = b
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[
                ("nhs_number", nhs_number),
                ("given", "Mia"),
                ("family", "Jones"),
                ("birth_date", "27/03/2019"),
                ("parent_email", "parent@example.com"),
            ],
        )
        .await;
    let p = b.confirm_new_passport(p).await;
    assert_eq!(p.status, 200, "{}", p.body);
    (p.between("id=\"invitation-code\">", "<"), p)
}

on_both_databases!(invitation_is_issued_and_redeemed_once, |srv| {
    let s = seed(&srv.database_url).await;
    let mut staff = Browser::new(&srv.base);
    // Signed out: the staff pages send you to sign in.
    assert_eq!(staff.get("/onboarding/invite").await.location, "/sign-in");
    staff.sign_in_staff("ada@example.nhs.uk", &s.staff).await;
    // A bad NHS Number: an error summary linking to the field.
    let p = staff
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[("nhs_number", "1234567890")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("href=\"#nhs_number\""), "{}", p.body);
    assert!(p.body.contains("<title>Error: "));

    let nhs_number = nhs(1);
    let (code, issued) = issue(&mut staff, &nhs_number).await;
    assert_eq!(code.len(), 11, "{code}");
    assert!(issued.body.contains("<svg role=\"img\""), "inline QR");
    // The link is on the configured public base URL.
    let link = format!("join&#x2f;{}\"", onboarding::normalise_code(&code).unwrap());
    assert!(issued.body.contains(&link), "link shown: {}", issued.body);
    let child = onboarding::find_child(&s.store, &nhs_number)
        .await
        .unwrap()
        .expect("passport created");
    assert_eq!(child.birth_date, "2019-03-27");
    let states = s
        .store
        .data()
        .test_store()
        .passport_states(now_us())
        .await
        .unwrap();
    assert_eq!(states, vec![(child.id.clone(), PassportState::Invited)]);

    // The parent types the code at /join, then signs in. (A new sign-in made here waits for
    // its email address to be verified: tests/mail.rs.)
    directory::create_family(
        &s.store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "sam@example.com".into(),
            name: "Sam Jones".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    let mut parent = Browser::new(&srv.base);
    let p = parent
        .submit("/join", "/join", &[("code", &code.to_lowercase())])
        .await;
    assert_eq!(p.status, 303);
    let path = p.location.clone();
    let page = parent.get(&path).await;
    assert!(page.body.contains("Join Mia"), "{}", page.body);
    let p = parent
        .submit(
            &path,
            &path,
            &[
                ("relationship", "MTH"),
                ("has_account", "yes"),
                ("email", "sam@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("You are now linked"));
    assert!(parent.jar.contains_key("passport_session"), "signed in");
    let home = parent.get("/").await;
    assert!(home.body.contains("Sam Jones"), "{}", home.body);

    let links = links_of(&s.store, "sam@example.com").await;
    assert_eq!(links.len(), 1);
    // The audit trail names who made each change: the clinician made the passport (and
    // its care team), the parent linked themselves by accepting the invitation.
    assert_eq!(
        changes(&s.store, &child.id).await,
        [
            "C Patient by A Clinician",
            "C CareTeam by A Clinician",
            "C RelatedPerson by Sam Jones"
        ]
    );
    let rp = &links[0];
    assert_eq!(rp["active"], true);
    assert_eq!(rp["patient"]["reference"], format!("Patient/{}", child.id));
    assert_eq!(rp["relationship"][0]["coding"][0]["code"], "MTH");
    assert_eq!(
        rp["relationship"][0]["coding"][0]["system"],
        onboarding::ROLE_CODE_SYSTEM
    );
    assert_eq!(
        rp["extension"][0]["url"],
        onboarding::PARENTAL_RESPONSIBILITY_EXTENSION
    );
    assert_eq!(rp["extension"][0]["valueBoolean"], true);
    let states = s
        .store
        .data()
        .test_store()
        .passport_states(now_us())
        .await
        .unwrap();
    assert_eq!(states, vec![(child.id.clone(), PassportState::Active)]);

    // The same code again, by someone else: refused.
    let mut other = Browser::new(&srv.base);
    let p = other.get(&path).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("already been used"), "{}", p.body);

    // An existing family sign-in redeems a second invitation for the same child.
    let (code2, _) = issue(&mut staff, &nhs_number).await;
    let path2 = format!("/join/{}", onboarding::normalise_code(&code2).unwrap());
    directory::create_family(
        &s.store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "lee@example.com".into(),
            name: "Lee Jones".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    let mut lee = Browser::new(&srv.base);
    let p = lee
        .submit(
            &path2,
            &path2,
            &[
                ("relationship", "FTH"),
                ("has_account", "yes"),
                ("email", "lee@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "wrong password refused");
    let p = lee
        .submit(
            &path2,
            &path2,
            &[
                ("relationship", "FTH"),
                ("has_account", "yes"),
                ("email", "lee@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(links_of(&s.store, "lee@example.com").await.len(), 1);

    // Staff of another organisation cannot invite for this child.
    let mut bob = Browser::new(&srv.base);
    bob.sign_in_staff("bob@example.nhs.uk", &s.outsider).await;
    let p = bob
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[("nhs_number", &nhs_number)],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("not in their care team"), "{}", p.body);
    let _ = &s.other_org;
    s.store.close().await;
});

/// The child's audit trail of changes, oldest first: "C RelatedPerson/… by Alex Brown".
async fn changes(store: &passport_server::Domain, child: &str) -> Vec<String> {
    let log = store
        .data()
        .test_store()
        .list_audit(&passport_store::AuditQuery {
            patient_id: Some(child.into()),
            count: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out: Vec<String> = log
        .iter()
        .rev()
        .filter_map(|e| {
            let ev: Value = serde_json::from_slice(&e.record.event).ok()?;
            let action = ev["action"].as_str()?;
            if action == "R" || action == "E" {
                return None;
            }
            // The changed resource: the entity that is not the child's Patient, if any.
            let refs: Vec<&str> = ev["entity"]
                .as_array()?
                .iter()
                .filter_map(|x| x["what"]["reference"].as_str())
                .collect();
            let what = refs
                .iter()
                .find(|r| !r.starts_with("Patient/"))
                .or(refs.first())?
                .split('/')
                .next()?
                .to_owned();
            let who = ev["agent"][0]["who"]["display"].as_str().unwrap_or("?");
            Some(format!("{action} {what} by {who}"))
        })
        .collect();
    out.dedup();
    out
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

on_both_databases!(expired_revoked_and_unknown_codes_are_refused, |srv| {
    let s = seed(&srv.database_url).await;
    let child = onboarding::Child {
        id: uuid::Uuid::now_v7().to_string(),
        nhs_number: nhs(2),
        given: "Ola".into(),
        family: "Smith".into(),
        birth_date: "2018-01-02".into(),
    };
    s.store
        .records()
        .write_all(
            &fixture(),
            onboarding::new_child_writes(&child, &s.org).unwrap(),
        )
        .await
        .map_err(|e| e.error)
        .unwrap();
    let (expired, code) =
        onboarding::new_invitation(&child.id, None, Some(&s.org), None, now_us(), -60);
    let (revoked, code2) =
        onboarding::new_invitation(&child.id, None, Some(&s.org), None, now_us(), 3600);
    let revoked_id = revoked.id.clone();
    s.store
        .data()
        .test_store()
        .create_invitations(vec![expired, revoked])
        .await
        .unwrap();
    assert!(
        s.store
            .data()
            .test_store()
            .revoke_invitation(&revoked_id, now_us())
            .await
            .unwrap()
    );
    let mut b = Browser::new(&srv.base);
    let p = b.get(&format!("/join/{code}")).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("has expired"), "{}", p.body);
    let p = b.get(&format!("/join/{code2}")).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("cancelled"), "{}", p.body);
    let p = b.get("/join/ABCDE12345").await;
    assert_eq!(p.status, 404);
    let p = b.get("/join/not-a-code").await;
    assert_eq!(p.status, 404);
    // A bad code typed at /join: an error summary.
    let p = b.submit("/join", "/join", &[("code", "123")]).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("href=\"#code\""), "{}", p.body);
    s.store.close().await;
});

on_both_databases!(self_registration_is_pending_until_confirmed, |srv| {
    let s = seed(&srv.database_url).await;
    let child = onboarding::Child {
        id: uuid::Uuid::now_v7().to_string(),
        nhs_number: nhs(3),
        given: "Kai".into(),
        family: "Brown".into(),
        birth_date: "2017-05-06".into(),
    };
    s.store
        .records()
        .write_all(
            &fixture(),
            onboarding::new_child_writes(&child, &s.org).unwrap(),
        )
        .await
        .map_err(|e| e.error)
        .unwrap();
    // Signed-in family members ask (a new sign-in first verifies its email address, then
    // asks the same way: tests/mail.rs).
    let register = |email: &'static str, nhs_number: String, dob: &'static str| {
        let base = srv.base.clone();
        let store = &s.store;
        async move {
            directory::create_family(
                store,
                &passport_server::records::Agent::operator("test fixture"),
                directory::NewFamily {
                    email: email.into(),
                    name: "Alex Brown".into(),
                    password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
            let mut b = Browser::new(&base);
            assert_eq!(b.sign_in(email, PASSWORD).await.location, "/");
            let p = b
                .submit(
                    "/register",
                    "/register",
                    &[
                        ("relationship", "PRN"),
                        ("nhs_number", &nhs_number),
                        ("birth_date", dob),
                    ],
                )
                .await;
            assert_eq!(p.status, 200, "{}", p.body);
            p.between("<main", "</main>")
        }
    };
    // Matching child, wrong date of birth, unknown child: the same answer.
    let matched = register("alex@example.com", nhs(3), "06/05/2017").await;
    let wrong_dob = register("robin@example.com", nhs(3), "07/05/2017").await;
    let unknown = register("jo@example.com", nhs(400), "06/05/2017").await;
    assert_eq!(matched, wrong_dob);
    assert_eq!(matched, unknown);
    assert!(matched.contains("Your request has been sent"));
    let pending = links_of(&s.store, "alex@example.com").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["active"], false);
    assert!(links_of(&s.store, "robin@example.com").await.is_empty());
    assert!(links_of(&s.store, "jo@example.com").await.is_empty());
    assert_eq!(
        s.store
            .data()
            .test_store()
            .passport_states(now_us())
            .await
            .unwrap(),
        vec![]
    );

    // Staff of another organisation see nothing.
    let mut bob = Browser::new(&srv.base);
    bob.sign_in_staff("bob@example.nhs.uk", &s.outsider).await;
    let p = bob.get("/onboarding/requests").await;
    assert!(p.body.contains("id=\"no-requests\""), "{}", p.body);
    let rp_id = pending[0]["id"].as_str().unwrap().to_owned();
    let p = bob
        .submit(
            "/onboarding/invite",
            &format!("/onboarding/requests/{rp_id}"),
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(p.status, 404);

    // The care team's clinician confirms.
    let mut ada = Browser::new(&srv.base);
    ada.sign_in_staff("ada@example.nhs.uk", &s.staff).await;
    let p = ada.get("/onboarding/requests").await;
    assert!(p.body.contains("Alex Brown"), "{}", p.body);
    assert!(p.body.contains("Kai Brown"));
    let p = ada
        .submit(
            "/onboarding/requests",
            &format!("/onboarding/requests/{rp_id}"),
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let now = links_of(&s.store, "alex@example.com").await;
    assert_eq!(now[0]["active"], true);
    // The pending tag is gone; its section (contacts, given when it was written) stays.
    assert_eq!(
        now[0]["meta"]["tag"],
        serde_json::json!([access::Section::Contacts.tag()]),
        "{}",
        now[0]
    );
    assert_eq!(
        s.store
            .data()
            .test_store()
            .passport_states(now_us())
            .await
            .unwrap(),
        vec![(child.id.clone(), PassportState::Activated)]
    );
    // The parent signs in: family activity makes the passport active.
    let mut alex = Browser::new(&srv.base);
    let p = alex
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", "alex@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.location, "/");
    assert_eq!(
        s.store
            .data()
            .test_store()
            .passport_state_counts(now_us())
            .await
            .unwrap(),
        vec![
            (PassportState::Invited, 0),
            (PassportState::Activated, 0),
            (PassportState::Active, 1),
            (PassportState::Dormant, 0)
        ]
    );

    // A second request is declined: the RelatedPerson is gone.
    register("casey@example.com", nhs(3), "2017-05-06").await;
    let rp2 = links_of(&s.store, "casey@example.com").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = ada
        .submit(
            "/onboarding/requests",
            &format!("/onboarding/requests/{rp2}"),
            &[("decision", "decline")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(links_of(&s.store, "casey@example.com").await.is_empty());
    assert!(read(&s.store, "RelatedPerson", &rp2).await.is_none());
    let p = ada.get("/onboarding/requests").await;
    assert!(p.body.contains("id=\"no-requests\""), "{}", p.body);
    // Each change of who may see the child is in its audit trail, naming who made it: the
    // requests (by the family members), the confirmation and the refusal (by the clinician).
    let trail = changes(&s.store, &child.id).await;
    for expected in [
        "C RelatedPerson by Alex Brown",
        "U RelatedPerson by A Clinician",
        "D RelatedPerson by A Clinician",
    ] {
        assert!(trail.iter().any(|t| t == expected), "{expected}: {trail:?}");
    }
    assert_eq!(
        trail
            .iter()
            .filter(|t| t.starts_with("C RelatedPerson"))
            .count(),
        2,
        "{trail:?}"
    );
    s.store.close().await;
});

on_both_databases!(clinic_list_import_is_all_or_nothing, |srv| {
    let s = seed(&srv.database_url).await;
    let (a, b, c) = (nhs(10), nhs(20), nhs(30));
    let bad = format!(
        "nhs_number,given,family,birth_date,parent_email\n\
         {a},Amy,Ray,2019-01-01,amy.parent@example.com\n\
         1234567890,Ben,Ray,2019-01-01,\n\
         {c},Cat,Ray,31/02/2019,\n"
    );
    let errors =
        onboarding::import_clinic_list(&srv.state.domain, &fixture(), "RXX", &bad, &srv.base, 3600)
            .await
            .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("line 3:"), "{errors:?}");
    assert!(errors[1].starts_with("line 4:"), "{errors:?}");
    assert!(
        onboarding::find_child(&s.store, &a)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.store
            .data()
            .test_store()
            .passport_facts(now_us())
            .await
            .unwrap()
            .is_empty()
    );

    let good = format!(
        "nhs_number,given,family,birth_date,parent_email\n\
         {a},Amy,Ray,2019-01-01,amy.parent@example.com\n\
         {b},Ben,Ray,02/01/2019,\n"
    );
    let rows = onboarding::import_clinic_list(
        &srv.state.domain,
        &fixture(),
        "RXX",
        &good,
        &srv.base,
        3600,
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.created));
    let ben = onboarding::find_child(&s.store, &b).await.unwrap().unwrap();
    assert_eq!(ben.birth_date, "2019-01-02");
    assert_eq!(
        s.store
            .data()
            .test_store()
            .passport_state_counts(now_us())
            .await
            .unwrap()[0],
        (PassportState::Invited, 2)
    );
    // The printed link works.
    let mut parent = Browser::new(&srv.base);
    let path = rows[1].link.strip_prefix(&srv.base).unwrap().to_owned();
    let p = parent.get(&path).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Join Ben"));
    // Importing again finds the passports and issues new invitations.
    let again = onboarding::import_clinic_list(
        &srv.state.domain,
        &fixture(),
        &s.org,
        &good,
        &srv.base,
        3600,
    )
    .await
    .unwrap();
    assert!(again.iter().all(|r| !r.created));
    assert_eq!(
        s.store
            .data()
            .test_store()
            .invitations_for(&ben.id)
            .await
            .unwrap()
            .len(),
        2
    );
    s.store.close().await;
});

on_both_databases!(csrf_is_checked_on_every_new_form, |srv| {
    let s = seed(&srv.database_url).await;
    let mut ada = Browser::new(&srv.base);
    ada.sign_in_staff("ada@example.nhs.uk", &s.staff).await;
    for path in ["/onboarding/invite", "/onboarding/requests/x"] {
        let p = ada
            .post(
                path,
                &[("nhs_number", "9434765919"), ("csrf_token", "forged")],
            )
            .await;
        assert_eq!(p.status, 403, "{path}");
        assert!(p.body.contains("Your form could not be sent"));
    }
    let mut anon = Browser::new(&srv.base);
    anon.get("/join").await; // sets the anonymous CSRF cookie
    for path in [
        "/join",
        "/join/ABCDE12345",
        "/register",
        "/verify-email/ABCDE12345",
    ] {
        let p = anon
            .post(path, &[("code", "ABCDE12345"), ("csrf_token", "forged")])
            .await;
        assert_eq!(p.status, 403, "{path}");
        // No token at all.
        let p = anon.post(path, &[("code", "ABCDE12345")]).await;
        assert_eq!(p.status, 403, "{path}");
    }
    s.store.close().await;
});

// Check your answers: a new passport is created only after the member of staff has seen
// its details; "change the details" brings the form back filled in; nothing is made before.
on_both_databases!(a_new_passport_is_checked_before_it_is_made, |srv| {
    let s = seed(&srv.database_url).await;
    let mut staff = Browser::new(&srv.base);
    staff.sign_in_staff("ada@example.nhs.uk", &s.staff).await;
    let nhs_number = nhs(7);
    let check = staff
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[
                ("nhs_number", &nhs_number),
                ("given", "Ola"),
                ("family", "Smith"),
                ("birth_date", "02/01/2018"),
            ],
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.body);
    assert!(
        check.body.contains("id=\"check-answers\""),
        "{}",
        check.body
    );
    assert!(check.body.contains("2 January 2018") && check.body.contains("Ola Smith"));
    assert!(
        onboarding::find_child(&s.store, &nhs_number)
            .await
            .unwrap()
            .is_none(),
        "nothing is made before the check"
    );
    // Change the details: the form again, with what was typed.
    let mut edit = check.hidden_fields();
    edit.retain(|(k, _)| k != "confirmed");
    edit.push(("edit".into(), "yes".into()));
    let form = staff.post("/onboarding/invite", &edit).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"Ola\""), "{}", form.body);
    assert!(
        onboarding::find_child(&s.store, &nhs_number)
            .await
            .unwrap()
            .is_none()
    );
    // Confirmed: made, and the invitation issued.
    let made = staff.confirm_new_passport(check).await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("id=\"invitation-code\""));
    assert!(
        onboarding::find_child(&s.store, &nhs_number)
            .await
            .unwrap()
            .is_some()
    );
    s.store.close().await;
});
