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

/// A certificate chain and its private key; the key's bytes are wiped when it is dropped
/// (rustls keeps only the signing key it loads from them).
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
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(g.key_pkcs8.to_vec())),
            source: Source::Generated,
        })
    }

    /// [`Identity::generate`], and with an NSM (`attester`) the certificate carries the
    /// attestation document for its key, so clients can verify the enclave from the handshake
    /// alone (see [`cert::generate_attested`]; notBefore is the clock's now). An NSM that gives
    /// no document is an error.
    pub fn generate_for<A: crate::nsm::Attester + ?Sized>(
        attester: Option<&A>,
    ) -> Result<Identity> {
        let Some(attester) = attester else {
            return Identity::generate();
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let g = cert::generate_attested(attester, now)?;
        Ok(Identity {
            chain: vec![CertificateDer::from(g.cert_der.clone())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(g.key_pkcs8.to_vec())),
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

    /// The server configuration: rustls loads a signing key from the key's bytes (borrowed,
    /// so no copy of them is left behind when this identity is dropped and wiped) and we check
    /// that it matches the certificate.
    pub fn into_config(self) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&self.key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let certified = rustls::sign::CertifiedKey::new(self.chain.clone(), signing);
        match certified.keys_match() {
            // As rustls' own `with_single_cert`: a key type that cannot tell is not an error.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(Error::Tls(e.to_string())),
        }
        let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(certified));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// What reading from the socket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Some bytes came in (possibly no plaintext yet); `short`: fewer than asked for, so the
    /// socket is most likely empty now and another read would only return EAGAIN.
    Data {
        /// The read returned less than it could have.
        short: bool,
    },
    /// Nothing there now.
    WouldBlock,
    /// The peer closed the stream (TCP EOF or TLS close_notify).
    Eof,
    /// The connection is beyond use: a TLS error (its alert was sent, best effort) or a socket
    /// error.
    Fatal,
}

/// The most a rustls connection buffers of ciphertext not yet decrypted outside the
/// handshake: one record of the largest size (rustls' `MAX_WIRE_SIZE`).
pub const MAX_RECORD: usize = 16_384 + 2_048 + 5;
/// The most rustls buffers of a handshake message being joined from several records.
pub const MAX_HANDSHAKE: usize = 0xffff;
/// rustls' own state of one connection (keys, transcript, small buffers), rounded up.
const STATE: usize = 4 * 1024;
/// What encrypting adds to a write, at most (a record header and tag per 16 KiB, rounded up).
const RECORD_OVERHEAD: usize = 64;

/// A reader that remembers whether its last read was short.
struct Counting<R> {
    inner: R,
    read: usize,
    short: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// One TLS connection, server side.
pub struct Conn {
    tls: rustls::ServerConnection,
    /// Ciphertext received while handshaking (what rustls may be holding of it).
    handshake_bytes: usize,
    /// Plaintext handed to rustls and not yet known to be written (an estimate, exact at 0).
    queued: usize,
    /// Decrypted plaintext rustls holds that we have not taken (exact: from its `IoState`).
    plaintext: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Conn")
            .field("handshaking", &self.tls.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A new connection; `None` if rustls refuses (it does not with our configuration).
    pub fn new(config: &Arc<ServerConfig>) -> Option<Conn> {
        let mut tls = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
        // Our own loop bounds what is queued (http::OUT_HIGH_WATER, the read back-pressure
        // and the memory budget), so whole responses are always accepted by the writer.
        tls.set_buffer_limit(None);
        Some(Conn {
            tls,
            handshake_bytes: 0,
            queued: 0,
            plaintext: 0,
        })
    }

    /// An upper bound of the bytes rustls holds for this connection: its state, the
    /// ciphertext it may buffer (a handshake message being joined, or one record), plaintext
    /// decrypted and not yet taken, and the output queued.
    pub fn held(&self) -> usize {
        let deframer = if self.tls.is_handshaking() {
            self.handshake_bytes.clamp(MAX_RECORD, MAX_HANDSHAKE)
        } else {
            MAX_RECORD
        };
        STATE + deframer + self.plaintext + self.queued
    }

    /// Output queued and not yet written (an estimate; exact when 0).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Decrypted plaintext not yet taken.
    pub fn plaintext(&self) -> usize {
        self.plaintext
    }

    /// Ciphertext received during the handshake so far.
    pub fn handshake_bytes(&self) -> usize {
        self.handshake_bytes
    }

    /// Reads ciphertext from `sock` once, processes it, and appends the plaintext to `input`
    /// (stopping at `max` bytes of `input`; the rest stays in rustls and `wants_read` turns
    /// false until it is taken).
    /// With `exact`, `input` grows by exactly what it takes (no amortized doubling: memory is
    /// short).
    pub fn receive(
        &mut self,
        sock: &mut (impl Read + Write),
        input: &mut Vec<u8>,
        max: usize,
        exact: bool,
    ) -> Received {
        let mut counting = Counting {
            inner: &mut *sock,
            read: 0,
            short: false,
        };
        let read = self.tls.read_tls(&mut counting);
        let short = counting.short;
        if self.tls.is_handshaking() {
            self.handshake_bytes = self.handshake_bytes.saturating_add(counting.read);
        }
        let mut outcome = match read {
            Ok(0) => Received::Eof,
            Ok(_) => Received::Data { short },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                return Received::Data { short: false }
            }
            Err(_) => return Received::Fatal,
        };
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                if state.peer_has_closed() {
                    outcome = Received::Eof;
                }
            }
            Err(_) => {
                // Last gasp: the alert rustls queued for the peer, once, errors ignored.
                let _ = self.tls.write_tls(sock);
                return Received::Fatal;
            }
        }
        self.take_plaintext(input, max, exact);
        outcome
    }

    /// Moves decrypted bytes into `input`, up to `max` bytes of it (growing it by exactly that
    /// much with `exact`).
    pub fn take_plaintext(&mut self, input: &mut Vec<u8>, max: usize, exact: bool) {
        let old = input.len();
        let room = max.saturating_sub(old).min(self.plaintext);
        if room == 0 {
            return;
        }
        if exact {
            input.reserve_exact(room);
        }
        input.resize(old + room, 0);
        let mut got = 0;
        while got < room {
            match self
                .tls
                .reader()
                .read(input.get_mut(old + got..).unwrap_or_default())
            {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        input.truncate(old + got);
        self.plaintext -= got.min(self.plaintext);
    }

    /// Queues plaintext for the peer (encrypted at once; buffered until the handshake ends).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.queued = self
            .queued
            .saturating_add(data.len() + data.len() / 16_384 * RECORD_OVERHEAD + RECORD_OVERHEAD);
        self.tls.writer().write_all(data)
    }

    /// Writes queued ciphertext until the socket would block; returns the bytes written.
    /// `Err` on a socket error.
    pub fn flush(&mut self, sock: &mut impl Write) -> io::Result<usize> {
        let mut written = 0;
        while self.tls.wants_write() {
            match self.tls.write_tls(sock) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.queued = if self.tls.wants_write() {
            self.queued.saturating_sub(written)
        } else {
            0
        };
        Ok(written)
    }

    /// Queues a close_notify alert.
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
    }

    /// Whether ciphertext waits to be written.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Whether rustls wants more ciphertext (false while it holds unread plaintext).
    pub fn wants_read(&self) -> bool {
        self.tls.wants_read()
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
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
        assert_eq!(
            conn.receive(&mut s, &mut input, 1024, false),
            Received::Fatal
        );
        assert!(input.is_empty());
        // An alert record (content type 21) went out.
        assert_eq!(s.output.first(), Some(&21));
    }

    #[test]
    fn nothing_to_read_blocks_and_eof_is_eof() {
        let mut conn = Conn::new(&config()).unwrap();
        let mut s = TestStream::default();
        let mut input = Vec::new();
        assert_eq!(
            conn.receive(&mut s, &mut input, 1024, false),
            Received::WouldBlock
        );
        s.eof = true;
        assert_eq!(conn.receive(&mut s, &mut input, 1024, false), Received::Eof);
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

    #[test]
    fn with_an_nsm_the_generated_certificate_carries_its_document() {
        use crate::nsm::fake::{Calls, FakeNsm, DOCUMENT};
        let nsm = FakeNsm::new(&Calls::default());
        let with = Identity::generate_for(Some(&nsm)).unwrap();
        assert_eq!(
            contract::cert_attestation::document(with.leaf_der()),
            Ok(Some(DOCUMENT))
        );
        // Through a trait object too, as the server binary holds its NSM.
        let boxed: Box<dyn crate::nsm::Attester> = Box::new(nsm);
        let with = Identity::generate_for(Some(boxed.as_ref())).unwrap();
        assert!(matches!(
            contract::cert_attestation::document(with.leaf_der()),
            Ok(Some(_))
        ));
        let without = Identity::generate_for(None::<&FakeNsm>).unwrap();
        assert_eq!(
            contract::cert_attestation::document(without.leaf_der()),
            Ok(None)
        );
        assert!(without.into_config().is_ok());
    }
}
