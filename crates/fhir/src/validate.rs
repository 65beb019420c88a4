//! Validation of a resource against the R4 structure definitions. (Being written.)
use crate::Issue;
use serde_json::Value;

/// Checks `resource` (a parsed JSON body) against the R4 definitions; an empty list means valid.
pub fn validate(_resource: &Value) -> Vec<Issue> {
    Vec::new()
}
