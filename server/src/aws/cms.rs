//! KMS's `CiphertextForRecipient`: a CMS `ContentInfo` holding `EnvelopedData` (RFC 5652
//! §3, §6), read strictly and without panicking from untrusted bytes. [`parse`] gives the
//! RSA-encrypted content key, the key-encryption algorithm, the AES-256-CBC IV and the
//! encrypted content; [`super::recipient`] decrypts them.
//!
//! # What KMS sends, and what is accepted
//!
//! The ground truth is AWS's own enclave SDK, <https://github.com/aws/aws-nitro-enclaves-sdk-c>:
//! `source/cms.c` (`aws_cms_parse_enveloped_data`) and the two answers recorded from KMS in
//! `tests/kmstool-enclaves/cms_test.c` (kept here as `server/tests/data/cms/kms-sdk-c-*.ber`).
//! KMS answers in **BER** with indefinite lengths:
//!
//! ```text
//! ContentInfo ::= SEQUENCE {
//!   contentType envelopedData (1.2.840.113549.1.7.3),
//!   content [0] EXPLICIT EnvelopedData ::= SEQUENCE {
//!     version 0 | 2,                        -- KMS: 2
//!     originatorInfo [0] IMPLICIT OPTIONAL, -- skipped
//!     recipientInfos SET { exactly one KeyTransRecipientInfo ::= SEQUENCE {
//!       version 0 | 2,                      -- KMS: 2
//!       rid: issuerAndSerialNumber SEQUENCE (version 0) | [0] subjectKeyIdentifier (version 2),
//!       keyEncryptionAlgorithm { rsaesOaep (1.2.840.113549.1.1.7), RSAES-OAEP-params },
//!       encryptedKey OCTET STRING } },
//!     encryptedContentInfo SEQUENCE {
//!       contentType data (1.2.840.113549.1.7.1),
//!       contentEncryptionAlgorithm { aes256-CBC (2.16.840.1.101.3.4.1.42), IV OCTET STRING (16) },
//!       encryptedContent [0] IMPLICIT OCTET STRING },
//!     unprotectedAttrs [1] IMPLICIT OPTIONAL } } -- ignored
//! ```
//!
//! - The encrypted content comes either as one constructed `[0]` (KMS and `openssl cms
//!   -stream`: indefinite length, OCTET STRING pieces to concatenate) or as primitive `[0]`
//!   (DER, and KMS's second recorded answer); like the SDK, several primitive `[0]` in a row
//!   are concatenated too. It must be a non-empty multiple of 16 bytes.
//! - The RSAES-OAEP parameters (RFC 8017 A.2.1, RFC 4055 §4.1) must name SHA-256
//!   (2.16.840.1.101.3.4.2.1) as `hashFunc` and MGF1 (1.2.840.113549.1.1.8) with SHA-256 as
//!   `maskGenFunc`, with `pSourceFunc` absent or an empty `pSpecified` label; the hash
//!   identifiers may carry NULL parameters or none (KMS sends NULL, OpenSSL none). An absent
//!   `hashFunc` or `maskGenFunc` means SHA-1 (the ASN.1 defaults) and is refused.
//! - **Absent parameters are accepted** and taken as SHA-256/MGF1-SHA-256
//!   ([`KeyEncryption::RsaesOaepAbsentParameters`]). RFC 4055 §4.1 wants them present next to an
//!   encrypted value, but KMS documents the algorithm as `RSAES_OAEP_SHA_256` (the only value of
//!   `Recipient.KeyEncryptionAlgorithm`) and the SDK never reads the field
//!   (`aws_attestation_rsa_decrypt` in `source/attestation.c` always uses SHA-256 for both);
//!   if the parameters were wrong the decryption fails anyway.
//! - `unprotectedAttrs` are skipped, as the SDK does: they are unauthenticated and nothing in
//!   them is needed to decrypt.
//! - Everything else is refused with an error naming what was found (OIDs in dotted form):
//!   other content types and versions, several or other kinds of recipients, PKCS#1 v1.5
//!   (`rsaEncryption`), OAEP with SHA-1, AES-128-CBC, an IV that is not 16 bytes, bytes after
//!   the `ContentInfo`. Input is bounded by [`MAX_CMS`], nesting to 16 levels below the
//!   outermost element.
//!
//! EnvelopedData authenticates nothing (AES-CBC without a MAC, and anyone holding the public
//! key can encrypt to it): that an answer comes from KMS rests on the TLS connection to KMS,
//! not on CMS.

mod ber;
#[cfg(test)]
mod tests;

use ber::{
    context, context_constructed, Reader, Tlv, INTEGER, NULL, OCTET_STRING, OID, SEQUENCE, SET,
};
use std::borrow::Cow;
use std::fmt;

/// The largest answer read. KMS's plaintexts are at most 4096 bytes, and their
/// `CiphertextForRecipient` is about 4.7 KB.
pub const MAX_CMS: usize = 64 * 1024;

/// The AES-256-CBC IV's length.
pub const IV_LEN: usize = 16;

/// `envelopedData` (1.2.840.113549.1.7.3).
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// `data` (1.2.840.113549.1.7.1).
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// `rsaesOaep` (1.2.840.113549.1.1.7).
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
/// `mgf1` (1.2.840.113549.1.1.8).
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// `pSpecified` (1.2.840.113549.1.1.9).
const OID_P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
/// `sha256` (2.16.840.1.101.3.4.2.1).
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// `aes256-CBC` (2.16.840.1.101.3.4.1.42).
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
/// `sha1` (1.3.14.3.2.26), the RSAES-OAEP default, in dotted form for errors.
const SHA1_DOTTED: &str = "1.3.14.3.2.26";

/// What [`parse`] found: the parts needed to decrypt, borrowed from the input where they
/// were in one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopedData<'a> {
    /// The EnvelopedData version (0 or 2; KMS sends 2).
    pub version: u8,
    /// Whom the content key was encrypted for.
    pub recipient: RecipientId<'a>,
    /// How the content key was encrypted.
    pub key_encryption: KeyEncryption,
    /// The RSA-OAEP-encrypted AES-256 content key.
    pub encrypted_key: Cow<'a, [u8]>,
    /// The AES-256-CBC IV.
    pub iv: [u8; IV_LEN],
    /// The AES-256-CBC ciphertext, its pieces concatenated: a non-empty multiple of 16 bytes.
    pub encrypted_content: Cow<'a, [u8]>,
}

/// The recipient's identifier (RFC 5652 §6.2.1 `RecipientIdentifier`), not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientId<'a> {
    /// Recipient version 0: the contents of the `IssuerAndSerialNumber` SEQUENCE.
    IssuerAndSerialNumber(&'a [u8]),
    /// Recipient version 2: the `subjectKeyIdentifier` (KMS: 32 bytes).
    SubjectKeyIdentifier(Cow<'a, [u8]>),
}

/// The key-encryption algorithms accepted: RSAES-OAEP with SHA-256 and MGF1-SHA-256 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyEncryption {
    /// `rsaesOaep` with parameters naming SHA-256, MGF1 with SHA-256 and an empty label
    /// (what KMS and OpenSSL send).
    RsaesOaepSha256,
    /// `rsaesOaep` without parameters, taken as SHA-256 and MGF1-SHA-256 as AWS documents
    /// (see the module documentation).
    RsaesOaepAbsentParameters,
}

/// An object identifier found where another was expected, in dotted form (with its name
/// when it is one this module knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oid(String);

impl Oid {
    fn new(der: &[u8]) -> Oid {
        Oid(dotted(der)
            .unwrap_or_else(|| format!("malformed OID 0x{}", contract::hex::encode(der))))
    }

    fn from_dotted(dotted: &str) -> Oid {
        Oid(dotted.to_owned())
    }

    /// The dotted form (`1.2.840.113549.1.1.1`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match oid_name(&self.0) {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => f.write_str(&self.0),
        }
    }
}

/// The names of the OIDs an answer may plausibly carry instead of the expected ones.
fn oid_name(dotted: &str) -> Option<&'static str> {
    Some(match dotted {
        "1.2.840.113549.1.7.1" => "data",
        "1.2.840.113549.1.7.2" => "signedData",
        "1.2.840.113549.1.7.3" => "envelopedData",
        "1.2.840.113549.1.7.6" => "encryptedData",
        "1.2.840.113549.1.9.16.1.23" => "authEnvelopedData",
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.7" => "rsaesOaep",
        "1.2.840.113549.1.1.8" => "mgf1",
        "1.2.840.113549.1.1.9" => "pSpecified",
        "1.3.14.3.2.26" => "sha1",
        "2.16.840.1.101.3.4.2.1" => "sha256",
        "2.16.840.1.101.3.4.2.2" => "sha384",
        "2.16.840.1.101.3.4.2.3" => "sha512",
        "2.16.840.1.101.3.4.2.4" => "sha224",
        "2.16.840.1.101.3.4.1.2" => "aes128-CBC",
        "2.16.840.1.101.3.4.1.22" => "aes192-CBC",
        "2.16.840.1.101.3.4.1.42" => "aes256-CBC",
        "2.16.840.1.101.3.4.1.46" => "aes256-GCM",
        "1.2.840.113549.3.7" => "des-ede3-cbc",
        _ => return None,
    })
}

/// The dotted form of an OID's contents, or `None` when they are not a valid encoding.
fn dotted(der: &[u8]) -> Option<String> {
    if der.last().is_none_or(|b| b & 0x80 != 0) {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    let mut first_byte = true;
    for &b in der {
        if first_byte && b == 0x80 {
            return None; // a non-minimal arc
        }
        if value > u64::MAX >> 7 {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        first_byte = b & 0x80 == 0;
        if first_byte {
            arcs.push(value);
            value = 0;
        }
    }
    let (&head, tail) = arcs.split_first()?;
    let (a, b) = match head {
        0..=39 => (0, head),
        40..=79 => (1, head - 40),
        _ => (2, head - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in tail {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    Some(out)
}

/// Why bytes are not a `CiphertextForRecipient` this module accepts. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmsError {
    /// The input is longer than [`MAX_CMS`].
    TooLarge(usize),
    /// An element runs past the end of its input or of the element around it.
    Truncated,
    /// Bytes that are not BER this reader takes (the reason).
    Encoding(&'static str),
    /// Elements nested deeper than the reader goes.
    TooDeep,
    /// An element with another tag where `field` was expected.
    Unexpected {
        /// What was expected.
        field: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A required element is absent.
    Missing(&'static str),
    /// More elements at the end of the named one.
    Extra(&'static str),
    /// Bytes after the outermost element.
    TrailingBytes(usize),
    /// The named INTEGER, OID or parameter is not a valid encoding.
    Malformed(&'static str),
    /// The ContentInfo's content type is not envelopedData.
    ContentType(Oid),
    /// A version number not accepted (`of` names the structure).
    Version {
        /// `EnvelopedData` or `KeyTransRecipientInfo`.
        of: &'static str,
        /// The version found.
        found: u64,
    },
    /// Not exactly one recipient.
    RecipientCount(usize),
    /// A recipient other than a KeyTransRecipientInfo (its tag).
    RecipientKind(u8),
    /// A key-encryption algorithm other than rsaesOaep.
    KeyEncryption(Oid),
    /// RSAES-OAEP parameters that are not RSAES-OAEP-params (the reason).
    OaepParameters(&'static str),
    /// An OAEP hash other than SHA-256.
    OaepHash {
        /// The hash found.
        found: Oid,
        /// Whether `hashFunc` was absent (so SHA-1 by default).
        defaulted: bool,
    },
    /// A mask generation function other than MGF1.
    OaepMaskGen(Oid),
    /// An MGF1 hash other than SHA-256.
    OaepMgfHash {
        /// The hash found.
        found: Oid,
        /// Whether `maskGenFunc` was absent (so MGF1 with SHA-1 by default).
        defaulted: bool,
    },
    /// A pSourceFunc other than pSpecified.
    OaepSource(Oid),
    /// A non-empty OAEP label (its length).
    OaepLabel(usize),
    /// The encrypted content's type is not data.
    EncryptedContentType(Oid),
    /// A content-encryption algorithm other than AES-256-CBC.
    ContentEncryption(Oid),
    /// An IV that is not 16 bytes (its length).
    IvLength(usize),
    /// No encrypted content (detached content).
    NoContent,
    /// Encrypted content that is empty or not a multiple of 16 bytes (its length).
    ContentLength(usize),
}

impl fmt::Display for CmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmsError::TooLarge(n) => write!(f, "CMS input of {n} bytes is over the {MAX_CMS}-byte limit"),
            CmsError::Truncated => f.write_str("CMS: an element runs past the end of its input"),
            CmsError::Encoding(what) => write!(f, "CMS: invalid BER: {what}"),
            CmsError::TooDeep => write!(f, "CMS: elements nested more than {} deep", ber::MAX_DEPTH),
            CmsError::Unexpected { field, tag } => {
                write!(f, "CMS: expected {field}, found tag 0x{tag:02x}")
            }
            CmsError::Missing(field) => write!(f, "CMS: {field} is missing"),
            CmsError::Extra(field) => write!(f, "CMS: unexpected element at the end of {field}"),
            CmsError::TrailingBytes(n) => write!(f, "CMS: {n} bytes after the ContentInfo"),
            CmsError::Malformed(field) => write!(f, "CMS: malformed {field}"),
            CmsError::ContentType(oid) => write!(
                f,
                "CMS content type is {oid}, not envelopedData (1.2.840.113549.1.7.3)"
            ),
            CmsError::Version { of, found } => write!(f, "CMS: unsupported {of} version {found}"),
            CmsError::RecipientCount(n) => {
                write!(f, "CMS: {n} recipients, where exactly one is supported")
            }
            CmsError::RecipientKind(tag) => {
                let kind = match tag {
                    0xa1 => "a KeyAgreeRecipientInfo",
                    0xa2 => "a KEKRecipientInfo",
                    0xa3 => "a PasswordRecipientInfo",
                    0xa4 => "an OtherRecipientInfo",
                    _ => "an unknown RecipientInfo",
                };
                write!(f, "CMS recipient is {kind} (tag 0x{tag:02x}), not a KeyTransRecipientInfo")
            }
            CmsError::KeyEncryption(oid) => write!(
                f,
                "CMS key encryption algorithm is {oid}, not rsaesOaep (1.2.840.113549.1.1.7)"
            ),
            CmsError::OaepParameters(what) => write!(f, "CMS RSAES-OAEP parameters: {what}"),
            CmsError::OaepHash { found, defaulted } => write!(
                f,
                "CMS RSAES-OAEP hash is {found}{}, not sha256 (2.16.840.1.101.3.4.2.1)",
                if *defaulted { ", the default when hashFunc is absent" } else { "" }
            ),
            CmsError::OaepMaskGen(oid) => write!(
                f,
                "CMS RSAES-OAEP mask generation function is {oid}, not mgf1 (1.2.840.113549.1.1.8)"
            ),
            CmsError::OaepMgfHash { found, defaulted } => write!(
                f,
                "CMS RSAES-OAEP MGF1 hash is {found}{}, not sha256 (2.16.840.1.101.3.4.2.1)",
                if *defaulted { ", the default when maskGenFunc is absent" } else { "" }
            ),
            CmsError::OaepSource(oid) => write!(
                f,
                "CMS RSAES-OAEP label source is {oid}, not pSpecified (1.2.840.113549.1.1.9)"
            ),
            CmsError::OaepLabel(n) => {
                write!(f, "CMS RSAES-OAEP label is {n} bytes; only the empty label is supported")
            }
            CmsError::EncryptedContentType(oid) => write!(
                f,
                "CMS encrypted content type is {oid}, not data (1.2.840.113549.1.7.1)"
            ),
            CmsError::ContentEncryption(oid) => write!(
                f,
                "CMS content encryption algorithm is {oid}, not aes256-CBC (2.16.840.1.101.3.4.1.42)"
            ),
            CmsError::IvLength(n) => write!(f, "CMS AES-256-CBC IV is {n} bytes, not 16"),
            CmsError::NoContent => {
                f.write_str("CMS encrypted content is absent (detached content is not supported)")
            }
            CmsError::ContentLength(n) => write!(
                f,
                "CMS encrypted content is {n} bytes, not a non-zero multiple of 16"
            ),
        }
    }
}

impl std::error::Error for CmsError {}

/// Reads KMS's `CiphertextForRecipient` (already base64-decoded): see the module
/// documentation for what is accepted.
///
/// # Errors
///
/// A [`CmsError`] naming the first thing found wrong.
pub fn parse(ber: &[u8]) -> Result<EnvelopedData<'_>, CmsError> {
    if ber.len() > MAX_CMS {
        return Err(CmsError::TooLarge(ber.len()));
    }
    let mut outer = Reader::new(ber);
    let content_info = outer.expect(SEQUENCE, "ContentInfo SEQUENCE")?;
    if outer.remaining() != 0 {
        return Err(CmsError::TrailingBytes(outer.remaining()));
    }
    let mut content_info = content_info.children()?;
    let content_type = content_info.expect(OID, "ContentInfo contentType")?;
    if content_type.content != OID_ENVELOPED_DATA {
        return Err(CmsError::ContentType(Oid::new(content_type.content)));
    }
    let explicit = content_info.expect(context_constructed(0), "ContentInfo content [0]")?;
    content_info.finish("ContentInfo")?;
    let mut explicit = explicit.children()?;
    let enveloped = explicit.expect(SEQUENCE, "EnvelopedData SEQUENCE")?;
    explicit.finish("ContentInfo content [0]")?;
    enveloped_data(enveloped)
}

/// `EnvelopedData` (RFC 5652 §6.1).
fn enveloped_data(tlv: Tlv<'_>) -> Result<EnvelopedData<'_>, CmsError> {
    let mut fields = tlv.children()?;
    let version = ber::small_uint(
        fields.expect(INTEGER, "EnvelopedData version")?,
        "EnvelopedData version",
    )?;
    let version = match version {
        0 => 0,
        2 => 2,
        found => {
            return Err(CmsError::Version {
                of: "EnvelopedData",
                found,
            })
        }
    };
    // originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL: certificates and CRLs, unused.
    fields.optional(context_constructed(0))?;
    let recipient_infos = fields.expect(SET, "recipientInfos SET")?;
    let ktri = only_recipient(recipient_infos)?;
    let (recipient, key_encryption, encrypted_key) = key_trans_recipient_info(ktri)?;
    let eci = fields.expect(SEQUENCE, "EncryptedContentInfo SEQUENCE")?;
    let (iv, encrypted_content) = encrypted_content_info(eci)?;
    // unprotectedAttrs [1] IMPLICIT UnprotectedAttributes OPTIONAL: unauthenticated and not
    // needed to decrypt; skipped as the SDK skips them.
    fields.optional(context_constructed(1))?;
    fields.finish("EnvelopedData")?;
    Ok(EnvelopedData {
        version,
        recipient,
        key_encryption,
        encrypted_key,
        iv,
        encrypted_content,
    })
}

/// The one RecipientInfo of `recipientInfos`, which must be a KeyTransRecipientInfo.
fn only_recipient(set: Tlv<'_>) -> Result<Tlv<'_>, CmsError> {
    let mut recipients = set.children()?;
    let mut first = None;
    let mut count = 0usize;
    while let Some(recipient) = recipients.next_element()? {
        count = count.saturating_add(1);
        first.get_or_insert(recipient);
    }
    match first {
        Some(only) if count == 1 => {
            if only.tag == SEQUENCE {
                Ok(only)
            } else {
                Err(CmsError::RecipientKind(only.tag))
            }
        }
        _ => Err(CmsError::RecipientCount(count)),
    }
}

/// `KeyTransRecipientInfo` (RFC 5652 §6.2.1).
fn key_trans_recipient_info(
    tlv: Tlv<'_>,
) -> Result<(RecipientId<'_>, KeyEncryption, Cow<'_, [u8]>), CmsError> {
    let mut fields = tlv.children()?;
    let version = ber::small_uint(
        fields.expect(INTEGER, "KeyTransRecipientInfo version")?,
        "KeyTransRecipientInfo version",
    )?;
    let recipient = match version {
        0 => {
            let rid = fields.expect(SEQUENCE, "issuerAndSerialNumber (recipient version 0)")?;
            RecipientId::IssuerAndSerialNumber(rid.content)
        }
        2 => {
            const FIELD: &str = "subjectKeyIdentifier [0] (recipient version 2)";
            let rid = match fields.next_element()? {
                Some(t) if t.tag == context(0) || t.tag == context_constructed(0) => t,
                Some(t) => {
                    return Err(CmsError::Unexpected {
                        field: FIELD,
                        tag: t.tag,
                    })
                }
                None => return Err(CmsError::Missing(FIELD)),
            };
            RecipientId::SubjectKeyIdentifier(ber::octets(rid, FIELD)?)
        }
        found => {
            return Err(CmsError::Version {
                of: "KeyTransRecipientInfo",
                found,
            })
        }
    };
    let algorithm = fields.expect(SEQUENCE, "keyEncryptionAlgorithm SEQUENCE")?;
    let key_encryption = key_encryption_algorithm(algorithm)?;
    let encrypted_key = octet_string(&mut fields, "encryptedKey OCTET STRING")?;
    fields.finish("KeyTransRecipientInfo")?;
    Ok((recipient, key_encryption, encrypted_key))
}

/// The next element, an OCTET STRING (primitive or, in BER, constructed).
fn octet_string<'a>(
    fields: &mut Reader<'a>,
    field: &'static str,
) -> Result<Cow<'a, [u8]>, CmsError> {
    match fields.next_element()? {
        Some(t) if t.tag == OCTET_STRING || t.tag == ber::OCTET_STRING_CONSTRUCTED => {
            ber::octets(t, field)
        }
        Some(t) => Err(CmsError::Unexpected { field, tag: t.tag }),
        None => Err(CmsError::Missing(field)),
    }
}

/// The key-encryption AlgorithmIdentifier: rsaesOaep with SHA-256 (RFC 4055 §4.1).
fn key_encryption_algorithm(tlv: Tlv<'_>) -> Result<KeyEncryption, CmsError> {
    let mut fields = tlv.children()?;
    let oid = fields.expect(OID, "keyEncryptionAlgorithm OID")?;
    if oid.content != OID_RSAES_OAEP {
        return Err(CmsError::KeyEncryption(Oid::new(oid.content)));
    }
    let Some(params) = fields.next_element()? else {
        return Ok(KeyEncryption::RsaesOaepAbsentParameters);
    };
    fields.finish("keyEncryptionAlgorithm")?;
    match params.tag {
        SEQUENCE => {}
        NULL => {
            return Err(CmsError::OaepParameters(
                "NULL instead of RSAES-OAEP-params",
            ))
        }
        tag => {
            return Err(CmsError::Unexpected {
                field: "RSAES-OAEP-params SEQUENCE",
                tag,
            })
        }
    }
    let mut params = params.children()?;
    // hashFunc [0] EXPLICIT HashAlgorithm DEFAULT sha1.
    match params.optional(context_constructed(0))? {
        None => {
            return Err(CmsError::OaepHash {
                found: Oid::from_dotted(SHA1_DOTTED),
                defaulted: true,
            })
        }
        Some(hash) => {
            let found = hash_algorithm(explicit_one(hash, "hashFunc [0]")?, "hashFunc")?;
            if found != OID_SHA256 {
                return Err(CmsError::OaepHash {
                    found: Oid::new(found),
                    defaulted: false,
                });
            }
        }
    }
    // maskGenFunc [1] EXPLICIT MaskGenAlgorithm DEFAULT mgf1SHA1.
    match params.optional(context_constructed(1))? {
        None => {
            return Err(CmsError::OaepMgfHash {
                found: Oid::from_dotted(SHA1_DOTTED),
                defaulted: true,
            })
        }
        Some(mgf) => {
            let mgf = explicit_one(mgf, "maskGenFunc [1]")?;
            let mut mgf = mgf.children()?;
            let oid = mgf.expect(OID, "maskGenFunc OID")?;
            if oid.content != OID_MGF1 {
                return Err(CmsError::OaepMaskGen(Oid::new(oid.content)));
            }
            let hash = mgf.expect(SEQUENCE, "MGF1 hash AlgorithmIdentifier")?;
            mgf.finish("maskGenFunc")?;
            let found = hash_algorithm(hash, "MGF1 hash")?;
            if found != OID_SHA256 {
                return Err(CmsError::OaepMgfHash {
                    found: Oid::new(found),
                    defaulted: false,
                });
            }
        }
    }
    // pSourceFunc [2] EXPLICIT PSourceAlgorithm DEFAULT pSpecifiedEmpty.
    if let Some(source) = params.optional(context_constructed(2))? {
        let source = explicit_one(source, "pSourceFunc [2]")?;
        let mut source = source.children()?;
        let oid = source.expect(OID, "pSourceFunc OID")?;
        if oid.content != OID_P_SPECIFIED {
            return Err(CmsError::OaepSource(Oid::new(oid.content)));
        }
        let label = octet_string(&mut source, "pSpecified label OCTET STRING")?;
        source.finish("pSourceFunc")?;
        if !label.is_empty() {
            return Err(CmsError::OaepLabel(label.len()));
        }
    }
    params.finish("RSAES-OAEP-params")?;
    Ok(KeyEncryption::RsaesOaepSha256)
}

/// The single AlgorithmIdentifier SEQUENCE inside an EXPLICIT `[n]`.
fn explicit_one<'a>(tlv: Tlv<'a>, field: &'static str) -> Result<Tlv<'a>, CmsError> {
    let mut inner = tlv.children()?;
    let only = inner.expect(SEQUENCE, field)?;
    inner.finish(field)?;
    Ok(only)
}

/// A hash AlgorithmIdentifier's OID; its parameters must be NULL or absent (RFC 4055 §2.1
/// lets senders use either).
fn hash_algorithm<'a>(tlv: Tlv<'a>, field: &'static str) -> Result<&'a [u8], CmsError> {
    let mut fields = tlv.children()?;
    let oid = fields.expect(OID, field)?;
    if let Some(null) = fields.next_element()? {
        if null.tag != NULL || !null.content.is_empty() {
            return Err(CmsError::Malformed("hash AlgorithmIdentifier parameters"));
        }
    }
    fields.finish(field)?;
    Ok(oid.content)
}

/// `EncryptedContentInfo` (RFC 5652 §6.1) with AES-256-CBC (RFC 3565 §4.1): the IV and the
/// ciphertext.
fn encrypted_content_info(tlv: Tlv<'_>) -> Result<([u8; IV_LEN], Cow<'_, [u8]>), CmsError> {
    let mut fields = tlv.children()?;
    let content_type = fields.expect(OID, "EncryptedContentInfo contentType")?;
    if content_type.content != OID_DATA {
        return Err(CmsError::EncryptedContentType(Oid::new(
            content_type.content,
        )));
    }
    let algorithm = fields.expect(SEQUENCE, "contentEncryptionAlgorithm SEQUENCE")?;
    let mut algorithm = algorithm.children()?;
    let oid = algorithm.expect(OID, "contentEncryptionAlgorithm OID")?;
    if oid.content != OID_AES256_CBC {
        return Err(CmsError::ContentEncryption(Oid::new(oid.content)));
    }
    let iv = octet_string(&mut algorithm, "AES-256-CBC IV OCTET STRING")?;
    algorithm.finish("contentEncryptionAlgorithm")?;
    let iv: [u8; IV_LEN] = iv
        .as_ref()
        .try_into()
        .map_err(|_| CmsError::IvLength(iv.len()))?;
    // encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL: one constructed [0] of OCTET
    // STRING pieces, or primitive [0] (several in a row are concatenated, as the SDK does).
    let content = match fields.next_element()? {
        None => return Err(CmsError::NoContent),
        Some(t) if t.tag == context_constructed(0) => ber::octets(t, "encryptedContent piece")?,
        Some(t) if t.tag == context(0) => {
            let mut content = Cow::Borrowed(t.content);
            while let Some(more) = fields.optional(context(0))? {
                content.to_mut().extend_from_slice(more.content);
            }
            content
        }
        Some(t) => {
            return Err(CmsError::Unexpected {
                field: "encryptedContent [0]",
                tag: t.tag,
            })
        }
    };
    fields.finish("EncryptedContentInfo")?;
    if content.is_empty() || content.len() % IV_LEN != 0 {
        return Err(CmsError::ContentLength(content.len()));
    }
    Ok((iv, content))
}
