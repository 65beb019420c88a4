//! Conditions: the criteria of a conditional create, update or delete (`If-None-Exist`,
//! `?criteria`), evaluated inside the caller's view, and the in-transaction re-check that
//! stops two racing conditional creates from both creating. Used by the plain interactions
//! ([`super::crud`]) and the conditional ones ([`super::conditional`]).

use domain::types::{SystemMatch, TokenCriterion};

use super::search;
use crate::authz::Guard;
use crate::error::{ApiError, ApiResult};

/// Parameters that shape a result rather than select resources: not criteria.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_include:iterate",
    "_revinclude",
    "_revinclude:iterate",
    "_summary",
    "_elements",
    "_total",
    "_cursor",
    "_before",
    "_contained",
    "_containedType",
];

/// A condition's query as `(name, value)` pairs (`identifier=sys|val&_id=x`; a leading
/// `Type?` or `?` is allowed), without `_format`. `what` names the condition in error
/// messages (e.g. "If-None-Exist"). 400 for an empty condition or a result parameter;
/// whether the parameters exist is for the search to say.
pub fn criteria(query: &str, what: &str) -> ApiResult<Vec<(String, String)>> {
    let query = query.trim_start_matches('?');
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let mut out = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "_format" || name == "_pretty" {
            continue;
        }
        if RESULT_PARAMS.contains(&name.as_ref()) {
            return Err(ApiError::bad_request(
                "",
                format!("{what}: '{name}' is not a search criterion"),
            ));
        }
        out.push((name.into_owned(), value.into_owned()));
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "",
            format!("{what}: the condition is empty"),
        ));
    }
    Ok(out)
}

/// The criteria as tokens the store re-checks inside a create's transaction, when every
/// criterion is `identifier` or `_id` with one `[system|]code` value; `None` otherwise (the
/// condition is then only a search before the write: see the module documentation).
pub fn race_check(criteria: &[(String, String)]) -> Option<Vec<TokenCriterion>> {
    let mut out = Vec::new();
    for (name, value) in criteria {
        if name != "identifier" && name != "_id" {
            return None;
        }
        if value.contains([',', '\\']) {
            return None;
        }
        let (system, code) = match value.split_once('|') {
            None => (SystemMatch::Any, value.clone()),
            Some(("", code)) => (SystemMatch::Absent, code.to_owned()),
            Some((system, code)) => (SystemMatch::Is(system.to_owned()), code.to_owned()),
        };
        if code.is_empty() {
            return None;
        }
        out.push(TokenCriterion {
            param: name.clone(),
            system,
            code,
        });
    }
    Some(out)
}

/// Most matches of a condition looked at to find those the caller may see.
pub const VISIBLE_SCAN: usize = 1000;

/// The matches of a condition, as the caller sees them.
pub struct Matches {
    /// Those the caller may see (at most [`VISIBLE_SCAN`] looked at).
    pub visible: Vec<String>,
    /// Some matches were hidden from the caller.
    pub hidden: bool,
}

/// Evaluates a condition for the caller: matches they may not see play no part — the
/// search runs inside the caller's view, so hidden resources neither match nor help
/// anything else match. `hidden` says whether a resource the caller cannot see has the
/// same identifier (only for conditions made of identifier / `_id` tokens: what the
/// store re-checks inside a create's transaction, and what one-passport-per-child needs).
/// `excluded`: resources to leave out (those a transaction deletes).
pub async fn visible_matches(
    guard: &mut Guard<'_>,
    resource_type: &str,
    criteria: &[(String, String)],
    excluded: &std::collections::HashSet<(String, String)>,
) -> ApiResult<Matches> {
    let ids = search::matching_ids(guard, resource_type, criteria, VISIBLE_SCAN).await?;
    let mut m = Matches {
        visible: Vec::new(),
        hidden: false,
    };
    for id in ids {
        if excluded.contains(&(resource_type.to_owned(), id.clone())) {
            continue;
        }
        let Some(s) = guard
            .st
            .domain
            .records()
            .read(resource_type, &id)
            .await?
            .filter(|s| !s.deleted)
        else {
            continue;
        };
        if guard
            .readable(access::Action::Search, &s.body)
            .await?
            .is_some()
        {
            m.visible.push(id);
        }
    }
    if let Some(tokens) = race_check(criteria).filter(|t| !t.is_empty()) {
        m.hidden = guard
            .st
            .domain
            .records()
            .find_by_tokens(resource_type, &tokens)
            .await?
            .into_iter()
            .any(|id| {
                !m.visible.contains(&id)
                    && !excluded.contains(&(resource_type.to_owned(), id.clone()))
            });
    }
    Ok(m)
}

/// The one deliberate exception to "hidden matches play no part": a passport (Patient)
/// the caller cannot see that matches their condition (in practice its NHS Number). One
/// passport per child is the point of Passport, so a second one is refused, saying only
/// that one exists — never whose or where. The refusal is audited like any request.
///
/// Only for callers whose role may create passports ([`Guard::may_create_passport`]):
/// to anyone else (a school's system, a family's app) the hidden match plays no part, so
/// a used NHS Number gets exactly the answer an unused one gets.
pub fn refuse_hidden_passport(
    guard: &Guard<'_>,
    resource_type: &str,
    m: &Matches,
) -> ApiResult<()> {
    if resource_type == "Patient" && m.hidden && m.visible.is_empty() && guard.may_create_passport()
    {
        return Err(ApiError::Conflict(
            "a passport for this child already exists; ask the child's care team to add you to it"
                .into(),
        ));
    }
    Ok(())
}

/// "1000 or more" when the search stopped at its limit ([`VISIBLE_SCAN`]).
pub fn several(n: usize) -> String {
    if n >= VISIBLE_SCAN {
        format!("{n} or more")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let c = criteria(
            "identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number|9990000018",
            "t",
        )
        .unwrap();
        let t = race_check(&c).unwrap();
        assert_eq!(
            t[0].system,
            SystemMatch::Is("https://fhir.nhs.uk/Id/nhs-number".into())
        );
        assert_eq!(t[0].code, "9990000018");
        let c = criteria("Patient?identifier=|x&_id=y&_format=json", "t").unwrap();
        assert_eq!(c.len(), 2);
        let t = race_check(&c).unwrap();
        assert_eq!(t[0].system, SystemMatch::Absent);
        assert_eq!(t[1].param, "_id");
        // Other criteria are searched, without an in-transaction re-check.
        let c = criteria("family=smith&birthdate=2019-01-01", "t").unwrap();
        assert!(race_check(&c).is_none());
        assert!(race_check(&criteria("identifier=a,b", "t").unwrap()).is_none());
        assert!(race_check(&criteria("identifier:not=a", "t").unwrap()).is_none());
        assert!(criteria("", "t").is_err());
        assert!(criteria("_format=json", "t").is_err());
        assert!(criteria("name=x&_count=1", "t").is_err());
    }
}
