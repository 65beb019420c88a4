//! Enforcement: every `/fhir` request is made by someone ([`authenticate`] turns its bearer
//! token into a [`Caller`]), about some child ([`facts`] loads what the decision needs to
//! know about the child), and every resource it reads or writes passes `access::decide`
//! ([`Guard`]).
//!
//! A refused *read* answers exactly as if the resource did not exist (404, or absent from
//! a Bundle), so status codes, totals and error bodies reveal nothing. A refused *write* of
//! something the caller may see is a 403.

pub mod audit;
pub mod authenticate;
mod guard;

pub use authenticate::{Caller, TokenCache};
pub use domain::{facts, views};
pub use facts::FactsCache;
pub use guard::{Guard, may_touch, not_found};
pub use views::{CallerViews, access_inputs};

/// The enforcement state shared by every request (child facts, caller views and the
/// regional policy are the domain's: `Domain::{facts, views, policy}`).
#[derive(Default)]
pub struct Authz {
    pub tokens: TokenCache,
}
