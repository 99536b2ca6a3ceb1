//! Verifying an attestation document: what makes it genuine (ES384 signature by the leaf
//! certificate, a certificate chain up to the pinned AWS root, valid at a chosen time) and what
//! makes it the enclave we expect (PCRs equal to a measurements file, not a debug enclave, our
//! nonce, the TLS certificate we saw).
//!
//! The steps run in this order, and the first failure is the verdict ([`VerifyError::step`]):
//!
//! 1. `parse`: [`parse_unverified`], then the fields the checks need (digest `SHA384`, 48-byte
//!    PCR0/1/2);
//! 2. `algorithm`: the protected header says ES384 (-35); QEMU's emulator writes -1 and signs
//!    nothing, accepted only with [`Policy::insecure_emulator`];
//! 3. `chain`: `cabundle[0]` is the pinned root, and the leaf `certificate` chains through
//!    `cabundle[1..]` to it (RFC 5280 path building, CA constraints, by rustls-webpki);
//!    `validity`: every certificate of that path is valid at [`Policy::at_unix_secs`];
//! 4. `signature`: the ES384 signature over `["Signature1", protected, h'', payload]` verifies
//!    with the leaf's P-384 key;
//! 5. `debug`: PCR0, PCR1 and PCR2 all zero (a debug enclave, whose memory the operator can
//!    read) is refused unless [`Policy::allow_debug`];
//! 6. `pcr`: every PCR of the measurements equals the document's;
//! 7. `nonce`: the document carries the nonce we sent;
//! 8. `binding` ([`Policy::binding`]): the document is tied to the TLS certificate we saw. From
//!    the endpoint: `public_key` is its SubjectPublicKeyInfo and `user_data` the SHA-256 of its
//!    DER; carried in the certificate itself: the same `public_key` and the fixed `user_data` of
//!    [`contract::cert_attestation`]; nitriding's convention: `user_data` starts with the
//!    multihash of the certificate's SHA-256 (`public_key` is not used);
//! 9. `freshness`, for a document carried in the certificate: its timestamp lies within the
//!    certificate's validity (notBefore, the enclave's clock, with [`CLOCK_TOLERANCE_SECS`]),
//!    is not in the future, and is at most the maximum age old when one is given.

use std::collections::BTreeMap;
use std::fmt;

use ciborium::value::Value;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};

use super::doc::{parse_unverified, AttestationDoc};
use crate::error::Error;
use crate::measure::hex;
use contract::binding::{Binding, BindingField};

/// SHA-256, for the binding.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
use contract::der;

/// COSE algorithm ES384.
pub const ES384: i64 = -35;
/// The algorithm QEMU's emulated NSM writes in its unsigned documents.
pub const EMULATOR_ALGORITHM: i64 = -1;
const PCR_LEN: usize = 48;
const MAX_BUNDLE: usize = 8;

/// The certificate signature algorithms of the Nitro PKI: ECDSA P-384, SHA-384 (and the
/// P-256 / SHA-384 combinations webpki lists separately).
static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
];

/// The PCR values an enclave must report: read from a nitro-cli / `eif-builder build`
/// measurements file, `{"Measurements": {"PCR0": "…", "PCR1": "…", "PCR2": "…"[, "PCR8": …]}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedPcrs {
    pcrs: BTreeMap<u8, Vec<u8>>,
}

/// Decodes a hex argument (either case), naming it in the error.
pub fn parse_hex(text: &str, what: &str) -> crate::Result<Vec<u8>> {
    contract::hex::decode(text.trim())
        .map_err(|_| Error::invalid(what, "is not an even number of hex digits"))
}

impl ExpectedPcrs {
    /// Reads a measurements file strictly (see [`contract::measurements`]): PCR0, PCR1 and
    /// PCR2 are required, any other `PCRn` present (PCR8 of a signed image) is checked too; a
    /// key spelled otherwise, given twice or unknown is an error naming it.
    pub fn from_measurements_json(text: &str) -> crate::Result<Self> {
        let m = contract::measurements::Measurements::parse(text)
            .map_err(|e| Error::malformed("measurements file", e.to_string()))?;
        Ok(ExpectedPcrs::from(&m))
    }

    /// The expected values, index → 48 bytes.
    pub fn pcrs(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.pcrs
    }
}

impl From<&contract::measurements::Measurements> for ExpectedPcrs {
    fn from(m: &contract::measurements::Measurements) -> Self {
        ExpectedPcrs {
            pcrs: m.iter().map(|(i, p)| (i, p.to_vec())).collect(),
        }
    }
}

impl From<&crate::Measurements> for ExpectedPcrs {
    fn from(m: &crate::Measurements) -> Self {
        ExpectedPcrs::from(&m.to_contract())
    }
}

impl ExpectedPcrs {
    /// Whether PCR0, PCR1 and PCR2 are all zero: the measurements of a debug enclave, which is
    /// all `--allow-debug` accepts.
    pub fn is_debug(&self) -> bool {
        (0..3u8).all(|i| self.pcrs.get(&i).is_some_and(|v| v.iter().all(|&b| b == 0)))
    }
}

/// Seconds the enclave's clock (a certificate's notBefore) may be ahead of the NSM's timestamp,
/// and the NSM's ahead of ours.
pub const CLOCK_TOLERANCE_SECS: u64 = 300;

/// How a document is tied to the TLS certificate of the connection it was had through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound<'a> {
    /// Not tied to any (a document read from a file).
    Nothing,
    /// Fetched from the attestation endpoint over a connection that showed this certificate
    /// (DER): [`contract::binding::Binding::of_certificate`].
    Endpoint(&'a [u8]),
    /// Carried in this certificate's attestation extension:
    /// [`contract::binding::Binding::in_certificate`], and the `freshness` step.
    InCertificate {
        /// The certificate (DER).
        certificate: &'a [u8],
        /// The oldest a document may be, in seconds, if there is a limit.
        max_age_secs: Option<u64>,
    },
    /// Fetched from a nitriding enclave's `/enclave/attestation` over a connection that showed
    /// this certificate: `user_data` is `0x12 0x20` and the SHA-256 of its DER, then the
    /// application's key hash (68 bytes); nitriding's first versions wrote `sha256:` and the
    /// digest, `;sha256:` and the other (79 bytes).
    Nitriding(&'a [u8]),
}

/// What a document must satisfy.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// The trust anchor (DER); normally [`super::aws_root_der`].
    pub root_der: &'a [u8],
    /// The verification time, seconds since the Unix epoch (certificates are valid when
    /// notBefore ≤ time ≤ notAfter, to the second).
    pub at_unix_secs: u64,
    /// The PCRs the enclave must report.
    pub expected: &'a ExpectedPcrs,
    /// The nonce the document must carry, if we sent one.
    pub nonce: Option<&'a [u8]>,
    /// How the document must be tied to a TLS certificate.
    pub binding: Bound<'a>,
    /// Accept a debug enclave (PCR0/1/2 all zero) -- only against measurements that are zero
    /// themselves: a debug enclave can run any code, so it never passes for a real image.
    pub allow_debug: bool,
    /// Accept QEMU's unsigned documents (algorithm -1) without signature or chain checks.
    pub insecure_emulator: bool,
}

/// A document that passed every check of its [`Policy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The enclave's id.
    pub module_id: String,
    /// Milliseconds since the Unix epoch, as the NSM wrote it.
    pub timestamp: u64,
    /// Every PCR of the document.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The public key the enclave bound.
    pub public_key: Option<Vec<u8>>,
    /// The data the enclave bound.
    pub user_data: Option<Vec<u8>>,
    /// The nonce in the document.
    pub nonce: Option<Vec<u8>>,
    /// False only for an emulator document accepted under [`Policy::insecure_emulator`].
    pub signature_checked: bool,
    /// True for a debug enclave accepted under [`Policy::allow_debug`] (against zero
    /// measurements).
    pub debug: bool,
}

/// What the signed part of a document says, once its signature and chain are known good (or
/// were skipped for the emulator): reported with policy failures, so a PCR mismatch shows the
/// document's PCRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The enclave's id.
    pub module_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Every PCR of the document.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
}

/// Why a document was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The document does not parse, or lacks what the checks need.
    Malformed(Error),
    /// The protected header names another algorithm than ES384.
    Algorithm {
        /// The COSE algorithm found.
        found: i64,
        /// Why it is refused.
        detail: &'static str,
    },
    /// The certificate chain does not lead to the pinned root.
    Chain(String),
    /// A certificate of the chain is not valid at the verification time.
    Validity(String),
    /// The COSE signature does not verify with the leaf certificate's key.
    Signature(String),
    /// PCR0/1/2 are all zero: a debug-mode enclave, refused without `--allow-debug`.
    Debug(Authenticated),
    /// A debug-mode enclave offered for measurements of a real image (`--allow-debug` accepts
    /// a debug enclave only against zero measurements).
    DebugForImage {
        /// PCR0 of the measurements, hex.
        expected: String,
        /// The document's content.
        doc: Authenticated,
    },
    /// A PCR differs from the measurements.
    Pcr {
        /// The PCR index.
        index: u8,
        /// From the measurements, hex.
        expected: String,
        /// From the document, hex (`absent` when the document has no such PCR).
        actual: String,
        /// The document's content.
        doc: Authenticated,
    },
    /// The document's nonce is not the one sent.
    Nonce {
        /// The nonce sent, hex.
        expected: String,
        /// The document's (`null` when it has none), hex.
        actual: String,
        /// The document's content.
        doc: Authenticated,
    },
    /// A document carried in the certificate is older than allowed, or its timestamp does not
    /// fit the certificate's validity.
    Freshness {
        /// What is wrong.
        detail: String,
        /// The document's content.
        doc: Authenticated,
    },
    /// `public_key` or `user_data` does not match the TLS certificate.
    Binding {
        /// Which field.
        field: &'static str,
        /// Derived from the TLS certificate, hex.
        expected: String,
        /// From the document (`null` when absent), hex.
        actual: String,
        /// The document's content.
        doc: Authenticated,
    },
}

impl VerifyError {
    /// A stable name of the check that failed: `parse`, `algorithm`, `chain`, `validity`,
    /// `signature`, `debug`, `pcr`, `nonce`, `binding` or `freshness`.
    pub fn step(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "parse",
            VerifyError::Algorithm { .. } => "algorithm",
            VerifyError::Chain(_) => "chain",
            VerifyError::Validity(_) => "validity",
            VerifyError::Signature(_) => "signature",
            VerifyError::Debug(_) | VerifyError::DebugForImage { .. } => "debug",
            VerifyError::Pcr { .. } => "pcr",
            VerifyError::Nonce { .. } => "nonce",
            VerifyError::Binding { .. } => "binding",
            VerifyError::Freshness { .. } => "freshness",
        }
    }

    /// The authenticated content, for failures that come after the signature check.
    pub fn document(&self) -> Option<&Authenticated> {
        match self {
            VerifyError::Debug(doc)
            | VerifyError::DebugForImage { doc, .. }
            | VerifyError::Pcr { doc, .. }
            | VerifyError::Nonce { doc, .. }
            | VerifyError::Binding { doc, .. }
            | VerifyError::Freshness { doc, .. } => Some(doc),
            _ => None,
        }
    }

    /// The expected and actual values of a mismatch.
    pub fn expected_actual(&self) -> Option<(&str, &str)> {
        match self {
            VerifyError::Pcr {
                expected, actual, ..
            }
            | VerifyError::Nonce {
                expected, actual, ..
            }
            | VerifyError::Binding {
                expected, actual, ..
            } => Some((expected, actual)),
            _ => None,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(e) => write!(f, "{e}"),
            VerifyError::Algorithm { found, detail } => {
                write!(f, "COSE algorithm {found} refused: {detail}")
            }
            VerifyError::Chain(d) => write!(f, "certificate chain refused: {d}"),
            VerifyError::Validity(d) => {
                write!(f, "certificate not valid at the verification time: {d}")
            }
            VerifyError::Signature(d) => write!(f, "COSE signature refused: {d}"),
            VerifyError::Debug(_) => write!(
                f,
                "PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode (its memory is \
                 readable by the operator); refused without --allow-debug"
            ),
            VerifyError::DebugForImage { expected, .. } => write!(
                f,
                "PCR0, PCR1 and PCR2 are all zero: a debug-mode enclave, which can run any code; \
                 --allow-debug accepts it only against measurements that are zero too, and these \
                 are a real image's (PCR0 {expected})"
            ),
            VerifyError::Pcr {
                index,
                expected,
                actual,
                ..
            } => write!(
                f,
                "PCR{index} mismatch: expected {expected}, found {actual}"
            ),
            VerifyError::Nonce {
                expected, actual, ..
            } => write!(f, "nonce mismatch: expected {expected}, found {actual}"),
            VerifyError::Binding {
                field,
                expected,
                actual,
                ..
            } => write!(
                f,
                "{field} is not bound to the TLS certificate: expected {expected}, found {actual}"
            ),
            VerifyError::Freshness { detail, .. } => {
                write!(
                    f,
                    "the certificate's attestation document is not fresh: {detail}"
                )
            }
        }
    }
}

impl std::error::Error for VerifyError {}

fn malformed(what: &str, detail: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(Error::malformed(
        format!("attestation document {what}"),
        detail,
    ))
}

fn utc(t: UnixTime) -> String {
    crate::time::rfc3339_from_unix(t.as_secs()).unwrap_or_else(|_| format!("{}s", t.as_secs()))
}

fn webpki_reason(e: &webpki::Error) -> VerifyError {
    match e {
        webpki::Error::CertExpired { time, not_after } => VerifyError::Validity(format!(
            "a certificate expired at {} (verification time {})",
            utc(*not_after),
            utc(*time)
        )),
        webpki::Error::CertNotValidYet { time, not_before } => VerifyError::Validity(format!(
            "a certificate is valid only from {} (verification time {})",
            utc(*not_before),
            utc(*time)
        )),
        _ => VerifyError::Chain(format!("{e:?}")),
    }
}

/// Checks the chain leaf → `cabundle[1..]` → `cabundle[0]` = the pinned root at `at_unix_secs`.
fn check_chain(
    certificate: &[u8],
    cabundle: &[Vec<u8>],
    root_der: &[u8],
    at_unix_secs: u64,
) -> Result<(), VerifyError> {
    let Some((first, intermediates)) = cabundle.split_first() else {
        return Err(VerifyError::Chain("cabundle is empty".into()));
    };
    if cabundle.len() > MAX_BUNDLE {
        return Err(VerifyError::Chain(format!(
            "cabundle has {} certificates, more than {MAX_BUNDLE}",
            cabundle.len()
        )));
    }
    if first.as_slice() != root_der {
        return Err(VerifyError::Chain(format!(
            "cabundle[0] (SHA-256 {}) is not the pinned root (SHA-256 {})",
            super::root::sha256_hex(first),
            super::root::sha256_hex(root_der)
        )));
    }
    let root = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| VerifyError::Chain(format!("the root certificate: {e:?}")))?;
    let leaf = CertificateDer::from(certificate);
    let end_entity = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| VerifyError::Chain(format!("the leaf certificate: {e:?}")))?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix_secs));
    end_entity
        .verify_for_usage(
            CHAIN_ALGORITHMS,
            &[anchor],
            &intermediates,
            time,
            // The NSM's leaf has no extendedKeyUsage; one naming another purpose is refused.
            webpki::KeyUsage::required_if_present(&[]),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| webpki_reason(&e))
}

/// Checks the ES384 signature over `["Signature1", protected, h'', payload]`.
fn check_signature(
    certificate: &[u8],
    protected: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    let key = der::certificate_ec_key(certificate)
        .map_err(|e| VerifyError::Signature(format!("leaf certificate: {e}")))?;
    if key.curve != der::OID_P384 {
        return Err(VerifyError::Signature(format!(
            "the leaf key is on {}, ES384 needs P-384",
            der::curve_name(key.curve)
        )));
    }
    let structure = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]);
    let mut to_be_signed = Vec::with_capacity(payload.len() + protected.len() + 32);
    ciborium::ser::into_writer(&structure, &mut to_be_signed)
        .map_err(|e| VerifyError::Signature(format!("cannot encode Sig_structure: {e}")))?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
        key.point,
    )
    .verify(&to_be_signed, signature)
    .map_err(|_| {
        VerifyError::Signature(format!(
            "the {}-byte signature does not verify with the leaf certificate's key",
            signature.len()
        ))
    })
}

fn opt_hex(b: Option<&[u8]>) -> String {
    b.map_or_else(|| "null".to_string(), hex)
}

/// nitriding's binding: `user_data` holds the multihash (`0x12 0x20`, 32 bytes) of the
/// SHA-256 of the certificate's DER first, or (its first versions) `sha256:` and the digest.
fn check_nitriding(
    cert: &[u8],
    user_data: Option<&[u8]>,
    doc: &Authenticated,
) -> Result<(), VerifyError> {
    let digest = sha256(cert);
    let found = user_data.unwrap_or_default();
    let (prefix, len): (&[u8], usize) = if found.len() == 79 {
        (b"sha256:", 79)
    } else {
        (&[0x12, 0x20], 68)
    };
    let ok = found.len() == len
        && found.get(..prefix.len()) == Some(prefix)
        && found.get(prefix.len()..prefix.len() + 32) == Some(&digest[..]);
    if ok {
        return Ok(());
    }
    let mut expected = prefix.to_vec();
    expected.extend_from_slice(&digest);
    Err(VerifyError::Binding {
        field: "user_data",
        expected: format!(
            "{}… (nitriding: the certificate's SHA-256 first)",
            hex(&expected)
        ),
        actual: opt_hex(user_data),
        doc: doc.clone(),
    })
}

/// The `freshness` step of a document carried in `cert`.
fn check_freshness(
    cert: &[u8],
    max_age_secs: Option<u64>,
    now: u64,
    doc: &Authenticated,
) -> Result<(), VerifyError> {
    let fail = |detail: String| VerifyError::Freshness {
        detail,
        doc: doc.clone(),
    };
    let (not_before, not_after) = der::certificate(cert)
        .and_then(|c| c.validity())
        .map_err(|e| VerifyError::Malformed(Error::malformed("TLS certificate", e.to_string())))?;
    let stamped = i64::try_from(doc.timestamp / 1000).unwrap_or(i64::MAX);
    let tolerance = i64::try_from(CLOCK_TOLERANCE_SECS).unwrap_or(0);
    let when = |secs: i64| contract::date::rfc3339(secs);
    if stamped < not_before.saturating_sub(tolerance) || stamped > not_after {
        return Err(fail(format!(
            "its timestamp {} is outside the certificate's validity ({} to {})",
            when(stamped),
            when(not_before),
            when(not_after)
        )));
    }
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    if stamped > now.saturating_add(tolerance) {
        return Err(fail(format!(
            "its timestamp {} is after the verification time {}",
            when(stamped),
            when(now)
        )));
    }
    let age = u64::try_from(now.saturating_sub(stamped)).unwrap_or(0);
    match max_age_secs {
        Some(max) if age > max => Err(fail(format!(
            "it is {} old (made {}), more than the maximum age {}",
            contract::duration::format(std::time::Duration::from_secs(age)),
            when(stamped),
            contract::duration::format(std::time::Duration::from_secs(max))
        ))),
        _ => Ok(()),
    }
}

/// Verifies an attestation document (raw CBOR) against `policy`. See the module documentation
/// for the steps and their order.
pub fn verify(document: &[u8], policy: &Policy<'_>) -> Result<Verified, VerifyError> {
    let doc = parse_unverified(document).map_err(VerifyError::Malformed)?;
    // Every field, by name: a field added to the document type must be handled here.
    let AttestationDoc {
        algorithm,
        module_id,
        timestamp,
        digest,
        pcrs,
        certificate,
        cabundle,
        public_key,
        user_data,
        nonce,
        signature,
        protected,
        payload,
    } = doc;

    if digest != "SHA384" {
        return Err(malformed(
            "digest",
            format!("is {digest:?}, expected \"SHA384\""),
        ));
    }
    for index in 0..3u8 {
        match pcrs.get(&index) {
            Some(v) if v.len() == PCR_LEN => {}
            Some(v) => {
                return Err(malformed(
                    "pcrs",
                    format!("PCR{index} is {} bytes, SHA384 needs {PCR_LEN}", v.len()),
                ))
            }
            None => return Err(malformed("pcrs", format!("PCR{index} is missing"))),
        }
    }

    let signature_checked = match algorithm {
        ES384 => {
            check_chain(
                &certificate,
                &cabundle,
                policy.root_der,
                policy.at_unix_secs,
            )?;
            check_signature(&certificate, &protected, &payload, &signature)?;
            true
        }
        EMULATOR_ALGORITHM if policy.insecure_emulator => false,
        EMULATOR_ALGORITHM => {
            return Err(VerifyError::Algorithm {
                found: algorithm,
                detail: "an unsigned document of QEMU's emulated NSM; accepted only with \
                         --insecure-emulator",
            })
        }
        _ => {
            return Err(VerifyError::Algorithm {
                found: algorithm,
                detail: "Nitro documents are signed with ES384 (-35)",
            })
        }
    };

    let authenticated = Authenticated {
        module_id: module_id.clone(),
        timestamp,
        pcrs: pcrs.clone(),
    };
    let debug = (0..3u8).all(|i| pcrs.get(&i).is_some_and(|v| v.iter().all(|&b| b == 0)));
    if debug && !policy.allow_debug {
        return Err(VerifyError::Debug(authenticated));
    }
    if debug && !policy.expected.is_debug() {
        let pcr0 = policy
            .expected
            .pcrs()
            .get(&0)
            .map_or_else(String::new, |p| hex(p));
        return Err(VerifyError::DebugForImage {
            expected: pcr0,
            doc: authenticated,
        });
    }
    // Always compared: a debug enclave too (against zero measurements, see above).
    for (index, want) in policy.expected.pcrs() {
        let got = pcrs.get(index);
        if got != Some(want) {
            return Err(VerifyError::Pcr {
                index: *index,
                expected: hex(want),
                actual: got.map_or_else(|| "absent".to_string(), |g| hex(g)),
                doc: authenticated,
            });
        }
    }
    if let Some(sent) = policy.nonce {
        if nonce.as_deref() != Some(sent) {
            return Err(VerifyError::Nonce {
                expected: hex(sent),
                actual: opt_hex(nonce.as_deref()),
                doc: authenticated,
            });
        }
    }
    let cert_error = |e: der::DerError| {
        VerifyError::Malformed(Error::malformed("TLS certificate", e.to_string()))
    };
    let expect = match policy.binding {
        Bound::Nothing => None,
        Bound::Endpoint(cert) => Some(Binding::of_certificate(cert, sha256).map_err(cert_error)?),
        Bound::InCertificate { certificate, .. } => {
            Some(Binding::in_certificate(certificate).map_err(cert_error)?)
        }
        Bound::Nitriding(cert) => {
            check_nitriding(cert, user_data.as_deref(), &authenticated)?;
            None
        }
    };
    if let Some(binding) = expect {
        if let Err(field) = binding.check(public_key.as_deref(), user_data.as_deref()) {
            let (expected, actual) = match field {
                BindingField::PublicKey => {
                    (hex(binding.public_key), opt_hex(public_key.as_deref()))
                }
                BindingField::UserData => (hex(&binding.user_data), opt_hex(user_data.as_deref())),
            };
            return Err(VerifyError::Binding {
                field: field.name(),
                expected,
                actual,
                doc: authenticated,
            });
        }
    }
    if let Bound::InCertificate {
        certificate,
        max_age_secs,
    } = policy.binding
    {
        check_freshness(
            certificate,
            max_age_secs,
            policy.at_unix_secs,
            &authenticated,
        )?;
    }
    Ok(Verified {
        module_id,
        timestamp,
        pcrs,
        public_key,
        user_data,
        nonce,
        signature_checked,
        debug,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEASUREMENTS: &str = r#"{"Measurements": {"HashAlgorithm": "Sha384 { ... }",
        "PCR0": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
        "PCR1": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002",
        "PCR2": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003"}}"#;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    /// A document shaped like QEMU's: algorithm -1, zero signature, zeroed certificate.
    fn emulator_doc(pcr0_last: u8, nonce: &[u8]) -> Vec<u8> {
        let pcr = |last: u8| {
            let mut v = vec![0; 48];
            v[47] = last;
            Value::Bytes(v)
        };
        let payload = Value::Map(vec![
            ("module_id".into(), "i-emulated-enc0".into()),
            ("digest".into(), "SHA384".into()),
            ("timestamp".into(), 1_700_000_000_000u64.into()),
            (
                "pcrs".into(),
                Value::Map(vec![
                    (0.into(), pcr(pcr0_last)),
                    (1.into(), pcr(2)),
                    (2.into(), pcr(3)),
                ]),
            ),
            ("certificate".into(), Value::Bytes(vec![0; 64])),
            (
                "cabundle".into(),
                Value::Array(vec![Value::Bytes(vec![0; 64])]),
            ),
            ("public_key".into(), Value::Null),
            ("user_data".into(), Value::Null),
            ("nonce".into(), Value::Bytes(nonce.to_vec())),
        ]);
        enc(&Value::Array(vec![
            Value::Bytes(enc(&Value::Map(vec![(1.into(), (-1).into())]))),
            Value::Map(vec![]),
            Value::Bytes(enc(&payload)),
            Value::Bytes(vec![0; 96]),
        ]))
    }

    fn policy<'a>(expected: &'a ExpectedPcrs, root: &'a [u8], emulator: bool) -> Policy<'a> {
        Policy {
            root_der: root,
            at_unix_secs: 1_700_000_000,
            expected,
            nonce: Some(b"n0"),
            binding: Bound::Nothing,
            allow_debug: false,
            insecure_emulator: emulator,
        }
    }

    #[test]
    fn measurements_files_are_read_strictly() {
        let e = ExpectedPcrs::from_measurements_json(MEASUREMENTS).unwrap();
        assert_eq!(e.pcrs().len(), 3);
        assert_eq!(e.pcrs()[&2][47], 3);
        for bad in [
            "{}",
            r#"{"Measurements": {"PCR0": "00"}}"#,
            r#"{"Measurements": {"PCRx": "00"}}"#,
            "not json",
        ] {
            assert!(ExpectedPcrs::from_measurements_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emulator_documents_need_the_flag_and_still_get_every_other_check() {
        let expected = ExpectedPcrs::from_measurements_json(MEASUREMENTS).unwrap();
        let root = super::super::aws_root_der().unwrap();
        let doc = emulator_doc(1, b"n0");
        let e = verify(&doc, &policy(&expected, &root, false)).unwrap_err();
        assert_eq!(e.step(), "algorithm");
        assert!(e.to_string().contains("--insecure-emulator"), "{e}");
        let ok = verify(&doc, &policy(&expected, &root, true)).unwrap();
        assert!(!ok.signature_checked);
        let e = verify(&emulator_doc(9, b"n0"), &policy(&expected, &root, true)).unwrap_err();
        assert_eq!(e.step(), "pcr");
        assert_eq!(e.expected_actual().unwrap().1.len(), 96);
        let e = verify(&emulator_doc(1, b"n1"), &policy(&expected, &root, true)).unwrap_err();
        assert_eq!(e.step(), "nonce");
        assert_eq!(e.expected_actual(), Some(("6e30", "6e31")));
    }

    #[test]
    fn hex_arguments() {
        assert_eq!(parse_hex("0aFf", "x").unwrap(), vec![10, 255]);
        assert!(parse_hex("abc", "x").is_err());
        assert!(parse_hex("zz", "x").is_err());
    }

    fn authenticated(timestamp_secs: u64) -> Authenticated {
        Authenticated {
            module_id: "i-test".into(),
            timestamp: timestamp_secs * 1000,
            pcrs: BTreeMap::new(),
        }
    }

    #[test]
    fn nitriding_user_data_in_both_of_its_forms() {
        let cert = b"a certificate";
        let digest = sha256(cert);
        let doc = authenticated(0);
        let mut multihash = vec![0x12, 0x20];
        multihash.extend_from_slice(&digest);
        multihash.extend_from_slice(&[0x12, 0x20]);
        multihash.extend_from_slice(&[7; 32]);
        assert!(check_nitriding(cert, Some(&multihash), &doc).is_ok());
        let mut first_form = b"sha256:".to_vec();
        first_form.extend_from_slice(&digest);
        first_form.extend_from_slice(b";sha256:");
        first_form.extend_from_slice(&[7; 32]);
        assert_eq!(first_form.len(), 79);
        assert!(check_nitriding(cert, Some(&first_form), &doc).is_ok());
        for bad in [
            multihash.get(..34).unwrap().to_vec(),
            [&[0x12, 0x21][..], multihash.get(2..).unwrap()].concat(),
            [&[0x12, 0x20][..], &[0; 32], multihash.get(34..).unwrap()].concat(),
        ] {
            let e = check_nitriding(cert, Some(&bad), &doc).unwrap_err();
            assert_eq!(e.step(), "binding");
        }
        assert!(check_nitriding(cert, None, &doc).is_err());
    }

    /// An NSM whose documents do not matter: only the certificate's validity is used.
    struct AnyDocument;

    impl server::nsm::Attester for AnyDocument {
        fn attest(
            &self,
            _: &[u8],
            _: &[u8],
            _: &[u8],
        ) -> Result<Vec<u8>, server::nsm::AttestError> {
            Ok(vec![1])
        }
    }

    #[test]
    fn freshness_is_the_timestamp_within_the_validity_and_the_maximum_age() {
        let made = 1_764_650_000u64;
        let cert = server::cert::generate_attested(&AnyDocument, i64::try_from(made).unwrap())
            .unwrap()
            .cert_der;
        let check = |stamped: u64, now: u64, max: Option<u64>| {
            check_freshness(&cert, max, now, &authenticated(stamped)).map_err(|e| e.to_string())
        };
        assert_eq!(check(made, made + 10, None), Ok(()));
        // The enclave's clock may run up to five minutes ahead of the NSM's.
        assert_eq!(check(made - 300, made, None), Ok(()));
        let e = check(made - 301, made, None).unwrap_err();
        assert!(e.contains("outside the certificate's validity"), "{e}");
        let e = check(made + 301, made, None).unwrap_err();
        assert!(e.contains("after the verification time"), "{e}");
        assert_eq!(check(made, made + 3600, Some(3600)), Ok(()));
        let e = check(made, made + 3601, Some(3600)).unwrap_err();
        assert_eq!(
            e,
            "the certificate's attestation document is not fresh: it is 3601s old (made \
             2025-12-02T04:33:20Z), more than the maximum age 1h"
        );
    }
}
