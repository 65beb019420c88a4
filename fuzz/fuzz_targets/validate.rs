//! Any bytes that parse as JSON must validate (and generate mutants) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = fhir::validate(&v);
        let _ = fhir::mutation::mutants(&v);
    }
});
