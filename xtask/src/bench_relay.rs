//! `cargo xtask bench relay`: host-relay against a direct connection (the limit), HAProxy in TCP
//! mode with splicing (the proxy an operator would pick instead) and socat, on
//! loopback, in two set-ups: TCP → TCP and TCP → Unix socket. Measured per program: bulk
//! throughput of one connection (1 GiB each way), 64 parallel connections (1 GiB in all),
//! connection setup rate (connect, 1 byte each way, close), 1 KiB ping-pong latency (p50/p99,
//! unpinned, then with the peers and the relay all on CPU 0), the relay's resident memory
//! while it holds 9,900 idle connections, and the relay's CPU seconds per GiB moved (utime + stime
//! of the process and its reaped children, from /proc/PID/stat). The peers are threads of this
//! process; everything shares the machine's cores, so CPU per GiB is the figure that ranks relays
//! when the run is CPU-bound. Bulk streams behave as iperf3's (128 KiB blocks, Nagle on), and for
//! TCP → TCP every program is also measured by iperf3 itself in front of iperf3's server, so
//! the bench's own figures can be checked against an independent tool in every run.
//! Two rounds, programs alternated, best of each kept. Results: target/bench/relay.json.
//! A benchmark, not a test: nothing here asserts a speed.

use crate::cmd::{
    cargo, err, free_port, have, project_root, rss_kib, run as run_cmd, Context, Result,
};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
/// Bytes per read and write of a bulk stream: iperf3's default (128 KiB). Bulk streams also
/// leave Nagle on, as iperf3 does; only ping-pong and setups ask for `TCP_NODELAY`. With 1 MiB
/// writes and `TCP_NODELAY` this client moved 14 Gbit/s direct where iperf3 moves 24.
const BULK_BLOCK: usize = 128 << 10;
const PARALLEL: u64 = 64;
const SETUPS_PER_THREAD: usize = 1000;
const SETUP_THREADS: usize = 2;
const PINGS: usize = 10_000;
const ROUNDS: usize = 2;

/// Where a client connects.
#[derive(Clone, Debug)]
enum Ep {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(ep: &Ep, nodelay: bool) -> io::Result<Stream> {
        Ok(match ep {
            Ep::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(nodelay)?;
                Stream::Tcp(s)
            }
            Ep::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
        })
    }
    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
    fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b),
            Stream::Unix(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(b),
            Stream::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The peer: `U` = read to EOF then answer one byte; `D` + u64 = send that many bytes and close;
/// `E` = echo until EOF (with `TCP_NODELAY`, as the client's side of it).
fn serve(mut s: Stream) -> io::Result<()> {
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode)?;
    if mode[0] == b'E' {
        s.set_nodelay()?;
    }
    let mut buf = vec![0u8; BULK_BLOCK];
    match mode[0] {
        b'U' => {
            while s.read(&mut buf)? != 0 {}
            s.write_all(b"k")?;
        }
        b'D' => {
            let mut n = [0u8; 8];
            s.read_exact(&mut n)?;
            let mut left = u64::from_le_bytes(n);
            while left > 0 {
                let k = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                s.write_all(&buf[..k])?;
                left -= k as u64;
            }
            s.shutdown_write()?;
        }
        _ => loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n])?;
        },
    }
    Ok(())
}

fn start_servers(dir: &Path) -> Result<(SocketAddr, PathBuf)> {
    let tl = TcpListener::bind("127.0.0.1:0").ctx(|| "binding the TCP peer".into())?;
    let ta = tl.local_addr().ctx(|| "TCP peer address".into())?;
    let path = dir.join("peer.sock");
    let _ = std::fs::remove_file(&path);
    let ul = UnixListener::bind(&path).ctx(|| format!("binding {}", path.display()))?;
    thread::spawn(move || {
        for s in tl.incoming().flatten() {
            thread::spawn(move || serve(Stream::Tcp(s)));
        }
    });
    thread::spawn(move || {
        for s in ul.incoming().flatten() {
            thread::spawn(move || serve(Stream::Unix(s)));
        }
    });
    Ok((ta, path))
}

/// A relay process under test, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// utime + stime + cutime + cstime in seconds.
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // Fields 14-17 of stat; `after` starts at field 3.
        f.get(11..15).map_or(0.0, |v| v.iter().sum::<f64>()) / 100.0
    }
}

fn spawn(mut c: Command, port: u16) -> Result<Proc> {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Proc(
        c.spawn()
            .ctx(|| format!("starting {:?}", c.get_program()))?,
    );
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return err(format!("{:?} did not listen on {port}", c.get_program()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(p)
}

#[derive(Debug, Default, Clone)]
struct Row {
    up_gbps: f64,
    down_gbps: f64,
    parallel_gbps: f64,
    setups_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Ping-pong with this process and the relay on CPU 0.
    pinned_p50_us: f64,
    pinned_p99_us: f64,
    cpu_s_per_gib: Option<f64>,
    /// iperf3's one-stream rate through the same program (tcp-tcp only): the cross-check of
    /// `up_gbps`.
    iperf3_gbps: Option<f64>,
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    b * 8.0 / d.as_secs_f64() / 1e9
}

fn upload(ep: &Ep, bytes: u64) -> io::Result<()> {
    let mut s = Stream::connect(ep, false)?;
    s.write_all(b"U")?;
    let buf = vec![0x5au8; BULK_BLOCK];
    let mut left = bytes;
    while left > 0 {
        let k = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        s.write_all(&buf[..k])?;
        left -= k as u64;
    }
    s.shutdown_write()?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack)
}

fn download(ep: &Ep, bytes: u64) -> io::Result<()> {
    let mut s = Stream::connect(ep, false)?;
    let mut req = vec![b'D'];
    req.extend_from_slice(&bytes.to_le_bytes());
    s.write_all(&req)?;
    let mut buf = vec![0u8; BULK_BLOCK];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    if got == bytes {
        Ok(())
    } else {
        Err(io::Error::other(format!("received {got} of {bytes} bytes")))
    }
}

fn setups(ep: &Ep) -> io::Result<()> {
    for _ in 0..SETUPS_PER_THREAD {
        let mut s = Stream::connect(ep, true)?;
        s.write_all(b"Ex")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
    }
    Ok(())
}

fn ping_pong(ep: &Ep) -> io::Result<(f64, f64)> {
    let mut s = Stream::connect(ep, true)?;
    s.write_all(b"E")?;
    let msg = [7u8; 1024];
    let mut back = [0u8; 1024];
    let mut rtts = Vec::with_capacity(PINGS);
    for i in 0..PINGS + 500 {
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        if i >= 500 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    rtts.sort_by(f64::total_cmp);
    let at = |q: usize| rtts[(rtts.len() * q / 100).min(rtts.len() - 1)];
    Ok((at(50), at(99)))
}

fn measure(ep: &Ep, proc_: Option<&Proc>) -> Result<Row> {
    let e = |what: &'static str| move |x: io::Error| crate::cmd::Error(format!("{what}: {x}"));
    let mut row = Row::default();
    let cpu0 = proc_.map(Proc::cpu);
    let t = Instant::now();
    upload(ep, GIB).map_err(e("bulk upload"))?;
    row.up_gbps = gbps(GIB, t.elapsed());
    let t = Instant::now();
    download(ep, GIB).map_err(e("bulk download"))?;
    row.down_gbps = gbps(GIB, t.elapsed());
    if let (Some(p), Some(c0)) = (proc_, cpu0) {
        // The relay's children (socat forks one per connection) are reaped when they end.
        thread::sleep(Duration::from_millis(100));
        row.cpu_s_per_gib = Some((p.cpu() - c0) / 2.0);
    }
    let t = Instant::now();
    let hs: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let ep = ep.clone();
            thread::spawn(move || upload(&ep, GIB / PARALLEL))
        })
        .collect();
    for h in hs {
        h.join()
            .map_err(|_| crate::cmd::Error("a client thread panicked".into()))?
            .map_err(e("parallel upload"))?;
    }
    row.parallel_gbps = gbps(GIB, t.elapsed());
    let t = Instant::now();
    let hs: Vec<_> = (0..SETUP_THREADS)
        .map(|_| {
            let ep = ep.clone();
            thread::spawn(move || setups(&ep))
        })
        .collect();
    for h in hs {
        h.join()
            .map_err(|_| crate::cmd::Error("a client thread panicked".into()))?
            .map_err(e("connection setup"))?;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = (SETUPS_PER_THREAD * SETUP_THREADS) as f64;
    row.setups_per_s = n / t.elapsed().as_secs_f64();
    (row.p50_us, row.p99_us) = ping_pong(ep).map_err(e("ping-pong"))?;
    // Again with the peers and the relay on CPU 0. On this VM waking a thread on the other, idle
    // vCPU costs 50-100 us (the vCPU leaves halt), which swamps what a relay adds; on one CPU
    // the difference to direct is the relay's own work per round trip.
    pin(std::process::id(), "0")?;
    if let Some(p) = proc_ {
        pin(p.0.id(), "0")?;
    }
    let pinned = ping_pong(ep).map_err(e("pinned ping-pong"));
    pin(std::process::id(), "0-1")?;
    if let Some(p) = proc_ {
        pin(p.0.id(), "0-1")?;
    }
    (row.pinned_p50_us, row.pinned_p99_us) = pinned?;
    Ok(row)
}

/// Idle connections held through host-relay. The relay holds two descriptors per connection and
/// the open-file hard limit here is 20,000, so 10,000 cannot be reached on this machine; 9,900
/// can, and the memory per connection scales the figure to 10,000.
const IDLE: usize = 9_900;

/// `cargo xtask __hold-peer`: the target of the idle-connections measurement, in its own process
/// so its sockets do not count against this one's open-file limit. Prints its port, then accepts
/// connections one at a time, echoes one byte on each and keeps them open until stdin closes.
pub fn hold_peer() -> Result {
    let l = TcpListener::bind("127.0.0.1:0").ctx(|| "binding the hold peer".into())?;
    let port = l.local_addr().ctx(|| "hold peer address".into())?.port();
    println!("{port}");
    io::stdout().flush().ctx(|| "writing the port".into())?;
    thread::spawn(|| {
        let mut b = [0u8; 1];
        let _ = io::stdin().read(&mut b);
        std::process::exit(0);
    });
    let mut held = Vec::new();
    for s in l.incoming() {
        let Ok(mut s) = s else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {
            held.push(s);
        }
    }
    Ok(())
}

/// What the idle-connections measurement saw.
#[derive(Debug, Default)]
struct Idle {
    conns: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
}

impl Idle {
    #[allow(clippy::cast_precision_loss)]
    fn kib_per_conn(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.conns.max(1) as f64
    }
    #[allow(clippy::cast_precision_loss)]
    fn mib_at_10k(&self) -> f64 {
        (self.rss_before_kib as f64 + self.kib_per_conn() * 10_000.0) / 1024.0
    }
}

/// Opens [`IDLE`] connections through a fresh host-relay (TCP → TCP, each carrying one byte each
/// way end to end) and reads the relay's resident memory before and while they are held.
fn idle_connections(relay: &Path, workers: usize) -> Result<Idle> {
    let exe = std::env::current_exe().ctx(|| "finding the xtask binary".into())?;
    let mut peer = Command::new(exe)
        .arg("__hold-peer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ctx(|| "starting the hold peer".into())?;
    let mut line = String::new();
    if let Some(out) = peer.stdout.take() {
        let _ = io::BufRead::read_line(&mut io::BufReader::new(out), &mut line);
    }
    let peer = Proc(peer);
    let Ok(peer_port) = line.trim().parse::<u16>() else {
        return err(format!("the hold peer printed {line:?}, not a port"));
    };
    let port = free_port()?;
    let mut c = Command::new(relay);
    c.args(["--workers", &workers.to_string(), "--idle-timeout", "0"])
        .args(["--max-conns", "20000", "--route"])
        .arg(format!("tcp:127.0.0.1:{port}=tcp:127.0.0.1:{peer_port}"));
    let p = spawn(c, port)?;
    thread::sleep(Duration::from_millis(200));
    let pid = p.0.id();
    let mut idle = Idle {
        rss_before_kib: rss_kib(pid)?,
        ..Idle::default()
    };
    let mut held = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let one = || -> io::Result<TcpStream> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"i")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            Ok(s)
        };
        held.push(
            one().map_err(|e| {
                crate::cmd::Error(format!("idle connection {} of {IDLE}: {e}", i + 1))
            })?,
        );
    }
    thread::sleep(Duration::from_millis(500));
    idle.conns = held.len();
    idle.rss_after_kib = rss_kib(pid)?;
    drop(held);
    drop(p);
    drop(peer);
    Ok(idle)
}

/// Pins every thread of process `pid` to `cpus` (a taskset list such as "0" or "0-1"). Threads
/// of the peers come and go, and taskset fails when one ends while it walks the list: retried.
fn pin(pid: u32, cpus: &str) -> Result {
    let mut last = String::new();
    for _ in 0..20 {
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdin(Stdio::null())
            .output()
            .ctx(|| "running taskset (util-linux)".into())?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        thread::sleep(Duration::from_millis(20));
    }
    err(format!("taskset -a -p -c {cpus} {pid} failed: {last}"))
}

fn best(a: Option<Row>, b: Row) -> Row {
    let Some(a) = a else { return b };
    let min_opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    Row {
        up_gbps: a.up_gbps.max(b.up_gbps),
        down_gbps: a.down_gbps.max(b.down_gbps),
        parallel_gbps: a.parallel_gbps.max(b.parallel_gbps),
        setups_per_s: a.setups_per_s.max(b.setups_per_s),
        p50_us: a.p50_us.min(b.p50_us),
        p99_us: a.p99_us.min(b.p99_us),
        pinned_p50_us: a.pinned_p50_us.min(b.pinned_p50_us),
        pinned_p99_us: a.pinned_p99_us.min(b.pinned_p99_us),
        cpu_s_per_gib: min_opt(a.cpu_s_per_gib, b.cpu_s_per_gib),
        iperf3_gbps: match (a.iperf3_gbps, b.iperf3_gbps) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| project_root().join("target"), PathBuf::from)
}

const PROGRAMS: [&str; 4] = ["direct", "host-relay", "haproxy", "socat"];

/// HAProxy's configuration: TCP mode, splicing forced both ways, as an operator would run it in
/// front of an enclave. `option splice-auto` did not splice at all here (HAProxy 2.6: no splice
/// call under strace, about 6 Gbit/s through iperf3); `splice-request` + `splice-response` did
/// (about 10), so that is the HAProxy we rank against. `maxconn` stays well under the open-file
/// limit (HAProxy refuses to start when it cannot reserve descriptors for it).
fn haproxy_config(port: u16, server: &str) -> String {
    format!(
        "global\n  maxconn 400\n\ndefaults\n  mode tcp\n  option splice-request\n  \
         option splice-response\n  \
         timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\n\
         listen relay\n  bind 127.0.0.1:{port}\n  server peer {server}\n"
    )
}
const SETUPS: [&str; 2] = ["tcp-tcp", "tcp-unix"];

/// socat's transfer block (`-b`). Its default, 8 KiB, moved about 4 Gbit/s here whether iperf3 or
/// this bench drove it; 128 KiB moved 10-11, so that is the socat we rank against.
const SOCAT_BLOCK: &str = "131072";

/// Starts `program` listening on a free loopback port and forwarding to `target`; returns where
/// clients connect and the process. "direct" starts nothing: clients connect to `target`.
fn start_program(
    program: &str,
    target: &Ep,
    relay: &Path,
    workers: usize,
    out: &Path,
) -> Result<(Ep, Option<Proc>)> {
    if program == "direct" {
        return Ok((target.clone(), None));
    }
    let port = free_port()?;
    let c = match program {
        "host-relay" => {
            let to = match target {
                Ep::Tcp(a) => format!("tcp:{a}"),
                Ep::Unix(p) => format!("unix:{}", p.display()),
            };
            let mut c = Command::new(relay);
            c.args(["--workers", &workers.to_string(), "--idle-timeout", "0"])
                .arg("--route")
                .arg(format!("tcp:127.0.0.1:{port}={to}"));
            c
        }
        "haproxy" => {
            let server = match target {
                Ep::Tcp(a) => a.to_string(),
                Ep::Unix(p) => p.display().to_string(),
            };
            let cfg = out.join("haproxy.cfg");
            std::fs::write(&cfg, haproxy_config(port, &server))
                .ctx(|| format!("writing {}", cfg.display()))?;
            let mut c = Command::new("haproxy");
            c.arg("-db").arg("-f").arg(&cfg);
            c
        }
        _ => {
            let to = match target {
                Ep::Tcp(a) => format!("TCP:{a},nodelay"),
                Ep::Unix(p) => format!("UNIX-CONNECT:{}", p.display()),
            };
            let mut c = Command::new("socat");
            c.args(["-b", SOCAT_BLOCK])
                .arg(format!(
                    "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024,nodelay"
                ))
                .arg(to);
            c
        }
    };
    let p = spawn(c, port)?;
    Ok((Ep::Tcp(SocketAddr::from(([127, 0, 0, 1], port))), Some(p)))
}

/// One iperf3 stream for 3 s through `ep` (an iperf3 server behind it): the receiver's Gbit/s.
fn iperf3(ep: &Ep) -> Result<f64> {
    let Ep::Tcp(a) = ep else {
        return err("iperf3 runs over TCP only");
    };
    let out = crate::cmd::output(Command::new("iperf3").args([
        "-c",
        &a.ip().to_string(),
        "-p",
        &a.port().to_string(),
        "-t",
        "3",
        "-f",
        "g",
    ]))?;
    let gbps = out.lines().find(|l| l.contains("receiver")).and_then(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "Gbits/sec")?;
        words.get(at.checked_sub(1)?)?.parse::<f64>().ok()
    });
    gbps.map_or_else(
        || err(format!("iperf3 printed no receiver rate:\n{out}")),
        Ok,
    )
}

/// Runs the benchmark, prints the table, writes target/bench/relay.json.
/// `relay`: a host-relay binary to measure instead of building ours (to compare two builds).
pub fn run(relay: Option<PathBuf>) -> Result {
    crate::setup::packages(&[
        ("socat", "a reference relay of `bench relay`"),
        ("haproxy", "a reference relay of `bench relay`"),
        ("iperf3", "the cross-check of `bench relay`'s bulk figures"),
    ])?;
    for tool in ["socat", "haproxy", "iperf3"] {
        if !have(tool) {
            return err(format!("{tool} is not on PATH"));
        }
    }
    let relay = match relay {
        Some(r) => r,
        None => {
            run_cmd(cargo().args(["build", "--release", "-p", "host-relay"]))?;
            target_dir().join("release/host-relay")
        }
    };
    let out = project_root().join("target/bench");
    std::fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let (tcp_peer, unix_peer) = start_servers(&out)?;
    let iperf_port = free_port()?;
    let _iperf_server = spawn(
        {
            let mut c = Command::new("iperf3");
            c.args(["-s", "-p", &iperf_port.to_string(), "-B", "127.0.0.1"]);
            c
        },
        iperf_port,
    )?;
    let iperf_ep = Ep::Tcp(SocketAddr::from(([127, 0, 0, 1], iperf_port)));
    let workers = thread::available_parallelism().map_or(2, usize::from);
    let mut results: Vec<Vec<Option<Row>>> = vec![vec![None; PROGRAMS.len()]; SETUPS.len()];
    for round in 0..ROUNDS {
        for (si, setup) in SETUPS.iter().enumerate() {
            let target = if si == 0 {
                Ep::Tcp(tcp_peer)
            } else {
                Ep::Unix(unix_peer.clone())
            };
            // Alternate the order between rounds so drift hits every program alike.
            let mut order: Vec<usize> = (0..PROGRAMS.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for pi in order {
                let (ep, proc_) = start_program(PROGRAMS[pi], &target, &relay, workers, &out)?;
                eprintln!("round {}/{ROUNDS}: {setup} {}", round + 1, PROGRAMS[pi]);
                let mut row = measure(&ep, proc_.as_ref())?;
                drop(proc_);
                if si == 0 {
                    // The same program in front of iperf3's server, measured by iperf3's client.
                    let (ep, _proc) =
                        start_program(PROGRAMS[pi], &iperf_ep, &relay, workers, &out)?;
                    row.iperf3_gbps = Some(iperf3(&ep)?);
                }
                eprintln!(
                    "  up {:.2} / down {:.2} / 64 conns {:.2} Gbit/s, {:.0} setups/s, ping-pong p50/p99 {:.1}/{:.1} us",
                    row.up_gbps, row.down_gbps, row.parallel_gbps, row.setups_per_s, row.p50_us, row.p99_us
                );
                results[si][pi] = Some(best(results[si][pi].take(), row));
            }
        }
    }
    let mut json = String::from("{\n  \"unit\": {\"throughput\": \"Gbit/s\", \"setup\": \"connections/s\", \"latency\": \"microseconds round trip, 1 KiB each way\", \"cpu\": \"relay CPU seconds per GiB moved\"},\n  \"results\": [\n");
    let mut rows = Vec::new();
    for (si, setup) in SETUPS.iter().enumerate() {
        let r: Vec<Row> = results[si]
            .iter()
            .map(|r| r.clone().unwrap_or_default())
            .collect();
        let (d, h, x, s) = (&r[0], &r[1], &r[2], &r[3]);
        println!("\n{setup}: best of {ROUNDS} rounds            direct  host-relay     haproxy       socat  relay/direct  relay/haproxy  relay/socat");
        let line = |name: &str, f: fn(&Row) -> f64| {
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            println!(
                "  {name:30} {:>10.2} {:>11.2} {:>11.2} {:>11.2} {:>12.2}x {:>13.2}x {:>11.2}x",
                f(d),
                f(h),
                f(x),
                f(s),
                ratio(f(h), f(d)),
                ratio(f(h), f(x)),
                ratio(f(h), f(s))
            );
        };
        line("bulk 1 GiB up (Gbit/s)", |r| r.up_gbps);
        line("bulk 1 GiB down (Gbit/s)", |r| r.down_gbps);
        line("64 connections (Gbit/s)", |r| r.parallel_gbps);
        line("connection setups/s", |r| r.setups_per_s);
        line("ping-pong p50 (us)", |r| r.p50_us);
        line("ping-pong p99 (us)", |r| r.p99_us);
        line("one-CPU ping-pong p50 (us)", |r| r.pinned_p50_us);
        line("one-CPU ping-pong p99 (us)", |r| r.pinned_p99_us);
        let added = |how: &str, p50: fn(&Row) -> f64, p99: fn(&Row) -> f64| {
            println!(
                "  added latency p50/p99{how} (us): host-relay {:.1}/{:.1}, haproxy {:.1}/{:.1}, socat {:.1}/{:.1}",
                p50(h) - p50(d),
                p99(h) - p99(d),
                p50(x) - p50(d),
                p99(x) - p99(d),
                p50(s) - p50(d),
                p99(s) - p99(d)
            );
        };
        added("", |r| r.p50_us, |r| r.p99_us);
        added(", one CPU", |r| r.pinned_p50_us, |r| r.pinned_p99_us);
        println!(
            "  relay CPU s/GiB: host-relay {:.3}, haproxy {:.3}, socat {:.3}",
            h.cpu_s_per_gib.unwrap_or(0.0),
            x.cpu_s_per_gib.unwrap_or(0.0),
            s.cpu_s_per_gib.unwrap_or(0.0)
        );
        if si == 0 {
            let cross: Vec<String> = PROGRAMS
                .iter()
                .zip(&r)
                .map(|(name, row)| {
                    format!(
                        "{name} {:.2} (this bench {:.2})",
                        row.iperf3_gbps.unwrap_or(0.0),
                        row.up_gbps
                    )
                })
                .collect();
            println!(
                "  iperf3 cross-check, one stream up (Gbit/s): {}",
                cross.join(", ")
            );
        }
        for (pi, row) in r.iter().enumerate() {
            let mut o = String::new();
            let _ = write!(
                o,
                "    {{\"setup\": \"{setup}\", \"program\": \"{}\", \"bulk_up_gbps\": {:.3}, \"bulk_down_gbps\": {:.3}, \"parallel64_gbps\": {:.3}, \"setups_per_s\": {:.0}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"added_p50_us\": {:.1}, \"added_p99_us\": {:.1}, \"pinned_p50_us\": {:.1}, \"pinned_p99_us\": {:.1}, \"added_pinned_p50_us\": {:.1}, \"added_pinned_p99_us\": {:.1}, \"cpu_s_per_gib\": {}, \"iperf3_up_gbps\": {}}}",
                PROGRAMS[pi],
                row.up_gbps,
                row.down_gbps,
                row.parallel_gbps,
                row.setups_per_s,
                row.p50_us,
                row.p99_us,
                row.p50_us - d.p50_us,
                row.p99_us - d.p99_us,
                row.pinned_p50_us,
                row.pinned_p99_us,
                row.pinned_p50_us - d.pinned_p50_us,
                row.pinned_p99_us - d.pinned_p99_us,
                row.cpu_s_per_gib.map_or("null".to_string(), |c| format!("{c:.4}")),
                row.iperf3_gbps.map_or("null".to_string(), |g| format!("{g:.3}"))
            );
            rows.push(o);
        }
    }
    json.push_str(&rows.join(",\n"));
    eprintln!("idle connections: {IDLE} through host-relay (tcp-tcp)");
    let idle = idle_connections(&relay, workers)?;
    println!(
        "\nidle connections (tcp-tcp): {} held end to end; host-relay RSS {:.1} MiB before, {:.1} MiB with them ({:.2} KiB each; 10,000 would be {:.1} MiB)",
        idle.conns,
        idle.rss_before_kib as f64 / 1024.0,
        idle.rss_after_kib as f64 / 1024.0,
        idle.kib_per_conn(),
        idle.mib_at_10k()
    );
    let _ = write!(
        json,
        "\n  ],\n  \"idle\": {{\"connections\": {}, \"rss_before_kib\": {}, \"rss_after_kib\": {}, \"kib_per_connection\": {:.3}, \"mib_at_10000\": {:.2}}},\n  \"rounds\": {ROUNDS},\n  \"host_relay_workers\": {workers}\n}}\n",
        idle.conns,
        idle.rss_before_kib,
        idle.rss_after_kib,
        idle.kib_per_conn(),
        idle.mib_at_10k()
    );
    let path = out.join("relay.json");
    std::fs::write(&path, json).ctx(|| format!("writing {}", path.display()))?;
    println!("\nresults written to {}", path.display());
    Ok(())
}
