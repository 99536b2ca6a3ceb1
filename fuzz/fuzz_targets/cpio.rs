//! The cpio reader on untrusted bytes, and the cpio list parser on untrusted text: entries or
//! an error, never a panic.

#![no_main]

use eif_builder::cpio::list::parse_list;
use eif_builder::cpio::reader::read_cpio;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = read_cpio(data) {
        for e in &entries {
            assert!(e.data.len() <= data.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let defines = BTreeMap::from([("ROOT".to_owned(), "/r".to_owned())]);
        let _ = parse_list(text, Path::new("fuzz.list"), Path::new("/base"), &defines);
    }
});
