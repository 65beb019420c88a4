use super::*;
use serde_json::json;

fn exprs(v: &Value) -> Vec<String> {
    validate(v).into_iter().map(|i| i.expression).collect()
}

#[test]
fn minimal_patient_is_valid() {
    let p = json!({"resourceType": "Patient", "id": "p1", "name": [{"given": ["A", "B"], "family": "C"}], "birthDate": "2020-01-02", "gender": "female"});
    assert_eq!(validate(&p), vec![]);
}
