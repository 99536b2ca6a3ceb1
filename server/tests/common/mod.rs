//! What the integration tests share: the real server binary on a random local TCP port
//! (killed on drop), a rustls client pinned to the certificate hash its startup line prints,
//! and a minimal HTTP/1.1 response reader.

#![allow(dead_code)] // each test file uses its own part

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running server; killed on drop.
pub struct Srv {
    pub child: Child,
    pub port: u16,
    pub cert_sha256: String,
    pub lines: Receiver<String>,
    /// The startup line.
    pub startup: String,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(extra: &[&str]) -> Srv {
    spawn_env(extra, &[])
}

pub fn spawn_env(extra: &[&str], env: &[(&str, &str)]) -> Srv {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    server_args(&mut cmd);
    cmd.args(extra).envs(env.iter().copied());
    start_exact(cmd)
}

/// The server's usual test arguments (a random TCP port, no NSM), and a clean environment.
pub fn server_args(cmd: &mut Command) {
    cmd.args([
        "--listen",
        "tcp:127.0.0.1:0",
        "--nsm-device",
        "/nonexistent/nsm",
    ])
    .env_remove("LISTEN")
    .env_remove("WORKERS")
    .env_remove("ENCLAVE_KEY_BASE64");
}

/// Starts `cmd` as it is and waits for the server's startup line.
pub fn start_exact(mut cmd: Command) -> Srv {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take();
    let (tx, lines) = mpsc::channel();
    // From here on, dropping `srv` (also when a check below panics) kills the child.
    let mut srv = Srv {
        child,
        port: 0,
        cert_sha256: String::new(),
        lines,
        startup: String::new(),
    };
    let stdout = stdout.expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = srv.lines.recv_timeout(left).expect("the startup line");
        // "server 0.1.0: listening on tcp:127.0.0.1:PORT (…, cert sha256 HEX; N worker(s); …)"
        if let Some(rest) = line.split("listening on tcp:127.0.0.1:").nth(1) {
            srv.port = rest.split(' ').next().unwrap().parse().unwrap();
            srv.cert_sha256 = line
                .split("cert sha256 ")
                .nth(1)
                .map(|s| s.split(';').next().unwrap().to_owned())
                .unwrap_or_default();
            srv.startup = line;
            return srv;
        }
    }
}

impl Srv {
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    pub fn tls(&self) -> StreamOwned<ClientConnection, TcpStream> {
        StreamOwned::new(client(&self.cert_sha256), self.tcp())
    }

    /// Request log lines seen so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

/// A TLS client session that accepts exactly the certificate with this SHA-256 (hex).
pub fn client(cert_sha256: &str) -> ClientConnection {
    client_with(Some(cert_sha256.to_owned()))
}

/// A TLS client session that accepts any certificate (for tests about availability, where the
/// server's certificate is made somewhere the test cannot read it).
pub fn client_any() -> ClientConnection {
    client_with(None)
}

fn client_with(sha256: Option<String>) -> ClientConnection {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Pinned {
        sha256,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Accepts exactly the certificate whose SHA-256 the startup line printed (any, with `None`);
/// the handshake's signature is checked either way.
#[derive(Debug)]
pub struct Pinned {
    sha256: Option<String>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity);
        if self
            .sha256
            .as_ref()
            .is_none_or(|want| contract::hex::encode(d.as_ref()) == *want)
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate hash mismatch".into()))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one response (Content-Length framed; HEAD responses have none of their body).
pub fn read_response(s: &mut impl Read, head_only: bool) -> Resp {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("response head");
        assert_eq!(
            n,
            1,
            "closed mid-head after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.get(9..12).unwrap().parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; if head_only { 0 } else { len }];
    s.read_exact(&mut body).unwrap();
    Resp { status, head, body }
}

/// Whether the peer closes the stream (EOF or error) within the read timeout.
pub fn closed(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is needed by this test (Debian package {name})"
    );
    Command::new(name)
}
