//! Family onboarding (migration 7): invitations to a child's passport, and the
//! book-keeping of active family links with the family's last activity, from which each
//! passport's state is computed (invited, activated, active, dormant).
//!
//! The family link itself is FHIR (a `Person` whose `link` targets a `RelatedPerson` whose
//! `patient` is the child; see docs/DATA-MODEL.md), written by the server through the
//! ordinary resource path. This module keeps only what FHIR does not: invitation codes
//! (their SHA-256; the code itself is shown once) and activity times.

use crate::{Result, Store};

/// One invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    /// SHA-256 of the normalised code.
    pub code_hash: Vec<u8>,
    pub patient_id: String,
    /// The staff account that issued it (`None`: `passport admin`).
    pub issued_by_account: Option<String>,
    pub organisation_id: Option<String>,
    pub parent_email: Option<String>,
    pub created_us: i64,
    pub expires_us: i64,
    pub redeemed_us: Option<i64>,
    pub redeemed_by: Option<String>,
    pub revoked_us: Option<i64>,
}

/// Why an invitation code cannot be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationRefused {
    Unknown,
    Used,
    Expired,
    Revoked,
}

impl Invitation {
    /// Why it cannot be redeemed at `now_us`, if it cannot.
    pub fn refusal(&self, now_us: i64) -> Option<InvitationRefused> {
        if self.revoked_us.is_some() {
            Some(InvitationRefused::Revoked)
        } else if self.redeemed_us.is_some() {
            Some(InvitationRefused::Used)
        } else if self.expires_us <= now_us {
            Some(InvitationRefused::Expired)
        } else {
            None
        }
    }
}

/// What the store knows of one passport's onboarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassportFacts {
    pub patient_id: String,
    /// An invitation that is neither redeemed, revoked nor expired.
    pub open_invitation: bool,
    /// When the first family link became active.
    pub linked_us: Option<i64>,
    /// The latest family activity (sign-in, redemption) of any linked family member.
    pub last_family_activity_us: Option<i64>,
}

/// A passport's onboarding state (for commissioners' activation figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PassportState {
    /// An open invitation and no active family link.
    Invited,
    /// A family link, but no family activity recorded yet (linked within the window).
    Activated,
    /// Family activity within [`ACTIVE_WINDOW_US`].
    Active,
    /// Linked, but no family activity for [`ACTIVE_WINDOW_US`].
    Dormant,
}

/// "Active" means family activity in the last 90 days.
pub const ACTIVE_WINDOW_US: i64 = 90 * 24 * 3600 * 1_000_000;

impl PassportState {
    pub const ALL: [PassportState; 4] = [
        PassportState::Invited,
        PassportState::Activated,
        PassportState::Active,
        PassportState::Dormant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PassportState::Invited => "invited",
            PassportState::Activated => "activated",
            PassportState::Active => "active",
            PassportState::Dormant => "dormant",
        }
    }

    /// The state of a passport at `now_us`; `None` when it has neither an open invitation
    /// nor a family link (nothing to report).
    pub fn of(f: &PassportFacts, now_us: i64) -> Option<PassportState> {
        let since = now_us - ACTIVE_WINDOW_US;
        match (f.linked_us, f.last_family_activity_us) {
            (Some(_), Some(last)) if last > since => Some(PassportState::Active),
            (Some(_), Some(_)) => Some(PassportState::Dormant),
            (Some(linked), None) if linked > since => Some(PassportState::Activated),
            (Some(_), None) => Some(PassportState::Dormant),
            (None, _) if f.open_invitation => Some(PassportState::Invited),
            (None, _) => None,
        }
    }
}

pub(crate) const INVITATION_COLUMNS: &str = "id, code_hash, patient_id, issued_by_account, \
     organisation_id, parent_email, created_us, expires_us, redeemed_us, redeemed_by, revoked_us";

/// Passports with an invitation or a link: `patient_id, open, linked, last activity`.
pub(crate) const FACTS_SQL: &str = "SELECT p.patient_id, \
     (SELECT COUNT(*) FROM invitations i WHERE i.patient_id = p.patient_id \
        AND i.redeemed_us IS NULL AND i.revoked_us IS NULL AND i.expires_us > $1), \
     (SELECT MIN(l.linked_us) FROM family_links l WHERE l.patient_id = p.patient_id), \
     (SELECT MAX(l.last_family_activity_us) FROM family_links l WHERE l.patient_id = p.patient_id) \
     FROM (SELECT patient_id FROM invitations UNION SELECT patient_id FROM family_links) p \
     ORDER BY p.patient_id";

impl Store {
    /// Stores new invitations, all or nothing (one transaction).
    pub async fn create_invitations(&self, invitations: Vec<Invitation>) -> Result<()> {
        if invitations.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(s) => s.create_invitations(invitations).await,
            Store::Postgres(s) => s.create_invitations(&invitations).await,
        }
    }

    /// The invitation with this code hash, whatever its state.
    pub async fn invitation_by_code(&self, code_hash: &[u8]) -> Result<Option<Invitation>> {
        match self {
            Store::Sqlite(s) => s.invitation_where("code_hash", code_hash.to_vec()),
            Store::Postgres(s) => s.invitation_where_hash(code_hash).await,
        }
    }

    /// Invitations of one child, newest first.
    pub async fn invitations_for(&self, patient_id: &str) -> Result<Vec<Invitation>> {
        match self {
            Store::Sqlite(s) => s.invitations_for(patient_id),
            Store::Postgres(s) => s.invitations_for(patient_id).await,
        }
    }

    /// Redeems an invitation for `account_id`: checks and marks it used in ONE statement, so
    /// a code works once even when two people race. Returns the invitation (as it was
    /// before), or why it was refused (then nothing changed).
    pub async fn redeem_invitation(
        &self,
        code_hash: &[u8],
        account_id: &str,
        now_us: i64,
    ) -> Result<std::result::Result<Invitation, InvitationRefused>> {
        let changed = match self {
            Store::Sqlite(s) => {
                s.redeem_invitation(code_hash.to_vec(), account_id.to_owned(), now_us)
                    .await?
            }
            Store::Postgres(s) => s.redeem_invitation(code_hash, account_id, now_us).await?,
        };
        let found = self.invitation_by_code(code_hash).await?;
        Ok(match (changed, found) {
            (_, None) => Err(InvitationRefused::Unknown),
            (true, Some(mut inv)) => {
                inv.redeemed_us = None;
                inv.redeemed_by = None;
                Ok(inv)
            }
            (false, Some(inv)) => Err(inv.refusal(now_us).unwrap_or(InvitationRefused::Used)),
        })
    }

    /// Gives back a redemption (the binding that followed it failed).
    pub async fn unredeem_invitation(&self, code_hash: &[u8]) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.unredeem_invitation(code_hash.to_vec()).await,
            Store::Postgres(s) => s.unredeem_invitation(code_hash).await,
        }
    }

    /// Revokes an invitation; `false` if it was not open.
    pub async fn revoke_invitation(&self, id: &str, now_us: i64) -> Result<bool> {
        match self {
            Store::Sqlite(s) => s.revoke_invitation(id.to_owned(), now_us).await,
            Store::Postgres(s) => s.revoke_invitation(id, now_us).await,
        }
    }

    /// Records that a family link became active (idempotent). With `activity`, the link
    /// counts as family activity at `now_us` (a redemption); without, it does not (a
    /// professional confirmed a self-registration).
    pub async fn record_family_link(
        &self,
        patient_id: &str,
        person_id: &str,
        related_person_id: &str,
        now_us: i64,
        activity: bool,
    ) -> Result<()> {
        let last = activity.then_some(now_us);
        match self {
            Store::Sqlite(s) => {
                s.record_family_link(
                    patient_id.to_owned(),
                    person_id.to_owned(),
                    related_person_id.to_owned(),
                    now_us,
                    last,
                )
                .await
            }
            Store::Postgres(s) => {
                s.record_family_link(patient_id, person_id, related_person_id, now_us, last)
                    .await
            }
        }
    }

    /// Records family activity (a sign-in) of `person_id` on every passport they are linked to.
    pub async fn record_family_activity(&self, person_id: &str, now_us: i64) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.record_family_activity(person_id.to_owned(), now_us).await,
            Store::Postgres(s) => s.record_family_activity(person_id, now_us).await,
        }
    }

    /// The onboarding facts of every passport with an invitation or a family link.
    pub async fn passport_facts(&self, now_us: i64) -> Result<Vec<PassportFacts>> {
        match self {
            Store::Sqlite(s) => s.passport_facts(now_us),
            Store::Postgres(s) => s.passport_facts(now_us).await,
        }
    }

    /// Each passport's state at `now_us`.
    pub async fn passport_states(&self, now_us: i64) -> Result<Vec<(String, PassportState)>> {
        Ok(self
            .passport_facts(now_us)
            .await?
            .into_iter()
            .filter_map(|f| PassportState::of(&f, now_us).map(|s| (f.patient_id, s)))
            .collect())
    }

    /// How many passports are in each state (every state listed, in [`PassportState::ALL`]
    /// order): the commissioners' activation figures.
    pub async fn passport_state_counts(&self, now_us: i64) -> Result<Vec<(PassportState, u64)>> {
        let states = self.passport_states(now_us).await?;
        Ok(PassportState::ALL
            .iter()
            .map(|s| (*s, states.iter().filter(|(_, x)| x == s).count() as u64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1_000_000;

    fn facts(open: bool, linked: Option<i64>, last: Option<i64>) -> PassportFacts {
        PassportFacts {
            patient_id: "p".into(),
            open_invitation: open,
            linked_us: linked,
            last_family_activity_us: last,
        }
    }

    #[test]
    fn states() {
        let now = 1_000 * DAY;
        let of = |f| PassportState::of(&f, now);
        assert_eq!(of(facts(true, None, None)), Some(PassportState::Invited));
        assert_eq!(of(facts(false, None, None)), None);
        assert_eq!(
            of(facts(false, Some(now - DAY), None)),
            Some(PassportState::Activated)
        );
        assert_eq!(
            of(facts(true, Some(now - 100 * DAY), Some(now - DAY))),
            Some(PassportState::Active)
        );
        assert_eq!(
            of(facts(false, Some(now - 200 * DAY), Some(now - 91 * DAY))),
            Some(PassportState::Dormant)
        );
        assert_eq!(
            of(facts(false, Some(now - 91 * DAY), None)),
            Some(PassportState::Dormant)
        );
    }
}
