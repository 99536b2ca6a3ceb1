//! End-to-end tests: the real binary, real sockets on loopback and in a temporary directory.

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    const T: Duration = Duration::from_secs(20);

    /// A running relay; its stderr lines are collected.
    struct Relay {
        child: Child,
        lines: Arc<Mutex<Vec<String>>>,
        listen: Vec<String>,
    }

    impl Relay {
        fn start(args: &[&str]) -> Relay {
            let mut child = Command::new(env!("CARGO_BIN_EXE_host-relay"))
                .args(["--workers", "2"])
                .args(args)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let err = child.stderr.take().unwrap();
            let l2 = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    l2.lock().unwrap().push(line);
                }
            });
            let mut r = Relay {
                child,
                lines,
                listen: Vec::new(),
            };
            r.wait_line(|l| l.contains("workers ready"));
            for l in r.lines.lock().unwrap().iter() {
                if let Some(rest) = l.split("listening on ").nth(1) {
                    r.listen.push(rest.split(' ').next().unwrap().to_string());
                }
            }
            r
        }

        fn wait_line(&self, pred: impl Fn(&str) -> bool) -> String {
            let t0 = Instant::now();
            loop {
                if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                    return l.clone();
                }
                assert!(t0.elapsed() < T, "no such log line; got:\n{}", self.log());
                thread::sleep(Duration::from_millis(5));
            }
        }

        fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| pred(l))
                .count()
        }

        fn log(&self) -> String {
            self.lines.lock().unwrap().join("\n")
        }

        /// `tcp:127.0.0.1:PORT` of route `i`, as a socket address string.
        fn addr(&self, i: usize) -> String {
            self.listen[i].strip_prefix("tcp:").unwrap().to_string()
        }

        fn metrics(&self) -> String {
            let l = self.wait_line(|l| l.contains("metrics on tcp:"));
            let a = l.rsplit("tcp:").next().unwrap().to_string();
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }

        fn metric(&self, name: &str) -> u64 {
            let m = self.metrics();
            let line = m
                .lines()
                .find(|l| l.starts_with(&format!("{name}{{route=\"0\"")))
                .unwrap_or_else(|| panic!("{name} missing in\n{m}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        }

        fn wait_metric(&self, name: &str, want: u64) {
            let t0 = Instant::now();
            while self.metric(name) != want {
                assert!(
                    t0.elapsed() < T,
                    "{name} stays at {} (want {want})\n{}",
                    self.metric(name),
                    self.log()
                );
                thread::sleep(Duration::from_millis(10));
            }
        }

        fn fds(&self) -> usize {
            std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
                .unwrap()
                .count()
        }

        fn threads(&self) -> usize {
            std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
                .unwrap()
                .count()
        }

        fn term(&self) {
            let ok = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }

        fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
            let t0 = Instant::now();
            loop {
                if let Some(s) = self.child.try_wait().unwrap() {
                    return s;
                }
                assert!(t0.elapsed() < within, "relay still running\n{}", self.log());
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("host-relay-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// Echoes until EOF, then half-closes; generic over the stream type.
    fn echo<S: Read + Write>(mut s: S, shut: impl FnOnce(&S)) {
        let mut buf = vec![0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        shut(&s);
    }

    fn tcp_echo() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || echo(s, |s| drop(s.shutdown(Shutdown::Write))));
            }
        });
        a
    }

    fn unix_echo(name: &str) -> PathBuf {
        let p = tmp(name);
        let l = UnixListener::bind(&p).unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || echo(s, |s| drop(s.shutdown(Shutdown::Write))));
            }
        });
        p
    }

    /// The fake hybrid-vsock endpoint: reads `CONNECT n\n`, answers `OK 1\n`, then echoes.
    fn vsock_uds_echo(name: &str) -> PathBuf {
        let p = tmp(name);
        let l = UnixListener::bind(&p).unwrap();
        thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut line = Vec::new();
                    let mut b = [0u8; 1];
                    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                        line.push(b[0]);
                    }
                    assert_eq!(line, b"CONNECT 5000");
                    s.write_all(b"OK 1\n").unwrap();
                    echo(s, |s| drop(s.shutdown(Shutdown::Write)));
                });
            }
        });
        p
    }

    /// Sends `data` through `s` (writer thread), half-closes, and checks the echo byte for byte.
    fn round_trip(s: TcpStream, data: &[u8]) {
        s.set_read_timeout(Some(T)).unwrap();
        let mut w = s.try_clone().unwrap();
        let d = data.to_vec();
        let writer = thread::spawn(move || {
            w.write_all(&d).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::with_capacity(data.len());
        (&s).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes differ");
    }

    const SIZES: [usize; 4] = [0, 1, 64 * 1024, 8 * 1024 * 1024];

    fn transfer_matrix(target: &str, extra: &[&str]) {
        let route = format!("tcp:127.0.0.1:0={target}");
        let mut args = vec!["--route", &route];
        args.extend_from_slice(extra);
        let r = Relay::start(&args);
        for (i, n) in SIZES.iter().enumerate() {
            let s = TcpStream::connect(r.addr(0)).unwrap();
            round_trip(s, &random(*n, i as u64 + 7));
        }
        // Several at once.
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let a = r.addr(0);
                thread::spawn(move || {
                    round_trip(TcpStream::connect(a).unwrap(), &random(300_000, i))
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        r.wait_line(|l| l.contains("reason=eof"));
    }

    #[test]
    fn tcp_to_tcp_byte_exact() {
        let t = format!("tcp:{}", tcp_echo());
        transfer_matrix(&t, &[]);
    }

    #[test]
    fn tcp_to_unix_byte_exact() {
        let t = format!("unix:{}", unix_echo("echo.sock").display());
        transfer_matrix(&t, &[]);
    }

    #[test]
    fn tcp_to_vsock_uds_byte_exact() {
        let t = format!("vsock-uds:{}:5000", vsock_uds_echo("v.sock").display());
        transfer_matrix(&t, &[]);
    }

    #[test]
    fn copy_fallback_byte_exact_and_logged() {
        let t = format!("vsock-uds:{}:5000", vsock_uds_echo("v2.sock").display());
        let route = format!("tcp:127.0.0.1:0={t}");
        let r = Relay::start(&["--route", &route, "--no-splice"]);
        for (i, n) in SIZES.iter().enumerate() {
            round_trip(
                TcpStream::connect(r.addr(0)).unwrap(),
                &random(*n, i as u64),
            );
        }
        r.wait_line(|l| l.contains("data path copy"));
        r.wait_line(|l| l.contains("path=copy reason=eof"));
        assert_eq!(r.count_lines(|l| l.contains("path=splice")), 0);
    }

    #[test]
    fn unix_listener_to_tcp() {
        let p = tmp("listen.sock");
        let route = format!("unix:{}=tcp:{}", p.display(), tcp_echo());
        let r = Relay::start(&["--route", &route]);
        let mut s = UnixStream::connect(&p).unwrap();
        s.write_all(b"ping").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");
        drop(r);
    }

    #[test]
    fn half_close_client_first() {
        // The target reads to EOF, then answers: client → target EOF must not stop target → client.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{}", l.local_addr().unwrap());
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            thread::sleep(Duration::from_millis(100));
            s.write_all(format!("got {}", got.len()).as_bytes())
                .unwrap();
        });
        let r = Relay::start(&["--route", &route]);
        let mut s = TcpStream::connect(r.addr(0)).unwrap();
        s.write_all(&random(100_000, 1)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "got 100000");
    }

    #[test]
    fn half_close_target_first() {
        // The target says hello and half-closes; the client still sends afterwards.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{}", l.local_addr().unwrap());
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"hello").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let r = Relay::start(&["--route", &route]);
        let mut s = TcpStream::connect(r.addr(0)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello");
        let late = random(200_000, 3);
        s.write_all(&late).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(server.join().unwrap() == late);
        r.wait_line(|l| l.contains("up=200000 down=5") && l.contains("reason=eof"));
    }

    /// Starts a relay on `route` with a 300 ms connect timeout and `retries` retries, connects
    /// one client and returns the relay and how long it took to close that client (the target
    /// being unreachable); the close must come within 5 s.
    fn time_to_refusal(route: &str, retries: &str) -> (Relay, Duration) {
        let r = Relay::start(&[
            "--route",
            route,
            "--connect-timeout",
            "300ms",
            "--connect-retries",
            retries,
        ]);
        let t0 = Instant::now();
        assert!(ends(
            TcpStream::connect(r.addr(0)).unwrap(),
            Duration::from_secs(5)
        ));
        (r, t0.elapsed())
    }

    /// Reads until EOF or error; true if the connection ended within the time limit.
    fn ends(mut s: TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut
                }
            }
        }
    }

    #[test]
    fn target_refusing() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{closed}");
        let r = Relay::start(&[
            "--route",
            &route,
            "--connect-retries",
            "2",
            "--metrics",
            "tcp:127.0.0.1:0",
        ]);
        let t0 = Instant::now();
        assert!(ends(
            TcpStream::connect(r.addr(0)).unwrap(),
            Duration::from_secs(5)
        ));
        // Two retries: 100 ms + 200 ms of back-off.
        assert!(t0.elapsed() >= Duration::from_millis(300));
        r.wait_line(|l| l.contains("reason=connect-failed") && l.contains("refused"));
        assert_eq!(r.metric("host_relay_connect_failures_total"), 1);
        r.wait_metric("host_relay_connections_active", 0);
    }

    #[test]
    fn target_up_late_is_retried() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        let route = format!("tcp:127.0.0.1:0=tcp:{a}");
        let r = Relay::start(&["--route", &route, "--connect-retries", "8"]);
        let s = TcpStream::connect(r.addr(0)).unwrap();
        thread::sleep(Duration::from_millis(250));
        let l = TcpListener::bind(a).unwrap();
        thread::spawn(move || echo(l.accept().unwrap().0, |s| drop(s.shutdown(Shutdown::Write))));
        round_trip(s, b"booted");
    }

    #[test]
    fn target_never_answering() {
        // A hybrid-vsock endpoint that accepts and never replies to CONNECT.
        let p = tmp("silent.sock");
        let l = UnixListener::bind(&p).unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h2 = Arc::clone(&held);
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                h2.lock().unwrap().push(s);
            }
        });
        let route = format!("tcp:127.0.0.1:0=vsock-uds:{}:5000", p.display());
        let (r, took) = time_to_refusal(&route, "0");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{took:?}"
        );
        r.wait_line(|l| l.contains("reason=connect-failed") && l.contains("no reply to CONNECT"));
    }

    #[test]
    fn target_resetting_mid_stream() {
        // The target reads a little and closes with unread data: the kernel sends RST.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{}", l.local_addr().unwrap());
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1000];
            s.read_exact(&mut buf).unwrap();
            thread::sleep(Duration::from_millis(50));
            drop(s);
        });
        let r = Relay::start(&["--route", &route, "--metrics", "tcp:127.0.0.1:0"]);
        let s = TcpStream::connect(r.addr(0)).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let chunk = random(65536, 9);
            for _ in 0..2000 {
                if w.write_all(&chunk).is_err() {
                    return true;
                }
            }
            false
        });
        assert!(ends(s, Duration::from_secs(10)));
        assert!(writer.join().unwrap(), "the client was never cut off");
        r.wait_line(|l| l.starts_with("close ") && l.contains("reason=error(target"));
        r.wait_metric("host_relay_connections_active", 0);
        assert_eq!(r.metric("host_relay_errors_total"), 1);
    }

    #[test]
    fn client_disconnecting_mid_transfer() {
        // The target streams forever; the client reads a bit and goes away.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{}", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let chunk = random(65536, 2);
            let t0 = Instant::now();
            while s.write_all(&chunk).is_ok() && t0.elapsed() < T {}
            tx.send(t0.elapsed()).unwrap();
        });
        let r = Relay::start(&["--route", &route, "--metrics", "tcp:127.0.0.1:0"]);
        let mut s = TcpStream::connect(r.addr(0)).unwrap();
        let mut buf = vec![0u8; 100_000];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"unread").unwrap();
        drop(s);
        let streamed = rx.recv_timeout(T).unwrap();
        assert!(streamed < T, "the target was never told");
        r.wait_metric("host_relay_connections_active", 0);
        r.wait_line(|l| l.starts_with("close ") && l.contains("reason=error(client"));
    }

    #[test]
    fn connection_limit() {
        let route = format!("tcp:127.0.0.1:0=tcp:{},max-conns=2", tcp_echo());
        let r = Relay::start(&["--route", &route, "--metrics", "tcp:127.0.0.1:0"]);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(r.addr(0)).unwrap();
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            held.push(s);
        }
        assert!(ends(
            TcpStream::connect(r.addr(0)).unwrap(),
            Duration::from_secs(5)
        ));
        r.wait_metric("host_relay_connections_refused_total", 1);
        assert_eq!(r.metric("host_relay_connections_active"), 2);
        // The open ones still work, and a slot frees up when one closes.
        round_trip(held.pop().unwrap(), b"still fine");
        r.wait_metric("host_relay_connections_active", 1);
        round_trip(TcpStream::connect(r.addr(0)).unwrap(), b"next");
        let m = r.metrics();
        assert!(m.contains("host_relay_connections_total{route=\"0\""));
        assert!(m.contains("# TYPE host_relay_bytes_up_total counter"));
    }

    #[test]
    fn proxy_v2_header_reaches_the_target() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = l.local_addr().unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{t},proxy-v2");
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut h = [0u8; 28 + 5];
            s.read_exact(&mut h).unwrap();
            h
        });
        let r = Relay::start(&["--route", &route]);
        let mut s = TcpStream::connect(r.addr(0)).unwrap();
        s.write_all(b"hello").unwrap();
        let h = server.join().unwrap();
        let me = s.local_addr().unwrap();
        let relay_port: u16 = r.addr(0).rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&h[12..16], &[0x21, 0x11, 0x00, 0x0C]);
        assert_eq!(&h[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
        assert_eq!(&h[24..26], &me.port().to_be_bytes());
        assert_eq!(&h[26..28], &relay_port.to_be_bytes());
        assert_eq!(&h[28..], b"hello");
    }

    #[test]
    fn sigterm_drains_open_connections() {
        let route = format!("tcp:127.0.0.1:0=tcp:{}", tcp_echo());
        let mut r = Relay::start(&["--route", &route, "--drain-timeout", "10s"]);
        let addr = r.addr(0);
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"a").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        r.term();
        r.wait_line(|l| l.contains("no longer accepting"));
        thread::sleep(Duration::from_millis(200));
        // New clients are refused, the open connection keeps working.
        assert!(TcpStream::connect(&addr).is_err());
        assert!(r.child.try_wait().unwrap().is_none());
        round_trip(s, &random(1_000_000, 5));
        let st = r.wait_exit(Duration::from_secs(5));
        assert!(st.success(), "{st:?}");
    }

    #[test]
    fn sigterm_drain_is_bounded() {
        let route = format!("tcp:127.0.0.1:0=tcp:{}", tcp_echo());
        let mut r = Relay::start(&["--route", &route, "--drain-timeout", "500ms"]);
        let s = TcpStream::connect(r.addr(0)).unwrap();
        (&s).write_all(b"a").unwrap();
        let mut b = [0u8; 1];
        (&s).read_exact(&mut b).unwrap();
        let t0 = Instant::now();
        r.term();
        let st = r.wait_exit(Duration::from_secs(5));
        assert!(st.success(), "{st:?}");
        assert!(t0.elapsed() >= Duration::from_millis(450));
        assert!(ends(s, Duration::from_secs(2)));
        r.wait_line(|l| l.contains("reason=drain-timeout"));
    }

    #[test]
    fn a_flood_of_connects_to_a_booting_target_adds_no_thread() {
        // Nothing listens at the target yet (an enclave still booting): every client waits
        // through its retries. Before, each one had a connector thread of its own.
        let target = tmp("booting.sock");
        let route = format!("tcp:127.0.0.1:0=unix:{}", target.display());
        let r = Relay::start(&[
            "--route",
            &route,
            "--connect-retries",
            "8",
            "--metrics",
            "tcp:127.0.0.1:0",
        ]);
        let before = r.threads();
        let mut clients = Vec::new();
        let mut most = before;
        for _ in 0..2000 {
            clients.push(TcpStream::connect(r.addr(0)).unwrap());
            if clients.len() % 100 == 0 {
                most = most.max(r.threads());
            }
        }
        r.wait_metric("host_relay_connections_active", 2000);
        most = most.max(r.threads());
        // main, 2 workers, metrics: and nothing per client.
        assert_eq!(before, 4, "threads at start");
        assert_eq!(most, before, "threads during a 2,000-connect flood");
        // The target comes up: every waiting client is relayed to it (it says "up", closes).
        let l = UnixListener::bind(&target).unwrap();
        thread::spawn(move || {
            for t in l.incoming() {
                let _ = t.unwrap().write_all(b"up");
            }
        });
        for mut c in clients {
            c.set_read_timeout(Some(T)).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"up");
        }
        r.wait_metric("host_relay_connections_active", 0);
        assert_eq!(r.threads(), before);
    }

    #[test]
    fn a_client_that_outlives_its_target_is_closed_after_the_linger() {
        let echo_addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap().to_string();
            thread::spawn(move || {
                // Says one thing and closes, as a server ending a connection does.
                for s in l.incoming() {
                    let mut s = s.unwrap();
                    s.write_all(b"bye").unwrap();
                }
            });
            a
        };
        let route = format!("tcp:127.0.0.1:0=tcp:{echo_addr}");
        let r = Relay::start(&[
            "--route",
            &route,
            "--linger",
            "1s",
            "--metrics",
            "tcp:127.0.0.1:0",
        ]);
        // A client that never closes its side.
        let mut c = TcpStream::connect(r.addr(0)).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap(); // the target's bytes, then EOF
        assert_eq!(got, b"bye");
        let t0 = Instant::now();
        r.wait_line(|l| l.contains("reason=target-closed-client-lingered"));
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert_eq!(r.metric("host_relay_connections_active"), 0);
        // A client that half-closes first keeps its connection while the answer comes.
        let mut c2 = TcpStream::connect(r.addr(0)).unwrap();
        c2.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c2.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
        r.wait_line(|l| l.contains("reason=eof"));
    }

    #[test]
    fn idle_timeout() {
        let route = format!("tcp:127.0.0.1:0=tcp:{}", tcp_echo());
        let r = Relay::start(&["--route", &route, "--idle-timeout", "300ms"]);
        let s = TcpStream::connect(r.addr(0)).unwrap();
        let t0 = Instant::now();
        assert!(ends(s, Duration::from_secs(5)));
        assert!(t0.elapsed() >= Duration::from_millis(250));
        r.wait_line(|l| l.contains("reason=idle-timeout"));
    }

    #[test]
    fn no_fd_or_pipe_leak_over_1000_connections() {
        let route = format!("tcp:127.0.0.1:0=tcp:{}", tcp_echo());
        let r = Relay::start(&["--route", &route, "--metrics", "tcp:127.0.0.1:0"]);
        let once = |i: u64| round_trip(TcpStream::connect(r.addr(0)).unwrap(), &random(3000, i));
        // Warm up: the workers' pipe pools fill (bounded), then must not grow.
        for i in 0..50 {
            once(i);
        }
        r.wait_metric("host_relay_connections_active", 0);
        let before = r.fds();
        for i in 0..1000 {
            once(i);
        }
        r.wait_metric("host_relay_connections_active", 0);
        let after = r.fds();
        // The workers' pools may keep a few more empty pipes (two fds each) if connections
        // overlapped more than during the warm-up; a leak would show as hundreds.
        assert!(
            after >= before && after <= before + 8,
            "fds before {before}, after 1000 connections {after}"
        );
        // Also some that end badly: reset by the client with bytes in flight (their pipes are
        // closed, not pooled).
        for _ in 0..50 {
            let s = TcpStream::connect(r.addr(0)).unwrap();
            (&s).write_all(&random(100_000, 1)).unwrap();
            drop(s);
        }
        r.wait_metric("host_relay_connections_active", 0);
        let after_bad = r.fds();
        assert!(
            after_bad <= after,
            "fds before {after}, after resets {after_bad}"
        );
        // The metric drops before the log reader thread has seen the last lines: wait for them.
        let t0 = Instant::now();
        while r.count_lines(|l| l.starts_with("close ")) < 1100 && t0.elapsed() < T {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(r.count_lines(|l| l.starts_with("close ")), 1100);
    }

    fn rss_kib(pid: u32) -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let l = st.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn idle_connections_are_cheap() {
        // 4000 idle connections (the open-file limit here is 20,000 for the test process and
        // the relay each); the growth of the relay's RSS per connection is what is checked.
        const N: usize = 4000;
        use std::os::fd::AsRawFd;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        // std listens with a backlog of 128; a burst of 4000 connects would overflow it.
        // SAFETY: listen(2) on a socket we own; no pointers.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 4096) }, 0);
        l.set_nonblocking(true).unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{}", l.local_addr().unwrap());
        let held = thread::spawn(move || {
            let mut v = Vec::new();
            let t0 = Instant::now();
            while v.len() < N && t0.elapsed() < T {
                match l.accept() {
                    Ok((s, _)) => v.push(s),
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
            v
        });
        let r = Relay::start(&["--route", &route, "--metrics", "tcp:127.0.0.1:0"]);
        let before = rss_kib(r.child.id());
        let clients: Vec<TcpStream> = (0..N)
            .map(|_| TcpStream::connect(r.addr(0)).unwrap())
            .collect();
        let targets = held.join().unwrap();
        assert_eq!(
            targets.len(),
            N,
            "the target saw too few connections\n{}",
            r.log()
        );
        r.wait_metric("host_relay_connections_active", N as u64);
        let t0 = Instant::now();
        while r.count_lines(|l| l.starts_with("open ")) < N {
            assert!(t0.elapsed() < T, "not all connections opened");
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(200));
        let after = rss_kib(r.child.id());
        let per_conn = (after.saturating_sub(before)) * 1024 / N as u64;
        eprintln!("relay RSS {before} KiB -> {after} KiB with {N} idle connections: {per_conn} bytes each");
        assert!(per_conn < 6 * 1024, "{per_conn} bytes per idle connection");
        drop((clients, targets));
        r.wait_metric("host_relay_connections_active", 0);
    }

    #[test]
    fn tcp_target_never_answering() {
        // A listener with a backlog of 0 and one connection waiting: the kernel drops further
        // SYNs, so connecting to it hangs until the relay's connect timeout.
        use std::os::fd::AsRawFd;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen(2) on a socket we own; no pointers.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let a = l.local_addr().unwrap();
        let _queued = TcpStream::connect(a).unwrap();
        let route = format!("tcp:127.0.0.1:0=tcp:{a}");
        let (r, took) = time_to_refusal(&route, "1");
        // Two attempts of 300 ms and a 100 ms pause.
        assert!(
            took >= Duration::from_millis(650) && took < Duration::from_secs(3),
            "{took:?}"
        );
        r.wait_line(|l| l.contains("reason=connect-failed") && l.contains("timed out"));
        drop(l);
    }

    #[test]
    fn vsock_target_unreachable_is_a_clean_failure() {
        // No enclave here: whether AF_VSOCK has no transport (timeout), refuses or is missing,
        // the client is closed within the connect budget and the failure is logged.
        let (r, took) = time_to_refusal("tcp:127.0.0.1:0=vsock:1:9", "0");
        assert!(took < Duration::from_secs(2));
        r.wait_line(|l| l.contains("reason=connect-failed(vsock:1:9"));
    }
}
