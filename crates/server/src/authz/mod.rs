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

pub use authenticate::TokenCache;
pub use domain::guard::{Caller, Refused, may_touch};
pub use domain::{facts, views};
pub use facts::FactsCache;
pub use views::{CallerViews, access_inputs};

use crate::AppState;
use crate::error::ApiError;

/// The API's guard: the domain's [`domain::guard::Guard`] (the decision, the child facts,
/// the children touched) with the server's state beside it (its configuration and page
/// sealer), so an interaction takes one thing.
pub struct Guard<'a> {
    pub st: &'a AppState,
    guard: domain::guard::Guard<'a>,
}

impl<'a> Guard<'a> {
    pub fn new(st: &'a AppState, caller: &'a Caller) -> Guard<'a> {
        Guard {
            st,
            guard: domain::guard::Guard::new(&st.domain, caller),
        }
    }
}

impl<'a> std::ops::Deref for Guard<'a> {
    type Target = domain::guard::Guard<'a>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

/// What a refused read looks like to the API: exactly what a missing resource looks like
/// (the one not-found of the API).
pub fn not_found(resource_type: &str, id: &str) -> ApiError {
    domain::guard::not_found(resource_type, id).into()
}

/// The enforcement state shared by every request (child facts, caller views and the
/// regional policy are the domain's: `Domain::{facts, views, policy}`).
#[derive(Default)]
pub struct Authz {
    pub tokens: TokenCache,
}
