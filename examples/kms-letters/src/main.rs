//! `kms-letters`: a message only the measured enclave can read, and a result it proves.
//!
//! A client encrypts a message under a KMS key whose policy names this image's PCR0
//! (`aws kms encrypt --key-id … --plaintext fileb://message`) and POSTs the ciphertext blob,
//! base64, to `/count?letter=L&nonce=HEX`. The enclave has KMS decrypt it with `Recipient`
//! (the plaintext comes back encrypted for a key pair that exists only in this process), counts
//! the letter, and answers with an attestation document (`application/cbor`) whose `user_data`
//! is `{"letter":"L","count":N,"ciphertext_sha256":"…"}` and whose `nonce` is the client's.
//! `eif-builder verify answer.cbor --measurements measurements.json --nonce HEX` checks it and
//! prints the result. The message itself never leaves the enclave.
//!
//! Environment, as AWS's SDKs read it: `AWS_REGION`, credentials (the instance metadata service
//! by default); the image lists `kms.REGION.amazonaws.com:443` and `169.254.169.254:80` in its
//! egress (see `enclave.toml`). The KMS call blocks its worker for the round trip: fine for an
//! example, a queue in a real service.

use server::attest::{nonce_from_query, sha256};
use server::aws::kms::Kms;
use server::client::{Client, ClientOptions};
use server::nsm::{Attester, Nsm};
use server::{Config, Identity, Limits, ListenAddr, Request, Response, Server};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The longest ciphertext blob accepted, base64 (KMS's own limit is 6144 bytes).
const MAX_BODY: usize = 8192;

/// What the application holds.
struct App {
    kms: Kms,
    http: Client,
    nsm: Option<Nsm>,
    attestation: server::attest::Attestation,
}

/// `letter=L` from the query: one character.
fn letter(query: Option<&str>) -> Option<char> {
    let value = query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("letter="))?;
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphanumeric() => Some(c),
        _ => None,
    }
}

impl App {
    fn count(&self, req: &Request<'_>) -> Response {
        let Some(nsm) = &self.nsm else {
            return Response::json_error(503, "no NSM: KMS releases nothing without attestation");
        };
        let Some(letter) = letter(req.query()) else {
            return Response::json_error(400, "?letter= must be one letter or digit");
        };
        let nonce = match nonce_from_query(req.query()) {
            Ok(n) => n,
            Err(e) => return Response::json_error(400, e),
        };
        if req.body().len() > MAX_BODY {
            return Response::json_error(413, "the ciphertext blob is too large");
        }
        let text = String::from_utf8_lossy(req.body());
        let Ok(blob) = contract::base64::decode(text.trim()) else {
            return Response::json_error(400, "the body must be the ciphertext blob in base64");
        };
        let message = match self.kms.decrypt(&self.http, nsm, &blob, None) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("kms-letters: {e}");
                return Response::json_error(502, &e.to_string());
            }
        };
        let count = String::from_utf8_lossy(&message)
            .chars()
            .filter(|c| *c == letter)
            .count();
        let result = format!(
            "{{\"letter\":\"{letter}\",\"count\":{count},\"ciphertext_sha256\":\"{}\"}}",
            contract::hex::encode(&sha256(&blob))
        );
        match nsm.attest(result.as_bytes(), &nonce, &[]) {
            Ok(doc) => Response::new(200, "application/cbor", doc),
            Err(e) => Response::json_error(500, &e.to_string()),
        }
    }

    fn handle(&self, req: &Request<'_>) -> Response {
        match (req.method(), req.path()) {
            ("POST", "/count") => self.count(req),
            (_, "/attestation") => self.attestation.handle(req),
            (_, "/count") => Response::json_error(405, "method not allowed"),
            _ => Response::json_error(404, "not found"),
        }
    }
}

fn run(listen: ListenAddr) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let kms = Kms::from_env(env).map_err(|e| e.to_string())?;
    let mut roots = Vec::new();
    if let Some((path, certs)) =
        server::client::test_roots_from_env(env).map_err(|e| e.to_string())?
    {
        println!(
            "kms-letters: warning: {}: trusting {} extra certificate(s) from {} (tests only)",
            server::client::TEST_CA_ENV,
            certs.len(),
            path.display()
        );
        roots = certs;
    }
    let http = Client::new(ClientOptions::for_enclave(&roots).map_err(|e| e.to_string())?);
    let identity = Identity::generate().map_err(|e| e.to_string())?;
    let attestation =
        server::attest::Attestation::new(Nsm::open_default().ok(), identity.leaf_der());
    let memory = server::memory::detect().map_or(256 << 20, |m| m.bytes);
    let config = Config {
        listen,
        workers: 2,
        limits: Limits::for_memory(memory),
    };
    let tls = identity.into_config().map_err(|e| e.to_string())?;
    let mut server = Server::bind(&config, Some(tls)).map_err(|e| e.to_string())?;
    server
        .stop_on_signals(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    println!(
        "kms-letters: listening on {} (KMS at {})",
        server.local_addr(),
        kms.endpoint()
    );
    let app = App {
        kms,
        http,
        nsm: Nsm::open_default().ok(),
        attestation,
    };
    server
        .run(Arc::new(move |req: &Request<'_>| app.handle(req)))
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "vsock:443".into());
    match listen
        .parse()
        .map_err(|e: server::Error| e.to_string())
        .and_then(run)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-letters: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_is_one_letter_or_digit() {
        assert_eq!(letter(Some("letter=e&nonce=00")), Some('e'));
        assert_eq!(letter(Some("nonce=00&letter=7")), Some('7'));
        assert_eq!(letter(Some("letter=ee")), None);
        assert_eq!(letter(Some("letter=%20")), None);
        assert_eq!(letter(None), None);
    }
}
