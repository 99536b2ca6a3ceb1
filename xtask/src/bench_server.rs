//! `cargo xtask bench server`: our server against nginx (Debian package) and a hyper 1 +
//! tokio-rustls 0.26 + rustls 0.23 (aws-lc-rs) server (`bench/hyper-peer`), side by side in one
//! run, on loopback TCP with the same ECDSA P-256 certificate, one worker each, the server
//! pinned to CPU 1 and the load generator to CPU 0:
//!
//! - keep-alive `GET /health`, 64 connections (`wrk -t1 -c64 --latency`): requests/s, p99
//!   latency, and server CPU per request (utime + stime from `/proc/PID/stat` over the run,
//!   divided by the requests wrk completed): wrk saturates its own core first on these
//!   machines, so CPU per request is what ranks the servers;
//! - new TLS 1.3 handshakes: four `openssl s_time -new -tls1_3` clients at once (full
//!   handshakes only; nginx and hyper also have session resumption off on their side),
//!   handshakes/s and server CPU per handshake;
//! - memory per idle TLS connection: `tls-hold` (in `bench/hyper-peer`) opens N connections
//!   (default 10,000), each completing a handshake and one request, and keeps them open;
//!   (VmRSS during - VmRSS before) / N, on a freshly started server.
//!
//! Each figure is the best of `--rounds` rounds (default 2), the peers alternating. Results are
//! printed with ratios and written to `target/bench/server.json`. A benchmark, not a test:
//! nothing here asserts a speed. Needs `wrk`, `nginx`, `openssl` and `taskset`; wrk and nginx
//! are installed with apt-get when missing (as root).

use crate::cmd::{
    cargo, err, free_port, have, output, project_root, rss_kib, run as run_cmd, Context, Result,
};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The CPU the server runs on.
pub(crate) const SERVER_CPU: &str = "1";
/// The CPU the load generator runs on.
pub(crate) const LOAD_CPU: &str = "0";
/// Concurrent `openssl s_time` clients of the handshake row.
const HANDSHAKE_CLIENTS: usize = 4;

/// The options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    /// Seconds per measurement.
    pub(crate) secs: u64,
    /// Rounds (best of).
    pub(crate) rounds: usize,
    /// Idle connections of the memory row.
    pub(crate) conns: usize,
}

/// The options of `cargo xtask bench NAME` (`--secs N`, `--rounds N`, `--conns N`), and the
/// binary of `--server PATH` (another build of our server, to compare two builds).
pub(crate) fn parse(bench: &str, args: &[String]) -> Result<(Opts, Option<PathBuf>)> {
    let mut o = Opts {
        secs: 5,
        rounds: 2,
        conns: 10_000,
    };
    let mut server = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| crate::cmd::Error(format!("{name} needs a positive number")))
        };
        match a.as_str() {
            "--secs" => o.secs = number("--secs")?,
            "--rounds" => o.rounds = usize::try_from(number("--rounds")?).unwrap_or(1),
            "--conns" => o.conns = usize::try_from(number("--conns")?).unwrap_or(1),
            "--server" => match it.next() {
                Some(path) => server = Some(PathBuf::from(path)),
                None => return err(format!("bench {bench}: --server needs the path of a server binary")),
            },
            other => {
                return err(format!(
                    "bench {bench}: unexpected argument `{other}` (options: --secs N, --rounds N, --conns N, --server PATH)"
                ))
            }
        }
    }
    Ok((o, server))
}

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Ours,
    Nginx,
    Hyper,
}

const PEERS: [Peer; 3] = [Peer::Ours, Peer::Nginx, Peer::Hyper];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Ours => "server",
            Peer::Nginx => "nginx",
            Peer::Hyper => "hyper",
        }
    }
}

/// Where things are.
#[derive(Debug)]
pub(crate) struct Paths {
    /// `target/bench`.
    pub(crate) out: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Our server's binary.
    pub(crate) server: PathBuf,
    hyper: PathBuf,
    /// `tls-hold`.
    pub(crate) hold: PathBuf,
    ticks_per_sec: f64,
}

/// A running server, killed on drop.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round's figures of one peer.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    handshakes_per_s: f64,
    cpu_us_per_handshake: f64,
}

/// The memory row of one peer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memory {
    pub(crate) before_kib: u64,
    pub(crate) during_kib: u64,
    pub(crate) held: usize,
}

impl Memory {
    pub(crate) fn per_conn_kib(&self) -> f64 {
        to_f64(self.during_kib.saturating_sub(self.before_kib)) / to_f64(self.held.max(1) as u64)
    }
}

/// Display and ratios only: the precision lost does not matter.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn to_f64(n: u64) -> f64 {
    n as f64
}

/// Installs wrk and nginx when missing (idempotent).
fn install_tools() -> Result {
    let missing: Vec<&str> = [("wrk", "wrk"), ("nginx", "nginx-light")]
        .iter()
        .filter(|(prog, _)| !have(prog) && !Path::new("/usr/sbin").join(prog).is_file())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    for prog in ["openssl", "taskset"] {
        if !have(prog) {
            return err(format!("bench server needs `{prog}` on PATH"));
        }
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| project_root().join("target"), PathBuf::from)
}

pub(crate) fn prepare() -> Result<Paths> {
    install_tools()?;
    let root = project_root();
    let out = root.join("target").join("bench");
    fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let targets = target_dir();
    run_cmd(
        cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "server", "--target-dir"])
            .arg(&targets),
    )?;
    run_cmd(
        cargo()
            .current_dir(&root)
            .args(["build", "--release", "--manifest-path"])
            .arg(root.join("bench/hyper-peer/Cargo.toml"))
            .arg("--target-dir")
            .arg(&targets),
    )?;
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    run_cmd(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()),
    )?;
    let ticks = output(Command::new("getconf").arg("CLK_TCK"))?;
    let ticks_per_sec: f64 = ticks
        .trim()
        .parse()
        .ctx(|| format!("getconf CLK_TCK printed {ticks:?}"))?;
    let release = targets.join("release");
    Ok(Paths {
        out,
        cert,
        key,
        server: release.join("server"),
        hyper: release.join("hyper-peer"),
        hold: release.join("tls-hold"),
        ticks_per_sec,
    })
}

fn nginx_conf(p: &Paths, port: u16) -> Result<PathBuf> {
    let prefix = p.out.join("nginx");
    fs::create_dir_all(prefix.join("tmp")).ctx(|| format!("creating {}", prefix.display()))?;
    let conf = format!(
        "# Written by cargo xtask bench server.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3 TLSv1.2;
        ssl_session_cache off;
        ssl_session_tickets off;
        location = /health {{
            default_type application/json;
            return 200 '{{\"status\":\"ok\",\"version\":\"nginx\"}}';
        }}
    }}
}}
",
        prefix = prefix.display(),
        cert = p.cert.display(),
        key = p.key.display(),
    );
    let path = prefix.join("nginx.conf");
    fs::write(&path, conf).ctx(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A command that runs a program (its arguments: the program and its arguments) on `cpu`,
/// with the open-files soft limit raised to the hard one.
pub(crate) fn pinned(cpu: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n \"$(ulimit -Hn)\" && exec taskset -c \"$0\" \"$@\"",
        cpu,
    ]);
    cmd
}

/// Starts `cmd` (stdin and stdout to /dev/null) and waits until it listens on `port`.
pub(crate) fn start_listening(mut cmd: Command, name: &str, port: u16) -> Result<Running> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let child = cmd.spawn().ctx(|| format!("starting {name}"))?;
    let mut running = Running {
        pid: child.id(),
        child,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(running);
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return err(format!("{name} exited at start ({status})"));
        }
        if Instant::now() > deadline {
            return err(format!("{name} did not listen on 127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `peer` on CPU 1 with the open-files soft limit raised to the hard one.
fn start(peer: Peer, p: &Paths) -> Result<Running> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = pinned(SERVER_CPU);
    match peer {
        Peer::Ours => {
            cmd.arg(&p.server)
                .args(["--listen", &format!("tcp:{addr}"), "--workers", "1"])
                .args(["--max-connections", "19000", "--idle-timeout", "10m"])
                .args(["--nsm-device", "/nonexistent/nsm", "--tls-cert"])
                .arg(&p.cert)
                .arg("--tls-key")
                .arg(&p.key);
        }
        Peer::Nginx => {
            cmd.args(["nginx", "-q", "-c"]).arg(nginx_conf(p, port)?);
        }
        Peer::Hyper => {
            cmd.arg(&p.hyper).arg(&addr).arg(&p.cert).arg(&p.key);
        }
    }
    // The request log of our server goes to /dev/null: it is still written (our server has no
    // switch for it), so its cost is included; nginx runs with access_log off.
    start_listening(cmd, peer.name(), port)
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_secs(pid: u32, p: &Paths) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).ctx(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces): 3 = state, 14 = utime, 15 = stime.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| crate::cmd::Error(format!("{path}: no field {n}")))
    };
    Ok(to_f64(field(14)? + field(15)?) / p.ticks_per_sec)
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.00s`) in milliseconds.
pub(crate) fn wrk_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// (requests, requests/s, p99 ms) from wrk's output.
pub(crate) fn parse_wrk(text: &str) -> Option<(u64, f64, f64)> {
    let mut requests = None;
    let mut rps = None;
    let mut p99 = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = wrk_ms(v);
        } else if t.contains(" requests in ") {
            requests = t.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Some((requests?, rps?, p99?))
}

/// Connections of one `openssl s_time` run (its "N connections in T real seconds" line).
fn parse_s_time(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `wrk -t1 -c64 --latency` on [`LOAD_CPU`] against `https://127.0.0.1:PORT/health` for `secs`:
/// (requests, requests/s, p99 ms); non-2xx answers are an error.
pub(crate) fn wrk(port: u16, secs: u64) -> Result<(u64, f64, f64)> {
    let text = output(Command::new("taskset").args([
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        "-c64",
        &format!("-d{secs}s"),
        "--latency",
        &format!("https://127.0.0.1:{port}/health"),
    ]))?;
    if text.contains("Non-2xx") {
        return err(format!("wrk saw non-2xx answers:\n{text}"));
    }
    parse_wrk(&text).ok_or_else(|| crate::cmd::Error(format!("cannot read wrk's output:\n{text}")))
}

/// Handshakes completed by [`HANDSHAKE_CLIENTS`] concurrent `s_time -new` clients, and the
/// wall time they took.
fn handshakes(port: u16, secs: u64) -> Result<(u64, f64)> {
    let start = Instant::now();
    let mut children = Vec::new();
    for _ in 0..HANDSHAKE_CLIENTS {
        let child = Command::new("taskset")
            .args(["-c", LOAD_CPU, "openssl", "s_time", "-new", "-tls1_3"])
            .args(["-connect", &format!("127.0.0.1:{port}")])
            .args(["-time", &secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ctx(|| "starting openssl s_time".into())?;
        children.push(child);
    }
    let mut total = 0;
    for child in children {
        let out = child
            .wait_with_output()
            .ctx(|| "waiting for openssl s_time".into())?;
        let text = String::from_utf8_lossy(&out.stdout);
        total += parse_s_time(&text).ok_or_else(|| {
            crate::cmd::Error(format!("cannot read openssl s_time's output:\n{text}"))
        })?;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

fn load_round(peer: Peer, p: &Paths, o: Opts) -> Result<Load> {
    let srv = start(peer, p)?;
    eprintln!("  {}: warm-up", peer.name());
    wrk(srv.port, 2)?;
    let cpu0 = cpu_secs(srv.pid, p)?;
    let (requests, rps, p99_ms) = wrk(srv.port, o.secs)?;
    let cpu1 = cpu_secs(srv.pid, p)?;
    let (shakes, wall) = handshakes(srv.port, o.secs)?;
    let cpu2 = cpu_secs(srv.pid, p)?;
    let load = Load {
        rps,
        p99_ms,
        cpu_us_per_req: (cpu1 - cpu0) * 1e6 / to_f64(requests.max(1)),
        handshakes_per_s: to_f64(shakes) / wall,
        cpu_us_per_handshake: (cpu2 - cpu1) * 1e6 / to_f64(shakes.max(1)),
    };
    eprintln!(
        "  {}: {:.0} req/s, p99 {:.2} ms, {:.2} µs CPU/req; {:.0} handshakes/s, {:.1} µs CPU/handshake",
        peer.name(),
        load.rps,
        load.p99_ms,
        load.cpu_us_per_req,
        load.handshakes_per_s,
        load.cpu_us_per_handshake
    );
    Ok(load)
}

fn memory(peer: Peer, p: &Paths, conns: usize) -> Result<Memory> {
    hold_memory(&start(peer, p)?, peer.name(), p, conns)
}

/// The memory row of a freshly started server: its VmRSS before and while `tls-hold` (on
/// [`LOAD_CPU`]) keeps `conns` idle TLS connections open, each after one `GET /health`.
pub(crate) fn hold_memory(srv: &Running, name: &str, p: &Paths, conns: usize) -> Result<Memory> {
    let addr = format!("127.0.0.1:{}", srv.port);
    let hold = |n: usize| -> Result<Child> {
        Command::new("sh")
            .args([
                "-c",
                "ulimit -n \"$(ulimit -Hn)\" && exec taskset -c \"$0\" \"$@\"",
                LOAD_CPU,
            ])
            .arg(&p.hold)
            .arg(&addr)
            .arg(n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ctx(|| "starting tls-hold".into())
    };
    let ready = |child: &mut Child| -> Result<(usize, usize)> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| crate::cmd::Error("tls-hold has no stdout".into()))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .ctx(|| "reading tls-hold".into())?;
        let mut it = line.split_whitespace().skip(1).map(str::parse::<usize>);
        match (it.next(), it.next()) {
            (Some(Ok(ok)), Some(Ok(failed))) => Ok((ok, failed)),
            _ => err(format!("tls-hold printed {line:?}")),
        }
    };
    // Warm-up: a few connections opened and closed, so first-use allocations are not counted.
    let mut warm = hold(16)?;
    ready(&mut warm)?;
    drop(warm.stdin.take());
    let _ = warm.wait();
    std::thread::sleep(Duration::from_millis(500));
    let before_kib = rss_kib(srv.pid)?;
    let mut child = hold(conns)?;
    let (held, failed) = ready(&mut child)?;
    std::thread::sleep(Duration::from_millis(500));
    let during_kib = rss_kib(srv.pid)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.flush();
    }
    let _ = child.wait();
    if failed > 0 {
        eprintln!("  {name}: {failed} of {conns} connections failed");
    }
    let m = Memory {
        before_kib,
        during_kib,
        held,
    };
    eprintln!(
        "  {name}: VmRSS {} KiB -> {} KiB with {held} idle TLS connections: {:.2} KiB each",
        before_kib,
        during_kib,
        m.per_conn_kib()
    );
    Ok(m)
}

/// Ours divided by the peer's (for display).
pub(crate) fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "-".into()
    }
}

/// `nginx -v` (for the JSON; empty when it cannot be run), with no double quotes.
pub(crate) fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().replace('"', "'"))
        .unwrap_or_default()
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result {
    let (o, server) = parse("server", args)?;
    let mut p = prepare()?;
    if let Some(server) = server {
        p.server = server;
    }
    let mut best: Vec<Option<Load>> = vec![None; PEERS.len()];
    for round in 0..o.rounds {
        eprintln!("round {} of {}", round + 1, o.rounds);
        // Alternate the order between rounds.
        let mut order: Vec<usize> = (0..PEERS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let l = load_round(PEERS[i], &p, o)?;
            best[i] = Some(match best[i] {
                None => l,
                Some(b) => Load {
                    rps: b.rps.max(l.rps),
                    p99_ms: b.p99_ms.min(l.p99_ms),
                    cpu_us_per_req: b.cpu_us_per_req.min(l.cpu_us_per_req),
                    handshakes_per_s: b.handshakes_per_s.max(l.handshakes_per_s),
                    cpu_us_per_handshake: b.cpu_us_per_handshake.min(l.cpu_us_per_handshake),
                },
            });
        }
    }
    eprintln!("memory: {} idle TLS connections per server", o.conns);
    let mut mem = Vec::new();
    for peer in PEERS {
        mem.push(memory(peer, &p, o.conns)?);
    }
    let load: Vec<Load> = best.into_iter().map(Option::unwrap_or_default).collect();
    type Row = (&'static str, &'static str, fn(&Load, &Memory) -> f64);
    let rows: [Row; 6] = [
        ("keep-alive requests/s (64 conns)", "higher", |l, _| l.rps),
        ("keep-alive p99 latency, ms", "lower", |l, _| l.p99_ms),
        ("server CPU per request, µs", "lower", |l, _| {
            l.cpu_us_per_req
        }),
        ("new TLS 1.3 handshakes/s", "higher", |l, _| {
            l.handshakes_per_s
        }),
        ("server CPU per handshake, µs", "lower", |l, _| {
            l.cpu_us_per_handshake
        }),
        ("RSS per idle TLS connection, KiB", "lower", |_, m| {
            m.per_conn_kib()
        }),
    ];
    let mut table = format!(
        "{:<34} {:>12} {:>12} {:>12} {:>10} {:>10}  better\n",
        "", "server", "nginx", "hyper", "vs nginx", "vs hyper"
    );
    let mut json_rows = Vec::new();
    for (name, better, f) in rows {
        let v: Vec<f64> = load.iter().zip(&mem).map(|(l, m)| f(l, m)).collect();
        let [ours, nginx, hyper] = [v[0], v[1], v[2]];
        let _ = writeln!(
            table,
            "{name:<34} {ours:>12.2} {nginx:>12.2} {hyper:>12.2} {:>10} {:>10}  {better}",
            ratio(ours, nginx),
            ratio(ours, hyper)
        );
        json_rows.push(format!(
            "    {{\"metric\": \"{name}\", \"better\": \"{better}\", \"server\": {ours:.3}, \"nginx\": {nginx:.3}, \"hyper\": {hyper:.3}}}"
        ));
    }
    println!("\n{table}");
    println!(
        "(best of {} rounds of {} s; server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU}; \
         wrk -t1 -c64; {HANDSHAKE_CLIENTS} x openssl s_time -new -tls1_3; tls-hold x {})",
        o.rounds, o.secs, o.conns
    );
    let nginx_version = nginx_version();
    let json = format!(
        "{{\n  \"benchmark\": \"server\",\n  \"secs\": {},\n  \"rounds\": {},\n  \"idle_connections\": {},\n  \"nginx\": \"{}\",\n  \"rows\": [\n{}\n  ],\n  \"rss_kib\": {{{}}}\n}}\n",
        o.secs,
        o.rounds,
        o.conns,
        nginx_version,
        json_rows.join(",\n"),
        PEERS
            .iter()
            .zip(&mem)
            .map(|(peer, m)| format!(
                "\"{}\": {{\"before\": {}, \"during\": {}, \"held\": {}}}",
                peer.name(),
                m.before_kib,
                m.during_kib,
                m.held
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = p.out.join("server.json");
    fs::write(&path, json).ctx(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_and_s_time() {
        let wrk = "Running 5s test @ https://127.0.0.1:1/health
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.00us  100.00us   3.00ms   90.00%
  Latency Distribution
     50%  490.00us
     75%  520.00us
     90%  600.00us
     99%    1.25ms
  612345 requests in 5.00s, 100.00MB read
Requests/sec: 122469.00
Transfer/sec:     20.00MB
";
        assert_eq!(parse_wrk(wrk), Some((612_345, 122_469.0, 1.25)));
        assert_eq!(wrk_ms("812.00us"), Some(0.812));
        assert_eq!(wrk_ms("2.00s"), Some(2000.0));
        let s_time = "Collecting connection statistics for 5 seconds
tttttttt

4321 connections in 1.20s; 3600.83 connections/user sec, bytes read 0
4321 connections in 6 real seconds, 0 bytes read per connection
";
        assert_eq!(parse_s_time(s_time), Some(4321));
    }
}
