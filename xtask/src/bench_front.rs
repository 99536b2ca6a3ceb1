//! `cargo xtask bench front`: our server in front mode (`server --upstream`, one worker)
//! against nginx as a TLS reverse proxy (one worker, `upstream { keepalive 32; }`,
//! `proxy_http_version 1.1`, `proxy_set_header Connection ""`, the usual configuration),
//! side by side in one run, keep-alive HTTPS through each front to the same application, on
//! loopback TCP with the same ECDSA P-256 certificate and TLS 1.3:
//!
//! - the application (the upstream) is a second nginx instance serving a 1 KiB static file
//!   over plain HTTP/1.1 with keep-alive; the same process serves both fronts for the whole run.
//!   Not Debian busybox's `httpd`: it answers every request with `Connection: close` (and forks
//!   per connection), so the fronts would measure TCP connects to the application instead of
//!   forwarding. The machine has two cores: the front measured is pinned to CPU 1, and the
//!   load generator and the upstream share CPU 0 (so requests/s is bounded by CPU 0; the
//!   front's CPU per request is what ranks the fronts);
//! - keep-alive `GET /health` (forwarded: front mode does not answer `/health` itself), 64
//!   connections (`wrk -t1 -c64 --latency`): requests/s, p99 latency, and the front's CPU per
//!   proxied request (utime + stime from `/proc/PID/stat` over the run, divided by the requests
//!   wrk completed; nginx runs with `master_process off`, so its one process is master and
//!   worker together); the upstream's CPU per request and the connections it accepted per
//!   1,000 requests (its `stub_status` counter) are shown too, as a check that both fronts hand
//!   it the same work: both keep at most 32 idle upstream connections (ours: its default pool
//!   per worker; nginx: `keepalive 32`), fewer than the 64 clients, so both close and reopen
//!   some upstream connections under this load;
//! - memory per idle client TLS connection: `tls-hold` opens N connections (default 10,000),
//!   each completing a handshake and one proxied request, and keeps them open;
//!   (VmRSS during - VmRSS before) / N of the front, freshly started.
//!
//! Both fronts send the client's protocol upstream (ours `Forwarded` and `X-Forwarded-Proto`,
//! nginx `X-Forwarded-For` and `X-Forwarded-Proto`). Each figure is the best of `--rounds`
//! rounds (default 2), the fronts alternating. Results are printed with ratios and the goals,
//! and written to `target/bench/front.json`. A benchmark, not a test: nothing here asserts a
//! speed. Needs what `bench server` needs (`wrk`, `nginx`, `openssl`, `taskset`).

use crate::bench_server::{
    cpu_secs, hold_memory, nginx_version, parse, pinned, prepare, ratio, start_listening, to_f64,
    wrk, Memory, Opts, Paths, Running, LOAD_CPU, SERVER_CPU,
};
use crate::cmd::{free_port, Context, Error, Result};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes of the static file the upstream serves.
const BODY_BYTES: usize = 1024;

/// Where the upstream answers its counters (nginx's `stub_status`).
const STATUS_PATH: &str = "/upstream-status";

/// The fronts compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Ours,
    Nginx,
}

const FRONTS: [Front; 2] = [Front::Ours, Front::Nginx];

impl Front {
    fn name(self) -> &'static str {
        match self {
            Front::Ours => "server",
            Front::Nginx => "nginx",
        }
    }
}

/// One round's keep-alive figures of one front.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    upstream_cpu_us_per_req: f64,
    upstream_conns_per_kreq: f64,
}

/// The connections the upstream has accepted so far (its `stub_status` counter), the one
/// that asks included.
fn upstream_accepts(port: u16) -> Result<u64> {
    let what = || format!("reading the upstream's counters at 127.0.0.1:{port}{STATUS_PATH}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).ctx(what)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ctx(what)?;
    write!(s, "GET {STATUS_PATH} HTTP/1.0\r\nHost: localhost\r\n\r\n").ctx(what)?;
    let mut text = String::new();
    s.read_to_string(&mut text).ctx(what)?;
    // "server accepts handled requests\n N N N"
    text.lines()
        .skip_while(|l| !l.starts_with("server accepts"))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error(format!("{}: unexpected answer {text:?}", what())))
}

/// The directives every nginx instance here shares: one process, files under `prefix`.
fn nginx_head(prefix: &std::path::Path) -> String {
    format!(
        "# Written by cargo xtask bench front.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; }}
",
        prefix = prefix.display()
    )
}

/// The http block's common part: no access log, temporary files under `prefix`, keep-alive
/// without a request limit (nginx closes after 1,000 requests by default).
fn nginx_http_common(prefix: &std::path::Path) -> String {
    format!(
        "    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
",
        prefix = prefix.display()
    )
}

/// Writes `conf` as `prefix/nginx.conf` (creating `prefix/tmp`) and returns its path.
fn write_conf(prefix: &std::path::Path, conf: &str) -> Result<PathBuf> {
    fs::create_dir_all(prefix.join("tmp")).ctx(|| format!("creating {}", prefix.display()))?;
    let path = prefix.join("nginx.conf");
    fs::write(&path, conf).ctx(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts the application: nginx serving `BODY_BYTES` bytes at `/health` over plain HTTP/1.1
/// with keep-alive, on [`LOAD_CPU`].
fn start_upstream(p: &Paths) -> Result<Running> {
    let prefix = p.out.join("front-upstream");
    let www = prefix.join("www");
    fs::create_dir_all(&www).ctx(|| format!("creating {}", www.display()))?;
    let file = www.join("health");
    fs::write(&file, "a".repeat(BODY_BYTES)).ctx(|| format!("writing {}", file.display()))?;
    let port = free_port()?;
    let conf = format!(
        "{head}http {{
{common}    server {{
        listen 127.0.0.1:{port};
        root {www};
        default_type text/plain;
        location = {STATUS_PATH} {{ stub_status; }}
    }}
}}
",
        head = nginx_head(&prefix),
        common = nginx_http_common(&prefix),
        www = www.display(),
    );
    let conf = write_conf(&prefix, &conf)?;
    let mut cmd = pinned(LOAD_CPU);
    cmd.args(["nginx", "-q", "-c"]).arg(conf);
    start_listening(cmd, "the upstream (nginx)", port)
}

fn nginx_front_conf(p: &Paths, port: u16, upstream: u16) -> Result<PathBuf> {
    let prefix = p.out.join("front-nginx");
    let conf = format!(
        "{head}http {{
{common}    upstream app {{
        server 127.0.0.1:{upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
",
        head = nginx_head(&prefix),
        common = nginx_http_common(&prefix),
        cert = p.cert.display(),
        key = p.key.display(),
    );
    write_conf(&prefix, &conf)
}

/// Starts `front` on [`SERVER_CPU`], forwarding to the upstream at `upstream`.
fn start(front: Front, p: &Paths, upstream: u16) -> Result<Running> {
    let port = free_port()?;
    let mut cmd = pinned(SERVER_CPU);
    match front {
        Front::Ours => {
            cmd.arg(&p.server)
                .args(["--listen", &format!("tcp:127.0.0.1:{port}")])
                .args(["--upstream", &format!("tcp:127.0.0.1:{upstream}")])
                .args(["--workers", "1", "--local-attestation", "off"])
                .args(["--max-connections", "19000", "--idle-timeout", "10m"])
                .args(["--nsm-device", "/nonexistent/nsm", "--tls-cert"])
                .arg(&p.cert)
                .arg("--tls-key")
                .arg(&p.key);
        }
        Front::Nginx => {
            cmd.args(["nginx", "-q", "-c"])
                .arg(nginx_front_conf(p, port, upstream)?);
        }
    }
    // Our server's request log goes to /dev/null: it is still written, so its cost counts.
    start_listening(cmd, front.name(), port)
}

fn load_round(front: Front, p: &Paths, o: Opts, upstream: &Running) -> Result<Load> {
    let srv = start(front, p, upstream.port)?;
    eprintln!("  {}: warm-up", front.name());
    wrk(srv.port, 2)?;
    let accepts0 = upstream_accepts(upstream.port)?;
    let (cpu0, up0) = (cpu_secs(srv.pid, p)?, cpu_secs(upstream.pid, p)?);
    let (requests, rps, p99_ms) = wrk(srv.port, o.secs)?;
    let (cpu1, up1) = (cpu_secs(srv.pid, p)?, cpu_secs(upstream.pid, p)?);
    // Less the connection that read the counters the first time.
    let opened = upstream_accepts(upstream.port)?.saturating_sub(accepts0 + 1);
    let n = to_f64(requests.max(1));
    let load = Load {
        rps,
        p99_ms,
        cpu_us_per_req: (cpu1 - cpu0) * 1e6 / n,
        upstream_cpu_us_per_req: (up1 - up0) * 1e6 / n,
        upstream_conns_per_kreq: to_f64(opened) * 1e3 / n,
    };
    eprintln!(
        "  {}: {:.0} req/s, p99 {:.2} ms, {:.2} µs front CPU/req, {:.2} µs upstream CPU/req, \
         {opened} upstream connections opened",
        front.name(),
        load.rps,
        load.p99_ms,
        load.cpu_us_per_req,
        load.upstream_cpu_us_per_req
    );
    Ok(load)
}

fn best_load(b: Option<Load>, l: Load) -> Load {
    match b {
        None => l,
        Some(b) => Load {
            rps: b.rps.max(l.rps),
            p99_ms: b.p99_ms.min(l.p99_ms),
            cpu_us_per_req: b.cpu_us_per_req.min(l.cpu_us_per_req),
            upstream_cpu_us_per_req: b.upstream_cpu_us_per_req.min(l.upstream_cpu_us_per_req),
            upstream_conns_per_kreq: b.upstream_conns_per_kreq.min(l.upstream_conns_per_kreq),
        },
    }
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result {
    let (o, server) = parse("front", args)?;
    let mut p = prepare()?;
    if let Some(server) = server {
        p.server = server;
    }
    let upstream = start_upstream(&p)?;
    let mut load: Vec<Option<Load>> = vec![None; FRONTS.len()];
    let mut mem: Vec<Option<Memory>> = vec![None; FRONTS.len()];
    for round in 0..o.rounds {
        eprintln!("round {} of {}", round + 1, o.rounds);
        // Alternate the order between rounds.
        let mut order: Vec<usize> = (0..FRONTS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for &i in &order {
            load[i] = Some(best_load(load[i], load_round(FRONTS[i], &p, o, &upstream)?));
        }
        eprintln!("  memory: {} idle TLS connections per front", o.conns);
        for &i in &order {
            let front = FRONTS[i];
            let srv = start(front, &p, upstream.port)?;
            let m = hold_memory(&srv, front.name(), &p, o.conns)?;
            mem[i] = Some(match mem[i] {
                Some(b) if b.per_conn_kib() <= m.per_conn_kib() => b,
                _ => m,
            });
        }
    }
    drop(upstream);
    let load: Vec<Load> = load.into_iter().map(Option::unwrap_or_default).collect();
    let mem: Vec<Memory> = mem.into_iter().map(Option::unwrap_or_default).collect();
    type Row = (&'static str, &'static str, fn(&Load, &Memory) -> f64);
    let rows: [Row; 6] = [
        ("keep-alive requests/s (64 conns)", "higher", |l, _| l.rps),
        ("keep-alive p99 latency, ms", "lower", |l, _| l.p99_ms),
        ("front CPU per request, µs", "lower", |l, _| {
            l.cpu_us_per_req
        }),
        ("upstream CPU per request, µs", "lower", |l, _| {
            l.upstream_cpu_us_per_req
        }),
        ("upstream connects per 1k requests", "lower", |l, _| {
            l.upstream_conns_per_kreq
        }),
        ("RSS per idle TLS connection, KiB", "lower", |_, m| {
            m.per_conn_kib()
        }),
    ];
    let mut table = format!(
        "{:<34} {:>12} {:>12} {:>10}  better\n",
        "", "server", "nginx", "vs nginx"
    );
    let mut json_rows = Vec::new();
    let mut ratios = Vec::new();
    for (name, better, f) in rows {
        let v: Vec<f64> = load.iter().zip(&mem).map(|(l, m)| f(l, m)).collect();
        let (ours, nginx) = (v[0], v[1]);
        ratios.push(ratio(ours, nginx));
        let _ = writeln!(
            table,
            "{name:<34} {ours:>12.2} {nginx:>12.2} {:>10}  {better}",
            ratio(ours, nginx)
        );
        json_rows.push(format!(
            "    {{\"metric\": \"{name}\", \"better\": \"{better}\", \"server\": {ours:.3}, \"nginx\": {nginx:.3}}}"
        ));
    }
    println!("\n{table}");
    println!(
        "goal: CPU per request ≤ 1.00x nginx (this run: {})",
        ratios[2]
    );
    println!(
        "goal: memory per idle connection ≤ 0.50x nginx (this run: {})",
        ratios[5]
    );
    println!(
        "(best of {} rounds of {} s; front on CPU {SERVER_CPU}, wrk -t1 -c64 and the upstream \
         (nginx, {BODY_BYTES}-byte file, keep-alive) on CPU {LOAD_CPU}; tls-hold x {})",
        o.rounds, o.secs, o.conns
    );
    let json = format!(
        "{{\n  \"benchmark\": \"front\",\n  \"secs\": {},\n  \"rounds\": {},\n  \"idle_connections\": {},\n  \"nginx\": \"{}\",\n  \"upstream\": \"nginx, {BODY_BYTES}-byte static file, HTTP/1.1 keep-alive\",\n  \"rows\": [\n{}\n  ],\n  \"rss_kib\": {{{}}}\n}}\n",
        o.secs,
        o.rounds,
        o.conns,
        nginx_version(),
        json_rows.join(",\n"),
        FRONTS
            .iter()
            .zip(&mem)
            .map(|(front, m)| format!(
                "\"{}\": {{\"before\": {}, \"during\": {}, \"held\": {}}}",
                front.name(),
                m.before_kib,
                m.during_kib,
                m.held
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = p.out.join("front.json");
    fs::write(&path, json).ctx(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
