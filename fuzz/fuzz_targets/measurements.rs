//! contract's text files: the measurements file (one image or a list of accepted ones) and the
//! strict JSON reader under it, and the processes file. A value or an error for any text; what parses writes back to a file that
//! parses to the same thing.

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
    if let Ok(list) = contract::processes::parse(text) {
        let again = contract::processes::write(&list).expect("what parses writes");
        assert_eq!(contract::processes::parse(&again).expect("and reads back"), list);
    }
    if let Ok(list) = contract::measurements::parse_accepted(text) {
        assert!((1..=contract::measurements::MAX_ACCEPTED).contains(&list.len()));
    }
    let _ = eif_builder::attest::ExpectedPcrs::from_measurements_json(text);
});
