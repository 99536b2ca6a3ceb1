//! `eif-builder proxy` between the real curl and an in-test enclave stand-in that speaks TLS
//! with certificates made by the server library, answers the attestation endpoint with
//! emulator-shaped documents, and logs every request it gets on every connection. The
//! stand-in turns hostile in the ways a parent instance could: a document bound to another
//! certificate, a replayed nonce, a certificate swapped after the first connection was attested,
//! a second connection that is never attested. The proxy must answer 502 and send the client's
//! request nowhere.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test file is its own test crate; its tests need no module"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::emulated::{self, Fields, PCR0};

/// How the stand-in behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enclave {
    /// Attests every connection truly and keeps connections alive.
    Honest,
    /// Its certificate carries a document made `age` seconds ago; the endpoint works too.
    CarriesDocument { age: u64 },
    /// The endpoint's document has the right key but the digest of another certificate.
    WrongBinding,
    /// Closes after each response; from the second connection on, it answers with the first
    /// connection's document (the first nonce).
    ReplayedNonce,
    /// Closes after each response; the second connection shows another certificate, and its
    /// document is a fresh one (our nonce) bound to the first certificate.
    SwappedCertificate,
    /// Closes after each response; the second connection does not answer the attestation
    /// endpoint (it would serve anything else).
    SecondUnattested,
    /// Honest, but closes each connection after its first answer to the application's request
    /// without saying so (as a server closes an idle keep-alive connection).
    ClosesIdle,
    /// nitriding's convention: `/enclave/attestation`, 20-byte nonce, base64 answer, user_data
    /// = the multihash of the certificate's SHA-256 and of the application's key hash.
    Nitriding,
}

/// What the stand-in received: (connection number, request target).
type Log = Arc<Mutex<Vec<(usize, String)>>>;

/// Reads one request head (and a Content-Length body); `None` at the end of the connection.
fn read_request(r: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        r.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(head)
}

/// Starts the stand-in; returns its port and log.
fn start_enclave(kind: Enclave) -> (u16, Log) {
    let a = match kind {
        Enclave::CarriesDocument { age } => emulated::attested_certificate(age),
        _ => server::cert::generate().unwrap(),
    };
    let b = server::cert::generate().unwrap();
    let (config_a, config_b) = (emulated::tls_config_of(&a), emulated::tls_config_of(&b));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let first_document: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for (index, sock) in listener.incoming().enumerate() {
            let Ok(sock) = sock else { return };
            let swapped = kind == Enclave::SwappedCertificate && index > 0;
            let config = if swapped {
                config_b.clone()
            } else {
                config_a.clone()
            };
            let shown = if swapped {
                b.cert_der.clone()
            } else {
                a.cert_der.clone()
            };
            let (cert_a, cert_b) = (a.cert_der.clone(), b.cert_der.clone());
            let (log, first) = (log2.clone(), first_document.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let closes = matches!(
                    kind,
                    Enclave::ReplayedNonce
                        | Enclave::SwappedCertificate
                        | Enclave::SecondUnattested
                );
                while let Some(head) = read_request(&mut tls) {
                    let target = head.split(' ').nth(1).unwrap().to_owned();
                    log.lock().unwrap().push((index, target.clone()));
                    let nitriding = target
                        .strip_prefix("/enclave/attestation?nonce=")
                        .filter(|_| kind == Enclave::Nitriding);
                    let (status, body, close) = if let Some(hex) = nitriding {
                        assert_eq!(hex.len(), 40);
                        let mut user_data = vec![0x12, 0x20];
                        user_data.extend_from_slice(&emulated::sha256(&shown));
                        user_data.extend_from_slice(&[0x12, 0x20]);
                        user_data.extend_from_slice(&[0; 32]);
                        let doc = emulated::document(&Fields {
                            public_key: b"dummy".to_vec(),
                            user_data,
                            nonce: contract::hex::decode(hex).unwrap(),
                            timestamp_ms: 0,
                        });
                        let text = format!("{}\n", contract::base64::encode(&doc));
                        ("200 OK", text.into_bytes(), false)
                    } else if let Some(hex) = target.strip_prefix("/attestation?nonce=") {
                        let nonce = contract::hex::decode(hex).unwrap();
                        let mut fields = Fields::endpoint(&shown, &nonce);
                        match kind {
                            Enclave::WrongBinding => {
                                fields.user_data = emulated::sha256(&cert_b).to_vec();
                            }
                            Enclave::SwappedCertificate if index > 0 => {
                                fields = Fields::endpoint(&cert_a, &nonce);
                            }
                            _ => {}
                        }
                        let mut doc = emulated::document(&fields);
                        if kind == Enclave::ReplayedNonce {
                            doc = first.lock().unwrap().get_or_insert(doc).clone();
                        }
                        if kind == Enclave::SecondUnattested && index > 0 {
                            ("404 Not Found", b"no attestation here".to_vec(), false)
                        } else {
                            ("200 OK", doc, false)
                        }
                    } else {
                        (
                            "200 OK",
                            format!("hello from {target}\n").into_bytes(),
                            closes,
                        )
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                         X-Enclave-PCR0: forged\r\nX-App: kept\r\n{}\r\n",
                        body.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if tls.write_all(response.as_bytes()).is_err()
                        || tls.write_all(&body).is_err()
                        || tls.flush().is_err()
                        || close
                        || (kind == Enclave::ClosesIdle && !target.contains("attestation"))
                    {
                        break;
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, log)
}

/// A running `eif-builder proxy`, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(enclave_port: u16, pcr0: &[u8], extra: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("measurements.json");
    std::fs::write(&m, emulated::measurements(pcr0)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eif-builder"))
        .arg("proxy")
        .arg(format!("https://127.0.0.1:{enclave_port}"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-emulator",
            "--timeout",
            "10",
        ])
        .arg("--measurements")
        .arg(&m)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the proxy said where it listens")
            .unwrap();
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let stderr: Arc<Mutex<String>> = Arc::default();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    Proxy {
        child,
        port,
        stderr,
        _dir: dir,
    }
}

/// A response as curl printed it with -i.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// curl with these paths on one keep-alive connection, through the proxy.
fn curl(proxy: &Proxy, paths: &[&str]) -> Vec<Got> {
    curl_with(proxy, &[], paths)
}

/// [`curl`] with more arguments.
fn curl_with(proxy: &Proxy, args: &[&str], paths: &[&str]) -> Vec<Got> {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(args)
        .args(
            paths
                .iter()
                .map(|p| format!("http://127.0.0.1:{}{p}", proxy.port)),
        )
        .output()
        .expect("this test needs curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut got = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (head, after) = rest.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        got.push(Got {
            status,
            headers,
            body: after[..length].to_owned(),
        });
        rest = &after[length..];
    }
    got
}

fn targets(log: &Log, connection: usize) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| *c == connection)
        .map(|(_, t)| t.split('?').next().unwrap().to_owned())
        .collect()
}

#[test]
fn keep_alive_requests_share_one_attested_connection_and_carry_the_pcrs() {
    let (port, log) = start_enclave(Enclave::Honest);
    let proxy = start_proxy(port, &PCR0, &[]);
    let got = curl(&proxy, &["/one", "/two?x=1"]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, "hello from /one\n");
    assert_eq!(got[1].body, "hello from /two?x=1\n");
    for g in &got {
        assert_eq!(g.status, 200);
        assert_eq!(
            g.header("X-Enclave-PCR0"),
            vec![eif_builder::measure::hex(&PCR0)]
        );
        assert_eq!(g.header("X-Enclave-PCR2").len(), 1);
        assert_eq!(g.header("X-Enclave-Attestation"), vec!["nonce"]);
        assert_eq!(g.header("X-Enclave-Signature"), vec!["not-checked"]);
        assert_eq!(g.header("X-App"), vec!["kept"]);
        assert_eq!(g.header("Content-Type"), vec!["text/plain"]);
    }
    // One connection, attested once, before the first request.
    assert_eq!(targets(&log, 0), ["/attestation", "/one", "/two"]);
    assert_eq!(log.lock().unwrap().len(), 3);
    // A second client reuses the pooled connection.
    let again = curl(&proxy, &["/three"]);
    assert_eq!(again[0].status, 200);
    assert_eq!(targets(&log, 0), ["/attestation", "/one", "/two", "/three"]);
}

#[test]
fn measurements_one_byte_apart_get_a_502_and_nothing_reaches_the_enclave() {
    let (port, log) = start_enclave(Enclave::Honest);
    let mut other = PCR0;
    other[47] ^= 1;
    let proxy = start_proxy(port, &other, &[]);
    let got = curl(&proxy, &["/secret"]);
    assert_eq!(got[0].status, 502);
    assert_eq!(got[0].header("X-Enclave-Refused"), vec!["pcr"]);
    assert!(got[0].body.contains("PCR0 mismatch"), "{}", got[0].body);
    assert_eq!(targets(&log, 0), ["/attestation"]);
    assert!(!proxy.stderr.lock().unwrap().contains("attested a new"));
}

#[test]
fn a_document_in_the_certificate_needs_no_round_trip_until_it_is_too_old() {
    let (port, log) = start_enclave(Enclave::CarriesDocument { age: 10 });
    let proxy = start_proxy(port, &PCR0, &["--max-age", "1h"]);
    let got = curl(&proxy, &["/one"]);
    assert_eq!(got[0].status, 200, "{:?}", got[0]);
    assert_eq!(got[0].header("X-Enclave-Attestation"), vec!["certificate"]);
    assert_eq!(targets(&log, 0), ["/one"], "no attestation request");

    // Older than --max-age: the endpoint is asked with a nonce instead.
    let (port, log) = start_enclave(Enclave::CarriesDocument { age: 600 });
    let proxy = start_proxy(port, &PCR0, &["--max-age", "60s"]);
    let got = curl(&proxy, &["/one"]);
    assert_eq!(got[0].status, 200);
    assert_eq!(got[0].header("X-Enclave-Attestation"), vec!["nonce"]);
    assert_eq!(targets(&log, 0), ["/attestation", "/one"]);

    // --max-age 0s: never the certificate's document, however new (this one is from now).
    let (port, log) = start_enclave(Enclave::CarriesDocument { age: 0 });
    let proxy = start_proxy(port, &PCR0, &["--max-age", "0s"]);
    let got = curl(&proxy, &["/one"]);
    assert_eq!(got[0].header("X-Enclave-Attestation"), vec!["nonce"]);
    assert_eq!(targets(&log, 0), ["/attestation", "/one"]);

    // Other measurements are refused from the certificate alone.
    let (port, log) = start_enclave(Enclave::CarriesDocument { age: 10 });
    let proxy = start_proxy(port, &[0xbb; 48], &[]);
    let got = curl(&proxy, &["/one"]);
    assert_eq!(got[0].status, 502);
    assert_eq!(got[0].header("X-Enclave-Refused"), vec!["pcr"]);
    assert!(log.lock().unwrap().is_empty(), "nothing sent");
}

#[test]
fn a_document_bound_to_another_certificate_is_refused() {
    let (port, log) = start_enclave(Enclave::WrongBinding);
    let proxy = start_proxy(port, &PCR0, &[]);
    let got = curl(&proxy, &["/secret"]);
    assert_eq!(got[0].status, 502);
    assert_eq!(got[0].header("X-Enclave-Refused"), vec!["binding"]);
    assert!(
        got[0].body.contains("user_data is not bound"),
        "{}",
        got[0].body
    );
    assert_eq!(targets(&log, 0), ["/attestation"]);
}

#[test]
fn a_replayed_nonce_is_refused_on_the_next_connection() {
    let (port, log) = start_enclave(Enclave::ReplayedNonce);
    let proxy = start_proxy(port, &PCR0, &[]);
    assert_eq!(curl(&proxy, &["/first"])[0].status, 200);
    let got = curl(&proxy, &["/second"]);
    assert_eq!(got[0].status, 502);
    assert_eq!(got[0].header("X-Enclave-Refused"), vec!["nonce"]);
    assert_eq!(targets(&log, 0), ["/attestation", "/first"]);
    assert_eq!(targets(&log, 1), ["/attestation"]);
}

#[test]
fn a_certificate_swapped_after_attestation_is_refused() {
    let (port, log) = start_enclave(Enclave::SwappedCertificate);
    let proxy = start_proxy(port, &PCR0, &[]);
    assert_eq!(curl(&proxy, &["/first"])[0].status, 200);
    let got = curl(&proxy, &["/second"]);
    assert_eq!(got[0].status, 502);
    assert_eq!(got[0].header("X-Enclave-Refused"), vec!["binding"]);
    assert!(
        got[0].body.contains("public_key is not bound"),
        "{}",
        got[0].body
    );
    assert_eq!(targets(&log, 1), ["/attestation"]);
}

#[test]
fn a_second_connection_that_is_not_attested_carries_no_request() {
    let (port, log) = start_enclave(Enclave::SecondUnattested);
    let proxy = start_proxy(port, &PCR0, &[]);
    assert_eq!(curl(&proxy, &["/first"])[0].status, 200);
    let got = curl(&proxy, &["/second"]);
    assert_eq!(got[0].status, 502);
    assert!(got[0].body.contains("status 404"), "{}", got[0].body);
    assert_eq!(targets(&log, 1), ["/attestation"]);
}

#[test]
fn an_unreachable_enclave_is_a_502_that_says_so() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = start_proxy(port, &PCR0, &[]);
    let got = curl(&proxy, &["/x"]);
    assert_eq!(got[0].status, 502);
    assert!(
        got[0]
            .body
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        got[0].body
    );
}

#[test]
fn a_nitriding_enclave_is_attested_by_its_convention() {
    let (port, log) = start_enclave(Enclave::Nitriding);
    let proxy = start_proxy(port, &PCR0, &["--convention", "nitriding"]);
    let got = curl(&proxy, &["/one", "/two"]);
    assert_eq!(got[0].status, 200, "{:?}", got[0]);
    assert_eq!(got[1].status, 200);
    assert_eq!(got[0].header("X-Enclave-Attestation"), vec!["nitriding"]);
    assert_eq!(targets(&log, 0), ["/enclave/attestation", "/one", "/two"]);
}

#[test]
fn a_connection_the_enclave_closed_while_idle_is_replaced_before_a_post_goes_out() {
    let (port, log) = start_enclave(Enclave::ClosesIdle);
    let proxy = start_proxy(port, &PCR0, &[]);
    let first = curl_with(&proxy, &["--data-binary", "one"], &["/a"]);
    assert_eq!(first[0].status, 200, "{:?}", first[0]);
    // The enclave closed that connection after answering; a POST is not retried, so the
    // proxy must not pick the dead connection.
    let second = curl_with(&proxy, &["--data-binary", "two"], &["/b"]);
    assert_eq!(second[0].status, 200, "{:?}", second[0]);
    assert_eq!(targets(&log, 0), ["/attestation", "/a"]);
    assert_eq!(targets(&log, 1), ["/attestation", "/b"]);
}
