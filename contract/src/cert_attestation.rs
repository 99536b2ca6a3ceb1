//! The attestation document a server carries in its own certificate, so that a client can
//! verify the enclave from the TLS handshake alone, without a request.
//!
//! At start the server asks the NSM for a document with `public_key` = the DER
//! SubjectPublicKeyInfo of the key it just generated, `user_data` = [`USER_DATA`] and no nonce,
//! and puts the document in a **non-critical** extension of its self-signed certificate:
//!
//! ```text
//! Extension ::= SEQUENCE {
//!     extnID     OBJECT IDENTIFIER  -- 2.25.87024637174045886450314576383578375809 (OID)
//!     extnValue  OCTET STRING       -- the DER of: OCTET STRING (the COSE_Sign1 document)
//! }
//! ```
//!
//! The OID is a UUID OID (ITU-T X.667, arc 2.25: no registration needed), from the random UUID
//! `417855e0-ec20-4276-a636-f296d6728681`. A TLS client that does not know it ignores it.
//!
//! What the document proves: the measured image held the certificate's private key (`public_key`
//! is its SubjectPublicKeyInfo, and the key never leaves the enclave), and when (`timestamp`,
//! written by the NSM). `user_data` cannot be the certificate's digest, as it is for the
//! attestation endpoint ([`crate::binding`]), since the certificate contains the document; the
//! fixed text says which kind of document this is. Freshness is the verifier's policy: the
//! document's timestamp must lie within the certificate's validity (notBefore is the enclave's
//! clock when the certificate was made), and a client may demand a maximum age. A client that
//! wants freshness of its own choosing still asks the endpoint with its nonce.

use crate::der::{self, DerError};
use std::fmt;

/// The extension's OID, dotted.
pub const OID_TEXT: &str = "2.25.87024637174045886450314576383578375809";

/// The extension's OID, DER contents bytes.
pub const OID: &[u8] = &[
    0x69, 0x81, 0x82, 0xf8, 0xaa, 0xf8, 0x9d, 0xc2, 0x82, 0x89, 0xed, 0xa6, 0x9b, 0xbc, 0xd2, 0xed,
    0xb3, 0xca, 0x8d, 0x01,
];

/// The document's `user_data`.
pub const USER_DATA: &[u8] = b"enclave-https certificate attestation v1";

/// The most bytes of document an extension may carry (an NSM document is about 4.5 KiB).
pub const MAX_DOCUMENT: usize = 16 * 1024;

/// Why a certificate's attestation extension cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// The certificate or its extension is not the DER expected.
    Der(DerError),
    /// The extension is marked critical (it is defined non-critical).
    Critical,
    /// The document is empty or larger than [`MAX_DOCUMENT`].
    Size(usize),
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::Der(e) => write!(f, "attestation extension {OID_TEXT}: {e}"),
            ExtensionError::Critical => write!(
                f,
                "attestation extension {OID_TEXT} is marked critical (it is defined non-critical)"
            ),
            ExtensionError::Size(n) => write!(
                f,
                "attestation extension {OID_TEXT} carries {n} bytes (expected 1 to {MAX_DOCUMENT})"
            ),
        }
    }
}

impl std::error::Error for ExtensionError {}

impl From<DerError> for ExtensionError {
    fn from(e: DerError) -> Self {
        ExtensionError::Der(e)
    }
}

/// The whole extension (a DER `Extension` SEQUENCE) carrying `document`.
pub fn extension(document: &[u8]) -> Vec<u8> {
    der::sequence(&[
        &der::tlv(der::OID, OID),
        &der::tlv(der::OCTET_STRING, &der::tlv(der::OCTET_STRING, document)),
    ])
}

/// The document in a DER certificate's extension, `None` when it has none.
pub fn document(cert_der: &[u8]) -> Result<Option<&[u8]>, ExtensionError> {
    let cert = der::certificate(cert_der)?;
    let Some(ext) = cert.extension(OID)? else {
        return Ok(None);
    };
    if ext.critical {
        return Err(ExtensionError::Critical);
    }
    let mut value = der::Der::new(ext.value);
    let doc = value.expect(der::OCTET_STRING, "the attestation document OCTET STRING")?;
    if !value.is_empty() {
        return Err(ExtensionError::Der(DerError::TrailingBytes));
    }
    if doc.value.is_empty() || doc.value.len() > MAX_DOCUMENT {
        return Err(ExtensionError::Size(doc.value.len()));
    }
    Ok(Some(doc.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate-shaped DER with these extensions (a list of whole Extension elements).
    fn cert(extensions: &[&[u8]]) -> Vec<u8> {
        let validity = der::sequence(&[
            &der::tlv(der::UTC_TIME, b"250101000000Z"),
            &der::tlv(der::GENERALIZED_TIME, b"99991231235959Z"),
        ]);
        let spki = der::sequence(&[&der::tlv(der::OCTET_STRING, &[0xaa])]);
        let exts = der::tlv(der::CONTEXT_3, &der::sequence(extensions));
        let tbs = der::sequence(&[
            &der::tlv(der::INTEGER, &[1]),
            &der::sequence(&[]),
            &der::sequence(&[]),
            &validity,
            &der::sequence(&[]),
            &spki,
            &exts,
        ]);
        der::sequence(&[&tbs, &der::sequence(&[]), &der::tlv(der::BIT_STRING, &[0])])
    }

    #[test]
    fn the_document_round_trips_and_the_oid_is_the_documented_one() {
        // 2.25.N: first octet 2*40+25, then N in base 128.
        let n: u128 = OID_TEXT.strip_prefix("2.25.").unwrap().parse().unwrap();
        let mut base128 = vec![u8::try_from(n & 0x7f).unwrap()];
        let mut rest = n >> 7;
        while rest > 0 {
            base128.push(0x80 | u8::try_from(rest & 0x7f).unwrap());
            rest >>= 7;
        }
        base128.push(105);
        base128.reverse();
        assert_eq!(OID, base128.as_slice());

        let other = der::sequence(&[
            &der::tlv(der::OID, &[0x55, 0x1d, 0x11]),
            &der::tlv(der::OCTET_STRING, &[0x30, 0x00]),
        ]);
        let c = cert(&[&other, &extension(b"doc")]);
        assert_eq!(document(&c), Ok(Some(&b"doc"[..])));
        let parsed = der::certificate(&c).unwrap();
        assert_eq!(parsed.validity(), Ok((1_735_689_600, 253_402_300_799)));
        assert_eq!(document(&cert(&[&other])), Ok(None));
    }

    #[test]
    fn bad_extensions_are_refused_with_the_reason() {
        let critical = der::sequence(&[
            &der::tlv(der::OID, OID),
            &der::tlv(der::BOOLEAN, &[0xff]),
            &der::tlv(der::OCTET_STRING, &der::tlv(der::OCTET_STRING, b"doc")),
        ]);
        assert_eq!(document(&cert(&[&critical])), Err(ExtensionError::Critical));
        assert_eq!(
            ExtensionError::Critical.to_string(),
            "attestation extension 2.25.87024637174045886450314576383578375809 is marked critical (it is defined non-critical)"
        );
        let twice = extension(b"doc");
        assert!(matches!(
            document(&cert(&[&twice, &twice])),
            Err(ExtensionError::Der(DerError::Unexpected(_)))
        ));
        assert_eq!(
            document(&cert(&[&extension(b"")])),
            Err(ExtensionError::Size(0))
        );
        let not_wrapped = der::sequence(&[
            &der::tlv(der::OID, OID),
            &der::tlv(der::OCTET_STRING, b"doc"),
        ]);
        assert!(document(&cert(&[&not_wrapped])).is_err());
        assert!(document(b"junk").is_err());
    }
}
