//! The emergency view over real HTTP, on SQLite and PostgreSQL (issue 11): every value the
//! family and the clinician enter in the emergency content — the allergy's reaction and
//! severity, each step of the protocol, the rescue medicine with its dose and route, a
//! medicine's dose, who to call with their phone numbers, how the child communicates and
//! what calms them — appears on the one page; nothing outside the emergency content does;
//! each reader (the care team, the family, break-glass, a school) sees it through the same
//! decision, with "not shared with you" where that decision says so.

mod common;

use common::browser::Browser;
use common::passport::{family, option_value, staff, world};

/// Adds an item through a form of the passport, as `who`.
async fn add(b: &mut Browser, patient: &str, form: &str, fields: &[(&str, &str)]) {
    let path = format!("/passport/{patient}/add/{form}");
    let saved = b.submit(&path, &path, fields).await;
    assert_eq!(saved.status, 303, "{form}: {}", saved.body);
}

/// The emergency page's parts: (part id, its text).
fn parts(body: &str) -> Vec<(String, String)> {
    body.split("<section class=\"emergency-part\" id=\"")
        .skip(1)
        .map(|p| {
            let p = &p[..p.find("</section>").unwrap()];
            (p[..p.find('"').unwrap()].to_owned(), p.to_owned())
        })
        .collect()
}

/// Whether the page (passport or emergency) says `section` is not shared with its reader.
fn not_shared(body: &str, section: &str) -> bool {
    body.contains(&format!("{section}-not-shared\""))
}

on_both_databases!(the_emergency_view_shows_every_entered_value, |srv| {
    let w = world(&srv.database_url).await;
    let base = srv.base.clone();
    let mia = w.mia.clone();
    let mut cara = staff(&base, &w, "cara@example.nhs.uk").await;
    let mut sam = family(&base, "sam@example.com").await;

    // The clinician writes the protocol, who to call and a medicine's dose.
    add(
        &mut cara,
        &mia,
        "emergency-protocol",
        &[
            (
                "emergency-recognise",
                "Stiffening then jerking of both arms",
            ),
            ("emergency-what-to-do", "Time the seizure and keep her safe"),
            (
                "emergency-call-999",
                "Seizure over 5 minutes or a second one",
            ),
            ("emergency-rescue-medicine", "Buccal midazolam"),
            ("emergency-rescue-dose", "5 mg (0.5 mL)"),
            ("emergency-rescue-route", "buccal"),
        ],
    )
    .await;
    add(
        &mut cara,
        &mia,
        "escalation-contact",
        &[
            ("escalation-name", "Epilepsy nurse team"),
            ("escalation-role", "Specialist nurses"),
            ("escalation-phone", "01632 960123"),
            ("escalation-out-of-hours", "01632 960999"),
            ("escalation-when", "After any rescue medicine"),
        ],
    )
    .await;
    let form = cara.get(&format!("/passport/{mia}/add/medicine")).await;
    let paracetamol = option_value(&form.body, "Paracetamol");
    add(
        &mut cara,
        &mia,
        "medicine",
        &[
            ("medicine-product", paracetamol.as_str()),
            ("medicine-dose", "240 mg"),
            ("medicine-route", "by mouth"),
            ("medicine-when", "Every 6 hours when needed"),
            ("medicine-given-by", "Mum or school nurse"),
        ],
    )
    .await;
    // The family adds an allergy, a key contact, how she communicates, what calms her.
    let form = sam.get(&format!("/passport/{mia}/add/allergy")).await;
    let milk = option_value(&form.body, "Cow&#x27;s milk");
    add(
        &mut sam,
        &mia,
        "allergy",
        &[
            ("allergy-substance", milk.as_str()),
            ("allergy-reaction", "other"),
            ("allergy-reaction-other", "Hives on the face"),
            ("allergy-severity", "moderate"),
        ],
    )
    .await;
    add(
        &mut sam,
        &mia,
        "key-contact",
        &[
            ("key-contact-name", "Sam Jones"),
            ("key-contact-relationship", "Mum"),
            ("key-contact-phone", "07700 900123"),
            ("key-contact-when", "Always, first"),
        ],
    )
    .await;
    add(
        &mut sam,
        &mia,
        "communication",
        &[
            ("main-language", "English"),
            ("communication-description", "Uses Makaton signs"),
            ("how-i-show-pain", "Rubs her ear"),
        ],
    )
    .await;
    add(
        &mut sam,
        &mia,
        "what-matters",
        &[("calming", "Her blue blanket and quiet singing")],
    )
    .await;

    let entered: &[(&str, &str)] = &[
        ("allergies", "Hives on the face"),
        ("allergies", "Moderate"),
        ("allergies", "Peanut allergy"),
        ("protocol", "Stiffening then jerking of both arms"),
        ("protocol", "Time the seizure and keep her safe"),
        ("protocol", "Seizure over 5 minutes or a second one"),
        ("protocol", "Buccal midazolam"),
        ("protocol", "5 mg (0.5 mL)"),
        ("protocol", "Buccal"),
        ("medicines", "Paracetamol"),
        ("medicines", "240 mg"),
        ("medicines", "By mouth"),
        ("medicines", "Every 6 hours when needed"),
        ("medicines", "Salbutamol inhaler"),
        ("who-to-call", "Epilepsy nurse team"),
        ("who-to-call", "Specialist nurses"),
        ("who-to-call", "href=\"tel:01632960123\""),
        ("who-to-call", "01632 960999"),
        ("who-to-call", "After any rescue medicine"),
        ("who-to-call", "Sam Jones"),
        ("who-to-call", "href=\"tel:07700900123\""),
        ("who-to-call", "Always, first"),
        ("communication", "Uses Makaton signs"),
        ("communication", "Rubs her ear"),
        ("communication", "Her blue blanket and quiet singing"),
    ];
    // Outside the emergency content: a condition and a stopped medicine.
    let outside = ["Asthma diagnosis", "Amoxicillin course"];
    let emergency = format!("/passport/{mia}/emergency");

    // The care team's clinician and the family see every value, each under its heading.
    for (who, b) in [("clinician", &mut cara), ("family", &mut sam)] {
        let page = b.get(&emergency).await;
        assert_eq!(page.status, 200, "{who}: {}", page.body);
        // Whose it is, at the top: name, date of birth, NHS Number.
        let top = &page.body[..page.body.find("<section").unwrap()];
        for id in ["Mia Jones", "27 March 2019", "943 476 5919"] {
            assert!(top.contains(id), "{who}: {id} at the top");
        }
        let parts = parts(&page.body);
        let order: Vec<&str> = parts.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            order,
            [
                "allergies",
                "protocol",
                "medicines",
                "who-to-call",
                "communication"
            ]
        );
        for (part, value) in entered {
            let text = &parts.iter().find(|(id, _)| id == part).unwrap().1;
            assert!(text.contains(value), "{who}: {value} under {part}: {text}");
        }
        for value in outside {
            assert!(!page.body.contains(value), "{who}: {value} shown");
        }
        // The escalation contacts come before the key contacts.
        let call = &parts[3].1;
        assert!(call.find("Epilepsy nurse team") < call.find("Sam Jones"));
        // The family's allergy is marked as not yet checked, and the page says so.
        assert!(page.body.contains("id=\"waiting-review\""), "{who}");
    }

    // Break-glass opens the same content for an emergency department outside the team.
    let mut erin = staff(&base, &w, "erin@example.nhs.uk").await;
    let opened = erin
        .submit(
            "/break-glass",
            "/break-glass",
            &[
                ("nhs_number", "9434765919"),
                ("birth_date", "27/03/2019"),
                ("reason", "Fitting in A&E"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let page = erin.get(&opened.location).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for (_, value) in entered {
        assert!(page.body.contains(value), "break-glass: {value}");
    }
    for value in outside {
        assert!(!page.body.contains(value), "break-glass: {value} shown");
    }
    assert!(page.body.contains("Your emergency access ends on"));
    // Break-glass gives the emergency view, not the passport.
    assert_eq!(erin.get(&emergency).await.status, 200);
    let full = erin.get(&format!("/passport/{mia}")).await;
    assert!(!full.body.contains("Asthma diagnosis"));

    // A school sees what its sharing allows, and "not shared with you" for the rest —
    // the same answer, section by section, as its full passport page.
    let mut tom = staff(&base, &w, "tom@example.sch.uk").await;
    let page = tom.get(&emergency).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let full = tom.get(&format!("/passport/{mia}")).await;
    let mut hidden = 0;
    for (part, code) in [
        ("allergies", "allergies"),
        ("protocol", "emergency"),
        ("medicines", "medicines"),
        ("who-to-call", "emergency"),
        ("who-to-call", "contacts"),
        ("communication", "communication"),
        ("communication", "what-matters"),
    ] {
        let shared = !not_shared(&full.body, code);
        assert_eq!(
            !not_shared(&page.body, &format!("{part}-{code}")),
            shared,
            "school: {part}/{code}"
        );
        hidden += usize::from(!shared);
    }
    assert!(hidden > 0, "the school's default sharing hides some of it");
    assert!(
        page.body.contains("Hives on the face"),
        "schools see allergies"
    );

    // Someone with no relationship sees nothing.
    let mut stranger = staff(&base, &w, "gina@example.nhs.uk").await;
    let refused = stranger.get(&emergency).await;
    assert_eq!(refused.status, 404);
    assert!(!refused.body.contains("Hives"));
    w.store.close().await;
});

/// The card link a card-links page shows once: its path.
fn new_link(body: &str) -> String {
    let at = body
        .find("id=\"card-link-url\">")
        .unwrap_or_else(|| panic!("no new link: {body}"));
    let url = &body[at + 18..];
    let url = &url[..url.find('<').unwrap()];
    url[url.find("/card/").unwrap()..].to_owned()
}

// The family makes a card link; whoever holds it sees the emergency view and nothing
// else; every opening is in the access log; a stopped, expired, locked or unknown link
// shows nothing of the child; a passcode is asked for and its wrong attempts are limited.
on_both_databases!(
    a_card_link_opens_the_emergency_view_until_it_is_stopped,
    |srv| {
        let w = world(&srv.database_url).await;
        let base = srv.base.clone();
        let mia = w.mia.clone();
        let links = format!("/passport/{mia}/card-links");
        let mut sam = family(&base, "sam@example.com").await;
        let page = sam.get(&links).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("id=\"no-links\""));

        // Bad input: an error, and no link made.
        let bad = sam.submit(&links, &links, &[("passcode", "")]).await;
        assert_eq!(bad.status, 400);
        assert!(bad.has_error_summary_for("days"), "{}", bad.body);
        let bad = sam
            .submit(&links, &links, &[("days", "31"), ("passcode", "123")])
            .await;
        assert_eq!(bad.status, 400);
        assert!(bad.has_error_summary_for("passcode"));
        let bad = sam.submit(&links, &links, &[("days", "5000")]).await;
        assert_eq!(bad.status, 400, "no more than a year");
        assert!(sam.get(&links).await.body.contains("id=\"no-links\""));

        // A link for a month: shown once, 256 random bits.
        let made = sam.submit(&links, &links, &[("days", "31")]).await;
        assert_eq!(made.status, 200, "{}", made.body);
        let card = new_link(&made.body);
        let token = card.trim_start_matches("/card/");
        assert!(token.len() >= 43, "{token}");
        assert!(
            !sam.get(&links).await.body.contains(token),
            "shown once only"
        );

        // Whoever holds it, signed in or not, sees the emergency content only.
        let mut anyone = Browser::new(&base).unescaping_slashes();
        let opened = anyone.get(&card).await;
        assert_eq!(opened.status, 200, "{}", opened.body);
        for shown in [
            "Mia Jones",
            "Peanut allergy",
            "Salbutamol inhaler",
            "id=\"notice\"",
        ] {
            assert!(opened.body.contains(shown), "{shown}: {}", opened.body);
        }
        for hidden in ["Asthma diagnosis", "Amoxicillin course", "/passport/"] {
            assert!(
                !opened.body.contains(hidden),
                "{hidden} shown by a card link"
            );
        }
        // The link opens no other page, and the FHIR API does not know it.
        assert_eq!(anyone.get(&format!("/passport/{mia}")).await.status, 303);
        assert_eq!(
            anyone
                .get(&format!(
                    "/fhir/AllergyIntolerance?patient={mia}&_token={token}"
                ))
                .await
                .status,
            401
        );

        // Only the person in control makes links: not a relative, not the care team.
        let mut gran = family(&base, "gran@example.com").await;
        let refused = gran.get(&links).await;
        assert!(matches!(refused.status, 403 | 404), "{}", refused.status);
        assert!(!refused.body.contains("Card links for"));
        let mut cara = staff(&base, &w, "cara@example.nhs.uk").await;
        assert!(matches!(cara.get(&links).await.status, 403 | 404));

        // Every opening, and the making, are in the family's access log.
        let log_path = format!("/passport/{mia}/access-log");
        let mut log = sam.get(&log_path).await;
        for _ in 0..50 {
            if log
                .body
                .contains("Someone with the card link looked at the passport")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            log = sam.get(&log_path).await;
        }
        assert!(
            log.body
                .contains("Someone with the card link looked at the passport: "),
            "{}",
            log.body
        );
        assert!(
            log.body.contains("Sam Jones made a card link"),
            "{}",
            log.body
        );

        // Stopped: at once, and the link then shows nothing of the child.
        let page = sam.get(&links).await;
        let stop_at = page.body.find("/card-links/").unwrap();
        let stop = &page.body[stop_at - 1 - mia.len() - "/passport".len()..];
        let stop = stop[..stop.find('"').unwrap()].to_owned();
        let stopped = sam.submit(&links, &stop, &[]).await;
        assert_eq!(stopped.status, 303, "{}", stopped.body);
        let closed = anyone.get(&card).await;
        assert_eq!(closed.status, 404);
        assert!(closed.body.contains("This card link does not work"));
        for hidden in ["Mia", "Peanut", "Jones"] {
            assert!(!closed.body.contains(hidden), "{hidden} on a stopped link");
        }
        assert!(sam.get(&links).await.body.contains("Stopped"));
        assert_eq!(
            anyone.get("/card/not-a-real-token").await.body,
            closed.body,
            "an unknown link reads as a stopped one"
        );

        // With a passcode: asked for; wrong ones counted; locked after the limit.
        let made = sam
            .submit(
                &links,
                &links,
                &[("days", "366"), ("passcode", "blue-sky-42")],
            )
            .await;
        let card = new_link(&made.body);
        let ask = anyone.get(&card).await;
        assert_eq!(ask.status, 200);
        assert!(ask.body.contains("Enter the card") && !ask.body.contains("Peanut"));
        for _ in 0..domain::card_link::MAX_ATTEMPTS - 1 {
            let wrong = anyone.post(&card, &[("passcode", "red-sky-42")]).await;
            assert_eq!(wrong.status, 400);
            assert!(!wrong.body.contains("Peanut"));
        }
        let right = anyone.post(&card, &[("passcode", "blue-sky-42")]).await;
        assert_eq!(right.status, 200);
        assert!(right.body.contains("Peanut allergy"));
        let last = anyone.post(&card, &[("passcode", "red-sky-42")]).await;
        assert_eq!(last.status, 404, "locked after the last wrong passcode");
        let locked = anyone.post(&card, &[("passcode", "blue-sky-42")]).await;
        assert_eq!(locked.status, 404, "and stays locked");
        assert!(!locked.body.contains("Peanut"));

        // Expired: nothing of the child.
        let token = domain::auth::random_token();
        let now = passport_server::clock::now_us();
        w.store
            .data()
            .test_store()
            .create_card_link(&domain::card_link::CardLinkRow {
                id: "expired-link".into(),
                patient_id: mia.clone(),
                token_sha256: domain::card_link::token_sha256(&token),
                created_by: "someone".into(),
                created_by_name: "Sam Jones".into(),
                created_us: now - 10_000_000,
                expires_us: now - 1,
                revoked_us: None,
                passcode_hash: None,
                failed_attempts: 0,
            })
            .await
            .unwrap();
        let expired = anyone.get(&format!("/card/{token}")).await;
        assert_eq!(expired.status, 404);
        assert!(!expired.body.contains("Peanut"));
        w.store.close().await;
    }
);

/// The text of a PDF, by poppler's `pdftotext` (what a reader copies out of it). Without
/// pdftotext (apt-get install poppler-utils; `.ci/run` installs it) the text checks are
/// skipped and say so — unless `CI=true`, where that is a failure.
fn pdf_text(pdf: &[u8]) -> Option<String> {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let path = std::env::temp_dir().join(format!("passport-{}.pdf", uuid::Uuid::now_v7()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")
        .output();
    std::fs::remove_file(&path).ok();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("pdftotext is needed under CI: {e}");
            }
            eprintln!(
                "PDF text checks skipped: pdftotext not installed (apt-get install poppler-utils)"
            );
            return None;
        }
    };
    assert!(out.status.success());
    // One space between words, whatever the layout.
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The files of a ZIP, by Python's zipfile (which checks every CRC): (name, bytes).
fn unzip(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("passport-zip-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("copy.zip"), zip).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print('\\n'.join(z.namelist()))",
        ])
        .arg(dir.join("copy.zip"))
        .arg(dir.join("out"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|n| {
            (
                n.to_owned(),
                std::fs::read(dir.join("out").join(n)).unwrap(),
            )
        })
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    files
}

/// The sections a passport page says are not shared with its reader.
fn hidden_sections(body: &str) -> Vec<String> {
    access::Section::ALL
        .iter()
        .map(|s| s.code().to_owned())
        .filter(|c| not_shared(body, c))
        .collect()
}

// The printed passport holds the chosen sections of what the reader may see — the
// allergy with its reaction, the rescue medicine with its dose — and says when it was
// printed; the wallet card's QR holds the card link; the family's copy is one ZIP with
// the PDF and an R4 Bundle of exactly what that family member may see.
on_both_databases!(the_passport_prints_and_the_family_downloads_a_copy, |srv| {
    let w = world(&srv.database_url).await;
    let base = srv.base.clone();
    let mia = w.mia.clone();
    let mut cara = staff(&base, &w, "cara@example.nhs.uk").await;
    add(
        &mut cara,
        &mia,
        "emergency-protocol",
        &[
            ("emergency-recognise", "Stiffening then jerking"),
            ("emergency-what-to-do", "Time it and keep her safe"),
            ("emergency-call-999", "Over 5 minutes"),
            ("emergency-rescue-medicine", "Buccal midazolam"),
            ("emergency-rescue-dose", "5 mg (0.5 mL)"),
            ("emergency-rescue-route", "buccal"),
        ],
    )
    .await;
    let mut sam = family(&base, "sam@example.com").await;
    let form = sam.get(&format!("/passport/{mia}/add/allergy")).await;
    let milk = option_value(&form.body, "Cow&#x27;s milk");
    add(
        &mut sam,
        &mia,
        "allergy",
        &[
            ("allergy-substance", milk.as_str()),
            ("allergy-reaction", "other"),
            ("allergy-reaction-other", "Hives on the face"),
            ("allergy-severity", "moderate"),
        ],
    )
    .await;

    add(
        &mut sam,
        &mia,
        "key-contact",
        &[
            ("key-contact-name", "Sam Jones"),
            ("key-contact-relationship", "Mum"),
            ("key-contact-phone", "07700 900123"),
        ],
    )
    .await;
    // Print: the sections chosen, no others.
    let choose = sam.get(&format!("/passport/{mia}/print")).await;
    assert_eq!(choose.status, 200, "{}", choose.body);
    assert!(choose.body.contains("value=\"allergies\""));
    let (status, ct, pdf) = sam
        .get_bytes(&format!(
            "/passport/{mia}/print/pdf?section=allergies&section=emergency"
        ))
        .await;
    assert_eq!((status, ct.as_str()), (200, "application/pdf"));
    let text = pdf_text(&pdf).unwrap_or_default();
    let checked = !text.is_empty();
    for shown in [
        "Mia Jones's passport",
        "943 476 5919",
        "Cow's milk",
        "Hives on the face",
        "Buccal midazolam",
        "5 mg (0.5 mL)",
        "Printed on",
        "The online passport is the current one",
    ] {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    assert!(
        !text.contains("Asthma diagnosis"),
        "an unchosen section printed"
    );
    // Printing is audited.
    let log_path = format!("/passport/{mia}/access-log");
    assert!(sam.get(&log_path).await.body.contains("Sam Jones exported"));

    // A school prints no more than it may see.
    let mut tom = staff(&base, &w, "tom@example.sch.uk").await;
    let seen = tom.get(&format!("/passport/{mia}")).await;
    let hidden = hidden_sections(&seen.body);
    assert!(!hidden.is_empty());
    let (status, _, pdf) = tom
        .get_bytes(&format!(
            "/passport/{mia}/print/pdf?section=conditions&section=allergies"
        ))
        .await;
    assert_eq!(status, 200);
    let text = pdf_text(&pdf).unwrap_or_default();
    assert!(!checked || text.contains("Cow's milk"));
    if hidden.iter().any(|s| s == "conditions") {
        assert!(!text.contains("Asthma diagnosis"), "{text}");
    }

    // The wallet card: for a working link of the family's, with the link in its QR code.
    let links = format!("/passport/{mia}/card-links");
    let made = sam.submit(&links, &links, &[("days", "31")]).await;
    let token = made.hidden("token");
    assert!(token.len() >= 43);
    let (status, ct, card) = sam
        .post_bytes(
            &format!("{links}/card"),
            &[("token", &token), ("csrf_token", &made.csrf())],
        )
        .await;
    assert_eq!((status, ct.as_str()), (200, "application/pdf"));
    let text = pdf_text(&card).unwrap_or_default();
    for shown in [
        "Mia Jones",
        "Cow's milk",
        "Hives on the face",
        "Sam Jones (Mum)",
        "Printed on",
        "online passport is the current one",
    ] {
        assert!(
            !checked || text.contains(shown),
            "{shown} on the card: {text}"
        );
    }
    let (status, _, _) = sam
        .post_bytes(
            &format!("{links}/card"),
            &[("token", "not-a-link"), ("csrf_token", &made.csrf())],
        )
        .await;
    assert_eq!(status, 404, "no card for a link that is not theirs");

    // The family's copy: one ZIP, the PDF and an R4 Bundle of what they may see.
    let (status, ct, zip) = sam
        .get_bytes(&format!("/passport/{mia}/download/copy"))
        .await;
    assert_eq!((status, ct.as_str()), (200, "application/zip"));
    let files = unzip(&zip);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["mia-jones-passport.pdf", "mia-jones-passport-fhir.json"]
    );
    let copy_text = pdf_text(&files[0].1).unwrap_or_default();
    assert!(!checked || copy_text.contains("Hives on the face"));
    let bundle: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
    assert_eq!(bundle["type"], "collection");
    let issues = fhir::validate::validate(&bundle);
    assert!(issues.is_empty(), "{issues:?}");
    let types = |b: &serde_json::Value| -> Vec<String> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
            .collect()
    };
    let sams = types(&bundle);
    for ty in [
        "Patient",
        "AllergyIntolerance",
        "CarePlan",
        "MedicationStatement",
    ] {
        assert!(sams.iter().any(|t| t == ty), "{ty} in {sams:?}");
    }
    // A school's copy holds only the sections the school may see.
    let page = tom.get(&format!("/passport/{mia}")).await;
    let hidden = hidden_sections(&page.body);
    let (status, _, zip) = tom
        .get_bytes(&format!("/passport/{mia}/download/copy"))
        .await;
    assert_eq!(status, 200);
    let toms: serde_json::Value = serde_json::from_slice(&unzip(&zip)[1].1).unwrap();
    let entries = toms["entry"].as_array().unwrap();
    assert!(entries.len() < sams.len(), "the school sees less than Sam");
    for e in entries {
        let sections = access::Section::from_resource_meta(&e["resource"]);
        assert!(
            sections.is_empty()
                || sections
                    .iter()
                    .any(|s| !hidden.contains(&s.code().to_owned())),
            "{} in the school's copy",
            e["resource"]
        );
    }
    // A relative who may see nothing gets nothing, as on the passport page.
    let mut gran = family(&base, "gran@example.com").await;
    let page = gran.get(&format!("/passport/{mia}")).await;
    let (status, _, _) = gran
        .get_bytes(&format!("/passport/{mia}/download/copy"))
        .await;
    assert_eq!(status, page.status);
    // Someone with no relationship gets nothing.
    let mut gina = staff(&base, &w, "gina@example.nhs.uk").await;
    let (status, _, body) = gina
        .get_bytes(&format!("/passport/{mia}/download/copy"))
        .await;
    assert_eq!(status, 404);
    assert!(!String::from_utf8_lossy(&body).contains("Mia"));
    w.store.close().await;
});
