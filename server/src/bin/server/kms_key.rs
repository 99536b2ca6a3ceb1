//! The enclave key from AWS KMS at start: `ENCLAVE_KEY_KMS_CIPHERTEXT` (a 32-byte key the
//! operator encrypted once with `aws kms encrypt`; a ciphertext is safe in the image) is
//! decrypted with `Recipient`, so KMS releases it only to an enclave whose attestation
//! document satisfies the key's policy, and only this process can read the answer.
//!
//! The region and credentials are read as AWS's SDKs read them (`AWS_REGION`; explicit keys or
//! the instance metadata service), the endpoint is reached through the image's egress routes
//! (`egress = ["kms.REGION.amazonaws.com:443", "169.254.169.254:80"]`), and the certificate is
//! checked against the Mozilla roots. `ENCLAVE_TEST_CA_FILE` ([`TEST_CA_ENV`]) adds a PEM file of trust anchors:
//! for tests against a local stand-in only, said loudly at start, and visible in the image's
//! manifest like everything that is measured.

use std::time::Duration;

use server::aws::kms::{Kms, KmsError};
use server::client::{self, Client, ClientOptions, TEST_CA_ENV};
use server::nsm::Attester;

use crate::vault::{EnclaveKey, KMS_ENV};

/// Attempts at KMS before giving up (the egress forwarder may still be starting, and KMS
/// has its moments): 1 + 2 + 4 + 8 seconds of waiting in all.
const ATTEMPTS: u32 = 5;

/// Asks KMS for the key. `var` reads the environment.
pub fn fetch(
    ciphertext_base64: &str,
    attester: Option<&dyn Attester>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<EnclaveKey, String> {
    let blob = contract::base64::decode(ciphertext_base64.trim()).map_err(|_| {
        format!("{KMS_ENV} is not standard base64 (what `aws kms encrypt --output text --query CiphertextBlob` prints)")
    })?;
    let attester = attester.ok_or_else(|| {
        format!("{KMS_ENV} needs the NSM: KMS releases the key to an attestation document only")
    })?;
    let kms = Kms::from_env(&var).map_err(|e| e.to_string())?;
    let mut roots = Vec::new();
    if let Some((path, certs)) = client::test_roots_from_env(&var).map_err(|e| e.to_string())? {
        println!(
            "server: warning: {TEST_CA_ENV}: trusting {} extra certificate(s) from {} for outside services (tests only)",
            certs.len(),
            path.display()
        );
        roots = certs;
    }
    let http = Client::new(ClientOptions::for_enclave(&roots).map_err(|e| e.to_string())?);
    println!(
        "server: enclave key: asking AWS KMS at {} ({}) to decrypt {KMS_ENV} for this enclave's attestation document",
        kms.endpoint(),
        match kms.credentials().source() {
            server::aws::credentials::Source::Explicit => "explicit credentials".to_owned(),
            server::aws::credentials::Source::InstanceMetadata(url) =>
                format!("credentials from the instance metadata service at {url}"),
        }
    );
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match kms.decrypt(&http, attester, &blob, None) {
            Ok(plaintext) => return EnclaveKey::from_kms(&plaintext),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                println!(
                    "server: enclave key: attempt {attempt} of {ATTEMPTS}: {e}; again in {}s",
                    wait.as_secs()
                );
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            Err(e) => return Err(format!("{KMS_ENV}: {e}")),
        }
    }
}

/// Worth another attempt: the way there failed, or KMS had a server-side error. A refusal
/// (access denied, invalid ciphertext) or a bad answer is final.
fn retryable(e: &KmsError) -> bool {
    match e {
        KmsError::Http(_) => true,
        KmsError::Credentials(server::aws::credentials::CredentialsError::Imds(..)) => true,
        KmsError::Service { status, .. } => *status >= 500,
        _ => false,
    }
}
