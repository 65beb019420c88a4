-- Passport store, migration 16: who is in each child's care team, kept beside the CareTeams,
-- so that a search by a member of staff or an organisation's system finds the children it
-- may see inside its SQL (docs/SECURITY.md §5.4) instead of binding a list of thousands.
--
-- One row per current, active CareTeam x child (its `patient` parameter) x member
-- (`participant.member` or `onBehalfOf`), with when it is a member: the later of the
-- team's and the participant's period start (inclusive) and the earlier of their ends
-- (exclusive), in Unix seconds, NULL for open (access::CareTeamMember::spans, the reading
-- the decision's child facts use). A PractitionerRole member is kept as the role: the
-- practitioner it names is looked up when a search uses it. Written with the CareTeam's
-- index rows, in the same transaction.
CREATE TABLE access_member (
    rid         BIGINT NOT NULL,
    patient     TEXT NOT NULL,
    member_type TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    starts      BIGINT,
    ends        BIGINT
);
CREATE INDEX access_member_rid ON access_member (rid);
-- Is this child in the caller's care team (a search's visibility test, per row).
CREATE INDEX access_member_patient ON access_member (patient, member_type, member_id);
-- The children whose care team names the caller (the few with sharing choices).
CREATE INDEX access_member_member ON access_member (member_type, member_id, patient);

-- The CareTeams stored before this migration are filled in at start-up, with the other
-- access inputs, from their stored bodies.
UPDATE resource_versions SET acc_flags = 0 WHERE resource_type = 'CareTeam';
UPDATE resource_current SET acc_flags = 0 WHERE resource_type = 'CareTeam';
