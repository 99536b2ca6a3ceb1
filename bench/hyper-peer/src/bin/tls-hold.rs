//! The load generator of the memory row of `cargo xtask bench server`: opens N TLS connections
//! to ADDR (at most 256 handshakes at a time), sends `GET /health` on each and reads the
//! response, then keeps them all open and idle. Prints `ready OK FAILED` once every connection
//! is done, and exits when its stdin closes. The server's certificate is not verified (a
//! loopback benchmark): only the handshake signature is checked.
//!
//! Usage: tls-hold ADDR N

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsConnector;

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection: handshake, one request, the whole response; then the stream, to keep.
async fn open(
    connector: TlsConnector,
    addr: String,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr.as_str()).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    tls.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            if !head.starts_with("http/1.1 200") {
                return Err(std::io::Error::other("not 200"));
            }
            return Ok(tls);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, n] = args.as_slice() else {
        eprintln!("usage: tls-hold ADDR N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let gate = Arc::new(Semaphore::new(256));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..n {
        let (connector, addr, gate, tx) =
            (connector.clone(), addr.clone(), gate.clone(), tx.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let result = open(connector, addr).await;
            drop(permit);
            match result {
                Ok(stream) => {
                    let _ = tx.send(true);
                    // Hold the connection, idle, until the process ends.
                    std::future::pending::<()>().await;
                    drop(stream);
                }
                Err(_) => {
                    let _ = tx.send(false);
                }
            }
        });
    }
    drop(tx);
    let (mut ok, mut failed) = (0usize, 0usize);
    while ok + failed < n {
        match rx.recv().await {
            Some(true) => ok += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    println!("ready {ok} {failed}");
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
}
