//! The pages over real HTTP: sign-in with password and TOTP, lockout, cookies, CSRF,
//! sign-out, deactivation, password-reset links, security headers — on SQLite and
//! PostgreSQL.

mod common;

use access::{Role, Sector};
use common::browser::{Browser, PASSWORD, Page, now_secs};
use passport_server::web::{auth, directory};
use serde_json::Value;

struct Seeded {
    store: std::sync::Arc<passport_server::Domain>,
    staff_email: String,
    secret: Vec<u8>,
    family_email: String,
}

/// Seeds an organisation, a clinician and a family member through a second handle on the
/// server's database.
async fn seed(url: &str) -> Seeded {
    let store =
        passport_server::Domain::open(domain::Settings::admin(url, "https://passport.test"))
            .await
            .unwrap();
    let org = directory::create_organisation(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewOrganisation {
            name: "Riverside Children's Hospital".into(),
            sector: Sector::HospitalTrust,
            ods: Some("RXX".into()),
            school_urn: None,
            region: "North".into(),
        },
    )
    .await
    .unwrap();
    let staff = directory::create_staff(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewStaff {
            organisation: org,
            role: Role::Clinician,
            email: "Dr.Ada@Example.NHS.uk".into(),
            name: "Ada Clinician".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    directory::create_family(
        &store,
        &passport_server::records::Agent::operator("test fixture"),
        directory::NewFamily {
            email: "sam@example.com".into(),
            name: "Sam Parent".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    Seeded {
        store,
        staff_email: "dr.ada@example.nhs.uk".into(),
        secret: staff.totp_secret.unwrap(),
        family_email: "sam@example.com".into(),
    }
}

fn assert_security_headers(p: &Page, what: &str) {
    let h = |n: &str| {
        p.headers
            .get(n)
            .unwrap_or_else(|| panic!("{what}: no {n}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h("x-frame-options"), "DENY", "{what}");
    assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
}

on_both_databases!(staff_need_password_and_totp, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    let p = b.sign_in(&seeded.staff_email, PASSWORD).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location, "/sign-in/code");
    // The session cookie's flags (http base URL: no Secure).
    let cookie = p
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("passport_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Half signed in: the home page sends them back to the code step.
    let home = b.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location, "/sign-in/code");
    // A wrong code.
    let form = b.get("/sign-in/code").await;
    assert_eq!(form.status, 200);
    let wrong = b
        .post(
            "/sign-in/code",
            &[("code", "000000"), ("csrf_token", &form.csrf())],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.title().starts_with("Error:"), "{}", wrong.title());
    assert!(wrong.body.contains("href=\"#code\""));
    // The right code.
    let code = auth::totp_code(&seeded.secret, now_secs());
    let ok = b
        .post(
            "/sign-in/code",
            &[("code", &code), ("csrf_token", &wrong.csrf())],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body
            .contains("You are signed in as <strong>Ada Clinician</strong> (Clinician, Riverside Children&#x27;s Hospital)"),
        "{}",
        home.body
    );
    assert_security_headers(&home, "home");
    // Family members need no code.
    let mut f = Browser::new(&srv.base);
    let p = f.sign_in("Sam@Example.com", PASSWORD).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location, "/");
    let home = f.get("/").await;
    assert!(home.body.contains("(family member)"), "{}", home.body);
    seeded.store.close().await;
});

on_both_databases!(wrong_password_then_lockout, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    // Empty form: the error summary links to both fields.
    let form = b.get("/sign-in").await;
    let empty = b
        .post(
            "/sign-in",
            &[
                ("email", ""),
                ("password", ""),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(empty.status, 400);
    assert!(empty.title().starts_with("Error: Sign in"));
    assert!(empty.body.contains("href=\"#email\"") && empty.body.contains("href=\"#password\""));
    assert!(empty.body.contains("nhsuk-error-message"));
    for i in 1..=4 {
        let p = b.sign_in(&seeded.family_email, "not the password").await;
        assert_eq!(p.status, 400, "attempt {i}");
        assert!(
            p.body
                .contains("Enter a correct email address and password")
        );
    }
    let p = b.sign_in(&seeded.family_email, "not the password").await;
    assert_eq!(p.status, 429);
    assert!(p.body.contains("paused for 1 minute"), "{}", p.body);
    // Locked: even the right password is refused now.
    let p = b.sign_in(&seeded.family_email, PASSWORD).await;
    assert_eq!(p.status, 429);
    // An address with no account locks the same way: the lockout says nothing about
    // which accounts exist.
    let mut last = None;
    for _ in 0..5 {
        last = Some(b.sign_in("nobody@example.com", "whatever").await);
    }
    let last = last.unwrap();
    assert_eq!(last.status, 429);
    assert!(last.body.contains("paused for 1 minute"));
    // Back-off: the next lockout doubles.
    let later = now_secs() * 1_000_000 + 61_000_000;
    let mut t = Default::default();
    for _ in 0..5 {
        t = seeded
            .store
            .data()
            .test_store()
            .record_login_failure(&seeded.family_email, later)
            .await
            .unwrap();
    }
    assert_eq!(t.lockouts, 2);
    assert_eq!(t.locked_until_us, later + 120_000_000);
    seeded.store.close().await;
});

on_both_databases!(csrf_is_checked_on_every_form, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    let _ = b.get("/sign-in").await;
    let missing = b
        .post(
            "/sign-in",
            &[
                ("email", seeded.family_email.as_str()),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(missing.status, 403);
    assert!(missing.body.contains("Your form could not be sent"));
    assert!(missing.title().starts_with("Error:"));
    let wrong = b
        .post(
            "/sign-in",
            &[
                ("email", seeded.family_email.as_str()),
                ("password", PASSWORD),
                ("csrf_token", "x".repeat(43).as_str()),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403);
    // Signed in: sign-out needs the session's token.
    let p = b.sign_in(&seeded.family_email, PASSWORD).await;
    assert_eq!(p.status, 303);
    let home = b.get("/").await;
    let anon = b.jar.get("passport_csrf").cloned().unwrap();
    let refused = b.post("/sign-out", &[("csrf_token", &anon)]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(b.get("/").await.status, 200, "still signed in");
    let out = b.post("/sign-out", &[("csrf_token", &home.csrf())]).await;
    assert_eq!(out.status, 303);
    seeded.store.close().await;
});

on_both_databases!(sign_out_and_deactivation_end_sessions, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    b.sign_in_staff(&seeded.staff_email, &seeded.secret).await;
    let session = b.jar.get("passport_session").cloned().unwrap();
    let home = b.get("/").await;
    let out = b.post("/sign-out", &[("csrf_token", &home.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location, "/sign-in?signed-out");
    assert!(!b.jar.contains_key("passport_session"));
    // Replaying the old cookie does not work.
    b.jar.insert("passport_session".into(), session);
    let p = b.get("/").await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location, "/sign-in");
    // Two live sessions; deactivating the account ends both at once.
    let mut one = Browser::new(&srv.base);
    let mut two = Browser::new(&srv.base);
    one.sign_in_staff(&seeded.staff_email, &seeded.secret).await;
    two.sign_in(&seeded.family_email, PASSWORD).await;
    let mut three = Browser::new(&srv.base);
    // (a code is single-step-valid, so a second staff session reuses the same secret)
    three
        .sign_in_staff(&seeded.staff_email, &seeded.secret)
        .await;
    assert_eq!(one.get("/").await.status, 200);
    assert_eq!(three.get("/").await.status, 200);
    directory::set_active(&seeded.store, &seeded.staff_email, false)
        .await
        .unwrap();
    assert_eq!(one.get("/").await.location, "/sign-in");
    assert_eq!(three.get("/").await.location, "/sign-in");
    assert_eq!(two.get("/").await.status, 200, "other accounts unaffected");
    // And a deactivated account cannot sign in.
    let p = Browser::new(&srv.base)
        .sign_in(&seeded.staff_email, PASSWORD)
        .await;
    assert_eq!(p.status, 400);
    seeded.store.close().await;
});

on_both_databases!(reset_links_work_once_and_expire, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut signed_in = Browser::new(&srv.base);
    signed_in.sign_in(&seeded.family_email, PASSWORD).await;
    assert_eq!(signed_in.get("/").await.status, 200);
    let link =
        directory::issue_password_reset(&seeded.store, &seeded.family_email, &srv.base, 3600)
            .await
            .unwrap();
    let path = link.strip_prefix(&srv.base).unwrap().to_owned();
    let mut b = Browser::new(&srv.base);
    let form = b.get(&path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_security_headers(&form, "reset");
    let new = "a brand new passphrase";
    let mismatch = b
        .post(
            &path,
            &[
                ("password", new),
                ("confirm", "something else!"),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 400);
    assert!(mismatch.body.contains("href=\"#confirm\""));
    let short = b
        .post(
            &path,
            &[
                ("password", "short"),
                ("confirm", "short"),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("href=\"#password\""));
    let done = b
        .post(
            &path,
            &[
                ("password", new),
                ("confirm", new),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, "/sign-in?password-changed");
    // Single use.
    let again = b.get(&path).await;
    assert_eq!(again.status, 410);
    assert!(again.body.contains("already been used"));
    let replay = b
        .post(
            &path,
            &[
                ("password", "another passphrase!"),
                ("confirm", "another passphrase!"),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(replay.status, 410);
    // The reset ended the old session; the new password works, the old one does not.
    assert_eq!(signed_in.get("/").await.location, "/sign-in");
    assert_eq!(
        Browser::new(&srv.base)
            .sign_in(&seeded.family_email, PASSWORD)
            .await
            .status,
        400
    );
    assert_eq!(
        Browser::new(&srv.base)
            .sign_in(&seeded.family_email, new)
            .await
            .status,
        303
    );
    // An expired link.
    let expired =
        directory::issue_password_reset(&seeded.store, &seeded.family_email, &srv.base, -1)
            .await
            .unwrap();
    let p = b.get(expired.strip_prefix(&srv.base).unwrap()).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("expired"));
    // A made-up one.
    let p = b
        .get("/reset-password/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(p.status, 404);
    seeded.store.close().await;
});

on_both_databases!(security_headers_on_every_page, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    for path in [
        "/sign-in",
        "/sign-in?signed-out",
        "/",
        "/sign-in/code",
        "/reset-password/nope",
        "/assets/nhsuk-frontend.min.css",
        "/assets/passport.css",
    ] {
        let p = b.get(path).await;
        assert_security_headers(&p, path);
    }
    let refused = b.post::<&str, &str>("/sign-in", &[]).await;
    assert_security_headers(&refused, "CSRF refusal");
    b.sign_in_staff(&seeded.staff_email, &seeded.secret).await;
    let home = b.get("/").await;
    assert_security_headers(&home, "home");
    assert_eq!(home.headers.get("cache-control").unwrap(), "no-store");
    // No inline script or style on any page.
    for body in [&home.body, &refused.body] {
        assert!(!body.contains("<script"), "{body}");
        assert!(
            !body.contains("<style") && !body.contains("style="),
            "{body}"
        );
    }
    seeded.store.close().await;
});

/// With an https base URL, cookies are `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_base_url_makes_cookies_secure() {
    let (url, _dir) = common::fresh_database(common::Backend::Sqlite).unwrap();
    let mut config = passport_server::Config::new("127.0.0.1:0".parse().unwrap(), url.clone());
    config.base_url = "https://passport.example".into();
    let running = passport_server::start(config, true).await.unwrap();
    let seeded = seed(&url).await;
    let mut b = Browser::new(&format!("http://{}", running.addr));
    let form = b.get("/sign-in").await;
    assert!(form.set_cookies().iter().all(|c| c.contains("; Secure")));
    let p = b.sign_in(&seeded.family_email, PASSWORD).await;
    let session = p
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("passport_session="))
        .unwrap();
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    seeded.store.close().await;
    running.stop().await.unwrap();
    if let Some(d) = _dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

on_both_databases!(sign_ins_and_failures_are_audited, |srv| {
    let seeded = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    let p = b.sign_in(&seeded.family_email, "not the password").await;
    assert_eq!(p.status, 400);
    let p = b.sign_in(&seeded.family_email, PASSWORD).await;
    assert_eq!(p.status, 303);
    let home = b.get("/").await;
    let out = b.post("/sign-out", &[("csrf_token", &home.csrf())]).await;
    assert_eq!(out.status, 303);
    srv.state.domain.audit.flush().await;
    let events: Vec<Value> = srv
        .state
        .domain
        .data()
        .test_store()
        .list_audit(&passport_store::audit::AuditQuery {
            count: 100,
            include_safeguarding: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_slice(&e.record.event).unwrap())
        .collect();
    let logins: Vec<&Value> = events
        .iter()
        .filter(|e| e["subtype"][0]["code"] == "110122")
        .collect();
    // The failure names the login tried (never the password); the success the Person.
    assert!(logins.iter().any(|e| e["outcome"] == "4"
        && e["agent"][0]["who"]["display"] == "sam@example.com"
        && !e.to_string().contains("not the password")));
    assert!(logins.iter().any(|e| {
        e["outcome"] == "0"
            && e["agent"][0]["who"]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Person/"))
    }));
    assert!(events.iter().any(|e| e["subtype"][0]["code"] == "110123"));
    seeded.store.close().await;
});

on_both_databases!(a_security_code_works_once, |srv| {
    let seeded = seed(&srv.database_url).await;
    let code = auth::totp_code(&seeded.secret, now_secs());
    let mut first = Browser::new(&srv.base);
    let mut replay = Browser::new(&srv.base);
    for (b, expect) in [(&mut first, 303), (&mut replay, 400)] {
        let p = b.sign_in(&seeded.staff_email, PASSWORD).await;
        assert_eq!(p.location, "/sign-in/code");
        let form = b.get("/sign-in/code").await;
        let p = b
            .post(
                "/sign-in/code",
                &[("code", &code), ("csrf_token", &form.csrf())],
            )
            .await;
        assert_eq!(p.status, expect, "{}", p.body);
    }
    seeded.store.close().await;
});
