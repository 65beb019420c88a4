//! Server-owned parts of a stored resource: `id`, `meta.versionId`, `meta.lastUpdated`.
//!
//! Everything else in the body is kept exactly as the client sent it (element order,
//! decimal precision, extensions), which is why this edits a `serde_json::Value` built with
//! `preserve_order` and `arbitrary_precision` rather than a typed model.

use serde_json::{Map, Value};

/// Sets `id`, `meta.versionId` and `meta.lastUpdated`, keeping the client's other `meta`
/// elements (profile, security, tag, source). New keys go where FHIR JSON conventionally
/// puts them: `id` after `resourceType`, `meta` after `id`.
pub fn stamp(resource: &mut Map<String, Value>, id: &str, version_id: i64, last_updated: &str) {
    set_at(resource, "id", Value::String(id.to_owned()), 1);
    let meta_pos = resource.keys().position(|k| k == "id").map_or(1, |i| i + 1);
    if !matches!(resource.get("meta"), Some(Value::Object(_))) {
        set_at(resource, "meta", Value::Object(Map::new()), meta_pos);
    }
    let Some(Value::Object(meta)) = resource.get_mut("meta") else {
        unreachable!("meta was just made an object")
    };
    set_at(meta, "versionId", Value::String(version_id.to_string()), 0);
    set_at(
        meta,
        "lastUpdated",
        Value::String(last_updated.to_owned()),
        1,
    );
}

fn set_at(map: &mut Map<String, Value>, key: &str, value: Value, index: usize) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
    } else {
        let index = index.min(map.len());
        map.shift_insert(index, key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_in_conventional_places_and_keeps_the_rest() {
        let mut v: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","meta":{"tag":[{"code":"x"}]},"valueQuantity":{"value":1.50}}"#,
        )
        .unwrap();
        stamp(
            v.as_object_mut().unwrap(),
            "abc",
            3,
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"resourceType":"Observation","id":"abc","meta":{"versionId":"3","lastUpdated":"2026-01-01T00:00:00.000Z","tag":[{"code":"x"}]},"valueQuantity":{"value":1.50}}"#
        );
    }

    #[test]
    fn replaces_client_values() {
        let mut v: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"old","meta":{"versionId":"9","lastUpdated":"1999-01-01"}}"#,
        )
        .unwrap();
        stamp(v.as_object_mut().unwrap(), "new", 1, "2026-01-01T00:00:00Z");
        assert_eq!(v["id"], "new");
        assert_eq!(v["meta"]["versionId"], "1");
        assert_eq!(v["meta"]["lastUpdated"], "2026-01-01T00:00:00Z");
    }
}
