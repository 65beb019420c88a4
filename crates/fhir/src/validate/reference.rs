//! `Reference.reference` formats.

use super::primitives::{is_bare_oid, is_bare_uuid};
use crate::defs::Defs;
use crate::types::is_valid_id;

/// Checks a reference string: `Type/id` (optionally `/_history/vid`), an absolute
/// http(s) URL, `#id` of a contained resource (`local` holds the container's contained ids;
/// `#` alone is the container), `urn:uuid:` or `urn:oid:`. `targets` are the resource types
/// the element may point at (empty: any); they are checked for relative references.
pub(crate) fn check(d: &Defs, r: &str, local: &[&str], targets: &[Box<str>]) -> Result<(), String> {
    if let Some(id) = r.strip_prefix('#') {
        if id.is_empty() || local.contains(&id) {
            return Ok(());
        }
        return Err(format!(
            "'{r}' does not match the id of any contained resource"
        ));
    }
    if let Some(u) = r.strip_prefix("urn:uuid:") {
        return if is_bare_uuid(u) {
            Ok(())
        } else {
            Err(format!(
                "'{r}' is not a valid urn:uuid: reference (expected a lower-case uuid)"
            ))
        };
    }
    if let Some(o) = r.strip_prefix("urn:oid:") {
        return if is_bare_oid(o) {
            Ok(())
        } else {
            Err(format!("'{r}' is not a valid urn:oid: reference"))
        };
    }
    if let Some(rest) = r
        .strip_prefix("http://")
        .or_else(|| r.strip_prefix("https://"))
    {
        return if !rest.is_empty() && !rest.starts_with('/') && !r.chars().any(char::is_whitespace)
        {
            Ok(())
        } else {
            Err(format!("'{r}' is not a valid absolute URL"))
        };
    }
    let mut parts = r.split('/');
    let (ty, id) = (parts.next().unwrap_or(""), parts.next());
    let history = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => true,
        (Some("_history"), Some(v), None) => is_valid_id(v),
        _ => false,
    };
    if !id.is_some_and(is_valid_id) || !history {
        return Err(format!(
            "'{r}' is not a valid reference: expected Type/id, an absolute URL, #id, urn:uuid: or urn:oid:"
        ));
    }
    if !d.is_resource_type(ty) {
        return Err(format!(
            "'{r}' is not a valid reference: '{ty}' is not a resource type"
        ));
    }
    if !targets.is_empty() && !targets.iter().any(|t| &**t == ty) {
        let allowed: Vec<&str> = targets.iter().map(|t| &**t).collect();
        return Err(format!(
            "'{r}' refers to a {ty}, but this element may only refer to {}",
            allowed.join(" | ")
        ));
    }
    Ok(())
}
