//! PEM and DER from untrusted bytes: eif-builder's PEM reader (signing certificates and keys)
//! and contract's DER reader (certificates' keys, validity and extensions, the attestation
//! binding, the attestation document a certificate carries).

#![no_main]

use contract::der;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blocks) = eif_builder::sign::pem::parse(data) {
        for b in &blocks {
            let _ = der::certificate(&b.der);
        }
    }
    if let Ok(c) = der::certificate(data) {
        let _ = der::ec_public_key(c.spki);
        let _ = c.validity();
        let _ = c.extension(contract::cert_attestation::OID);
    }
    if let Ok(Some(doc)) = contract::cert_attestation::document(data) {
        assert!(!doc.is_empty() && doc.len() <= contract::cert_attestation::MAX_DOCUMENT);
    }
    let _ = der::certificate_ec_key(data);
    let _ = contract::binding::Binding::of_certificate(data, |_| [0; 32]);
    let mut d = der::Der::new(data);
    while d.read().is_ok() {}
});
