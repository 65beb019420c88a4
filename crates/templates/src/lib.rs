//! Passport templates, shipped as FHIR R4 `Questionnaire` resources, and the curated
//! terminology subset they may use.
//!
//! Seven Questionnaires are compiled into the binary: the regional core passport
//! (`core`) and six condition plans (`epilepsy`, `asthma`, `type-1-diabetes`,
//! `anaphylaxis`, `adrenal-insufficiency`, `complex-needs`). They are transcriptions of
//! `testdata/clinical/templates.md`, a draft reference, not a clinical protocol; the
//! crate's tests check every field row and escalation rule of that file against them.
//!
//! How a Questionnaire carries what a form renderer alone would lose (all extension URLs
//! start `https://passport.nhs.uk/fhir/StructureDefinition/`):
//! - `template-field` (valueString): the templates.md Field cell an item transcribes;
//! - `passport-section` (valueCode): the passport section whose readers need the answer,
//!   so sharing rules can filter answers exactly as they filter resources;
//! - `required-when` (valueString): the condition of a conditional requirement (such items
//!   have `required: false`, because FHIR cannot express the condition);
//! - `clinician-entered` (valueBoolean): the child's own clinician enters the value; no
//!   `initial` value is ever given for doses or thresholds;
//! - `no-code-in-subset` (valueString): a coded concept the shipped subset has no code
//!   for, so it is entered as text;
//! - `answer-format` (valueCode `phone`): a string answer that is a phone number;
//! - `escalation-rule` (complex: `trigger`, `action`, `timing`, `source`): one escalation
//!   rule, on a `display` item whose linkId is the rule id (`E1`, `A3`…), kept as the
//!   plan's own words.
//!
//! Every `valueCoding` in an `answerOption` comes from [`terminology`]; codes are never
//! typed from memory.

pub mod terminology;

use serde_json::Value;

/// Base of every template's canonical URL; the id follows.
pub const QUESTIONNAIRE_BASE: &str = "https://passport.nhs.uk/fhir/Questionnaire/";

/// The ids of the shipped templates, core first.
pub const IDS: [&str; 7] = [
    "core",
    "epilepsy",
    "asthma",
    "type-1-diabetes",
    "anaphylaxis",
    "adrenal-insufficiency",
    "complex-needs",
];

/// The JSON text of each template, keyed by id, embedded at compile time so a binary
/// never depends on files next to it.
const SOURCES: [(&str, &str); 7] = [
    ("core", include_str!("../questionnaires/core.json")),
    ("epilepsy", include_str!("../questionnaires/epilepsy.json")),
    ("asthma", include_str!("../questionnaires/asthma.json")),
    (
        "type-1-diabetes",
        include_str!("../questionnaires/type-1-diabetes.json"),
    ),
    (
        "anaphylaxis",
        include_str!("../questionnaires/anaphylaxis.json"),
    ),
    (
        "adrenal-insufficiency",
        include_str!("../questionnaires/adrenal-insufficiency.json"),
    ),
    (
        "complex-needs",
        include_str!("../questionnaires/complex-needs.json"),
    ),
];

fn parse(id: &str, text: &str) -> Value {
    // The files are part of the crate and checked by its tests: a parse failure is a
    // build defect, not a runtime condition.
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("questionnaires/{id}.json is not valid JSON: {e}"))
}

/// Every template as a FHIR R4 Questionnaire, core first. Each call returns fresh values,
/// so callers may modify them (e.g. to add `meta`) freely.
pub fn questionnaires() -> Vec<Value> {
    SOURCES.iter().map(|(id, text)| parse(id, text)).collect()
}

/// The template with this id (`core`, `epilepsy`…), or `None`.
pub fn questionnaire(id: &str) -> Option<Value> {
    SOURCES
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(id, text)| parse(id, text))
}
