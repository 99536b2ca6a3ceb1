//! Front mode end to end, without the emulator: the real server binary with `--upstream` in
//! front of an application the test runs (a small HTTP/1.1 server on a thread per connection,
//! which records every request head it parses), reached over TLS.
//!
//! - 100 MiB up and 100 MiB down through a 16 MiB memory budget, byte for byte, while the
//!   server's peak RSS stays far below the body size (nothing is buffered whole);
//! - an application that refuses, resets, stalls or answers garbage: 502 or 504, and the
//!   server keeps serving;
//! - request smuggling shapes never reach the application as two requests;
//! - the client address from a PROXY v2 header in `Forwarded`/`X-Forwarded-For`; the
//!   attestation endpoint answered by the front itself.

mod common;

#[cfg(test)]
mod tests {

    use crate::common::{self, read_response, spawn, Srv};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    /// How the test application behaves.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// Answers properly (routes below).
        Good,
        /// Accepts, reads the request, and resets the connection.
        Reset,
        /// Accepts, reads the request, and never answers.
        Stall,
        /// Answers with bytes that are not HTTP.
        Garbage,
    }

    /// The test application: its port and the request heads it has seen.
    struct App {
        port: u16,
        heads: Arc<Mutex<Vec<String>>>,
        accepted: Arc<std::sync::atomic::AtomicUsize>,
    }

    /// The byte at offset `i` of a generated body.
    fn pattern(i: u64) -> u8 {
        (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0]
    }

    impl App {
        fn start(mode: Mode) -> App {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let heads = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&heads);
            let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let count = Arc::clone(&accepted);
            thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(s) = s else { break };
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let seen = Arc::clone(&seen);
                    thread::spawn(move || serve(s, mode, &seen));
                }
            });
            App {
                port,
                heads,
                accepted,
            }
        }

        fn upstream(&self) -> String {
            format!("tcp:127.0.0.1:{}", self.port)
        }

        fn heads(&self) -> Vec<String> {
            self.heads.lock().unwrap().clone()
        }
    }

    /// One application connection: requests until EOF.
    fn serve(s: TcpStream, mode: Mode, seen: &Mutex<Vec<String>>) {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::with_capacity(64 * 1024, s);
        loop {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            seen.lock().unwrap().push(head.clone());
            match mode {
                Mode::Good => {}
                Mode::Reset => {
                    // SO_LINGER 0: close sends a reset.
                    let fd = std::os::fd::AsFd::as_fd(&w);
                    let _ = nix::sys::socket::setsockopt(
                        &fd,
                        nix::sys::socket::sockopt::Linger,
                        &nix::libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        },
                    );
                    return;
                }
                Mode::Stall => {
                    thread::sleep(Duration::from_secs(30));
                    return;
                }
                Mode::Garbage => {
                    let _ = w.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
                    thread::sleep(Duration::from_millis(500));
                    return;
                }
            }
            let lower = head.to_ascii_lowercase();
            let header = |name: &str| {
                lower
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            };
            // The body: counted and hashed as it arrives.
            let mut hasher = Vec::new();
            let mut len = 0u64;
            let mut ok = true;
            let mut take = |r: &mut BufReader<TcpStream>, mut n: u64| -> bool {
                let mut buf = vec![0u8; 64 * 1024];
                while n > 0 {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    if r.read_exact(&mut buf[..k]).is_err() {
                        return false;
                    }
                    for (j, &b) in buf[..k].iter().enumerate() {
                        if b != pattern(len + j as u64) {
                            hasher.push(len + j as u64);
                        }
                    }
                    len += k as u64;
                    n -= k as u64;
                }
                true
            };
            if let Some(cl) = header("content-length") {
                ok = take(&mut r, cl.trim().parse().unwrap());
            } else if header("transfer-encoding").is_some() {
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let size = u64::from_str_radix(line.trim_end(), 16).unwrap();
                    if size == 0 {
                        let mut end = String::new();
                        let _ = r.read_line(&mut end);
                        break;
                    }
                    ok &= take(&mut r, size);
                    let mut crlf = [0u8; 2];
                    let _ = r.read_exact(&mut crlf);
                }
            }
            if !ok {
                return;
            }
            let target = head.split(' ').nth(1).unwrap_or("").to_owned();
            let reply: Vec<u8> = if let Some(n) = target.strip_prefix("/download?n=") {
                let n: u64 = n.parse().unwrap();
                let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                let mut i = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                while i < n {
                    let k = usize::try_from(n - i).unwrap_or(usize::MAX).min(buf.len());
                    for (j, b) in buf[..k].iter_mut().enumerate() {
                        *b = pattern(i + j as u64);
                    }
                    if w.write_all(&buf[..k]).is_err() {
                        return;
                    }
                    i += k as u64;
                }
                continue;
            } else if target == "/head" {
                head.clone().into_bytes()
            } else {
                format!("received {len} bytes, {} wrong", hasher.len()).into_bytes()
            };
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                reply.len()
            );
            let _ = w.write_all(&reply);
        }
    }

    fn front(app: &App, extra: &[&str]) -> Srv {
        let mut args = vec!["--upstream", &*Box::leak(app.upstream().into_boxed_str())];
        args.extend_from_slice(extra);
        spawn(&args)
    }

    /// Peak resident memory of a process, in bytes.
    fn peak_rss(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024
            })
            .unwrap()
    }

    #[test]
    fn a_hundred_mebibytes_each_way_within_the_memory_budget() {
        let app = App::start(Mode::Good);
        let srv = front(&app, &["--memory-budget", "16M", "--workers", "1"]);
        let total: u64 = 100 << 20;
        let mut tls = srv.tls();

        // Up: chunked from the client (re-encoded by the front), then Content-Length.
        write!(
            tls,
            "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n"
        )
        .unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut i = 0u64;
        while i < total {
            let k = usize::try_from(total - i)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = pattern(i + j as u64);
            }
            tls.write_all(&buf[..k]).unwrap();
            i += k as u64;
        }
        let r = read_response(&mut tls, false);
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("received {total} bytes, 0 wrong")
        );

        // Down, on the same connection.
        write!(tls, "GET /download?n={total} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.contains(&format!("Content-Length: {total}\r\n")),
            "{head}"
        );
        let mut got = 0u64;
        let mut wrong = 0u64;
        while got < total {
            let k = usize::try_from(total - got)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = tls.read(&mut buf[..k]).unwrap();
            assert!(n > 0, "cut at {got}");
            for (j, &b) in buf[..n].iter().enumerate() {
                wrong += u64::from(b != pattern(got + j as u64));
            }
            got += n as u64;
        }
        assert_eq!(wrong, 0);
        let peak = peak_rss(srv.child.id());
        eprintln!(
            "peak RSS of the front after 200 MiB through it: {} MiB",
            peak >> 20
        );
        assert!(
            peak < 64 << 20,
            "the server's peak RSS was {} MiB",
            peak >> 20
        );
        assert_eq!(app.heads().len(), 2);
    }

    #[test]
    fn a_chunked_upload_is_one_request_upstream() {
        let app = App::start(Mode::Good);
        let srv = front(&app, &[]);
        let mut tls = srv.tls();
        let mut body = Vec::new();
        let mut at = 0u64;
        for size in [1usize, 1000, 70_000, 3] {
            let data: Vec<u8> = (0..size as u64).map(|j| pattern(at + j)).collect();
            write!(body, "{size:x}\r\n").unwrap();
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
            at += size as u64;
        }
        body.extend_from_slice(b"0\r\n\r\n");
        write!(
            tls,
            "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        tls.write_all(&body).unwrap();
        let r = read_response(&mut tls, false);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("received {at} bytes, 0 wrong")
        );
        let heads = app.heads();
        assert_eq!(heads.len(), 1);
        assert!(
            heads[0].contains("Transfer-Encoding: chunked\r\n"),
            "{}",
            heads[0]
        );
    }

    #[test]
    fn smuggling_shapes_never_reach_the_application_as_two_requests() {
        let app = App::start(Mode::Good);
        let srv = front(&app, &[]);
        for attack in [
            // CL.TE and TE.CL: refused outright.
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            // Two lengths, an obfuscated coding, a bare LF.
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            // A chunk size that is not hex, after a valid head: the request dies mid-body.
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut tls = srv.tls();
            tls.write_all(attack).unwrap();
            let r = read_response(&mut tls, false);
            assert!(
                (400..500).contains(&r.status) || r.status == 501,
                "{}: {}",
                String::from_utf8_lossy(attack),
                r.head
            );
            assert!(common::closed(&mut tls));
        }
        thread::sleep(Duration::from_millis(200));
        let heads = app.heads();
        assert!(heads.iter().all(|h| !h.contains("/smuggled")), "{heads:?}");
        assert!(
            heads.len() <= 1,
            "at most the one head whose body was malformed: {heads:?}"
        );
    }

    #[test]
    fn a_failing_application_gets_502_or_504_and_the_server_lives_on() {
        // Refusing: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let up = format!("tcp:127.0.0.1:{port}");
        let srv = spawn(&["--upstream", &up]);
        let mut tls = srv.tls();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut tls, false);
        assert_eq!(r.status, 502, "{}", r.head);
        assert!(String::from_utf8_lossy(&r.body).contains("refused the connection"));

        for (mode, status, why) in [
            (Mode::Reset, 502, "reset the connection"),
            (Mode::Garbage, 502, "not HTTP/1.x"),
            (Mode::Stall, 504, "did not answer in time"),
        ] {
            let app = App::start(mode);
            let srv = front(&app, &["--upstream-timeout", "1s"]);
            let mut tls = srv.tls();
            tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let r = read_response(&mut tls, false);
            assert_eq!(r.status, status, "{}", r.head);
            assert!(
                String::from_utf8_lossy(&r.body).contains(why),
                "{:?}",
                r.body
            );
            // The server still serves: the attestation endpoint, then the application again.
            let mut tls = srv.tls();
            tls.write_all(
                b"GET /.well-known/enclave-https/attestation?nonce=00 HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            let r = read_response(&mut tls, false);
            assert_eq!(r.status, 503, "no NSM in this test: {}", r.head);
        }
    }

    #[test]
    fn the_application_sees_the_client_from_proxy_v2_and_no_hop_by_hop_headers() {
        let app = App::start(Mode::Good);
        let srv = front(&app, &["--proxy-protocol"]);
        let mut tcp = srv.tcp();
        tcp.write_all(&contract::proxy_v2::header(Some((
            "198.51.100.23:50000".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
        ))))
        .unwrap();
        let mut tls = rustls::StreamOwned::new(common::client(&srv.cert_sha256), tcp);
        tls.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nUpgrade: h2c\r\n\r\n").unwrap();
        let r = read_response(&mut tls, false);
        let seen = String::from_utf8(r.body).unwrap();
        assert!(
            seen.contains("Forwarded: for=\"198.51.100.23:50000\";proto=https\r\n"),
            "{seen}"
        );
        assert!(
            seen.contains("X-Forwarded-For: 198.51.100.23\r\n"),
            "{seen}"
        );
        for gone in ["6.6.6.6", "X-Secret-Hop", "Upgrade", "Connection"] {
            assert!(
                !seen.contains(gone),
                "{gone} reached the application: {seen}"
            );
        }

        // Without the PROXY header the connection is refused before TLS.
        let mut tls = srv.tls();
        assert!(
            tls.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
                .and_then(|_| tls.flush())
                .is_err()
                || common::closed(&mut tls)
        );

        // And a server without --proxy-protocol refuses a PROXY header (it is not TLS).
        let srv = front(&app, &[]);
        let mut tcp = srv.tcp();
        tcp.write_all(&contract::proxy_v2::header(None)).unwrap();
        let mut tls = rustls::StreamOwned::new(common::client(&srv.cert_sha256), tcp);
        assert!(
            tls.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
                .and_then(|_| tls.flush())
                .is_err()
                || common::closed(&mut tls)
        );
    }

    #[test]
    fn keep_alive_reuses_the_application_connection() {
        let app = App::start(Mode::Good);
        let srv = front(&app, &["--workers", "1"]);
        let mut tls = srv.tls();
        for _ in 0..20 {
            tls.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let r = read_response(&mut tls, false);
            assert_eq!(
                r.status,
                200,
                "{} {}",
                r.head,
                String::from_utf8_lossy(&r.body)
            );
        }
        assert_eq!(app.heads().len(), 20);
        // Twenty requests, one application connection: the client kept it between them.
        let accepted = || app.accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(accepted(), 1);
        // A second client meanwhile gets one of its own (the first still holds its own).
        let mut other = srv.tls();
        other
            .write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut other, false).status, 200);
        assert_eq!(accepted(), 2);
        for _ in 0..5 {
            for t in [&mut tls, &mut other] {
                t.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                assert_eq!(read_response(t, false).status, 200);
            }
        }
        assert_eq!(accepted(), 2, "each kept its own");
    }

    #[test]
    fn the_application_has_a_local_attestation_api_on_loopback() {
        let app = App::start(Mode::Good);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("tcp:127.0.0.1:{port}");
        let _srv = front(&app, &["--local-attestation", &addr]);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /attestation?nonce=01&user_data=2a HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false);
        // No NSM outside an enclave: the API is there and says so.
        assert_eq!(r.status, 503, "{}", r.head);
        assert!(String::from_utf8_lossy(&r.body).contains("no NSM"));
        s.write_all(b"GET /attestation?colour=red HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, false).status, 400);
    }

    /// Under an init that is not ours (nitro-cli's runs only `/cmd`), the front starts the
    /// processes the image lists itself: here Debian's busybox httpd as the application; and
    /// when it ends, the front exits, which ends the enclave.
    #[test]
    fn without_our_init_the_front_starts_the_application_itself() {
        let busybox = "/bin/busybox";
        assert!(
            std::path::Path::new(busybox).is_file(),
            "this test needs Debian's busybox-static (`cargo xtask setup`)"
        );
        let dir = std::env::temp_dir().join(format!("front-processes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(
            dir.join("www/page.txt"),
            "served by a process the front started\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = dir.join("processes");
        std::fs::write(
            &file,
            format!(
                "process app\narg {busybox}\narg httpd\narg -f\narg -p\narg 127.0.0.1:{port}\narg -h\narg {}\nenv PATH=/bin\n",
                dir.join("www").display()
            ),
        )
        .unwrap();
        let up = format!("tcp:127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
        common::server_args(&mut cmd);
        cmd.args(["--upstream", &up, "--processes"])
            .arg(&file)
            .env_remove("ENCLAVE_HTTPS_INIT");
        let mut srv = common::start_exact(cmd);
        let mut body = String::new();
        for _ in 0..50 {
            let mut tls = srv.tls();
            tls.write_all(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let r = read_response(&mut tls, false);
            if r.status == 200 {
                body = String::from_utf8(r.body).unwrap();
                break;
            }
            thread::sleep(Duration::from_millis(100)); // httpd still starting: 502
        }
        assert_eq!(body, "served by a process the front started\n");
        // The application ends: so does the front.
        // Its child, found by parent pid (the start line came before the startup line).
        let server_pid = srv.child.id().to_string();
        let pid: i32 = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().nth(1))
                        == Some(server_pid.as_str())
                })
            })
            .expect("the application process");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = srv.child.wait().unwrap();
        assert_eq!(status.code(), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();

        // Under our init (ENCLAVE_HTTPS_INIT set) it leaves them alone.
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
        common::server_args(&mut cmd);
        cmd.args(["--upstream", &up, "--processes", "/nonexistent/processes"])
            .env("ENCLAVE_HTTPS_INIT", "1");
        let _srv = common::start_exact(cmd);
    }
}
