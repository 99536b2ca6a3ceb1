//! `server::client` against real servers on local ports: a plain HTTP server and a rustls server
//! whose certificates come from the fixtures in `tests/data/client` (made by `make-certs.sh`: a
//! test CA, and leaves that are valid, expired, not valid yet, or from another CA).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use server::client::{
    read_pem_roots, CertificateTime, Client, ClientError, ClientOptions, Request, Resolver, Timeout,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/client")
        .join(name)
}

/// What a test server does on one connection, after reading the request.
enum Answer {
    /// Writes these bytes, then closes (over TLS with close_notify when `notify`).
    Bytes { bytes: Vec<u8>, notify: bool },
    /// Writes nothing and holds the connection open for this long.
    Silent(Duration),
    /// Writes these bytes one at a time, `every` apart.
    Trickle { bytes: Vec<u8>, every: Duration },
}

fn answer(bytes: &[u8]) -> Answer {
    Answer::Bytes {
        bytes: bytes.to_vec(),
        notify: true,
    }
}

/// A request as read by a test server: the head up to the blank line, then a Content-Length
/// body.
fn read_request(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).ok()?;
    buf.extend_from_slice(&body);
    Some(buf)
}

fn play(s: &mut impl Write, answer: &Answer) {
    match answer {
        Answer::Bytes { bytes, .. } => {
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
        Answer::Silent(d) => thread::sleep(*d),
        Answer::Trickle { bytes, every } => {
            for b in bytes {
                if s.write_all(&[*b]).and_then(|()| s.flush()).is_err() {
                    return;
                }
                thread::sleep(*every);
            }
        }
    }
}

struct Served {
    port: u16,
    requests: Receiver<Vec<u8>>,
}

/// A server on 127.0.0.1 answering one connection per answer, in the order they are accepted
/// (each on its own thread); over TLS with the certificate `cert` (a fixture name) and
/// `leaf.key` when given.
fn serve(cert: Option<&str>, answers: Vec<Answer>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = cert.map(|c| {
        server::Identity::from_pem_files(&data(c), &data("leaf.key"))
            .unwrap()
            .into_config()
            .unwrap()
    });
    let (tx, requests) = mpsc::channel();
    thread::spawn(move || {
        for answer in answers {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            let (tx, config) = (tx.clone(), config.clone());
            thread::spawn(move || match config {
                None => {
                    if let Some(r) = read_request(&mut sock) {
                        let _ = tx.send(r);
                        play(&mut sock, &answer);
                    }
                }
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, sock);
                    // A handshake the client refuses ends here.
                    if let Some(r) = read_request(&mut tls) {
                        let _ = tx.send(r);
                        play(&mut tls, &answer);
                        if let Answer::Bytes { notify: true, .. } = answer {
                            tls.conn.send_close_notify();
                            let _ = tls.conn.write_tls(&mut tls.sock);
                        }
                    }
                }
            });
        }
    });
    Served { port, requests }
}

fn test_roots() -> ClientOptions {
    ClientOptions::with_roots(&read_pem_roots(&data("ca.pem")).unwrap()).unwrap()
}

fn get(client: &Client, url: &str) -> Result<server::client::Response, ClientError> {
    client.request(&Request::new("GET", url).unwrap())
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_get_and_post_with_an_extra_root() {
        let s = serve(
            Some("leaf.pem"),
            vec![
            answer(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            ),
            answer(
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            ),
        ],
        );
        let client = Client::new(test_roots());
        let r = get(&client, &format!("https://localhost:{}/x?y=1", s.port)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(
            String::from_utf8(s.requests.recv().unwrap()).unwrap(),
            format!(
                "GET /x?y=1 HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
                s.port
            )
        );
        // An IP address: no SNI, the certificate's IP SAN.
        let r = client
            .request(
                &Request::new("POST", &format!("https://127.0.0.1:{}/", s.port))
                    .unwrap()
                    .with_header("Content-Type", "application/x-amz-json-1.1")
                    .with_body("{\"KeyId\":\"k\"}"),
            )
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        assert_eq!(
            String::from_utf8(s.requests.recv().unwrap()).unwrap(),
            format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             Content-Length: 13\r\nConnection: close\r\n\r\n{{\"KeyId\":\"k\"}}",
            s.port
        )
        );
    }

    #[test]
    fn untrusted_certificates_are_refused() {
        // From a CA the client does not trust.
        let s = serve(Some("untrusted.pem"), vec![answer(b"")]);
        let e = get(
            &Client::new(test_roots()),
            &format!("https://localhost:{}/", s.port),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ClientError::Tls { host, error: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) } if host == "localhost"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "TLS with localhost failed: invalid peer certificate: UnknownIssuer"
        );
        // The test CA's leaf, without the test CA: Mozilla's roots alone do not trust it.
        let s = serve(Some("leaf.pem"), vec![answer(b"")]);
        let e = get(
            &Client::new(ClientOptions::with_roots(&[]).unwrap()),
            &format!("https://localhost:{}/", s.port),
        )
        .unwrap_err();
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        // A name the certificate does not hold.
        let s = serve(Some("leaf.pem"), vec![answer(b"")]);
        let mut options = test_roots();
        options.resolver = Resolver::Egress {
            entries: contract::egress::parse(&format!("other.test:443 127.0.0.1:{}\n", s.port))
                .unwrap(),
            path: "egress".into(),
        };
        let e = get(&Client::new(options), "https://other.test/").unwrap_err();
        assert!(e.to_string().starts_with("TLS with other.test failed: invalid peer certificate: certificate not valid for name \"other.test\""), "{e}");
    }

    #[test]
    fn certificates_refused_for_their_time_name_the_enclave_clock() {
        let s = serve(Some("expired.pem"), vec![answer(b"")]);
        let before = now();
        let e = get(
            &Client::new(test_roots()),
            &format!("https://localhost:{}/", s.port),
        )
        .unwrap_err();
        let ClientError::CertificateTime {
            host,
            now: at,
            problem,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(host, "localhost");
        assert!((before..=now()).contains(at), "{at}");
        // 2021-01-01T00:00:00Z, the fixture's notAfter.
        assert_eq!(*problem, CertificateTime::Expired(Some(1_609_459_200)));
        assert_eq!(
        e.to_string(),
        format!(
            "the certificate of localhost is not valid at this enclave's clock, {} (it expired 2021-01-01T00:00:00Z); check the time init logged at boot",
            contract::date::rfc3339(*at)
        )
    );

        let s = serve(Some("future.pem"), vec![answer(b"")]);
        let e = get(
            &Client::new(test_roots()),
            &format!("https://localhost:{}/", s.port),
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with(
                " (it is valid from 2200-01-01T00:00:00Z); check the time init logged at boot"
            ),
            "{e}"
        );
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let s = serve(
        None,
        vec![
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"),
            answer(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
            answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"),
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
        ],
    );
        let client = Client::new(test_roots());
        let url = format!("http://127.0.0.1:{}/", s.port);
        assert_eq!(get(&client, &url).unwrap().body, b"abc");
        assert_eq!(get(&client, &url).unwrap().body, b"abcde");
        assert_eq!(get(&client, &url).unwrap().body, b"until close");
        let r = get(&client, &url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
        let e = get(&client, &url).unwrap_err();
        assert_eq!(
        e.to_string(),
        format!("malformed HTTP response from {url}: the connection ended 5 bytes before the end of the body")
    );
    }

    #[test]
    fn tls_bodies_without_close_notify() {
        let quiet = |bytes: &[u8]| Answer::Bytes {
            bytes: bytes.to_vec(),
            notify: false,
        };
        let s = serve(
            Some("leaf.pem"),
            vec![
                quiet(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
                quiet(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
                quiet(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
            ],
        );
        let client = Client::new(test_roots());
        let url = format!("https://localhost:{}/", s.port);
        // The body's end is known: the missing close_notify does not matter.
        assert_eq!(get(&client, &url).unwrap().body, b"abc");
        // Read to the end of the connection: without close_notify it may be truncated.
        assert_eq!(
        get(&client, &url).unwrap_err().to_string(),
        format!("malformed HTTP response from {url}: the server closed the TLS connection without close_notify before the end of the response (it may be truncated)")
    );
        // A Content-Length body cut short.
        let e = get(&client, &url).unwrap_err();
        assert!(matches!(e, ClientError::Http { .. }), "{e:?}");
    }

    #[test]
    fn responses_over_the_bound_are_refused() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        );
        let chunks = format!("100\r\n{}\r\n", "y".repeat(256)).repeat(8);
        let chunked =
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n");
        let s = serve(
            None,
            vec![
                answer(big.as_bytes()),
                answer(chunked.as_bytes()),
                answer(big.as_bytes()),
            ],
        );
        let mut options = test_roots();
        options.max_response_bytes = 1000;
        let client = Client::new(options);
        let url = format!("http://127.0.0.1:{}/", s.port);
        let e = get(&client, &url).unwrap_err();
        assert!(
            matches!(e, ClientError::TooLarge { limit: 1000, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("the response from {url} is larger than the 1000 bytes allowed")
        );
        assert!(matches!(
            get(&client, &url),
            Err(ClientError::TooLarge { .. })
        ));
        let mut options = test_roots();
        options.max_response_bytes = 6000;
        assert_eq!(get(&Client::new(options), &url).unwrap().body.len(), 5000);
    }

    #[test]
    fn silent_and_slow_servers_time_out_within_the_bounds() {
        let s = serve(
            None,
            vec![
                Answer::Silent(Duration::from_secs(5)),
                Answer::Trickle {
                    bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
                    every: Duration::from_millis(50),
                },
            ],
        );
        let url = format!("http://127.0.0.1:{}/", s.port);
        let mut options = test_roots();
        options.io_timeout = Duration::from_millis(300);
        options.total_timeout = Duration::from_secs(3);
        let start = Instant::now();
        let e = get(&Client::new(options.clone()), &url).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(300 + 3000),
            "{:?}",
            start.elapsed()
        );
        assert!(e.is_timeout());
        assert!(
            matches!(e, ClientError::Timeout { limit: Timeout::Io(d), .. } if d == Duration::from_millis(300)),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "reading the response from {url} timed out: no byte moved for 300ms (io_timeout)"
            )
        );

        // A byte every 50 ms never trips io_timeout; total_timeout ends it.
        options.io_timeout = Duration::from_secs(1);
        options.total_timeout = Duration::from_millis(600);
        let start = Instant::now();
        let e = get(&Client::new(options), &url).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(600 + 1000),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
        e.to_string(),
        format!("reading the response from {url} timed out: the request took longer than 600ms (total_timeout)")
    );
    }

    #[test]
    fn a_silent_tls_server_times_out_in_the_handshake() {
        // A plain TCP server that never answers the ClientHello.
        let s = serve(None, vec![Answer::Silent(Duration::from_secs(5))]);
        drop(s.requests);
        let mut options = test_roots();
        options.io_timeout = Duration::from_millis(200);
        let url = format!("https://localhost:{}/", s.port);
        let e = get(&Client::new(options), &url).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the TLS handshake with {url} timed out: no byte moved for 200ms (io_timeout)")
        );
    }

    #[test]
    fn a_server_closing_during_the_handshake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || drop(listener.accept()));
        let url = format!("https://localhost:{port}/");
        let e = get(&Client::new(test_roots()), &url).unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e:?}");
        let message = e.to_string();
        // Closed before or after the ClientHello arrived (EOF or a reset): one line naming
        // the URL either way.
        assert!(
            message.starts_with(&format!("the TLS handshake with {url}: ")),
            "{message}"
        );
    }

    #[test]
    fn the_egress_table_maps_names_and_refuses_the_rest() {
        let s = serve(
            Some("leaf.pem"),
            vec![answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")],
        );
        let dir = std::env::temp_dir().join(format!("client-test-egress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("egress");
        std::fs::write(
            &table,
            contract::egress::render(&[contract::egress::Entry {
                host: "kms.test".into(),
                port: 443,
                local: format!("127.0.0.1:{}", s.port).parse().unwrap(),
            }]),
        )
        .unwrap();
        let mut options = test_roots();
        options.resolver = Resolver::egress_file(&table).unwrap();
        let client = Client::new(options);
        // SNI and Host are the URL's name; the connection goes to the table's address.
        let r = client
            .request(
                &Request::new("POST", "https://kms.test/")
                    .unwrap()
                    .with_body("{}"),
            )
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let sent = String::from_utf8(s.requests.recv().unwrap()).unwrap();
        assert!(
            sent.starts_with("POST / HTTP/1.1\r\nHost: kms.test\r\n"),
            "{sent}"
        );

        for url in [
            "https://sts.test/",
            "https://kms.test:8443/",
            "http://169.254.169.254/",
        ] {
            let e = get(&client, url).unwrap_err();
            assert!(matches!(e, ClientError::NotInEgress { .. }), "{e:?}");
            let u = server::client::Url::parse(url).unwrap();
            assert_eq!(
            e.to_string(),
            format!(
                "{}:{} is not in the egress table {}: nothing in the enclave forwards it (add \"{}:{}\" to `egress` in the image's enclave.toml)",
                u.host(),
                u.port(),
                table.display(),
                u.host(),
                u.port()
            )
        );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn imds_style_put_then_get() {
        let s = serve(
            None,
            vec![
                answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nTOKEN-abc"),
                answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nus-east-1"),
            ],
        );
        let client = Client::new(test_roots());
        let base = format!("http://127.0.0.1:{}", s.port);
        let token = client
            .request(
                &Request::new("PUT", &format!("{base}/latest/api/token"))
                    .unwrap()
                    .with_header("X-aws-ec2-metadata-token-ttl-seconds", "21600"),
            )
            .unwrap();
        let token = String::from_utf8(token.body).unwrap();
        let region = client
            .request(
                &Request::new("GET", &format!("{base}/latest/meta-data/placement/region"))
                    .unwrap()
                    .with_header("X-aws-ec2-metadata-token", &token),
            )
            .unwrap();
        assert_eq!(region.body, b"us-east-1");
        let host = format!("127.0.0.1:{}", s.port);
        assert_eq!(
        String::from_utf8(s.requests.recv().unwrap()).unwrap(),
        format!("PUT /latest/api/token HTTP/1.1\r\nHost: {host}\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    );
        assert_eq!(
        String::from_utf8(s.requests.recv().unwrap()).unwrap(),
        format!("GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: {host}\r\nX-aws-ec2-metadata-token: TOKEN-abc\r\nConnection: close\r\n\r\n")
    );
    }

    #[test]
    fn refused_connections_name_the_address() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = get(
            &Client::new(test_roots()),
            &format!("http://127.0.0.1:{port}/"),
        )
        .unwrap_err();
        let ClientError::Connect { addr, source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(addr.port(), port);
        assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(!e.is_timeout());
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{e}"
        );
        // Through the egress table: both the name and the address.
        let mut options = test_roots();
        options.resolver = Resolver::Egress {
            entries: contract::egress::parse(&format!("kms.test:443 127.0.0.1:{port}\n")).unwrap(),
            path: "egress".into(),
        };
        let e = get(&Client::new(options), "https://kms.test/").unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot connect to kms.test:443 at 127.0.0.1:{port}: "
            )),
            "{e}"
        );
    }
}
