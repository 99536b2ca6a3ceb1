//! Parsing genuine Nitro attestation documents (tests/data/attestation, provenance in its
//! README): every field the NSM wrote comes back as the fixtures' manifest lists it, including
//! the edge cases (an indefinite-length payload map, 17 PCRs, optional fields as CBOR null),
//! and a truncated document is refused with an error, not a panic.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test file is its own test crate; its tests need no module"
)]

use eif_builder::attest::parse_unverified;
use eif_builder::measure::hex;

struct Expected {
    file: &'static str,
    module_id: &'static str,
    timestamp: u64,
    pcr_count: usize,
    pcr0: &'static str,
    pcr1: &'static str,
    pcr2: &'static str,
    nonce_len: Option<usize>,
    user_data_len: Option<usize>,
    public_key_len: Option<usize>,
    cabundle_len: usize,
}

const DOCS: &[Expected] = &[
    Expected {
        file: "anjuna-1.cbor",
        module_id: "i-078824548edcf6519-enc01784234ec227b58",
        timestamp: 1616018515685,
        pcr_count: 16,
        pcr0: "2d151586641b790f3b1b92b8f89678c3aa86e73dd97969c892124be9d2b7fdc62b58a55cd9ee8216f6f5689cebf590ad",
        pcr1: "72d70b1f599a4af7213e2d243e4212a3643ebb4990b78b5218680f6fdec94185721c44e2b6858a452ca0523be521dbf6",
        pcr2: "495538508e34260a18288bdc448b99e8dd446910ebc7ff41e3f8491620a220c383dd291eaf0a5e14e018da3616265da9",
        nonce_len: None,
        user_data_len: None,
        public_key_len: None,
        cabundle_len: 4,
    },
    Expected {
        file: "base-1.cbor",
        module_id: "i-0368fa67e156d6d23-enc019b8596b1a9dad6",
        timestamp: 1767472867402,
        pcr_count: 16,
        pcr0: "4b8d4cf2a99e05ce1b5bddaf9d21cb446eb0e606c5bebd1ebf02b473a22165f7b68b0bb0d1ac5a90f0311e493522cfab",
        pcr1: "0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa",
        pcr2: "16efcc1d6952c5b9737eb2ab1751a08412835c5125818bfb55f6367cb3cdca49b13d2a5b6d771de9db1578242e328c6d",
        nonce_len: None,
        user_data_len: Some(20),
        public_key_len: None,
        cabundle_len: 4,
    },
    Expected {
        file: "evervault-1.cbor",
        module_id: "i-020b6af9246d90e92-enc0183d09086c24190",
        timestamp: 1665651482136,
        pcr_count: 16,
        pcr0: "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b",
        pcr1: "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f",
        pcr2: "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a",
        nonce_len: Some(256),
        user_data_len: None,
        public_key_len: None,
        cabundle_len: 4,
    },
    Expected {
        file: "marlin-1.cbor",
        module_id: "i-07859a25773d39fcc-enc01968119042c6454",
        timestamp: 1745922759691,
        pcr_count: 17,
        pcr0: "2984ab215649c40ffe8f8b80cfadee47f1b06760f7d9257981f64b2758c347fafa6c733591b25e75ae7e9d1cb86ad5df",
        pcr1: "ed7759aa996a2e94c6086f24f61f354f75f9ea7f93a74f55d65c2cb5590d1af3930c9adbc57bb543764fa1f5c444f495",
        pcr2: "27216d3fbedb900be4bdbdb2d5be27b9e8254989e123aaa97f24d1b0fd1016d001323eb9d09a9d25e8e1e1298d68e9c6",
        nonce_len: None,
        user_data_len: Some(0),
        public_key_len: Some(32),
        cabundle_len: 4,
    },
    Expected {
        file: "nitro-attest-1.cbor",
        module_id: "i-0bee92034f3d60691-enc01943c5eaab3ad6a",
        timestamp: 1736179625472,
        pcr_count: 16,
        pcr0: "8bb159f202bb95d6d4d98e0e103918246cea734f1d57cd263e4fd56075ed53f6fa8c68854817a32749a241e11874c26b",
        pcr1: "3b4a7e1b5f13c5a1000b3ed32ef8995ee13e9876329f9bc72650b918329ef9cf4e2e4d1e1e37375dab0ba56ba0974d03",
        pcr2: "f4e86b12ad3df5f9fea962ff706c23ee190b463740a32f1a679a3cd1070a7731ddd83328fe3db5e8143ea94344b6fb95",
        nonce_len: None,
        user_data_len: None,
        public_key_len: Some(294),
        cabundle_len: 4,
    },
];

fn read(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/attestation")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn genuine_documents_parse_to_their_manifest_values() {
    for want in DOCS {
        let doc =
            parse_unverified(&read(want.file)).unwrap_or_else(|e| panic!("{}: {e}", want.file));
        assert_eq!(doc.algorithm, -35, "{}: ES384", want.file);
        assert_eq!(doc.module_id, want.module_id, "{}", want.file);
        assert_eq!(doc.timestamp, want.timestamp, "{}", want.file);
        assert_eq!(doc.digest, "SHA384", "{}", want.file);
        assert_eq!(doc.pcrs.len(), want.pcr_count, "{}", want.file);
        assert_eq!(hex(&doc.pcrs[&0]), want.pcr0, "{}", want.file);
        assert_eq!(hex(&doc.pcrs[&1]), want.pcr1, "{}", want.file);
        assert_eq!(hex(&doc.pcrs[&2]), want.pcr2, "{}", want.file);
        assert_eq!(
            doc.nonce.as_ref().map(Vec::len),
            want.nonce_len,
            "{}: nonce",
            want.file
        );
        assert_eq!(
            doc.user_data.as_ref().map(Vec::len),
            want.user_data_len,
            "{}: user_data",
            want.file
        );
        assert_eq!(
            doc.public_key.as_ref().map(Vec::len),
            want.public_key_len,
            "{}: public_key",
            want.file
        );
        assert_eq!(doc.cabundle.len(), want.cabundle_len, "{}", want.file);
        assert_eq!(doc.signature.len(), 96, "{}: ES384 r||s", want.file);
    }
}

#[test]
fn a_truncated_document_is_an_error() {
    let e = parse_unverified(&read("tampered-truncated.cbor")).unwrap_err();
    assert!(e.to_string().contains("CBOR"), "{e}");
}

#[test]
fn the_cli_prints_pcrs_and_refuses_garbage() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/attestation");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eif-builder"))
        .arg("inspect-attestation")
        .arg(dir.join("evervault-1.cbor"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"verified\": false"), "{text}");
    assert!(text.contains(&format!(
        "\"PCR0\": \"{}\"",
        DOCS.iter()
            .find(|d| d.file == "evervault-1.cbor")
            .unwrap()
            .pcr0
    )));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eif-builder"))
        .arg("inspect-attestation")
        .arg(dir.join("tampered-truncated.cbor"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
