//! The errors that stop the server from starting or a worker from running. Errors of one
//! connection never come here: they close that connection and are counted, nothing more.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can fail outside a single connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `--listen` value that is neither `vsock:PORT` nor `tcp:ADDR:PORT`.
    ListenSyntax(String),
    /// Creating, configuring, binding or listening on the listening socket failed.
    Listen {
        /// The address, as given.
        addr: String,
        /// The step that failed (`bind`, `listen`, …).
        step: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A certificate or key file could not be read or parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Generating the key pair or signing the certificate failed.
    KeyGen(&'static str),
    /// rustls refused the configuration (for instance a key that does not match the certificate).
    Tls(String),
    /// Creating the epoll instance or registering the listener failed.
    Epoll(io::Error),
    /// A worker thread could not be started.
    Spawn(io::Error),
    /// A configuration value out of range.
    Config(String),
    /// Blocking SIGTERM/SIGINT or creating their signalfd failed.
    Signals(io::Error),
    /// An application's key could not be had (from KMS, say); the reason names the source.
    Key(String),
    /// The NSM gave no attestation document for the certificate's key.
    CertificateAttestation(crate::nsm::AttestError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ListenSyntax(s) => write!(
                f,
                "invalid listen address {s:?}: expected vsock:PORT or tcp:ADDR:PORT"
            ),
            Error::Listen { addr, step, source } => {
                write!(f, "cannot listen on {addr}: {step}: {source}")
            }
            Error::Pem { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::KeyGen(what) => write!(f, "generating the TLS identity: {what}"),
            Error::Tls(reason) => write!(f, "TLS configuration: {reason}"),
            Error::Epoll(e) => write!(f, "epoll: {e}"),
            Error::Spawn(e) => write!(f, "starting a worker thread: {e}"),
            Error::Config(reason) => write!(f, "configuration: {reason}"),
            Error::Signals(e) => write!(f, "setting up SIGTERM/SIGINT handling: {e}"),
            Error::Key(reason) => write!(f, "enclave key: {reason}"),
            Error::CertificateAttestation(e) => {
                write!(f, "the certificate's attestation document: {e}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Listen { source, .. } => Some(source),
            Error::Epoll(e) | Error::Spawn(e) | Error::Signals(e) => Some(e),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_operation_and_cause() {
        let e = Error::Listen {
            addr: "tcp:127.0.0.1:1".into(),
            step: "bind",
            source: io::Error::from_raw_os_error(98),
        };
        assert!(e
            .to_string()
            .starts_with("cannot listen on tcp:127.0.0.1:1: bind: "));
        assert_eq!(
            Error::ListenSyntax("udp:1".into()).to_string(),
            "invalid listen address \"udp:1\": expected vsock:PORT or tcp:ADDR:PORT"
        );
    }
}
