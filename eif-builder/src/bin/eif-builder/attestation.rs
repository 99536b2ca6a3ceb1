//! The attestation commands: `inspect-attestation` (no checks), `verify` a document against
//! measurements, `attest` a running enclave over TLS; the JSON verdict they print.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::{print_stdout, read_bounded};
use eif_builder::attest::client::{Convention, Target};
use eif_builder::attest::{self, AcceptedImages, Bound, Policy, Verified, VerifyError};
use eif_builder::measure::hex;
use eif_builder::{time, Error, Result};

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// The expected PCRs: a measurements JSON as written by `build --measurements` or
    /// nitro-cli build-enclave ({"Measurements": {"PCR0": …}}), read strictly: PCR0 to PCR31
    /// spelled so, HashAlgorithm; any other key, or one given twice, is an error. Several
    /// images (a rolling upgrade): {"Accepted": [{"Name": "v1", "Measurements": {…}}, …]}; the
    /// verdict's "accepted_image" says which matched.
    #[arg(long, value_name = "FILE")]
    measurements: PathBuf,
    /// Trust this root certificate (PEM) instead of the embedded AWS Nitro root G1.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// Accept a debug-mode enclave (PCR0/1/2 all zero; its memory is readable by the operator
    /// and it can run any code) -- only against measurements whose PCR0/1/2 are zero too: the
    /// PCRs are still compared, so a debug enclave never passes for a real image.
    #[arg(long)]
    pub(crate) allow_debug: bool,
    /// INSECURE, for QEMU's emulator only: accept an unsigned document (COSE algorithm -1)
    /// without checking its signature and certificate chain; everything else is checked.
    #[arg(long)]
    pub(crate) insecure_emulator: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The attestation document (raw CBOR, as GET /attestation returns it).
    #[arg(long, value_name = "DOC.cbor")]
    attestation: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The nonce the document must carry, in hex.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Verification time, RFC 3339 (e.g. 2024-05-01T12:00:00Z) [default: now].
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// The enclave's HTTPS server, https://HOST:PORT (through the relay), and its attestation
    /// endpoint's path if not /attestation (a front: https://HOST:PORT/.well-known/enclave-https/attestation).
    #[arg(value_name = "URL")]
    url: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Seconds to wait on the network before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// Once verified: write the enclave's TLS certificate to CERT.pem and print, on stderr, a
    /// curl command pinning its public key (`--pinnedpubkey 'sha256//…'`), so later clients
    /// trust exactly this key. Nothing is written when verification fails.
    #[arg(long, value_name = "CERT.pem")]
    pin: Option<PathBuf>,
    /// Verify the attestation document the server's certificate carries (extension
    /// 2.25.87024637174045886450314576383578375809, put there by the enclave's server at
    /// start) from the TLS handshake alone: no request is sent. Its freshness is its NSM
    /// timestamp, which must lie within the certificate's validity and, with --max-age, be
    /// recent enough. Without this flag the endpoint is asked with a fresh nonce.
    #[arg(long)]
    from_certificate: bool,
    /// With --from-certificate: the oldest the document may be (it was made when the server
    /// started), e.g. 24h, 30m [default: no limit].
    #[arg(long, value_name = "DURATION", requires = "from_certificate")]
    max_age: Option<String>,
    /// How the endpoint is asked: `enclave-https` (this project's server: GET PATH?nonce=HEX,
    /// a CBOR document bound by public_key and user_data) or `nitriding` (brave/nitriding-daemon:
    /// GET /enclave/attestation?nonce=<20 bytes hex>, a base64 document whose user_data starts
    /// with the multihash of the certificate's SHA-256).
    #[arg(long, value_name = "NAME", default_value = "enclave-https", value_parser = parse_convention, conflicts_with = "from_certificate")]
    convention: Convention,
}

/// `--convention`'s names.
pub(crate) fn parse_convention(text: &str) -> std::result::Result<Convention, String> {
    match text {
        "enclave-https" => Ok(Convention::EnclaveHttps),
        "nitriding" => Ok(Convention::Nitriding),
        other => Err(format!(
            "unknown convention {other:?} (expected enclave-https or nitriding)"
        )),
    }
}

/// `--max-age`, in seconds.
pub(crate) fn parse_max_age(text: Option<&str>) -> Result<Option<u64>> {
    text.map(|t| {
        contract::duration::parse(t)
            .map(|d| d.as_secs())
            .map_err(|e| Error::Invalid {
                what: format!("--max-age {t:?}"),
                detail: e.to_string(),
            })
    })
    .transpose()
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The attestation document (raw CBOR, as GET /attestation returns it).
    #[arg(value_name = "DOC.cbor")]
    file: PathBuf,
}

pub(crate) fn inspect_attestation(args: InspectArgs) -> Result<()> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: Some(args.file.clone()),
        source,
    };
    let meta = std::fs::metadata(&args.file).map_err(io)?;
    if meta.len() > eif_builder::attest::MAX_DOCUMENT as u64 {
        return Err(Error::Unsupported {
            what: format!("{}", args.file.display()),
            detail: format!(
                "{} bytes is too large for an attestation document",
                meta.len()
            ),
        });
    }
    let bytes = std::fs::read(&args.file).map_err(io)?;
    let doc = eif_builder::attest::parse_unverified(&bytes)?;
    let opt = |b: &Option<Vec<u8>>| b.as_deref().map(hex);
    let pcrs: serde_json::Map<String, serde_json::Value> = doc
        .pcrs
        .iter()
        .map(|(i, v)| (format!("PCR{i}"), hex(v).into()))
        .collect();
    let out = serde_json::json!({
        "verified": false,
        "algorithm": doc.algorithm,
        "module_id": doc.module_id,
        "timestamp": doc.timestamp,
        "digest": doc.digest,
        "pcrs": pcrs,
        "certificate": hex(&doc.certificate),
        "cabundle": doc.cabundle.iter().map(|c| hex(c)).collect::<Vec<_>>(),
        "public_key": opt(&doc.public_key),
        "user_data": opt(&doc.user_data),
        "nonce": opt(&doc.nonce),
    });
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid {
        what: "inspect-attestation output".to_string(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    print_stdout(&text)
}

/// How a command that printed a verdict ended.
pub(crate) enum Verdict {
    /// Success (exit status 0).
    Verified,
    /// A verdict of failure was printed (exit status 1).
    Refused,
}

/// The trust anchor and accepted images of `verify` and `attest`.
pub(crate) fn load_policy(args: &PolicyArgs) -> Result<(Vec<u8>, AcceptedImages)> {
    if args.insecure_emulator {
        eprintln!(
            "eif-builder: WARNING: --insecure-emulator: the attestation document's SIGNATURE AND \
             CERTIFICATE CHAIN ARE NOT CHECKED. This proves nothing about a real Nitro enclave; \
             use it only against QEMU's emulated NSM in tests."
        );
    }
    let root = match &args.root {
        Some(path) => attest::root_from_pem(&read_bounded(path, 64 * 1024)?)?,
        None => attest::aws_root_der()?,
    };
    let text = read_bounded(&args.measurements, 64 * 1024)?;
    let text = std::str::from_utf8(&text).map_err(|_| Error::Malformed {
        what: format!("{}", args.measurements.display()),
        detail: "is not UTF-8".to_string(),
    })?;
    let accepted = AcceptedImages::parse(text, &args.measurements.display().to_string())?;
    Ok((root, accepted))
}

/// PCRs as `{"PCR0": hex, "PCR1": …}` in index order.
pub(crate) struct PcrsOut<'a>(&'a BTreeMap<u8, Vec<u8>>);

impl Serialize for PcrsOut<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (index, value) in self.0 {
            map.serialize_entry(&format!("PCR{index}"), &hex(value))?;
        }
        map.end()
    }
}

/// The JSON verdict of `verify` and `attest`, keys in this order.
#[derive(Serialize)]
pub(crate) struct VerdictOut<'a> {
    verified: bool,
    /// Which image of a measurements file listing several (`Accepted`) matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_image: Option<String>,
    /// The check that failed (see `VerifyError::step`).
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<&'a str>,
    module_id: Option<&'a str>,
    timestamp: Option<u64>,
    pcrs: Option<PcrsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_checked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_data: Option<Option<String>>,
    /// `user_data` as text, when it is printable UTF-8 (an application's attested result).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_data_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<Option<String>>,
    root_sha256: String,
    verified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_certificate_sha256: Option<String>,
}

/// Bytes as text when they are UTF-8 without control characters but tab and newline.
fn printable_text(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\t'))
    .then(|| text.to_owned())
}

/// Prints the verdict of `verify`/`attest` and says how to exit.
pub(crate) fn print_verdict(
    (outcome, matched): &(std::result::Result<Verified, VerifyError>, Option<String>),
    accepted: &AcceptedImages,
    root: &[u8],
    at: u64,
    connection: Option<(&str, &[u8])>,
) -> Result<Verdict> {
    let opt = |b: &Option<Vec<u8>>| Some(b.as_deref().map(hex));
    let common = VerdictOut {
        verified: false,
        accepted_image: None,
        step: None,
        reason: None,
        expected: None,
        actual: None,
        module_id: None,
        timestamp: None,
        pcrs: None,
        signature_checked: None,
        debug: None,
        nonce: None,
        user_data: None,
        user_data_text: None,
        public_key: None,
        root_sha256: attest::sha256_hex(root),
        verified_at: time::rfc3339_from_unix(at)?,
        url: connection.map(|(url, _)| url),
        tls_certificate_sha256: connection.map(|(_, cert)| attest::sha256_hex(cert)),
    };
    let out = match outcome {
        Ok(v) => VerdictOut {
            verified: true,
            accepted_image: matched.clone(),
            module_id: Some(&v.module_id),
            timestamp: Some(v.timestamp),
            pcrs: Some(PcrsOut(&v.pcrs)),
            signature_checked: Some(v.signature_checked),
            debug: Some(v.debug),
            nonce: opt(&v.nonce),
            user_data: opt(&v.user_data),
            user_data_text: v.user_data.as_deref().and_then(printable_text),
            public_key: opt(&v.public_key),
            ..common
        },
        Err(e) => {
            let doc = e.document();
            let (expected, actual) = e.expected_actual().unzip();
            let reason = accepted.reason(e);
            VerdictOut {
                step: Some(e.step()),
                reason: Some(reason),
                expected,
                actual,
                module_id: doc.map(|d| d.module_id.as_str()),
                timestamp: doc.map(|d| d.timestamp),
                pcrs: doc.map(|d| PcrsOut(&d.pcrs)),
                ..common
            }
        }
    };
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid {
        what: "verdict output".to_string(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    print_stdout(&text)?;
    Ok(if outcome.is_ok() {
        Verdict::Verified
    } else {
        Verdict::Refused
    })
}

pub(crate) fn verify(args: VerifyArgs) -> Result<Verdict> {
    let (root, expected) = load_policy(&args.policy)?;
    let nonce = args
        .nonce
        .as_deref()
        .map(|n| attest::parse_hex(n, "--nonce"))
        .transpose()?;
    let at = match &args.at {
        Some(text) => {
            let (secs, _nanos) = time::parse_rfc3339(text, "--at")?;
            u64::try_from(secs).map_err(|_| Error::Invalid {
                what: format!("--at {text:?}"),
                detail: "is before 1970".to_string(),
            })?
        }
        None => time::now_unix(),
    };
    let document = read_bounded(&args.attestation, attest::MAX_DOCUMENT)?;
    let policy = Policy {
        root_der: &root,
        at_unix_secs: at,
        expected: expected.first(),
        nonce: nonce.as_deref(),
        binding: Bound::Nothing,
        allow_debug: args.policy.allow_debug,
        insecure_emulator: args.policy.insecure_emulator,
    };
    let verdict = expected.verify(&document, &policy);
    print_verdict(&verdict, &expected, &root, at, None)
}

pub(crate) fn attest(args: AttestArgs) -> Result<Verdict> {
    let max_age_secs = parse_max_age(args.max_age.as_deref())?;
    if max_age_secs == Some(0) {
        return Err(Error::Invalid {
            what: "--max-age 0s".to_string(),
            detail: "would refuse every document; give a positive age (e.g. 10m)".to_string(),
        });
    }
    let (root, expected) = load_policy(&args.policy)?;
    let target = Target::parse_with(&args.url, args.convention.default_path())?;
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let (document, certificate, nonce) = if args.from_certificate {
        let connected = attest::client::connect(&target, timeout)?;
        let document = connected
            .carried_document()?
            .ok_or_else(|| Error::Invalid {
                what: format!("the TLS certificate of {}", target.authority()),
                detail: format!(
                    "carries no attestation document (extension {}); drop --from-certificate to ask the endpoint",
                    contract::cert_attestation::OID_TEXT
                ),
            })?
            .to_vec();
        (document, connected.certificate, None)
    } else {
        let nonce = args.convention.fresh_nonce()?;
        let fetched = attest::client::fetch(&target, args.convention, &nonce, timeout)?;
        (fetched.document, fetched.certificate, Some(nonce))
    };
    let at = time::now_unix();
    let binding = match (args.from_certificate, args.convention) {
        (true, _) => Bound::InCertificate {
            certificate: &certificate,
            max_age_secs,
        },
        (false, Convention::EnclaveHttps) => Bound::Endpoint(&certificate),
        (false, Convention::Nitriding) => Bound::Nitriding(&certificate),
    };
    let policy = Policy {
        root_der: &root,
        at_unix_secs: at,
        expected: expected.first(),
        nonce: nonce.as_deref(),
        binding,
        allow_debug: args.policy.allow_debug,
        insecure_emulator: args.policy.insecure_emulator,
    };
    let verdict = expected.verify(&document, &policy);
    if let (Ok(_), Some(path)) = (&verdict.0, &args.pin) {
        let line = pin(&certificate, path, &target)?;
        eprintln!("{line}");
    }
    print_verdict(
        &verdict,
        &expected,
        &root,
        at,
        Some((args.url.as_str(), certificate.as_slice())),
    )
}

/// curl's `--pinnedpubkey` value of a certificate: `sha256//` and the base64 SHA-256 of its
/// SubjectPublicKeyInfo.
pub(crate) fn pinned_public_key(cert_der: &[u8]) -> Result<String> {
    let spki = contract::der::spki(cert_der).map_err(|e| Error::Malformed {
        what: "the enclave's TLS certificate".to_string(),
        detail: e.to_string(),
    })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    Ok(format!(
        "sha256//{}",
        contract::base64::encode(digest.as_ref())
    ))
}

/// Writes the verified certificate as PEM to `path` (whole or not at all: a temporary file
/// renamed into place) and returns the lines to print.
fn pin(cert_der: &[u8], path: &std::path::Path, target: &Target) -> Result<String> {
    let pinned = pinned_public_key(cert_der)?;
    let encoded = contract::base64::encode(cert_der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let tmp = path.with_extension("pem.partial");
    let io = |action: &'static str, p: &std::path::Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            action,
            path: Some(p),
            source,
        }
    };
    std::fs::write(&tmp, pem).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot write", path))?;
    Ok(format!(
        "eif-builder: verified; the enclave's certificate is in {}. Pin its key (curl -k checks no CA, the pin still holds):\n\
         curl -k --pinnedpubkey '{pinned}' https://{}/",
        path.display(),
        target.authority()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_shown_as_text_only_when_it_is_text() {
        assert_eq!(
            printable_text(br#"{"letter":"l","count":3}"#).as_deref(),
            Some(r#"{"letter":"l","count":3}"#)
        );
        assert_eq!(printable_text(b"two\nlines").as_deref(), Some("two\nlines"));
        assert_eq!(printable_text(&[0xde, 0xad, 0xbe, 0xef]), None);
        assert_eq!(printable_text(b"bell\x07"), None);
        assert_eq!(printable_text(b""), None);
    }
}
