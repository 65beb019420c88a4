//! What is being done ([`Action`]) to what ([`ResourceFacts`]).

use serde_json::Value;

use crate::label::{LabelSet, SecurityLabel};
use crate::section::{Section, SectionSet};

/// An interaction with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `read` / `vread`, or showing it on a page.
    Read,
    /// One search result (decide per result; `_include`d resources too).
    Search,
    /// `_history` of the resource.
    History,
    Create,
    /// `update` or `patch`. Call it for the stored version *and* the new body: moving an
    /// item into a section you cannot write must fail either way.
    Update,
    Delete,
    /// Bulk export, print, document Bundle.
    Export,
    /// Aggregate figures (counts, rates) that identify no child. Pass the facts of a
    /// `MeasureReport` and no child.
    Aggregate,
}

impl Action {
    pub const fn code(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::History => "history",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Aggregate => "aggregate",
        }
    }
    /// Changes data.
    pub const fn is_write(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Delete)
    }
}

/// The few facts about a resource the decision reads, extracted once from its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFacts {
    pub resource_type: String,
    /// From `meta.tag` (system [`crate::SECTION_SYSTEM`]).
    pub sections: SectionSet,
    /// From `meta.security`.
    pub labels: LabelSet,
    /// For a MedicationStatement: `status == "active"` (break-glass shows current
    /// medicines only). False for every other type.
    pub active_medication: bool,
}

impl ResourceFacts {
    /// Reads type, sections, labels and medication status from a resource's JSON.
    pub fn from_json(resource: &Value) -> ResourceFacts {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let active_medication = resource_type == "MedicationStatement"
            && resource.get("status").and_then(Value::as_str) == Some("active");
        ResourceFacts {
            sections: Section::from_resource_meta(resource),
            labels: SecurityLabel::from_resource_meta(resource),
            resource_type,
            active_medication,
        }
    }

    /// Facts for a resource built in code (tests, fixtures).
    pub fn new(resource_type: &str, sections: SectionSet, labels: LabelSet) -> ResourceFacts {
        ResourceFacts {
            resource_type: resource_type.to_owned(),
            sections,
            labels,
            active_medication: false,
        }
    }

    pub fn with_active_medication(mut self, active: bool) -> ResourceFacts {
        self.active_medication = active;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SECTION_SYSTEM;
    use serde_json::json;

    #[test]
    fn extracts_facts() {
        let r = json!({"resourceType": "MedicationStatement", "status": "active", "meta": {
            "tag": [{"system": SECTION_SYSTEM, "code": "medicines"}],
            "security": [SecurityLabel::MentalHealth.coding()]}});
        let f = ResourceFacts::from_json(&r);
        assert_eq!(f.resource_type, "MedicationStatement");
        assert_eq!(f.sections, SectionSet::of(&[Section::Medicines]));
        assert_eq!(f.labels, LabelSet::of(&[SecurityLabel::MentalHealth]));
        assert!(f.active_medication);
        let stopped = json!({"resourceType": "MedicationStatement", "status": "stopped"});
        assert!(!ResourceFacts::from_json(&stopped).active_medication);
    }
}
