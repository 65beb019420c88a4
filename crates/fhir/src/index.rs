//! Values extracted from a resource at write time so it can be found again without
//! parsing stored bodies. For now: the `identifier` token, which conditional create
//! (`If-None-Exist`) needs; the search issue generalises this to every SearchParameter.

use serde_json::Value;

/// One token index entry: `param=system|code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub param: &'static str,
    pub system: Option<String>,
    pub code: String,
}

/// Tokens for the resource's `_id` and its top-level `identifier` (one Identifier or a
/// list of them).
pub fn tokens(resource: &Value) -> Vec<Token> {
    let mut out = Vec::new();
    if let Some(id) = resource.get("id").and_then(Value::as_str) {
        out.push(Token {
            param: "_id",
            system: None,
            code: id.to_owned(),
        });
    }
    let idents: Vec<&Value> = match resource.get("identifier") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => vec![],
    };
    for ident in idents {
        if let Some(code) = ident.get("value").and_then(Value::as_str) {
            out.push(Token {
                param: "identifier",
                system: ident
                    .get("system")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                code: code.to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_tokens() {
        let v: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"p","identifier":[{"system":"s","value":"1"},{"value":"2"},{"system":"x"}]}"#,
        )
        .unwrap();
        let t = tokens(&v);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].param, t[0].code.as_str()), ("_id", "p"));
        assert_eq!(t[1].system.as_deref(), Some("s"));
        assert_eq!(t[2].system, None);
        assert_eq!(t[2].code, "2");
    }
}
