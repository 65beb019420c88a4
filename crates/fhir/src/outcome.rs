//! OperationOutcome: how every error (and some warnings) is reported on the API.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The subset of the `issue-type` value set we report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    CodeInvalid,
    NotSupported,
    NotFound,
    Deleted,
    Conflict,
    Duplicate,
    TooLong,
    Processing,
    Security,
    Login,
    Forbidden,
    Exception,
    Informational,
    /// Temporary: try again (a busy database).
    Transient,
    /// A search over the server's limits.
    TooCostly,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::Duplicate => "duplicate",
            IssueType::TooLong => "too-long",
            IssueType::Processing => "processing",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::Exception => "exception",
            IssueType::Informational => "informational",
            IssueType::Transient => "transient",
            IssueType::TooCostly => "too-costly",
        }
    }
}

/// One problem found, located by a FHIRPath-style expression such as
/// `Patient.name[0].given[1]` (empty when the problem is with the request, not an element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub expression: String,
    pub diagnostics: String,
}

impl Issue {
    pub fn error(
        code: IssueType,
        expression: impl Into<String>,
        diagnostics: impl Into<String>,
    ) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            expression: expression.into(),
            diagnostics: diagnostics.into(),
        }
    }

    pub fn warning(
        code: IssueType,
        expression: impl Into<String>,
        diagnostics: impl Into<String>,
    ) -> Self {
        Issue {
            severity: Severity::Warning,
            code,
            expression: expression.into(),
            diagnostics: diagnostics.into(),
        }
    }

    pub fn information(diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            expression: String::new(),
            diagnostics: diagnostics.into(),
        }
    }
}

/// An `OperationOutcome` resource holding `issues`. FHIR JSON has no empty strings or
/// arrays, so an empty expression or diagnostics is left out, and with no issues at all
/// the outcome says "informational" (`issue` is required).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let mut issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "severity": i.severity.code(),
                "code": i.code.code(),
            });
            if !i.diagnostics.is_empty() {
                v["diagnostics"] = json!(i.diagnostics);
            }
            if !i.expression.is_empty() {
                v["expression"] = json!([i.expression]);
            }
            v
        })
        .collect();
    if issues.is_empty() {
        issues.push(json!({ "severity": "information", "code": "informational" }));
    }
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_empty_strings_or_arrays() {
        let oo = operation_outcome(&[Issue::information(""), Issue::information("done")]);
        assert_eq!(
            oo,
            json!({ "resourceType": "OperationOutcome", "issue": [
                { "severity": "information", "code": "informational" },
                { "severity": "information", "code": "informational", "diagnostics": "done" },
            ]})
        );
        assert_eq!(
            operation_outcome(&[])["issue"],
            json!([{ "severity": "information", "code": "informational" }])
        );
    }
}
