//! The EIF reader on untrusted bytes: `describe_unverified` and `describe` (CRC, PCRs, the
//! signature) must return a description or an error, never panic or allocate by a length the
//! input claims.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = eif_builder::describe_unverified(data) {
        // What the unverified reader accepted, the verifying one reads too (or refuses).
        let _ = d.sections.len();
        let _ = eif_builder::describe(data);
    }
});
