//! `access_member` (migration 16): who is in each child's care team, kept with the
//! CareTeams so a search can find the children whose care team names its caller inside its
//! SQL (see `search::GrantChildren::CareTeam`).

use crate::{CareTeamMemberRow, Write};

/// The rows a CareTeam write leaves: each member for each child its `patient` parameter
/// names — the parameter the decision's child facts read CareTeams by — taken from the
/// write's own index entries (none for a deletion).
pub(crate) fn rows(w: &Write) -> Vec<(&str, &CareTeamMemberRow)> {
    if w.deleted || w.resource_type != "CareTeam" {
        return Vec::new();
    }
    let mut patients: Vec<&str> = Vec::new();
    for r in crate::search::rows(&w.index).reference {
        if r.param == "patient"
            && r.target_type == Some("Patient")
            && let Some(id) = r.target_id
            && !patients.contains(&id)
        {
            patients.push(id);
        }
    }
    patients
        .iter()
        .flat_map(|p| w.access.members.iter().map(move |m| (*p, m)))
        .collect()
}

/// Fills in the rows of the current version `seq` (start-up backfill: its index rows are
/// already stored). Parameters: member type, member id, starts, ends, `seq`.
pub(crate) const BACKFILL_SQLITE: &str = "INSERT INTO access_member \
     (rid, patient, member_type, member_id, starts, ends) \
     SELECT DISTINCT c.rid, p.target_id, ?1, ?2, ?3, ?4 FROM resource_current c \
     JOIN index_reference p ON p.rid = c.rid AND p.param = 'patient' AND p.target_type = 'Patient' \
     WHERE c.seq = ?5 AND NOT c.deleted AND c.resource_type = 'CareTeam'";
pub(crate) const BACKFILL_PG: &str = "INSERT INTO access_member \
     (rid, patient, member_type, member_id, starts, ends) \
     SELECT DISTINCT c.rid, p.target_id, $1, $2, $3::int8, $4::int8 FROM resource_current c \
     JOIN index_reference p ON p.rid = c.rid AND p.param = 'patient' AND p.target_type = 'Patient' \
     WHERE c.seq = $5 AND NOT c.deleted AND c.resource_type = 'CareTeam'";
/// Clears the rows of the current version `seq` before a backfill writes them.
pub(crate) const CLEAR_SQLITE: &str = "DELETE FROM access_member \
     WHERE rid IN (SELECT rid FROM resource_current WHERE seq = ?1)";
pub(crate) const CLEAR_PG: &str = "DELETE FROM access_member \
     WHERE rid IN (SELECT rid FROM resource_current WHERE seq = $1)";
