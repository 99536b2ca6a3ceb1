//! Why a request failed, one variant per kind of failure, each with what a person needs to act
//! on it (the URL or `HOST:PORT`, the address tried, the bound passed) and the cause kept
//! (`io::Error`, `rustls::Error`). Display is one line.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which bound a timeout passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// No byte moved for this long (`io_timeout`).
    Io(Duration),
    /// The whole request took longer than this (`total_timeout`).
    Total(Duration),
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Io(d) => write!(f, "no byte moved for {} (io_timeout)", secs(*d)),
            Timeout::Total(d) => write!(
                f,
                "the request took longer than {} (total_timeout)",
                secs(*d)
            ),
        }
    }
}

/// What is wrong with the time of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateTime {
    /// It expired (at this Unix time, when rustls says).
    Expired(Option<i64>),
    /// It is not valid yet (until this Unix time, when rustls says).
    NotValidYet(Option<i64>),
}

/// A failed request (or a failure to set a client up).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// A URL the client does not take.
    Url {
        /// The URL (its first 200 characters).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request the client will not send (a header with a line break, a bad method, …).
    Request(String),
    /// A file of extra root certificates that cannot be read or used.
    Roots {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An egress table that cannot be read or parsed.
    EgressTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the client configuration.
    Config(String),
    /// The system resolver found no address for `host:port`.
    Lookup {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// `host:port` is not in the egress table: nothing in the enclave forwards it.
    NotInEgress {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The table's file.
        table: PathBuf,
    },
    /// The TCP connection failed: refused, unreachable, timed out (`connect_timeout`).
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The address tried last.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// TLS failed: the handshake, the server's certificate (but its time), a bad record.
    Tls {
        /// The host (the name the certificate must hold).
        host: String,
        /// rustls's error.
        error: rustls::Error,
    },
    /// The server's certificate is expired or not valid yet at the enclave's clock.
    CertificateTime {
        /// The host.
        host: String,
        /// The enclave's time when the certificate was checked (Unix seconds).
        now: i64,
        /// What is wrong, with the certificate's bound when rustls gives it.
        problem: CertificateTime,
    },
    /// Reading or writing failed (a reset, a closed connection).
    Io {
        /// What was being done: `"sending the request to"`, `"reading the response from"`, …
        during: &'static str,
        /// The URL, without its query.
        url: String,
        /// The cause.
        source: io::Error,
    },
    /// A timeout passed.
    Timeout {
        /// What was being done.
        during: &'static str,
        /// The URL, without its query.
        url: String,
        /// Which bound.
        limit: Timeout,
    },
    /// The response is not well-framed HTTP/1.1.
    Http {
        /// The URL, without its query.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The response is larger than a bound.
    TooLarge {
        /// The URL, without its query.
        url: String,
        /// `"response head"` or `"response"`.
        what: &'static str,
        /// The bound, in bytes.
        limit: usize,
    },
}

impl ClientError {
    /// Whether a timeout ended the request (including the TCP connection's).
    pub fn is_timeout(&self) -> bool {
        match self {
            ClientError::Timeout { .. } => true,
            ClientError::Connect { source, .. } => {
                matches!(
                    source.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                )
            }
            _ => false,
        }
    }
}

/// `5s`, `1.5s`, `250ms`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            ClientError::Request(reason) => write!(f, "invalid request: {reason}"),
            ClientError::Roots { path, reason } => {
                write!(f, "extra root certificates {}: {reason}", path.display())
            }
            ClientError::EgressTable { path, reason } => {
                write!(f, "egress table {}: {reason}", path.display())
            }
            ClientError::Config(reason) => write!(f, "TLS client configuration: {reason}"),
            ClientError::Lookup { host, port, source } => {
                write!(f, "cannot resolve {host}:{port}: {source}")
            }
            ClientError::NotInEgress { host, port, table } => write!(
                f,
                "{host}:{port} is not in the egress table {}: nothing in the enclave forwards it (add \"{host}:{port}\" to `egress` in the image's enclave.toml)",
                table.display()
            ),
            ClientError::Connect {
                host,
                port,
                addr,
                source,
            } => {
                if format!("{host}:{port}") == addr.to_string() {
                    write!(f, "cannot connect to {addr}: {source}")
                } else {
                    write!(f, "cannot connect to {host}:{port} at {addr}: {source}")
                }
            }
            ClientError::Tls { host, error } => write!(f, "TLS with {host} failed: {error}"),
            ClientError::CertificateTime { host, now, problem } => {
                write!(
                    f,
                    "the certificate of {host} is not valid at this enclave's clock, {}",
                    contract::date::rfc3339(*now)
                )?;
                match problem {
                    CertificateTime::Expired(Some(t)) => {
                        write!(f, " (it expired {})", contract::date::rfc3339(*t))?
                    }
                    CertificateTime::Expired(None) => write!(f, " (it has expired)")?,
                    CertificateTime::NotValidYet(Some(t)) => {
                        write!(f, " (it is valid from {})", contract::date::rfc3339(*t))?
                    }
                    CertificateTime::NotValidYet(None) => write!(f, " (it is not valid yet)")?,
                }
                write!(f, "; check the time init logged at boot")
            }
            ClientError::Io {
                during,
                url,
                source,
            } => write!(f, "{during} {url}: {source}"),
            ClientError::Timeout { during, url, limit } => {
                write!(f, "{during} {url} timed out: {limit}")
            }
            ClientError::Http { url, reason } => {
                write!(f, "malformed HTTP response from {url}: {reason}")
            }
            ClientError::TooLarge { url, what, limit } => write!(
                f,
                "the {what} from {url} is larger than the {limit} bytes allowed"
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Lookup { source, .. }
            | ClientError::Connect { source, .. }
            | ClientError::Io { source, .. } => Some(source),
            ClientError::Tls { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    #[test]
    fn every_message_is_one_line() {
        let url = "https://kms.us-east-1.amazonaws.com/".to_string();
        let io = |k: io::ErrorKind| io::Error::from(k);
        let addr: SocketAddr = "127.0.0.2:443".parse().unwrap();
        for (e, expected) in [
            (
                ClientError::Url { url: "ftp://x".into(), reason: "must start with http:// or https://".into() },
                "invalid URL \"ftp://x\": must start with http:// or https://",
            ),
            (
                ClientError::Request("header \"X-A\" contains CR or LF".into()),
                "invalid request: header \"X-A\" contains CR or LF",
            ),
            (
                ClientError::Roots { path: "/etc/roots.pem".into(), reason: "no CERTIFICATE block".into() },
                "extra root certificates /etc/roots.pem: no CERTIFICATE block",
            ),
            (
                ClientError::EgressTable { path: "/etc/enclave-https/egress".into(), reason: "line 2: x".into() },
                "egress table /etc/enclave-https/egress: line 2: x",
            ),
            (ClientError::Config("no roots".into()), "TLS client configuration: no roots"),
            (
                ClientError::Lookup { host: "nowhere.test".into(), port: 443, source: io::Error::other("failed to lookup address information") },
                "cannot resolve nowhere.test:443: failed to lookup address information",
            ),
            (
                ClientError::NotInEgress { host: "sts.amazonaws.com".into(), port: 443, table: "/etc/enclave-https/egress".into() },
                "sts.amazonaws.com:443 is not in the egress table /etc/enclave-https/egress: nothing in the enclave forwards it (add \"sts.amazonaws.com:443\" to `egress` in the image's enclave.toml)",
            ),
            (
                ClientError::Connect { host: "kms.test".into(), port: 443, addr, source: io(io::ErrorKind::ConnectionRefused) },
                "cannot connect to kms.test:443 at 127.0.0.2:443: connection refused",
            ),
            (
                ClientError::Connect { host: "127.0.0.2".into(), port: 443, addr, source: io(io::ErrorKind::TimedOut) },
                "cannot connect to 127.0.0.2:443: timed out",
            ),
            (
                ClientError::Tls { host: "kms.test".into(), error: rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) },
                "TLS with kms.test failed: invalid peer certificate: UnknownIssuer",
            ),
            (
                ClientError::CertificateTime { host: "kms.us-east-1.amazonaws.com".into(), now: 1_796_191_200, problem: CertificateTime::Expired(Some(1_767_225_600)) },
                "the certificate of kms.us-east-1.amazonaws.com is not valid at this enclave's clock, 2026-12-02T06:00:00Z (it expired 2026-01-01T00:00:00Z); check the time init logged at boot",
            ),
            (
                ClientError::CertificateTime { host: "a".into(), now: 0, problem: CertificateTime::Expired(None) },
                "the certificate of a is not valid at this enclave's clock, 1970-01-01T00:00:00Z (it has expired); check the time init logged at boot",
            ),
            (
                ClientError::CertificateTime { host: "a".into(), now: 0, problem: CertificateTime::NotValidYet(Some(1_767_225_600)) },
                "the certificate of a is not valid at this enclave's clock, 1970-01-01T00:00:00Z (it is valid from 2026-01-01T00:00:00Z); check the time init logged at boot",
            ),
            (
                ClientError::CertificateTime { host: "a".into(), now: 0, problem: CertificateTime::NotValidYet(None) },
                "the certificate of a is not valid at this enclave's clock, 1970-01-01T00:00:00Z (it is not valid yet); check the time init logged at boot",
            ),
            (
                ClientError::Io { during: "reading the response from", url: url.clone(), source: io(io::ErrorKind::ConnectionReset) },
                "reading the response from https://kms.us-east-1.amazonaws.com/: connection reset",
            ),
            (
                ClientError::Timeout { during: "reading the response from", url: url.clone(), limit: Timeout::Io(Duration::from_secs(10)) },
                "reading the response from https://kms.us-east-1.amazonaws.com/ timed out: no byte moved for 10s (io_timeout)",
            ),
            (
                ClientError::Timeout { during: "the TLS handshake with", url: url.clone(), limit: Timeout::Total(Duration::from_millis(1500)) },
                "the TLS handshake with https://kms.us-east-1.amazonaws.com/ timed out: the request took longer than 1.500s (total_timeout)",
            ),
            (
                ClientError::Timeout { during: "sending the request to", url: url.clone(), limit: Timeout::Io(Duration::from_millis(300)) },
                "sending the request to https://kms.us-east-1.amazonaws.com/ timed out: no byte moved for 300ms (io_timeout)",
            ),
            (
                ClientError::Http { url: url.clone(), reason: "Content-Length is given twice".into() },
                "malformed HTTP response from https://kms.us-east-1.amazonaws.com/: Content-Length is given twice",
            ),
            (
                ClientError::TooLarge { url, what: "response", limit: 1 << 20 },
                "the response from https://kms.us-east-1.amazonaws.com/ is larger than the 1048576 bytes allowed",
            ),
        ] {
            assert_eq!(e.to_string(), expected);
        }
        let refused = ClientError::Connect {
            host: "a".into(),
            port: 1,
            addr,
            source: io(io::ErrorKind::ConnectionRefused),
        };
        assert!(!refused.is_timeout());
        assert!(std::error::Error::source(&refused).is_some());
    }
}
