//! PCR8 signing: the EIF signature section, as nitro-cli's `--signing-certificate`/`--private-key` write it.
//!
//! The section is CBOR: an array of one map
//! `{"signing_certificate": <PEM bytes>, "signature": <COSE_Sign1 bytes>}`, where both byte
//! strings are written as CBOR arrays of small integers (that is how serde encodes `Vec<u8>`,
//! and what AWS's reader and QEMU expect). The COSE_Sign1 is untagged, its protected header is
//! `{1: -35}` (ES384), its unprotected header is empty, its payload is the CBOR map
//! `{"register_index": 0, "register_value": <PCR0 as an integer array>}`, and its signature is
//! raw `r ‖ s` over the Sig_structure `["Signature1", protected, h'', payload]`.
//!
//! We sign with P-384 only (what Nitro's own tooling uses). Reading accepts P-256, P-384 and
//! P-521 certificates, so that images signed by nitro-cli with other curves can be described.

pub mod pem;

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use ciborium::value::{Integer, Value};

use crate::error::{Error, Result};
use crate::measure::Pcr;
use contract::der::{self, certificate_ec_key};

/// COSE algorithm numbers.
const ES256: i64 = -7;
const ES384: i64 = -35;
const ES512: i64 = -36;

/// Largest certificate or key file we read.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// A certificate and its P-384 private key, checked to belong together.
pub struct Signer {
    certificate_pem: Vec<u8>,
    certificate_der: Vec<u8>,
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("certificate_der_len", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

fn first_certificate(pem_bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    let blocks = pem::parse(pem_bytes).map_err(|e| Error::malformed(what, e))?;
    blocks
        .into_iter()
        .find(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .ok_or_else(|| Error::malformed(what, "no PEM CERTIFICATE block"))
}

fn read_small_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Error::io_at("cannot open", path))?;
    let mut out = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut out)
        .map_err(Error::io_at("cannot read", path))?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > MAX_PEM_FILE {
        return Err(Error::invalid(
            format!("{}", path.display()),
            "is larger than 1 MiB; not a PEM certificate or key",
        ));
    }
    Ok(out)
}

impl Signer {
    /// Reads a PEM certificate and a PEM private key (PKCS#8 `PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY`) from files.
    pub fn from_files(certificate: &Path, private_key: &Path) -> Result<Self> {
        let cert = read_small_file(certificate)?;
        let key = read_small_file(private_key)?;
        Self::from_pem(cert, &key)
    }

    /// Builds a signer from PEM bytes. The certificate bytes are stored in the image as given.
    ///
    /// Refuses a key or certificate that is not P-384, and a key that does not match the
    /// certificate.
    pub fn from_pem(certificate_pem: Vec<u8>, private_key_pem: &[u8]) -> Result<Self> {
        let certificate_der = first_certificate(&certificate_pem, "signing certificate")?;
        let cert_key = certificate_ec_key(&certificate_der)
            .map_err(|e| Error::malformed("signing certificate", e.to_string()))?;
        if cert_key.curve != der::OID_P384 {
            return Err(Error::unsupported(
                "signing certificate",
                format!(
                    "its key is on {}; PCR8 signing supports P-384 only",
                    der::curve_name(cert_key.curve)
                ),
            ));
        }

        let blocks = pem::parse(private_key_pem).map_err(|e| Error::malformed("private key", e))?;
        if blocks.iter().any(|b| b.label == "ENCRYPTED PRIVATE KEY") {
            return Err(Error::unsupported(
                "private key",
                "it is encrypted; give an unencrypted PKCS#8 or SEC1 key",
            ));
        }
        let key_der = blocks
            .into_iter()
            .find(|b| b.label == "PRIVATE KEY" || b.label == "EC PRIVATE KEY")
            .ok_or_else(|| {
                Error::malformed(
                    "private key",
                    "no PEM `PRIVATE KEY` or `EC PRIVATE KEY` block",
                )
            })?
            .der;
        let key = EcdsaKeyPair::from_private_key_der(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &key_der,
        )
        .map_err(|rejected| {
            let curve = if EcdsaKeyPair::from_private_key_der(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key_der,
            )
            .is_ok()
            {
                "it is a P-256 key; PCR8 signing supports P-384 only".to_string()
            } else if EcdsaKeyPair::from_private_key_der(
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                &key_der,
            )
            .is_ok()
            {
                "it is a P-521 key; PCR8 signing supports P-384 only".to_string()
            } else {
                format!("not a usable P-384 EC key ({rejected})")
            };
            Error::unsupported("private key", curve)
        })?;
        if key.public_key().as_ref() != cert_key.point {
            return Err(Error::invalid(
                "private key",
                "does not match the signing certificate's public key",
            ));
        }
        Ok(Signer {
            certificate_pem,
            certificate_der,
            key,
        })
    }

    /// The certificate as given (stored in the image).
    pub fn certificate_pem(&self) -> &[u8] {
        &self.certificate_pem
    }

    /// The certificate's DER bytes (measured into PCR8).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The signature section for an image whose PCR0 is `pcr0`.
    pub fn signature_section(&self, pcr0: &Pcr) -> Result<Vec<u8>> {
        let payload = encode(&pcr_info(pcr0))?;
        let protected = encode(&Value::Map(vec![(int(1), int(ES384))]))?;
        let to_sign = sig_structure(&protected, &payload)?;
        let sig = self
            .key
            .sign(&SystemRandom::new(), &to_sign)
            .map_err(|_| Error::invalid("signing", "ECDSA P-384 signing failed"))?;
        let cose = encode(&Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            Value::Bytes(payload),
            Value::Bytes(sig.as_ref().to_vec()),
        ]))?;
        encode(&Value::Array(vec![Value::Map(vec![
            (
                text("signing_certificate"),
                int_array(&self.certificate_pem),
            ),
            (text("signature"), int_array(&cose)),
        ])]))
    }
}

fn int(v: i64) -> Value {
    Value::Integer(Integer::from(v))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Bytes as serde writes `Vec<u8>`: an array of integers.
fn int_array(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|&b| Value::Integer(b.into())).collect())
}

fn pcr_info(pcr: &[u8]) -> Value {
    Value::Map(vec![
        (text("register_index"), int(0)),
        (text("register_value"), int_array(pcr)),
    ])
}

fn encode(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| Error::invalid("CBOR encoding", e.to_string()))?;
    Ok(out)
}

fn sig_structure(protected: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
    encode(&Value::Array(vec![
        text("Signature1"),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// What a signature section holds, after parsing and checking its COSE signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureSection {
    /// The certificate as stored (PEM).
    pub certificate_pem: Vec<u8>,
    /// Its first certificate's DER bytes (what PCR8 measures).
    pub certificate_der: Vec<u8>,
    /// The PCR index the signature covers (0 in every image nitro-cli makes).
    pub register_index: i64,
    /// The PCR value that was signed.
    pub register_value: Vec<u8>,
    /// Whether the COSE signature verifies with the certificate's key.
    pub signature_valid: bool,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::malformed("signature section", detail)
}

/// Decodes exactly one CBOR item from `bytes`.
fn decode(bytes: &[u8], what: &str) -> Result<Value> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest)
        .map_err(|e| bad(format!("{what} is not valid CBOR ({e})")))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes after {what}", rest.len())));
    }
    Ok(value)
}

fn field<'v>(map: &'v [(Value, Value)], key: &str, what: &str) -> Result<&'v Value> {
    let mut found = map
        .iter()
        .filter(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v);
    let value = found
        .next()
        .ok_or_else(|| bad(format!("{what} has no `{key}`")))?;
    if found.next().is_some() {
        return Err(bad(format!("{what} has `{key}` twice")));
    }
    Ok(value)
}

/// A byte string stored either as CBOR bytes or as an array of integers 0..=255.
fn byte_field(value: &Value, what: &str) -> Result<Vec<u8>> {
    match value {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Integer(i) => u8::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| bad(format!("{what} is not an array of bytes"))),
        _ => Err(bad(format!("{what} is not a byte array"))),
    }
}

fn integer(value: &Value, what: &str) -> Result<i64> {
    match value {
        Value::Integer(i) => i64::try_from(*i).map_err(|_| bad(format!("{what} is out of range"))),
        _ => Err(bad(format!("{what} is not an integer"))),
    }
}

/// Parses a signature section and checks its COSE_Sign1 signature against the certificate.
///
/// Structural problems are errors; a signature that does not verify is reported in
/// [`SignatureSection::signature_valid`], for the caller to decide.
pub fn parse_signature_section(bytes: &[u8]) -> Result<SignatureSection> {
    let Value::Array(list) = decode(bytes, "the section")? else {
        return Err(bad("the section is not a CBOR array"));
    };
    let first = list
        .first()
        .ok_or_else(|| bad("the signature list is empty"))?;
    let Value::Map(entry) = first else {
        return Err(bad("the first signature is not a map"));
    };
    let certificate_pem = byte_field(
        field(entry, "signing_certificate", "the signature entry")?,
        "signing_certificate",
    )?;
    let cose = byte_field(
        field(entry, "signature", "the signature entry")?,
        "signature",
    )?;

    let certificate_der = first_certificate(
        &certificate_pem,
        "signing certificate in the signature section",
    )?;

    let mut cose_value = decode(&cose, "the COSE_Sign1")?;
    if let Value::Tag(18, inner) = cose_value {
        cose_value = *inner;
    }
    let Value::Array(parts) = cose_value else {
        return Err(bad("the COSE_Sign1 is not a CBOR array"));
    };
    let [Value::Bytes(protected), Value::Map(_), Value::Bytes(payload), Value::Bytes(sig)] =
        parts.as_slice()
    else {
        return Err(bad(
            "the COSE_Sign1 is not [protected bytes, unprotected map, payload bytes, signature bytes]",
        ));
    };
    let Value::Map(protected_map) = decode(protected, "the COSE protected header")? else {
        return Err(bad("the COSE protected header is not a map"));
    };
    let mut alg = None;
    for (k, v) in &protected_map {
        if matches!(k, Value::Integer(i) if i64::try_from(*i) == Ok(1)) {
            if alg.is_some() {
                return Err(bad("the COSE protected header has `alg` twice"));
            }
            alg = Some(integer(v, "the COSE `alg`")?);
        }
    }
    let alg = alg.ok_or_else(|| bad("the COSE protected header has no `alg`"))?;

    let Value::Map(info) = decode(payload, "the COSE payload")? else {
        return Err(bad("the COSE payload is not a map"));
    };
    let register_index = integer(
        field(&info, "register_index", "the COSE payload")?,
        "register_index",
    )?;
    let register_value = byte_field(
        field(&info, "register_value", "the COSE payload")?,
        "register_value",
    )?;

    let key = certificate_ec_key(&certificate_der).map_err(|e| {
        Error::malformed(
            "signing certificate in the signature section",
            e.to_string(),
        )
    })?;
    let (expected_alg, verify_alg): (i64, &'static signature::EcdsaVerificationAlgorithm) =
        match key.curve {
            der::OID_P256 => (ES256, &signature::ECDSA_P256_SHA256_FIXED),
            der::OID_P384 => (ES384, &signature::ECDSA_P384_SHA384_FIXED),
            der::OID_P521 => (ES512, &signature::ECDSA_P521_SHA512_FIXED),
            other => {
                return Err(Error::unsupported(
                    "signing certificate in the signature section",
                    format!("its key is on {}", der::curve_name(other)),
                ))
            }
        };
    let signature_valid = alg == expected_alg && {
        let to_verify = sig_structure(protected, payload)?;
        UnparsedPublicKey::new(verify_alg, key.point)
            .verify(&to_verify, sig)
            .is_ok()
    };
    Ok(SignatureSection {
        certificate_pem,
        certificate_der,
        register_index,
        register_value,
        signature_valid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Byte layouts from the oracle crate's utils/cbor.rs tests (what serde_cbor 0.11 wrote).
    const PCR_INFO_0_8_0: &str = "a26e72656769737465725f696e646578006e72656769737465725f76616c75659830000102030405060708090a0b0c0d0e0f101112131415161718181819181a181b181c181d181e181f1820182118221823182418251826182718281829182a182b182c182d182e182f";
    const SIGNATURE_0_8_0: &str = "81a2737369676e696e675f6365727469666963617465983b182d182d182d182d182d1842184518471849184e182018431845185218541849184618491843184118541845182d182d182d182d182d0a184d1849184918420a182d182d182d182d182d1845184e1844182018431845185218541849184618491843184118541845182d182d182d182d182d0a697369676e61747572658a18d21884184418a1011838182218a018401840";

    #[test]
    fn cbor_layout_matches_aws() {
        let pcr: Vec<u8> = (0u8..48).collect();
        assert_eq!(
            crate::measure::hex(&encode(&pcr_info(&pcr)).unwrap()),
            PCR_INFO_0_8_0
        );
        let section = encode(&Value::Array(vec![Value::Map(vec![
            (
                text("signing_certificate"),
                int_array(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            ),
            (
                text("signature"),
                int_array(&[0xd2, 0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x40]),
            ),
        ])]))
        .unwrap();
        assert_eq!(crate::measure::hex(&section), SIGNATURE_0_8_0);
        assert_eq!(
            encode(&Value::Map(vec![(int(1), int(ES384))])).unwrap(),
            [0xa1, 0x01, 0x38, 0x22]
        );
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        for bytes in [
            &b""[..],
            &[0x80],
            &[0x81, 0xa0],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x81, 0xa1, 0x60, 0x60],
            &[0xff; 16],
        ] {
            assert!(parse_signature_section(bytes).is_err());
        }
        let section = hex_decode(SIGNATURE_0_8_0);
        // A well-formed section whose certificate is not a certificate.
        assert!(parse_signature_section(&section).is_err());
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        contract::hex::decode(s).unwrap()
    }
}
