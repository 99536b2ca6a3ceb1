//! `host-relay`: forwards bytes between TCP, Unix sockets and vsock on the parent EC2 instance.
//!
//! The parent is not trusted by the enclave's users, so this program only moves bytes: it links no
//! TLS or crypto code and parses no payload. Each route is `LISTEN=TARGET`; worker threads run an
//! epoll loop each and move data with splice(2) (see `conn.rs`), falling back to read/write per
//! connection where the kernel refuses to splice a socket (AF_VSOCK on older kernels).

mod addr;
mod cli;
mod conn;
mod connect;
mod metrics;
mod proxy;
mod relay;
mod sys;

use relay::{Ctx, Handle, Listener, RouteRt};
use std::process::ExitCode;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(a)) => a,
        Ok(cli::Command::Print(s)) => {
            print!("{s}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("host-relay: {e}\n(see host-relay --help)");
            return ExitCode::from(2);
        }
    };
    match run(*args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> Result<(), String> {
    // Block the termination signals before any thread exists, so every thread inherits the mask
    // and only the main thread's sigwait sees them.
    let signals = sys::block_term_signals().map_err(|e| format!("blocking signals: {e}"))?;
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for (i, r) in args.routes.into_iter().enumerate() {
        let l = Listener::bind(&r.listen)
            .map_err(|e| format!("route {i}: listening on {}: {e}", r.listen))?;
        let bound = l.describe(&r.listen);
        let max = r.max_conns.unwrap_or(args.max_conns) as u64;
        let proxy = r.proxy_v2 || args.proxy_v2;
        eprintln!(
            "host-relay: route {i}: listening on {bound} -> {}{}, max {max} connections",
            r.target,
            if proxy { " with PROXY v2" } else { "" }
        );
        routes.push(RouteRt::new(r, bound, max, proxy));
        listeners.push(l);
    }
    let ctx = Arc::new(Ctx::new(routes, listeners, args.settings));
    if let Some(m) = &args.metrics {
        let view = Arc::new(
            ctx.routes
                .iter()
                .map(|r| {
                    (
                        r.listen.clone(),
                        r.route.target.to_string(),
                        Arc::clone(&r.counters),
                    )
                })
                .collect(),
        );
        let bound = metrics::serve(m, view).map_err(|e| format!("metrics on {m}: {e}"))?;
        eprintln!("host-relay: metrics on tcp:{bound}");
    }
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        args.workers
    };
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for i in 0..workers {
        let h = Arc::new(Handle::new().map_err(|e| format!("eventfd: {e}"))?);
        let (c, hh) = (Arc::clone(&ctx), Arc::clone(&h));
        let t = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || relay::run(c, hh))
            .map_err(|e| format!("starting worker {i}: {e}"))?;
        handles.push(h);
        threads.push(t);
    }
    eprintln!("host-relay: {workers} workers ready");
    let sig = sys::sigwait(&signals).map_err(|e| format!("sigwait: {e}"))?;
    let drain = ctx.settings.drain;
    eprintln!("host-relay: signal {sig}: no longer accepting; draining for up to {drain:?}");
    ctx.stop.store(true, SeqCst);
    for h in &handles {
        h.wake();
    }
    // Close the listening sockets once no worker watches them, so new clients are refused
    // instead of waiting in the backlog.
    let t0 = Instant::now();
    while !handles.iter().all(|h| h.stopped_accepting.load(SeqCst))
        && t0.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    for l in ctx.listeners().iter_mut() {
        l.take();
    }
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(format!("worker: {e}")),
            Err(_) => result = Err("a worker panicked".to_string()),
        }
    }
    eprintln!("host-relay: stopped");
    result
}
