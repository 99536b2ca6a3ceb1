//! The server's own identity when no certificate is given: an ECDSA P-256 key pair generated at
//! start by aws-lc-rs (seeded from the kernel's RNG, which init fed from the NSM) and a
//! self-signed X.509 v3 certificate for it, written here in DER.
//!
//! Why not rcgen: the certificate is one fixed shape (about 60 lines of DER below), while rcgen
//! brings `yasna`, `time` and a PEM layer into the enclave image for features we do not use.
//! The output is checked in tests by verifying its signature with aws-lc-rs and by openssl in
//! the integration tests.
//! (Reading certificates is `contract::der`'s job.)

use crate::error::{Error, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The subject and issuer common name of generated certificates.
pub const COMMON_NAME: &str = "enclave-https";

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: tag, definite length, contents.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len.to_be_bytes().last().copied().unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len().to_be_bytes().last().copied().unwrap_or(0));
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A positive INTEGER from big-endian bytes.
fn integer(be: &[u8]) -> Vec<u8> {
    let skip = be
        .iter()
        .take_while(|&&b| b == 0)
        .count()
        .min(be.len().saturating_sub(1));
    let mut v = be.get(skip..).unwrap_or_default().to_vec();
    if v.first().is_some_and(|&b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(0);
    v.extend_from_slice(bytes);
    tlv(0x03, &v)
}

fn name(cn: &str) -> Vec<u8> {
    let atv = seq(&[&tlv(0x06, OID_COMMON_NAME), &tlv(0x0c, cn.as_bytes())]);
    seq(&[&tlv(0x31, &atv)])
}

/// The DER SubjectPublicKeyInfo of an uncompressed P-256 point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    seq(&[
        &seq(&[&tlv(0x06, OID_EC_PUBLIC_KEY), &tlv(0x06, OID_P256)]),
        &bit_string(point),
    ])
}

/// A generated identity: the certificate and the PKCS#8 private key, both DER.
pub struct Generated {
    /// The self-signed certificate.
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8 v1), wiped when dropped.
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated")
            .field("cert_der", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// Generates a P-256 key pair and a self-signed certificate for it: CN=enclave-https, SAN
/// `localhost` and `127.0.0.1`, valid from 2025-01-01 to 9999-12-31 (the enclave's clock is not
/// trusted and the certificate is bound to the attestation, not to a validity window), random
/// 127-bit serial number.
pub fn generate() -> Result<Generated> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| Error::KeyGen("P-256 key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| Error::KeyGen("the generated key did not load"))?;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::KeyGen("no random serial number"))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x40; // never leading zeros: fixed-length encoding

    let sig_alg = seq(&[&tlv(0x06, OID_ECDSA_SHA256)]);
    let validity = seq(&[&tlv(0x17, b"250101000000Z"), &tlv(0x18, b"99991231235959Z")]);
    let san = seq(&[&tlv(0x82, b"localhost"), &tlv(0x87, &[127, 0, 0, 1])]);
    let extensions = tlv(
        0xa3,
        &seq(&[&seq(&[&tlv(0x06, OID_SUBJECT_ALT_NAME), &tlv(0x04, &san)])]),
    );
    let tbs = seq(&[
        &tlv(0xa0, &integer(&[2])),
        &integer(&serial),
        &sig_alg,
        &name(COMMON_NAME),
        &validity,
        &name(COMMON_NAME),
        &p256_spki(key.public_key().as_ref()),
        &extensions,
    ]);
    let sig = key
        .sign(&rng, &tbs)
        .map_err(|_| Error::KeyGen("signing the certificate failed"))?;
    let cert_der = seq(&[&tbs, &sig_alg, &bit_string(sig.as_ref())]);
    Ok(Generated {
        cert_der,
        key_pkcs8: zeroize::Zeroizing::new(pkcs8.as_ref().to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

    #[test]
    fn lengths_are_der() {
        assert_eq!(tlv(0x04, &[0; 3]).get(..2), Some(&[0x04, 3][..]));
        assert_eq!(tlv(0x04, &[0; 200]).get(..3), Some(&[0x04, 0x81, 200][..]));
        assert_eq!(
            tlv(0x04, &[0; 300]).get(..4),
            Some(&[0x04, 0x82, 1, 44][..])
        );
        assert_eq!(integer(&[0, 0, 5]), vec![2, 1, 5]);
        assert_eq!(integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(integer(&[0]), vec![2, 1, 0]);
    }

    #[test]
    fn generated_certificate_is_self_signed_and_its_key_is_found() {
        let g = generate().unwrap();
        let spki = contract::der::spki(&g.cert_der).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &g.key_pkcs8).unwrap();
        assert_eq!(spki, p256_spki(key.public_key().as_ref()).as_slice());
        assert_eq!(spki.len(), 91);
        // Certificate = SEQ { tbs, alg, BIT STRING sig }: verify sig over tbs with the key.
        let mut outer = contract::der::Der::new(&g.cert_der);
        let mut cert = contract::der::Der::new(outer.read().unwrap().value);
        let tbs = cert.read().unwrap();
        let _alg = cert.read().unwrap();
        let sig = cert.read().unwrap();
        assert_eq!(sig.tag, 0x03);
        assert!(cert.is_empty() && outer.is_empty());
        let (tbs, sig) = (tbs.raw, sig.value);
        let point = spki.get(spki.len() - 65..).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(tbs, sig.get(1..).unwrap())
            .unwrap();
        // Two generations never share a key or a serial.
        let h = generate().unwrap();
        assert_ne!(g.cert_der, h.cert_der);
    }
}
