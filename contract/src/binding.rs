//! How an attestation document is bound to the TLS certificate a client sees.
//!
//! The server asks the NSM for a document whose `public_key` is the DER SubjectPublicKeyInfo
//! of its TLS certificate and whose `user_data` is the SHA-256 of that certificate's DER. A
//! client that verified the document (signature, PCRs, its own nonce) and sees the same
//! certificate on its TLS session knows that the measured image holds the session's key.
//! Both sides call [`Binding::of_certificate`]; nobody re-derives it.
//!
//! A document carried inside the certificate itself ([`crate::cert_attestation`]) cannot hold
//! the certificate's digest; its binding is [`Binding::in_certificate`]: the same
//! `public_key`, and `user_data` = [`crate::cert_attestation::USER_DATA`].
//!
//! SHA-256 is passed in by the caller: this crate links no crypto (host-relay links it).

use crate::der::{self, DerError};
use std::fmt;

/// Bytes of `user_data` (a SHA-256).
pub const USER_DATA_LEN: usize = 32;

/// The two fields of an attestation document that tie it to one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The certificate's DER SubjectPublicKeyInfo: the document's `public_key`.
    pub public_key: &'a [u8],
    /// The document's `user_data`: SHA-256 of the certificate's DER, or the fixed text of a
    /// document in the certificate.
    pub user_data: Vec<u8>,
}

/// Which field of a document does not match the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingField {
    /// `public_key` is absent or another key.
    PublicKey,
    /// `user_data` is absent or the digest of another certificate.
    UserData,
}

impl BindingField {
    /// The field's name in the document.
    pub fn name(self) -> &'static str {
        match self {
            BindingField::PublicKey => "public_key",
            BindingField::UserData => "user_data",
        }
    }
}

impl fmt::Display for BindingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the document's {} is not that of the TLS certificate",
            self.name()
        )
    }
}

impl std::error::Error for BindingField {}

impl<'a> Binding<'a> {
    /// The binding of a DER certificate; `sha256` hashes its argument.
    pub fn of_certificate(
        cert_der: &'a [u8],
        sha256: impl FnOnce(&[u8]) -> [u8; USER_DATA_LEN],
    ) -> Result<Binding<'a>, DerError> {
        let public_key = der::spki(cert_der)?;
        Ok(Binding {
            public_key,
            user_data: sha256(cert_der).to_vec(),
        })
    }

    /// The binding of the document a DER certificate carries in its attestation extension.
    pub fn in_certificate(cert_der: &'a [u8]) -> Result<Binding<'a>, DerError> {
        Ok(Binding {
            public_key: der::spki(cert_der)?,
            user_data: crate::cert_attestation::USER_DATA.to_vec(),
        })
    }

    /// Checks a document's two fields against this binding, `public_key` first.
    pub fn check(
        &self,
        public_key: Option<&[u8]>,
        user_data: Option<&[u8]>,
    ) -> Result<(), BindingField> {
        if public_key != Some(self.public_key) {
            return Err(BindingField::PublicKey);
        }
        if user_data != Some(&self.user_data[..]) {
            return Err(BindingField::UserData);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER: SEQ { SEQ { INT, SEQ, SEQ, SEQ, SEQ, SEQ{spki} } }.
    fn cert() -> Vec<u8> {
        let spki = [0x30, 0x03, 0x04, 0x01, 0xaa];
        let mut tbs = vec![
            0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00,
        ];
        tbs.extend_from_slice(&spki);
        let mut t = vec![0x30, u8::try_from(tbs.len()).unwrap()];
        t.extend_from_slice(&tbs);
        let mut c = vec![0x30, u8::try_from(t.len()).unwrap()];
        c.extend_from_slice(&t);
        c
    }

    fn fake_sha256(b: &[u8]) -> [u8; 32] {
        [u8::try_from(b.len()).unwrap(); 32]
    }

    #[test]
    fn both_fields_must_match() {
        let c = cert();
        let b = Binding::of_certificate(&c, fake_sha256).unwrap();
        assert_eq!(b.public_key, [0x30, 0x03, 0x04, 0x01, 0xaa]);
        let ud = b.user_data.clone();
        assert_eq!(b.check(Some(b.public_key), Some(&ud)), Ok(()));
        assert_eq!(b.check(None, Some(&ud)), Err(BindingField::PublicKey));
        assert_eq!(
            b.check(Some(&[0x30, 0x00]), Some(&ud)),
            Err(BindingField::PublicKey)
        );
        assert_eq!(
            b.check(Some(b.public_key), None),
            Err(BindingField::UserData)
        );
        assert_eq!(
            b.check(Some(b.public_key), Some(&ud[1..])),
            Err(BindingField::UserData)
        );
        assert_eq!(
            BindingField::UserData.to_string(),
            "the document's user_data is not that of the TLS certificate"
        );
        assert!(Binding::of_certificate(b"junk", fake_sha256).is_err());
        let inside = Binding::in_certificate(&c).unwrap();
        assert_eq!(inside.public_key, b.public_key);
        assert_eq!(
            inside.check(Some(b.public_key), Some(crate::cert_attestation::USER_DATA)),
            Ok(())
        );
        assert_eq!(
            inside.check(Some(b.public_key), Some(&ud)),
            Err(BindingField::UserData)
        );
    }
}
