//! Extraction over the example corpus (`testdata/fhir-examples`), and the definitions as a whole.

use super::*;
use serde_json::Value;
use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/fhir-examples"
    ))
}

fn load(rel: &str) -> Value {
    let p = examples_dir().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn json_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![examples_dir()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn values_of<'a>(entries: &'a [IndexEntry], param: &str) -> Vec<&'a IndexValue> {
    entries
        .iter()
        .filter(|e| e.param == param)
        .map(|e| &e.value)
        .collect()
}

fn tok(system: Option<&str>, code: &str) -> IndexValue {
    IndexValue::Token {
        system: system.map(str::to_owned),
        code: Some(code.to_owned()),
        text: None,
        type_system: None,
        type_code: None,
    }
}

fn reference(ty: &str, id: &str) -> IndexValue {
    IndexValue::Reference {
        target_type: Some(ty.to_owned()),
        target_id: Some(id.to_owned()),
        url: None,
        identifier_system: None,
        identifier_value: None,
    }
}

fn string(exact: &str) -> IndexValue {
    IndexValue::String {
        normalized: normalize_string(exact),
        exact: exact.to_owned(),
    }
}

/// 1970-09-11T00:00:00Z in µs.
const SEP_11_1970: i64 = 253 * 86_400_000_000;
const RICHARD: &str = "uk-core-stu2/Patient/UKCore-Patient-RichardSmith-Example.json";

#[test]
fn every_expression_parses_and_every_type_has_params() {
    // Loading parses every expression (it panics otherwise); check the count too.
    let mut total = 0;
    for t in crate::types::SUPPORTED_TYPES {
        let ps = params_for(t);
        assert!(ps.len() >= 5, "{t}");
        assert!(ps.windows(2).all(|w| w[0].code < w[1].code), "{t} sorted");
        for c in ["_id", "_lastUpdated", "_profile", "_security", "_tag"] {
            assert!(param(t, c).is_some(), "{t}.{c}");
        }
        for p in ps {
            assert_eq!(p.resource_type, *t);
            // Every path starts at this type (multi-type parameters were split).
            let roots = fhirpath::type_roots(&p.expr);
            assert!(!roots.is_empty(), "{t}.{}", p.code);
            assert!(roots.iter().all(|r| r == t), "{t}.{}: {roots:?}", p.code);
            for c in &p.components {
                assert!(fhirpath::type_roots(&c.expr).is_empty(), "{t}.{}", p.code);
            }
            assert_eq!(
                p.components.is_empty(),
                p.kind != ParamType::Composite,
                "{t}.{}",
                p.code
            );
        }
        total += ps.len();
    }
    assert!(total > 600, "{total}");
    assert!(params_for("Basic").is_empty());
    assert!(param("Patient", "nope").is_none());
    let p = param("Patient", "email").unwrap();
    assert_eq!(p.expression, "Patient.telecom.where(system='email')");
    let p = param("CarePlan", "patient").unwrap();
    assert_eq!(p.expression, "CarePlan.subject.where(resolve() is Patient)");
    assert_eq!(p.targets, ["Patient"]);
    let p = param("Observation", "code-value-quantity").unwrap();
    assert_eq!(p.components.len(), 2);
    assert_eq!(p.components[0].kind, ParamType::Token);
    assert_eq!(p.components[1].kind, ParamType::Quantity);
    assert_eq!(p.components[1].expression, "value.as(Quantity)");
}

#[test]
fn the_data_file_is_rejected_when_an_expression_does_not_parse() {
    let bad = r#"{"params": {"Patient": [{"code": "x", "type": "token",
        "expression": "Patient.name.frobnicate()"}]}, "compartments": {}}"#;
    let err = params::build(bad).err().unwrap();
    assert!(err.contains("Patient.x"), "{err}");
}

#[test]
fn patient() {
    let e = extract(&load(RICHARD));
    assert_eq!(
        values_of(&e, "_id"),
        [&tok(None, "UKCore-Patient-RichardSmith-Example")]
    );
    assert_eq!(
        values_of(&e, "birthdate"),
        [&IndexValue::Date {
            low_us: SEP_11_1970,
            high_us: SEP_11_1970 + 86_400_000_000 - 1
        }]
    );
    assert_eq!(
        values_of(&e, "identifier"),
        [&tok(
            Some("https://fhir.nhs.uk/Id/nhs-number"),
            "9912003888"
        )]
    );
    assert_eq!(values_of(&e, "family"), [&string("SMITH")]);
    assert_eq!(
        values_of(&e, "name"),
        [
            &IndexValue::String {
                normalized: "smith".into(),
                exact: "SMITH".into()
            },
            &IndexValue::String {
                normalized: "richard".into(),
                exact: "Richard".into()
            }
        ]
    );
    assert_eq!(values_of(&e, "gender"), [&tok(None, "male")]);
    assert_eq!(values_of(&e, "deceased"), [&tok(None, "false")]);
    assert_eq!(values_of(&e, "phone"), [&tok(None, "01131231234")]);
    assert_eq!(values_of(&e, "address-city"), [&string("LEEDS")]);
    assert!(values_of(&e, "email").is_empty());

    let hl7 = extract(&load("hl7-r4-core/Patient/Patient-example.json"));
    let given: Vec<_> = values_of(&hl7, "given");
    assert_eq!(given, [&string("Peter"), &string("James"), &string("Jim")]);
}

#[test]
fn meta_parameters() {
    let mut r = load(RICHARD);
    r["meta"] = serde_json::json!({
        "lastUpdated": "2024-01-02T03:04:05.678+01:00",
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
        "tag": [{"system": "urn:t", "code": "a"}],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
    });
    let e = extract(&r);
    // 2024-01-02T02:04:05.678Z
    let low = (19_724 * 86_400 + 2 * 3600 + 4 * 60 + 5) * 1_000_000 + 678_000;
    assert_eq!(
        values_of(&e, "_lastUpdated"),
        [&IndexValue::Date {
            low_us: low,
            high_us: low + 999
        }]
    );
    assert_eq!(
        values_of(&e, "_profile"),
        [&IndexValue::Uri {
            value: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient".into()
        }]
    );
    assert_eq!(values_of(&e, "_tag"), [&tok(Some("urn:t"), "a")]);
    assert_eq!(
        values_of(&e, "_security"),
        [&tok(
            Some("http://terminology.hl7.org/CodeSystem/v3-Confidentiality"),
            "R"
        )]
    );
}

#[test]
fn observation_composite_and_quantity() {
    let e = extract(&load(
        "hl7-r4-core/Observation/Observation-body-temperature.json",
    ));
    let code = IndexValue::Token {
        system: Some("http://loinc.org".into()),
        code: Some("8310-5".into()),
        text: Some("body temperature".into()),
        type_system: None,
        type_code: None,
    };
    let q = IndexValue::Quantity {
        value: 36.5,
        low: 36.45,
        high: 36.55,
        system: Some("http://unitsofmeasure.org".into()),
        code: Some("Cel".into()),
        unit: Some("C".into()),
    };
    let close = |a: &IndexValue, b: &IndexValue| match (a, b) {
        (
            IndexValue::Quantity {
                value: v1,
                low: l1,
                high: h1,
                ..
            },
            IndexValue::Quantity {
                value: v2,
                low: l2,
                high: h2,
                ..
            },
        ) => (v1 - v2).abs() < 1e-9 && (l1 - l2).abs() < 1e-9 && (h1 - h2).abs() < 1e-9,
        _ => a == b,
    };
    let vq = values_of(&e, "value-quantity");
    assert_eq!(vq.len(), 1);
    assert!(close(vq[0], &q), "{vq:?}");
    let cvq = values_of(&e, "code-value-quantity");
    assert_eq!(cvq.len(), 1, "{cvq:?}");
    let IndexValue::Composite(parts) = cvq[0] else {
        panic!("{cvq:?}")
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], code);
    assert!(close(&parts[1], &q));
    assert!(values_of(&e, "code").contains(&&code));
    assert!(values_of(&e, "code").contains(&&IndexValue::Token {
        system: None,
        code: None,
        text: Some("body temperature".into()),
        type_system: None,
        type_code: None,
    }));
    assert_eq!(
        values_of(&e, "_profile"),
        [&IndexValue::Uri {
            value: "http://hl7.org/fhir/StructureDefinition/vitalsigns".into()
        }]
    );
    assert!(values_of(&e, "value-string").is_empty());
}

#[test]
fn references_and_periods() {
    let c = extract(&load(
        "uk-core-stu2/Condition/UKCore-Condition-HipReplacement-Example.json",
    ));
    let richard = reference("Patient", "UKCore-Patient-RichardSmith-Example");
    assert_eq!(values_of(&c, "subject"), [&richard]);
    assert_eq!(values_of(&c, "patient"), [&richard]);

    let a = extract(&load(
        "uk-core-stu2/AllergyIntolerance/UKCore-AllergyIntolerance-Amoxicillin-Example.json",
    ));
    assert_eq!(values_of(&a, "patient"), [&richard]);

    let m = extract(&load(
        "uk-core-stu2/MedicationStatement/UKCore-MedicationStatement-Amoxicillin-Example.json",
    ));
    assert_eq!(
        values_of(&m, "code"),
        [&IndexValue::Token {
            system: Some("https://dmd.nhs.uk".into()),
            code: Some("39732311000001104".into()),
            text: Some("amoxicillin 250mg capsules".into()),
            type_system: None,
            type_code: None,
        }]
    );
    assert!(values_of(&m, "medication").is_empty());
    assert_eq!(values_of(&m, "subject"), [&richard]);

    let enc = extract(&load(
        "uk-core-stu2/Encounter/UKCore-Encounter-InpatientEncounter-Example.json",
    ));
    // 2019-12-10T13:00:00+00:00 .. 2019-12-11T13:00:00+00:00 (to the end of that second)
    let start = (18_240 * 86_400 + 13 * 3600) * 1_000_000;
    assert_eq!(
        values_of(&enc, "date"),
        [&IndexValue::Date {
            low_us: start,
            high_us: start + 86_401_000_000 - 1
        }]
    );

    let ap = extract(&load(
        "uk-core-stu2/Appointment/UKCore-Appointment-OrthopaedicSurgery-Example.json",
    ));
    assert_eq!(
        values_of(&ap, "actor"),
        [
            &richard,
            &reference(
                "Practitioner",
                "UKCore-Practitioner-ConsultantSandraGose-Example"
            ),
            &reference("Location", "UKCore-Location-HospitalSJUH-Example"),
        ]
    );
    assert_eq!(values_of(&ap, "patient"), [&richard]);
    assert_eq!(values_of(&ap, "part-status"), [&tok(None, "accepted")]);
}

#[test]
fn reference_forms() {
    let r = serde_json::json!({"resourceType": "Observation", "id": "o",
        "subject": {"reference": "https://example.org/fhir/Patient/p1/_history/2"},
        "performer": [
            {"reference": "urn:uuid:0b0f5e3c-5fd6-4d2b-9c4a-000000000001"},
            {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X26"}},
            {"display": "nobody"}
        ],
        "hasMember": [{"reference": "Observation/m/_history/1"}]});
    let e = extract(&r);
    assert_eq!(
        values_of(&e, "subject"),
        [&IndexValue::Reference {
            target_type: Some("Patient".into()),
            target_id: Some("p1".into()),
            url: Some("https://example.org/fhir/Patient/p1/_history/2".into()),
            identifier_system: None,
            identifier_value: None,
        }]
    );
    assert_eq!(
        values_of(&e, "performer"),
        [
            &IndexValue::Reference {
                target_type: None,
                target_id: None,
                url: Some("urn:uuid:0b0f5e3c-5fd6-4d2b-9c4a-000000000001".into()),
                identifier_system: None,
                identifier_value: None,
            },
            &IndexValue::Reference {
                target_type: None,
                target_id: None,
                url: None,
                identifier_system: Some("https://fhir.nhs.uk/Id/ods-organization-code".into()),
                identifier_value: Some("X26".into()),
            }
        ]
    );
    assert_eq!(
        values_of(&e, "has-member"),
        [&reference("Observation", "m")]
    );
    assert_eq!(values_of(&e, "patient"), values_of(&e, "subject"));

    let q = serde_json::json!({"resourceType": "QuestionnaireResponse",
        "questionnaire": "http://example.org/Questionnaire/q|2.0"});
    assert_eq!(
        values_of(&extract(&q), "questionnaire"),
        [&IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: Some("http://example.org/Questionnaire/q".into()),
            identifier_system: None,
            identifier_value: None,
        }]
    );
}

#[test]
fn identifier_type_and_contact_points() {
    let r = serde_json::json!({"resourceType": "Patient", "id": "p",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical Record"},
                        "system": "urn:mrn", "value": "123"}],
        "telecom": [{"system": "email", "value": "a@b.org"}, {"system": "phone", "value": "0113"}],
        "deceasedDateTime": "2020-01-01",
        "active": true});
    let e = extract(&r);
    assert_eq!(
        values_of(&e, "identifier"),
        [&IndexValue::Token {
            system: Some("urn:mrn".into()),
            code: Some("123".into()),
            text: Some("medical record".into()),
            type_system: Some("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
            type_code: Some("MR".into()),
        }]
    );
    assert_eq!(values_of(&e, "email"), [&tok(None, "a@b.org")]);
    assert_eq!(values_of(&e, "phone"), [&tok(None, "0113")]);
    assert_eq!(
        values_of(&e, "telecom"),
        [&tok(None, "a@b.org"), &tok(None, "0113")]
    );
    assert_eq!(values_of(&e, "deceased"), [&tok(None, "true")]);
    assert_eq!(values_of(&e, "active"), [&tok(None, "true")]);
    assert_eq!(values_of(&e, "death-date").len(), 1);
}

#[test]
fn every_example_extracts_without_panicking() {
    let mut n = 0;
    for p in json_files() {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(r) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(rt) = r.get("resourceType").and_then(Value::as_str) else {
            continue;
        };
        let e = extract(&r);
        if !crate::types::is_supported(rt) {
            assert!(e.is_empty(), "{}", p.display());
            continue;
        }
        n += 1;
        if let Some(id) = r.get("id").and_then(Value::as_str) {
            assert_eq!(values_of(&e, "_id"), [&tok(None, id)], "{}", p.display());
        }
        for entry in &e {
            assert_eq!(param(rt, &entry.param).map(|p| p.kind), Some(entry.kind));
        }
    }
    assert!(n > 100, "{n}");
}

#[test]
fn non_resources_give_nothing() {
    for v in [
        serde_json::json!(null),
        serde_json::json!([1, 2]),
        serde_json::json!({"resourceType": 3}),
        serde_json::json!({"resourceType": "Nope", "id": "x"}),
        serde_json::json!({"resourceType": "Patient", "name": "not an array", "birthDate": 5,
            "identifier": [null, 3, {"system": 1}], "telecom": {"value": "x"}}),
    ] {
        let _ = extract(&v);
    }
}

#[test]
fn normalizes_strings() {
    assert_eq!(normalize_string("  Zoë  O'Brién "), "zoe o'brien");
    assert_eq!(normalize_string("ÅNGSTRÖM\tSøren\n"), "angstrom soren");
    assert_eq!(
        normalize_string("Straße Æsir Œuvre"),
        "strasse aesir oeuvre"
    );
    assert_eq!(normalize_string("Łódź Ćwikła Dvořák"), "lodz cwikla dvorak");
    assert_eq!(normalize_string("Zoe\u{308}"), "zoe");
    assert_eq!(normalize_string("ΑΒΓ"), "αβγ");
    assert_eq!(normalize_string("   "), "");
}
