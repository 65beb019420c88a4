//! The shipped Questionnaires against their reference text (`testdata/clinical/templates.md`),
//! the terminology subset and the FHIR R4 definitions.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use templates::terminology;

const SD: &str = "https://passport.nhs.uk/fhir/StructureDefinition/";
const UNIT_EXT: &str = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit";
const UCUM: &str = "http://unitsofmeasure.org";
const UNITS: [&str; 12] = [
    "kg", "min", "mg", "mL", "mmol/L", "g", "ug", "m2", "cm", "L/min", "h", "d",
];
const SECTIONS: [&str; 11] = [
    "about-me",
    "communication",
    "what-matters",
    "conditions",
    "allergies",
    "medicines",
    "equipment",
    "contacts",
    "emergency",
    "education",
    "social-care",
];

/// templates.md section number → Questionnaire id, and a word its heading must contain.
const TEMPLATES: [(u32, &str, &str); 7] = [
    (1, "core", "Core passport"),
    (2, "epilepsy", "Epilepsy"),
    (3, "asthma", "Asthma"),
    (4, "type-1-diabetes", "Type 1 diabetes"),
    (5, "anaphylaxis", "Anaphylaxis"),
    (6, "adrenal-insufficiency", "Adrenal insufficiency"),
    (7, "complex-needs", "Complex needs"),
];

// ---------------------------------------------------------------------------------------
// templates.md

#[derive(Debug, Clone)]
struct Row {
    section: String,
    field: String,
    ty: String,
    req: String,
    notes: String,
}

#[derive(Debug)]
struct Rule {
    id: String,
    trigger: String,
    action: String,
    timing: Option<String>,
    source: String,
}

#[derive(Debug, Default)]
struct Template {
    heading: String,
    rows: Vec<Row>,
    rules: Vec<Rule>,
}

fn clean(cell: &str) -> String {
    cell.replace("**", "").trim().to_string()
}

/// The field tables and escalation-rule tables of each `## N.` section.
fn parse_templates_md() -> BTreeMap<u32, Template> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/clinical/templates.md"
    );
    let text = std::fs::read_to_string(path).expect("read templates.md");
    let mut out: BTreeMap<u32, Template> = BTreeMap::new();
    let mut current: Option<u32> = None;
    let mut header: Option<Vec<String>> = None;
    let mut last_section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            current = rest.split('.').next().and_then(|n| n.trim().parse().ok());
            if let Some(n) = current {
                out.entry(n).or_default().heading = rest.to_string();
            }
            header = None;
            continue;
        }
        let line = line.trim();
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        let Some(h) = &header else {
            header = Some(cells);
            last_section.clear();
            continue;
        };
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
            continue;
        }
        let Some(n) = current else { continue };
        let get = |name: &str| {
            h.iter()
                .position(|x| x == name)
                .map(|i| clean(cells.get(i).map_or("", String::as_str)))
        };
        let t = out.entry(n).or_default();
        if h[0] == "#" {
            t.rules.push(Rule {
                id: get("#").unwrap(),
                trigger: get("Trigger").unwrap(),
                action: get("Action").unwrap(),
                timing: get("Timing"),
                source: get("Source").unwrap(),
            });
        } else if h.iter().any(|x| x == "Field") {
            if let Some(s) = get("Section").filter(|s| !s.is_empty()) {
                last_section = s;
            }
            t.rows.push(Row {
                section: last_section.clone(),
                field: get("Field").unwrap(),
                ty: get("Type").unwrap(),
                req: get("Req").unwrap(),
                notes: get("Notes").unwrap_or_default(),
            });
        }
    }
    out.retain(|_, t| !t.rows.is_empty());
    out
}

/// One part of a Type cell: `choice Rep`, `quantity`, or a described field (`who consented`).
#[derive(Debug, Clone, PartialEq)]
struct Part {
    ty: String,
    rep: bool,
}

const KNOWN_TYPES: [&str; 15] = [
    "string",
    "text",
    "boolean",
    "date",
    "dateTime",
    "time",
    "integer",
    "decimal",
    "quantity",
    "choice",
    "open-choice",
    "attachment",
    "reference",
    "group",
    "display",
];

/// A parsed Type cell. `group_rep` is set for `group [Rep]: a + b`, whose parts are the
/// group's children.
#[derive(Debug)]
struct TypeSpec {
    group_rep: Option<bool>,
    parts: Vec<Part>,
}

fn strip_parens(s: &str) -> String {
    let mut depth = 0;
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn parse_part(s: &str) -> Vec<Part> {
    let mut words: Vec<&str> = s.split_whitespace().collect();
    let mut times = 1;
    if let Some(last) = words.last()
        && let Some(n) = last.strip_prefix('×')
    {
        times = n.parse().expect("×N");
        words.pop();
    }
    let rep = words.contains(&"Rep");
    let ty = match words.first() {
        Some(w) if KNOWN_TYPES.contains(w) => w.to_string(),
        _ => "free".to_string(), // a described field, e.g. "who consented"
    };
    vec![Part { ty, rep }; times]
}

fn parse_type(cell: &str) -> TypeSpec {
    let s = strip_parens(cell);
    if let Some((head, rest)) = s.split_once(':') {
        let head: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(head.first(), Some(&"group"), "type cell {cell:?}");
        return TypeSpec {
            group_rep: Some(head.contains(&"Rep")),
            parts: rest.split('+').flat_map(parse_part).collect(),
        };
    }
    TypeSpec {
        group_rep: None,
        parts: s
            .split(['+', '/'])
            .filter(|p| !p.trim().is_empty())
            .flat_map(parse_part)
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Questionnaire helpers

fn ext<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    let url = format!("{SD}{name}");
    item.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e["url"] == url.as_str())
}

fn ext_str<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    let e = ext(item, name)?;
    e.get("valueString")
        .or_else(|| e.get("valueCode"))
        .and_then(Value::as_str)
}

fn children(item: &Value) -> &[Value] {
    item.get("item")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn walk<'a>(items: &'a [Value], f: &mut impl FnMut(&'a Value)) {
    for i in items {
        f(i);
        walk(children(i), f);
    }
}

fn all_items(q: &Value) -> Vec<&Value> {
    let mut v = Vec::new();
    walk(children(q), &mut |i| v.push(i));
    v
}

fn ty(item: &Value) -> &str {
    item["type"].as_str().unwrap_or("")
}

fn repeats(item: &Value) -> bool {
    item["repeats"].as_bool().unwrap_or(false)
}

fn required(item: &Value) -> bool {
    item["required"].as_bool().unwrap_or(false)
}

fn is_question(item: &Value) -> bool {
    !matches!(ty(item), "group" | "display")
}

fn link(item: &Value) -> &str {
    item["linkId"].as_str().unwrap_or("?")
}

/// Whether `item` realises `part` (type, then repeats).
fn part_matches(part: &Part, item: &Value) -> bool {
    let t = ty(item);
    let no_code = ext(item, "no-code-in-subset").is_some();
    let type_ok = match part.ty.as_str() {
        "choice" => {
            matches!(t, "choice" | "open-choice") || (no_code && matches!(t, "string" | "text"))
        }
        "reference" => t == "reference" || (no_code && matches!(t, "string" | "open-choice")),
        "free" => matches!(t, "string" | "text"),
        other => t == other,
    };
    type_ok && repeats(item) == part.rep
}

fn describe(item: &Value) -> String {
    let kids: Vec<String> = children(item)
        .iter()
        .map(|c| format!("{}{}", ty(c), if repeats(c) { " Rep" } else { "" }))
        .collect();
    format!(
        "{} `{}`{} [{}]",
        ty(item),
        link(item),
        if repeats(item) { " Rep" } else { "" },
        kids.join(", ")
    )
}

/// Problems with how `item` realises the Type cell of `row` (empty when it does).
fn check_type(row: &Row, item: &Value) -> Option<String> {
    let spec = parse_type(&row.ty);
    let ok = match (spec.group_rep, spec.parts.as_slice()) {
        // `group [Rep]: a + b + c` → that group, children in order.
        (Some(rep), parts) => {
            ty(item) == "group"
                && repeats(item) == rep
                && children(item).len() == parts.len()
                && parts
                    .iter()
                    .zip(children(item))
                    .all(|(p, c)| part_matches(p, c))
        }
        // `group [Rep]`: any children.
        (None, [p]) if p.ty == "group" => ty(item) == "group" && repeats(item) == p.rep,
        // One type: the item itself, or (a row listing several fields of that type) a
        // plain group of such questions.
        (None, [p]) => {
            part_matches(p, item)
                || (ty(item) == "group"
                    && !repeats(item)
                    && children(item).len() >= 2
                    && children(item).iter().all(|c| part_matches(p, c)))
        }
        // Several parts: a plain group with one child per part, in order.
        (None, parts) => {
            ty(item) == "group"
                && !repeats(item)
                && children(item).len() == parts.len()
                && parts
                    .iter()
                    .zip(children(item))
                    .all(|(p, c)| part_matches(p, c))
        }
    };
    (!ok).then(|| {
        format!(
            "type: row says {:?} (parsed {:?}), item is {}",
            row.ty,
            spec.parts,
            describe(item)
        )
    })
}

/// The condition text of a conditional Req cell: `Y if prescribed` → `if prescribed`,
/// `Y (at least one)` → `at least one`.
fn condition(req: &str) -> String {
    let rest = req
        .strip_prefix('Y')
        .or_else(|| req.strip_prefix('N'))
        .unwrap_or(req)
        .trim();
    match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner.trim().to_string(),
        None => rest.to_string(),
    }
}

fn check_required(row: &Row, item: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let when = ext_str(item, "required-when");
    if ty(item) == "display" {
        // FHIR forbids `required` on display items (que-6); nothing to compare.
        if item.get("required").is_some() {
            problems.push("a display item must not carry `required`".to_string());
        }
        return problems;
    }
    let req = row.req.as_str();
    match req {
        "Y" | "N" => {
            if required(item) != (req == "Y") {
                problems.push(format!(
                    "required: row says {req}, item has {}",
                    required(item)
                ));
            }
            if let Some(w) = when {
                problems.push(format!("unexpected required-when {w:?}"));
            }
        }
        _ if req.contains(" / ") => {
            // One flag per listed field: the group is required, its questions follow the flags.
            let flags: Vec<bool> = req.split(" / ").map(|f| f.trim() == "Y").collect();
            let qs: Vec<&Value> = children(item).iter().filter(|c| is_question(c)).collect();
            let got: Vec<bool> = qs.iter().map(|c| required(c)).collect();
            if got != flags || !required(item) {
                problems.push(format!(
                    "required: row says {req:?}, item has {} with children {got:?}",
                    required(item)
                ));
            }
        }
        _ => {
            let want = condition(req);
            if required(item) {
                problems.push(format!(
                    "required: row says {req:?} (conditional), item has required=true"
                ));
            }
            if when != Some(want.as_str()) {
                problems.push(format!("required-when: want {want:?}, got {when:?}"));
            }
        }
    }
    problems
}

fn rule_ext<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    ext(item, "escalation-rule")?
        .get("extension")?
        .as_array()?
        .iter()
        .find(|e| e["url"] == name)?
        .get("valueString")?
        .as_str()
}

fn check_rule(rule: &Rule, q: &Value) -> Vec<String> {
    let help: Vec<&Value> = children(q)
        .iter()
        .filter(|i| i["text"] == "When to get help" && ty(i) == "group")
        .collect();
    let [help] = help.as_slice() else {
        return vec![format!(
            "rule {}: want one top-level group \"When to get help\", found {}",
            rule.id,
            help.len()
        )];
    };
    let hits: Vec<&Value> = children(help)
        .iter()
        .filter(|i| i["linkId"] == rule.id.as_str())
        .collect();
    let [item] = hits.as_slice() else {
        return vec![format!(
            "rule {}: want one item with this linkId in \"When to get help\", found {}",
            rule.id,
            hits.len()
        )];
    };
    let mut p = Vec::new();
    if ty(item) != "display" {
        p.push(format!("rule {}: type {}, want display", rule.id, ty(item)));
    }
    if ext_str(item, "passport-section") != Some("emergency") {
        p.push(format!("rule {}: section is not emergency", rule.id));
    }
    let mut text = format!("{} → {}", rule.trigger, rule.action);
    if let Some(t) = rule.timing.as_deref().filter(|t| *t != "—") {
        text.push_str(&format!(" ({t})"));
    }
    if item["text"] != text.as_str() {
        p.push(format!(
            "rule {}: text\n      want {text:?}\n      got  {}",
            rule.id, item["text"]
        ));
    }
    let cells = [
        ("trigger", Some(rule.trigger.as_str())),
        ("action", Some(rule.action.as_str())),
        ("timing", rule.timing.as_deref()),
        ("source", Some(rule.source.as_str())),
    ];
    for (name, want) in cells {
        let got = rule_ext(item, name);
        if got != want {
            p.push(format!(
                "rule {}: {name}\n      want {want:?}\n      got  {got:?}",
                rule.id
            ));
        }
    }
    p
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn templates_md_matches_the_questionnaires() {
    let md = parse_templates_md();
    let numbers: Vec<u32> = md.keys().copied().collect();
    assert_eq!(
        numbers,
        vec![1, 2, 3, 4, 5, 6, 7],
        "templates.md sections with field tables"
    );
    // §0: the core passport's plan-metadata group "is required in every template".
    let metadata = md[&1]
        .rows
        .iter()
        .find(|r| r.section == "Plan metadata")
        .expect("core Plan metadata row")
        .clone();

    let mut problems: Vec<String> = Vec::new();
    for (n, id, heading_word) in TEMPLATES {
        let t = &md[&n];
        assert!(
            t.heading.contains(heading_word),
            "§{n} heading {:?} is not {heading_word}",
            t.heading
        );
        let q = templates::questionnaire(id).unwrap_or_else(|| panic!("no questionnaire {id}"));
        let mut rows = t.rows.clone();
        if n != 1 {
            rows.push(metadata.clone());
        }
        let items = all_items(&q);
        let mut by_field: HashMap<&str, Vec<&Value>> = HashMap::new();
        for i in &items {
            if let Some(f) = ext_str(i, "template-field") {
                by_field.entry(f).or_default().push(i);
            }
        }
        let mut here = Vec::new();
        for row in &rows {
            let found = by_field
                .get(row.field.as_str())
                .map_or(&[][..], Vec::as_slice);
            let [item] = found else {
                here.push(format!(
                    "row {:?}: want exactly one item, found {}",
                    row.field,
                    found.len()
                ));
                continue;
            };
            let mut p: Vec<String> = check_type(row, item).into_iter().collect();
            p.extend(check_required(row, item));
            // A `[clinician-entered]` note marks the row's item (its values come from the
            // child's own clinician, never from a default).
            let clinician =
                ext(item, "clinician-entered").and_then(|e| e["valueBoolean"].as_bool());
            if row.notes.contains("[clinician-entered]") && clinician != Some(true) {
                p.push("notes say [clinician-entered]; the item lacks the extension".to_string());
            }
            for msg in p {
                here.push(format!("row {:?} (`{}`): {msg}", row.field, link(item)));
            }
        }
        let known: HashSet<&str> = rows.iter().map(|r| r.field.as_str()).collect();
        for f in by_field.keys() {
            if !known.contains(f) {
                here.push(format!("template-field {f:?} names no row of §{n}"));
            }
        }
        for rule in &t.rules {
            here.extend(check_rule(rule, &q));
        }
        let rule_ids: HashSet<&str> = t.rules.iter().map(|r| r.id.as_str()).collect();
        for i in &items {
            if ext(i, "escalation-rule").is_some() && !rule_ids.contains(link(i)) {
                here.push(format!(
                    "escalation rule `{}` is not a rule of §{n}",
                    link(i)
                ));
            }
        }
        if !here.is_empty() {
            problems.push(format!("{id}.json (§{n}):"));
            problems.extend(here.into_iter().map(|p| format!("  - {p}")));
        }
    }
    assert!(
        problems.is_empty(),
        "templates.md and the Questionnaires differ:\n{}",
        problems.join("\n")
    );
}

/// Every `valueCoding` (answer options, units) found anywhere under `v`, with the `url` of
/// the object holding it (an extension's url, or none).
fn codings<'a>(v: &'a Value, out: &mut Vec<(Option<&'a str>, &'a Value)>) {
    match v {
        Value::Object(map) => {
            if let Some(c) = map.get("valueCoding") {
                out.push((map.get("url").and_then(Value::as_str), c));
            }
            map.values().for_each(|x| codings(x, out));
        }
        Value::Array(list) => list.iter().for_each(|x| codings(x, out)),
        _ => {}
    }
}

#[test]
fn every_coding_is_in_the_terminology_subset_or_a_ucum_unit() {
    let mut problems = Vec::new();
    for q in templates::questionnaires() {
        let id = q["id"].as_str().unwrap().to_string();
        let mut found = Vec::new();
        codings(&q, &mut found);
        assert!(!found.is_empty(), "{id}: no codings at all?");
        for (url, c) in found {
            let system = c["system"].as_str().unwrap_or("");
            let code = c["code"].as_str().unwrap_or("");
            let display = c["display"].as_str();
            if url == Some(UNIT_EXT) {
                if system != UCUM || !UNITS.contains(&code) {
                    problems.push(format!("{id}: unit {c}"));
                }
                continue;
            }
            match terminology::lookup(system, code) {
                None => problems.push(format!("{id}: {system}|{code} is not in terminology.csv")),
                Some(concept) if Some(concept.display.as_str()) != display => {
                    problems.push(format!(
                        "{id}: {code} display {display:?}, csv says {:?}",
                        concept.display
                    ))
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn items_are_well_formed() {
    let link_re = |s: &str| {
        let kebab = !s.is_empty()
            && s.split('-').all(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        let rule = s.len() >= 2
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s[1..].chars().all(|c| c.is_ascii_digit());
        kebab || rule
    };
    let mut problems = Vec::new();
    for q in templates::questionnaires() {
        let id = q["id"].as_str().unwrap().to_string();
        let items = all_items(&q);
        let mut seen = HashSet::new();
        for i in &items {
            let l = link(i);
            if !seen.insert(l) {
                problems.push(format!("{id}: duplicate linkId {l}"));
            }
            if !link_re(l) {
                problems.push(format!("{id}: linkId {l:?} is not lower-kebab-case"));
            }
            if i["text"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{id}: `{l}` has no text"));
            }
            let section = ext_str(i, "passport-section");
            if is_question(i) && !section.is_some_and(|s| SECTIONS.contains(&s)) {
                problems.push(format!("{id}: question `{l}` has section {section:?}"));
            }
            if let Some(s) = section
                && !SECTIONS.contains(&s)
            {
                problems.push(format!("{id}: `{l}` has unknown section {s:?}"));
            }
            let initial = i
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("initial"));
            if initial && ext(i, "clinician-entered").is_some() {
                problems.push(format!(
                    "{id}: `{l}` is clinician-entered but has an initial value"
                ));
            }
            if ty(i) == "quantity" && !i.to_string().contains(UNIT_EXT) {
                problems.push(format!("{id}: quantity `{l}` has no unit"));
            }
            if ext(i, "answer-format").is_some() && ty(i) != "string" {
                problems.push(format!("{id}: phone `{l}` is not a string"));
            }
            if matches!(ty(i), "choice" | "open-choice")
                && i["answerOption"].as_array().is_none_or(Vec::is_empty)
            {
                problems.push(format!("{id}: choice `{l}` has no options"));
            }
            if ty(i) == "group" && children(i).is_empty() {
                problems.push(format!("{id}: group `{l}` is empty"));
            }
        }
        for i in &items {
            for w in i["enableWhen"].as_array().into_iter().flatten() {
                let target = w["question"].as_str().unwrap_or("");
                if !seen.contains(target) {
                    problems.push(format!(
                        "{id}: `{}` enableWhen names unknown {target:?}",
                        link(i)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn questionnaire_metadata() {
    let all = templates::questionnaires();
    let ids: Vec<&str> = all.iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(ids, templates::IDS);
    for q in &all {
        let id = q["id"].as_str().unwrap();
        assert_eq!(q["resourceType"], "Questionnaire");
        assert_eq!(
            q["url"],
            format!("https://passport.nhs.uk/fhir/Questionnaire/{id}")
        );
        // A version is a positive whole number, raised when the shipped template changes
        // (core 2: escalation contacts moved to the emergency section).
        let version = q["version"].as_str().unwrap_or_default();
        assert!(
            version.parse::<u32>().is_ok_and(|v| v >= 1),
            "{id}: {version}"
        );
        assert_eq!(q["status"], "active");
        assert_eq!(q["subjectType"], serde_json::json!(["Patient"]));
        for key in ["name", "title", "publisher", "description"] {
            assert!(
                q[key].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: {key}"
            );
        }
        let d = q["description"].as_str().unwrap();
        assert!(d.contains("not a clinical protocol"), "{id}: description");
        assert!(d.contains("clinician"), "{id}: description");
        assert_eq!(templates::questionnaire(id).as_ref(), Some(q));
    }
    assert!(templates::questionnaire("nope").is_none());
}

#[test]
fn every_questionnaire_is_valid_fhir() {
    let mut problems = Vec::new();
    for q in templates::questionnaires() {
        for issue in fhir::validate(&q) {
            if matches!(
                issue.severity,
                fhir::Severity::Error | fhir::Severity::Fatal
            ) {
                problems.push(format!(
                    "{}: {} {}: {}",
                    q["id"],
                    issue.code.code(),
                    issue.expression,
                    issue.diagnostics
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn terminology_search_and_lookup() {
    let hits = terminology::search(&["substance"], "pean", 10);
    assert_eq!(
        hits.first().map(|c| c.display.as_str()),
        Some("Peanut"),
        "{hits:?}"
    );
    assert!(hits.iter().all(|c| c.kind == "substance"));
    // Case-insensitive, and word prefixes inside the display.
    let hits = terminology::search(&["allergy-condition"], "ALLERGY PEA", 10);
    assert_eq!(
        hits.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
        ["91935009"]
    );
    // The display's own start ranks first; all kinds when none are given.
    let hits = terminology::search(&[], "asthma", 50);
    assert_eq!(hits[0].display, "Asthma");
    assert!(hits.iter().any(|c| c.display == "Childhood asthma"));
    // Substring matches are found too ("nut" is inside "Peanut").
    assert!(
        terminology::search(&["substance"], "nut", 10)
            .iter()
            .any(|c| c.display == "Peanut")
    );
    assert_eq!(terminology::search(&["substance"], "pean", 0).len(), 0);
    assert!(terminology::search(&["substance"], "zzzz", 10).is_empty());

    let peanut = terminology::lookup("http://snomed.info/sct", "762952008").unwrap();
    assert_eq!(peanut.display, "Peanut");
    assert_eq!(peanut.kind, "substance");
    assert!(terminology::lookup("http://snomed.info/sct", "123456789").is_none());
    assert!(terminology::lookup("https://dmd.nhs.uk", "762952008").is_none());
}
