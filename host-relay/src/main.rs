//! The `host-relay` binary: parse the command line, bind the routes, start the workers, and wait
//! for SIGTERM/SIGINT (resolving TCP target names again every half minute meanwhile); then
//! stop accepting and drain. See the library's documentation for the parts.

use host_relay::error::Error;
use host_relay::listener::Listener;
use host_relay::route::{RouteRt, RESOLVE_EVERY};
use host_relay::worker::{self, Handle, Shared};
use host_relay::{cli, metrics, sys};
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

fn run(args: cli::Args) -> Result<(), Error> {
    // Block the termination signals before any thread exists, so every thread inherits the mask
    // and only the main thread's wait sees them.
    let signals = sys::block_term_signals().map_err(Error::Signals)?;
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for (i, r) in args.routes.into_iter().enumerate() {
        let l = Listener::bind(&r.listen).map_err(|source| Error::Listen {
            route: i,
            addr: r.listen.to_string(),
            source,
        })?;
        let bound = l.describe(&r.listen);
        let max = u64::try_from(r.max_conns.unwrap_or(args.max_conns)).unwrap_or(u64::MAX);
        let proxy = r.proxy_v2 || args.proxy_v2;
        eprintln!(
            "host-relay: route {i}: listening on {bound} -> {}{}, max {max} connections",
            r.target,
            if proxy { " with PROXY v2" } else { "" }
        );
        let rt = RouteRt::new(r, bound, max, proxy);
        if let Err(e) = rt.addresses() {
            if rt.needs_resolving() {
                eprintln!("host-relay: route {i}: {e}; trying again every {RESOLVE_EVERY:?}");
            }
        }
        routes.push(rt);
        listeners.push(l);
    }
    let shared = Arc::new(Shared::new(routes, listeners, args.settings));
    if let Some(m) = &args.metrics {
        let view = Arc::new(
            shared
                .routes
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
        let bound = metrics::serve(m, view).map_err(|source| Error::Metrics {
            addr: m.to_string(),
            source,
        })?;
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
        let h = Arc::new(Handle::new().map_err(Error::Epoll)?);
        let (s, hh) = (Arc::clone(&shared), Arc::clone(&h));
        let t = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker::run(s, hh))
            .map_err(|source| Error::Spawn { worker: i, source })?;
        handles.push(h);
        threads.push(t);
    }
    eprintln!("host-relay: {workers} workers ready");
    let sig = loop {
        if let Some(sig) = sys::sigtimedwait(&signals, RESOLVE_EVERY).map_err(Error::Signals)? {
            break sig;
        }
        // DNS answers change (and a name may resolve now that did not at start).
        for r in shared.routes.iter().filter(|r| r.needs_resolving()) {
            r.resolve();
        }
    };
    let drain = shared.settings.drain;
    eprintln!("host-relay: signal {sig}: no longer accepting; draining for up to {drain:?}");
    shared.stop.store(true, SeqCst);
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
    for l in shared.listeners().iter_mut() {
        l.take();
    }
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(Error::Epoll(e)),
            Err(_) => result = Err(Error::Panicked),
        }
    }
    eprintln!("host-relay: stopped");
    result
}
