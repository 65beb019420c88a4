//! The admin, sharing-choices, break-glass, privacy-review and family access-log pages over
//! real HTTP, on SQLite and PostgreSQL: who may use each page and who is refused, CSRF
//! refusal, the error summary on bad input, deactivation ending sessions and tokens at
//! once, break-glass (reason required, emergency content only, expiry, review) and the
//! family's access log (no safeguarding records; emergency access shown).

mod common;

use access::{Role, Section, Sector, SharingChoices};
use common::browser::{Browser, PASSWORD};
use common::fixture;
use passport_server::audit::{AuditEventSpec, EventKind, Interaction, Named, Purpose, Who};
use passport_server::region;
use passport_server::web::directory;
use passport_server::web::onboarding;
use passport_store::AuditQuery;
use passport_store::break_glass::BreakGlassRow;
use passport_store::oauth::RefreshToken;
use serde_json::{Value, json};

const NHS: &str = "9434765919";

/// A member of staff: (email, TOTP secret, account id).
async fn staff(
    store: &passport_server::Domain,
    org: &str,
    role: Role,
    email: &str,
    name: &str,
) -> (String, Vec<u8>, String) {
    let c = directory::create_staff(
        store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewStaff {
            organisation: org.into(),
            role,
            email: email.into(),
            name: name.into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    (email.to_owned(), c.totp_secret.unwrap(), c.account_id)
}

struct World {
    store: std::sync::Arc<passport_server::Domain>,
    child: String,
    hospital: String,
    er: String,
    regional: (String, Vec<u8>, String),
    org_admin: (String, Vec<u8>, String),
    care_clinician: (String, Vec<u8>, String),
    er_clinician: (String, Vec<u8>, String),
    er_officer: (String, Vec<u8>, String),
    teacher: (String, Vec<u8>, String),
    parent: String,
    relative: String,
    stranger: String,
}

/// The shared test region (`region::Spec::standard`): Mia in the hospital's care team with
/// a parent (with parental responsibility), a relative (without) and items in several
/// sections; a stranger linked to nobody.
async fn world(url: &str) -> World {
    let store =
        passport_server::Domain::open(domain::Settings::admin(url, "https://passport.test"))
            .await
            .unwrap();
    let r = region::seed(&store, &fixture(), &region::Spec::standard(PASSWORD))
        .await
        .unwrap();
    let login = |email: &str| {
        let s = r.staff(email);
        (s.email.clone(), s.totp_secret.clone(), s.account_id.clone())
    };
    World {
        child: r.child("mia").to_owned(),
        hospital: r.org("hospital").to_owned(),
        er: r.org("er").to_owned(),
        regional: login("rae@example.nhs.uk"),
        org_admin: login("oli@example.nhs.uk"),
        care_clinician: login("cara@example.nhs.uk"),
        er_clinician: login("erin@example.nhs.uk"),
        er_officer: login("pat@example.nhs.uk"),
        teacher: login("tom@example.sch.uk"),
        parent: "sam@example.com".into(),
        relative: "gran@example.com".into(),
        stranger: "nosy@example.com".into(),
        store,
    }
}

async fn signed_in_staff(base: &str, who: &(String, Vec<u8>, String)) -> Browser {
    let mut b = Browser::new(base).unescaping_slashes();
    b.sign_in_staff(&who.0, &who.1).await;
    b
}

async fn signed_in_family(base: &str, email: &str) -> Browser {
    let mut b = Browser::new(base).unescaping_slashes();
    let p = b
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location, "/");
    b
}

on_both_databases!(admin_pages, |srv| {
    let w = world(&srv.database_url).await;
    // Not signed in: to the sign-in page.
    let mut anon = Browser::new(&srv.base).unescaping_slashes();
    assert_eq!(anon.get("/admin/organisations").await.location, "/sign-in");

    let mut ra = signed_in_staff(&srv.base, &w.regional).await;
    let home = ra.get("/").await;
    assert!(
        home.body.contains("href=\"/admin/organisations\""),
        "{}",
        home.body
    );
    assert!(home.body.contains("href=\"/admin/clients\""));
    let list = ra.get("/admin/organisations").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Northgate Emergency Department"));
    // Bad input: the error summary links to each field.
    let bad = ra
        .submit(
            "/admin/organisations",
            "/admin/organisations",
            &[("name", ""), ("sector", "castle"), ("region", "")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.has_error_summary_for("name")
            && bad.has_error_summary_for("sector")
            && bad.has_error_summary_for("region"),
        "{}",
        bad.body
    );
    // A duplicate ODS code.
    let dup = ra
        .submit(
            "/admin/organisations",
            "/admin/organisations",
            &[
                ("name", "Copy"),
                ("sector", "gp-practice"),
                ("ods", "RXX"),
                ("region", "North"),
            ],
        )
        .await;
    assert_eq!(dup.status, 400);
    assert!(dup.has_error_summary_for("ods"));
    let ok = ra
        .submit(
            "/admin/organisations",
            "/admin/organisations",
            &[
                ("name", "Elm Surgery"),
                ("sector", "gp-practice"),
                ("ods", "b81001"),
                ("region", "North"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let made = directory::find_organisation(&w.store, "B81001")
        .await
        .unwrap();
    assert_eq!(
        (made.name.as_str(), made.sector),
        ("Elm Surgery", Sector::GpPractice)
    );
    // CSRF.
    let forged = ra
        .post(
            "/admin/organisations",
            &[
                ("name", "Forged"),
                ("sector", "gp-practice"),
                ("region", "North"),
                ("csrf_token", "wrong"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        directory::list_organisations(&w.store)
            .await
            .unwrap()
            .iter()
            .all(|o| o.name != "Forged")
    );

    // Clients: validation (shared with the command line), the secret shown once.
    let bad = ra
        .submit(
            "/admin/clients",
            "/admin/clients",
            &[
                ("name", "Ward app"),
                ("grant", "authorization_code"),
                ("scope", "user/Patient.rs"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.has_error_summary_for("redirect_uris"), "{}", bad.body);
    let made = ra
        .submit(
            "/admin/clients",
            "/admin/clients",
            &[
                ("name", "GP system"),
                ("grant", "client_credentials"),
                ("scope", "system/Patient.rs"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let between = |s: &str, a: &str, b: &str| {
        let i = s.find(a).unwrap() + a.len();
        s[i..i + s[i..].find(b).unwrap()].to_owned()
    };
    let client_id = between(&made.body, "<code id=\"client-id\">", "<");
    let secret = between(&made.body, "<code id=\"client-secret\">", "<");
    assert!(secret.len() >= 32);
    let list = ra.get("/admin/clients").await;
    assert!(list.body.contains(&client_id) && !list.body.contains(&secret));
    let d = ra
        .submit(
            "/admin/clients",
            &format!("/admin/clients/{client_id}/deactivate"),
            &[],
        )
        .await;
    assert_eq!(d.status, 303);
    assert!(
        !w.store
            .data()
            .test_store()
            .oauth_client(&client_id)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    // The regional admin does not manage an organisation's staff.
    assert_eq!(ra.get("/admin/staff").await.status, 403);

    // Everyone else is refused.
    let mut oa = signed_in_staff(&srv.base, &w.org_admin).await;
    assert_eq!(oa.get("/admin/organisations").await.status, 403);
    assert_eq!(oa.get("/admin/clients").await.status, 403);
    let mut fam = signed_in_family(&srv.base, &w.parent).await;
    assert_eq!(fam.get("/admin/organisations").await.status, 403);
    assert_eq!(fam.get("/admin/staff").await.status, 403);

    // The organisation admin: their own staff only.
    let staff_list = oa.get("/admin/staff").await;
    assert_eq!(staff_list.status, 200);
    assert!(staff_list.body.contains("Cara Carer") && !staff_list.body.contains("Erin Medic"));
    let bad = oa
        .submit(
            "/admin/staff",
            "/admin/staff",
            &[
                ("name", "New Nurse"),
                ("email", "not-an-email"),
                ("role", "nurse"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.has_error_summary_for("email"));
    let bad = oa
        .submit(
            "/admin/staff",
            "/admin/staff",
            &[
                ("name", "Boss"),
                ("email", "boss@example.nhs.uk"),
                ("role", "regional-admin"),
            ],
        )
        .await;
    assert!(
        bad.has_error_summary_for("role"),
        "an organisation admin cannot make a regional admin"
    );
    let made = oa
        .submit(
            "/admin/staff",
            "/admin/staff",
            &[
                ("name", "Nia Nurse"),
                ("email", "nia@example.nhs.uk"),
                ("role", "nurse"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("/reset-password/") && made.body.contains("otpauth://"));
    let nia = w
        .store
        .data()
        .test_store()
        .account_by_login("nia@example.nhs.uk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (nia.role.as_deref(), nia.organisation_id.as_deref()),
        (Some("nurse"), Some(w.hospital.as_str()))
    );
    // Another organisation's member of staff cannot be changed from here.
    let other = oa
        .submit(
            "/admin/staff",
            &format!("/admin/staff/{}/deactivate", w.er_clinician.2),
            &[],
        )
        .await;
    assert_eq!(other.status, 404);
    assert!(
        w.store
            .data()
            .test_store()
            .account(&w.er_clinician.2)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    w.store.close().await;
});

// Issue 8, item 3: a school's organisation admin can give only the roles a school may
// have; clinical roles (and with them break-glass) are for health organisations.
on_both_databases!(a_school_cannot_mint_a_clinician, |srv| {
    let w = world(&srv.database_url).await;
    let school = w
        .store
        .data()
        .test_store()
        .account_by_login(&w.teacher.0)
        .await
        .unwrap()
        .unwrap()
        .organisation_id
        .unwrap();
    let head = staff(
        &w.store,
        &school,
        Role::OrganisationAdmin,
        "head@example.sch.uk",
        "Hana Head",
    )
    .await;
    let mut oa = signed_in_staff(&srv.base, &head).await;
    let list = oa.get("/admin/staff").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("value=\"school-staff\"") && !list.body.contains("value=\"clinician\""),
        "{}",
        list.body
    );
    for role in [
        "clinician",
        "nurse",
        "allied-health-professional",
        "social-worker",
    ] {
        let bad = oa
            .submit(
                "/admin/staff",
                "/admin/staff",
                &[
                    ("name", "Fake Doctor"),
                    ("email", "fake@example.sch.uk"),
                    ("role", role),
                ],
            )
            .await;
        assert_eq!(bad.status, 400, "{role}");
        assert!(bad.has_error_summary_for("role"), "{role}: {}", bad.body);
    }
    assert!(
        w.store
            .data()
            .test_store()
            .account_by_login("fake@example.sch.uk")
            .await
            .unwrap()
            .is_none()
    );
    let ok = oa
        .submit(
            "/admin/staff",
            "/admin/staff",
            &[
                ("name", "Tess Teacher"),
                ("email", "tess@example.sch.uk"),
                ("role", "school-staff"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    w.store.close().await;
});

on_both_databases!(deactivation_ends_sessions_and_tokens_at_once, |srv| {
    let w = world(&srv.database_url).await;
    let mut leaver = signed_in_staff(&srv.base, &w.care_clinician).await;
    assert_eq!(leaver.get("/").await.status, 200);
    // A refresh token and its access token, issued to the leaver through an app.
    let now = passport_server::clock::now_us();
    let token = RefreshToken {
        token_hash: "ab".repeat(32),
        family: "family-1".into(),
        client_id: "app".into(),
        scope: "openid".into(),
        subject: Some(w.care_clinician.2.clone()),
        context: "{}".into(),
        expires_us: now + 3_600_000_000,
        used_us: None,
        access_jti: Some("jti-1".into()),
        access_expires_us: Some(now + 600_000_000),
    };
    w.store
        .data()
        .test_store()
        .oauth_insert_refresh(&token, None)
        .await
        .unwrap();
    let mut oa = signed_in_staff(&srv.base, &w.org_admin).await;
    let forged = oa
        .post(
            &format!("/admin/staff/{}/deactivate", w.care_clinician.2),
            &[("csrf_token", "nope")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        leaver.get("/").await.status,
        200,
        "a refused form changes nothing"
    );
    let done = oa
        .submit(
            "/admin/staff",
            &format!("/admin/staff/{}/deactivate", w.care_clinician.2),
            &[],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    // At once: the next request is signed out, the refresh token is gone, the access token revoked.
    let after = leaver.get("/").await;
    assert_eq!(after.location, "/sign-in");
    assert!(
        w.store
            .data()
            .test_store()
            .oauth_refresh_token(&token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .data()
            .test_store()
            .oauth_is_revoked("jti-1")
            .await
            .unwrap()
    );
    let list = oa.get("/admin/staff").await;
    assert!(
        list.body
            .contains("Reactivate<span class=\"nhsuk-u-visually-hidden\"> Cara Carer")
    );
    // Reactivated: they can sign in again.
    let back = oa
        .submit(
            "/admin/staff",
            &format!("/admin/staff/{}/reactivate", w.care_clinician.2),
            &[],
        )
        .await;
    assert_eq!(back.status, 303);
    let mut again = Browser::new(&srv.base).unescaping_slashes();
    let p = again
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", &w.care_clinician.0), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.location, "/sign-in/code");
    w.store.close().await;
});

// The sharing pages, phone first: a summary in words per sector; one question per page
// to change a sector, or to make an exception for one organisation ("not schools, except
// St Mary's"); each saved as a new version of the child's one sharing Consent.
on_both_databases!(sharing_choices_are_a_versioned_consent, |srv| {
    let w = world(&srv.database_url).await;
    let path = format!("/passport/{}/sharing", w.child);
    let schools = format!("{path}/sector/education");
    let mut parent = signed_in_family(&srv.base, &w.parent).await;
    let home = parent.get("/").await;
    assert!(
        home.body.contains(&format!("href=\"{path}\"")),
        "{}",
        home.body
    );
    let summary = parent.get(&path).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    // The regional default, in words: schools see the emergency protocol, not conditions.
    let row = |body: &str, id: &str| {
        let start = body
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        let end = body[start..].find("</div>").unwrap() + start;
        body[start..end].to_owned()
    };
    let education = row(&summary.body, "sector-education");
    assert!(education.contains("the emergency protocol"), "{education}");
    assert!(!education.contains("health conditions"), "{education}");
    assert!(education.contains("what the region shares"), "{education}");
    assert!(education.contains(&format!("href=\"{schools}\"")));
    // One question: what schools see (the default ticked).
    let form = parent.get(&schools).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body
            .contains("What can schools, nurseries and colleges see?")
    );
    assert!(form.body.contains(
        "id=\"share-emergency\" name=\"share-emergency\" type=\"checkbox\" value=\"yes\" checked"
    ));
    assert!(!form.body.contains(
        "id=\"share-conditions\" name=\"share-conditions\" type=\"checkbox\" value=\"yes\" checked"
    ));
    // Schools: no emergency protocol, but conditions.
    let policy = access::RegionalPolicy::default();
    let mut wanted = policy.sector_default(Sector::Education);
    wanted.remove(Section::Emergency);
    wanted.insert(Section::Conditions);
    let fields: Vec<(String, String)> = wanted
        .iter()
        .map(|s| (format!("share-{}", s.code()), "yes".to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let forged = parent
        .post(
            &schools,
            &[refs.clone(), vec![("csrf_token", "x")]].concat(),
        )
        .await;
    assert_eq!(forged.status, 403);
    let saved = parent.submit(&schools, &schools, &refs).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location, format!("{path}?saved"));
    let consents = || async {
        w.store
            .data()
            .test_store()
            .revinclude(
                "Consent",
                Some("patient"),
                "Patient",
                std::slice::from_ref(&w.child),
            )
            .await
            .unwrap()
    };
    let found = consents().await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].version_id, 1);
    let body: Value = serde_json::from_slice(&found[0].body).unwrap();
    assert!(fhir::validate(&body).is_empty());
    assert!(
        body["performer"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("RelatedPerson/")
    );
    let at = access::Timestamp::from_unix(0);
    let choices = SharingChoices::from_consents(&[body]);
    assert_eq!(
        choices
            .staff_view(&policy, "any", Sector::Education, at)
            .visible,
        wanted
    );
    assert_eq!(
        choices
            .staff_view(&policy, "any", Sector::GpPractice, at)
            .visible,
        policy.sector_default(Sector::GpPractice)
    );
    // The summary says so in words.
    let summary = parent.get(&format!("{path}?saved")).await;
    assert!(summary.body.contains("id=\"saved\""));
    let education = row(&summary.body, "sector-education");
    assert!(education.contains("health conditions"), "{education}");
    assert!(!education.contains("the emergency protocol"), "{education}");

    // An exception for one organisation of the care team: the hospital sees only
    // allergies, whatever other hospitals see; then the same as others again.
    let hospital = format!("{path}/organisation/{}", w.hospital);
    let form = parent.get(&hospital).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        !form.body.contains("name=\"same\""),
        "no exception to undo yet"
    );
    let saved = parent
        .submit(&hospital, &hospital, &[("share-allergies", "yes")])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let found = consents().await;
    assert_eq!((found.len(), found[0].version_id), (1, 2));
    let choices = SharingChoices::from_consents(&[serde_json::from_slice(&found[0].body).unwrap()]);
    assert_eq!(
        choices
            .staff_view(&policy, &w.hospital, Sector::HospitalTrust, at)
            .visible,
        access::SectionSet::of(&[Section::Allergies])
    );
    assert_eq!(
        choices
            .staff_view(&policy, "another-hospital", Sector::HospitalTrust, at)
            .visible,
        policy.sector_default(Sector::HospitalTrust),
        "other hospitals keep the sector's choice"
    );
    assert_eq!(
        choices
            .staff_view(&policy, "any", Sector::Education, at)
            .visible,
        wanted,
        "the schools' choice is kept"
    );
    let summary = parent.get(&path).await;
    let org_row = row(&summary.body, &format!("org-{}", w.hospital));
    assert!(org_row.contains("Sees allergies."), "{org_row}");
    assert!(org_row.contains("Your choice for"), "{org_row}");
    assert!(
        row(&summary.body, "sector-hospital-trust").contains("Except "),
        "the exception is shown under its sector"
    );
    let form = parent.get(&hospital).await;
    assert!(form.body.contains("name=\"same\""));
    let same = parent
        .submit(&hospital, &hospital, &[("same", "yes")])
        .await;
    assert_eq!(same.status, 303, "{}", same.body);
    let found = consents().await;
    let choices = SharingChoices::from_consents(&[serde_json::from_slice(&found[0].body).unwrap()]);
    assert_eq!(
        choices
            .staff_view(&policy, &w.hospital, Sector::HospitalTrust, at)
            .visible,
        policy.sector_default(Sector::HospitalTrust)
    );
    // Every change is in the audit log as a consent change.
    let log = w
        .store
        .data()
        .test_store()
        .list_audit(&AuditQuery {
            patient_id: Some(w.child.clone()),
            count: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let changes = log
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.record.event).contains("consent-change"))
        .count();
    assert_eq!(changes, 3);
    // Refused: a relative without parental responsibility (403), anyone unlinked (404);
    // an organisation not in the care team, or an unknown sector (404).
    let mut relative = signed_in_family(&srv.base, &w.relative).await;
    assert_eq!(relative.get(&path).await.status, 403);
    assert_eq!(relative.get(&schools).await.status, 403);
    let mut stranger = signed_in_family(&srv.base, &w.stranger).await;
    assert_eq!(stranger.get(&path).await.status, 404);
    let mut clinician = signed_in_staff(&srv.base, &w.care_clinician).await;
    assert_eq!(clinician.get(&path).await.status, 404);
    assert_eq!(
        parent.get("/passport/no-such-child/sharing").await.status,
        404
    );
    assert_eq!(
        parent
            .get(&format!("{path}/organisation/no-such-org"))
            .await
            .status,
        404
    );
    assert_eq!(
        parent.get(&format!("{path}/sector/nowhere")).await.status,
        404
    );
    w.store.close().await;
});

async fn audit_settled(
    store: &passport_server::Domain,
    patient: &str,
    needle: &str,
) -> Vec<passport_store::AuditEntry> {
    for _ in 0..50 {
        let log = store
            .data()
            .test_store()
            .list_audit(&AuditQuery {
                patient_id: Some(patient.into()),
                include_safeguarding: true,
                count: 200,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        if log
            .iter()
            .any(|e| String::from_utf8_lossy(&e.record.event).contains(needle))
        {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no audit record with {needle}");
}

on_both_databases!(break_glass_review_and_family_log, |srv| {
    let w = world(&srv.database_url).await;
    // Not eligible: school staff; privacy officers.
    let mut teacher = signed_in_staff(&srv.base, &w.teacher).await;
    assert_eq!(teacher.get("/break-glass").await.status, 403);
    let mut er = signed_in_staff(&srv.base, &w.er_clinician).await;
    assert!(er.get("/").await.body.contains("href=\"/break-glass\""));
    // No reason: refused with the error summary, nothing stored.
    let p = er
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", "943 476 5919"),
                ("birth_date", "27/03/2019"),
                ("reason", " "),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.has_error_summary_for("reason"), "{}", p.body);
    // NHS Number right, date of birth wrong: no child found.
    let p = er
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "28/03/2019"),
                ("reason", "Unconscious in A&E"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.has_error_summary_for("nhs_number"));
    let forged = er
        .post(
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "27/03/2019"),
                ("reason", "x"),
                ("confirm", "yes"),
                ("csrf_token", "bad"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        w.store
            .data()
            .test_store()
            .break_glass_for_patient(&w.child)
            .await
            .unwrap()
            .is_empty()
    );
    // The care team does not need it.
    let mut care = signed_in_staff(&srv.base, &w.care_clinician).await;
    let p = care
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "27/03/2019"),
                ("reason", "Clinic"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 409);
    // With a reason: granted for four hours, audited, then the emergency content only.
    let p = er
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "27/03/2019"),
                ("reason", "Unconscious in A&E"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let grants = w
        .store
        .data()
        .test_store()
        .break_glass_for_patient(&w.child)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(
        (
            g.reason.as_str(),
            g.organisation_id.as_str(),
            g.account_id.as_str()
        ),
        (
            "Unconscious in A&E",
            w.er.as_str(),
            w.er_clinician.2.as_str()
        )
    );
    assert_eq!(g.expires_us - g.starts_us, 4 * 3600 * 1_000_000);
    assert_eq!(p.location, format!("/break-glass/{}", g.id));
    let content = er.get(&p.location).await;
    assert_eq!(content.status, 200, "{}", content.body);
    assert!(
        content.body.contains("Peanut allergy") && content.body.contains("Salbutamol inhaler"),
        "{}",
        content.body
    );
    assert!(
        !content.body.contains("Asthma diagnosis") && !content.body.contains("Amoxicillin course")
    );
    assert!(content.body.contains("id=\"notice\""));
    let log = audit_settled(&w.store, &w.child, "110127").await;
    let bg = log
        .iter()
        .find(|e| String::from_utf8_lossy(&e.record.event).contains("110127"))
        .unwrap();
    assert!(String::from_utf8_lossy(&bg.record.event).contains("ETREAT"));
    // Someone else cannot use the grant.
    assert_eq!(care.get(&p.location).await.status, 404);
    // An expired grant opens nothing.
    let now = passport_server::clock::now_us();
    let old = BreakGlassRow {
        id: uuid::Uuid::now_v7().to_string(),
        patient_id: w.child.clone(),
        practitioner_id: g.practitioner_id.clone(),
        account_id: g.account_id.clone(),
        organisation_id: g.organisation_id.clone(),
        reason: "Last night".into(),
        starts_us: now - 6 * 3600 * 1_000_000,
        expires_us: now - 2 * 3600 * 1_000_000,
        reviewed_us: None,
        reviewed_by: None,
    };
    w.store
        .data()
        .test_store()
        .create_break_glass(&old)
        .await
        .unwrap();
    let ended = er.get(&format!("/break-glass/{}", old.id)).await;
    assert_eq!(ended.status, 403);
    assert!(
        ended.body.contains("Your emergency access has ended") && !ended.body.contains("Peanut")
    );

    // Two more records about the child: one ordinary, one for safeguarding.
    let record = |name: &str, purpose: Purpose| {
        let mut s = AuditEventSpec::new(
            EventKind::Rest(Interaction::Read),
            Who {
                person: Named::new("Practitioner/x", name),
                ..Who::default()
            },
        );
        s.purpose = purpose;
        s.patient_id = Some(w.child.clone());
        s.resource = Some(("AllergyIntolerance".into(), Some("a1".into()), None));
        s.to_record("http://passport.test")
    };
    w.store
        .data()
        .test_store()
        .append_audit(vec![
            record("Nina Normal", Purpose::Treatment),
            record("Sally Safeguard", Purpose::Safeguarding),
        ])
        .await
        .unwrap();

    // The privacy officer of the clinician's organisation: unreviewed first, then reviewed.
    let mut officer = signed_in_staff(&srv.base, &w.er_officer).await;
    assert!(officer.get("/").await.body.contains("href=\"/privacy\""));
    let review = officer.get("/privacy").await;
    assert_eq!(review.status, 200);
    assert!(
        review.body.contains("Unconscious in A&amp;E") && review.body.contains("Erin Medic"),
        "{}",
        review.body
    );
    assert!(review.body.find("Unconscious").unwrap() < review.body.find("Last night").unwrap());
    let forged = officer
        .post(
            &format!("/privacy/break-glass/{}/reviewed", g.id),
            &[("csrf_token", "no")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let done = officer
        .submit(
            "/privacy",
            &format!("/privacy/break-glass/{}/reviewed", g.id),
            &[],
        )
        .await;
    assert_eq!(done.status, 303);
    let open: Vec<String> = w
        .store
        .data()
        .test_store()
        .break_glass_for_organisation(&w.er, true)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(open, vec![old.id.clone()]);
    assert!(officer.get("/privacy").await.body.contains("Reviewed on"));
    // The access log of the child, with safeguarding records.
    let log = officer.get(&format!("/privacy?nhs_number={NHS}")).await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains("Sally Safeguard") && log.body.contains("Nina Normal"));
    assert!(log.body.contains("nhsuk-tag--red"));
    let bad = officer.get("/privacy?nhs_number=123").await;
    assert_eq!(bad.status, 400);
    assert!(bad.has_error_summary_for("nhs_number"));
    // Another organisation's officer cannot review this grant; clinicians cannot see the page.
    assert_eq!(care.get("/privacy").await.status, 403);
    let mut ra = signed_in_staff(&srv.base, &w.regional).await;
    assert_eq!(
        ra.submit(
            "/admin/clients",
            &format!("/privacy/break-glass/{}/reviewed", old.id),
            &[]
        )
        .await
        .status,
        404
    );
    // A grant of an organisation without a privacy officer (the hospital) is the regional
    // admin's to review; the emergency department's officer does not see it.
    let orphan = BreakGlassRow {
        id: uuid::Uuid::now_v7().to_string(),
        organisation_id: w.hospital.clone(),
        reason: "Collapsed on the ward".into(),
        ..old.clone()
    };
    w.store
        .data()
        .test_store()
        .create_break_glass(&orphan)
        .await
        .unwrap();
    let review = ra.get("/privacy").await;
    assert_eq!(review.status, 200);
    assert!(
        review.body.contains("Collapsed on the ward") && !review.body.contains("Last night"),
        "{}",
        review.body
    );
    assert!(
        !officer
            .get("/privacy")
            .await
            .body
            .contains("Collapsed on the ward")
    );
    let done = ra
        .submit(
            "/privacy",
            &format!("/privacy/break-glass/{}/reviewed", orphan.id),
            &[],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(
        w.store
            .data()
            .test_store()
            .break_glass_for_organisation(&w.hospital, true)
            .await
            .unwrap()
            .is_empty()
    );

    // The family: emergency access shown prominently, safeguarding never.
    let path = format!("/passport/{}/access-log", w.child);
    let mut parent = signed_in_family(&srv.base, &w.parent).await;
    assert!(
        parent
            .get("/")
            .await
            .body
            .contains(&format!("href=\"{path}\""))
    );
    let fam = parent.get(&path).await;
    assert_eq!(fam.status, 200, "{}", fam.body);
    assert!(fam.body.contains("Emergency access by Erin Medic (Northgate Emergency Department) because \"Unconscious in A&amp;E\""), "{}", fam.body);
    assert!(fam.body.contains("Nina Normal"));
    assert!(!fam.body.contains("Sally Safeguard"));
    // Any linked family member may read it; nobody else.
    let mut relative = signed_in_family(&srv.base, &w.relative).await;
    assert_eq!(relative.get(&path).await.status, 200);
    let mut stranger = signed_in_family(&srv.base, &w.stranger).await;
    assert_eq!(stranger.get(&path).await.status, 404);
    assert_eq!(er.get(&path).await.status, 404);

    // Paging: newest first, 20 a page.
    let many: Vec<_> = (0..25)
        .map(|i| record(&format!("Reader {i:02}"), Purpose::Treatment))
        .collect();
    w.store
        .data()
        .test_store()
        .append_audit(many)
        .await
        .unwrap();
    let first = parent.get(&path).await;
    assert!(first.body.contains("Reader 24") && !first.body.contains("Reader 04"));
    let at = first
        .body
        .find("access-log?before=")
        .expect("an older page")
        + "access-log?before=".len();
    let seq: String = first.body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let second = parent.get(&format!("{path}?before={seq}")).await;
    assert!(
        second.body.contains("Reader 04") && !second.body.contains("Reader 24"),
        "{}",
        second.body
    );
    assert!(!second.body.contains("Sally Safeguard"));
    w.store.close().await;
});

/// The GET paths of the pages' route table that answer a person (pages, and the external
/// sign-in's callback; not the static assets), so a new page is covered without editing
/// this list.
fn page_routes() -> Vec<String> {
    use passport_server::web::{Serves, table};
    table()
        .iter()
        .filter(|r| matches!(r.get, Serves::Page | Serves::Redirect))
        .map(|r| r.path.to_owned())
        .collect()
}

/// The text a person sees: the page without tags, scripts, styles and comments.
fn visible_text(html: &str) -> String {
    let mut s = html.to_owned();
    for (open, close) in [
        ("<script", "</script>"),
        ("<style", "</style>"),
        ("<!--", "-->"),
    ] {
        while let Some(a) = s.find(open) {
            let b = s[a..].find(close).map_or(s.len(), |b| a + b + close.len());
            s.replace_range(a..b, " ");
        }
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Whether `text` has a date written as `YYYY-MM-DD` (pages write dates for people).
fn iso_date(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let w = &b[i..i + 10];
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        let edge = |j: Option<usize>| j.is_none_or(|j| !b[j].is_ascii_digit());
        (digits(0..4)
            && w[4] == b'-'
            && digits(5..7)
            && w[7] == b'-'
            && digits(8..10)
            && edge(i.checked_sub(1))
            && edge(Some(i + 10).filter(|j| *j < b.len())))
        .then(|| &text[i..i + 10])
    })
}

/// What no page may show: template syntax, serde_json internals or an ISO date.
fn render_faults(text: &str) -> Vec<String> {
    let mut faults: Vec<String> = ["$serde_json", "serde_json::", "{{", "}}", "{%", "%}"]
        .iter()
        .filter(|n| text.contains(*n))
        .map(|n| format!("shows {n:?}"))
        .collect();
    if let Some(d) = iso_date(text) {
        faults.push(format!("shows the ISO date {d}"));
    }
    faults
}

#[test]
fn render_faults_are_found() {
    assert!(render_faults("for 4 hours, born 27 March 2019").is_empty());
    for bad in [
        "for {'$serde_json::private::Number': '4'} hours",
        "Hello {{ name }}",
        "{% if x %}",
        "born 2019-03-27.",
    ] {
        assert!(!render_faults(bad).is_empty(), "{bad}");
    }
    assert!(render_faults("NHS Number 943 476 5919, code 12345-67-890").is_empty());
    assert_eq!(
        visible_text("<p title=\"2019-03-27\">a<script>{{x}}</script> &amp; b</p>").trim(),
        "a  & b"
    );
}

// Every page the web router serves, GET for a signed-out visitor, family members, a
// clinician in the care team, one on break-glass, school staff, an organisation admin, a
// privacy officer and the regional admin: no page shows template syntax, serde_json's
// internals (`{'$serde_json::private::Number': '4'}`, issue 9) or an ISO date.
on_both_databases!(every_page_renders_for_everyone, |srv| {
    let w = world(&srv.database_url).await;
    // A break-glass grant (its page), an invitation (its code) and a reset link.
    let mut er = signed_in_staff(&srv.base, &w.er_clinician).await;
    let p = er
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "27/03/2019"),
                ("reason", "Unconscious in A&E"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let grant = p.location.trim_start_matches("/break-glass/").to_owned();
    let (invitation, code) = onboarding::new_invitation(
        &w.child,
        None,
        Some(&w.hospital),
        None,
        passport_server::clock::now_us(),
        3600,
    );
    w.store
        .data()
        .test_store()
        .create_invitations(vec![invitation])
        .await
        .unwrap();
    let reset = directory::issue_password_reset(&w.store, &w.stranger, &srv.base, 3600)
        .await
        .unwrap();
    let reset_token = reset.rsplit('/').next().unwrap().to_owned();
    let fill = |route: &str| -> String {
        let mut path = route.to_owned();
        for (param, value) in [
            ("{patient}", w.child.as_str()),
            ("{grant}", grant.as_str()),
            ("{code}", code.as_str()),
            ("{token}", reset_token.as_str()),
            ("{provider}", "nhs-login"),
            ("{form}", "allergy"),
            ("{org}", w.hospital.as_str()),
            ("{sector}", "education"),
            ("{type}", "AllergyIntolerance"),
            ("{id}", "mia-allergy"),
        ] {
            path = path.replace(param, value);
        }
        assert!(!path.contains('{'), "no value for a parameter of {route}");
        path
    };
    let routes = page_routes();
    for must in ["/break-glass", "/register", "/reset-password/{token}"] {
        assert!(routes.iter().any(|r| r == must), "{must} not in {routes:?}");
    }

    let mut visitors = vec![
        ("signed out", Browser::new(&srv.base)),
        ("parent", signed_in_family(&srv.base, &w.parent).await),
        ("relative", signed_in_family(&srv.base, &w.relative).await),
        (
            "care clinician",
            signed_in_staff(&srv.base, &w.care_clinician).await,
        ),
        ("break-glass clinician", er),
        ("teacher", signed_in_staff(&srv.base, &w.teacher).await),
        ("org admin", signed_in_staff(&srv.base, &w.org_admin).await),
        (
            "privacy officer",
            signed_in_staff(&srv.base, &w.er_officer).await,
        ),
        (
            "regional admin",
            signed_in_staff(&srv.base, &w.regional).await,
        ),
    ];
    let mut faults = Vec::new();
    let mut pages = 0;
    for (who, browser) in &mut visitors {
        for route in &routes {
            let path = fill(route);
            let page = browser.get(&path).await;
            assert!(page.status < 500, "{who} GET {path}: {}", page.status);
            let html = page
                .headers
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
            if !html {
                continue;
            }
            pages += 1;
            for f in render_faults(&visible_text(&page.body)) {
                faults.push(format!("{who} GET {path} ({}): {f}", page.status));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    assert!(pages > routes.len() * 5, "only {pages} pages were seen");

    // The pages that showed issue 9's numbers, with the numbers right.
    let mut signed_out = Browser::new(&srv.base);
    let register = visible_text(&signed_out.get("/register").await.body);
    assert!(register.contains("12 characters"), "{register}");
    let reset_page = visible_text(&signed_out.get(&fill("/reset-password/{token}")).await.body);
    assert!(reset_page.contains("12 characters"), "{reset_page}");
    let (_, er) = &mut visitors[4];
    let bg = visible_text(&er.get("/break-glass").await.body);
    assert!(bg.contains("for 4 hours"), "{bg}");
    w.store.close().await;
});

/// Invites a family for the child with this NHS Number (made if new) as the signed-in
/// member of staff; returns the invitation code.
async fn invite(b: &mut Browser, nhs_number: &str) -> String {
    let p = b
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[
                ("nhs_number", nhs_number),
                ("given", "Leo"),
                ("family", "Jones"),
                ("birth_date", "01/02/2020"),
                ("parent_email", "leo.parent@example.com"),
            ],
        )
        .await;
    let p = b.confirm_new_passport(p).await;
    assert_eq!(p.status, 200, "{}", p.body);
    onboarding::normalise_code(&p.between("id=\"invitation-code\">", "<")).unwrap()
}

/// The child's audit trail, oldest first, as (action, resource type, agent): every event
/// but reads.
async fn trail(store: &passport_server::Domain, child: &str) -> Vec<(String, String, String)> {
    let log = store
        .data()
        .test_store()
        .list_audit(&passport_store::AuditQuery {
            patient_id: Some(child.into()),
            count: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    log.iter()
        .rev()
        .filter_map(|e| {
            let ev: Value = serde_json::from_slice(&e.record.event).ok()?;
            let action = ev["action"].as_str()?.to_owned();
            if action == "R" {
                return None;
            }
            let what = ev["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["what"]["reference"].as_str())
                .map(|r| r.split('/').next().unwrap_or_default().to_owned())
                .find(|t| t != "Patient")
                .unwrap_or_else(|| "Patient".into());
            let who = ev["agent"][0]["who"]["display"].as_str()?.to_owned();
            Some((action, what, who))
        })
        .collect()
}

/// Asserts that `child`'s trail gained, since it held `before` events, one naming `who` as
/// the agent of a change to a `what` (any type when `what` is empty).
async fn assert_audited(
    store: &passport_server::Domain,
    child: &str,
    before: usize,
    what: &str,
    who: &str,
) -> usize {
    let t = trail(store, child).await;
    assert!(
        t[before.min(t.len())..]
            .iter()
            .any(|(_, w, a)| (what.is_empty() || w == what) && a == who),
        "no change to {what} by {who} after event {before}: {t:?}"
    );
    t.len()
}

// Every page route the route table marks as changing who may see a child (or what they
// see) leaves an AuditEvent in that child's record naming the person who made the change.
// The table is iterated: a new route of that kind fails here until it is exercised below.
on_both_databases!(every_access_route_is_audited, |srv| {
    use passport_server::web::{Effect, table};
    const LEO: &str = "9434765870";
    let w = world(&srv.database_url).await;
    let routes: std::collections::BTreeSet<&str> = table()
        .iter()
        .filter(|r| r.post == Some(Effect::Access))
        .map(|r| r.path)
        .collect();
    let mut checked = std::collections::BTreeSet::new();
    let base = srv.base.clone();

    // A new child's passport, made by inviting the family: by the clinician.
    let mut cara = signed_in_staff(&base, &w.care_clinician).await;
    let code = invite(&mut cara, LEO).await;
    let leo = onboarding::find_child(&w.store, LEO)
        .await
        .unwrap()
        .expect("passport made")
        .id;
    let n = assert_audited(&w.store, &leo, 0, "Patient", "Cara Carer").await;
    checked.insert("/onboarding/invite");

    // The invitation, redeemed by a family member who has a sign-in.
    let path = format!("/join/{code}");
    let mut nosy = Browser::new(&base);
    let p = nosy
        .submit(
            &path,
            &path,
            &[
                ("relationship", "MTH"),
                ("has_account", "yes"),
                ("email", &w.stranger),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let n = assert_audited(&w.store, &leo, n, "RelatedPerson", "Nosy Parker").await;
    checked.insert("/join/{code}");

    // A signed-in family member asks to be linked; the clinician confirms.
    let mut gran = signed_in_family(&base, &w.relative).await;
    let p = gran
        .submit(
            "/register",
            "/register",
            &[
                ("relationship", "PRN"),
                ("nhs_number", LEO),
                ("birth_date", "2020-02-01"),
            ],
        )
        .await;
    assert!(p.status < 400, "{}: {}", p.status, p.body);
    let n = assert_audited(&w.store, &leo, n, "RelatedPerson", "Gran Jones").await;
    checked.insert("/register");
    let cara_account = w
        .store
        .data()
        .account_by_login(&w.care_clinician.0)
        .await
        .unwrap()
        .unwrap();
    let pending = onboarding::pending_requests(&w.store, &cara_account)
        .await
        .unwrap();
    let request = &pending
        .iter()
        .find(|r| r.child_id == leo)
        .expect("the request waits for the care team")
        .related_person;
    let p = cara
        .submit(
            "/onboarding/requests",
            &format!("/onboarding/requests/{request}"),
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let n = assert_audited(&w.store, &leo, n, "RelatedPerson", "Cara Carer").await;
    checked.insert("/onboarding/requests/{id}");

    // A new sign-in, made when its emailed link is followed, redeeming an invitation.
    let code = invite(&mut cara, LEO).await;
    let token = passport_server::web::auth::random_token();
    let now = passport_server::clock::now_us();
    w.store
        .data()
        .test_store()
        .create_registration(&passport_store::accounts::Registration {
            token_hash: passport_server::web::auth::token_hash(&token),
            login: "vera@example.com".into(),
            display_name: "Vera Verified".into(),
            password_hash: passport_server::web::auth::hash_password(PASSWORD),
            request: json!({ "kind": "join", "code": code, "relationship": "FTH" }).to_string(),
            created_us: now,
            expires_us: now + 3_600_000_000,
        })
        .await
        .unwrap();
    let path = format!("/verify-email/{token}");
    let mut vera = Browser::new(&base);
    let p = vera.submit(&path, &path, &[]).await;
    assert!(p.status < 400, "{}: {}", p.status, p.body);
    assert_audited(&w.store, &leo, n, "RelatedPerson", "Vera Verified").await;
    checked.insert("/verify-email/{token}");

    // Sharing choices, by the parent with parental responsibility.
    let before = trail(&w.store, &w.child).await.len();
    let mut parent = signed_in_family(&base, &w.parent).await;
    let path = format!("/passport/{}/sharing/sector/education", w.child);
    let p = parent
        .submit(&path, &path, &[("share-conditions", "yes")])
        .await;
    assert!(p.status < 400, "{}: {}", p.status, p.body);
    let n = assert_audited(&w.store, &w.child, before, "Consent", "Sam Jones").await;
    checked.insert("/passport/{patient}/sharing/sector/{sector}");
    let path = format!("/passport/{}/sharing/organisation/{}", w.child, w.hospital);
    let p = parent
        .submit(&path, &path, &[("share-allergies", "yes")])
        .await;
    assert!(p.status < 400, "{}: {}", p.status, p.body);
    let n = assert_audited(&w.store, &w.child, n, "Consent", "Sam Jones").await;
    checked.insert("/passport/{patient}/sharing/organisation/{org}");

    // Break-glass, by an emergency clinician outside the care team.
    let mut erin = signed_in_staff(&base, &w.er_clinician).await;
    let p = erin
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", NHS),
                ("birth_date", "27/03/2019"),
                ("reason", "Unconscious in A&E"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    // Recorded by the server's auditor (durable within a second): wait for it.
    srv.state.domain.audit.flush().await;
    assert_audited(&w.store, &w.child, n, "", "Erin Medic").await;
    checked.insert("/break-glass");

    // The care team changed by its clinician: the school added.
    let school = w
        .store
        .data()
        .test_store()
        .account_by_login(&w.teacher.0)
        .await
        .unwrap()
        .unwrap()
        .organisation_id
        .unwrap();
    let team = format!("/passport/{}/care-team", w.child);
    let p = cara
        .submit(
            &team,
            &team,
            &[("action", "add"), ("organisation", &school)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let n = trail(&w.store, &w.child).await.len();
    assert_audited(&w.store, &w.child, n - 1, "CareTeam", "Cara Carer").await;
    checked.insert("/passport/{patient}/care-team");

    // A card link made and stopped by the parent in control.
    let mut parent = signed_in_family(&base, &w.parent).await;
    let links = format!("/passport/{}/card-links", w.child);
    let n = trail(&w.store, &w.child).await.len();
    let made = parent.submit(&links, &links, &[("days", "31")]).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let n = assert_audited(&w.store, &w.child, n, "", "Sam Jones").await;
    checked.insert("/passport/{patient}/card-links");
    let page = parent.get(&links).await;
    let at = page.body.find("/card-links/").expect("a link to stop");
    let id = &page.body[at + "/card-links/".len()..];
    let id = &id[..id.find('/').unwrap()];
    let stopped = parent
        .submit(&links, &format!("{links}/{id}/stop"), &[])
        .await;
    assert_eq!(stopped.status, 303, "{}", stopped.body);
    assert_audited(&w.store, &w.child, n, "", "Sam Jones").await;
    checked.insert("/passport/{patient}/card-links/{id}/stop");

    assert_eq!(checked, routes, "the route table's access-changing routes");
    w.store.close().await;
});

// An address no page answers, typed or followed in a browser, gets the NHS.UK "Page not
// found" page with the pages' security headers — never the API's JSON — while unknown API
// addresses, and clients that do not ask for HTML, keep answering an OperationOutcome.
on_both_databases!(unknown_addresses_get_a_page_not_json, |srv| {
    let mut b = Browser::new(&srv.base);
    for path in [
        "/passport/no-such-child/no-such-page",
        "/no-such-page",
        "/admin/nothing-here",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 404, "{path}");
        let ct = p.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        assert!(p.body.contains("Page not found"), "{path}: {}", p.body);
        assert!(p.headers.contains_key("content-security-policy"), "{path}");
        assert_eq!(p.headers["x-frame-options"], "DENY", "{path}");
    }
    for (path, accept) in [
        ("/oauth/no-such-endpoint", "text/html"),
        ("/no-such-page", "application/fhir+json"),
    ] {
        let api = srv
            .anonymous
            .get(srv.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
        let ct = api.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains("json"), "{path}: {ct}");
    }
});
