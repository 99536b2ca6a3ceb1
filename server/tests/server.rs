//! End-to-end tests: the real binary on a random local TCP port, driven with curl,
//! `openssl s_client`, a rustls client pinned to the certificate hash the startup line prints,
//! and raw sockets.

mod common;

#[cfg(test)]
mod tests {
    use super::common::*;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn curl_gets_health_over_tls() {
        let srv = spawn(&["--workers", "2"]);
        let out = tool("curl")
            .args([
                "-sS",
                "-k",
                "--http1.1",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .arg(format!("https://127.0.0.1:{}/health", srv.port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.starts_with("{\"status\":\"ok\",\"uptime_s\":"),
            "{text}"
        );
        assert!(text.contains("\"connections\":1,"), "{text}");
        assert!(text.ends_with("\n200 1.1"), "{text}");
        std::thread::sleep(Duration::from_millis(100));
        let log = srv.log();
        assert!(
            log.iter()
                .any(|l| l.starts_with("GET /health 200 ") && l.ends_with("us")),
            "{log:?}"
        );
    }

    fn s_client(port: u16, version: &str) -> String {
        let mut child = tool("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                version,
                "-alpn",
                "http/1.1",
                "-ign_eof",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn openssl_tls12_and_tls13_with_alpn() {
        let srv = spawn(&[]);
        for (flag, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
            let out = s_client(srv.port, flag);
            assert!(
                out.contains(&format!("Protocol  : {proto}"))
                    || out.contains(&format!("New, {proto},")),
                "{out}"
            );
            assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
            assert!(out.contains("HTTP/1.1 200 OK\r\n"), "{out}");
            assert!(out.contains("Connection: close\r\n"), "{out}");
        }
        // TLS 1.1 is refused.
        let out = s_client(srv.port, "-tls1_1");
        assert!(!out.contains("HTTP/1.1 200"), "{out}");
    }

    #[test]
    fn garbage_instead_of_a_client_hello_is_closed() {
        let srv = spawn(&[]);
        let mut s = srv.tcp();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(closed(&mut s));
        // The server is fine afterwards.
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
    }

    #[test]
    fn a_stalled_handshake_does_not_block_others_and_times_out() {
        let srv = spawn(&["--workers", "1", "--handshake-timeout", "1s"]);
        let mut stalled = srv.tcp();
        // A TLS record header announcing a ClientHello that never comes.
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .unwrap();
        let start = Instant::now();
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(closed(&mut stalled), "the handshake timeout closes it");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn limits_over_tls() {
        let srv = spawn(&[
            "--max-header-bytes",
            "4096",
            "--max-uri-bytes",
            "1024",
            "--max-body-bytes",
            "100",
            "--max-headers",
            "8",
        ]);
        // A well-behaved keep-alive client, open through every bad case below.
        let mut good = srv.tls();
        let too_many_headers: String = (0..9).map(|i| format!("X-H{i}: v\r\n")).collect();
        let cases = [
            (format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(5000)), 431),
            (format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000)), 414),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello".to_owned(), 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n".to_owned(), 413),
            ("GARBAGE\r\n\r\n".to_owned(), 400),
            (format!("GET / HTTP/1.1\r\nHost: a\r\n{too_many_headers}\r\n"), 431),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_owned(), 400),
        ];
        for (req, status) in cases {
            let mut t = srv.tls();
            t.write_all(req.as_bytes()).unwrap();
            let r = read_response(&mut t, false);
            assert_eq!(r.status, status, "{}", r.head);
            assert!(r.head.contains("Connection: close\r\n"));
            assert!(closed(&mut t), "closed after {status}");
            good.write_all(get("/health").as_bytes()).unwrap();
            assert_eq!(
                read_response(&mut good, false).status,
                200,
                "after the {status} case"
            );
        }
        // Another client was never affected.
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
    }

    #[test]
    fn requests_per_connection_are_capped() {
        let srv = spawn(&["--max-requests-per-connection", "2"]);
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        let first = read_response(&mut t, false);
        assert_eq!(first.status, 200);
        assert!(
            !first.head.contains("Connection: close\r\n"),
            "{}",
            first.head
        );
        t.write_all(get("/health").as_bytes()).unwrap();
        let last = read_response(&mut t, false);
        assert_eq!(last.status, 200);
        assert!(last.head.contains("Connection: close\r\n"), "{}", last.head);
        assert!(closed(&mut t), "closed after the last allowed request");
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_on_one_connection() {
        let srv = spawn(&[]);
        let mut t = srv.tls();
        let two = format!(
            "{}{}HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n",
            get("/health"),
            get("/nope")
        );
        t.write_all(two.as_bytes()).unwrap();
        let a = read_response(&mut t, false);
        let b = read_response(&mut t, false);
        let c = read_response(&mut t, true);
        assert_eq!((a.status, b.status, c.status), (200, 404, 200));
        assert!(a.body.starts_with(b"{\"status\":\"ok\""));
        assert!(c.head.contains("Content-Length: "));
        // Still open (keep-alive).
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
    }

    #[test]
    fn attestation_without_nsm_and_nonce_checks() {
        let srv = spawn(&[]);
        let mut t = srv.tls();
        for (query, status) in [
            ("nonce=00112233", 503),
            (&*format!("nonce={}", "ab".repeat(65)), 400),
            ("nonce=xyz", 400),
            ("", 400),
        ] {
            t.write_all(get(&format!("/attestation?{query}")).as_bytes())
                .unwrap();
            let r = read_response(&mut t, false);
            assert_eq!(r.status, status, "{query}");
            assert!(r.head.contains("Content-Type: application/json\r\n"));
            assert!(r.body.starts_with(b"{\"error\":"));
        }
    }

    #[test]
    fn connection_limit_refuses_new_ones_and_keeps_old_ones() {
        let srv = spawn(&["--workers", "1", "--max-connections", "2"]);
        let mut a = srv.tls();
        let mut b = srv.tls();
        for t in [&mut a, &mut b] {
            t.write_all(get("/health").as_bytes()).unwrap();
            assert_eq!(read_response(t, false).status, 200);
        }
        let mut c = srv.tcp();
        assert!(closed(&mut c), "the third connection is closed");
        a.write_all(get("/health").as_bytes()).unwrap();
        let r = read_response(&mut a, false);
        assert!(String::from_utf8_lossy(&r.body).contains("\"connections\":2,"));
        drop(b);
        std::thread::sleep(Duration::from_millis(200));
        let mut d = srv.tls();
        d.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut d, false).status, 200);
    }

    /// Stores `value` under the token ALICE; returns the token's header.
    fn store(srv: &Srv, value: &str) {
        let dir = std::env::temp_dir().join(format!("server-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("v.json");
        std::fs::write(&file, value).unwrap();
        let at = format!("@{}", file.display());
        assert_eq!(private(srv.port, ALICE, &["--data-binary", &at]).0, 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A TLS connection from a socket with a 4 KiB receive buffer (so the kernel holds little
    /// of what the server sends a client that does not read), asking for `n` copies of the
    /// 1 MiB private value.
    fn big_reader(
        srv: &Srv,
        n: usize,
    ) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        socket::setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
        let addr = SockaddrIn::new(127, 0, 0, 1, srv.port);
        socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).unwrap();
        let tcp = std::net::TcpStream::from(fd);
        tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut t = rustls::StreamOwned::new(client(&srv.cert_sha256), tcp);
        let req = format!("GET /private-data HTTP/1.1\r\nHost: a\r\n{ALICE}\r\n\r\n");
        t.write_all(req.repeat(n).as_bytes()).unwrap();
        t
    }

    /// The server's count of open connections (its /health), asked on `t`.
    fn open_connections(t: &mut (impl Read + Write)) -> usize {
        t.write_all(get("/health").as_bytes()).unwrap();
        let body = String::from_utf8(read_response(t, false).body).unwrap();
        body.split("\"connections\":")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    #[test]
    fn slow_readers_are_closed_by_the_send_timeout() {
        let srv = spawn(&["--send-timeout", "2s"]);
        store(&srv, &format!("\"{}\"", "x".repeat(1024 * 1024 - 2)));
        let mut observer = srv.tls();
        assert_eq!(open_connections(&mut observer), 1);
        // One reads a byte a second: the server cannot send it its answers.
        let mut slow = big_reader(&srv, 3);
        // The other reads what its 4 KiB window holds ten times a second: slow (some 40 KB/s),
        // but over the 16 KiB per send timeout a client must take.
        let mut steady = big_reader(&srv, 3);
        steady
            .sock
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        let mut got = 0;
        let mut counts = Vec::new();
        let start = Instant::now();
        let mut next_second = start;
        while start.elapsed() < Duration::from_secs(6) {
            if Instant::now() >= next_second {
                next_second += Duration::from_secs(1);
                let _ = slow.sock.read(&mut buf[..1]);
                counts.push(open_connections(&mut observer));
            }
            if let Ok(n) = steady.sock.read(&mut buf) {
                got += n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Both at first; after the 2 s send timeout and a 1 s sweep, the slow one is gone.
        assert_eq!(counts.first(), Some(&3), "{counts:?}");
        assert_eq!(counts.last(), Some(&2), "{counts:?}");
        assert!(got > 100 * 1024, "{got}");
        steady
            .sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            steady.sock.read(&mut buf).unwrap() > 0,
            "the steady reader was closed"
        );
    }

    #[test]
    fn idle_connections_time_out() {
        let srv = spawn(&["--idle-timeout", "1s"]);
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
        let start = Instant::now();
        assert!(closed(&mut t));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn slow_headers_time_out() {
        let srv = spawn(&["--request-timeout", "1s", "--idle-timeout", "30s"]);
        let mut t = srv.tls();
        t.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        t.flush().unwrap();
        let start = Instant::now();
        assert!(closed(&mut t));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn plain_http_only_when_asked_and_never_on_vsock() {
        let srv = spawn(&["--plain-http"]);
        let mut s = srv.tcp();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
        assert_eq!(read_response(&mut s, false).status, 200);
        assert!(closed(&mut s));
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--listen", "vsock:5000", "--plain-http"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("plain-http"));
    }

    #[test]
    fn certificate_and_key_from_pem_files() {
        let dir = std::env::temp_dir().join(format!("server-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let ok = tool("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let srv = spawn(&[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
        // A key that does not match is refused at start.
        let other = dir.join("other.pem");
        tool("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&other)
            .status()
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args([
                "--listen",
                "tcp:127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                other.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_body_too_large_is_answered_while_it_is_still_being_sent() {
        let srv = spawn(&["--max-body-bytes", "1000"]);
        let mut t = srv.tls();
        t.write_all(b"POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n")
            .unwrap();
        // The server answers 413 after the head and drains the rest (lingering close), so the
        // response is not lost to a reset.
        let chunk = vec![b'x'; 16 * 1024];
        for _ in 0..12 {
            if t.write_all(&chunk).is_err() {
                break;
            }
        }
        let r = read_response(&mut t, false);
        assert_eq!(r.status, 413);
        assert!(closed(&mut t));
    }

    #[test]
    fn chunked_bodies_and_100_continue_over_tls() {
        let srv = spawn(&[]);
        let mut t = srv.tls();
        t.write_all(b"POST /health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").unwrap();
        let r = read_response(&mut t, false);
        assert_eq!(r.status, 405);
        assert!(r.head.contains("Allow: GET, HEAD\r\n"));
        t.write_all(b"POST /health HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
        let mut interim = [0u8; 25];
        t.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        t.write_all(b"hello").unwrap();
        assert_eq!(read_response(&mut t, false).status, 405);
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
    }

    /// curl against `https://127.0.0.1:PORT{path}` with `args`; (status, headers, body).
    fn curl(port: u16, path: &str, args: &[&str]) -> (u16, String, String) {
        let out = tool("curl")
            .args([
                "-sS",
                "-k",
                "--http1.1",
                "--max-time",
                "10",
                "-D",
                "-",
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (rest, code) = text.rsplit_once('\n').unwrap();
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        (code.parse().unwrap(), head.to_owned(), body.to_owned())
    }

    const ALICE: &str = "Authorization: Bearer 0123456789abcdef0123456789abcdef";
    const BOB: &str = "Authorization: Bearer Qm9iJ3MgdG9rZW4gb2YgMTI4IGJpdHM";

    /// curl on /private-data with one more header (the token) before `args`.
    fn private(port: u16, auth: &str, args: &[&str]) -> (u16, String, String) {
        let mut all = vec!["-H", auth];
        all.extend_from_slice(args);
        curl(port, "/private-data", &all)
    }

    #[test]
    fn private_data_with_curl() {
        let srv = spawn(&[]);
        let (status, head, body) = curl(srv.port, "/private-data", &[]);
        assert_eq!(status, 401, "{body}");
        assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
        let (status, _, body) = private(srv.port, "Authorization: Bearer 0123456789abcdef", &[]);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("128 bits"), "{body}");
        let (status, head, body) = private(srv.port, ALICE, &[]);
        assert_eq!(status, 404, "{body}");
        assert!(
            head.contains("X-Private-Data-Persistence: memory only"),
            "{head}"
        );
        let secret = r#"{"password":"hunter2-secret","n":[1,2.5,null,true]}"#;
        let (status, _, body) = private(
            srv.port,
            ALICE,
            &[
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                secret,
            ],
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"stored\":true"), "{body}");
        assert!(body.contains("generated at start"), "{body}");
        assert!(
            body.contains("a restart loses the data and the key"),
            "{body}"
        );
        let (status, head, body) = private(srv.port, ALICE, &[]);
        assert_eq!(status, 200);
        assert_eq!(body, secret);
        assert!(head.contains("Content-Type: application/json"), "{head}");
        // Another client's token finds nothing, and cannot overwrite Alice's slot.
        assert_eq!(private(srv.port, BOB, &[]).0, 404);
        assert_eq!(
            private(srv.port, BOB, &["--data-binary", "[\"bob\"]"]).0,
            200
        );
        assert_eq!(private(srv.port, ALICE, &[]).2, secret);
        assert_eq!(private(srv.port, BOB, &[]).2, "[\"bob\"]");
        // Not JSON: 400, and the stored value is untouched.
        let (status, _, body) = private(srv.port, ALICE, &["--data-binary", "{oops"]);
        assert_eq!(status, 400, "{body}");
        assert_eq!(private(srv.port, ALICE, &[]).2, secret);
        // Over 1 MiB: 413 (the server's own body limit is 1 MiB too).
        let dir = std::env::temp_dir().join(format!("server-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, format!("\"{}\"", "a".repeat(1024 * 1024))).unwrap();
        let at = format!("@{}", big.display());
        let (status, _, _) = private(srv.port, ALICE, &["--data-binary", &at]);
        assert_eq!(status, 413);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(private(srv.port, ALICE, &["-X", "DELETE"]).0, 204);
        assert_eq!(private(srv.port, ALICE, &[]).0, 404);
        std::thread::sleep(Duration::from_millis(100));
        let log = srv.log();
        assert!(
            log.iter().any(|l| l.starts_with("POST /private-data 200 ")),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l.contains("hunter2")), "{log:?}");
        assert!(
            !log.iter().any(|l| l.contains("0123456789abcdef")),
            "{log:?}"
        );
    }

    #[test]
    fn enclave_key_from_the_environment() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let srv = spawn_env(&[], &[("ENCLAVE_KEY_BASE64", key)]);
        let (status, _, body) = private(srv.port, ALICE, &["--data-binary", "[1]"]);
        assert_eq!(status, 200);
        assert!(body.contains("from ENCLAVE_KEY_BASE64"), "{body}");
        assert!(body.contains("nothing sealed under it is kept"), "{body}");
        assert_eq!(private(srv.port, ALICE, &[]).2, "[1]");
        // Read once, then gone from the process's environment, original bytes included.
        let environ = std::fs::read(format!("/proc/{}/environ", srv.child.id())).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains(key),
            "the key is still in /proc/PID/environ"
        );
        assert!(
            !environ.contains(&key[..20]),
            "a part of the key is still there"
        );
        for bad in ["c2hvcnQ=", "not base64", &key[1..]] {
            let out = Command::new(env!("CARGO_BIN_EXE_server"))
                .args(["--listen", "tcp:127.0.0.1:0"])
                .env("ENCLAVE_KEY_BASE64", bad)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(err.starts_with("server: ENCLAVE_KEY_BASE64 "), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn an_enclave_key_from_kms_is_all_or_nothing() {
        let run = |env: &[(&str, &str)]| {
            let out = Command::new(env!("CARGO_BIN_EXE_server"))
                .args([
                    "--listen",
                    "tcp:127.0.0.1:0",
                    "--nsm-device",
                    "/nonexistent/nsm",
                ])
                .env_remove("ENCLAVE_KEY_BASE64")
                .env_remove("AWS_REGION")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, err) = run(&[
            (
                "ENCLAVE_KEY_BASE64",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("ENCLAVE_KEY_KMS_CIPHERTEXT", "AQID"),
        ]);
        assert_eq!(code, Some(2));
        assert_eq!(
            err,
            "server: ENCLAVE_KEY_BASE64 and ENCLAVE_KEY_KMS_CIPHERTEXT are both set; the enclave key comes from one of them\n"
        );
        // Without an NSM there is no attestation document, so no key: the server does not
        // start (it never falls back to a generated key).
        let (code, err) = run(&[("ENCLAVE_KEY_KMS_CIPHERTEXT", "AQID")]);
        assert_eq!(code, Some(1));
        assert_eq!(
            err,
            "server: enclave key: ENCLAVE_KEY_KMS_CIPHERTEXT needs the NSM: KMS releases the key to an attestation document only\n"
        );
        let (code, err) = run(&[("ENCLAVE_KEY_KMS_CIPHERTEXT", "not base64!")]);
        assert_eq!(code, Some(1));
        assert!(
            err.contains("ENCLAVE_KEY_KMS_CIPHERTEXT is not standard base64"),
            "{err}"
        );
    }

    /// Sends `sig` (TERM, INT) to the server.
    fn signal(srv: &Srv, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &srv.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits up to `limit` for the server to exit; its status and how long it took.
    fn exit_within(srv: &mut Srv, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = srv.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(start.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn sigterm_answers_the_request_in_progress_and_exits_0() {
        let mut srv = spawn(&["--drain-timeout", "4s", "--workers", "2"]);
        let mut busy = srv.tls();
        busy.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut busy, false).status, 200);
        let mut idle = srv.tls();
        idle.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut idle, false).status, 200);
        // Half a request on the keep-alive connection, then SIGTERM.
        busy.write_all(
            b"POST /private-data HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\nContent-Length: 9\r\n\r\n{\"a\"",
        )
        .unwrap();
        busy.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        signal(&srv, "TERM");
        // The idle keep-alive connection is closed at once.
        assert!(closed(&mut idle));
        assert!(start.elapsed() < Duration::from_secs(2));
        // The request in progress is still answered, with Connection: close.
        std::thread::sleep(Duration::from_millis(200));
        busy.write_all(b":[1]}").unwrap();
        let r = read_response(&mut busy, false);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.head.contains("Connection: close\r\n"), "{}", r.head);
        assert!(closed(&mut busy));
        let (status, took) = exit_within(&mut srv, Duration::from_secs(4));
        assert!(status.success(), "{status:?}");
        assert!(start.elapsed() < Duration::from_secs(4), "{took:?}");
        std::thread::sleep(Duration::from_millis(100));
        let log = srv.log();
        assert!(
            log.iter().any(|l| l.starts_with("POST /private-data 200 ")),
            "{log:?}"
        );
        assert!(
            log.iter().any(|l| l
                .starts_with("server: SIGTERM: stopped accepting and drained; 0 connection(s)")),
            "{log:?}"
        );
    }

    #[test]
    fn sigint_cuts_an_unfinished_request_at_the_drain_deadline() {
        let mut srv = spawn(&["--drain-timeout", "1s"]);
        let mut t = srv.tls();
        t.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n").unwrap();
        t.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        signal(&srv, "INT");
        let (status, took) = exit_within(&mut srv, Duration::from_secs(4));
        assert!(status.success(), "{status:?}");
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(closed(&mut t));
        std::thread::sleep(Duration::from_millis(100));
        let log = srv.log();
        assert!(
            log.iter().any(|l| l.starts_with("server: SIGINT: stopped accepting and drained; 1 connection(s) with a request still in progress closed at the 1000ms deadline")),
            "{log:?}"
        );
    }
}
