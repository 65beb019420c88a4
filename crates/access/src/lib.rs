//! # Passport access: who may do what to which resource, and why
//!
//! One decision function, [`decide`], used by the FHIR API, the pages, search-result
//! filtering, `_include`, exports and webhooks. It is pure: no I/O, no clock, no database.
//! Callers load the facts and pass them in:
//!
//! - the [`Subject`] (identity from the session or token, and the token's [`Scopes`]);
//! - the [`Action`];
//! - [`ResourceFacts`] read from the resource JSON (type, `meta.tag` sections,
//!   `meta.security` labels, MedicationStatement status);
//! - [`ChildFacts`] for the child whose record it is (birth date, Gillick / capacity,
//!   looked-after, hidden address, family links, care-team members, break-glass grants,
//!   the family's [`SharingChoices`] parsed from their Consent resources);
//! - the [`RegionalPolicy`] and the time.
//!
//! It returns a [`Decision`] with a machine code and a plain-English reason. Callers
//! record every decision in the audit log, and treat [`Reason::AllowedByBreakGlass`] as
//! an event to flag for review. Hidden addresses are removed by [`redact`] after an
//! allowed read. Growing up is [`controller`] and [`handover_reminder_due`].
//!
//! `docs/SECURITY.md` explains the model in plain English; the hand-written authorisation
//! matrix is in [`matrix`] (feature `testing`).

mod child;
pub mod consent;
mod decide;
mod decision;
mod default_section;
pub mod emergency;
mod label;
mod policy;
mod redact;
mod resource;
mod scopes;
mod section;
mod subject;
mod time;
mod view;

#[cfg(any(test, feature = "testing"))]
pub mod matrix;

pub use child::{
    BreakGlassGrant, CareTeamMember, ChildFacts, Controller, FamilyLink, FamilyRole, MemberKind,
    MemberSpan, controller, handover_date, handover_reminder_due,
};
pub use consent::{Actor, SharingChoices, SharingRule};
pub use decide::{break_glass_eligible, decide, readable_sections};
pub use decision::{Decision, Reason};
pub use default_section::{default_sections, ensure_sections};
pub use emergency::{EMERGENCY_READABLE, EMERGENCY_SECTIONS, is_emergency_content};
pub use label::{LABEL_SYSTEM, LabelSet, SecurityLabel, V3_ACT_CODE, V3_CONFIDENTIALITY};
pub use policy::RegionalPolicy;
pub use redact::{
    ADDRESS_HIDDEN_EXTENSION, REDACTED_SYSTEM, address_hidden, has_per_address_marker,
    normalise_hidden_address, redact, sees_hidden_address,
};
pub use resource::{Action, ResourceFacts};
pub use scopes::{Permissions, ResourceScope, ScopeCheck, ScopeContext, Scopes};
pub use section::{SECTION_SYSTEM, Section, SectionSet};
pub use subject::{Identity, Role, SECTOR_SYSTEM, Sector, Staff, Subject, SystemClient};
pub use time::{Date, Timestamp};
pub use view::{
    Children, Grant, Reach, Rule, TYPICAL_CHILD, TypeView, reach, redacted_param, search_view,
    typical_child,
};

/// Errors from parsing inputs (the decision itself never fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("malformed SMART scope: {0}")]
    InvalidScope(String),
    #[error("not a valid FHIR date or instant: {0}")]
    InvalidDate(String),
}

/// Asks for break-glass access: checks the clinician may use it, has no relationship to
/// the child (otherwise ordinary access applies) and gave a reason, and returns the grant
/// to store. The caller records the AuditEvent and raises the review flag.
pub fn request_break_glass(
    policy: &RegionalPolicy,
    subject: &Subject,
    child: &ChildFacts,
    reason: &str,
    now: Timestamp,
) -> Result<BreakGlassGrant, Reason> {
    let Identity::Staff(staff) = &subject.identity else {
        return Err(Reason::DeniedBreakGlassNotEligible);
    };
    if !break_glass_eligible(staff) {
        return Err(Reason::DeniedBreakGlassNotEligible);
    }
    if child.in_care_team(Some(&staff.practitioner), Some(&staff.organisation)) {
        return Err(Reason::DeniedBreakGlassNotNeeded);
    }
    if reason.trim().is_empty() {
        return Err(Reason::DeniedBreakGlassNoReason);
    }
    Ok(BreakGlassGrant::new(staff, reason.trim(), now, policy))
}
