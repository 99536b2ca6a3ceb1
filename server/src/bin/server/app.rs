//! The default application: `/health`, `/attestation` and `/private-data`.
//!
//! `GET /attestation?nonce=HEX` returns the NSM's attestation document (`application/cbor`)
//! with the client's nonce (1 to 64 bytes), `public_key` = the DER SubjectPublicKeyInfo of the
//! server's TLS certificate and `user_data` = SHA-256 of that certificate's DER. A client that
//! verifies the document and sees the same certificate on its TLS session knows it talks to
//! the measured image. Without an NSM: 503, never a document made up here.
//!
//! `POST /private-data` takes a JSON body (at most [`MAX_PRIVATE_BYTES`]) and keeps it sealed
//! in memory (see [`crate::vault`]); `GET /private-data` returns it decrypted. Only the key can
//! survive a restart, and only when it comes from `ENCLAVE_KEY_BASE64`: the sealed value never
//! does. Every answer says so.

use crate::handler::{push_json_string, Handler, Request, Response};
use crate::nsm::Attester;
use crate::server::Stats;
use crate::vault::{KeySource, Vault};
use std::sync::Arc;
use std::time::Instant;

/// The most nonce bytes the NSM takes in a document.
pub const MAX_NONCE_BYTES: usize = 64;
/// The largest `/private-data` body (whatever `--max-body-bytes` allows).
pub const MAX_PRIVATE_BYTES: usize = 1024 * 1024;
/// The header on every `/private-data` answer that says what a restart keeps.
pub const PERSISTENCE_HEADER: &str = "X-Private-Data-Persistence";

/// What survives a restart, for the key source: the sentence of the answers.
pub fn persistence(source: KeySource) -> &'static str {
    match source {
        KeySource::Generated => {
            "memory only: a restart loses the data and the key (generated at start); set ENCLAVE_KEY_BASE64 to keep the key"
        }
        KeySource::Environment => {
            "memory only: a restart loses the data; the key comes from ENCLAVE_KEY_BASE64 and is the same after a restart, but nothing sealed under it is kept"
        }
    }
}

/// The application's state.
pub struct App {
    started: Instant,
    stats: Arc<Stats>,
    attester: Option<Box<dyn Attester>>,
    spki: Vec<u8>,
    cert_sha256: Vec<u8>,
    vault: Vault,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("nsm", &self.attester.is_some())
            .finish_non_exhaustive()
    }
}

/// Decodes hex (either case); `None` on an odd length or another character.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// Lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The nonce of a `/attestation` query, or the message of the 400.
fn nonce_from_query(query: Option<&str>) -> Result<Vec<u8>, &'static str> {
    let mut nonce = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "nonce" {
            if nonce.is_some() {
                return Err("nonce given more than once");
            }
            nonce = Some(value);
        }
    }
    let hex = nonce.ok_or("nonce=HEX is required")?;
    let bytes = decode_hex(hex).ok_or("nonce is not hex")?;
    if bytes.is_empty() {
        return Err("nonce is empty");
    }
    if bytes.len() > MAX_NONCE_BYTES {
        return Err("nonce is longer than 64 bytes");
    }
    Ok(bytes)
}

impl App {
    /// The application for a server whose leaf certificate is `cert_der`, keeping
    /// `/private-data` in `vault`.
    pub fn new(
        stats: Arc<Stats>,
        attester: Option<Box<dyn Attester>>,
        cert_der: &[u8],
        vault: Vault,
    ) -> App {
        let spki = crate::cert::spki_of(cert_der).unwrap_or_default().to_vec();
        let cert_sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der)
            .as_ref()
            .to_vec();
        App {
            started: Instant::now(),
            stats,
            attester,
            spki,
            cert_sha256,
            vault,
        }
    }

    /// A `/private-data` answer: JSON, never cached, with the persistence header.
    fn private(&self, status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::json(status, body)
            .with_header("Cache-Control", "no-store")
            .with_header(PERSISTENCE_HEADER, persistence(self.vault.key_source()))
    }

    /// `{"error": message, "persistence": …}`.
    fn private_error(&self, status: u16, message: &str) -> Response {
        let mut body = String::from("{\"error\":");
        push_json_string(&mut body, message);
        body.push_str(",\"persistence\":");
        push_json_string(&mut body, persistence(self.vault.key_source()));
        body.push('}');
        self.private(status, body)
    }

    fn store_private(&self, req: &Request<'_>) -> Response {
        let body = req.body();
        if body.len() > MAX_PRIVATE_BYTES {
            return self.private_error(413, "the body is larger than 1 MiB");
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            return self.private_error(400, "the body is not valid JSON");
        }
        if self.vault.store(body).is_err() {
            return self.private_error(500, "sealing failed; nothing was stored");
        }
        let mut out = format!(
            "{{\"stored\":true,\"bytes\":{},\"sealed\":\"AES-256-GCM, in memory\",\"key\":\"{}\",\"persistence\":",
            body.len(),
            match self.vault.key_source() {
                KeySource::Generated => "generated at start",
                KeySource::Environment => "from ENCLAVE_KEY_BASE64",
            }
        );
        push_json_string(&mut out, persistence(self.vault.key_source()));
        out.push('}');
        self.private(200, out)
    }

    fn load_private(&self) -> Response {
        match self.vault.load() {
            Some(json) => self.private(200, json),
            None => self.private_error(404, "nothing stored since the server started"),
        }
    }

    fn health(&self) -> Response {
        let mut body = format!(
            "{{\"status\":\"ok\",\"uptime_s\":{},\"connections\":{},\"version\":",
            self.started.elapsed().as_secs(),
            self.stats.open_connections()
        );
        push_json_string(&mut body, env!("CARGO_PKG_VERSION"));
        body.push('}');
        Response::json(200, body).with_header("Cache-Control", "no-store")
    }

    fn attestation(&self, req: &Request<'_>) -> Response {
        let nonce = match nonce_from_query(req.query()) {
            Ok(n) => n,
            Err(msg) => return Response::json_error(400, msg),
        };
        let Some(attester) = &self.attester else {
            return Response::json_error(
                503,
                "no NSM (/dev/nsm): not running in a Nitro enclave, so no attestation document",
            );
        };
        if self.spki.is_empty() {
            return Response::json_error(503, "no TLS certificate to attest (plain HTTP)");
        }
        match attester.attest(&self.cert_sha256, &nonce, &self.spki) {
            Ok(doc) => {
                Response::new(200, "application/cbor", doc).with_header("Cache-Control", "no-store")
            }
            Err(_) => Response::json_error(502, "the NSM did not produce a document"),
        }
    }
}

impl Handler for App {
    fn handle(&self, req: &Request<'_>) -> Response {
        let get = matches!(req.method(), "GET" | "HEAD");
        match req.path() {
            "/health" if get => self.health(),
            "/attestation" if get => self.attestation(req),
            "/private-data" if get => self.load_private(),
            "/private-data" if req.method() == "POST" => self.store_private(req),
            "/health" | "/attestation" => {
                Response::json_error(405, "method not allowed").with_header("Allow", "GET, HEAD")
            }
            "/private-data" => Response::json_error(405, "method not allowed")
                .with_header("Allow", "GET, HEAD, POST"),
            _ => Response::json_error(404, "not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsm::AttestError;
    use crate::vault::EnclaveKey;
    use std::sync::Mutex;

    /// (user_data, nonce, public_key) of each call.
    type Calls = Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>;

    /// Records what it was asked for and answers with a fixed document.
    #[derive(Default)]
    struct FakeNsm(Mutex<Calls>);

    impl Attester for Arc<FakeNsm> {
        fn attest(&self, u: &[u8], n: &[u8], k: &[u8]) -> Result<Vec<u8>, AttestError> {
            self.0
                .lock()
                .unwrap()
                .push((u.to_vec(), n.to_vec(), k.to_vec()));
            Ok(b"\xd2\x84doc".to_vec())
        }
    }

    fn get(app: &App, path: &str, query: Option<&str>) -> Response {
        app.handle(&Request::new("GET", path, query, &[], b""))
    }

    fn cert() -> Vec<u8> {
        crate::cert::generate().unwrap().cert_der
    }

    fn vault() -> Vault {
        Vault::new(&EnclaveKey::generate().unwrap()).unwrap()
    }

    fn post(app: &App, path: &str, body: &[u8]) -> Response {
        app.handle(&Request::new("POST", path, None, &[], body))
    }

    fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("+1"), None);
        assert_eq!(encode_hex(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn nonce_rules() {
        assert_eq!(nonce_from_query(Some("nonce=0a")), Ok(vec![10]));
        assert_eq!(nonce_from_query(Some("x=1&nonce=0a0b")), Ok(vec![10, 11]));
        assert!(nonce_from_query(None).is_err());
        assert!(nonce_from_query(Some("nonce=")).is_err());
        assert!(nonce_from_query(Some("nonce=0g")).is_err());
        assert!(nonce_from_query(Some("nonce=00&nonce=00")).is_err());
        assert!(nonce_from_query(Some(&format!("nonce={}", "ab".repeat(64)))).is_ok());
        assert!(nonce_from_query(Some(&format!("nonce={}", "ab".repeat(65)))).is_err());
    }

    #[test]
    fn health_is_json() {
        let stats = Arc::new(Stats::default());
        stats.open.store(3, std::sync::atomic::Ordering::Relaxed);
        let app = App::new(stats, None, &cert(), vault());
        let r = get(&app, "/health", None);
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body).unwrap();
        assert!(
            body.starts_with("{\"status\":\"ok\",\"uptime_s\":0,\"connections\":3,\"version\":\""),
            "{body}"
        );
        assert_eq!(get(&app, "/nope", None).status, 404);
        let post = app.handle(&Request::new("POST", "/health", None, &[], b""));
        assert_eq!(post.status, 405);
    }

    #[test]
    fn attestation_without_nsm_is_503_after_the_nonce_is_checked() {
        let app = App::new(Arc::new(Stats::default()), None, &cert(), vault());
        assert_eq!(get(&app, "/attestation", Some("nonce=00")).status, 503);
        assert_eq!(get(&app, "/attestation", Some("nonce=xyz")).status, 400);
        let long = format!("nonce={}", "00".repeat(65));
        assert_eq!(get(&app, "/attestation", Some(&long)).status, 400);
    }

    #[test]
    fn attestation_binds_the_certificate() {
        let fake = Arc::new(FakeNsm::default());
        let cert = cert();
        let app = App::new(
            Arc::new(Stats::default()),
            Some(Box::new(Arc::clone(&fake))),
            &cert,
            vault(),
        );
        let r = get(&app, "/attestation", Some("nonce=c0ffee"));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/cbor");
        assert_eq!(r.body, b"\xd2\x84doc");
        let calls = fake.0.lock().unwrap();
        let (user_data, nonce, key) = calls.first().unwrap();
        assert_eq!(nonce, &[0xc0, 0xff, 0xee]);
        assert_eq!(
            user_data.as_slice(),
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert).as_ref()
        );
        assert_eq!(key.as_slice(), crate::cert::spki_of(&cert).unwrap());
    }

    #[test]
    fn private_data_round_trip_and_rules() {
        let app = App::new(Arc::new(Stats::default()), None, &cert(), vault());
        let r = get(&app, "/private-data", None);
        assert_eq!(r.status, 404);
        assert!(String::from_utf8(r.body)
            .unwrap()
            .contains("\"persistence\":\"memory only"));
        let r = post(&app, "/private-data", br#"{"secret": [1, 2, "three"]}"#);
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(body.starts_with("{\"stored\":true,\"bytes\":27,"), "{body}");
        assert!(body.contains("generated at start"), "{body}");
        assert!(header(&r, PERSISTENCE_HEADER)
            .unwrap()
            .contains("loses the data and the key"));
        let r = get(&app, "/private-data", None);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"secret": [1, 2, "three"]}"#);
        assert_eq!(r.content_type, "application/json");
        assert!(header(&r, PERSISTENCE_HEADER).is_some());
        for bad in [&b""[..], b"{", b"{\"a\":}", b"nul", b"\xff", b"{} {}"] {
            let r = post(&app, "/private-data", bad);
            assert_eq!(r.status, 400, "{bad:?}");
        }
        // A refused body leaves the stored one alone.
        assert_eq!(
            get(&app, "/private-data", None).body,
            br#"{"secret": [1, 2, "three"]}"#
        );
        let big = format!("\"{}\"", "a".repeat(MAX_PRIVATE_BYTES - 1));
        assert_eq!(post(&app, "/private-data", big.as_bytes()).status, 413);
        let max = format!("\"{}\"", "a".repeat(MAX_PRIVATE_BYTES - 2));
        assert_eq!(post(&app, "/private-data", max.as_bytes()).status, 200);
        let deep = "[".repeat(100_000);
        assert_eq!(post(&app, "/private-data", deep.as_bytes()).status, 400);
        let put = app.handle(&Request::new("PUT", "/private-data", None, &[], b"{}"));
        assert_eq!(put.status, 405);
    }

    #[test]
    fn private_data_says_the_key_from_the_environment_survives_but_not_the_data() {
        let key = EnclaveKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap();
        let app = App::new(
            Arc::new(Stats::default()),
            None,
            &cert(),
            Vault::new(&key).unwrap(),
        );
        let r = post(&app, "/private-data", b"1");
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            body.contains("\"key\":\"from ENCLAVE_KEY_BASE64\""),
            "{body}"
        );
        assert!(header(&r, PERSISTENCE_HEADER)
            .unwrap()
            .contains("nothing sealed under it is kept"));
    }
}
