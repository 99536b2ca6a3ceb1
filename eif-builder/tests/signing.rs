//! Signing (PCR8): which keys and certificates are refused, and tampered signatures caught by the reader.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

mod common;

use ciborium::value::Value;
use common::*;
use eif_builder::crc32::Crc32;
use eif_builder::eif::{EifHeader, SectionHeader, SectionType};
use eif_builder::{Blob, EifBuilder, Error, Signer};

fn signer(cert: &str, key: &str) -> eif_builder::Result<Signer> {
    Signer::from_files(&data_dir().join(cert), &data_dir().join(key))
}

#[test]
fn p256_is_refused() {
    let err = signer("p256-cert.pem", "p256-key.sec1.pem").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "unsupported signing certificate: its key is on P-256; PCR8 signing supports P-384 only"
    );
    let err = signer("p384-cert.pem", "p256-key.sec1.pem").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported private key: it is a P-256 key; PCR8 signing supports P-384 only"
    );
}

#[test]
fn key_must_match_certificate() {
    let err = signer("p384-cert.pem", "p384-other-key.sec1.pem").unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "private key: does not match the signing certificate's public key"
    );
}

#[test]
fn not_pem_is_refused() {
    let err = Signer::from_pem(b"hello".to_vec(), b"world").unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed signing certificate: no PEM CERTIFICATE block"
    );
    let cert = std::fs::read(data_dir().join("p384-cert.pem")).unwrap();
    let err = Signer::from_pem(cert.clone(), b"").unwrap_err();
    assert!(err.to_string().contains("no PEM `PRIVATE KEY`"), "{err}");
    let err = Signer::from_pem(
        cert,
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}

fn signed_eif() -> Vec<u8> {
    let builder = EifBuilder::new(Blob::from(fake_kernel(3000, "6.1")), CMDLINE, identity())
        .ramdisk(Blob::from(ramdisk(0)))
        .signer(signer("p384-cert.pem", "p384-key.pkcs8.pem").unwrap());
    let mut out = std::io::Cursor::new(Vec::new());
    builder.write_to(&mut out).unwrap();
    out.into_inner()
}

/// Re-assembles an EIF from sections, with a correct header and CRC.
fn assemble(sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut header = EifHeader::new();
    header.num_sections = u16::try_from(sections.len()).unwrap();
    let mut offset = 548u64;
    for (i, (_, data)) in sections.iter().enumerate() {
        header.section_offsets[i] = offset;
        header.section_sizes[i] = u64::try_from(data.len()).unwrap();
        offset += 12 + header.section_sizes[i];
    }
    let mut body = Vec::new();
    for (kind, data) in sections {
        let kind = SectionType::from_code(*kind).unwrap();
        body.extend_from_slice(
            &SectionHeader::new(kind, u64::try_from(data.len()).unwrap()).to_bytes(),
        );
        body.extend_from_slice(data);
    }
    let mut crc = Crc32::new();
    crc.update(&header.to_bytes()[..544]);
    crc.update(&body);
    header.crc32 = crc.finish();
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn ints(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|&b| Value::Integer(b.into())).collect())
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| u8::try_from(i.as_integer().unwrap()).unwrap())
            .collect(),
        _ => panic!("not an int array"),
    }
}

/// Applies `change` to the COSE_Sign1 array inside the signature section.
fn tamper(eif: &[u8], change: impl Fn(&mut Vec<Value>)) -> Vec<u8> {
    let mut sections = sections_by_hand(eif);
    let sig = &mut sections.last_mut().unwrap().1;
    let mut list: Value = ciborium::from_reader(sig.as_slice()).unwrap();
    let Value::Array(items) = &mut list else {
        panic!()
    };
    let Value::Map(entry) = &mut items[0] else {
        panic!()
    };
    let cose_bytes = bytes_of(&entry[1].1);
    let Value::Array(mut cose) = ciborium::from_reader::<Value, _>(cose_bytes.as_slice()).unwrap()
    else {
        panic!()
    };
    change(&mut cose);
    entry[1].1 = ints(&cbor(&Value::Array(cose)));
    *sig = cbor(&list);
    assemble(&sections)
}

#[test]
fn reassembly_is_faithful() {
    let eif = signed_eif();
    assert_eq!(assemble(&sections_by_hand(&eif)), eif);
    assert_eq!(tamper(&eif, |_| {}), eif);
}

#[test]
fn tampered_signature_is_caught() {
    let eif = signed_eif();
    let bad = tamper(&eif, |cose| {
        let Value::Bytes(sig) = &mut cose[3] else {
            panic!()
        };
        sig[10] ^= 1;
    });
    let err = eif_builder::describe(bad.as_slice()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PCR signature mismatch: expected a COSE signature made by the signing certificate's key, found a signature that does not verify"
    );
    // describe_unverified still reports what is there.
    let d = eif_builder::describe_unverified(bad.as_slice()).unwrap();
    assert!(d.crc_ok());
    assert!(!d.signature.unwrap().signature_valid);
}

#[test]
fn signature_over_another_pcr0_is_caught() {
    // Sign an all-zero "PCR0" with the right key and put it in the image.
    let eif = signed_eif();
    let mut sections = sections_by_hand(&eif);
    let forged = signer("p384-cert.pem", "p384-key.sec1.pem")
        .unwrap()
        .signature_section(&[0u8; 48])
        .unwrap();
    sections.last_mut().unwrap().1 = forged;
    let bad = assemble(&sections);
    let err = eif_builder::describe(bad.as_slice()).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("signed PCR0 mismatch: expected "),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with(&format!("found {}", "00".repeat(48))),
        "{err}"
    );
}

#[test]
fn wrong_algorithm_header_is_caught() {
    let eif = signed_eif();
    let bad = tamper(&eif, |cose| {
        cose[0] = Value::Bytes(vec![0xa1, 0x01, 0x26]); // {1: -7}, ES256
    });
    assert!(eif_builder::describe(bad.as_slice()).is_err());
}
