//! The template's forms: a repeating group of a published Questionnaire (an allergy, a
//! medicine, a condition) is the form that adds or changes one item of the passport. The
//! questions come from the Questionnaire, the answers are checked against it, and where an
//! answer goes in the structured resource is the question's `definition` — so a new
//! template version changes the form without code that knows each resource's layout.

use std::collections::HashMap;

use access::Section;
use serde::Serialize;
use serde_json::{Map, Value, json};

const EXT: &str = "https://passport.nhs.uk/fhir/StructureDefinition/";

/// A form of the passport: the Questionnaire group it renders and the resource type each
/// answer set becomes. A form whose answers fill no structured resource (what matters to
/// me, how I communicate…) keeps them as the item itself: its resource type is
/// `QuestionnaireResponse` ([`Form::answers_only`]).
///
/// A structured item holds every answer of its form: where the question's `definition`
/// names an element of the item's own type, there; any other answer in an
/// [`ANSWER_EXTENSION`] on the item (`linkId` and `value`), so the item alone is the
/// authoritative record an EPR reads and nothing the form asked is lost on a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    /// In addresses: `/passport/{child}/add/{key}`.
    pub key: &'static str,
    pub questionnaire: &'static str,
    /// The group (or single repeating question) of the Questionnaire.
    pub group: &'static str,
    pub section: Section,
    pub resource_type: &'static str,
    /// "an allergy": for headings ("Add an allergy").
    pub noun: &'static str,
    /// The item's title when it has no name of its own (answers-only forms).
    pub title: &'static str,
    /// Several items (allergies) or one per child (what matters to me).
    pub repeats: bool,
    /// Only these questions of the group (empty: all); the rest are kept elsewhere (the
    /// child's name, date of birth and NHS Number are the Patient's).
    pub only: &'static [&'static str],
    /// Items of this form carry `meta.tag` [`FORM_SYSTEM`]`|key` and are recognised by it:
    /// for types that hold other things too (a RelatedPerson can be a parent's sign-in
    /// link, a Flag a safeguarding alert), so an item made elsewhere is never edited
    /// through a form that does not describe it.
    pub tagged: bool,
    /// Written by the child's clinical team only (the emergency protocol: "as the clinician
    /// wrote it"); families read it and cannot add or change it.
    pub clinical: bool,
}

/// The code system of the form an item was made with (`meta.tag`).
pub const FORM_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-form";
/// An answer with no element of its own in the item: `linkId` and `value` sub-extensions.
pub const ANSWER_EXTENSION: &str = "https://passport.nhs.uk/fhir/StructureDefinition/answer";

impl Form {
    /// The answers are the item (no structured resource holds them).
    pub fn answers_only(&self) -> bool {
        self.resource_type == "QuestionnaireResponse"
    }
}

const fn item_form(
    key: &'static str,
    group: &'static str,
    section: Section,
    resource_type: &'static str,
    noun: &'static str,
) -> Form {
    Form {
        key,
        questionnaire: "core",
        group,
        section,
        resource_type,
        noun,
        title: "",
        repeats: true,
        only: &[],
        tagged: false,
        clinical: false,
    }
}

/// A form whose items are recognised by their form tag ([`Form::tagged`]).
const fn tagged_form(
    key: &'static str,
    group: &'static str,
    section: Section,
    resource_type: &'static str,
    noun: &'static str,
    title: &'static str,
    repeats: bool,
) -> Form {
    Form {
        key,
        questionnaire: "core",
        group,
        section,
        resource_type,
        noun,
        title,
        repeats,
        only: &[],
        tagged: true,
        clinical: false,
    }
}

const fn answers_form(
    key: &'static str,
    group: &'static str,
    section: Section,
    noun: &'static str,
    title: &'static str,
    repeats: bool,
) -> Form {
    Form {
        key,
        questionnaire: "core",
        group,
        section,
        resource_type: "QuestionnaireResponse",
        noun,
        title,
        repeats,
        only: &[],
        tagged: false,
        clinical: false,
    }
}

/// The forms of the regional core template, in passport order.
pub const FORMS: &[Form] = &[
    Form {
        only: &["preferred-name", "pronouns", "gender", "all-about-me"],
        ..answers_form(
            "about-me",
            "about-me",
            Section::AboutMe,
            "what I like to be called and who I am",
            "About me, in my words",
            false,
        )
    },
    Form {
        // Reasonable adjustments are Flags of their own (the next form).
        only: &[
            "main-language",
            "interpreter-needed",
            "interpreter-type",
            "communication-methods",
            "communication-description",
            "how-i-show-pain",
            "how-i-show-distress",
            "how-i-show-happy",
            "how-i-show-unwell",
            "sensory-aids",
            "information-format",
        ],
        ..answers_form(
            "communication",
            "communication",
            Section::Communication,
            "how I communicate",
            "How I communicate",
            false,
        )
    },
    // One Flag per adjustment, as the NHS Reasonable Adjustment Flag records them.
    tagged_form(
        "adjustment",
        "reasonable-adjustments",
        Section::Communication,
        "Flag",
        "a reasonable adjustment",
        "Reasonable adjustment",
        true,
    ),
    answers_form(
        "what-matters",
        "what-matters",
        Section::WhatMatters,
        "what matters to me",
        "What matters to me",
        false,
    ),
    item_form(
        "condition",
        "conditions",
        Section::Conditions,
        "Condition",
        "a health condition",
    ),
    item_form(
        "allergy",
        "allergies",
        Section::Allergies,
        "AllergyIntolerance",
        "an allergy",
    ),
    item_form(
        "medicine",
        "medicines",
        Section::Medicines,
        "MedicationStatement",
        "a medicine",
    ),
    // One current weight, changed at each measurement (its versions are the history).
    tagged_form(
        "weight",
        "weight",
        Section::AboutMe,
        "Observation",
        "the weight",
        "Weight",
        false,
    ),
    answers_form(
        "equipment",
        "equipment",
        Section::Equipment,
        "equipment",
        "Equipment",
        true,
    ),
    // Key contacts stay answers: a RelatedPerson is a family member's sign-in link and a
    // fact the access decision reads, which families never write (docs/SECURITY.md §5).
    answers_form(
        "key-contact",
        "key-contacts",
        Section::Contacts,
        "a key contact",
        "Key contact",
        true,
    ),
    // Who to call in an emergency belongs with the emergency protocol: whoever may see the
    // emergency section (a school first aider) sees who to call (docs/SECURITY.md §4).
    answers_form(
        "escalation-contact",
        "escalation-contacts",
        Section::Emergency,
        "an escalation contact",
        "Escalation contact",
        true,
    ),
    Form {
        clinical: true,
        ..tagged_form(
            "emergency-protocol",
            "emergency-protocol",
            Section::Emergency,
            "CarePlan",
            "the emergency protocol",
            "Emergency protocol",
            false,
        )
    },
    answers_form(
        "education",
        "education",
        Section::Education,
        "education details",
        "Education",
        false,
    ),
    answers_form(
        "social-care",
        "social-care",
        Section::SocialCare,
        "social care details",
        "Social care",
        false,
    ),
];

pub fn form(key: &str) -> Option<&'static Form> {
    FORMS.iter().find(|f| f.key == key)
}

/// The form that edits this resource: by type, or for answers kept as the item, by the
/// group they answer.
pub fn form_of(v: &Value) -> Option<&'static Form> {
    let ty = v["resourceType"].as_str()?;
    if ty == "QuestionnaireResponse" {
        let group = v["item"][0]["linkId"].as_str()?;
        return FORMS.iter().find(|f| f.answers_only() && f.group == group);
    }
    let tag = form_tag(v);
    FORMS
        .iter()
        .find(|f| f.resource_type == ty && (!f.tagged || tag == Some(f.key)))
}

/// The form an item says it was made with ([`Form::tagged`]).
fn form_tag(v: &Value) -> Option<&str> {
    v["meta"]["tag"]
        .as_array()?
        .iter()
        .find(|t| t["system"] == FORM_SYSTEM)
        .and_then(|t| t["code"].as_str())
}

impl Form {
    /// The tag that marks an item as this form's.
    pub fn tag(&self) -> Value {
        json!({ "system": FORM_SYSTEM, "code": self.key, "display": self.title })
    }
}

/// One question of a form, as a page renders it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Question {
    pub link_id: String,
    pub text: String,
    /// `string`, `text`, `date`, `boolean`, `choice`, `open-choice`, `decimal`, `phone`.
    pub kind: String,
    pub required: bool,
    pub options: Vec<Choice>,
    /// The subset has no code for this concept: it is entered as text (the page says so).
    pub no_code: Option<String>,
    /// Where the answer goes (`AllergyIntolerance.code`), if anywhere but the answers.
    pub definition: Option<String>,
    pub unit: Option<String>,
    /// Entered by the child's clinician only, never by the family and never defaulted (a
    /// dose, when to give it): the template's `clinician-entered` extension.
    pub clinician_only: bool,
}

/// An answer option: `value` is what the form posts (`system|code` for a coding).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Coding {
        system: String,
        code: String,
        display: String,
    },
    Text(String),
    Date(String),
    Bool(bool),
    Decimal(String),
}

impl Answer {
    /// The answer in words, for pages and for "what changed".
    pub fn words(&self) -> String {
        match self {
            Answer::Coding { display, .. } => display.clone(),
            Answer::Text(t) | Answer::Decimal(t) => t.clone(),
            Answer::Date(d) => crate::dates::long_date(d).unwrap_or_else(|| d.clone()),
            Answer::Bool(b) => if *b { "Yes" } else { "No" }.to_owned(),
        }
    }

    /// An answer from its `value[x]` (a QuestionnaireResponse answer, or the value of an
    /// [`ANSWER_EXTENSION`]).
    fn from_fhir(a: &Value) -> Option<Answer> {
        Some(if let Some(c) = a.get("valueCoding") {
            Answer::Coding {
                system: c["system"].as_str().unwrap_or_default().to_owned(),
                code: c["code"].as_str().unwrap_or_default().to_owned(),
                display: c["display"].as_str().unwrap_or_default().to_owned(),
            }
        } else if let Some(d) = a["valueDate"].as_str() {
            Answer::Date(d.to_owned())
        } else if let Some(b) = a["valueBoolean"].as_bool() {
            Answer::Bool(b)
        } else if let Some(x) = a.get("valueDecimal").filter(|x| x.is_number()) {
            Answer::Decimal(x.to_string())
        } else if let Some(t) = a["valueString"].as_str() {
            Answer::Text(t.to_owned())
        } else {
            return None;
        })
    }

    /// The QuestionnaireResponse `answer` element.
    fn fhir(&self) -> Value {
        match self {
            Answer::Coding {
                system,
                code,
                display,
            } => json!({ "valueCoding": { "system": system, "code": code, "display": display } }),
            Answer::Text(t) => json!({ "valueString": t }),
            Answer::Date(d) => json!({ "valueDate": d }),
            Answer::Bool(b) => json!({ "valueBoolean": b }),
            Answer::Decimal(x) => {
                json!({ "valueDecimal": serde_json::Number::from_string_unchecked(x.clone()) })
            }
        }
    }
}

/// A field error, for the NHS.UK error summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn ext<'v>(item: &'v Value, name: &str) -> Option<&'v Value> {
    item["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"].as_str() == Some(&format!("{EXT}{name}")))
}

fn find_item<'v>(items: &'v Value, link_id: &str) -> Option<&'v Value> {
    for item in items.as_array()? {
        if item["linkId"] == link_id {
            return Some(item);
        }
        if let Some(found) = find_item(&item["item"], link_id) {
            return Some(found);
        }
    }
    None
}

/// The questions of `form` in the Questionnaire `q`.
pub fn questions(form: &Form, q: &Value) -> Vec<Question> {
    let Some(group) = find_item(&q["item"], form.group) else {
        return Vec::new();
    };
    let mut members = Vec::new();
    if group["type"] == "group" {
        descendants(&group["item"], &mut members);
    } else {
        members.push(group);
    }
    let mut qs: Vec<Question> = members
        .into_iter()
        .filter_map(question)
        .filter(|q| form.only.is_empty() || form.only.contains(&q.link_id.as_str()))
        .collect();
    // The first question of an item form names the item (the substance, the medicine, the
    // condition): without it there is nothing a reader could act on, whatever the group's
    // flags say. Answers-only forms keep the template's flags.
    if !form.answers_only()
        && let Some(first) = qs.first_mut()
    {
        first.required = true;
    }
    qs
}

/// The questions of `form` in its shipped template, parsed once per process: what pages
/// use to read an item's answers back (a template is tens of kilobytes of JSON, and a
/// passport page reads back every item).
pub fn shipped_questions(form: &Form) -> &'static [Question] {
    static CACHE: std::sync::OnceLock<Vec<(&'static str, Vec<Question>)>> =
        std::sync::OnceLock::new();
    let all = CACHE.get_or_init(|| {
        FORMS
            .iter()
            .map(|f| {
                let qs = templates::questionnaire(f.questionnaire)
                    .map(|q| questions(f, &q))
                    .unwrap_or_default();
                (f.key, qs)
            })
            .collect()
    });
    all.iter()
        .find(|(k, _)| *k == form.key)
        .map_or(&[], |(_, qs)| qs.as_slice())
}

/// Every item under `items`, depth first (a form shows nested groups' questions in order).
fn descendants<'v>(items: &'v Value, out: &mut Vec<&'v Value>) {
    for item in items.as_array().into_iter().flatten() {
        out.push(item);
        descendants(&item["item"], out);
    }
}

/// The answers a QuestionnaireResponse of one form holds (answers-only items).
pub fn answers_in(response: &Value, questions: &[Question]) -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    for item in response["item"][0]["item"].as_array().into_iter().flatten() {
        let Some(id) = item["linkId"].as_str() else {
            continue;
        };
        if !questions.iter().any(|q| q.link_id == id) {
            continue;
        }
        if let Some(answer) = Answer::from_fhir(&item["answer"][0]) {
            out.push((id.to_owned(), answer));
        }
    }
    out
}

/// The answers an item holds for its form: read back through the definitions, or, for an
/// answers-only item, its own answers.
pub fn answers_of(item: &Value, form: &Form, questions: &[Question]) -> Vec<(String, Answer)> {
    if form.answers_only() {
        answers_in(item, questions)
    } else {
        read_back(item, questions)
    }
}

fn question(item: &Value) -> Option<Question> {
    let ty = item["type"].as_str()?;
    if matches!(ty, "group" | "display" | "attachment" | "reference") {
        return None;
    }
    let phone = ext(item, "answer-format").and_then(|e| e["valueCode"].as_str()) == Some("phone");
    let options = item["answerOption"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            if let Some(c) = o.get("valueCoding") {
                Some(Choice {
                    value: format!("{}|{}", c["system"].as_str()?, c["code"].as_str()?),
                    label: c["display"].as_str()?.to_owned(),
                })
            } else {
                let s = o["valueString"].as_str()?;
                Some(Choice {
                    value: s.to_owned(),
                    label: s.to_owned(),
                })
            }
        })
        .collect();
    let definition = item["definition"]
        .as_str()
        .and_then(|d| d.split_once('#'))
        .map(|(_, path)| path.to_owned());
    Some(Question {
        link_id: item["linkId"].as_str()?.to_owned(),
        text: item["text"].as_str().unwrap_or_default().to_owned(),
        kind: if phone { "phone".into() } else { ty.to_owned() },
        required: item["required"].as_bool().unwrap_or(false),
        options,
        no_code: ext(item, "no-code-in-subset")
            .and_then(|e| e["valueString"].as_str())
            .map(str::to_owned),
        definition,
        unit: ext_unit(item),
        clinician_only: ext(item, "clinician-entered").is_some(),
    })
}

fn ext_unit(item: &Value) -> Option<String> {
    item["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/questionnaire-unit")
        .and_then(|e| e["valueCoding"]["code"].as_str())
        .map(str::to_owned)
}

/// Checks the posted fields against the questions: the answers, or the field errors (in
/// question order). Nothing is saved unless this passes.
pub fn answers(
    questions: &[Question],
    fields: &HashMap<String, String>,
    today: &str,
) -> Result<Vec<(String, Answer)>, Vec<FieldError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let field = |k: &str| fields.get(k).map(|v| v.trim()).unwrap_or_default();
    for q in questions {
        let id = q.link_id.as_str();
        let label = q.text.to_lowercase();
        let err = |m: String| FieldError {
            field: id.to_owned(),
            message: m,
        };
        let answer = match q.kind.as_str() {
            "date" => {
                let (d, m, y) = (
                    field(&format!("{id}-day")),
                    field(&format!("{id}-month")),
                    field(&format!("{id}-year")),
                );
                if d.is_empty() && m.is_empty() && y.is_empty() {
                    None
                } else {
                    match crate::dates::parse_parts(d, m, y) {
                        Some(date) if date.as_str() <= today => Some(Answer::Date(date)),
                        Some(_) => {
                            errors.push(err(format!("The {label} must be today or in the past")));
                            continue;
                        }
                        None => {
                            errors.push(err(format!("The {label} must be a real date")));
                            continue;
                        }
                    }
                }
            }
            "boolean" => match field(id) {
                "yes" => Some(Answer::Bool(true)),
                "no" => Some(Answer::Bool(false)),
                "" => None,
                _ => {
                    errors.push(err(format!("Select yes or no for {label}")));
                    continue;
                }
            },
            "choice" | "open-choice" => {
                let picked = field(id);
                let other = field(&format!("{id}-other"));
                if let Some(c) = q.options.iter().find(|c| c.value == picked) {
                    Some(match c.value.split_once('|') {
                        Some((system, code)) if c.value.contains("://") => Answer::Coding {
                            system: system.to_owned(),
                            code: code.to_owned(),
                            display: c.label.clone(),
                        },
                        _ => Answer::Text(c.label.clone()),
                    })
                } else if !picked.is_empty() && picked != "other" {
                    errors.push(err(format!("Select {label} from the list")));
                    continue;
                } else if q.kind == "open-choice" && !other.is_empty() {
                    Some(Answer::Text(bounded(other)))
                } else {
                    None
                }
            }
            "phone" => match field(id) {
                "" => None,
                p if is_phone(p) => Some(Answer::Text(p.to_owned())),
                _ => {
                    errors.push(err(format!(
                        "Enter {label} as a phone number, like 01632 960 001 or 07700 900 982"
                    )));
                    continue;
                }
            },
            "decimal" | "integer" | "quantity" => match field(id) {
                "" => None,
                x if x.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0) && x.len() < 12 => {
                    Some(Answer::Decimal(x.to_owned()))
                }
                _ => {
                    errors.push(err(format!("Enter {label} as a number")));
                    continue;
                }
            },
            _ => match field(id) {
                "" => None,
                t => Some(Answer::Text(bounded(t))),
            },
        };
        match answer {
            Some(a) => out.push((id.to_owned(), a)),
            None if q.required => errors.push(err(format!("Enter {label}"))),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Free text is kept to a length a page can show (and a hostile form cannot bloat).
fn bounded(t: &str) -> String {
    t.chars().take(2000).collect()
}

/// A UK-style phone number: digits, spaces and an optional leading +, 10 to 13 digits.
fn is_phone(p: &str) -> bool {
    let digits = p.chars().filter(char::is_ascii_digit).count();
    let ok_chars = p
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == ' ' || (c == '+' && i == 0));
    ok_chars && (10..=13).contains(&digits)
}

/// Where in an item of `resource_type` the answer to `q` goes: its definition's steps when
/// the definition names an element of that type; `None` when it goes in an
/// [`ANSWER_EXTENSION`] (no definition, or one for another type).
pub(super) fn own_steps(q: &Question, resource_type: &str) -> Option<Vec<fhir::defs::Step>> {
    let path = q.definition.as_deref()?;
    let (root, _) = path.split_once('.')?;
    if root != resource_type {
        return None;
    }
    fhir::defs::path_shape(path)
}

/// Writes the answers into `resource`: where their questions' definitions say, and every
/// other answer as an [`ANSWER_EXTENSION`] (replacing the form's earlier ones).
pub fn fill(resource: &mut Value, questions: &[Question], answers: &[(String, Answer)]) {
    let ty = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The form's earlier answers kept as extensions go: what it answers is replaced whole.
    if let Some(exts) = resource["extension"].as_array_mut() {
        exts.retain(|e| {
            e["url"] != ANSWER_EXTENSION
                || !questions
                    .iter()
                    .any(|q| Some(q.link_id.as_str()) == extension_link_id(e))
        });
    }
    for (id, answer) in answers {
        let Some(q) = questions.iter().find(|q| &q.link_id == id) else {
            continue;
        };
        let Some(steps) = own_steps(q, &ty) else {
            let mut value = answer.fhir();
            value["url"] = json!("value");
            let ext = json!({ "url": ANSWER_EXTENSION, "extension": [
                { "url": "linkId", "valueString": id }, value,
            ] });
            match resource["extension"].as_array_mut() {
                Some(list) => list.push(ext),
                None => resource["extension"] = json!([ext]),
            }
            continue;
        };
        let mut at = &mut *resource;
        let last = steps.len() - 1;
        for (i, step) in steps.iter().enumerate() {
            if i == last {
                let v = leaf(&step.type_name, answer, q.unit.as_deref());
                at[step.name.as_str()] = if step.array { json!([v]) } else { v };
                break;
            }
            if step.array {
                if !at[step.name.as_str()].is_array() {
                    at[step.name.as_str()] = json!([{}]);
                }
                at = &mut at[step.name.as_str()][0];
            } else {
                if !at[step.name.as_str()].is_object() {
                    at[step.name.as_str()] = Value::Object(Map::new());
                }
                at = &mut at[step.name.as_str()];
            }
        }
    }
}

/// The `linkId` of an [`ANSWER_EXTENSION`].
fn extension_link_id(e: &Value) -> Option<&str> {
    e["extension"]
        .as_array()?
        .iter()
        .find(|x| x["url"] == "linkId")
        .and_then(|x| x["valueString"].as_str())
}

/// The answers an item keeps in [`ANSWER_EXTENSION`]s, by linkId.
fn extension_answers(resource: &Value) -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    for e in resource["extension"].as_array().into_iter().flatten() {
        if e["url"] != ANSWER_EXTENSION {
            continue;
        }
        let (Some(id), Some(value)) = (
            extension_link_id(e),
            e["extension"]
                .as_array()
                .and_then(|l| l.iter().find(|x| x["url"] == "value")),
        ) else {
            continue;
        };
        if let Some(a) = Answer::from_fhir(value) {
            out.push((id.to_owned(), a));
        }
    }
    out
}

/// An answer as the element's datatype (`unit`: the question's, for a quantity).
fn leaf(type_name: &str, a: &Answer, unit: Option<&str>) -> Value {
    match (type_name, a) {
        ("Quantity", Answer::Decimal(x)) => {
            let mut q = json!({ "value": serde_json::Number::from_string_unchecked(x.clone()) });
            if let Some(u) = unit {
                q["unit"] = json!(u);
                q["system"] = json!("http://unitsofmeasure.org");
                q["code"] = json!(u);
            }
            q
        }
        (
            "CodeableConcept",
            Answer::Coding {
                system,
                code,
                display,
            },
        ) => {
            json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display })
        }
        ("CodeableConcept", a) => json!({ "text": a.words() }),
        ("code", Answer::Coding { code, .. }) => json!(code),
        ("code", a) => json!(a.words().to_lowercase()),
        ("HumanName", a) => json!({ "text": a.words() }),
        ("ContactPoint", a) => json!({ "system": "phone", "value": a.words() }),
        ("Timing", a) => json!({ "code": { "text": a.words() } }),
        ("date" | "dateTime", Answer::Date(d)) => json!(d),
        ("boolean", Answer::Bool(b)) => json!(b),
        (_, a) => json!(a.words()),
    }
}

/// The answers a stored resource holds for the form's questions (to fill in the form for a
/// change, and to say what changed), read back through the same definitions.
pub fn read_back(resource: &Value, questions: &[Question]) -> Vec<(String, Answer)> {
    let ty = resource["resourceType"].as_str().unwrap_or_default();
    let kept = extension_answers(resource);
    let mut out = Vec::new();
    for q in questions {
        let Some(steps) = own_steps(q, ty) else {
            if let Some((_, a)) = kept.iter().find(|(id, _)| *id == q.link_id) {
                out.push((q.link_id.clone(), a.clone()));
            }
            continue;
        };
        let mut at = resource;
        for step in &steps {
            at = &at[step.name.as_str()];
            if step.array {
                at = &at[0];
            }
        }
        let last = &steps[steps.len() - 1];
        let answer = match last.type_name.as_str() {
            "CodeableConcept" => match (
                at["coding"][0]["system"].as_str(),
                at["coding"][0]["code"].as_str(),
            ) {
                (Some(system), Some(code)) => Some(Answer::Coding {
                    system: system.to_owned(),
                    code: code.to_owned(),
                    display: at["coding"][0]["display"]
                        .as_str()
                        .or(at["text"].as_str())
                        .unwrap_or(code)
                        .to_owned(),
                }),
                _ => at["text"].as_str().map(|t| Answer::Text(t.to_owned())),
            },
            "code" => at.as_str().map(|c| {
                // A code chosen from the question's options reads as its label.
                let label = q
                    .options
                    .iter()
                    .find(|o| o.value.eq_ignore_ascii_case(c))
                    .map_or(c, |o| o.label.as_str());
                Answer::Text(label.to_owned())
            }),
            "HumanName" => at["text"].as_str().map(|t| Answer::Text(t.to_owned())),
            "Quantity" => at["value"]
                .as_number()
                .map(|n| Answer::Decimal(n.to_string())),
            "ContactPoint" => at["value"].as_str().map(|t| Answer::Text(t.to_owned())),
            "Timing" => at["code"]["text"]
                .as_str()
                .map(|t| Answer::Text(t.to_owned())),
            "date" | "dateTime" => at
                .as_str()
                .map(|d| Answer::Date(d.get(..10).unwrap_or(d).to_owned())),
            "boolean" => at.as_bool().map(Answer::Bool),
            _ => at.as_str().map(|t| Answer::Text(t.to_owned())),
        };
        if let Some(a) = answer {
            out.push((q.link_id.clone(), a));
        }
    }
    out
}

/// The form fields that show `answers` (for a change form, or a form sent back with errors).
pub fn fields_of(questions: &[Question], answers: &[(String, Answer)]) -> HashMap<String, String> {
    let mut f = HashMap::new();
    for (id, a) in answers {
        let Some(q) = questions.iter().find(|q| &q.link_id == id) else {
            continue;
        };
        match a {
            Answer::Date(d) => {
                let mut parts = d.split('-');
                for part in ["year", "month", "day"] {
                    if let Some(p) = parts.next() {
                        f.insert(format!("{id}-{part}"), p.trim_start_matches('0').to_owned());
                    }
                }
            }
            Answer::Bool(b) => {
                f.insert(id.clone(), if *b { "yes" } else { "no" }.into());
            }
            Answer::Coding { system, code, .. } => {
                f.insert(id.clone(), format!("{system}|{code}"));
            }
            Answer::Text(t) | Answer::Decimal(t) => {
                // A text answer to a choice question is its option, or "other" with the text.
                if let Some(o) = q.options.iter().find(|o| o.label.eq_ignore_ascii_case(t)) {
                    f.insert(id.clone(), o.value.clone());
                } else if q.kind == "open-choice" {
                    f.insert(id.clone(), "other".into());
                    f.insert(format!("{id}-other"), t.clone());
                } else {
                    f.insert(id.clone(), t.clone());
                }
            }
        }
    }
    f
}

/// The QuestionnaireResponse items of one form's answers (one group, the form's).
pub fn response_items(form: &Form, answers: &[(String, Answer)]) -> Value {
    let items: Vec<Value> = answers
        .iter()
        .map(|(id, a)| json!({ "linkId": id, "answer": [a.fhir()] }))
        .collect();
    json!([{ "linkId": form.group, "item": items }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> Value {
        templates::questionnaire("core").unwrap()
    }

    #[test]
    fn the_allergy_form_comes_from_the_core_template() {
        let qs = questions(form("allergy").unwrap(), &core());
        let ids: Vec<&str> = qs.iter().map(|q| q.link_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "allergy-substance",
                "allergy-reaction",
                "allergy-severity",
                "allergy-date"
            ]
        );
        assert!(qs[0].options.iter().any(|o| o.label == "Peanut"));
        for f in FORMS {
            assert!(
                !questions(f, &templates::questionnaire(f.questionnaire).unwrap()).is_empty(),
                "{}",
                f.key
            );
        }
    }

    #[test]
    fn answers_are_checked_and_land_where_the_definitions_say() {
        let qs = questions(form("allergy").unwrap(), &core());
        let peanut = qs[0]
            .options
            .iter()
            .find(|o| o.label == "Peanut")
            .unwrap()
            .value
            .clone();
        let fields: HashMap<String, String> = [
            ("allergy-substance", peanut.as_str()),
            ("allergy-reaction", "other"),
            ("allergy-reaction-other", "Swollen lips"),
            ("allergy-severity", "severe"),
            ("allergy-date-day", "3"),
            ("allergy-date-month", "2"),
            ("allergy-date-year", "2024"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let a = answers(&qs, &fields, "2026-12-02").unwrap();
        let mut r = json!({ "resourceType": "AllergyIntolerance" });
        fill(&mut r, &qs, &a);
        assert_eq!(r["code"]["coding"][0]["code"], "762952008");
        assert_eq!(r["reaction"][0]["manifestation"][0]["text"], "Swollen lips");
        assert_eq!(r["reaction"][0]["severity"], "severe");
        assert_eq!(r["onsetDateTime"], "2024-02-03");
        // Read back, the same answers; as fields, the same form.
        assert_eq!(read_back(&r, &qs), a);
        let again = answers(&qs, &fields_of(&qs, &a), "2026-12-02").unwrap();
        assert_eq!(again, a);
        // Impossible or future dates, unknown options, missing required answers: errors.
        let mut bad = fields.clone();
        bad.insert("allergy-date-day".into(), "31".into());
        bad.insert(
            "allergy-substance".into(),
            "http://snomed.info/sct|1".into(),
        );
        let e = answers(&qs, &bad, "2026-12-02").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        let mut future = fields.clone();
        future.insert("allergy-date-year".into(), "2027".into());
        assert!(answers(&qs, &future, "2026-12-02").is_err());
        // An item needs its name.
        let med = questions(form("medicine").unwrap(), &core());
        let e = answers(&med, &HashMap::new(), "2026-12-02").unwrap_err();
        assert_eq!(e[0].field, "medicine-product");
    }

    #[test]
    fn phone_numbers() {
        assert!(is_phone("01632 960 001"));
        assert!(is_phone("+44 7700 900982"));
        assert!(!is_phone("999"));
        assert!(!is_phone("call me"));
        assert!(!is_phone("0163+2960001"));
    }
}
