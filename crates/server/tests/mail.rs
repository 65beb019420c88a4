//! Self-registration with email verification, over real HTTP and real SMTP, on SQLite and
//! PostgreSQL: the server sends through lettre to an aiosmtpd server the test starts
//! (tests/mail/smtp_sink.py), the test reads each message back and follows its link.
//!
//! - a new address: "check your email", no sign-in until the link is followed, then the
//!   sign-in works and the link request is made; the link works once; expired and unknown
//!   links get a clear page;
//! - an address that already has a sign-in (family or staff): byte for byte the same page,
//!   and an email saying so, with no link;
//! - a new sign-in from a clinic invitation (`/join/{code}`) goes through the same link;
//! - rate limits per address and per client IP (429).

mod common;

use access::{Role, Sector};
use common::browser::{Browser, PASSWORD, Page};
use common::mail::MailServer;
use common::{Backend, TestServer, fixture};
use passport_server::web::{auth, directory, onboarding};
use passport_store::accounts::Registration;

/// One test per backend with an SMTP server: `NAME::sqlite`, `NAME::postgres`. Skipped
/// (with a line saying so) without python3 + aiosmtpd, except under `CI=true`.
macro_rules! with_mail {
    ($name:ident, |$srv:ident, $mail:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some($mail) = MailServer::start() else {
                    return;
                };
                let $srv = mailing(Backend::Sqlite, &$mail).await.expect("sqlite");
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($mail) = MailServer::start() else {
                    return;
                };
                let Some($srv) = mailing(Backend::Postgres, &$mail).await else {
                    return;
                };
                $body
            }
        }
    };
}

/// A server that sends email to `mail`.
async fn mailing(backend: Backend, mail: &MailServer) -> Option<TestServer> {
    common::spawn_with(backend, |c| {
        c.smtp_url = Some(mail.url());
        c.mail_from = Some("Passport <no-reply@passport.test>".into());
    })
    .await
}

const NHS: &str = "9434765919";
const STAFF: &str = "ada@example.nhs.uk";
const FAMILY: &str = "existing@example.com";

struct Seeded {
    store: std::sync::Arc<passport_server::Domain>,
    org: String,
    staff_secret: Vec<u8>,
}

/// An organisation with a member of staff, a family sign-in, and a child in the care team.
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
            organisation: org.clone(),
            role: Role::Clinician,
            email: STAFF.into(),
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
            email: FAMILY.into(),
            name: "Ex Isting".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .unwrap();
    let child = onboarding::Child {
        id: uuid::Uuid::now_v7().to_string(),
        nhs_number: NHS.into(),
        given: "Kai".into(),
        family: "Brown".into(),
        birth_date: "2017-05-06".into(),
    };
    store
        .records()
        .write_all(
            &fixture(),
            onboarding::new_child_writes(&child, &org).unwrap(),
        )
        .await
        .map_err(|e| e.error)
        .unwrap();
    Seeded {
        store,
        org,
        staff_secret: staff.totp_secret.unwrap(),
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Registers at `/register` (signed out) as "Alex Brown" asking for the seeded child.
async fn register(b: &mut Browser, email: &str) -> Page {
    b.submit(
        "/register",
        "/register",
        &[
            ("name", "Alex Brown"),
            ("email", email),
            ("password", PASSWORD),
            ("relationship", "PRN"),
            ("nhs_number", NHS),
            ("birth_date", "06/05/2017"),
        ],
    )
    .await
}

/// The path of the one verification link in `text`.
fn link_path(srv: &TestServer, mail: &common::mail::Mail) -> String {
    let links = mail.links(&format!("{}/verify-email/", srv.base));
    assert_eq!(links.len(), 1, "one link: {}", mail.text);
    links[0].strip_prefix(&srv.base).unwrap().to_owned()
}

with_mail!(registration_is_verified_by_email, |srv, mail| {
    let s = seed(&srv.database_url).await;
    let mut alex = Browser::new(&srv.base);
    let p = register(&mut alex, "Alex@Example.com").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Check your email"), "{}", p.body);
    assert!(
        !p.body.contains("alex@example.com"),
        "the page names no address"
    );
    assert!(!alex.jar.contains_key("passport_session"), "not signed in");

    // Before the link is followed there is no sign-in: the same failure as an address
    // nobody registered (the same page but for the address typed back).
    let mut b = Browser::new(&srv.base);
    let unverified = b.sign_in("alex@example.com", PASSWORD).await;
    let unknown = b.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unverified.status, 400, "{}", unverified.body);
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unverified.body.replace("alex@example.com", "X"),
        unknown.body.replace("nobody@example.com", "X")
    );
    // Nor is the link request made yet.
    let mut ada = Browser::new(&srv.base);
    ada.sign_in_staff(STAFF, &s.staff_secret).await;
    let p = ada.get("/onboarding/requests").await;
    assert!(p.body.contains("id=\"no-requests\""), "{}", p.body);

    // The email: to the address as lower-cased, from the configured sender, one link.
    let m = mail.wait_for("alex@example.com", 1).await.remove(0);
    assert_eq!(m.subject, "Confirm your email address for Passport");
    assert!(
        m.raw.contains("From: Passport <no-reply@passport.test>"),
        "{}",
        m.raw
    );
    assert!(
        !m.text.contains("Alex Brown"),
        "nothing the registrant typed"
    );
    assert!(!m.text.contains(NHS));
    let path = link_path(&srv, &m);
    let token = path.rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "at least 128 bits: {token}");

    // Following it: a page with a button (opening the link changes nothing).
    let form = alex.get(&path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("Confirm your email address"));
    let again = alex.get(&path).await;
    assert_eq!(again.status, 200, "a GET does not use the link up");
    let p = alex.post(&path, &[("csrf_token", form.csrf())]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains("Your email address is confirmed"),
        "{}",
        p.body
    );
    assert!(p.body.contains("Your request has been sent"));
    assert!(alex.jar.contains_key("passport_session"), "signed in");
    let home = alex.get("/").await;
    assert!(home.body.contains("Alex Brown"), "{}", home.body);

    // The link request is made now, for the care team to check.
    let p = ada.get("/onboarding/requests").await;
    assert!(p.body.contains("Alex Brown"), "{}", p.body);
    assert!(p.body.contains("Kai Brown"));

    // The sign-in works with the password chosen at registration.
    let mut later = Browser::new(&srv.base);
    let p = later.sign_in("alex@example.com", PASSWORD).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location, "/");

    // The link works once.
    let mut other = Browser::new(&srv.base);
    let p = other.get(&path).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("already been used"), "{}", p.body);
    let p = other.post(&path, &[("csrf_token", form.csrf())]).await;
    assert_eq!(p.status, 403, "a forged form is refused first");
    // An unknown link.
    let p = other.get("/verify-email/not-a-real-token").await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("This link is not valid"), "{}", p.body);

    // An expired link (stored as the server stores them, 25 hours old).
    let token = auth::random_token();
    let then = now_us() - 25 * 3600 * 1_000_000;
    s.store
        .data().test_store().create_registration(&Registration {
            token_hash: auth::token_hash(&token),
            login: "late@example.com".into(),
            display_name: "Late Person".into(),
            password_hash: auth::hash_password(PASSWORD),
            request: r#"{"kind":"link","relationship":"PRN","nhs_number":"9434765919","birth_date":"2017-05-06"}"#.into(),
            created_us: then,
            expires_us: then + onboarding::VERIFY_LINK_SECS * 1_000_000,
        })
        .await
        .unwrap();
    let p = other.get(&format!("/verify-email/{token}")).await;
    assert_eq!(p.status, 410);
    assert!(p.body.contains("This link has expired"), "{}", p.body);
    let csrf = other.get("/register").await.csrf();
    let p = other
        .post(&format!("/verify-email/{token}"), &[("csrf_token", csrf)])
        .await;
    assert_eq!(p.status, 410);
    assert!(!other.jar.contains_key("passport_session"));
    let p = other.sign_in("late@example.com", PASSWORD).await;
    assert_eq!(p.status, 400, "no sign-in was made");
    let _ = &s.org;
    s.store.close().await;
});

with_mail!(known_addresses_get_the_same_page, |srv, mail| {
    let s = seed(&srv.database_url).await;
    // A new address, a family sign-in's, a member of staff's (typed in capitals): the same
    // status, headers that matter and body, byte for byte.
    let mut pages = Vec::new();
    for email in ["new@example.com", FAMILY, "ADA@example.nhs.uk"] {
        let mut b = Browser::new(&srv.base);
        let p = register(&mut b, email).await;
        assert_eq!(p.status, 200, "{email}: {}", p.body);
        assert!(p.set_cookies().is_empty(), "{email}: no cookie set");
        pages.push((p.body, p.headers.get("content-length").cloned()));
    }
    assert_eq!(pages[0], pages[1], "family sign-in");
    assert_eq!(pages[0], pages[2], "staff sign-in");

    // The emails differ: a link for the new address; a note, with no link, for the others.
    let new = mail.wait_for("new@example.com", 1).await.remove(0);
    link_path(&srv, &new);
    for known in [FAMILY, STAFF] {
        let m = mail.wait_for(known, 1).await.remove(0);
        assert_eq!(m.subject, "You already have a Passport sign-in");
        assert!(m.text.contains("nothing has been changed"), "{}", m.text);
        assert!(m.text.contains(&format!("{}/sign-in", srv.base)));
        assert!(!m.text.contains("/verify-email/"), "no link: {}", m.text);
    }
    // The existing sign-ins still work with their own passwords; nothing else was made.
    let mut b = Browser::new(&srv.base);
    assert_eq!(b.sign_in(FAMILY, PASSWORD).await.location, "/");
    assert_eq!(
        s.store
            .data()
            .test_store()
            .list_accounts()
            .await
            .unwrap()
            .len(),
        2
    );

    // A new sign-in at a clinic invitation: the same, through the same link.
    let mut ada = Browser::new(&srv.base);
    ada.sign_in_staff(STAFF, &s.staff_secret).await;
    let issued = ada
        .submit(
            "/onboarding/invite",
            "/onboarding/invite",
            &[("nhs_number", NHS)],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let code = issued.between("id=\"invitation-code\">", "<");
    let join = format!("/join/{}", onboarding::normalise_code(&code).unwrap());
    let mut joined = Vec::new();
    for email in ["sam@example.com", FAMILY] {
        let mut b = Browser::new(&srv.base);
        let p = b
            .submit(
                &join,
                &join,
                &[
                    ("relationship", "MTH"),
                    ("has_account", "no"),
                    ("name", "Sam Jones"),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains("Check your email"), "{}", p.body);
        joined.push(p.body);
    }
    assert_eq!(joined[0], joined[1], "the same page for a known address");
    let note = mail.wait_for(FAMILY, 2).await.remove(1);
    assert!(note.text.contains("choose \"Yes\""), "{}", note.text);
    // Sam follows the link: signed in and linked to the child at once.
    let m = mail.wait_for("sam@example.com", 1).await.remove(0);
    let path = link_path(&srv, &m);
    let mut sam = Browser::new(&srv.base);
    let form = sam.get(&path).await;
    let p = sam.post(&path, &[("csrf_token", form.csrf())]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("You are now linked"), "{}", p.body);
    let home = sam.get("/").await;
    assert!(home.body.contains("Sam Jones"), "{}", home.body);
    // The invitation is used up.
    assert_eq!(Browser::new(&srv.base).get(&join).await.status, 410);
    s.store.close().await;
});

/// Rate limits need no SMTP server: without one the page is the same (nothing is sent).
async fn rate_limited(backend: Backend) {
    let Some(srv) = common::spawn_with(backend, |c| {
        c.register_limit_per_address = 2;
        c.register_limit_per_ip = 4;
    })
    .await
    else {
        return;
    };
    let s = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base);
    // Per address (counted case-insensitively), whether or not it has a sign-in.
    for email in [FAMILY, "Existing@example.com"] {
        assert_eq!(register(&mut b, email).await.status, 200);
    }
    let refused = register(&mut b, FAMILY).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body.contains("Too many requests"),
        "{}",
        refused.body
    );
    assert_eq!(refused.headers.get("retry-after").unwrap(), "3600");
    // A form with errors is answered as before and not counted.
    let p = b
        .submit("/register", "/register", &[("email", "x@example.com")])
        .await;
    assert_eq!(p.status, 400);
    // Per client IP: two more addresses, then every address is refused from here.
    for email in ["one@example.com", "two@example.com"] {
        assert_eq!(register(&mut b, email).await.status, 200, "{email}");
    }
    let refused = register(&mut b, "three@example.com").await;
    assert_eq!(refused.status, 429);
    let _ = &s.staff_secret;
    s.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_rate_limited_sqlite() {
    rate_limited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_rate_limited_postgres() {
    rate_limited(Backend::Postgres).await;
}

// A family member resets their own password by an emailed link: the same answer for any
// address; a link only to an active family sign-in (staff are told to ask their
// administrator; an unknown address gets nothing); the link sets a new password once.
with_mail!(families_reset_their_password_by_email, |srv, mail| {
    let s = seed(&srv.database_url).await;
    let mut b = Browser::new(&srv.base).unescaping_slashes();
    let signin = b.get("/sign-in").await;
    assert!(signin.body.contains("href=\"/forgot-password\""));
    let bad = b
        .submit(
            "/forgot-password",
            "/forgot-password",
            &[("email", "not an email")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.has_error_summary_for("email"));
    let mut answers = Vec::new();
    for email in [FAMILY, STAFF, "nobody@example.com"] {
        let p = b
            .submit("/forgot-password", "/forgot-password", &[("email", email)])
            .await;
        assert_eq!(p.status, 200, "{}", p.body);
        answers.push(p.body.clone());
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "the same answer for every address"
    );
    let family = mail.wait_for(FAMILY, 1).await;
    let link = family[0].links(&format!("{}/reset-password/", srv.base));
    assert_eq!(link.len(), 1, "{}", family[0].text);
    let staff = mail.wait_for(STAFF, 1).await;
    assert!(
        staff[0]
            .links(&format!("{}/reset-password/", srv.base))
            .is_empty()
    );
    assert!(staff[0].text.contains("administrator"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        mail.to("nobody@example.com").is_empty(),
        "no email to an unknown address"
    );
    // The link sets a new password, once.
    let path = link[0].strip_prefix(&srv.base).unwrap().to_owned();
    let new_password = "a brand new long passphrase";
    let set = b
        .submit(
            &path,
            &path,
            &[("password", new_password), ("confirm", new_password)],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let again = b.get(&path).await;
    assert_ne!(again.status, 200, "the link works once");
    let mut fresh = Browser::new(&srv.base);
    let signed_in = fresh.sign_in(FAMILY, new_password).await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location, "/");
    s.store.close().await;
});
