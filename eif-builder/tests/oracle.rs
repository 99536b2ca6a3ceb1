//! Our EIF writer against AWS's own crate (the oracle): same bytes, same PCRs, signatures each side accepts.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

mod common;

use std::fs::File;
use std::path::Path;

use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use aws_nitro_enclaves_image_format::utils::{
    EifBuilder as AwsBuilder, PcrSignatureChecker, SignKeyData,
};
use common::*;
use eif_builder::measure::hex as hexs;
use eif_builder::{Blob, EifBuilder, Signer};

/// PCR2 of any image with a single ramdisk.
const PCR2_ONE_RAMDISK: &str = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a";

fn oracle_build(
    dir: &Path,
    inputs: &Inputs,
    sign: Option<SignKeyData>,
) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
    let mut builder = AwsBuilder::new(
        &inputs.kernel,
        CMDLINE.to_string(),
        sign,
        sha2::Sha384::default(),
        0,
        oracle_identity(&identity()),
    );
    for r in &inputs.ramdisks {
        builder.add_ramdisk(r);
    }
    let path = dir.join("oracle.eif");
    let mut out = File::create(&path).unwrap();
    let measurements = builder.write_to(&mut out);
    drop(out);
    (std::fs::read(&path).unwrap(), measurements)
}

fn ours(inputs: &Inputs, signer: Option<Signer>) -> (Vec<u8>, eif_builder::Measurements) {
    let mut builder = EifBuilder::new(Blob::from(inputs.kernel.as_path()), CMDLINE, identity());
    for r in &inputs.ramdisks {
        builder = builder.ramdisk(Blob::from(r.as_path()));
    }
    if let Some(signer) = signer {
        builder = builder.signer(signer);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    let m = builder.write_to(&mut out).unwrap();
    (out.into_inner(), m)
}

/// The PCR entries of a measurements map. `HashAlgorithm` is left out: the oracle prints the
/// `Debug` text of whatever sha2 it was built with (`Sha512_48 { .. }` with sha2 0.10.9), while
/// we print the `Sha384 { ... }` that nitro-cli releases print and AWS's documentation shows.
fn pcrs(map: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter()
        .filter(|(k, _)| k.starts_with("PCR"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn same_as_oracle(ramdisk_count: u8) {
    let dir = tempfile::tempdir().unwrap();
    let ramdisks: Vec<Vec<u8>> = (0..ramdisk_count).map(ramdisk).collect();
    let inputs = write_inputs(dir.path(), &fake_kernel(100_003, "6.12.117"), &ramdisks);
    let (theirs, their_pcrs) = oracle_build(dir.path(), &inputs, None);
    let (mine, my_pcrs) = ours(&inputs, None);
    assert_eq!(mine.len(), theirs.len());
    assert!(
        mine == theirs,
        "EIF bytes differ from the oracle's with {ramdisk_count} ramdisk(s)"
    );
    assert_eq!(pcrs(&my_pcrs.to_map()), pcrs(&their_pcrs));

    // An independent computation from the section bytes, with sha2.
    let (p0, p1, p2) = independent_pcrs(&mine);
    assert_eq!(hexs(&my_pcrs.pcr0), p0);
    assert_eq!(hexs(&my_pcrs.pcr1), p1);
    assert_eq!(hexs(&my_pcrs.pcr2), p2);
    if ramdisk_count == 1 {
        assert_eq!(hexs(&my_pcrs.pcr2), PCR2_ONE_RAMDISK);
    }

    // Our reader agrees too.
    let described = eif_builder::describe(theirs.as_slice()).unwrap();
    assert_eq!(described.measurements, my_pcrs);
    assert_eq!(described.identity, Some(identity()));
}

#[test]
fn one_ramdisk_matches_oracle() {
    same_as_oracle(1);
}

#[test]
fn two_ramdisks_match_oracle() {
    same_as_oracle(2);
}

#[test]
fn three_ramdisks_match_oracle() {
    same_as_oracle(3);
}

#[test]
fn pcr2_with_one_ramdisk_is_the_empty_extend() {
    let m = eif_builder::measure::ImageMeasurer::new().finish(None);
    assert_eq!(hexs(&m.pcr2), PCR2_ONE_RAMDISK);
    assert_eq!(independent_pcr(&[]), PCR2_ONE_RAMDISK);
}

fn p384_signer() -> Signer {
    Signer::from_files(
        &data_dir().join("p384-cert.pem"),
        &data_dir().join("p384-key.sec1.pem"),
    )
    .unwrap()
}

#[test]
fn signed_image_is_accepted_by_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(
        dir.path(),
        &fake_kernel(50_000, "6.1.0"),
        &[ramdisk(0), ramdisk(1)],
    );
    let (mine, my_pcrs) = ours(&inputs, Some(p384_signer()));
    let path = dir.path().join("signed.eif");
    std::fs::write(&path, &mine).unwrap();

    let mut reader = EifReader::from_eif(path.to_str().unwrap().to_string()).unwrap();
    assert!(reader.check_crc(), "oracle computes a different CRC");
    let their_pcrs = reader.get_measurements().unwrap();
    assert_eq!(pcrs(&my_pcrs.to_map()), pcrs(&their_pcrs));
    assert!(their_pcrs.contains_key("PCR8"));
    reader.get_certificate_info(their_pcrs).unwrap();
    assert_eq!(
        reader.sign_check,
        Some(true),
        "oracle: signed payload is not our PCR0"
    );

    let mut checker = PcrSignatureChecker::from_eif(path.to_str().unwrap()).unwrap();
    assert!(!checker.is_empty());
    checker.verify().unwrap();

    // The oracle, signing the same inputs with the same key, gets the same PCRs (PCR8 included);
    // only the ECDSA signature bytes differ (they are randomized).
    let key = data_dir().join("p384-key.sec1.pem");
    let sign = SignKeyData::new(key.to_str().unwrap(), &data_dir().join("p384-cert.pem")).unwrap();
    let (theirs, their_build_pcrs) = oracle_build(dir.path(), &inputs, Some(sign));
    assert_eq!(pcrs(&my_pcrs.to_map()), pcrs(&their_build_pcrs));
    // Everything before the signature section is identical; the section's length varies with
    // the signature's bytes (each is a CBOR integer of 1 or 2 bytes).
    let sig_start = mine.len() - sections_by_hand(&mine).last().unwrap().1.len() - 12;
    assert!(theirs[548..sig_start] == mine[548..sig_start]);
    assert_eq!(theirs[..284], mine[..284], "header up to the size table");

    // And our reader accepts the oracle's signed image.
    let described = eif_builder::describe(theirs.as_slice()).unwrap();
    assert_eq!(described.measurements, my_pcrs);
    assert!(described.signature.unwrap().signature_valid);
}

#[test]
fn pkcs8_and_sec1_keys_sign_alike() {
    let a = p384_signer();
    let b = Signer::from_files(
        &data_dir().join("p384-cert.pem"),
        &data_dir().join("p384-key.pkcs8.pem"),
    )
    .unwrap();
    assert_eq!(a.certificate_der(), b.certificate_der());
}
