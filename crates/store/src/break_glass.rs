//! Break-glass grants (migration 11): a clinician or emergency-services user with no
//! relationship to a child opened the child's emergency content, stating a reason, for a
//! limited time. The decision is `access::request_break_glass`; the grant is kept here so
//! that later requests can see it (`access::ChildFacts::break_glass`), the organisation's
//! privacy officer can review it and the family sees it in their access log.
//!
//! A grant is never deleted or changed, except that the privacy officer marks it reviewed
//! (once: the first reviewer and time stay).

use crate::{Result, Store};

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRow {
    pub id: String,
    /// The child's Patient.
    pub patient_id: String,
    /// The user's Practitioner.
    pub practitioner_id: String,
    /// The user's sign-in account.
    pub account_id: String,
    /// The organisation the user acted for (whose privacy officer reviews the grant).
    pub organisation_id: String,
    /// Why, as the user wrote it.
    pub reason: String,
    pub starts_us: i64,
    pub expires_us: i64,
    pub reviewed_us: Option<i64>,
    /// The reviewing account.
    pub reviewed_by: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, patient_id, practitioner_id, account_id, organisation_id, \
     reason, starts_us, expires_us, reviewed_us, reviewed_by";

impl Store {
    /// Stores a new grant.
    pub async fn create_break_glass(&self, row: &BreakGlassRow) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.create_break_glass(row.clone()).await,
            Store::Postgres(s) => s.create_break_glass(row).await,
        }
    }

    /// Every grant for one child, newest first.
    pub async fn break_glass_for_patient(&self, patient_id: &str) -> Result<Vec<BreakGlassRow>> {
        match self {
            Store::Sqlite(s) => s.break_glass_where("patient_id", patient_id, false),
            Store::Postgres(s) => s.break_glass_where("patient_id", patient_id, false).await,
        }
    }

    /// The grants made by users of one organisation, newest first; with `only_unreviewed`,
    /// only those the privacy officer has not yet reviewed.
    pub async fn break_glass_for_organisation(
        &self,
        org_id: &str,
        only_unreviewed: bool,
    ) -> Result<Vec<BreakGlassRow>> {
        match self {
            Store::Sqlite(s) => s.break_glass_where("organisation_id", org_id, only_unreviewed),
            Store::Postgres(s) => {
                s.break_glass_where("organisation_id", org_id, only_unreviewed)
                    .await
            }
        }
    }

    /// Marks a grant reviewed by `reviewer_account`; `false` if there is no such grant or
    /// it was already reviewed (the first review stands).
    pub async fn mark_break_glass_reviewed(
        &self,
        id: &str,
        reviewer_account: &str,
        now_us: i64,
    ) -> Result<bool> {
        match self {
            Store::Sqlite(s) => {
                s.mark_break_glass_reviewed(id.to_owned(), reviewer_account.to_owned(), now_us)
                    .await
            }
            Store::Postgres(s) => {
                s.mark_break_glass_reviewed(id, reviewer_account, now_us)
                    .await
            }
        }
    }
}
