//! AWS KMS `Decrypt` and `GenerateDataKey` with `Recipient`: the plaintext comes back
//! encrypted for a key pair that exists only in this enclave's memory, and KMS releases it only
//! if the attestation document that carries that key pair's public key satisfies the key
//! policy (`kms:RecipientAttestation:ImageSha384` = PCR0, `…:PCR8`, …).
//!
//! Each call: a fresh RSA-2048 [`Recipient`]; an attestation document from the NSM with its
//! public key in `public_key`; the request (JSON 1.1, `X-Amz-Target: TrentService.…`, signed
//! with [`sigv4`](super::sigv4)) with `Recipient = { KeyEncryptionAlgorithm:
//! RSAES_OAEP_SHA_256, AttestationDocument }`; the answer's `CiphertextForRecipient` decrypted
//! by the recipient. KMS leaves `Plaintext` out of such answers; one that has it is refused,
//! since the plaintext would have crossed the parent in the clear. The API as AWS documents it in
//! "KMS APIs for AWS Nitro Enclaves" (aws-nitro-enclaves-sdk-c, `docs/kms-apis/`) and
//! `source/kms.c`.

use std::fmt;

use contract::json::Value;
use zeroize::Zeroizing;

use super::credentials::{CredentialsError, Provider};
use super::recipient::{Recipient, RecipientError, KEY_ENCRYPTION_ALGORITHM};
use super::{sigv4, Http};
use crate::client::{ClientError, Request, Url};
use crate::nsm::{AttestError, Attester};

/// The environment variable naming the region (as AWS's SDKs read it).
pub const REGION_ENV: &str = "AWS_REGION";
/// The environment variable that overrides the endpoint (as AWS's SDKs read it).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_KMS";
/// The largest ciphertext blob KMS takes (6144 bytes), and the most plaintext it returns.
pub const MAX_CIPHERTEXT_BLOB: usize = 6144;

/// Why a KMS call failed.
#[derive(Debug)]
pub enum KmsError {
    /// The configuration (region, endpoint) is unusable.
    Config(String),
    /// No credentials.
    Credentials(CredentialsError),
    /// The recipient key pair or the decryption of KMS's answer.
    Recipient(RecipientError),
    /// The NSM gave no attestation document.
    Attestation(AttestError),
    /// KMS could not be reached.
    Http(ClientError),
    /// KMS refused: HTTP status, its error type (`AccessDeniedException`), its message.
    Service {
        /// The HTTP status.
        status: u16,
        /// The error type without its namespace.
        kind: String,
        /// KMS's message.
        message: String,
    },
    /// KMS's answer is not what the API documents.
    Malformed(String),
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsError::Config(d) => write!(f, "KMS: {d}"),
            KmsError::Credentials(e) => write!(f, "KMS: {e}"),
            KmsError::Recipient(e) => write!(f, "KMS: {e}"),
            KmsError::Attestation(e) => write!(f, "KMS: {e}"),
            KmsError::Http(e) => write!(f, "KMS: {e}"),
            KmsError::Service {
                status,
                kind,
                message,
            } => write!(f, "KMS refused (HTTP {status}, {kind}): {message}"),
            KmsError::Malformed(d) => write!(f, "KMS: unexpected answer: {d}"),
        }
    }
}

impl std::error::Error for KmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KmsError::Credentials(e) => Some(e),
            KmsError::Recipient(e) => Some(e),
            KmsError::Attestation(e) => Some(e),
            KmsError::Http(e) => Some(e),
            _ => None,
        }
    }
}

/// A data key from [`Kms::generate_data_key`].
pub struct DataKey {
    /// The key, decrypted in the enclave; wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key encrypted under the KMS key: store it anywhere, `Decrypt` it at the next start.
    pub ciphertext_blob: Vec<u8>,
    /// The KMS key's ARN, as KMS names it.
    pub key_id: String,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A KMS endpoint in one region, with the credentials to call it.
#[derive(Debug)]
pub struct Kms {
    region: String,
    endpoint: Url,
    credentials: Provider,
}

impl Kms {
    /// KMS in `region` (`eu-west-1`) at `https://kms.REGION.amazonaws.com`, or at `endpoint`.
    pub fn new(
        region: &str,
        endpoint: Option<Url>,
        credentials: Provider,
    ) -> Result<Kms, KmsError> {
        if region.is_empty()
            || region.len() > 32
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(KmsError::Config(format!(
                "{region:?} is not an AWS region (e.g. eu-west-1)"
            )));
        }
        let endpoint = match endpoint {
            Some(url) => url,
            None => Url::parse(&format!("https://kms.{region}.amazonaws.com/"))
                .map_err(|e| KmsError::Config(e.to_string()))?,
        };
        Ok(Kms {
            region: region.to_owned(),
            endpoint,
            credentials,
        })
    }

    /// From the environment: [`REGION_ENV`] (or `AWS_DEFAULT_REGION`), [`ENDPOINT_ENV`] if set,
    /// credentials as [`Provider::from_env`] reads them.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Kms, KmsError> {
        let region = var(REGION_ENV)
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                KmsError::Config(format!("{REGION_ENV} is not set (the KMS key's region)"))
            })?;
        let endpoint = match var(ENDPOINT_ENV) {
            Some(text) => Some(
                Url::parse(text.trim())
                    .map_err(|e| KmsError::Config(format!("{ENDPOINT_ENV}: {e}")))?,
            ),
            None => None,
        };
        let credentials = Provider::from_env(&var).map_err(KmsError::Credentials)?;
        Kms::new(region.trim(), endpoint, credentials)
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Where the credentials come from.
    pub fn credentials(&self) -> &Provider {
        &self.credentials
    }

    /// `Decrypt` of a ciphertext blob (what `aws kms encrypt` gave), the plaintext released to
    /// this enclave only. `key_id` is needed for asymmetric keys only.
    pub fn decrypt(
        &self,
        http: &dyn Http,
        attester: &dyn Attester,
        ciphertext_blob: &[u8],
        key_id: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if ciphertext_blob.is_empty() || ciphertext_blob.len() > MAX_CIPHERTEXT_BLOB {
            return Err(KmsError::Config(format!(
                "a ciphertext blob is 1 to {MAX_CIPHERTEXT_BLOB} bytes, not {}",
                ciphertext_blob.len()
            )));
        }
        let mut fields = vec![(
            "CiphertextBlob",
            json_string(&contract::base64::encode(ciphertext_blob)),
        )];
        if let Some(id) = key_id {
            fields.push(("KeyId", json_string(id)));
        }
        let (recipient, answer) = self.call(http, attester, "Decrypt", fields)?;
        recipient_plaintext(&recipient, &answer)
    }

    /// `GenerateDataKey` of `bytes` bytes (1 to 1024) under `key_id`, the plaintext released to
    /// this enclave only.
    pub fn generate_data_key(
        &self,
        http: &dyn Http,
        attester: &dyn Attester,
        key_id: &str,
        bytes: usize,
    ) -> Result<DataKey, KmsError> {
        if !(1..=1024).contains(&bytes) {
            return Err(KmsError::Config(format!(
                "a data key is 1 to 1024 bytes, not {bytes}"
            )));
        }
        let fields = vec![
            ("KeyId", json_string(key_id)),
            ("NumberOfBytes", bytes.to_string()),
        ];
        let (recipient, answer) = self.call(http, attester, "GenerateDataKey", fields)?;
        let plaintext = recipient_plaintext(&recipient, &answer)?;
        Ok(DataKey {
            plaintext,
            ciphertext_blob: base64_field(&answer, "CiphertextBlob")?,
            key_id: string_field(&answer, "KeyId")?.to_owned(),
        })
    }

    /// One signed call with the attestation document of a fresh recipient key pair: the
    /// recipient and the answer's members. Credentials come first: when they cannot be had
    /// (a retry at start while the metadata service is unreachable), no key pair is made.
    fn call(
        &self,
        http: &dyn Http,
        attester: &dyn Attester,
        action: &str,
        mut fields: Vec<(&str, String)>,
    ) -> Result<(Recipient, Vec<(String, Value)>), KmsError> {
        let now = super::unix_now();
        let credentials = self
            .credentials
            .get(http, now)
            .map_err(KmsError::Credentials)?;
        let recipient = Recipient::generate().map_err(KmsError::Recipient)?;
        let document = attester
            .attest(&[], &[], recipient.public_key_der())
            .map_err(KmsError::Attestation)?;
        fields.push((
            "Recipient",
            format!(
                "{{\"KeyEncryptionAlgorithm\":{},\"AttestationDocument\":{}}}",
                json_string(KEY_ENCRYPTION_ALGORITHM),
                json_string(&contract::base64::encode(&document))
            ),
        ));
        let body = format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", json_string(k)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let req = signed_request(
            &self.endpoint,
            &self.region,
            action,
            body.into_bytes(),
            &credentials,
            now,
        );
        let resp = http.send(&req).map_err(KmsError::Http)?;
        let text = std::str::from_utf8(&resp.body).map_err(|_| {
            KmsError::Malformed(format!("HTTP {}: the body is not UTF-8", resp.status))
        })?;
        let value = contract::json::parse(text);
        if resp.status != 200 {
            return Err(service_error(resp.status, value.ok(), &resp.body));
        }
        match value {
            Ok(Value::Object(members)) => Ok((recipient, members)),
            Ok(v) => Err(KmsError::Malformed(format!(
                "expected a JSON object, got {}",
                v.kind()
            ))),
            Err(e) => Err(KmsError::Malformed(format!("not JSON: {e}"))),
        }
    }
}

/// The request for `action` with its SigV4 signature (service `kms`).
pub fn signed_request(
    endpoint: &Url,
    region: &str,
    action: &str,
    body: Vec<u8>,
    credentials: &sigv4::Credentials,
    now: i64,
) -> Request {
    let amz_date = sigv4::amz_date(u64::try_from(now).unwrap_or(0));
    let host = endpoint.host_header();
    let target = format!("TrentService.{action}");
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("Host", host.as_str()),
        ("X-Amz-Date", amz_date.as_str()),
        ("X-Amz-Target", target.as_str()),
    ];
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: endpoint.path(),
            query: &[],
            headers: &headers,
            payload: &body,
        },
        credentials,
        region,
        "kms",
        &amz_date,
    );
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| *n != "Host")
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    out.push(("Authorization".into(), signed.authorization));
    if let Some(token) = signed.security_token {
        out.push(("X-Amz-Security-Token".into(), token));
    }
    Request {
        method: "POST".into(),
        url: endpoint.clone(),
        headers: out,
        body,
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::new();
    contract::json::write_string(&mut out, s);
    out
}

/// KMS's error: `{"__type": "…#AccessDeniedException", "message": "…"}`.
fn service_error(status: u16, value: Option<Value>, body: &[u8]) -> KmsError {
    let members = match value {
        Some(Value::Object(m)) => m,
        _ => {
            return KmsError::Service {
                status,
                kind: "unknown".into(),
                message: super::body_start(body),
            }
        }
    };
    let text = |name: &str| {
        members.iter().find_map(|(k, v)| match v {
            Value::String(s) if k.eq_ignore_ascii_case(name) => Some(s.clone()),
            _ => None,
        })
    };
    let kind = text("__type").unwrap_or_else(|| "unknown".into());
    let kind = kind.rsplit('#').next().unwrap_or("unknown");
    KmsError::Service {
        status,
        kind: super::body_start(kind.as_bytes()),
        message: super::body_start(text("message").unwrap_or_default().as_bytes()),
    }
}

fn string_field<'a>(members: &'a [(String, Value)], name: &str) -> Result<&'a str, KmsError> {
    match members.iter().find(|(k, _)| k == name) {
        Some((_, Value::String(s))) => Ok(s),
        Some((_, v)) => Err(KmsError::Malformed(format!(
            "{name} is {}, not a string",
            v.kind()
        ))),
        None => Err(KmsError::Malformed(format!("{name} is missing"))),
    }
}

fn base64_field(members: &[(String, Value)], name: &str) -> Result<Vec<u8>, KmsError> {
    contract::base64::decode(string_field(members, name)?)
        .map_err(|_| KmsError::Malformed(format!("{name} is not base64")))
}

/// The plaintext of an answer with `Recipient`: `CiphertextForRecipient` decrypted, and no
/// `Plaintext` beside it.
fn recipient_plaintext(
    recipient: &Recipient,
    members: &[(String, Value)],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if members
        .iter()
        .any(|(k, v)| k == "Plaintext" && *v != Value::Null)
    {
        return Err(KmsError::Malformed(
            "it carries Plaintext, which an answer to a Recipient must not: the key crossed the parent in the clear".into(),
        ));
    }
    let cms = Zeroizing::new(base64_field(members, "CiphertextForRecipient")?);
    recipient.decrypt(&cms).map_err(KmsError::Recipient)
}

#[cfg(test)]
mod tests;
