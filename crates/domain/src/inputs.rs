//! The access decision's inputs kept beside every stored version, computed on the write
//! path ([`crate::records::stamp`]) so that searches can apply a caller's view inside the
//! query (docs/SECURITY.md §5.4).

use access::{MemberKind, Timestamp};
use passport_store::{AccessInputs, CareTeamMemberRow};
use serde_json::Value;

/// The decision's inputs the store keeps beside a version: its children (compartment),
/// sections, labels and current-medicine flag, read by the `access` crate's own readers.
pub fn access_inputs(resource: &Value) -> AccessInputs {
    let facts = access::ResourceFacts::from_json(resource);
    AccessInputs {
        patients: fhir::compartment::patients_of(resource),
        sections: facts.sections.bits(),
        labels: facts.labels.bits(),
        active_medication: facts.active_medication,
        members: access::CareTeamMember::spans(resource)
            .into_iter()
            .map(|m| CareTeamMemberRow {
                member_type: match m.kind {
                    MemberKind::Practitioner => "Practitioner",
                    MemberKind::Organisation => "Organization",
                    MemberKind::PractitionerRole => "PractitionerRole",
                },
                member_id: m.id,
                starts: m.starts.map(Timestamp::unix),
                ends: m.ends.map(Timestamp::unix),
            })
            .collect(),
    }
}
