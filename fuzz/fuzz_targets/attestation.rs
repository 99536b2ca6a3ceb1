//! Attestation documents from untrusted bytes: the unverified parse, and `verify` under a
//! strict policy and under the emulator's: a verdict or an error, never a panic; and nothing
//! unsigned ever verifies under the strict policy.

#![no_main]

use eif_builder::attest::{self, Bound, ExpectedPcrs, Policy};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MEASUREMENTS: &str = r#"{"Measurements": {"HashAlgorithm": "Sha384 { ... }",
"PCR0": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
"PCR1": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
"PCR2": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}}"#;

fn root() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| attest::aws_root_der().expect("the pinned root"))
}

fuzz_target!(|data: &[u8]| {
    let _ = attest::parse_unverified(data);
    let expected = ExpectedPcrs::from_measurements_json(MEASUREMENTS).expect("measurements");
    let cert = data.get(4..64).unwrap_or_default();
    for (emulator, debug, binding) in [
        (false, false, Bound::Endpoint(cert)),
        (
            true,
            true,
            Bound::InCertificate {
                certificate: cert,
                max_age_secs: Some(60),
            },
        ),
        (true, false, Bound::Nitriding(cert)),
    ] {
        let policy = Policy {
            root_der: root(),
            at_unix_secs: 1_700_000_000,
            expected: &expected,
            nonce: data.get(..4),
            binding,
            allow_debug: debug,
            insecure_emulator: emulator,
        };
        if let Ok(v) = attest::verify(data, &policy) {
            // Only the emulator's unsigned documents can pass without a real signature, and a
            // fuzzer cannot forge an AWS-signed one.
            assert!(emulator && !v.signature_checked);
        }
    }
});
