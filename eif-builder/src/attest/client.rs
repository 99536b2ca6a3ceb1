//! Fetching a fresh attestation document from a running enclave, bound to the TLS session.
//!
//! The TLS client trusts no CA: its certificate verifier accepts whatever certificate the
//! server presents and records it (the handshake signature is still checked, so the server
//! holds that certificate's key). What authenticates the server is the attestation document
//! fetched over this very connection: [`super::verify`] with
//! [`Policy::tls_certificate`](super::Policy::tls_certificate) set to the recorded certificate
//! checks that the enclave bound it (`public_key` = its SubjectPublicKeyInfo, `user_data` =
//! SHA-256 of its DER) and that the nonce is ours.
//!
//! HTTP is one hand-written `GET` with `Connection: close` and a response read up to its
//! `Content-Length`, with every size bounded.

use std::io::{Read, Write};
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
pub const MAX_HEAD: usize = 16 * 1024;
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
        let bad = |detail: &str| Error::invalid(format!("URL {url:?}"), detail.to_string());
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => DEFAULT_PATH,
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

/// A fresh random nonce of [`NONCE_BYTES`] bytes.
pub fn fresh_nonce() -> Result<Vec<u8>> {
    let mut nonce = vec![0u8; NONCE_BYTES];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| {
        Error::io(
            "cannot draw a random nonce",
            None,
            std::io::Error::other("aws-lc-rs rand failed"),
        )
    })?;
    Ok(nonce)
}

/// The parsed head of an HTTP/1.x response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The Content-Length.
    pub content_length: usize,
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::malformed("HTTP response", detail)
}

/// Parses a response head (everything before the blank line, without it). Requires a
/// `Content-Length` no larger than [`MAX_DOCUMENT`] and no `Transfer-Encoding`.
pub fn parse_head(head: &[u8]) -> Result<ResponseHead> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(malformed(format!(
            "status line {:?} is not HTTP/1.x",
            status_line.chars().take(64).collect::<String>()
        )));
    }
    // Three digits, 100-599 (RFC 9110 §15); `parse` alone would take "+20" and "000".
    let status = parts
        .next()
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| malformed("status code is not three digits from 100 to 599"))?;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(malformed("Content-Length given twice"));
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("Content-Length is not a number"));
            }
            let n = value
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_DOCUMENT)
                .ok_or_else(|| {
                    Error::unsupported(
                        "HTTP response",
                        format!("Content-Length {value} exceeds {MAX_DOCUMENT} bytes"),
                    )
                })?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Error::unsupported(
                "HTTP response",
                "Transfer-Encoding (only Content-Length bodies are read)",
            ));
        }
    }
    let content_length = content_length.ok_or_else(|| malformed("no Content-Length header"))?;
    Ok(ResponseHead {
        status,
        content_length,
    })
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one response from `stream`: head (≤ [`MAX_HEAD`]) and a body of exactly
/// Content-Length bytes (≤ [`MAX_DOCUMENT`]).
pub fn read_response(stream: &mut impl Read) -> Result<(ResponseHead, Vec<u8>)> {
    let io = |e| Error::io("cannot read the HTTP response", None, e);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find_blank_line(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(Error::unsupported(
                "HTTP response",
                format!("head longer than {MAX_HEAD} bytes"),
            ));
        }
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err(malformed("connection closed before the end of the head"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    };
    let head = parse_head(buf.get(..head_end).unwrap_or(&[]))?;
    let mut body = buf.split_off(head_end + 4);
    if body.len() > head.content_length {
        return Err(malformed("more bytes than Content-Length"));
    }
    while body.len() < head.content_length {
        let want = (head.content_length - body.len()).min(chunk.len());
        let n = stream
            .read(chunk.get_mut(..want).unwrap_or(&mut []))
            .map_err(io)?;
        if n == 0 {
            return Err(malformed(format!(
                "connection closed after {} of {} body bytes",
                body.len(),
                head.content_length
            )));
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    Ok((head, body))
}

/// Connects to `target` over TLS, asks for `PATH?nonce=HEX` and returns the document
/// with the certificate of this connection. Nothing is verified yet.
pub fn fetch(target: &Target, nonce: &[u8], timeout: Duration) -> Result<Fetched> {
    let place = format!("{}:{}", target.host, target.port);
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
    let sock = TcpStream::connect((target.host.as_str(), target.port))
        .map_err(net("cannot connect to"))?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(net("cannot set timeouts on"))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let host_header = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        place.clone()
    };
    let request = format!(
        "GET {}?nonce={} HTTP/1.1\r\nHost: {host_header}\r\n\
         Accept: application/cbor\r\nConnection: close\r\n\r\n",
        target.path,
        hex(nonce)
    );
    tls.write_all(request.as_bytes())
        .and_then(|()| tls.flush())
        .map_err(net("TLS request failed to"))?;
    let (head, body) = read_response(&mut tls).map_err(|e| match e {
        Error::Io {
            action,
            path: None,
            source,
        } => Error::io(action, Some(std::path::Path::new(&place)), source),
        other => other,
    })?;
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
    if head.status != 200 {
        let text: String = String::from_utf8_lossy(body.get(..200.min(body.len())).unwrap_or(&[]))
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(Error::invalid(
            format!("GET {} on {place}", target.path),
            format!("status {}: {text}", head.status),
        ));
    }
    Ok(Fetched {
        document: body,
        certificate,
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
    fn response_heads() {
        let h =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\ncontent-length: 12")
                .unwrap();
        assert_eq!(
            h,
            ResponseHead {
                status: 200,
                content_length: 12
            }
        );
        let e = parse_head(b"HTTP/1.1 000 OK\r\nContent-Length: 1").unwrap_err();
        assert!(
            e.to_string()
                .contains("status code is not three digits from 100 to 599"),
            "{e}"
        );
        for bad in [
            &b"HTTP/2 200 OK\r\nContent-Length: 1"[..],
            b"HTTP/1.1 20 OK\r\nContent-Length: 1",
            // Found by the http_response fuzz target: u16 parsing takes these.
            b"HTTP/1.1 000 OK\r\nContent-Length: 1",
            b"HTTP/1.1 +20 OK\r\nContent-Length: 1",
            b"HTTP/1.1 600 OK\r\nContent-Length: 1",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999",
            b"HTTP/1.1 200 OK\r\nContent-Length: 70000",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
            b"HTTP/1.1 200 OK\r\nbroken",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn responses_are_read_to_their_length_and_no_further() {
        let mut ok = &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..];
        assert_eq!(read_response(&mut ok).unwrap().1, b"abc");
        let mut short = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"[..];
        assert!(read_response(&mut short).is_err());
        let mut long = &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nabc"[..];
        assert!(read_response(&mut long).is_err());
        let endless = vec![b'a'; MAX_HEAD * 2];
        assert!(read_response(&mut endless.as_slice()).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let (a, b) = (fresh_nonce().unwrap(), fresh_nonce().unwrap());
        assert_eq!(a.len(), NONCE_BYTES);
        assert_ne!(a, b);
    }
}
