//! The attest client's reading of an HTTP response head from an untrusted server: a status and
//! a length, or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = eif_builder::attest::client::parse_head(data) {
        assert!((100..=599).contains(&head.status), "{}", head.status);
    }
});
