//! Talking to AWS from inside the enclave, without an async runtime: what KMS and the
//! instance metadata service need.
//!
//! - [`sigv4`]: request signing (Signature Version 4).
//! - [`credentials`]: where the signing keys come from (explicit, or IMDSv2 through egress).
//! - [`kms`]: `Decrypt` and `GenerateDataKey` with `Recipient`, so the plaintext is readable in
//!   this enclave only.
//! - [`recipient`]: the RSA key pair made in enclave memory for one such call, and the
//!   decryption of KMS's answer; [`cms`]: that answer's format (CMS EnvelopedData).

pub mod cms;
pub mod credentials;
pub mod kms;
pub mod recipient;
pub mod sigv4;

use crate::client::{Client, ClientError, Request, Response};

/// How AWS calls go out: the [`Client`] in a program, a script in tests.
pub trait Http {
    /// Sends one request and reads its whole answer.
    fn send(&self, req: &Request) -> Result<Response, ClientError>;
}

impl Http for Client {
    fn send(&self, req: &Request) -> Result<Response, ClientError> {
        self.request(req)
    }
}

/// The first line of an answer's body, printable and short, for an error message.
fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    let shown: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
    if shown.is_empty() {
        "(empty body)".into()
    } else {
        shown
    }
}

/// Unix seconds now (0 if the clock is before 1970).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// One scripted answer: status and body, made from the request.
    pub type Answer = Box<dyn FnOnce(&Request) -> (u16, Vec<u8>) + Send>;

    /// Answers requests from a list, in order, and records what was sent.
    pub struct Script {
        answers: Mutex<Vec<Answer>>,
        sent: Mutex<Vec<Request>>,
    }

    impl std::fmt::Debug for Script {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Script").finish_non_exhaustive()
        }
    }

    impl Script {
        /// Fixed answers.
        pub fn new(answers: Vec<(u16, Vec<u8>)>) -> Script {
            Script::with(
                answers
                    .into_iter()
                    .map(|a| Box::new(move |_: &Request| a) as Answer)
                    .collect(),
            )
        }

        /// Answers made from the requests.
        pub fn with(mut answers: Vec<Answer>) -> Script {
            answers.reverse();
            Script {
                answers: Mutex::new(answers),
                sent: Mutex::new(Vec::new()),
            }
        }

        /// The requests sent.
        pub fn requests(&self) -> Vec<Request> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Http for Script {
        fn send(&self, req: &Request) -> Result<Response, ClientError> {
            self.sent.lock().unwrap().push(req.clone());
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop()
                .ok_or_else(|| ClientError::Io {
                    during: "reading the response from",
                    url: req.url.without_query(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                })?;
            let (status, body) = answer(req);
            Ok(Response {
                status,
                headers: Vec::new(),
                body,
            })
        }
    }

    /// A scratch directory, removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "enclave-https-{tag}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs openssl in `dir`; its stdout. Fails the test if openssl is missing or fails.
    pub fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("this test needs openssl (apt-get install openssl): {e}"));
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// What KMS does for a `Recipient`, done by OpenSSL: a certificate around the RSA public
    /// key `spki` (openssl encrypts to certificates; `x509 -new -force_pubkey`, OpenSSL 3.0),
    /// then `openssl cms -encrypt` of `plaintext` to it with RSA-OAEP-SHA-256 and AES-256-CBC,
    /// the recipient named by subjectKeyIdentifier; streamed (indefinite-length BER, as KMS
    /// sends it) when `stream`.
    pub fn openssl_cms_encrypt(spki: &[u8], plaintext: &[u8], stream: bool) -> Vec<u8> {
        let dir = TempDir::new("cms");
        let path = |name: &str| dir.0.join(name);
        std::fs::write(path("pub.der"), spki).unwrap();
        std::fs::write(path("ext.cnf"), "subjectKeyIdentifier=hash\n").unwrap();
        std::fs::write(path("plain.bin"), plaintext).unwrap();
        let signer =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cms/recipient.key");
        let signer = signer.to_str().unwrap();
        openssl(
            &dir.0,
            &[
                "x509",
                "-new",
                "-key",
                signer,
                "-force_pubkey",
                "pub.der",
                "-subj",
                "/CN=recipient",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ],
        );
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-in",
            "plain.bin",
            "-outform",
            "DER",
            "-recip",
            "cert.pem",
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
            "-keyid",
        ];
        if stream {
            args.push("-stream");
        }
        openssl(&dir.0, &args)
    }

    /// [`openssl_cms_encrypt`], streamed as KMS sends it.
    pub fn openssl_encrypt_for(spki: &[u8], plaintext: &[u8]) -> Vec<u8> {
        openssl_cms_encrypt(spki, plaintext, true)
    }

    #[test]
    fn body_starts_are_one_printable_line() {
        assert_eq!(body_start(b"Not Found\r\nmore"), "Not Found");
        assert_eq!(body_start(b""), "(empty body)");
        assert_eq!(body_start(b"a\x1bb"), "ab");
    }
}
