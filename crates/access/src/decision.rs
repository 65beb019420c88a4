//! The outcome of [`crate::decide`]: allow or deny, and why.

/// Why a decision came out the way it did. [`Reason::code`] is stable and machine-readable
/// (for AuditEvents, OperationOutcomes and tests); [`Reason::message`] is plain English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // --- allowed ---
    /// A member of the child's care team, in a section their sector sees by default.
    AllowedCareTeam,
    /// Visible only because the family (or young person) chose to share it.
    AllowedBySharingChoice,
    /// A parent or carer with parental responsibility while parents control the passport,
    /// or after hand-over within the young person's choices.
    AllowedAsParent,
    /// The young person, in their own passport.
    AllowedAsYoungPerson,
    /// A foster carer, or a family member of a looked-after child, within what the social
    /// worker granted.
    AllowedByGrant,
    /// Emergency content opened by break-glass. Callers must audit and flag this.
    AllowedByBreakGlass,
    /// Emergency content opened by whoever holds the family's card link. Audited.
    AllowedByCardLink,
    /// Changing the sharing choices, by whoever controls the passport.
    AllowedAsController,
    /// Reading reference data that belongs to no child (Organization, Questionnaire, …).
    AllowedReferenceData,
    /// Writing reference data by an administrator.
    AllowedAdministration,
    /// Aggregate figures that identify no child.
    AllowedAggregate,
    /// Reviewing the access log.
    AllowedAuditReview,
    /// Creating a new child's Patient record.
    AllowedOnboarding,
    /// A trusted regional integration (bulk load, regional sync).
    AllowedRegionalSystem,

    // --- denied ---
    DeniedAnonymous,
    /// Commissioners see aggregate figures only, never a child's record.
    DeniedCommissioner,
    /// The token's scopes do not cover this resource type and action.
    DeniedScope,
    /// The token's `patient/` scopes are for a different patient.
    DeniedScopeOtherPatient,
    /// The role does not do this (e.g. an organisation admin opening a child's record).
    DeniedRole,
    /// No relationship to the child (not in the care team, not family, no break-glass).
    DeniedNoRelationship,
    /// The section is not shared with this person's organisation or sector.
    DeniedSectionNotShared,
    /// Can see it but not change it.
    DeniedReadOnly,
    /// The item carries a security label this person is not cleared for.
    DeniedLabel,
    /// The item carries no passport section tag; only the care team and those in control
    /// may see it.
    DeniedUntagged,
    /// A family member without parental responsibility who has not been given access.
    DeniedNoParentalResponsibility,
    /// A court order restricts this person's access.
    DeniedCourtOrder,
    /// Foster carer / family of a looked-after child: not granted by the social worker.
    DeniedNotGranted,
    /// After hand-over, the young person has not shared this with this family member.
    DeniedYoungPersonChoice,
    /// Only the person in control of the passport may change sharing choices.
    DeniedNotController,
    /// The break-glass grant has expired (or not started).
    DeniedBreakGlassExpired,
    /// Break-glass opens the emergency content only.
    DeniedBreakGlassSection,
    /// Break-glass allows reading only.
    DeniedBreakGlassAction,
    /// Only clinicians (and clinical emergency-services staff) may use break-glass.
    DeniedBreakGlassNotEligible,
    /// Break-glass asked for by someone already in the care team (ordinary access applies).
    DeniedBreakGlassNotNeeded,
    /// Break-glass asked for without stating a reason.
    DeniedBreakGlassNoReason,
    /// The resource belongs in a child's record but no child facts were supplied (a
    /// caller bug; denied to be safe).
    DeniedMissingChildFacts,
    /// Aggregate figures were asked for about one child.
    DeniedNotAggregate,
}

impl Reason {
    /// The stable machine code (the variant's name).
    pub const fn code(self) -> &'static str {
        use Reason::*;
        match self {
            AllowedCareTeam => "AllowedCareTeam",
            AllowedBySharingChoice => "AllowedBySharingChoice",
            AllowedAsParent => "AllowedAsParent",
            AllowedAsYoungPerson => "AllowedAsYoungPerson",
            AllowedByGrant => "AllowedByGrant",
            AllowedByBreakGlass => "AllowedByBreakGlass",
            AllowedByCardLink => "AllowedByCardLink",
            AllowedAsController => "AllowedAsController",
            AllowedReferenceData => "AllowedReferenceData",
            AllowedAdministration => "AllowedAdministration",
            AllowedAggregate => "AllowedAggregate",
            AllowedAuditReview => "AllowedAuditReview",
            AllowedOnboarding => "AllowedOnboarding",
            AllowedRegionalSystem => "AllowedRegionalSystem",
            DeniedAnonymous => "DeniedAnonymous",
            DeniedCommissioner => "DeniedCommissioner",
            DeniedScope => "DeniedScope",
            DeniedScopeOtherPatient => "DeniedScopeOtherPatient",
            DeniedRole => "DeniedRole",
            DeniedNoRelationship => "DeniedNoRelationship",
            DeniedSectionNotShared => "DeniedSectionNotShared",
            DeniedReadOnly => "DeniedReadOnly",
            DeniedLabel => "DeniedLabel",
            DeniedUntagged => "DeniedUntagged",
            DeniedNoParentalResponsibility => "DeniedNoParentalResponsibility",
            DeniedCourtOrder => "DeniedCourtOrder",
            DeniedNotGranted => "DeniedNotGranted",
            DeniedYoungPersonChoice => "DeniedYoungPersonChoice",
            DeniedNotController => "DeniedNotController",
            DeniedBreakGlassExpired => "DeniedBreakGlassExpired",
            DeniedBreakGlassSection => "DeniedBreakGlassSection",
            DeniedBreakGlassAction => "DeniedBreakGlassAction",
            DeniedBreakGlassNotEligible => "DeniedBreakGlassNotEligible",
            DeniedBreakGlassNotNeeded => "DeniedBreakGlassNotNeeded",
            DeniedBreakGlassNoReason => "DeniedBreakGlassNoReason",
            DeniedMissingChildFacts => "DeniedMissingChildFacts",
            DeniedNotAggregate => "DeniedNotAggregate",
        }
    }

    /// Plain English, suitable for an error page or an AuditEvent's outcome description.
    pub const fn message(self) -> &'static str {
        use Reason::*;
        match self {
            AllowedCareTeam => {
                "You are in this child's care team and this section is shared with your organisation."
            }
            AllowedBySharingChoice => "The family chose to share this section with you.",
            AllowedAsParent => "You have parental responsibility for this child.",
            AllowedAsYoungPerson => "This is your own passport.",
            AllowedByGrant => "The child's social worker has given you access to this section.",
            AllowedByBreakGlass => {
                "Opened in an emergency (break-glass). This access is recorded and reviewed."
            }
            AllowedByCardLink => {
                "Opened with the family's card link: the emergency information only."
            }
            AllowedAsController => "You control this passport's sharing choices.",
            AllowedReferenceData => {
                "This is shared reference information, not part of a child's record."
            }
            AllowedAdministration => "Your role maintains this reference information.",
            AllowedAggregate => "Aggregate figures that identify no child.",
            AllowedAuditReview => "Your role reviews the access log.",
            AllowedOnboarding => "Your role may start a new child's passport.",
            AllowedRegionalSystem => {
                "A regional system the operator trusts to load and sync every passport."
            }
            DeniedAnonymous => "You need to sign in.",
            DeniedCommissioner => {
                "Commissioners see aggregate figures only, never a child's record."
            }
            DeniedScope => "The app you are using has not been given permission for this.",
            DeniedScopeOtherPatient => "The app you are using was opened for a different child.",
            DeniedRole => "Your role does not include this.",
            DeniedNoRelationship => "You are not in this child's care team or family.",
            DeniedSectionNotShared => "This section is not shared with your organisation.",
            DeniedReadOnly => "You can see this section but not change it.",
            DeniedLabel => "This item is marked sensitive and your role is not cleared to see it.",
            DeniedUntagged => {
                "This item is not in a passport section, so only the care team can see it."
            }
            DeniedNoParentalResponsibility => {
                "You do not have parental responsibility and have not been given access."
            }
            DeniedCourtOrder => "A court order restricts your access to this child's passport.",
            DeniedNotGranted => {
                "The child's social worker has not given you access to this section."
            }
            DeniedYoungPersonChoice => {
                "The young person has chosen not to share this section with you."
            }
            DeniedNotController => {
                "Only the person in control of this passport can change who it is shared with."
            }
            DeniedBreakGlassExpired => "Your emergency access has expired.",
            DeniedBreakGlassSection => "Emergency access opens the emergency information only.",
            DeniedBreakGlassAction => "Emergency access allows reading only.",
            DeniedBreakGlassNotEligible => {
                "Only clinicians and emergency-services clinical staff can use emergency access."
            }
            DeniedBreakGlassNotNeeded => {
                "You are in this child's care team, so emergency access is not needed."
            }
            DeniedBreakGlassNoReason => "Emergency access needs a reason.",
            DeniedMissingChildFacts => {
                "This item belongs to a child's record but the child could not be identified."
            }
            DeniedNotAggregate => "Aggregate figures cannot be asked for about one child.",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Allow or deny, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
}

impl Decision {
    pub const fn allow(reason: Reason) -> Decision {
        Decision {
            allow: true,
            reason,
        }
    }
    pub const fn deny(reason: Reason) -> Decision {
        Decision {
            allow: false,
            reason,
        }
    }
    /// Allowed only by break-glass: the caller must audit it as such and flag it for review.
    pub const fn is_break_glass(self) -> bool {
        self.allow && matches!(self.reason, Reason::AllowedByBreakGlass)
    }
}
