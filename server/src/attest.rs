//! The attestation endpoint, as a handler an application mounts at the path it chooses:
//!
//! `GET PATH?nonce=HEX` returns the NSM's attestation document (`application/cbor`) with the
//! client's nonce (1 to [`MAX_NONCE_BYTES`] bytes), bound to the server's TLS certificate as
//! [`contract::binding`] says (`public_key` = its SubjectPublicKeyInfo, `user_data` = SHA-256
//! of its DER). A client that verifies the document and sees the same certificate on its TLS
//! session knows it talks to the measured image. Without an NSM: 503, never a document made
//! up here. (A certificate made by [`crate::Identity::generate_for`] with an NSM also carries a
//! document for its key, [`contract::cert_attestation`], which needs no request; this endpoint
//! is for freshness the client chooses.)
//!
//! ```no_run
//! use server::attest::Attestation;
//! use server::nsm::Nsm;
//! use server::{Request, Response};
//! # fn main() -> server::Result<()> {
//! let identity = server::Identity::generate()?;
//! let attestation = Attestation::new(Nsm::open_default().ok(), identity.leaf_der());
//! let app = move |req: &Request<'_>| match req.path() {
//!     "/attestation" => attestation.handle(req),
//!     _ => Response::json_error(404, "not found"),
//! };
//! # let _ = app; Ok(()) }
//! ```

use crate::handler::{Handler, Request, Response};
use crate::nsm::Attester;
use contract::binding::Binding;

/// The most nonce bytes the NSM takes in a document.
pub const MAX_NONCE_BYTES: usize = 64;

/// The endpoint: an attester (none outside an enclave) and the certificate's binding.
pub struct Attestation {
    attester: Option<Box<dyn Attester>>,
    /// Empty when there is no certificate (plain HTTP) or it does not parse.
    public_key: Vec<u8>,
    user_data: Vec<u8>,
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestation")
            .field("nsm", &self.attester.is_some())
            .finish_non_exhaustive()
    }
}

/// SHA-256, for the binding.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The nonce of a query, or the message of the 400.
pub fn nonce_from_query(query: Option<&str>) -> Result<Vec<u8>, &'static str> {
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
    let bytes = contract::hex::decode(hex).map_err(|_| "nonce is not hex")?;
    if bytes.is_empty() {
        return Err("nonce is empty");
    }
    if bytes.len() > MAX_NONCE_BYTES {
        return Err("nonce is longer than 64 bytes");
    }
    Ok(bytes)
}

impl Attestation {
    /// The endpoint for a server whose leaf certificate is `cert_der` (empty: plain HTTP, which
    /// has nothing to attest). `attester: None` answers 503.
    pub fn new(attester: Option<impl Attester + 'static>, cert_der: &[u8]) -> Attestation {
        Attestation::boxed(attester.map(|a| Box::new(a) as Box<dyn Attester>), cert_der)
    }

    /// [`Attestation::new`] with an attester already boxed.
    pub fn boxed(attester: Option<Box<dyn Attester>>, cert_der: &[u8]) -> Attestation {
        let (public_key, user_data) = match Binding::of_certificate(cert_der, sha256) {
            Ok(b) => (b.public_key.to_vec(), b.user_data.to_vec()),
            Err(_) => (Vec::new(), Vec::new()),
        };
        Attestation {
            attester,
            public_key,
            user_data,
        }
    }

    /// Whether there is an NSM behind it.
    pub fn has_nsm(&self) -> bool {
        self.attester.is_some()
    }

    /// Answers `GET`/`HEAD` with a document for the query's nonce; 405 to other methods.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        if !matches!(req.method(), "GET" | "HEAD") {
            return Response::json_error(405, "method not allowed")
                .with_header("Allow", "GET, HEAD");
        }
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
        if self.public_key.is_empty() {
            return Response::json_error(503, "no TLS certificate to attest (plain HTTP)");
        }
        match attester.attest(&self.user_data, &nonce, &self.public_key) {
            Ok(doc) => {
                Response::new(200, "application/cbor", doc).with_header("Cache-Control", "no-store")
            }
            Err(_) => Response::json_error(502, "the NSM did not produce a document"),
        }
    }
}

impl Handler for Attestation {
    fn handle(&self, req: &Request<'_>) -> Response {
        Attestation::handle(self, req)
    }
}

/// The most bytes of each field the local API takes: the NSM's own limits (nonce and user
/// data 512 bytes, public key 1024).
pub const LOCAL_LIMITS: [(&str, usize); 3] =
    [("nonce", 512), ("user_data", 512), ("public_key", 1024)];

/// The application's own attestation API, served on loopback in front mode
/// (`--local-attestation`): `GET /attestation?nonce=HEX&user_data=HEX&public_key=HEX`, each
/// field optional (empty when absent) and of the application's choosing, answers the NSM's
/// document (`application/cbor`). An application attests its own results with it (a
/// computed answer in `user_data`), or binds its own key (`public_key`). Only processes inside
/// the enclave reach it: it listens on 127.0.0.1 and is never forwarded.
pub struct LocalAttestation {
    attester: Option<Box<dyn Attester>>,
}

impl std::fmt::Debug for LocalAttestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAttestation")
            .field("nsm", &self.attester.is_some())
            .finish()
    }
}

/// The three fields of a local attestation request, from its query.
pub fn local_fields(query: Option<&str>) -> Result<[Vec<u8>; 3], String> {
    let mut fields: [Option<Vec<u8>>; 3] = [None, None, None];
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = LOCAL_LIMITS.iter().position(|(k, _)| *k == key) else {
            return Err(format!(
                "unknown parameter {key:?} (expected nonce, user_data, public_key)"
            ));
        };
        let (name, max) = LOCAL_LIMITS[i];
        if fields[i].is_some() {
            return Err(format!("{name} given more than once"));
        }
        let bytes = contract::hex::decode(value).map_err(|_| format!("{name} is not hex"))?;
        if bytes.len() > max {
            return Err(format!("{name} is longer than {max} bytes"));
        }
        fields[i] = Some(bytes);
    }
    Ok(fields.map(Option::unwrap_or_default))
}

impl LocalAttestation {
    /// The API over `attester` (None: every request answers 503).
    pub fn new(attester: Option<Box<dyn Attester>>) -> LocalAttestation {
        LocalAttestation { attester }
    }
}

impl Handler for LocalAttestation {
    fn handle(&self, req: &Request<'_>) -> Response {
        if req.path() != "/attestation" {
            return Response::json_error(404, "not found: the local attestation API is GET /attestation?nonce=HEX&user_data=HEX&public_key=HEX");
        }
        if !matches!(req.method(), "GET" | "HEAD") {
            return Response::json_error(405, "method not allowed")
                .with_header("Allow", "GET, HEAD");
        }
        let [nonce, user_data, public_key] = match local_fields(req.query()) {
            Ok(f) => f,
            Err(msg) => return Response::json_error(400, &msg),
        };
        let Some(attester) = &self.attester else {
            return Response::json_error(
                503,
                "no NSM (/dev/nsm): not running in a Nitro enclave, so no attestation document",
            );
        };
        match attester.attest(&user_data, &nonce, &public_key) {
            Ok(doc) => {
                Response::new(200, "application/cbor", doc).with_header("Cache-Control", "no-store")
            }
            Err(_) => Response::json_error(502, "the NSM did not produce a document"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsm::fake::{Calls, FakeNsm};

    fn get(a: &Attestation, query: Option<&str>) -> Response {
        a.handle(&Request::new("GET", "/attestation", query, &[], b""))
    }

    #[test]
    fn the_local_api_passes_the_applications_fields() {
        let calls = Calls::default();
        let api = LocalAttestation::new(Some(Box::new(FakeNsm::new(&calls))));
        let get = |path: &str, q: Option<&str>| {
            Handler::handle(&api, &Request::new("GET", path, q, &[], b""))
        };
        let r = get("/attestation", Some("user_data=2a&nonce=0102"));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/cbor");
        let r = get("/attestation", None);
        assert_eq!(r.status, 200);
        assert_eq!(
            *calls.lock().unwrap(),
            vec![(vec![0x2a], vec![1, 2], vec![]), (vec![], vec![], vec![])]
        );
        for (q, msg) in [
            ("nonce=zz", "nonce is not hex"),
            (
                "user_data=00&user_data=01",
                "user_data given more than once",
            ),
            (
                "key=00",
                r#"unknown parameter \"key\" (expected nonce, user_data, public_key)"#,
            ),
        ] {
            let r = get("/attestation", Some(q));
            assert_eq!(r.status, 400);
            assert!(String::from_utf8_lossy(&r.body).contains(msg), "{q}");
        }
        let long = format!("public_key={}", "ab".repeat(1025));
        assert!(
            String::from_utf8_lossy(&get("/attestation", Some(&long)).body)
                .contains("public_key is longer than 1024 bytes")
        );
        assert_eq!(get("/other", None).status, 404);
        let none = LocalAttestation::new(None);
        assert_eq!(
            Handler::handle(&none, &Request::new("GET", "/attestation", None, &[], b"")).status,
            503
        );
    }

    #[test]
    fn nonce_rules() {
        assert_eq!(
            nonce_from_query(Some("nonce=c0ffee")),
            Ok(vec![0xc0, 0xff, 0xee])
        );
        assert_eq!(nonce_from_query(Some("a=1&nonce=00&b")), Ok(vec![0]));
        for (q, msg) in [
            (None, "nonce=HEX is required"),
            (Some("nonce="), "nonce is empty"),
            (Some("nonce=abc"), "nonce is not hex"),
            (Some("nonce=zz"), "nonce is not hex"),
            (Some("nonce=00&nonce=01"), "nonce given more than once"),
        ] {
            assert_eq!(nonce_from_query(q), Err(msg), "{q:?}");
        }
        let long = format!("nonce={}", "ab".repeat(MAX_NONCE_BYTES + 1));
        assert_eq!(
            nonce_from_query(Some(&long)),
            Err("nonce is longer than 64 bytes")
        );
    }

    #[test]
    fn the_document_is_bound_to_the_certificate() {
        let cert = crate::cert::generate().unwrap().cert_der;
        let calls = Calls::default();
        let a = Attestation::new(Some(FakeNsm::new(&calls)), &cert);
        let r = get(&a, Some("nonce=c0ffee"));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/cbor");
        let calls = calls.lock().unwrap();
        let (user_data, nonce, key) = calls.first().unwrap();
        assert_eq!(nonce, &[0xc0, 0xff, 0xee]);
        let b = Binding::of_certificate(&cert, sha256).unwrap();
        assert_eq!(b.check(Some(key), Some(user_data)), Ok(()));
    }

    #[test]
    fn without_nsm_or_certificate_503_and_wrong_method_405() {
        let cert = crate::cert::generate().unwrap().cert_der;
        let none: Option<FakeNsm> = None;
        assert_eq!(
            get(&Attestation::new(none, &cert), Some("nonce=00")).status,
            503
        );
        let plain = Attestation::new(Some(FakeNsm::new(&Calls::default())), b"");
        assert_eq!(get(&plain, Some("nonce=00")).status, 503);
        let a = Attestation::new(Some(FakeNsm::new(&Calls::default())), &cert);
        assert_eq!(get(&a, Some("nonce=zz")).status, 400);
        let post = a.handle(&Request::new("POST", "/attestation", None, &[], b""));
        assert_eq!(post.status, 405);
    }
}
