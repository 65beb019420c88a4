//! Property tests: `validate` never panics; examples survive a parse/serialise round trip.

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 :/#._-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "Patient",
            "Observation",
            "Bundle",
            "2020-01-01",
            "Patient/1",
            "#x",
            "final",
            "male",
            "https://fhir.nhs.uk/Id/nhs-number",
            "9434765919",
            "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop::sample::select(vec![
        "resourceType",
        "id",
        "name",
        "given",
        "_given",
        "family",
        "birthDate",
        "_birthDate",
        "identifier",
        "system",
        "value",
        "valueString",
        "valueQuantity",
        "extension",
        "url",
        "contained",
        "entry",
        "resource",
        "subject",
        "reference",
        "coding",
        "code",
        "status",
        "gender",
        "item",
        "linkId",
        "text",
        "div",
    ]);
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn validate_never_panics(v in arb_json()) {
        let _ = fhir::validate(&v);
    }

    #[test]
    fn validate_never_panics_on_resources(rt in prop::sample::select(vec!["Patient", "Observation", "Bundle", "Questionnaire", "Condition"]), body in arb_json()) {
        let mut v = body;
        if let Value::Object(m) = &mut v {
            m.insert("resourceType".into(), Value::String(rt.to_owned()));
        }
        let _ = fhir::validate(&v);
    }

    #[test]
    fn mutants_never_panic(v in arb_json()) {
        let _ = fhir::mutation::mutants(&v);
    }
}

/// The JSON text with the whitespace between tokens removed (strings untouched), and the
/// exponent marker of numbers lower-cased: serde_json (with `arbitrary_precision`) keeps a
/// number's digits exactly but writes `1E-22` back as `1e-22` (the same JSON number; seen
/// in `hl7-r4-core/Observation/Observation-decimal.json`).
fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == 'E' {
            out.push('e');
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[test]
fn examples_round_trip_byte_for_byte() {
    let mut exact = 0;
    let examples = common::supported_examples();
    for (path, text, v) in &examples {
        // Serialising what was parsed gives back the published bytes (modulo the whitespace
        // between tokens): element order, decimals such as 1.50 and strings all kept.
        let out = serde_json::to_string(v).unwrap();
        assert_eq!(out, minify(text), "{}", path.display());
        if serde_json::to_string_pretty(v).unwrap() == text.trim_end() {
            exact += 1;
        }
        let again: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), out);
    }
    println!(
        "{exact} of {} examples also match serde_json's pretty layout exactly",
        examples.len()
    );
}

#[test]
fn decimals_keep_their_text() {
    let text = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"kg"},"component":[{"code":{"text":"y"},"valueQuantity":{"value":0.0010}}]}"#;
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(fhir::validate(&v), vec![]);
    assert_eq!(serde_json::to_string(&v).unwrap(), text);
}
