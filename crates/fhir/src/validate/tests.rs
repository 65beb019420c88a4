use super::*;
use serde_json::json;

fn issues(v: &Value) -> Vec<(IssueType, String)> {
    validate(v)
        .into_iter()
        .map(|i| (i.code, i.expression))
        .collect()
}

fn has(v: &Value, code: IssueType, expr: &str) {
    let found = validate(v);
    assert!(
        found.iter().any(|i| i.code == code
            && i.expression == expr
            && i.severity == crate::Severity::Error),
        "expected {code:?} at {expr}, got {found:#?}"
    );
}

#[test]
fn minimal_patient_is_valid() {
    let p = json!({"resourceType": "Patient", "id": "p1", "name": [{"given": ["A", "B"], "family": "C"}], "birthDate": "2020-01-02", "gender": "female"});
    assert_eq!(validate(&p), vec![]);
}

#[test]
fn resource_type() {
    assert_eq!(
        issues(&json!({})),
        vec![(IssueType::Required, String::new())]
    );
    assert_eq!(
        issues(&json!({"resourceType": 5})),
        vec![(IssueType::Invalid, "resourceType".into())]
    );
    assert_eq!(
        issues(&json!({"resourceType": "Foo"})),
        vec![(IssueType::Invalid, String::new())]
    );
    assert_eq!(
        issues(&json!({"resourceType": "DomainResource"})),
        vec![(IssueType::Invalid, String::new())]
    );
    assert_eq!(
        issues(&json!([1])),
        vec![(IssueType::Structure, String::new())]
    );
    assert!(validate(&json!({"resourceType": "Basic", "code": {"text": "x"}})).is_empty());
}

#[test]
fn unknown_elements() {
    let p = json!({"resourceType": "Patient", "foo": 1, "name": [{"bar": "x", "family": "y"}], "_foo": {}});
    assert_eq!(
        issues(&p),
        vec![
            (IssueType::Structure, "Patient.foo".into()),
            (IssueType::Structure, "Patient.name[0].bar".into()),
            (IssueType::Structure, "Patient._foo".into())
        ]
    );
    // `resourceType` belongs only at a resource's root.
    has(
        &json!({"resourceType": "Patient", "name": [{"resourceType": "x"}]}),
        IssueType::Structure,
        "Patient.name[0].resourceType",
    );
}

#[test]
fn shapes_and_cardinality() {
    has(
        &json!({"resourceType": "Patient", "name": {"family": "x"}}),
        IssueType::Structure,
        "Patient.name",
    );
    has(
        &json!({"resourceType": "Patient", "gender": ["male"]}),
        IssueType::Structure,
        "Patient.gender",
    );
    has(
        &json!({"resourceType": "Patient", "name": []}),
        IssueType::Structure,
        "Patient.name",
    );
    has(
        &json!({"resourceType": "Patient", "name": [{}]}),
        IssueType::Structure,
        "Patient.name[0]",
    );
    has(
        &json!({"resourceType": "Patient", "name": ["x"]}),
        IssueType::Structure,
        "Patient.name[0]",
    );
    has(
        &json!({"resourceType": "Patient", "active": "true"}),
        IssueType::Structure,
        "Patient.active",
    );
    has(
        &json!({"resourceType": "Patient", "active": null}),
        IssueType::Structure,
        "Patient.active",
    );
    has(
        &json!({"resourceType": "Patient", "name": [null]}),
        IssueType::Structure,
        "Patient.name[0]",
    );
    has(
        &json!({"resourceType": "Observation", "code": {"text": "x"}}),
        IssueType::Required,
        "Observation.status",
    );
    has(
        &json!({"resourceType": "Patient", "link": [{"type": "seealso"}]}),
        IssueType::Required,
        "Patient.link[0].other",
    );
}

#[test]
fn primitive_formats() {
    has(
        &json!({"resourceType": "Patient", "birthDate": "2019-13-45"}),
        IssueType::Value,
        "Patient.birthDate",
    );
    has(
        &json!({"resourceType": "Patient", "name": [{"given": ["a", ""]}]}),
        IssueType::Value,
        "Patient.name[0].given[1]",
    );
    has(
        &json!({"resourceType": "Patient", "multipleBirthInteger": 1.5}),
        IssueType::Value,
        "Patient.multipleBirthInteger",
    );
    has(
        &json!({"resourceType": "Patient", "multipleBirthInteger": "2"}),
        IssueType::Structure,
        "Patient.multipleBirthInteger",
    );
    has(
        &json!({"resourceType": "Patient", "id": "a_b"}),
        IssueType::Value,
        "Patient.id",
    );
    has(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": "1.5"}}),
        IssueType::Structure,
        "Observation.valueQuantity.value",
    );
    has(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "issued": "2020-01-01"}),
        IssueType::Value,
        "Observation.issued",
    );
    has(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": "2020-01-01T10:00:00"}),
        IssueType::Value,
        "Observation.effectiveDateTime",
    );
    has(
        &json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<p>x</p>"}}),
        IssueType::Value,
        "Patient.text.div",
    );
    has(
        &json!({"resourceType": "Patient", "gender": " male"}),
        IssueType::Value,
        "Patient.gender",
    );
    let decimal: Value = serde_json::from_str(r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}"#).unwrap();
    assert!(validate(&decimal).is_empty());
}

#[test]
fn primitive_extensions() {
    let ok = json!({"resourceType": "Patient", "birthDate": "2020-01-01", "_birthDate": {"extension": [{"url": "http://x", "valueDateTime": "2020-01-01T10:00:00Z"}]},
        "name": [{"given": ["a", null], "_given": [null, {"extension": [{"url": "http://y", "valueString": "b"}]}]}]});
    assert_eq!(validate(&ok), vec![]);
    // Extension-only primitive satisfies a required element.
    let only = json!({"resourceType": "Observation", "_status": {"extension": [{"url": "http://x", "valueCode": "u"}]}, "code": {"text": "x"}});
    assert_eq!(validate(&only), vec![]);
    has(
        &json!({"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [null]}]}),
        IssueType::Structure,
        "Patient.name[0].given",
    );
    has(
        &json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [null, null]}]}),
        IssueType::Structure,
        "Patient.name[0].given[1]",
    );
    has(
        &json!({"resourceType": "Patient", "birthDate": "2020", "_birthDate": {"extension": [{"valueString": "x"}]}}),
        IssueType::Required,
        "Patient.birthDate.extension[0].url",
    );
    has(
        &json!({"resourceType": "Patient", "birthDate": "2020", "_birthDate": "x"}),
        IssueType::Structure,
        "Patient.birthDate",
    );
    has(
        &json!({"resourceType": "Patient", "_name": {"id": "x"}}),
        IssueType::Structure,
        "Patient._name",
    );
}

#[test]
fn choices() {
    let two = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "a", "valueBoolean": true});
    assert_eq!(
        issues(&two),
        vec![(IssueType::Structure, "Observation.value[x]".into())]
    );
    has(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueFoo": 1}),
        IssueType::Structure,
        "Observation.valueFoo",
    );
    has(
        &json!({"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "extension": [{"url": "http://x"}], "onsetAge": {"value": "1"}}),
        IssueType::Structure,
        "Condition.onsetAge.value",
    );
    // A required choice missing.
    let ms = json!({"resourceType": "MedicationStatement", "status": "active", "subject": {"reference": "Patient/1"}});
    assert_eq!(
        issues(&ms),
        vec![(
            IssueType::Required,
            "MedicationStatement.medication[x]".into()
        )]
    );
}

#[test]
fn bindings() {
    let p = json!({"resourceType": "Patient", "gender": "boy"});
    assert_eq!(
        issues(&p),
        vec![(IssueType::CodeInvalid, "Patient.gender".into())]
    );
    let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "category": [{"coding": [{"system": "http://example.org", "code": "whatever"}]}],
        "valueQuantity": {"value": 1, "comparator": "=="}});
    assert_eq!(
        issues(&o),
        vec![(
            IssueType::CodeInvalid,
            "Observation.valueQuantity.comparator".into()
        )]
    );
    // CodeableConcept with a required binding: only codings in the value set's systems are checked.
    let a = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://example.org", "code": "x"}, {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "bogus"}]}});
    assert_eq!(
        issues(&a),
        vec![(
            IssueType::CodeInvalid,
            "AllergyIntolerance.clinicalStatus.coding[1].code".into()
        )]
    );
    let ok = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}});
    assert_eq!(validate(&ok), vec![]);
}

#[test]
fn references() {
    let obs = |r: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": r}});
    for ok in [
        "Patient/123",
        "Patient/a.b-c/_history/2",
        "http://example.org/fhir/Patient/1",
        "https://x.org/anything",
        "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        "urn:oid:1.2.3.4",
    ] {
        assert_eq!(validate(&obs(ok)), vec![], "{ok}");
    }
    for bad in [
        "Patient",
        "Patient/",
        "Patient/a b",
        "Foo/1",
        "patient/1",
        "123",
        "urn:uuid:xyz",
        "Patient/1/_history",
        "#missing",
        "http://",
    ] {
        has(&obs(bad), IssueType::Value, "Observation.subject.reference");
    }
    // Target types: an Observation's subject may not be a Medication.
    has(
        &obs("Medication/1"),
        IssueType::Value,
        "Observation.subject.reference",
    );
    let contained = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "contained": [{"resourceType": "Patient", "id": "p1", "link": [{"other": {"reference": "#"}, "type": "seealso"}]}],
        "subject": {"reference": "#p1"}});
    assert_eq!(validate(&contained), vec![]);
}

#[test]
fn nested_resources() {
    let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"}},
        {"resource": {"resourceType": "Patient", "birthDate": "20-01-01"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient"}}},
        {"resource": {"resourceType": "Nope"}}
    ]});
    assert_eq!(
        issues(&b),
        vec![
            (
                IssueType::Value,
                "Bundle.entry[1].resource.birthDate".into()
            ),
            (
                IssueType::Value,
                "Bundle.entry[2].resource.subject.reference".into()
            ),
            (IssueType::Invalid, "Bundle.entry[3].resource".into()),
        ]
    );
    has(
        &json!({"resourceType": "Patient", "contained": [{"resourceType": "Patient", "id": "x", "gender": "x"}]}),
        IssueType::CodeInvalid,
        "Patient.contained[0].gender",
    );
    has(
        &json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "active": 1}}]}),
        IssueType::Structure,
        "Parameters.parameter[0].resource.active",
    );
}

#[test]
fn nhs_numbers() {
    let p = |v: &str| json!({"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": v}]});
    assert_eq!(validate(&p("9434765919")), vec![]);
    let bad = validate(&p("9912003890"));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].code, IssueType::Value);
    assert_eq!(bad[0].expression, "Patient.identifier[0].value");
    assert_eq!(
        bad[0].diagnostics,
        "NHS Number 9912003890 fails the modulus-11 check digit"
    );
    assert!(
        validate(&p("943476591"))[0]
            .diagnostics
            .contains("must be 10 digits")
    );
    // Anywhere an Identifier appears.
    has(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1234567890"}}}),
        IssueType::Value,
        "Observation.subject.identifier.value",
    );
}
