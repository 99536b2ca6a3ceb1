//! Floods: the real server binary in a memory cgroup of 256 MiB (the enclave size the README
//! recommends) against 1,000 hostile connections of each kind: unfinished Content-Length
//! bodies, unfinished chunks, half a ClientHello, readers that never read, readers taking a
//! byte a second. Each time the server must stay alive (no OOM kill), its peak RSS must stay
//! within its memory budget (above what it used before the flood), and a well-behaved
//! keep-alive client must keep getting 200s throughout.
//!
//! The cgroup (v1 or v2, whichever the machine has) is made by the test under the test's own.
//! Where cgroups are not writable the tests say so loudly and pass, except when
//! `ENCLAVE_HTTPS_REQUIRE_CGROUP` is set (`cargo xtask test` sets it: CI never skips them).

mod common;

#[cfg(test)]
mod floods {
    use super::common::*;
    use rustls::{ClientConnection, StreamOwned};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const LIMIT: u64 = 256 << 20;
    const HOSTILE: usize = 1000;
    /// One flood test at a time: they share the machine's two cores and its memory.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// A memory cgroup made for one test, removed on drop.
    struct Cgroup {
        dir: PathBuf,
        v2: bool,
    }

    impl Cgroup {
        /// A new cgroup with a memory limit, or why there cannot be one here.
        fn create(limit: u64) -> Result<Cgroup, String> {
            use server::memory::{cgroup_dir, parse_cgroup, parse_mountinfo};
            let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
            let (v1, v2) = parse_cgroup(&read("/proc/self/cgroup")?).map_err(|e| e.to_string())?;
            let mounts =
                parse_mountinfo(&read("/proc/self/mountinfo")?).map_err(|e| e.to_string())?;
            let name = format!("enclave-https-floods-{}", std::process::id());
            let mut why = String::from("no memory cgroup mounted");
            for m in &mounts {
                let (path, v2m) = match (m.v2, &v1, &v2) {
                    (false, Some(p), _) => (p, false),
                    (true, _, Some(p)) => (p, true),
                    _ => continue,
                };
                let Some(parent) = cgroup_dir(m, path) else {
                    continue;
                };
                let dir = parent.join(&name);
                if let Err(e) = std::fs::create_dir(&dir) {
                    why = format!("creating {}: {e}", dir.display());
                    continue;
                }
                let (file, value) = if v2m {
                    ("memory.max", limit.to_string())
                } else {
                    ("memory.limit_in_bytes", limit.to_string())
                };
                let cg = Cgroup { dir, v2: v2m };
                match std::fs::write(cg.dir.join(file), value) {
                    Ok(()) => return Ok(cg),
                    Err(e) => why = format!("{}: {e}", cg.dir.join(file).display()),
                }
            }
            Err(why)
        }

        fn procs(&self) -> PathBuf {
            self.dir.join("cgroup.procs")
        }

        /// OOM kills in this cgroup so far.
        fn oom_kills(&self) -> u64 {
            let file = if self.v2 {
                "memory.events"
            } else {
                "memory.oom_control"
            };
            std::fs::read_to_string(self.dir.join(file))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        }
    }

    impl Drop for Cgroup {
        fn drop(&mut self) {
            for _ in 0..100 {
                if std::fs::remove_dir(&self.dir).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The cgroup, or `None` after saying loudly why these tests cannot run here.
    fn cgroup() -> Option<Cgroup> {
        match Cgroup::create(LIMIT) {
            Ok(cg) => Some(cg),
            Err(why) => {
                if std::env::var_os("ENCLAVE_HTTPS_REQUIRE_CGROUP").is_some() {
                    panic!("the flood tests need a writable memory cgroup: {why}");
                }
                eprintln!(
                    "\n*** SKIPPED: the flood tests need a writable memory cgroup ({why}) ***\n"
                );
                None
            }
        }
    }

    /// The server in `cg`: a shell puts itself in the cgroup, then execs the server.
    fn server_in(cg: &Cgroup, extra: &[&str]) -> Srv {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(cg.procs())
            .arg(env!("CARGO_BIN_EXE_server"));
        server_args(&mut cmd);
        cmd.args(["--workers", "2"]).args(extra);
        start_exact(cmd)
    }

    fn status_kib(pid: u32, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The budget the startup line announces, in bytes.
    fn budget_of(srv: &Srv) -> u64 {
        let mib: u64 = srv
            .startup
            .split("memory budget ")
            .nth(1)
            .and_then(|s| s.split(" MiB").next())
            .and_then(|s| s.parse().ok())
            .expect("the budget in the startup line");
        mib << 20
    }

    /// A well-behaved keep-alive client asking for /health every 50 ms until told to stop; the
    /// statuses it got.
    /// Where a flood goes: a local server, or a remote one (the enclave in the emulator,
    /// through host-relay), whose certificate is pinned when known.
    #[derive(Debug, Clone)]
    struct Target {
        addr: std::net::SocketAddrV4,
        cert_sha256: Option<String>,
    }

    impl Target {
        fn of(srv: &Srv) -> Target {
            Target {
                addr: std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, srv.port),
                cert_sha256: Some(srv.cert_sha256.clone()),
            }
        }

        fn client(&self) -> ClientConnection {
            match &self.cert_sha256 {
                Some(sha) => client(sha),
                None => client_any(),
            }
        }

        fn tls(&self) -> StreamOwned<ClientConnection, TcpStream> {
            let tcp = TcpStream::connect(self.addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            StreamOwned::new(self.client(), tcp)
        }
    }

    fn good_client(srv: &Target, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u16>> {
        let mut t = srv.tls();
        t.write_all(get("/health").as_bytes()).unwrap();
        assert_eq!(read_response(&mut t, false).status, 200);
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A failure is recorded as status 0 and ends the client.
                let asked = t.write_all(get("/health").as_bytes()).is_ok();
                let status = if asked { try_status(&mut t) } else { 0 };
                statuses.push(status);
                if status == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            statuses
        })
    }

    /// The status of one response (its body read and dropped), 0 if the connection failed.
    fn try_status(s: &mut impl Read) -> u16 {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return 0,
            }
        }
        let head = String::from_utf8_lossy(&head);
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        if s.read_exact(&mut body).is_err() {
            return 0;
        }
        if std::env::var_os("FLOODS_DEBUG").is_some() {
            eprintln!("{}", String::from_utf8_lossy(&body));
        }
        head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// A TLS connection with its handshake done, or `None` if the server refused it.
    fn tls_connect(srv: &Target) -> Option<StreamOwned<ClientConnection, TcpStream>> {
        let mut t = srv.tls();
        t.sock
            .set_write_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        t.sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        t.conn.complete_io(&mut t.sock).ok()?;
        Some(t)
    }

    /// Like [`tls_connect`], from a socket whose receive buffer is 4 KiB (set before connecting,
    /// so the window stays small): a client that does not read makes the kernel hold little of
    /// what the server sends, and the server the rest.
    fn tls_connect_small_window(srv: &Target) -> Option<StreamOwned<ClientConnection, TcpStream>> {
        use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .ok()?;
        socket::setsockopt(&fd, sockopt::RcvBuf, &4096).ok()?;
        let [a, b, c, d] = srv.addr.ip().octets();
        let addr = SockaddrIn::new(a, b, c, d, srv.addr.port());
        socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).ok()?;
        let tcp = TcpStream::from(fd);
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        tcp.set_write_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        let mut t = StreamOwned::new(srv.client(), tcp);
        t.conn.complete_io(&mut t.sock).ok()?;
        Some(t)
    }

    /// Writes as much of `data` as the server takes within the write timeout.
    fn push(t: &mut impl Write, data: &[u8]) {
        for chunk in data.chunks(16 * 1024) {
            if t.write_all(chunk).is_err() {
                return;
            }
        }
        let _ = t.flush();
    }

    /// What a flood did to the server.
    struct Outcome {
        baseline_kib: u64,
        peak_kib: u64,
        budget: u64,
        statuses: Vec<u16>,
        alive: bool,
        oom_kills: u64,
        /// Connections the server had open at the end of the flood (its /health).
        open_at_end: usize,
    }

    impl Outcome {
        fn check(&self, kind: &str) {
            eprintln!(
                "{kind}: RSS {} KiB before, peak {} KiB, budget {} KiB; the good client got {} answers; {} connections open at the end",
                self.baseline_kib,
                self.peak_kib,
                self.budget >> 10,
                self.statuses.len(),
                self.open_at_end,
            );
            assert!(self.alive, "{kind}: the server died");
            assert_eq!(self.oom_kills, 0, "{kind}: OOM kill in the cgroup");
            assert!(
                self.peak_kib - self.baseline_kib <= self.budget >> 10,
                "{kind}: peak RSS {} KiB over the {} KiB budget (baseline {} KiB)",
                self.peak_kib,
                self.budget >> 10,
                self.baseline_kib
            );
            assert!(self.statuses.len() >= 5, "{kind}: {:?}", self.statuses);
            assert!(
                self.statuses.iter().all(|&s| s == 200),
                "{kind}: the good client got {:?}",
                self.statuses
            );
        }
    }

    /// The `connections` figure of /health, over the good client's connection.
    fn open_connections(t: &mut impl ReadWrite) -> usize {
        t.write_all(get("/health").as_bytes()).unwrap();
        let r = read_response(t, false);
        let body = String::from_utf8_lossy(&r.body);
        body.split("\"connections\":")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }

    /// The `memory.used` figure of /health.
    fn used_memory(t: &mut impl ReadWrite) -> usize {
        t.write_all(get("/health").as_bytes()).unwrap();
        let r = read_response(t, false);
        let body = String::from_utf8_lossy(&r.body);
        body.split("\"used\":")
            .nth(1)
            .and_then(|s| s.split(['}', ',']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }

    trait ReadWrite: Read + Write {}
    impl<T: Read + Write> ReadWrite for T {}

    /// Runs a flood: `open` makes one hostile connection (kept until the end of the flood);
    /// `during` is given them every 100 ms for `hold` after the last one is open.
    fn flood<C>(
        extra: &[&str],
        hold: Duration,
        open: impl Fn(&Target) -> Option<C>,
        mut during: impl FnMut(&mut Vec<C>),
    ) -> Option<Outcome> {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let cg = cgroup()?;
        let mut srv = server_in(&cg, extra);
        let pid = srv.child.id();
        let budget = budget_of(&srv);
        let target = Target::of(&srv);
        let mut observer = tls_connect(&target).expect("the observer's connection");
        observer.sock.set_write_timeout(None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let good = good_client(&target, Arc::clone(&stop));
        let baseline_kib = status_kib(pid, "VmRSS:");
        let mut hostile = Vec::with_capacity(HOSTILE);
        for _ in 0..HOSTILE {
            if let Some(c) = open(&target) {
                hostile.push(c);
            }
        }
        let until = Instant::now() + hold;
        while Instant::now() < until {
            during(&mut hostile);
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        let statuses = good.join().unwrap_or_default();
        let alive = srv.child.try_wait().ok().flatten().is_none();
        let outcome = Outcome {
            baseline_kib,
            peak_kib: status_kib(pid, "VmHWM:"),
            budget,
            statuses,
            alive,
            oom_kills: cg.oom_kills(),
            open_at_end: if alive {
                open_connections(&mut observer)
            } else {
                0
            },
        };
        drop(hostile);
        if std::env::var_os("FLOODS_DEBUG").is_some() {
            let log = srv.log();
            for l in log.iter().rev().take(20).rev() {
                eprintln!("server: {l}");
            }
        }
        let _ = srv.child.kill();
        let _ = srv.child.wait();
        Some(outcome)
    }

    /// What keeps a hostile connection open.
    type Held = Box<dyn std::any::Any + Send>;

    /// A kind of hostile connection: its name and how to make one.
    type Kind = (&'static str, fn(&Target) -> Option<Held>);

    /// A request head announcing 1 MiB, then a quarter of the body.
    fn unfinished_body(t: &Target) -> Option<Held> {
        let mut c = tls_connect(t)?;
        push(
            &mut c,
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n",
        );
        push(&mut c, &vec![b'a'; 256 * 1024]);
        Some(Box::new(c))
    }

    /// A chunk announced at 1 MiB, a quarter of it sent.
    fn unfinished_chunk(t: &Target) -> Option<Held> {
        let mut c = tls_connect(t)?;
        push(
            &mut c,
            b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFF\r\n",
        );
        push(&mut c, &vec![b'a'; 256 * 1024]);
        Some(Box::new(c))
    }

    /// A ClientHello announced as 64 KiB (the most rustls joins), sent as two full records of
    /// 16 KiB and half of a third: rustls holds what came, waiting for the rest.
    fn half_a_hello(t: &Target) -> Option<Held> {
        let mut hello = Vec::new();
        let mut message = vec![0x01, 0x00, 0xff, 0xfc];
        message.resize(16 * 1024 * 3, 0x01);
        for (i, record) in message.chunks(16 * 1024).enumerate() {
            let part = if i == 2 { &record[..8 * 1024] } else { record };
            hello.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
            hello.extend_from_slice(part);
        }
        let mut c = TcpStream::connect(t.addr).ok()?;
        c.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
        push(&mut c, &hello);
        Some(Box::new(c))
    }

    /// 2,000 pipelined requests from a client with a small window that never reads.
    fn never_reader(t: &Target) -> Option<Held> {
        let mut c = tls_connect_small_window(t)?;
        push(&mut c, get("/health").repeat(2000).as_bytes());
        Some(Box::new(c))
    }

    #[test]
    fn unfinished_content_length_bodies() {
        if let Some(o) = flood(&[], Duration::from_secs(2), unfinished_body, |_| {}) {
            o.check("unfinished Content-Length bodies");
        }
    }

    #[test]
    fn unfinished_chunks() {
        if let Some(o) = flood(&[], Duration::from_secs(2), unfinished_chunk, |_| {}) {
            o.check("unfinished chunks");
        }
    }

    #[test]
    fn half_a_client_hello() {
        if let Some(o) = flood(&[], Duration::from_secs(2), half_a_hello, |_| {}) {
            o.check("half a ClientHello");
        }
    }

    #[test]
    fn readers_that_never_read() {
        if let Some(o) = flood(&[], Duration::from_secs(2), never_reader, |_| {}) {
            o.check("readers that never read");
        }
    }

    /// The floods against a server elsewhere: `cargo xtask test` runs this against the enclave
    /// in the emulator (64 MiB) through host-relay, with `ENCLAVE_HTTPS_FLOOD_TARGET=HOST:PORT`,
    /// then checks that the enclave did not reboot. A keep-alive client must get 200s
    /// throughout.
    #[test]
    #[ignore = "run by cargo xtask test against the enclave in the emulator"]
    fn against_a_remote_server() {
        let addr = std::env::var("ENCLAVE_HTTPS_FLOOD_TARGET")
            .expect("ENCLAVE_HTTPS_FLOOD_TARGET=HOST:PORT");
        let target = Target {
            addr: addr.parse().expect("HOST:PORT, IPv4"),
            cert_sha256: None,
        };
        let mut observer = tls_connect(&target).expect("the observer's connection");
        observer.sock.set_write_timeout(None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let good = good_client(&target, Arc::clone(&stop));
        let kinds: [Kind; 4] = [
            ("unfinished Content-Length bodies", unfinished_body),
            ("unfinished chunks", unfinished_chunk),
            ("half a ClientHello", half_a_hello),
            ("readers that never read", never_reader),
        ];
        for (kind, open) in kinds {
            let started = Instant::now();
            let held: Vec<Held> = (0..HOSTILE).filter_map(|_| open(&target)).collect();
            std::thread::sleep(Duration::from_secs(2));
            eprintln!(
                "{kind}: {HOSTILE} connections tried in {:.1}s, {} opened and held",
                started.elapsed().as_secs_f64(),
                held.len()
            );
            drop(held);
            // A slow server (the emulator) needs a moment to see them go: wait until what it
            // holds is back near what one connection holds, so each kind meets a server that
            // accepts connections again.
            let t0 = Instant::now();
            while used_memory(&mut observer) > 512 * 1024 && t0.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let statuses = good.join().expect("the good client");
        eprintln!("the good client got {} answers", statuses.len());
        assert!(statuses.len() >= 5, "{statuses:?}");
        assert!(
            statuses.iter().all(|&s| s == 200),
            "the good client got {statuses:?}"
        );
    }

    #[test]
    fn readers_at_a_byte_a_second() {
        // (That the send timeout closes such a reader when the server holds its responses is
        // tests/server.rs's `slow_readers_are_closed_by_the_send_timeout`.)
        let pipeline = get("/health").repeat(2000);
        let mut last = Instant::now();
        let Some(o) = flood(
            &[],
            Duration::from_secs(3),
            |srv| {
                let mut t = tls_connect_small_window(srv)?;
                push(&mut t, pipeline.as_bytes());
                t.sock.set_nonblocking(true).ok()?;
                Some(t.sock)
            },
            |readers| {
                // A byte a second from each (the raw TCP stream: TLS records need not be whole).
                if last.elapsed() >= Duration::from_secs(1) {
                    last = Instant::now();
                    for r in readers.iter_mut() {
                        let _ = r.read(&mut [0u8; 1]);
                    }
                }
            },
        ) else {
            return;
        };
        o.check("readers at a byte a second");
    }

    #[test]
    fn the_cgroup_limit_sets_the_budget_and_the_connection_limit() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let Some(cg) = cgroup() else {
            return;
        };
        let srv = server_in(&cg, &[]);
        assert!(
            srv.startup.contains(
                "memory budget 120 MiB, at most 426 connections, for 256 MiB from cgroup limit"
            ),
            "{}",
            srv.startup
        );
    }
}
