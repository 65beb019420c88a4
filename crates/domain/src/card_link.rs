//! Card links: the link in the QR code of a child's wallet card. Whoever controls the
//! passport makes one; whoever holds it reads the child's emergency content and nothing
//! else (`access::Identity::CardLink`, decided like every read). docs/SECURITY.md §
//! "Card links" gives the rules:
//!
//! - the token is 256 random bits, shown once, kept only as its SHA-256, never logged;
//! - it expires when the family chose (at most [`MAX_DAYS`]) and can be stopped at once;
//! - it may need a passcode; after [`MAX_ATTEMPTS`] wrong ones it opens nothing more;
//! - every opening is in the family's access log ("Someone with the card link looked at
//!   the passport: …"), and so is making and stopping one.
//!
//! A stopped, expired or unknown link answers the same way and shows nothing of the child.

use passport_store::StoreError;
pub use passport_store::card_links::CardLinkRow;

use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Named, Purpose, Who};
use crate::guard::Caller;
use crate::passport::{self, Emergency, Failed};

/// The longest a card link lasts: a year (a leap year's day included).
pub const MAX_DAYS: i64 = 366;
/// Wrong passcodes before a link opens nothing more (the family makes a new one).
pub const MAX_ATTEMPTS: i64 = 5;
/// The shortest passcode.
pub const MIN_PASSCODE: usize = 6;

/// The hex SHA-256 the store keeps of a token.
pub fn token_sha256(token: &str) -> String {
    crate::auth::token_hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller's own passports only: the person in control of the sharing.
async fn controlled(d: &Domain, caller: &Caller, patient: &str) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if facts.patient.is_empty() {
        return Err(Failed::NotFound);
    }
    if !passport::controls(d, caller, &facts) {
        return Err(Failed::Forbidden(
            "Only the person who controls the passport's sharing can make or stop card links."
                .into(),
        ));
    }
    Ok(())
}

async fn audit(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    interaction: Interaction,
) -> Result<(), StoreError> {
    let mut spec = AuditEventSpec::new(EventKind::CardLink(interaction), caller.who.clone());
    spec.purpose = caller.purpose;
    spec.patient_id = Some(patient.to_owned());
    spec.resource = Some(("Patient".into(), Some(patient.to_owned()), None));
    d.records()
        .append_audit(vec![spec.to_record(d.base_url())])
        .await
}

/// Makes a card link for `patient` lasting `days`, with an optional passcode. Returns the
/// stored link and its token (shown once: only its hash is kept).
pub async fn create(
    d: &Domain,
    caller: &Caller,
    account_id: &str,
    patient: &str,
    days: i64,
    passcode: Option<&str>,
) -> Result<(CardLinkRow, String), Failed> {
    controlled(d, caller, patient).await?;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Failed::Invalid(format!(
            "A card link lasts between 1 day and {MAX_DAYS} days."
        )));
    }
    if passcode.is_some_and(|p| p.chars().count() < MIN_PASSCODE) {
        return Err(Failed::Invalid(format!(
            "A passcode needs at least {MIN_PASSCODE} characters."
        )));
    }
    let now = crate::clock::now_us();
    let token = crate::auth::random_token();
    let row = CardLinkRow {
        id: uuid::Uuid::now_v7().to_string(),
        patient_id: patient.to_owned(),
        token_sha256: token_sha256(&token),
        created_by: account_id.to_owned(),
        created_by_name: caller.who.person.display.clone(),
        created_us: now,
        expires_us: now + days * 86_400 * 1_000_000,
        revoked_us: None,
        passcode_hash: passcode.map(crate::auth::hash_password),
        failed_attempts: 0,
    };
    // The record first: no link exists unrecorded.
    audit(d, caller, patient, Interaction::Create).await?;
    d.store().create_card_link(&row).await?;
    Ok((row, token))
}

/// The child's card links, newest first, for the person in control.
pub async fn list(d: &Domain, caller: &Caller, patient: &str) -> Result<Vec<CardLinkRow>, Failed> {
    controlled(d, caller, patient).await?;
    Ok(d.store().card_links_for_patient(patient).await?)
}

/// Stops a card link at once; `Ok(false)` if it was already stopped or is not this child's.
pub async fn revoke(d: &Domain, caller: &Caller, patient: &str, id: &str) -> Result<bool, Failed> {
    controlled(d, caller, patient).await?;
    let now = crate::clock::now_us();
    audit(d, caller, patient, Interaction::Update).await?;
    Ok(d.store().revoke_card_link(id, patient, now).await?)
}

/// What opening a card link gives.
pub enum Opened {
    /// The child's emergency view.
    Emergency(Box<Emergency>),
    /// The link needs its passcode (`wrong`: the one given was not it).
    Passcode { wrong: bool },
    /// Stopped, expired, unknown, or locked after too many wrong passcodes: nothing of
    /// the child.
    Closed,
}

/// Opens the card link with `token` (and `passcode`, if it needs one).
pub async fn open(d: &Domain, token: &str, passcode: Option<&str>) -> Result<Opened, Failed> {
    let Some(link) = d.store().card_link_by_token(&token_sha256(token)).await? else {
        return Ok(Opened::Closed);
    };
    let now = crate::clock::now_us();
    if link.revoked_us.is_some() || now >= link.expires_us || link.failed_attempts >= MAX_ATTEMPTS {
        return Ok(Opened::Closed);
    }
    if let Some(hash) = &link.passcode_hash {
        let Some(given) = passcode.filter(|p| !p.is_empty()) else {
            return Ok(Opened::Passcode { wrong: false });
        };
        if !crate::auth::verify_password(given, Some(hash)) {
            let attempts = d.store().card_link_failed(&link.id).await?;
            return Ok(if attempts >= MAX_ATTEMPTS {
                Opened::Closed
            } else {
                Opened::Passcode { wrong: true }
            });
        }
    }
    let caller = Caller {
        subject: access::Subject::session(access::Identity::CardLink {
            patient: link.patient_id.clone(),
        }),
        who: Who {
            person: Named {
                reference: None,
                display: "Someone with the card link".into(),
            },
            ..Who::default()
        },
        purpose: Purpose::EmergencyTreatment,
    };
    let view = passport::emergency(d, &caller, &link.patient_id).await?;
    Ok(Opened::Emergency(Box::new(view)))
}

/// The child's working card link with `token`, for the person in control (to print its
/// card); `None` if the token is not a working link of this child.
pub async fn working(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    token: &str,
) -> Result<Option<CardLinkRow>, Failed> {
    controlled(d, caller, patient).await?;
    let now = crate::clock::now_us();
    Ok(d.store()
        .card_link_by_token(&token_sha256(token))
        .await?
        .filter(|l| {
            l.patient_id == patient
                && l.revoked_us.is_none()
                && now < l.expires_us
                && l.failed_attempts < MAX_ATTEMPTS
        }))
}
