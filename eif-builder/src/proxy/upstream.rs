//! The enclave side of the proxy: attested TLS connections, a pool of idle ones, and the
//! forwarding of one request ([`Upstream`] is the client side's [`server::Handler`]).
//!
//! A connection is attested once, right after its handshake and before any request goes over
//! it ([`Upstream::open`]):
//! 1. the certificate carries a document ([`contract::cert_attestation`]): verified with
//!    [`Bound::InCertificate`] (nothing is sent); one older than `max_age` is not refused but
//!    replaced by step 2 (a `max_age` of 0 always takes step 2);
//! 2. else the endpoint is asked over this very connection with a fresh nonce, and the
//!    document must carry the nonce and be bound to this connection's certificate
//!    ([`Bound::Endpoint`], or [`Bound::Nitriding`]).
//!
//! A connection whose attestation fails is closed, and the client gets a 502 naming the step
//! and the reason. An attested connection goes back to the pool after a response that leaves
//! it reusable; one the enclave closed while idle is noticed when taken (a peek says so) and
//! dropped, and a bodiless GET/HEAD/OPTIONS that still fails on a pooled connection is sent
//! once more on a fresh (attested) one.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::http::head::{connection_lists, NOT_FORWARDED};
use server::{Request, Response};

use crate::attest::client::{self, Connected, Convention, Target};
use crate::attest::{AcceptedImages, Bound, Policy, Verified, VerifyError};
use crate::measure::hex;

/// The largest request body a client may send through the proxy.
pub const MAX_REQUEST_BODY: usize = 16 << 20;
/// The most bytes of an enclave's response read (head and body).
pub const MAX_RESPONSE: usize = 64 << 20;

/// Headers the proxy writes itself, besides what no forwarder passes on
/// ([`NOT_FORWARDED`]: hop-by-hop ones and the framing): never passed on, in either direction.
const WRITTEN_HERE: &[&str] = &["host", "expect", "date"];

/// Whether the header `name` is one the proxy never passes on, among `headers`.
fn not_passed_on<'h>(name: &str, headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> bool {
    [NOT_FORWARDED, WRITTEN_HERE]
        .iter()
        .any(|list| list.iter().any(|n| name.eq_ignore_ascii_case(n)))
        || connection_lists(headers, name)
}

/// The prefix of the headers that say what was verified.
const PREFIX: &str = "x-enclave-";

/// What the proxy trusts and how it reaches the enclave.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The enclave's HTTPS server and its attestation endpoint's path.
    pub target: Target,
    /// How the endpoint is asked.
    pub convention: Convention,
    /// The images accepted.
    pub accepted: AcceptedImages,
    /// The trust anchor (DER).
    pub root_der: Vec<u8>,
    /// Accept a debug-mode enclave against zero measurements.
    pub allow_debug: bool,
    /// Accept QEMU's unsigned documents.
    pub insecure_emulator: bool,
    /// The oldest a certificate's document may be before the endpoint is asked instead; 0:
    /// the endpoint is always asked.
    pub max_age_secs: Option<u64>,
    /// Connecting, and each read and write, to the enclave.
    pub timeout: Duration,
    /// Client connections served at once.
    pub max_clients: usize,
    /// Idle attested connections kept.
    pub pool: usize,
}

/// An attested connection and what its attestation said, as response headers.
#[derive(Debug)]
pub struct Attested {
    connected: Connected,
    headers: Arc<Vec<(&'static str, String)>>,
}

/// Why a connection was not attested (the client's 502).
#[derive(Debug)]
pub enum Refusal {
    /// The enclave could not be reached or did not answer the attestation request.
    Unreachable(crate::Error),
    /// The document failed a check.
    Verify(Box<VerifyError>, String),
}

impl Refusal {
    /// The 502 the client gets.
    fn response(&self) -> Response {
        match self {
            Refusal::Unreachable(e) => {
                Response::json_error(502, &format!("the enclave was not attested: {e}"))
            }
            Refusal::Verify(e, reason) => Response::json_error(
                502,
                &format!(
                    "the enclave's attestation was refused ({}): {reason}",
                    e.step()
                ),
            )
            .with_header("X-Enclave-Refused", e.step()),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unreachable(e) => write!(f, "{e}"),
            Refusal::Verify(e, reason) => write!(f, "refused at {}: {reason}", e.step()),
        }
    }
}

/// The enclave: configuration and the pool of idle attested connections.
#[derive(Debug)]
pub struct Upstream {
    config: ProxyConfig,
    idle: Mutex<Vec<Attested>>,
}

/// The header names of PCRs, as constants (response header names are `'static` or owned).
const PCR_HEADERS: [&str; 4] = [
    "X-Enclave-PCR0",
    "X-Enclave-PCR1",
    "X-Enclave-PCR2",
    "X-Enclave-PCR8",
];

/// What a verified document says, as the headers of every response over its connection.
fn verified_headers(
    v: &Verified,
    image: Option<String>,
    how: &'static str,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    for (name, index) in PCR_HEADERS.iter().zip([0u8, 1, 2, 8]) {
        match v.pcrs.get(&index) {
            Some(p) if index != 8 || p.iter().any(|&b| b != 0) => {
                headers.push((*name, hex(p)));
            }
            _ => {}
        }
    }
    if let Some(image) = image {
        headers.push(("X-Enclave-Image", image));
    }
    headers.push(("X-Enclave-Module-Id", v.module_id.clone()));
    headers.push(("X-Enclave-Attestation", how.to_owned()));
    if !v.signature_checked {
        headers.push(("X-Enclave-Signature", "not-checked".to_owned()));
    }
    headers
}

/// The policy of one attestation.
fn policy<'a>(c: &'a ProxyConfig, binding: Bound<'a>, nonce: Option<&'a [u8]>) -> Policy<'a> {
    Policy {
        root_der: &c.root_der,
        at_unix_secs: crate::time::now_unix(),
        expected: c.accepted.first(),
        nonce,
        binding,
        allow_debug: c.allow_debug,
        insecure_emulator: c.insecure_emulator,
    }
}

impl Upstream {
    /// An enclave with no connection yet.
    pub fn new(config: ProxyConfig) -> Upstream {
        Upstream {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// A new connection, attested (see the module's documentation).
    pub fn open(&self) -> Result<Attested, Refusal> {
        let c = &self.config;
        let mut connected = client::connect(&c.target, c.timeout).map_err(Refusal::Unreachable)?;
        let carried = match c.convention {
            // A maximum age of 0: never the certificate's document, always a nonce.
            _ if c.max_age_secs == Some(0) => None,
            Convention::EnclaveHttps => connected
                .carried_document()
                .map_err(Refusal::Unreachable)?
                .map(<[u8]>::to_vec),
            Convention::Nitriding => None,
        };
        if let Some(document) = carried {
            let bound = Bound::InCertificate {
                certificate: &connected.certificate,
                max_age_secs: c.max_age_secs,
            };
            let outcome = c.accepted.verify(&document, &policy(c, bound, None));
            match outcome {
                (Ok(v), image) => {
                    let headers = verified_headers(&v, image, "certificate");
                    return Ok(self.attested(connected, headers));
                }
                // Too old for this proxy: ask the endpoint with a nonce instead.
                (Err(e), _) if e.step() == "freshness" => {}
                (Err(e), _) => {
                    let reason = c.accepted.reason(&e);
                    return Err(Refusal::Verify(Box::new(e), reason));
                }
            }
        }
        let nonce = c.convention.fresh_nonce().map_err(Refusal::Unreachable)?;
        let (document, reusable) = connected
            .request_document(&c.target, c.convention, &nonce, false)
            .map_err(Refusal::Unreachable)?;
        if !reusable {
            return Err(Refusal::Unreachable(crate::Error::invalid(
                format!("the attestation response of {}", c.target.authority()),
                "closes the connection, so no request can follow on the attested connection",
            )));
        }
        let (bound, how) = match c.convention {
            Convention::EnclaveHttps => (Bound::Endpoint(&connected.certificate), "nonce"),
            Convention::Nitriding => (Bound::Nitriding(&connected.certificate), "nitriding"),
        };
        let outcome = c
            .accepted
            .verify(&document, &policy(c, bound, Some(&nonce)));
        match outcome {
            (Ok(v), image) => {
                let headers = verified_headers(&v, image, how);
                Ok(self.attested(connected, headers))
            }
            (Err(e), _) => {
                let reason = c.accepted.reason(&e);
                Err(Refusal::Verify(Box::new(e), reason))
            }
        }
    }

    fn attested(&self, connected: Connected, headers: Vec<(&'static str, String)>) -> Attested {
        eprintln!(
            "eif-builder proxy: attested a new connection to {} ({})",
            self.config.target.authority(),
            headers
                .iter()
                .map(|(n, v)| format!("{}={v}", n.trim_start_matches("X-Enclave-")))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Attested {
            connected,
            headers: Arc::new(headers),
        }
    }

    /// An idle connection the enclave has not closed meanwhile (dead ones are dropped).
    fn take(&self) -> Option<Attested> {
        loop {
            let a = self.idle.lock().ok()?.pop()?;
            if is_open(&a.connected.tls.sock) {
                return Some(a);
            }
        }
    }

    fn put(&self, a: Attested) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.config.pool {
                idle.push(a);
            }
        }
    }

    /// The request as sent to the enclave: the same method (HEAD as GET, so the client gets
    /// the true length) and target, `Host` of the enclave, the client's end-to-end headers,
    /// `Content-Length`.
    fn request_bytes(&self, req: &Request<'_>) -> Vec<u8> {
        let method = if req.method() == "HEAD" {
            "GET"
        } else {
            req.method()
        };
        let mut out = Vec::with_capacity(256 + req.body().len());
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.path().as_bytes());
        if let Some(q) = req.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.config.target.authority().as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in req.headers() {
            if not_passed_on(name, req.headers()) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !req.body().is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", req.body().len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(req.body());
        out
    }

    /// Sends `bytes` on `a` and reads the response.
    fn exchange(
        a: &mut Attested,
        bytes: &[u8],
    ) -> Result<(server::client::Response, bool), String> {
        let tls = &mut a.connected.tls;
        tls.write_all(bytes)
            .and_then(|()| tls.flush())
            .map_err(|e| format!("sending the request: {e}"))?;
        server::client::response::read_reusable(tls, MAX_RESPONSE, false)
            .map_err(|e| format!("reading the response: {e}"))
    }
}

/// Whether an idle connection is still open: nothing to read yet (the enclave sends nothing
/// unasked, so bytes there are its close_notify, and an end of stream is its close).
fn is_open(sock: &std::net::TcpStream) -> bool {
    if sock.set_nonblocking(true).is_err() {
        return false;
    }
    let waiting = sock.peek(&mut [0u8; 1]);
    let restored = sock.set_nonblocking(false).is_ok();
    restored && matches!(waiting, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The client's response: the enclave's status, type, end-to-end headers and body, and the
/// verified headers.
fn to_client(r: server::client::Response, verified: &[(&'static str, String)]) -> Response {
    let passed: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(name, _)| {
            !(not_passed_on(
                name,
                r.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
            ) || name.eq_ignore_ascii_case("content-type")
                || name.to_ascii_lowercase().starts_with(PREFIX))
        })
        .cloned()
        .collect();
    let content_type = r
        .header("content-type")
        .map(|t| Cow::Owned(t.to_owned()))
        .unwrap_or(Cow::Borrowed(""));
    let mut out = Response::new(r.status, content_type, r.body);
    for (name, value) in passed {
        out = out.with_header(name, value);
    }
    for (name, value) in verified {
        out = out.with_header(*name, value.clone());
    }
    out
}

impl server::Handler for Upstream {
    fn handle(&self, req: &Request<'_>) -> Response {
        let bytes = self.request_bytes(req);
        let retriable = req.body().is_empty() && matches!(req.method(), "GET" | "HEAD" | "OPTIONS");
        // A pooled connection first; the second try, if any, on a fresh one.
        let mut pooled = self.take();
        loop {
            let from_pool = pooled.is_some();
            let mut a = match pooled.take() {
                Some(a) => a,
                None => match self.open() {
                    Ok(a) => a,
                    Err(refusal) => {
                        eprintln!("eif-builder proxy: {refusal}");
                        return refusal.response();
                    }
                },
            };
            match Upstream::exchange(&mut a, &bytes) {
                Ok((response, reusable)) => {
                    let verified = a.headers.clone();
                    if reusable {
                        self.put(a);
                    }
                    return to_client(response, &verified);
                }
                // A pooled connection can still die between the peek and the request: one
                // without a body is sent once more; one with a body may have arrived, so it is
                // not sent twice.
                Err(_) if from_pool && retriable => continue,
                Err(e) => {
                    return Response::json_error(
                        502,
                        &format!("the enclave's connection failed: {e}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Upstream {
        Upstream::new(ProxyConfig {
            target: Target::parse("https://enclave.example:8443").unwrap(),
            convention: Convention::EnclaveHttps,
            accepted: AcceptedImages::parse(
                &format!(
                    "{{\"Measurements\": {{\"PCR0\": \"{0}\", \"PCR1\": \"{0}\", \"PCR2\": \"{0}\"}}}}",
                    "00".repeat(48)
                ),
                "test",
            )
            .unwrap(),
            root_der: Vec::new(),
            allow_debug: false,
            insecure_emulator: true,
            max_age_secs: None,
            timeout: Duration::from_secs(1),
            max_clients: 1,
            pool: 1,
        })
    }

    #[test]
    fn requests_go_upstream_without_hop_by_hop_headers_and_head_as_get() {
        let headers: &[(&str, &[u8])] = &[
            ("Host", b"127.0.0.1:8080"),
            ("Connection", b"keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", b"1"),
            ("Keep-Alive", b"timeout=5"),
            ("Expect", b"100-continue"),
            ("Accept", b"*/*"),
            ("Content-Length", b"2"),
        ];
        let req = Request::new("POST", "/a", Some("b=1"), headers, b"hi");
        let sent = String::from_utf8(upstream().request_bytes(&req)).unwrap();
        assert_eq!(
            sent,
            "POST /a?b=1 HTTP/1.1\r\nHost: enclave.example:8443\r\nAccept: */*\r\n\
             Content-Length: 2\r\n\r\nhi"
        );
        let head = Request::new("HEAD", "/", None, &[], b"");
        let sent = String::from_utf8(upstream().request_bytes(&head)).unwrap();
        assert_eq!(sent, "GET / HTTP/1.1\r\nHost: enclave.example:8443\r\n\r\n");
    }

    #[test]
    fn responses_lose_hop_by_hop_and_enclave_headers_and_gain_the_verified_ones() {
        let r = server::client::Response {
            status: 201,
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Connection".into(), "X-Hop".into()),
                ("X-Hop".into(), "1".into()),
                ("Transfer-Encoding".into(), "chunked".into()),
                ("X-Enclave-PCR0".into(), "forged".into()),
                ("Set-Cookie".into(), "a=b".into()),
            ],
            body: b"made".to_vec(),
        };
        let out = to_client(r, &[("X-Enclave-PCR0", "aa".to_owned())]);
        assert_eq!(out.status, 201);
        assert_eq!(out.content_type, "text/plain");
        assert_eq!(out.body, b"made");
        let names: Vec<(&str, &str)> = out
            .headers
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_str()))
            .collect();
        assert_eq!(names, [("Set-Cookie", "a=b"), ("X-Enclave-PCR0", "aa")]);
    }
}
