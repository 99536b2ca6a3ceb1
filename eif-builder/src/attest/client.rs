//! Fetching a fresh attestation document from a running enclave, bound to the TLS session.
//!
//! The TLS client trusts no CA: its certificate verifier accepts whatever certificate the
//! server presents and records it (the handshake signature is still checked, so the server
//! holds that certificate's key). What authenticates the server is the attestation document
//! fetched over this very connection ([`Connected::request_document`]), or carried in the
//! certificate itself ([`contract::cert_attestation`]): [`super::verify`] with
//! [`Policy::binding`](super::Policy::binding) naming the recorded certificate checks that the
//! enclave bound it, and that the nonce is ours.
//!
//! HTTP is one hand-written `GET`; the response is read by the server library's strict,
//! bounded reader (`server::client::response`), Content-Length or chunked.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::MAX_DOCUMENT;
use crate::error::{Error, Result};
use crate::measure::hex;

/// The most bytes of response head (status line and headers) read.
pub const MAX_HEAD: usize = server::client::response::MAX_HEAD;
/// Bytes of fresh randomness in each nonce.
pub const NONCE_BYTES: usize = 32;

/// The attestation endpoint's path when the URL names none (the default server's).
pub const DEFAULT_PATH: &str = "/attestation";

/// Where the enclave's server listens, and its attestation endpoint:
/// `https://HOST[:PORT][/PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    /// The TCP port (443 by default).
    pub port: u16,
    /// The attestation endpoint's path ([`DEFAULT_PATH`] when the URL has none; a server in
    /// front mode answers at `/.well-known/enclave-https/attestation`).
    pub path: String,
}

impl Target {
    /// Parses `https://HOST[:PORT][/PATH]`; IPv6 addresses go in brackets. The path, if any,
    /// is the attestation endpoint's (no query: the nonce is added).
    pub fn parse(url: &str) -> Result<Target> {
        Target::parse_with(url, DEFAULT_PATH)
    }

    /// [`Target::parse`] with another path for a URL that names none.
    pub fn parse_with(url: &str, default_path: &str) -> Result<Target> {
        let bad = |detail: &str| Error::invalid(format!("URL {url:?}"), detail.to_string());
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => default_path,
            p if p.contains(['?', '#', ' ']) || p.bytes().any(|b| !(0x21..=0x7e).contains(&b)) => {
                return Err(bad("the path must be plain (no query: the nonce is added)"))
            }
            p => p,
        };
        if authority.contains(['?', '#', '@']) || authority.is_empty() {
            return Err(bad("expected https://HOST:PORT[/PATH]"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("junk after ']'")),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

impl Target {
    /// `HOST:PORT` (an IPv6 address in brackets): the `Host` header and how messages name it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A document fetched over TLS, with the certificate of the connection it came through.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The attestation document (raw CBOR), not verified yet.
    pub document: Vec<u8>,
    /// The DER of the server's certificate on this connection.
    pub certificate: Vec<u8>,
}

/// Accepts any server certificate and records it; checks handshake signatures normally.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| rustls::Error::General("certificate recorder poisoned".into()))?;
        *seen = Some(end_entity.as_ref().to_vec());
        // Accepted without a CA on purpose: the attestation document authenticates it.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A fresh random nonce of `len` bytes.
pub fn fresh_nonce(len: usize) -> Result<Vec<u8>> {
    let mut nonce = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| {
        Error::io(
            "cannot draw a random nonce",
            None,
            std::io::Error::other("aws-lc-rs rand failed"),
        )
    })?;
    Ok(nonce)
}

/// A TLS connection to the enclave, handshake done, with the certificate it showed.
#[derive(Debug)]
pub struct Connected {
    /// The TLS stream (its socket has the read and write timeout given to [`connect`]).
    pub tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// The DER of the server's certificate on this connection.
    pub certificate: Vec<u8>,
    /// `HOST:PORT`, for messages.
    place: String,
}

/// The most bytes of an attestation response read: head, framing and a base64 body (the
/// nitriding convention) of a document of [`MAX_DOCUMENT`] bytes.
pub const MAX_RESPONSE: usize = MAX_HEAD + MAX_DOCUMENT * 2;

/// Connects to `target` over TLS (no CA: the certificate is recorded, and the handshake's
/// signature checked) and completes the handshake. Nothing is sent but the handshake.
pub fn connect(target: &Target, timeout: Duration) -> Result<Connected> {
    let place = target.authority();
    let net = |action: &'static str| {
        let place = place.clone();
        move |e| Error::io(action, Some(std::path::Path::new(&place)), e)
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        seen: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS configuration", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| Error::invalid(format!("host {:?}", target.host), e.to_string()))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| Error::invalid("TLS connection", e.to_string()))?;
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(target.host.as_str(), target.port))
        .map_err(net("cannot resolve"))?
        .collect::<Vec<_>>();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut sock = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let sock = sock.ok_or(last).map_err(net("cannot connect to"))?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .and_then(|()| sock.set_nodelay(true))
        .map_err(net("cannot set options on"))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(net("TLS handshake failed with"))?;
    }
    let peer = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let recorded = verifier
        .seen
        .lock()
        .map_err(|_| Error::invalid("TLS certificate", "recorder poisoned"))?
        .clone();
    let certificate = match (peer, recorded) {
        (Some(p), Some(r)) if p == r => p,
        _ => {
            return Err(Error::invalid(
                "TLS certificate",
                "the handshake did not yield one certificate",
            ))
        }
    };
    Ok(Connected {
        tls,
        certificate,
        place,
    })
}

/// How an enclave's attestation endpoint is asked and answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// This project's: `GET PATH?nonce=HEX` (32 random bytes) answers the raw CBOR document,
    /// bound as [`contract::binding`] says.
    EnclaveHttps,
    /// nitriding's (`github.com/brave/nitriding-daemon`): `GET /enclave/attestation?nonce=HEX`
    /// with exactly 20 bytes answers the document in base64; `user_data` starts with the
    /// multihash of the certificate's SHA-256.
    Nitriding,
}

impl Convention {
    /// The endpoint's path when the URL names none.
    pub fn default_path(self) -> &'static str {
        match self {
            Convention::EnclaveHttps => DEFAULT_PATH,
            Convention::Nitriding => NITRIDING_PATH,
        }
    }

    /// A fresh nonce of the length the convention sends.
    pub fn fresh_nonce(self) -> Result<Vec<u8>> {
        fresh_nonce(match self {
            Convention::EnclaveHttps => NONCE_BYTES,
            Convention::Nitriding => NITRIDING_NONCE_BYTES,
        })
    }
}

/// nitriding's attestation endpoint.
pub const NITRIDING_PATH: &str = "/enclave/attestation";
/// The nonce length nitriding requires.
pub const NITRIDING_NONCE_BYTES: usize = 20;

impl Connected {
    /// The attestation document the certificate carries ([`contract::cert_attestation`]), if
    /// any; an extension that is there but malformed is an error naming the server.
    pub fn carried_document(&self) -> Result<Option<&[u8]>> {
        contract::cert_attestation::document(&self.certificate).map_err(|e| {
            Error::malformed(
                format!("the TLS certificate of {}", self.place),
                e.to_string(),
            )
        })
    }

    /// Asks for `PATH?nonce=HEX` on this connection and returns the document (decoded from
    /// base64 under nitriding's convention). With `close`, the request says `Connection:
    /// close`; otherwise the connection stays open for more requests, and the returned flag
    /// says whether the server allows that.
    pub fn request_document(
        &mut self,
        target: &Target,
        convention: Convention,
        nonce: &[u8],
        close: bool,
    ) -> Result<(Vec<u8>, bool)> {
        let place = self.place.clone();
        let net = |action: &'static str| {
            let place = place.clone();
            move |e| Error::io(action, Some(std::path::Path::new(&place)), e)
        };
        let request = format!(
            "GET {}?nonce={} HTTP/1.1\r\nHost: {}\r\nAccept: application/cbor\r\n{}\r\n",
            target.path,
            hex(nonce),
            self.place,
            if close { "Connection: close\r\n" } else { "" }
        );
        self.tls
            .write_all(request.as_bytes())
            .and_then(|()| self.tls.flush())
            .map_err(net("TLS request failed to"))?;
        let (response, reusable) =
            server::client::response::read_reusable(&mut self.tls, MAX_RESPONSE, false).map_err(
                |e| {
                    Error::malformed(
                        format!("the attestation response of {place}"),
                        e.to_string(),
                    )
                },
            )?;
        if response.status != 200 {
            return Err(Error::invalid(
                format!("GET {} on {place}", target.path),
                format!("status {}: {}", response.status, response.body_excerpt(200)),
            ));
        }
        let document = match convention {
            Convention::EnclaveHttps => response.body,
            Convention::Nitriding => {
                let text = String::from_utf8_lossy(&response.body);
                contract::base64::decode(text.trim()).map_err(|e| {
                    Error::malformed(
                        format!("the attestation response of {place}"),
                        format!("nitriding answers base64: {e}"),
                    )
                })?
            }
        };
        if document.len() > MAX_DOCUMENT {
            return Err(Error::unsupported(
                format!("the attestation response of {place}"),
                format!("a document over {MAX_DOCUMENT} bytes"),
            ));
        }
        Ok((document, reusable && !close))
    }
}

/// Connects to `target` over TLS, asks for `PATH?nonce=HEX` and returns the document
/// with the certificate of this connection. Nothing is verified yet.
pub fn fetch(
    target: &Target,
    convention: Convention,
    nonce: &[u8],
    timeout: Duration,
) -> Result<Fetched> {
    let mut connected = connect(target, timeout)?;
    let (document, _) = connected.request_document(target, convention, nonce, true)?;
    Ok(Fetched {
        document,
        certificate: connected.certificate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Target::parse("https://127.0.0.1:8443").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 8443,
                path: "/attestation".into(),
            }
        );
        assert_eq!(Target::parse("https://example.com/").unwrap().port, 443);
        assert_eq!(
            Target::parse("https://127.0.0.1:8443/.well-known/enclave-https/attestation")
                .unwrap()
                .path,
            "/.well-known/enclave-https/attestation"
        );
        assert_eq!(Target::parse("https://[::1]:9/").unwrap().host, "::1");
        for bad in [
            "http://x:1",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://x/path?nonce=00",
            "https://x/a b",
            "https://u@x",
            "https://[::1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let (a, b) = (
            fresh_nonce(NONCE_BYTES).unwrap(),
            fresh_nonce(NONCE_BYTES).unwrap(),
        );
        assert_eq!(a.len(), NONCE_BYTES);
        assert_ne!(a, b);
    }
}
