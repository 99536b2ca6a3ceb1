//! KMS's side of `Decrypt` and `GenerateDataKey` with `Recipient`, as the enclave sees it:
//!
//! 1. the SigV4 signature is recomputed with the test credentials (and the session token the
//!    stand-in's metadata service handed out) and must equal the one sent;
//! 2. `Recipient.KeyEncryptionAlgorithm` must be `RSAES_OAEP_SHA_256` and its attestation
//!    document must verify (QEMU's documents are unsigned: `insecure_emulator`) against the
//!    measurements given, as a key policy on `kms:RecipientAttestation:ImageSha384` would;
//!    its `public_key` must be an RSA public key;
//! 3. the plaintext (the ciphertext blob opened with the stand-in's master key, or a fresh data
//!    key) goes back only as `CiphertextForRecipient`, made by `openssl cms -encrypt -stream`
//!    for that public key: an implementation of CMS independent of the enclave's.
//!
//! Ciphertext blobs are the stand-in's own: `SKMS`, a 12-byte nonce, then AES-256-GCM of the
//! plaintext under the master key.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use contract::json::Value;
use server::aws::sigv4;

use crate::http::Request;

/// The blob's first bytes.
const MAGIC: &[u8] = b"SKMS";
/// The ARN answers name.
pub const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/standin";

/// What a KMS request is checked against.
#[derive(Debug)]
pub struct Standin {
    /// The region requests must be signed for.
    pub region: String,
    /// The master key of the blobs.
    pub master: [u8; 32],
    /// The measurements files (JSON) one of whose PCRs a recipient's document must carry: the
    /// key policy's `kms:RecipientAttestation:ImageSha384` and more.
    pub measurements: Vec<String>,
    /// Where openssl's files go.
    pub work: PathBuf,
}

/// A JSON error answer as KMS writes them.
fn refuse(status: u16, kind: &str, message: &str) -> (u16, Vec<u8>, String) {
    let mut body = String::from("{\"__type\":");
    contract::json::write_string(&mut body, kind);
    body.push_str(",\"message\":");
    contract::json::write_string(&mut body, message);
    body.push('}');
    (
        status,
        body.into_bytes(),
        format!("refused: {kind}: {message}"),
    )
}

/// Encrypts a blob under the master key.
pub fn seal(master: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, master).map_err(|_| "key")?);
    let mut nonce = [0u8; 12];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "rng")?;
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(MAGIC),
        &mut data,
    )
    .map_err(|_| "seal")?;
    Ok([MAGIC, &nonce, &data].concat())
}

fn open(master: &[u8; 32], blob: &[u8]) -> Option<Vec<u8>> {
    let rest = blob.strip_prefix(MAGIC)?;
    let (nonce, sealed) = (rest.get(..12)?, rest.get(12..)?);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, master).ok()?);
    let mut data = sealed.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key.open_in_place(nonce, Aad::from(MAGIC), &mut data).ok()?;
    Some(plain.to_vec())
}

/// Checks the SigV4 `Authorization` header against the test credentials.
pub fn check_signature(req: &Request, region: &str, now: i64) -> Result<(), String> {
    let auth = req
        .header("Authorization")
        .ok_or("no Authorization header")?;
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .ok_or("no SignedHeaders in Authorization")?;
    let names: Vec<&str> = signed.split(';').collect();
    for needed in ["host", "x-amz-date"] {
        if !names.contains(&needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    let token = req.header("X-Amz-Security-Token");
    if token != Some(crate::SECURITY_TOKEN) {
        return Err("the security token is not the one the metadata service handed out".into());
    }
    let amz_date = req.header("X-Amz-Date").ok_or("no X-Amz-Date")?;
    let civil = contract::date::parse_rfc3339(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        amz_date.get(0..4).unwrap_or(""),
        amz_date.get(4..6).unwrap_or(""),
        amz_date.get(6..8).unwrap_or(""),
        amz_date.get(9..11).unwrap_or(""),
        amz_date.get(11..13).unwrap_or(""),
        amz_date.get(13..15).unwrap_or("")
    ))
    .map_err(|e| format!("X-Amz-Date {amz_date:?}: {e}"))?;
    if (civil.0 - now).abs() > 15 * 60 {
        return Err(format!(
            "X-Amz-Date {amz_date} is more than 15 minutes from now"
        ));
    }
    let mut headers = Vec::new();
    for name in names.iter().filter(|n| **n != "x-amz-security-token") {
        let value = req
            .header(name)
            .ok_or_else(|| format!("signed header {name} is missing"))?;
        headers.push((*name, value));
    }
    let creds = sigv4::Credentials {
        access_key_id: crate::ACCESS_KEY_ID.into(),
        secret_access_key: crate::SECRET_ACCESS_KEY.to_owned().into(),
        session_token: token.map(str::to_owned),
    };
    let expected = sigv4::sign(
        &sigv4::Request {
            method: &req.method,
            path: &req.path,
            query: &[],
            headers: &headers,
            payload: &req.body,
        },
        &creds,
        region,
        "kms",
        amz_date,
    );
    if expected.authorization != auth {
        return Err("the signature does not match the request".into());
    }
    Ok(())
}

fn member<'a>(members: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn string<'a>(members: &'a [(String, Value)], name: &str) -> Result<&'a str, String> {
    match member(members, name) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("{name} is {}", v.kind())),
        None => Err(format!("{name} is missing")),
    }
}

impl Standin {
    /// The answer to one KMS request: status, JSON body, and a line for the log.
    pub fn answer(&self, req: &Request, now: i64) -> (u16, Vec<u8>, String) {
        let action = match req.header("X-Amz-Target") {
            Some("TrentService.Decrypt") => "Decrypt",
            Some("TrentService.GenerateDataKey") => "GenerateDataKey",
            other => return refuse(400, "UnknownOperationException", &format!("{other:?}")),
        };
        let (status, body, line) = self.action(action, req, now);
        (status, body, format!("{action}: {line}"))
    }

    fn action(&self, action: &str, req: &Request, now: i64) -> (u16, Vec<u8>, String) {
        if let Err(e) = check_signature(req, &self.region, now) {
            return refuse(400, "InvalidSignatureException", &e);
        }
        let Ok(Value::Object(members)) = contract::json::parse(&String::from_utf8_lossy(&req.body))
        else {
            return refuse(
                400,
                "SerializationException",
                "the body is not a JSON object",
            );
        };
        let (public_key, pcr0) = match self.recipient(&members, now) {
            Ok(k) => k,
            Err(e) => return refuse(400, "AccessDeniedException", &e),
        };
        let (plaintext, blob) = match action {
            "Decrypt" => {
                let blob = string(&members, "CiphertextBlob")
                    .and_then(|b| contract::base64::decode(b).map_err(|_| "not base64".into()));
                match blob.ok().and_then(|b| open(&self.master, &b)) {
                    Some(p) => (p, None),
                    None => {
                        return refuse(400, "InvalidCiphertextException", "the blob does not open")
                    }
                }
            }
            _ => {
                let n = match member(&members, "NumberOfBytes") {
                    Some(Value::Number(n)) => n.parse::<usize>().unwrap_or(0),
                    _ => 32,
                };
                if !(1..=1024).contains(&n) {
                    return refuse(400, "ValidationException", "NumberOfBytes");
                }
                let mut key = vec![0u8; n];
                if aws_lc_rs::rand::fill(&mut key).is_err() {
                    return refuse(500, "KMSInternalException", "rng");
                }
                let blob = match seal(&self.master, &key) {
                    Ok(b) => b,
                    Err(e) => return refuse(500, "KMSInternalException", &e),
                };
                (key, Some(blob))
            }
        };
        let cms = match self.envelope(&public_key, &plaintext) {
            Ok(c) => c,
            Err(e) => return refuse(500, "KMSInternalException", &e),
        };
        let mut body = format!(
            "{{\"KeyId\":\"{KEY_ARN}\",\"CiphertextForRecipient\":\"{}\"",
            contract::base64::encode(&cms)
        );
        if let Some(blob) = blob {
            body.push_str(&format!(
                ",\"CiphertextBlob\":\"{}\"",
                contract::base64::encode(&blob)
            ));
        } else {
            body.push_str(",\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"");
        }
        body.push('}');
        (
            200,
            body.into_bytes(),
            format!(
                "ok: {} bytes for the recipient key of a verified attestation document (PCR0 {pcr0})",
                plaintext.len()
            ),
        )
    }

    /// The recipient's public key (DER) from its verified document, and the document's PCR0.
    fn recipient(
        &self,
        members: &[(String, Value)],
        now: i64,
    ) -> Result<(Vec<u8>, String), String> {
        let Some(Value::Object(r)) = member(members, "Recipient") else {
            return Err("no Recipient: this stand-in only answers enclaves".into());
        };
        let alg = string(r, "KeyEncryptionAlgorithm")?;
        if alg != "RSAES_OAEP_SHA_256" {
            return Err(format!("KeyEncryptionAlgorithm {alg:?}"));
        }
        let doc = contract::base64::decode(string(r, "AttestationDocument")?)
            .map_err(|_| "AttestationDocument is not base64".to_string())?;
        let root = eif_builder::attest::aws_root_der().map_err(|e| e.to_string())?;
        let mut refusal = String::from("no measurements given");
        let mut accepted = None;
        for text in &self.measurements {
            let expected = eif_builder::attest::ExpectedPcrs::from_measurements_json(text)
                .map_err(|e| format!("the stand-in's measurements: {e}"))?;
            let policy = eif_builder::attest::Policy {
                root_der: &root,
                at_unix_secs: u64::try_from(now).unwrap_or(0),
                expected: &expected,
                nonce: None,
                binding: eif_builder::attest::Bound::Nothing,
                allow_debug: false,
                insecure_emulator: true,
            };
            match eif_builder::attest::verify(&doc, &policy) {
                Ok(v) => {
                    accepted = Some(v);
                    break;
                }
                Err(e) => refusal = format!("attestation document: {e}"),
            }
        }
        let verified = accepted.ok_or(refusal)?;
        let key = verified
            .public_key
            .ok_or("the attestation document carries no public_key")?;
        if aws_lc_rs::rsa::PublicEncryptingKey::from_der(&key).is_err() {
            return Err("the attestation document's public_key is not an RSA public key".into());
        }
        let pcr0 = verified
            .pcrs
            .get(&0)
            .map(|v| contract::hex::encode(v))
            .unwrap_or_default();
        Ok((key, pcr0))
    }

    /// `openssl cms -encrypt` of `plaintext` for the RSA key `spki` (a throwaway certificate
    /// around it first: openssl encrypts to certificates).
    fn envelope(&self, spki: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let dir = tempdir(&self.work)?;
        let path = |n: &str| dir.join(n);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            contract::base64::encode(spki)
                .as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        );
        write(&path("recipient.pub.pem"), pem.as_bytes())?;
        write(&path("plaintext"), plaintext)?;
        write(&path("ext"), b"subjectKeyIdentifier=hash\n")?;
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &s(&path("signer.key")),
        ])?;
        openssl(&[
            "x509",
            "-new",
            "-subj",
            "/CN=enclave recipient",
            "-force_pubkey",
            &s(&path("recipient.pub.pem")),
            "-key",
            &s(&path("signer.key")),
            "-days",
            "1",
            "-extfile",
            &s(&path("ext")),
            "-out",
            &s(&path("recipient.pem")),
        ])?;
        openssl(&[
            "cms",
            "-encrypt",
            "-stream",
            "-binary",
            "-aes-256-cbc",
            "-keyid",
            "-recip",
            &s(&path("recipient.pem")),
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
            "-outform",
            "DER",
            "-in",
            &s(&path("plaintext")),
            "-out",
            &s(&path("out.cms")),
        ])?;
        let out = std::fs::read(path("out.cms")).map_err(|e| format!("reading out.cms: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        out
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn write(p: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(p, data).map_err(|e| format!("writing {}: {e}", p.display()))
}

fn tempdir(work: &Path) -> Result<PathBuf, String> {
    let mut n = [0u8; 8];
    aws_lc_rs::rand::fill(&mut n).map_err(|_| "rng")?;
    let dir = work.join(contract::hex::encode(&n));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| format!("running openssl (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_open_under_their_master_key_only() {
        let blob = seal(&[7; 32], b"key").unwrap();
        assert_eq!(open(&[7; 32], &blob).as_deref(), Some(&b"key"[..]));
        assert_eq!(open(&[8; 32], &blob), None);
        assert_eq!(open(&[7; 32], &blob[..blob.len() - 1]), None);
    }

    #[test]
    fn a_request_signed_by_the_enclave_client_passes_and_a_changed_one_does_not() {
        let url = server::client::Url::parse("https://kms.us-east-1.amazonaws.com/").unwrap();
        let creds = sigv4::Credentials {
            access_key_id: crate::ACCESS_KEY_ID.into(),
            secret_access_key: crate::SECRET_ACCESS_KEY.to_owned().into(),
            session_token: Some(crate::SECURITY_TOKEN.into()),
        };
        let now = 1_796_212_800;
        let signed = server::aws::kms::signed_request(
            &url,
            "us-east-1",
            "Decrypt",
            b"{}".to_vec(),
            &creds,
            now,
        );
        let mut req = Request {
            method: signed.method.clone(),
            path: "/".into(),
            headers: signed.headers.clone(),
            body: signed.body.clone(),
        };
        req.headers
            .push(("Host".into(), "kms.us-east-1.amazonaws.com".into()));
        check_signature(&req, "us-east-1", now).unwrap();
        assert_eq!(
            check_signature(&req, "eu-west-1", now).unwrap_err(),
            "the signature does not match the request"
        );
        assert!(check_signature(&req, "us-east-1", now + 3600)
            .unwrap_err()
            .contains("more than 15 minutes"));
        req.body = b"{ }".to_vec();
        assert_eq!(
            check_signature(&req, "us-east-1", now).unwrap_err(),
            "the signature does not match the request"
        );
    }

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../eif-builder/tests/data/attestation");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn standin(measurements: &str) -> Standin {
        Standin {
            region: "us-east-1".into(),
            master: [7; 32],
            measurements: vec![String::from_utf8(fixture(measurements)).unwrap()],
            work: std::env::temp_dir(),
        }
    }

    fn recipient_of(doc: &[u8], algorithm: &str) -> Vec<(String, Value)> {
        let text = format!(
            "{{\"Recipient\":{{\"KeyEncryptionAlgorithm\":\"{algorithm}\",\"AttestationDocument\":\"{}\"}}}}",
            contract::base64::encode(doc)
        );
        match contract::json::parse(&text).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn recipients_are_refused_unless_their_document_verifies_and_carries_an_rsa_key() {
        let now = 1_796_212_800;
        let qemu = fixture("qemu-emulator-1.cbor");
        let s = standin("qemu-emulator-1.measurements.json");
        // QEMU's document verifies (as an emulator document) but carries the server's TLS key,
        // an EC key: nothing can be encrypted for it.
        assert_eq!(
            s.recipient(&recipient_of(&qemu, "RSAES_OAEP_SHA_256"), now)
                .unwrap_err(),
            "the attestation document's public_key is not an RSA public key"
        );
        assert_eq!(
            s.recipient(&recipient_of(&qemu, "RSAES_OAEP_SHA_1"), now)
                .unwrap_err(),
            "KeyEncryptionAlgorithm \"RSAES_OAEP_SHA_1\""
        );
        assert_eq!(
            s.recipient(&[], now).unwrap_err(),
            "no Recipient: this stand-in only answers enclaves"
        );
        // Another image's measurements: refused as a key policy on PCR0 would.
        let other = Standin {
            measurements: vec![r#"{"Measurements":{"HashAlgorithm":"Sha384 { ... }","PCR0":"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a","PCR1":"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a","PCR2":"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a"}}"#.into()],
            ..standin("qemu-emulator-1.measurements.json")
        };
        let e = other
            .recipient(&recipient_of(&qemu, "RSAES_OAEP_SHA_256"), now)
            .unwrap_err();
        assert!(
            e.starts_with("attestation document: ") && e.contains("PCR0"),
            "{e}"
        );
    }
}
