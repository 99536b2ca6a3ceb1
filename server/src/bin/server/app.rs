//! The default application: `/health`, `/attestation` (the library's endpoint) and
//! `/private-data` (a sealed slot per capability token, `vault.rs`).
//!
//! `POST /private-data` with `Authorization: Bearer TOKEN` takes a JSON body (at most
//! [`MAX_PRIVATE_BYTES`]) and keeps it sealed in memory in the token's slot; `GET` returns it
//! decrypted, `DELETE` empties it. No token: 401. Only the key can survive a restart, and only
//! when it comes from `ENCLAVE_KEY_BASE64`: the sealed values never do. Every answer says so.

use crate::vault::{bearer_token, KeySource, StoreError, Vault};
use contract::json::write_string;
use server::attest::Attestation;
use server::budget::Budget;
use server::{Handler, Request, Response, Stats};
use std::sync::Arc;
use std::time::Instant;

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
        KeySource::Kms => {
            "memory only: a restart loses the data; the key comes from AWS KMS, released only to this enclave's measurements, and is the same after a restart, but nothing sealed under it is kept"
        }
    }
}

/// The application's state.
#[derive(Debug)]
pub struct App {
    started: Instant,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
    attestation: Attestation,
    vault: Vault,
}

impl App {
    /// The application, answering `/attestation` with `attestation` and keeping
    /// `/private-data` in `vault`.
    pub fn new(
        stats: Arc<Stats>,
        budget: Arc<Budget>,
        attestation: Attestation,
        vault: Vault,
    ) -> App {
        App {
            started: Instant::now(),
            stats,
            budget,
            attestation,
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
        write_string(&mut body, message);
        body.push_str(",\"persistence\":");
        write_string(&mut body, persistence(self.vault.key_source()));
        body.push('}');
        self.private(status, body)
    }

    fn private_data(&self, req: &Request<'_>) -> Response {
        let token = match bearer_token(req.header("authorization")) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .private_error(401, &e.to_string())
                    .with_header("WWW-Authenticate", "Bearer realm=\"private-data\"")
            }
        };
        match req.method() {
            "GET" | "HEAD" => match self.vault.load(token) {
                Some(json) => self.private(200, json.as_slice()).sensitive(),
                None => self.private_error(
                    404,
                    "nothing stored under this token since the server started",
                ),
            },
            "POST" => self.store(token, req.body()),
            "DELETE" => {
                if self.vault.remove(token) {
                    self.private(204, "")
                } else {
                    self.private_error(404, "nothing stored under this token")
                }
            }
            _ => Response::json_error(405, "method not allowed")
                .with_header("Allow", "GET, HEAD, POST, DELETE"),
        }
    }

    fn store(&self, token: &[u8], body: &[u8]) -> Response {
        if body.len() > MAX_PRIVATE_BYTES {
            return self.private_error(413, "the body is larger than 1 MiB");
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            return self.private_error(400, "the body is not valid JSON");
        }
        match self.vault.store(token, body) {
            Ok(()) => {}
            Err(StoreError::Full) => {
                return self.private_error(
                    507,
                    "the private data of all clients fills its share of memory; nothing was stored",
                )
            }
            Err(StoreError::Seal) => {
                return self.private_error(500, "sealing failed; nothing was stored")
            }
        }
        let mut out = format!(
            "{{\"stored\":true,\"bytes\":{},\"sealed\":\"AES-256-GCM, in memory, in this token's slot\",\"key\":\"{}\",\"persistence\":",
            body.len(),
            match self.vault.key_source() {
                KeySource::Generated => "generated at start",
                KeySource::Environment => "from ENCLAVE_KEY_BASE64",
                KeySource::Kms => "from AWS KMS (ENCLAVE_KEY_KMS_CIPHERTEXT)",
            }
        );
        write_string(&mut out, persistence(self.vault.key_source()));
        out.push('}');
        self.private(200, out)
    }

    fn health(&self) -> Response {
        let mut body = format!(
            "{{\"status\":\"ok\",\"uptime_s\":{},\"connections\":{},\"memory\":{{\"budget\":{},\"used\":{}}},\"version\":",
            self.started.elapsed().as_secs(),
            self.stats.open_connections(),
            self.budget.limit(),
            self.budget.used(),
        );
        write_string(&mut body, env!("CARGO_PKG_VERSION"));
        body.push('}');
        Response::json(200, body).with_header("Cache-Control", "no-store")
    }
}

impl Handler for App {
    fn handle(&self, req: &Request<'_>) -> Response {
        let get = matches!(req.method(), "GET" | "HEAD");
        match req.path() {
            "/health" if get => self.health(),
            "/health" => {
                Response::json_error(405, "method not allowed").with_header("Allow", "GET, HEAD")
            }
            "/attestation" => self.attestation.handle(req),
            "/private-data" => self.private_data(req),
            _ => Response::json_error(404, "not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::EnclaveKey;

    const TOKEN: &str = "Bearer 0123456789abcdef0123456789abcdef";

    fn app_with(key: EnclaveKey) -> App {
        let budget = Arc::new(Budget::new(64 << 20));
        let vault = Vault::new(&key, 16 << 20, Some(Arc::clone(&budget))).unwrap();
        let cert = server::cert::generate().unwrap().cert_der;
        let none: Option<server::nsm::Nsm> = None;
        App::new(
            Arc::new(Stats::default()),
            budget,
            Attestation::new(none, &cert),
            vault,
        )
    }

    fn app() -> App {
        app_with(EnclaveKey::generate().unwrap())
    }

    fn call(app: &App, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Response {
        let headers: Vec<(&str, &[u8])> = auth
            .map(|a| ("Authorization", a.as_bytes()))
            .into_iter()
            .collect();
        app.handle(&Request::new(method, path, None, &headers, body))
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn health_is_json_with_the_memory_figures() {
        let app = app();
        app.stats
            .open
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let r = call(&app, "GET", "/health", None, b"");
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            body.starts_with("{\"status\":\"ok\",\"uptime_s\":0,\"connections\":3,\"memory\":{\"budget\":67108864,\"used\":"),
            "{body}"
        );
        assert_eq!(call(&app, "GET", "/nope", None, b"").status, 404);
        assert_eq!(call(&app, "POST", "/health", None, b"").status, 405);
        assert_eq!(call(&app, "GET", "/attestation", None, b"").status, 400);
    }

    #[test]
    fn private_data_needs_a_token_and_each_token_has_its_slot() {
        let app = app();
        let r = call(&app, "GET", "/private-data", None, b"");
        assert_eq!(r.status, 401);
        assert_eq!(
            header(&r, "WWW-Authenticate"),
            Some("Bearer realm=\"private-data\"")
        );
        let r = call(&app, "POST", "/private-data", Some("Bearer short"), b"1");
        assert_eq!(r.status, 401);
        assert!(String::from_utf8_lossy(&r.body).contains("128 bits"));
        let r = call(&app, "GET", "/private-data", Some(TOKEN), b"");
        assert_eq!(r.status, 404);
        assert!(String::from_utf8_lossy(&r.body).contains("\"persistence\":\"memory only"));
        let r = call(
            &app,
            "POST",
            "/private-data",
            Some(TOKEN),
            br#"{"secret": [1, 2, "three"]}"#,
        );
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(body.starts_with("{\"stored\":true,\"bytes\":27,"), "{body}");
        assert!(body.contains("generated at start"), "{body}");
        assert!(header(&r, PERSISTENCE_HEADER)
            .unwrap()
            .contains("loses the data and the key"));
        let r = call(&app, "GET", "/private-data", Some(TOKEN), b"");
        assert_eq!(r.status, 200);
        assert!(r.sensitive);
        assert_eq!(r.body, br#"{"secret": [1, 2, "three"]}"#);
        let other = "Bearer ffffffffffffffffffffffffffffffff";
        assert_eq!(
            call(&app, "GET", "/private-data", Some(other), b"").status,
            404
        );
        for bad in [&b""[..], b"{", b"{\"a\":}", b"nul", b"\xff", b"{} {}"] {
            assert_eq!(
                call(&app, "POST", "/private-data", Some(TOKEN), bad).status,
                400,
                "{bad:?}"
            );
        }
        // A refused body leaves the stored one alone.
        assert_eq!(
            call(&app, "GET", "/private-data", Some(TOKEN), b"").body,
            br#"{"secret": [1, 2, "three"]}"#
        );
        let big = format!("\"{}\"", "a".repeat(MAX_PRIVATE_BYTES - 1));
        assert_eq!(
            call(&app, "POST", "/private-data", Some(TOKEN), big.as_bytes()).status,
            413
        );
        let max = format!("\"{}\"", "a".repeat(MAX_PRIVATE_BYTES - 2));
        assert_eq!(
            call(&app, "POST", "/private-data", Some(TOKEN), max.as_bytes()).status,
            200
        );
        let deep = "[".repeat(100_000);
        assert_eq!(
            call(&app, "POST", "/private-data", Some(TOKEN), deep.as_bytes()).status,
            400
        );
        assert_eq!(
            call(&app, "PUT", "/private-data", Some(TOKEN), b"{}").status,
            405
        );
        assert_eq!(
            call(&app, "DELETE", "/private-data", Some(TOKEN), b"").status,
            204
        );
        assert_eq!(
            call(&app, "DELETE", "/private-data", Some(TOKEN), b"").status,
            404
        );
    }

    #[test]
    fn private_data_says_the_key_from_the_environment_survives_but_not_the_data() {
        let key = EnclaveKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap();
        let app = app_with(key);
        let r = call(&app, "POST", "/private-data", Some(TOKEN), b"1");
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            body.contains("\"key\":\"from ENCLAVE_KEY_BASE64\""),
            "{body}"
        );
        assert!(header(&r, PERSISTENCE_HEADER)
            .unwrap()
            .contains("nothing sealed under it is kept"));
    }

    #[test]
    fn private_data_says_the_key_came_from_kms() {
        let app = app_with(EnclaveKey::from_kms(&[9; 32]).unwrap());
        let r = call(&app, "POST", "/private-data", Some(TOKEN), b"1");
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            body.contains("\"key\":\"from AWS KMS (ENCLAVE_KEY_KMS_CIPHERTEXT)\""),
            "{body}"
        );
        assert!(header(&r, PERSISTENCE_HEADER)
            .unwrap()
            .contains("released only to this enclave's measurements"));
    }
}
