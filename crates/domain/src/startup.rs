//! Start-up steps that bring stored data in line with the rules, run after the SQL
//! migrations on every start (both are cheap when there is nothing to do, and each is safe
//! to run again or from two servers at once). Each change is made the ordinary way — a
//! new, validated version through the write path, or the directory's deactivation — and
//! audited as the operator. What they changed is reported in the log by ids, role codes
//! and organisation codes only (never names, email addresses or other personal data).
//!
//! 1. **Hidden-address markers** ([`move_hidden_address_markers`]): a Patient carrying
//!    the marker on one of its addresses (the form an earlier docs/DATA-MODEL.md gave)
//!    gets a new version with the marker on the Patient (`access::normalise_hidden_address`,
//!    the same step every API write takes).
//! 2. **Items without a section** ([`give_sections`]): a current item of a type with a
//!    default section (`access::default_sections`: allergies, medicines, conditions, care
//!    plans, flags, the Patient, related people) stored without any section tag gets a
//!    new version with its default, as every write now gives it (docs/SECURITY.md §5).
//! 3. **Roles outside their sectors** ([`deactivate_misassigned_accounts`]): a staff
//!    account whose role its organisation may not have (`access::Role::allowed_in`, e.g. a
//!    "clinician" of a school) is deactivated: signed out everywhere, its tokens revoked.

use passport_store::{HistoryQuery, StoreError};
use serde_json::Value;

use crate::Domain;
use crate::audit::{EventKind, Interaction};
use crate::directory;
use crate::records::{self, Agent, Records, new_version};

/// What the start-up steps changed (ids only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Patients given a new version with the marker moved: (id, new version).
    pub markers_moved: Vec<(String, i64)>,
    /// Items given their default sections: (type, id, new version).
    pub sections_given: Vec<(String, String, i64)>,
    /// Accounts deactivated: (account id, role code, organisation code).
    pub accounts_deactivated: Vec<(String, String, String)>,
}

/// Runs every step and logs what changed.
pub async fn run(st: &Domain) -> Result<Report, StoreError> {
    let report = Report {
        markers_moved: move_hidden_address_markers(st).await?,
        sections_given: give_sections(st).await?,
        accounts_deactivated: deactivate_misassigned_accounts(st).await?,
    };
    for (id, version) in &report.markers_moved {
        tracing::warn!(
            patient = %id, version,
            "start-up: moved a hidden-address marker from an address to the Patient"
        );
    }
    for (resource_type, id, version) in &report.sections_given {
        tracing::warn!(
            %resource_type, %id, version,
            "start-up: gave an item stored without a section its default section"
        );
    }
    for (account, role, org) in &report.accounts_deactivated {
        tracing::warn!(
            %account, %role, organisation = %org,
            "start-up: deactivated an account whose role its organisation's sector may not have"
        );
    }
    Ok(report)
}

/// The operator, as the agent of start-up changes.
fn operator() -> Agent {
    Agent::operator("start-up data check")
}

/// How many versions one history page reads.
const PAGE: usize = 500;

/// Finds current Patients carrying the hidden-address marker on an address and writes a
/// new version of each with the marker on the Patient. Returns (id, new version).
pub async fn move_hidden_address_markers(st: &Domain) -> Result<Vec<(String, i64)>, StoreError> {
    // Every Patient version, newest first, looked at without parsing unless it mentions
    // the marker at all; the current version of each candidate is then read and checked.
    let mut candidates = std::collections::BTreeSet::new();
    let mut before = None;
    loop {
        let page = st
            .store()
            .history(
                &HistoryQuery {
                    resource_type: Some("Patient".into()),
                    before_seq: before,
                    count: PAGE,
                    ..Default::default()
                },
                // The operator's own start-up step, not a caller's read.
                passport_store::search::Visibility::System,
            )
            .await?;
        for e in &page {
            let body = &e.version.body;
            if !e.version.deleted
                && memchr_contains(body, access::ADDRESS_HIDDEN_EXTENSION.as_bytes())
            {
                candidates.insert(e.version.id.clone());
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => before = Some(last.seq),
            _ => break,
        }
    }
    let mut moved = Vec::new();
    for id in candidates {
        // A concurrent writer (another server starting) may get there first: read again.
        for _ in 0..crate::records::MAX_RETRIES {
            let Some(current) = st
                .store()
                .read("Patient", &id)
                .await?
                .filter(|s| !s.deleted)
            else {
                break;
            };
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&current.body) else {
                break;
            };
            if !access::has_per_address_marker(&Value::Object(map.clone())) {
                break;
            }
            // The write path's own normalisation and validation.
            let write = match new_version(Value::Object(map), Some(&current)) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(patient = %id, error = %e, "start-up: a Patient with a hidden-address marker on an address is not valid; left as it is");
                    break;
                }
            };
            match Records::of(st).write(&operator(), write).await {
                Ok(stored) => {
                    moved.push((id.clone(), stored.version_id));
                    break;
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(moved)
}

/// The types [`give_sections`] looks at: those with a default section.
const SECTIONED_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "CarePlan",
    "Condition",
    "Flag",
    "MedicationStatement",
    "Patient",
    "RelatedPerson",
];

/// Finds current items of [`SECTIONED_TYPES`] stored without any section tag and writes a
/// new version of each with its default section, through the write path (validation,
/// `request::with_sections`, stamping, indexing), audited as the operator. Stored bytes
/// are never edited. Returns (type, id, new version).
pub async fn give_sections(st: &Domain) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut given = Vec::new();
    for ty in SECTIONED_TYPES {
        // Every version, newest first; only those that mention no section at all are
        // candidates (the current version of each is then read and checked).
        let mut candidates = std::collections::BTreeSet::new();
        let mut before = None;
        loop {
            let page = st
                .store()
                .history(
                    &HistoryQuery {
                        resource_type: Some((*ty).into()),
                        before_seq: before,
                        count: PAGE,
                        ..Default::default()
                    },
                    passport_store::search::Visibility::System,
                )
                .await?;
            for e in &page {
                if !e.version.deleted
                    && !memchr_contains(&e.version.body, access::SECTION_SYSTEM.as_bytes())
                {
                    candidates.insert(e.version.id.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => before = Some(last.seq),
                _ => break,
            }
        }
        for id in candidates {
            // A concurrent writer (another server starting) may get there first: read again.
            for _ in 0..crate::records::MAX_RETRIES {
                let Some(current) = st.store().read(ty, &id).await?.filter(|s| !s.deleted) else {
                    break;
                };
                let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&current.body) else {
                    break;
                };
                if !access::Section::from_resource_meta(&Value::Object(map.clone())).is_empty() {
                    break;
                }
                let map = match records::validate(map) {
                    Ok(m) => records::with_sections(m, Some(&current)),
                    Err(issues) => {
                        tracing::error!(resource_type = %ty, %id, issues = issues.len(), "start-up: an item without a section is not valid; left as it is");
                        break;
                    }
                };
                let value = Value::Object(map);
                if access::Section::from_resource_meta(&value).is_empty() {
                    break;
                }
                let Value::Object(map) = value else {
                    unreachable!()
                };
                let write = records::stamp(ty, &id, map, Some(&current));
                match Records::of(st).write(&operator(), write).await {
                    Ok(stored) => {
                        given.push((ty.to_string(), id.clone(), stored.version_id));
                        break;
                    }
                    Err(StoreError::VersionConflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(given)
}

fn memchr_contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Deactivates every active staff account whose role its organisation may not have.
/// Returns (account id, role code, organisation code: ODS, URN or id).
pub async fn deactivate_misassigned_accounts(
    st: &Domain,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut out = Vec::new();
    for account in st.store().list_accounts().await? {
        if !account.active {
            continue;
        }
        let allowed = directory::account_role_allowed(st, &account)
            .await
            .map_err(directory_error)?;
        if allowed != Some(false) {
            continue;
        }
        directory::set_account_active(st, &account.id, false)
            .await
            .map_err(directory_error)?;
        let org_id = account.organisation_id.clone().unwrap_or_default();
        let org = directory::organisation(st, &org_id)
            .await
            .map_err(directory_error)?;
        let code = org
            .and_then(|o| o.ods.or(o.school_urn))
            .unwrap_or_else(|| org_id.clone());
        let role_resource = account
            .practitioner_role_id
            .clone()
            .unwrap_or_else(|| account.id.clone());
        Records::of(st)
            .append_audit(vec![operator().event(
                st.base_url(),
                EventKind::Rest(Interaction::Update),
                None,
                ("PractitionerRole", &role_resource, None),
                crate::clock::now_us(),
            )])
            .await?;
        out.push((
            account.id.clone(),
            account.role.clone().unwrap_or_default(),
            code,
        ));
    }
    Ok(out)
}

fn directory_error(e: directory::DirectoryError) -> StoreError {
    match e {
        directory::DirectoryError::Store(e) => e,
        other => StoreError::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    /// The start-up step looks at every supported type that has a default section.
    #[test]
    fn sectioned_types_are_those_with_a_default() {
        let with_default: Vec<&str> = fhir::types::SUPPORTED_TYPES
            .iter()
            .copied()
            .filter(|t| !access::default_sections(t, &serde_json::json!({})).is_empty())
            .collect();
        assert_eq!(with_default, super::SECTIONED_TYPES);
    }
}
