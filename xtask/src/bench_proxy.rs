//! `cargo xtask bench proxy`: what `eif-builder proxy` adds. The default image boots in the
//! emulator behind host-relay; the same `GET /health` is asked directly of the enclave's port
//! (HTTPS, what a client that trusts the operator would do) and through the proxy on loopback
//! (plain HTTP in, attested TLS out, its connections to the enclave attested once and reused),
//! alternating, best of `--rounds` (default 3) rounds of `--secs` (default 5) seconds:
//!
//! - keep-alive latency: `wrk -t1 -c1` (one connection, one request at a time): requests/s and
//!   wrk's latencies; the proxy's added latency per request is `1/rps(proxy) - 1/rps(direct)`
//!   (one request at a time, so a request takes 1/rps; wrk's mean is noisier under the
//!   emulator's pauses);
//! - keep-alive throughput: `wrk -t1 -c16`: requests/s.
//!
//! The enclave runs under QEMU's TCG on this machine, so the absolute numbers are the
//! emulator's; the ratio and the added latency are what the proxy costs on top. Written to
//! `target/bench/proxy.json`. A benchmark, not a test: nothing here asserts a speed.

use crate::bench_server::{parse_wrk, ratio, wrk_ms};
use crate::boot_tests::{boot_detached, Proxy};
use crate::cmd::{err, output, Context, Error, Result};
use crate::{eif, enclave};
use std::fmt::Write as _;
use std::fs;
use std::process::Command;

/// One wrk run: requests/s, mean latency in ms, p99 in ms.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    mean_ms: f64,
    p99_ms: f64,
}

fn wrk(url: &str, conns: u32, secs: u64) -> Result<Run> {
    let text = output(Command::new("wrk").args([
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
        url,
    ]))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return err(format!("wrk saw errors:\n{text}"));
    }
    let (_, rps, p99_ms) =
        parse_wrk(&text).ok_or_else(|| Error(format!("cannot read wrk's output:\n{text}")))?;
    let mean_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Latency"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(wrk_ms)
        .ok_or_else(|| Error(format!("no mean latency in wrk's output:\n{text}")))?;
    Ok(Run {
        rps,
        mean_ms,
        p99_ms,
    })
}

fn best(a: Run, b: Run) -> Run {
    Run {
        rps: a.rps.max(b.rps),
        mean_ms: if a.mean_ms == 0.0 {
            b.mean_ms
        } else {
            a.mean_ms.min(b.mean_ms)
        },
        p99_ms: if a.p99_ms == 0.0 {
            b.p99_ms
        } else {
            a.p99_ms.min(b.p99_ms)
        },
    }
}

fn number(args: &[String], flag: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| Error(format!("bench proxy: {flag} takes a positive number"))),
    }
}

pub fn run(args: &[String]) -> Result {
    for a in args.iter().step_by(2) {
        if a != "--secs" && a != "--rounds" {
            return err(format!(
                "bench proxy: unexpected argument `{a}` (options: --secs N, --rounds N)"
            ));
        }
    }
    let secs = number(args, "--secs", 5)?;
    let rounds = number(args, "--rounds", 3)?;
    let image = eif::build(&eif::Options::default())?;
    let _ = enclave::tools()?;
    let out = eif::target_dir(&crate::cmd::project_root()).join("bench");
    let (opts, started) = boot_detached(image.eif.clone(), out.join("proxy-run"));
    let result = started.and_then(|()| measure(&image, opts.port, secs, rounds));
    let _ = enclave::stop(&opts.dir);
    let (direct1, proxy1, direct16, proxy16) = result?;
    let per_request = |r: Run| if r.rps > 0.0 { 1000.0 / r.rps } else { 0.0 };
    let added_ms = per_request(proxy1) - per_request(direct1);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "GET /health, keep-alive, the enclave in the emulator behind host-relay (best of {rounds} rounds of {secs} s, alternating)"
    );
    let _ = writeln!(
        text,
        "{:40} {:>10} {:>10} {:>7}",
        "", "direct", "proxy", "ratio"
    );
    let rows: [(&str, f64, f64, usize); 5] = [
        ("1 connection: requests/s", direct1.rps, proxy1.rps, 0),
        (
            "1 connection: ms per request (1/rps)",
            per_request(direct1),
            per_request(proxy1),
            3,
        ),
        (
            "1 connection: wrk mean latency (ms)",
            direct1.mean_ms,
            proxy1.mean_ms,
            3,
        ),
        (
            "1 connection: wrk p99 (ms)",
            direct1.p99_ms,
            proxy1.p99_ms,
            3,
        ),
        ("16 connections: requests/s", direct16.rps, proxy16.rps, 0),
    ];
    for (name, direct, proxied, digits) in rows {
        let _ = writeln!(
            text,
            "{name:40} {direct:>10.digits$} {proxied:>10.digits$} {:>7}",
            ratio(proxied, direct)
        );
    }
    let _ = writeln!(
        text,
        "added latency per keep-alive request (1 connection): {added_ms:.3} ms"
    );
    print!("{text}");
    fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let json = format!(
        "{{\n  \"secs\": {secs},\n  \"rounds\": {rounds},\n  \"direct_c1_rps\": {:.1},\n  \"proxy_c1_rps\": {:.1},\n  \"direct_c1_mean_ms\": {:.4},\n  \"proxy_c1_mean_ms\": {:.4},\n  \"added_latency_ms\": {:.4},\n  \"direct_c1_p99_ms\": {:.4},\n  \"proxy_c1_p99_ms\": {:.4},\n  \"direct_c16_rps\": {:.1},\n  \"proxy_c16_rps\": {:.1}\n}}\n",
        direct1.rps,
        proxy1.rps,
        direct1.mean_ms,
        proxy1.mean_ms,
        added_ms,
        direct1.p99_ms,
        proxy1.p99_ms,
        direct16.rps,
        proxy16.rps
    );
    let path = out.join("proxy.json");
    fs::write(&path, json).ctx(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The four figures: direct and proxied with 1 connection, then with 16.
fn measure(image: &eif::Image, port: u16, secs: u64, rounds: u64) -> Result<(Run, Run, Run, Run)> {
    let proxy = Proxy::start(&image.tool, port, &image.measurements, &[])?;
    let direct = format!("https://127.0.0.1:{port}/health");
    let proxied = format!("http://127.0.0.1:{}/health", proxy.port);
    // Warm both paths (the proxy attests its first connections).
    wrk(&direct, 16, 1)?;
    wrk(&proxied, 16, 1)?;
    let mut figures = [Run::default(); 4];
    for round in 0..rounds {
        for (i, (url, conns)) in [(&direct, 1), (&proxied, 1), (&direct, 16), (&proxied, 16)]
            .into_iter()
            .enumerate()
        {
            let r = wrk(url, conns, secs)?;
            println!(
                "round {}/{rounds} {:6} -c{conns:<2}: {:8.0} req/s, mean {:.3} ms, p99 {:.3} ms",
                round + 1,
                if url == &direct { "direct" } else { "proxy" },
                r.rps,
                r.mean_ms,
                r.p99_ms
            );
            if let Some(f) = figures.get_mut(i) {
                *f = best(*f, r);
            }
        }
    }
    let [a, b, c, d] = figures;
    Ok((a, b, c, d))
}
