//! The server's own identity when no certificate is given: an ECDSA P-256 key pair generated at
//! start by aws-lc-rs (seeded from the kernel's RNG, which init fed from the NSM) and a
//! self-signed X.509 v3 certificate for it, written here in DER.
//!
//! Why not rcgen: the certificate is one fixed shape (about 60 lines of DER below), while rcgen
//! brings `yasna`, `time` and a PEM layer into the enclave image for features we do not use.
//! The output is checked in tests by verifying its signature with aws-lc-rs and by openssl in
//! the integration tests.
//! (Reading certificates is `contract::der`'s job.)
//!
//! With an NSM, the certificate carries the enclave's attestation document for its key in the
//! extension [`contract::cert_attestation`] defines, so a client can verify the enclave from the
//! handshake alone; its notBefore is then the enclave's clock when it was made.

use crate::error::{Error, Result};
use crate::nsm::Attester;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The subject and issuer common name of generated certificates.
pub const COMMON_NAME: &str = "enclave-https";

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

use contract::der::{sequence as seq, tlv};

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

/// notBefore of a certificate without an attestation document.
const FIXED_NOT_BEFORE: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

/// A certificate time: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
fn cert_time(secs: i64) -> Vec<u8> {
    let c = contract::date::Civil::from_unix(secs);
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        c.month, c.day, c.hour, c.minute, c.second
    );
    if (1950..2050).contains(&c.year) {
        tlv(
            contract::der::UTC_TIME,
            format!("{:02}{rest}", c.year % 100).as_bytes(),
        )
    } else {
        tlv(
            contract::der::GENERALIZED_TIME,
            format!("{:04}{rest}", c.year).as_bytes(),
        )
    }
}

/// Generates a P-256 key pair and a self-signed certificate for it: CN=enclave-https, SAN
/// `localhost` and `127.0.0.1`, valid from 2025-01-01 to 9999-12-31 (the enclave's clock is not
/// trusted and the certificate is bound to the attestation, not to a validity window), random
/// 127-bit serial number.
pub fn generate() -> Result<Generated> {
    build::<dyn Attester>(None)
}

/// [`generate`], with the attestation document `attester` gives for the key
/// (`public_key` = its SubjectPublicKeyInfo, `user_data` =
/// [`contract::cert_attestation::USER_DATA`], no nonce) in the certificate's
/// [`contract::cert_attestation`] extension; notBefore is `now_unix` (the enclave's clock).
pub fn generate_attested<A: Attester + ?Sized>(attester: &A, now_unix: i64) -> Result<Generated> {
    build(Some((attester, now_unix)))
}

fn build<A: Attester + ?Sized>(attested: Option<(&A, i64)>) -> Result<Generated> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| Error::KeyGen("P-256 key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| Error::KeyGen("the generated key did not load"))?;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::KeyGen("no random serial number"))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x40; // never leading zeros: fixed-length encoding

    let spki = p256_spki(key.public_key().as_ref());
    let sig_alg = seq(&[&tlv(0x06, OID_ECDSA_SHA256)]);
    let san = seq(&[&tlv(0x82, b"localhost"), &tlv(0x87, &[127, 0, 0, 1])]);
    let mut extensions = vec![seq(&[&tlv(0x06, OID_SUBJECT_ALT_NAME), &tlv(0x04, &san)])];
    let mut not_before = FIXED_NOT_BEFORE;
    if let Some((attester, now)) = attested {
        let document = attester
            .attest(contract::cert_attestation::USER_DATA, &[], &spki)
            .map_err(Error::CertificateAttestation)?;
        extensions.push(contract::cert_attestation::extension(&document));
        not_before = now;
    }
    let validity = seq(&[
        &cert_time(not_before),
        &tlv(contract::der::GENERALIZED_TIME, b"99991231235959Z"),
    ]);
    let extensions = tlv(0xa3, &tlv(contract::der::SEQUENCE, &extensions.concat()));
    let tbs = seq(&[
        &tlv(0xa0, &integer(&[2])),
        &integer(&serial),
        &sig_alg,
        &name(COMMON_NAME),
        &validity,
        &name(COMMON_NAME),
        &spki,
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
    fn integers_are_der() {
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

    use crate::nsm::fake::{Calls, FakeNsm, DOCUMENT};

    #[test]
    fn an_attested_certificate_carries_the_document_for_its_own_key() {
        let calls = Calls::default();
        let nsm = FakeNsm::new(&calls);
        let now = 1_764_650_000; // 2025-12-02T04:33:20Z
        let g = generate_attested(&nsm, now).unwrap();
        let calls = calls.lock().unwrap().clone();
        let spki = contract::der::spki(&g.cert_der).unwrap();
        assert_eq!(
            calls,
            vec![(
                contract::cert_attestation::USER_DATA.to_vec(),
                Vec::new(),
                spki.to_vec()
            )]
        );
        assert_eq!(
            contract::cert_attestation::document(&g.cert_der),
            Ok(Some(DOCUMENT))
        );
        let cert = contract::der::certificate(&g.cert_der).unwrap();
        assert_eq!(cert.validity(), Ok((now, 253_402_300_799)));
        // Without an NSM: no extension, the fixed notBefore.
        let plain = generate().unwrap();
        assert_eq!(
            contract::cert_attestation::document(&plain.cert_der),
            Ok(None)
        );
        let cert = contract::der::certificate(&plain.cert_der).unwrap();
        assert_eq!(cert.validity(), Ok((FIXED_NOT_BEFORE, 253_402_300_799)));
        // After 2049 the time is a GeneralizedTime.
        assert_eq!(cert_time(2_524_608_000), tlv(0x18, b"20500101000000Z"));
        assert_eq!(cert_time(0), tlv(0x17, b"700101000000Z"));
    }

    #[test]
    fn an_nsm_that_fails_stops_the_certificate() {
        let nsm = FakeNsm(
            Calls::default(),
            Some(crate::nsm::AttestError("InvalidArgument".into())),
        );
        let e = generate_attested(&nsm, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the certificate's attestation document: NSM attestation failed: InvalidArgument"
        );
    }
}
