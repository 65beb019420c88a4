//! The emergency content of a passport, defined once: what break-glass opens (pages and
//! API), what a card link shows and what the emergency view renders are all this list.
//!
//! An emergency department, an ambulance crew or a school first aider needs, in 30
//! seconds: allergies (with reaction and severity); the emergency protocol as the
//! clinician wrote it, with its escalation contacts; current medicines with their doses;
//! how the child communicates and what calms them (the "what matters to me" answers hold
//! what calms, routines, likes and dislikes); and who to call. Never an item with a
//! security label (sexual health, mental health, safeguarding…), and never a medicine that
//! has stopped.

use crate::resource::ResourceFacts;
use crate::section::{Section, SectionSet};

/// The sections that are emergency content in full.
pub const EMERGENCY_SECTIONS: SectionSet = SectionSet::of(&[
    Section::Allergies,
    Section::Emergency,
    Section::Communication,
    Section::WhatMatters,
    Section::Contacts,
]);

/// The sections an emergency reader sees something of: [`EMERGENCY_SECTIONS`], and
/// medicines (current ones only, [`is_emergency_content`]).
pub const EMERGENCY_READABLE: SectionSet = SectionSet::of(&[
    Section::Allergies,
    Section::Emergency,
    Section::Communication,
    Section::WhatMatters,
    Section::Contacts,
    Section::Medicines,
]);

/// Whether a resource is emergency content: in an emergency section, or a current
/// medicine; and carrying no security label.
pub fn is_emergency_content(r: &ResourceFacts) -> bool {
    in_emergency_sections(r) && r.labels.is_empty()
}

/// In an emergency section, or a current medicine (whatever its labels).
pub(crate) fn in_emergency_sections(r: &ResourceFacts) -> bool {
    let current_medicine = r.sections.contains(Section::Medicines) && r.active_medication;
    r.sections.intersects(EMERGENCY_SECTIONS) || current_medicine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::{LabelSet, SecurityLabel};

    fn facts(ty: &str, sections: &[Section], labels: LabelSet) -> ResourceFacts {
        ResourceFacts::new(ty, SectionSet::of(sections), labels)
    }

    #[test]
    fn emergency_sections_current_medicines_and_nothing_labelled() {
        let plain = LabelSet::EMPTY;
        assert!(is_emergency_content(&facts(
            "CarePlan",
            &[Section::Emergency],
            plain
        )));
        assert!(is_emergency_content(&facts(
            "QuestionnaireResponse",
            &[Section::WhatMatters],
            plain
        )));
        assert!(!is_emergency_content(&facts(
            "Condition",
            &[Section::Conditions],
            plain
        )));
        assert!(!is_emergency_content(&facts(
            "AllergyIntolerance",
            &[Section::Allergies],
            LabelSet::of(&[SecurityLabel::MentalHealth])
        )));
        let mut medicine = facts("MedicationStatement", &[Section::Medicines], plain);
        assert!(!is_emergency_content(&medicine), "a stopped medicine");
        medicine.active_medication = true;
        assert!(is_emergency_content(&medicine), "a current medicine");
        assert!(EMERGENCY_READABLE.contains(Section::Medicines));
        assert_eq!(
            EMERGENCY_READABLE.minus(EMERGENCY_SECTIONS),
            SectionSet::of(&[Section::Medicines])
        );
    }
}
