//! Every rustls call of the crate. rustls is pinned to 0.23, whose `ServerConnection` is an
//! "encrypted pipe" without I/O of its own: `read_tls` buffers ciphertext from the socket,
//! `process_new_packets` decrypts and advances the handshake, `reader()`/`writer()` carry
//! plaintext, `write_tls` drains ciphertext to the socket, and `wants_read`/`wants_write` say
//! what to wait for. (0.24 replaces this API; keeping it in one file keeps that move small.)
//!
//! The configuration: the aws-lc-rs provider, TLS 1.3 and 1.2 only with rustls's default
//! cipher suites and groups, no client authentication, ALPN `http/1.1`.

use crate::cert;
use crate::error::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
/// The server-side TLS configuration (shared by all connections).
pub use rustls::ServerConfig;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Where the certificate and key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Generated at start (P-256, self-signed); the key exists only in this process.
    Generated,
    /// Read from PEM files.
    Files,
}

/// A certificate chain and its private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    source: Source,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh P-256 key pair and self-signed certificate (see [`cert::generate`]).
    pub fn generate() -> Result<Identity> {
        let g = cert::generate()?;
        Ok(Identity {
            chain: vec![CertificateDer::from(g.cert_der.clone())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(g.key_pkcs8.clone())),
            source: Source::Generated,
        })
    }

    /// A PEM certificate chain (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Identity> {
        let pem_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: rustls::pki_types::pem::Error| Error::Pem {
                path,
                reason: e.to_string(),
            }
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .map_err(pem_err(cert_path))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(pem_err(cert_path))?;
        if chain.is_empty() {
            return Err(Error::Pem {
                path: cert_path.to_path_buf(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem_err(key_path))?;
        Ok(Identity {
            chain,
            key,
            source: Source::Files,
        })
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain.first().map_or(&[][..], |c| c.as_ref())
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The server configuration; the key moves into rustls (which checks it matches the
    /// certificate) and this copy is dropped (pki-types zeroizes it).
    pub fn into_config(self) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What reading from the socket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Some bytes came in (possibly no plaintext yet).
    Data,
    /// Nothing there now.
    WouldBlock,
    /// The peer closed the stream (TCP EOF or TLS close_notify).
    Eof,
    /// The connection is beyond use: a TLS error (its alert was sent, best effort) or a socket
    /// error.
    Fatal,
}

/// One TLS connection, server side.
pub struct Conn(rustls::ServerConnection);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Conn")
            .field("handshaking", &self.0.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A new connection; `None` if rustls refuses (it does not with our configuration).
    pub fn new(config: &Arc<ServerConfig>) -> Option<Conn> {
        let mut c = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
        // Our own loop bounds what is queued (http::OUT_HIGH_WATER and the read back-pressure),
        // so whole responses are always accepted by the writer.
        c.set_buffer_limit(None);
        Some(Conn(c))
    }

    /// Reads ciphertext from `sock` once, processes it, and appends the plaintext to `input`
    /// (stopping at `max` bytes of `input`; the rest stays in rustls and `wants_read` turns
    /// false until it is taken).
    pub fn receive(
        &mut self,
        mut sock: impl Read + Write,
        input: &mut Vec<u8>,
        max: usize,
    ) -> Received {
        let mut outcome = match self.0.read_tls(&mut sock) {
            Ok(0) => Received::Eof,
            Ok(_) => Received::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Received::Data,
            Err(_) => return Received::Fatal,
        };
        match self.0.process_new_packets() {
            Ok(state) => {
                if state.peer_has_closed() {
                    outcome = Received::Eof;
                }
            }
            Err(_) => {
                // Last gasp: the alert rustls queued for the peer, once, errors ignored.
                let _ = self.0.write_tls(&mut sock);
                return Received::Fatal;
            }
        }
        self.take_plaintext(input, max);
        outcome
    }

    /// Moves decrypted bytes into `input`, up to `max` bytes of it.
    pub fn take_plaintext(&mut self, input: &mut Vec<u8>, max: usize) {
        let mut chunk = [0u8; 4096];
        while input.len() < max {
            let room = (max - input.len()).min(chunk.len());
            let Some(buf) = chunk.get_mut(..room) else {
                return;
            };
            match self.0.reader().read(buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => input.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    }

    /// Queues plaintext for the peer (encrypted at once; buffered until the handshake ends).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.writer().write_all(data)
    }

    /// Writes queued ciphertext until the socket would block. `Err` on a socket error.
    pub fn flush(&mut self, mut sock: impl Write) -> io::Result<bool> {
        let mut progressed = false;
        while self.0.wants_write() {
            match self.0.write_tls(&mut sock) {
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(progressed)
    }

    /// Queues a close_notify alert.
    pub fn close_notify(&mut self) {
        self.0.send_close_notify();
    }

    /// Whether ciphertext waits to be written.
    pub fn wants_write(&self) -> bool {
        self.0.wants_write()
    }

    /// Whether rustls wants more ciphertext (false while it holds unread plaintext).
    pub fn wants_read(&self) -> bool {
        self.0.wants_read()
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.0.is_handshaking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A firecracker-style fake stream: reads come from `input`, writes go to `output`, and
    /// reads past the end block instead of returning EOF.
    #[derive(Default)]
    struct TestStream {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
        eof: bool,
    }

    impl Read for TestStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.input.read(buf)? {
                0 if self.eof => Ok(0),
                0 => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            }
        }
    }

    impl Write for TestStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn config() -> Arc<ServerConfig> {
        Identity::generate().unwrap().into_config().unwrap()
    }

    #[test]
    fn garbage_instead_of_a_client_hello_is_fatal_with_an_alert() {
        let mut conn = Conn::new(&config()).unwrap();
        let mut s = TestStream {
            input: Cursor::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ..TestStream::default()
        };
        let mut input = Vec::new();
        assert_eq!(conn.receive(&mut s, &mut input, 1024), Received::Fatal);
        assert!(input.is_empty());
        // An alert record (content type 21) went out.
        assert_eq!(s.output.first(), Some(&21));
    }

    #[test]
    fn nothing_to_read_blocks_and_eof_is_eof() {
        let mut conn = Conn::new(&config()).unwrap();
        let mut s = TestStream::default();
        let mut input = Vec::new();
        assert_eq!(conn.receive(&mut s, &mut input, 1024), Received::WouldBlock);
        s.eof = true;
        assert_eq!(conn.receive(&mut s, &mut input, 1024), Received::Eof);
        assert!(conn.is_handshaking());
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("server-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.pem");
        std::fs::write(&cert, "nothing here").unwrap();
        let e = Identity::from_pem_files(&cert, &dir.join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("c.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
