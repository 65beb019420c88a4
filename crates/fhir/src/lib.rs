//! FHIR R4 for Passport.
//!
//! Everything a passport holds is FHIR R4 JSON. This crate knows the shape of that JSON
//! (HL7's structure definitions, carried as data in `data/`), checks resources against it,
//! and builds the `OperationOutcome`s every error is reported with. It does no I/O.

pub mod defs;
pub mod index;
pub mod meta;
pub mod mutation;
pub mod nhs_number;
pub mod outcome;
pub mod types;
pub mod validate;

pub use outcome::{Issue, IssueType, Severity};
pub use validate::validate;
