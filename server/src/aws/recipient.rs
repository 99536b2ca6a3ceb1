//! The enclave's side of KMS's `Recipient` parameter: an RSA-2048 key pair made in enclave
//! memory, whose public key goes into the attestation document KMS receives, and the
//! decryption of the `CiphertextForRecipient` KMS answers with.
//!
//! As AWS's enclave SDK does (<https://github.com/aws/aws-nitro-enclaves-sdk-c>,
//! `source/attestation.c`): the key is RSA with e = 65537 (`aws_attestation_rsa_keypair_new`),
//! its public key is a DER SubjectPublicKeyInfo (`EVP_marshal_public_key`), the content key is
//! decrypted with RSA-OAEP, SHA-256 and MGF1-SHA-256 (`aws_attestation_rsa_decrypt`; KMS's
//! `RSAES_OAEP_SHA_256`), and the content with AES-256-CBC and PKCS#7 padding
//! (`aws_cms_cipher_decrypt` in `source/cms.c`). The CMS structure is [`super::cms`]'s job.
//!
//! Every secret on the way (the content key, the plaintext) lives in [`Zeroizing`] buffers.
//! AES-CBC has no MAC: a changed ciphertext is caught only when it breaks the padding, and
//! anyone with the public key can make an answer that decrypts; that it is KMS's answer rests
//! on the TLS connection to KMS (see [`super::cms`]).

use super::cms::{self, CmsError, EnvelopedData, IV_LEN};
use aws_lc_rs::cipher::{DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256,
};
use std::fmt;
use zeroize::Zeroizing;

/// The value of the KMS request's `Recipient.KeyEncryptionAlgorithm` that matches what
/// [`Recipient::decrypt`] does.
pub const KEY_ENCRYPTION_ALGORITHM: &str = "RSAES_OAEP_SHA_256";

/// The RSA key size, in bits.
const KEY_BITS: usize = 2048;

/// The AES-256 content key's length.
const CONTENT_KEY_LEN: usize = 32;

/// An RSA-2048 key pair made for KMS to encrypt to. Not `Clone` (one key, one owner); its
/// `Debug` shows the public key's SHA-256 only.
pub struct Recipient {
    key: OaepPrivateDecryptingKey,
    public_key_der: Vec<u8>,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.public_key_der);
        f.debug_struct("Recipient")
            .field("public_key_sha256", &contract::hex::encode(digest.as_ref()))
            .finish_non_exhaustive()
    }
}

impl Recipient {
    /// A fresh RSA-2048 key pair (e = 65537), in memory only.
    ///
    /// # Errors
    ///
    /// [`RecipientError::Key`] if aws-lc fails to generate or encode it.
    pub fn generate() -> Result<Recipient, RecipientError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| RecipientError::Key("generating the RSA-2048 key pair failed"))?;
        Recipient::from_key(key)
    }

    /// A recipient with a known key (PKCS#8 DER), for tests with fixtures.
    #[cfg(test)]
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Recipient, RecipientError> {
        let key = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|_| RecipientError::Key("the PKCS#8 RSA private key was rejected"))?;
        Recipient::from_key(key)
    }

    fn from_key(key: PrivateDecryptingKey) -> Result<Recipient, RecipientError> {
        if key.key_size_bits() != KEY_BITS {
            return Err(RecipientError::Key("the RSA key is not 2048 bits"));
        }
        let public_key_der = key
            .public_key()
            .as_der()
            .map_err(|_| RecipientError::Key("encoding the RSA public key failed"))?
            .as_ref()
            .to_vec();
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| RecipientError::Key("making the RSA-OAEP key failed"))?;
        Ok(Recipient {
            key,
            public_key_der,
        })
    }

    /// The public key as a DER SubjectPublicKeyInfo: the attestation document's `public_key`
    /// when asking KMS for a `CiphertextForRecipient`.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// Decrypts KMS's `CiphertextForRecipient` (the bytes, base64-decoded): parses the CMS
    /// EnvelopedData, decrypts the content key with RSA-OAEP-SHA-256, then the content with
    /// AES-256-CBC, checking the PKCS#7 padding.
    ///
    /// # Errors
    ///
    /// [`RecipientError::Cms`] when the bytes are not an answer [`cms::parse`] accepts;
    /// otherwise the step that failed: a content key not encrypted for this key (or changed),
    /// not 32 bytes, or a ciphertext whose padding is wrong.
    pub fn decrypt(
        &self,
        ciphertext_for_recipient: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
        let enveloped = cms::parse(ciphertext_for_recipient)?;
        self.open(&enveloped)
    }

    /// Decrypts parsed EnvelopedData.
    fn open(&self, enveloped: &EnvelopedData<'_>) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
        let content_key = self.content_key(&enveloped.encrypted_key)?;
        let key = UnboundCipherKey::new(&AES_256, content_key.as_slice())
            .map_err(|_| RecipientError::Key("AES-256 refused the content key"))?;
        let key = PaddedBlockDecryptingKey::cbc_pkcs7(key)
            .map_err(|_| RecipientError::Key("making the AES-256-CBC key failed"))?;
        let iv: FixedLength<IV_LEN> = FixedLength::from(enveloped.iv);
        let mut plaintext = Zeroizing::new(enveloped.encrypted_content.to_vec());
        let len = key
            .decrypt(plaintext.as_mut_slice(), DecryptionContext::Iv128(iv))
            .map_err(|_| RecipientError::ContentDecryption)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }

    /// The AES-256 content key, RSA-OAEP-decrypted.
    fn content_key(&self, encrypted_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
        let expected = self.key.key_size_bytes();
        if encrypted_key.len() != expected {
            return Err(RecipientError::EncryptedKeyLength {
                found: encrypted_key.len(),
                expected,
            });
        }
        let mut out = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let len = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                encrypted_key,
                out.as_mut_slice(),
                None,
            )
            .map_err(|_| RecipientError::KeyDecryption)?
            .len();
        if len != CONTENT_KEY_LEN {
            return Err(RecipientError::ContentKeyLength(len));
        }
        out.truncate(len);
        Ok(out)
    }
}

/// Why a `CiphertextForRecipient` could not be decrypted (or a key not made).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientError {
    /// Making or using the key pair failed in aws-lc (the step).
    Key(&'static str),
    /// The bytes are not CMS EnvelopedData as KMS sends it.
    Cms(CmsError),
    /// The encrypted content key's length is not the RSA modulus's.
    EncryptedKeyLength {
        /// The length found.
        found: usize,
        /// The modulus's length (256).
        expected: usize,
    },
    /// RSA-OAEP decryption failed: encrypted for another key, or changed.
    KeyDecryption,
    /// The content key is not 32 bytes (its length).
    ContentKeyLength(usize),
    /// AES-256-CBC decryption failed: the padding is wrong (a changed ciphertext or IV).
    ContentDecryption,
}

impl fmt::Display for RecipientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientError::Key(what) => write!(f, "KMS recipient key: {what}"),
            RecipientError::Cms(e) => write!(f, "KMS CiphertextForRecipient: {e}"),
            RecipientError::EncryptedKeyLength { found, expected } => write!(
                f,
                "KMS CiphertextForRecipient: the encrypted content key is {found} bytes, not {expected}"
            ),
            RecipientError::KeyDecryption => f.write_str(
                "KMS CiphertextForRecipient: RSA-OAEP decryption of the content key failed \
                 (encrypted for another key, or changed)",
            ),
            RecipientError::ContentKeyLength(n) => write!(
                f,
                "KMS CiphertextForRecipient: the content key is {n} bytes, not 32 (AES-256)"
            ),
            RecipientError::ContentDecryption => f.write_str(
                "KMS CiphertextForRecipient: AES-256-CBC decryption failed: bad padding \
                 (changed ciphertext or IV)",
            ),
        }
    }
}

impl std::error::Error for RecipientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecipientError::Cms(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CmsError> for RecipientError {
    fn from(e: CmsError) -> RecipientError {
        RecipientError::Cms(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};
    use std::borrow::Cow;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/data/cms/", $name)) as &[u8]
        };
    }

    /// (file, CiphertextForRecipient, plaintext) for every good fixture.
    const GOOD: &[(&str, &[u8], &[u8])] = &[
        (
            "1-keyid.der",
            fixture!("1-keyid.der"),
            fixture!("plain-1.bin"),
        ),
        (
            "1-keyid.ber",
            fixture!("1-keyid.ber"),
            fixture!("plain-1.bin"),
        ),
        (
            "1-issuer.der",
            fixture!("1-issuer.der"),
            fixture!("plain-1.bin"),
        ),
        (
            "1-issuer.ber",
            fixture!("1-issuer.ber"),
            fixture!("plain-1.bin"),
        ),
        (
            "16-keyid.der",
            fixture!("16-keyid.der"),
            fixture!("plain-16.bin"),
        ),
        (
            "16-keyid.ber",
            fixture!("16-keyid.ber"),
            fixture!("plain-16.bin"),
        ),
        (
            "16-issuer.der",
            fixture!("16-issuer.der"),
            fixture!("plain-16.bin"),
        ),
        (
            "16-issuer.ber",
            fixture!("16-issuer.ber"),
            fixture!("plain-16.bin"),
        ),
        (
            "32-keyid.der",
            fixture!("32-keyid.der"),
            fixture!("plain-32.bin"),
        ),
        (
            "32-keyid.ber",
            fixture!("32-keyid.ber"),
            fixture!("plain-32.bin"),
        ),
        (
            "32-issuer.der",
            fixture!("32-issuer.der"),
            fixture!("plain-32.bin"),
        ),
        (
            "32-issuer.ber",
            fixture!("32-issuer.ber"),
            fixture!("plain-32.bin"),
        ),
        (
            "4096-keyid.der",
            fixture!("4096-keyid.der"),
            fixture!("plain-4096.bin"),
        ),
        (
            "4096-keyid.ber",
            fixture!("4096-keyid.ber"),
            fixture!("plain-4096.bin"),
        ),
        (
            "4096-issuer.der",
            fixture!("4096-issuer.der"),
            fixture!("plain-4096.bin"),
        ),
        (
            "4096-issuer.ber",
            fixture!("4096-issuer.ber"),
            fixture!("plain-4096.bin"),
        ),
    ];

    /// The fixtures' recipient: the committed test key.
    fn test_recipient() -> Recipient {
        Recipient::from_pkcs8(fixture!("recipient.pk8")).unwrap()
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("present")
    }

    #[test]
    fn openssl_fixtures_decrypt() {
        let recipient = test_recipient();
        for (name, ber, plain) in GOOD {
            let got = recipient
                .decrypt(ber)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.as_slice(), *plain, "{name}");
        }
    }

    #[test]
    fn encrypted_for_another_key_is_refused() {
        let recipient = test_recipient();
        let other = fixture!("bad-other-recipient.der");
        assert_eq!(recipient.decrypt(other), Err(RecipientError::KeyDecryption));
        // KMS's own answers (from the SDK's tests) were for a key we do not have.
        for kms in [
            fixture!("kms-sdk-c-constructed.ber"),
            fixture!("kms-sdk-c-primitive.ber"),
        ] {
            assert_eq!(recipient.decrypt(kms), Err(RecipientError::KeyDecryption));
        }
        // And a fresh key cannot open what was made for the test key.
        let fresh = Recipient::generate().unwrap();
        let (_, ber, _) = GOOD[0];
        assert_eq!(fresh.decrypt(ber), Err(RecipientError::KeyDecryption));
    }

    #[test]
    fn a_changed_encrypted_key_is_refused() {
        let recipient = test_recipient();
        for (name, ber, _) in GOOD {
            let env = cms::parse(ber).unwrap();
            let at = find(ber, &env.encrypted_key[..32]);
            let mut changed = ber.to_vec();
            changed[at + 100] ^= 0x01;
            assert_eq!(
                recipient.decrypt(&changed),
                Err(RecipientError::KeyDecryption),
                "{name}"
            );
        }
    }

    /// CBC: the last plaintext block is D(last) XOR the block before it (the IV for a single
    /// block). Its last byte is the pad length, 1..=16; XOR-ing 0x20 into the same byte of the
    /// block before makes it 33..=48, which PKCS#7 never allows: a deterministic padding error.
    #[test]
    fn a_changed_ciphertext_breaking_the_padding_is_refused() {
        let recipient = test_recipient();
        for (name, ber, _) in GOOD {
            let env = cms::parse(ber).unwrap();
            let content = &env.encrypted_content;
            let before_last: &[u8] = match content.len() {
                16 => &env.iv,
                n => &content[n - 32..n - 16],
            };
            let at = find(ber, before_last) + 15;
            let mut changed = ber.to_vec();
            changed[at] ^= 0x20;
            assert_eq!(
                recipient.decrypt(&changed),
                Err(RecipientError::ContentDecryption),
                "{name}"
            );
        }
    }

    /// AES-CBC has no MAC: a change that keeps the padding valid gives other plaintext, not an
    /// error. (The answer's integrity comes from the TLS connection to KMS.)
    #[test]
    fn a_changed_first_block_is_not_detected() {
        let recipient = test_recipient();
        let (_, ber, plain) = GOOD[12];
        let env = cms::parse(ber).unwrap();
        let at = find(ber, &env.encrypted_content[..16]);
        let mut changed = ber.to_vec();
        changed[at] ^= 0x01;
        let got = recipient.decrypt(&changed).unwrap();
        assert_ne!(got.as_slice(), plain);
        assert_eq!(got[32..], plain[32..], "only the first two blocks change");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let recipient = test_recipient();
        for (name, ber, _) in GOOD.iter().filter(|(n, ..)| n.starts_with("32-keyid")) {
            for n in 0..ber.len() {
                assert!(
                    matches!(recipient.decrypt(&ber[..n]), Err(RecipientError::Cms(_))),
                    "{name} cut to {n}"
                );
            }
        }
    }

    #[test]
    fn refusals_from_the_parser_come_through() {
        let recipient = test_recipient();
        let refused = recipient.decrypt(fixture!("bad-pkcs1.der"));
        assert!(
            matches!(&refused, Err(RecipientError::Cms(CmsError::KeyEncryption(oid)))
                if oid.as_str() == "1.2.840.113549.1.1.1"),
            "{refused:?}"
        );
        assert_eq!(
            recipient.decrypt(fixture!("bad-two-recipients.der")),
            Err(RecipientError::Cms(CmsError::RecipientCount(2)))
        );
    }

    /// The 32-byte fixture, parsed, with another encrypted key.
    fn parsed(encrypted_key: Vec<u8>) -> EnvelopedData<'static> {
        let mut env = cms::parse(GOOD[8].1).unwrap();
        env.encrypted_key = Cow::Owned(encrypted_key);
        env
    }

    #[test]
    fn content_keys_of_other_lengths_are_refused() {
        let recipient = test_recipient();
        assert_eq!(
            recipient.open(&parsed(vec![1; 255])),
            Err(RecipientError::EncryptedKeyLength {
                found: 255,
                expected: 256
            })
        );
        // An AES-128 key, properly RSA-OAEP-encrypted to us.
        let public = PublicEncryptingKey::from_der(recipient.public_key_der()).unwrap();
        let public = OaepPublicEncryptingKey::new(public).unwrap();
        let mut out = vec![0; public.ciphertext_size()];
        let encrypted = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &[7; 16], &mut out, None)
            .unwrap()
            .to_vec();
        assert_eq!(
            recipient.open(&parsed(encrypted)),
            Err(RecipientError::ContentKeyLength(16))
        );
    }

    #[test]
    fn generated_keys_are_rsa_2048_with_e_65537() {
        let a = Recipient::generate().unwrap();
        let b = Recipient::generate().unwrap();
        assert_ne!(a.public_key_der(), b.public_key_der());
        let spki = a.public_key_der();
        let public = PublicEncryptingKey::from_der(spki).unwrap();
        assert_eq!(public.key_size_bits(), 2048);
        // SubjectPublicKeyInfo { rsaEncryption, BIT STRING { RSAPublicKey { n, e } } }.
        assert_eq!(spki[0], 0x30);
        find(
            spki,
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ],
        );
        assert!(spki.ends_with(&[0x02, 0x03, 0x01, 0x00, 0x01]), "e = 65537");
        assert_eq!(KEY_ENCRYPTION_ALGORITHM, "RSAES_OAEP_SHA_256");
    }

    #[test]
    fn only_rsa_2048_pkcs8_keys_are_taken() {
        let rsa3072 = PrivateDecryptingKey::generate(KeySize::Rsa3072).unwrap();
        let pkcs8 = rsa3072.as_der().unwrap();
        assert_eq!(
            Recipient::from_pkcs8(pkcs8.as_ref()).unwrap_err(),
            RecipientError::Key("the RSA key is not 2048 bits")
        );
        assert_eq!(
            Recipient::from_pkcs8(b"not a key").unwrap_err(),
            RecipientError::Key("the PKCS#8 RSA private key was rejected")
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let recipient = test_recipient();
        let debug = format!("{recipient:?}");
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, recipient.public_key_der());
        assert_eq!(
            debug,
            format!(
                "Recipient {{ public_key_sha256: {:?}, .. }}",
                contract::hex::encode(digest.as_ref())
            )
        );
    }

    /// The whole path with OpenSSL as KMS: a fresh key, a certificate around its public key,
    /// `openssl cms -encrypt` to it (DER and streamed BER), and our decryption.
    #[test]
    fn a_generated_recipient_decrypts_what_openssl_encrypts() {
        let recipient = Recipient::generate().unwrap();
        let mut plain = vec![0u8; 1000];
        aws_lc_rs::rand::fill(&mut plain).unwrap();
        for stream in [false, true] {
            let ciphertext =
                crate::aws::tests::openssl_cms_encrypt(recipient.public_key_der(), &plain, stream);
            assert_eq!(
                ciphertext.get(1) == Some(&0x80),
                stream,
                "indefinite when streamed"
            );
            let env = cms::parse(&ciphertext).unwrap();
            assert_eq!(env.version, 2);
            let got = recipient.decrypt(&ciphertext).unwrap();
            assert_eq!(got.as_slice(), plain.as_slice(), "stream: {stream}");
        }
    }

    #[test]
    fn every_message() {
        let cases = [
            (
                RecipientError::Key("generating the RSA-2048 key pair failed"),
                "KMS recipient key: generating the RSA-2048 key pair failed",
            ),
            (
                RecipientError::Cms(CmsError::RecipientCount(2)),
                "KMS CiphertextForRecipient: CMS: 2 recipients, where exactly one is supported",
            ),
            (
                RecipientError::EncryptedKeyLength {
                    found: 255,
                    expected: 256,
                },
                "KMS CiphertextForRecipient: the encrypted content key is 255 bytes, not 256",
            ),
            (
                RecipientError::KeyDecryption,
                "KMS CiphertextForRecipient: RSA-OAEP decryption of the content key failed \
                 (encrypted for another key, or changed)",
            ),
            (
                RecipientError::ContentKeyLength(16),
                "KMS CiphertextForRecipient: the content key is 16 bytes, not 32 (AES-256)",
            ),
            (
                RecipientError::ContentDecryption,
                "KMS CiphertextForRecipient: AES-256-CBC decryption failed: bad padding \
                 (changed ciphertext or IV)",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
            assert!(!message.contains('\n'));
        }
        let cms = RecipientError::Cms(CmsError::Truncated);
        assert!(std::error::Error::source(&cms).is_some());
        assert!(std::error::Error::source(&RecipientError::KeyDecryption).is_none());
    }
}
