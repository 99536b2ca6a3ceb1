//! `eif-builder attest` against a tiny in-test HTTPS server that answers `GET /attestation`
//! the way the enclave's server does under QEMU's emulator: an unsigned document (COSE
//! algorithm -1, zero signature, zeroed certificate) carrying the client's nonce, public_key =
//! the SubjectPublicKeyInfo of the server's TLS certificate and user_data = SHA-256 of its DER.
//! The flow succeeds only with --insecure-emulator and the right measurements, and a document
//! with another nonce or bound to another certificate is refused.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test file is its own test crate; its tests need no module"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use eif_builder::sign::pem;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod common;

use common::emulated::{self, Fields, PCR0};

fn pem_der(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    pem::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .remove(0)
        .der
}

/// What the fake enclave puts in its document.
#[derive(Clone, Copy)]
enum Twist {
    Honest,
    OtherNonce,
    OtherCertificate,
}

fn emulator_document(nonce: &[u8], cert: &[u8]) -> Vec<u8> {
    emulated::document(&Fields::endpoint(cert, nonce))
}

fn decode_hex(s: &str) -> Vec<u8> {
    contract::hex::decode(s).unwrap()
}

/// A TLS server configuration with the certificate and key of these test files.
fn server_config(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    emulated::tls_config(
        pem_der(cert),
        PrivateKeyDer::try_from(pem_der(key)).unwrap(),
    )
}

/// Serves one attestation request with p384-cert.pem on a fresh port, in a thread: `answer`
/// gets the request target and the certificate and returns the whole response. Returns the
/// URL.
fn serve_attestation(
    answer: impl FnOnce(&str, &[u8]) -> Vec<u8> + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let cert = pem_der("p384-cert.pem");
    let config = server_config("p384-cert.pem", "p384-key.pkcs8.pem");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        let (mut tls, head) = accept_head(&listener, config).expect("a request");
        let response = answer(head.split(' ').nth(1).unwrap(), &cert);
        tls.write_all(&response).unwrap();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (url, handle)
}

/// Accepts one connection on `listener` and reads a request head over TLS; `None` if the
/// client gave up (refused the handshake).
fn accept_head(
    listener: &TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> Option<(
    rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    String,
)> {
    let (sock, _) = listener.accept().unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    Some((tls, String::from_utf8(head).unwrap()))
}

fn serve_once(twist: Twist) -> (String, std::thread::JoinHandle<()>) {
    serve_attestation(move |target, cert| {
        let hex = target.strip_prefix("/attestation?nonce=").unwrap();
        assert_eq!(hex.len(), 64, "a 32-byte nonce");
        let mut nonce = decode_hex(hex);
        let mut bound = cert.to_vec();
        match twist {
            Twist::Honest => {}
            Twist::OtherNonce => nonce[0] ^= 1,
            Twist::OtherCertificate => bound = pem_der("p256-cert.pem"),
        }
        let doc = emulator_document(&nonce, &bound);
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            doc.len()
        )
        .into_bytes();
        response.extend_from_slice(&doc);
        response
    })
}

fn attest(url: &str, pcr0: &[u8], emulator: bool) -> Output {
    attest_with(url, pcr0, emulator, &[])
}

fn attest_with(url: &str, pcr0: &[u8], emulator: bool, extra: &[&std::ffi::OsStr]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("measurements.json");
    std::fs::write(&m, emulated::measurements(pcr0)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eif-builder"));
    cmd.arg("attest")
        .arg(url)
        .arg("--measurements")
        .arg(&m)
        .args(["--timeout", "20"]);
    if emulator {
        cmd.arg("--insecure-emulator");
    }
    cmd.args(extra);
    cmd.output().unwrap()
}

/// A TLS server with `cert`'s key answering one request with `200 pinned`; returns its port.
fn serve_pinned(cert: &str, key: &str) -> (u16, std::thread::JoinHandle<()>) {
    let config = server_config(cert, key);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // None: the client refused the handshake.
        if let Some((mut tls, _)) = accept_head(&listener, config) {
            let _ = tls.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\npinned\n",
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, handle)
}

/// The command exited 0 (else its stderr is shown).
fn assert_succeeded(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verdict(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn attest_succeeds_against_the_emulator_with_the_right_measurements() {
    let (url, server) = serve_once(Twist::Honest);
    let out = attest(&url, &PCR0, true);
    server.join().unwrap();
    assert_succeeded(&out);
    let v = verdict(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["signature_checked"], false);
    assert_eq!(v["pcrs"]["PCR0"], eif_builder::measure::hex(&PCR0));
    assert_eq!(
        v["tls_certificate_sha256"],
        eif_builder::attest::sha256_hex(&pem_der("p384-cert.pem"))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: --insecure-emulator"));
}

#[test]
fn attest_refuses_other_measurements_an_unsigned_document_and_a_broken_binding() {
    let (url, server) = serve_once(Twist::Honest);
    let out = attest(&url, &[0xbb; 48], true);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(v["step"], "pcr");
    assert_eq!(v["expected"], eif_builder::measure::hex(&[0xbb; 48]));
    assert_eq!(v["actual"], eif_builder::measure::hex(&PCR0));

    let (url, server) = serve_once(Twist::Honest);
    let out = attest(&url, &PCR0, false);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(verdict(&out)["step"], "algorithm");

    let (url, server) = serve_once(Twist::OtherNonce);
    let out = attest(&url, &PCR0, true);
    server.join().unwrap();
    assert_eq!(verdict(&out)["step"], "nonce");

    let (url, server) = serve_once(Twist::OtherCertificate);
    let out = attest(&url, &PCR0, true);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(v["step"], "binding");
    assert!(
        v["reason"].as_str().unwrap().starts_with("public_key"),
        "{v}"
    );
}

#[test]
fn attest_without_a_server_is_an_error_on_stderr() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = attest(&format!("https://127.0.0.1:{port}"), &PCR0, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn attest_pin_writes_the_certificate_and_a_curl_line_that_pins_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pem_path = tmp.path().join("enclave.pem");
    let (url, server) = serve_once(Twist::Honest);
    let out = attest_with(&url, &PCR0, true, &["--pin".as_ref(), pem_path.as_os_str()]);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(verdict(&out)["verified"], true);
    let written = pem::parse(&std::fs::read(&pem_path).unwrap()).unwrap();
    assert_eq!(written[0].der, pem_der("p384-cert.pem"));
    // The pin as openssl computes it from the PEM we wrote.
    let openssl = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | openssl base64 -A",
            pem_path.display()
        ))
        .output()
        .expect("this test needs openssl");
    let pin = String::from_utf8(openssl.stdout).unwrap();
    assert_eq!(pin.len(), 44, "{pin:?}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line in {stderr}"));
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(
        line,
        format!("curl -k --pinnedpubkey 'sha256//{pin}' https://127.0.0.1:{port}/")
    );
    // The line works with the real curl against the same key, and fails against another.
    // The printed line, its URL pointed at another server.
    let curl = |to: u16| {
        let args: Vec<String> = line
            .replace(&format!("127.0.0.1:{port}/"), &format!("127.0.0.1:{to}/"))
            .replace('\'', "")
            .split(' ')
            .skip(1)
            .map(str::to_owned)
            .collect();
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("this test needs curl")
    };
    let (same, server) = serve_pinned("p384-cert.pem", "p384-key.pkcs8.pem");
    let out = curl(same);
    server.join().unwrap();
    assert_succeeded(&out);
    assert_eq!(out.stdout, b"pinned\n");
    let (other, server) = serve_pinned("p256-cert.pem", "p256-key.sec1.pem");
    let out = curl(other);
    server.join().unwrap();
    // CURLE_SSL_PINNEDPUBKEYNOTMATCH.
    assert_eq!(
        out.status.code(),
        Some(90),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn attest_pin_writes_nothing_when_verification_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let pem_path = tmp.path().join("enclave.pem");
    let (url, server) = serve_once(Twist::OtherCertificate);
    let out = attest_with(&url, &PCR0, true, &["--pin".as_ref(), pem_path.as_os_str()]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("curl "));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// A TLS server with `g`'s certificate that completes one handshake and reports whether the
/// client sent any request bytes before it closed.
fn serve_certificate(g: server::cert::Generated) -> (String, std::thread::JoinHandle<usize>) {
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(g.cert_der.clone())],
            PrivateKeyDer::Pkcs8(g.key_pkcs8.to_vec().into()),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut received = Vec::new();
        let _ = tls.read_to_end(&mut received);
        received.len()
    });
    (url, handle)
}

#[test]
fn attest_from_certificate_verifies_the_handshake_alone() {
    let (url, server) = serve_certificate(emulated::attested_certificate(5));
    let out = attest_with(&url, &PCR0, true, &["--from-certificate".as_ref()]);
    assert_eq!(server.join().unwrap(), 0, "no request was sent");
    assert_succeeded(&out);
    let v = verdict(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(
        v["user_data_text"],
        "enclave-https certificate attestation v1"
    );

    // Too old for --max-age.
    let (url, server) = serve_certificate(emulated::attested_certificate(600));
    let out = attest_with(
        &url,
        &PCR0,
        true,
        &[
            "--from-certificate".as_ref(),
            "--max-age".as_ref(),
            "1m".as_ref(),
        ],
    );
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(v["step"], "freshness");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("more than the maximum age 1m"),
        "{v}"
    );

    // --max-age 0s would refuse everything: an error, before connecting.
    let out = attest_with(
        "https://127.0.0.1:1",
        &PCR0,
        true,
        &[
            "--from-certificate".as_ref(),
            "--max-age".as_ref(),
            "0s".as_ref(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "eif-builder: error: --max-age 0s: would refuse every document; give a positive age"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A certificate without a document.
    let (url, server) = serve_certificate(server::cert::generate().unwrap());
    let out = attest_with(&url, &PCR0, true, &["--from-certificate".as_ref()]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("carries no attestation document (extension 2.25.87024637174045886450314576383578375809)"),
        "{err}"
    );
}

/// A nitriding-daemon stand-in: answers `GET /enclave/attestation?nonce=<40 hex>` as its
/// handlers.go does (base64 and a newline; Go sends a body this size chunked), with user_data
/// = multihash(SHA-256 of the certificate) ‖ multihash(application key hash), public_key
/// "dummy". `bind_other` binds the digest of another certificate.
fn serve_nitriding(bind_other: bool) -> (String, std::thread::JoinHandle<()>) {
    serve_attestation(move |target, cert| {
        let hex = target.strip_prefix("/enclave/attestation?nonce=").unwrap();
        assert_eq!(hex.len(), 40, "nitriding takes exactly 20 bytes");
        let bound = if bind_other {
            pem_der("p256-cert.pem")
        } else {
            cert.to_vec()
        };
        let mut user_data = vec![0x12, 0x20];
        user_data.extend_from_slice(&emulated::sha256(&bound));
        user_data.extend_from_slice(&[0x12, 0x20]);
        user_data.extend_from_slice(&[0; 32]);
        let doc = emulated::document(&Fields {
            public_key: b"dummy".to_vec(),
            user_data,
            nonce: decode_hex(hex),
            timestamp_ms: 0,
        });
        let body = format!("{}\n", contract::base64::encode(&doc));
        let (first, second) = body.split_at(body.len() / 2);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
            first.len(),
            second.len()
        )
        .into_bytes()
    })
}

#[test]
fn attest_verifies_a_nitriding_enclave() {
    let nitriding = ["--convention".as_ref(), "nitriding".as_ref()];
    let (url, server) = serve_nitriding(false);
    let out = attest_with(&url, &PCR0, true, &nitriding);
    server.join().unwrap();
    assert_succeeded(&out);
    assert_eq!(verdict(&out)["verified"], true);

    let (url, server) = serve_nitriding(true);
    let out = attest_with(&url, &PCR0, true, &nitriding);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(v["step"], "binding");
    assert!(v["reason"].as_str().unwrap().contains("nitriding"), "{v}");
}
