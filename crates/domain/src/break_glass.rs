//! Break-glass: emergency access to a child's record by an eligible clinician outside the
//! child's care team (docs/SECURITY.md, "Break-glass"). The decision is
//! `access::request_break_glass`; an allowed grant is kept, the child's facts are forgotten
//! so that it applies at once, and its AuditEvent is on disk before the grant is returned
//! (so no emergency access is ever used unrecorded).

use access::{ChildFacts, Subject};
use passport_store::StoreError;
use passport_store::break_glass::BreakGlassRow;

use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind, Purpose, Who};

/// A clinician's request for emergency access to one child's record.
pub struct Request<'a> {
    pub child_id: &'a str,
    pub reason: &'a str,
    /// The clinician: their subject (for the decision), account and organisation (for the
    /// grant), and how the audit trail names them.
    pub subject: &'a Subject,
    pub account_id: &'a str,
    pub organisation_id: &'a str,
    pub who: Who,
}

/// Decides `request` against the child's `facts` under the region's policy; when allowed, keeps the grant, records
/// its AuditEvent and returns it. `Ok(Err(reason))`: refused, and why.
pub async fn open(
    d: &Domain,
    facts: &ChildFacts,
    request: Request<'_>,
) -> Result<Result<BreakGlassRow, access::Reason>, StoreError> {
    let now = crate::clock::now_us();
    let grant = match access::request_break_glass(
        &d.policy,
        request.subject,
        facts,
        request.reason,
        crate::facts::timestamp(now),
    ) {
        Ok(g) => g,
        Err(why) => return Ok(Err(why)),
    };
    let row = BreakGlassRow {
        id: uuid::Uuid::now_v7().to_string(),
        patient_id: request.child_id.to_owned(),
        practitioner_id: grant.practitioner.clone(),
        account_id: request.account_id.to_owned(),
        organisation_id: request.organisation_id.to_owned(),
        reason: grant.reason.clone(),
        starts_us: now,
        expires_us: now + (grant.expires.unix() - grant.starts.unix()) * 1_000_000,
        reviewed_us: None,
        reviewed_by: None,
    };
    let mut spec = AuditEventSpec::new(EventKind::BreakGlass, request.who);
    spec.recorded_us = now;
    spec.purpose = Purpose::EmergencyTreatment;
    spec.patient_id = Some(row.patient_id.clone());
    spec.resource = Some(("Patient".into(), Some(row.patient_id.clone()), None));
    // The record first: a grant never exists without it.
    d.records()
        .append_audit(vec![spec.to_record(d.base_url())])
        .await?;
    d.store().create_break_glass(&row).await?;
    // The grant changes what this clinician may see of the child: at once.
    d.facts.forget(&row.patient_id);
    Ok(Ok(row))
}
