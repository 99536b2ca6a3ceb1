//! The measurements file and the strict JSON reader under it: a value or an error for any
//! text; what parses writes back to a file that parses to the same thing.

#![no_main]

use contract::measurements::Measurements;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = contract::json::parse(text);
    if let Ok(m) = Measurements::parse(text) {
        let again = Measurements::parse(&m.to_json()).expect("what we write reads back");
        assert_eq!(again, m);
    }
    let _ = eif_builder::attest::ExpectedPcrs::from_measurements_json(text);
});
