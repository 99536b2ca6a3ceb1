//! Putting it together: bind the listeners, start one worker thread per listener, and wait
//! (until a worker fails, or, after [`Server::stop_on_signals`], until SIGTERM or SIGINT has
//! been handled: every worker drained).

use crate::budget::Budget;
use crate::config::{Limits, ListenAddr};
use crate::error::{Error, Result};
use crate::front::Front;
use crate::handler::Handler;
use crate::listener;
pub use crate::stats::Stats;
use crate::tls::ServerConfig;
use crate::worker::{Shared, Worker};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Batches of log lines waiting for stdout before workers start dropping them.
const LOG_QUEUE: usize = 64;

/// The log thread: writes the workers' batches to stdout, and says when lines were dropped.
fn write_log(rx: &std::sync::mpsc::Receiver<Vec<u8>>, stats: &Stats) {
    let mut reported = 0;
    for batch in rx {
        let mut out = std::io::stdout().lock();
        let dropped = stats.log_dropped.load(Ordering::Relaxed);
        if dropped != reported {
            let _ = writeln!(
                out,
                "server: {} request log lines dropped (stdout too slow)",
                dropped - reported
            );
            reported = dropped;
        }
        // A closed stdout must not stop the server: the lines are lost, nothing else.
        let _ = out.write_all(&batch);
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: ListenAddr,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// The limits.
    pub limits: Limits,
}

/// A bound server, ready to run.
pub struct Server {
    bound: listener::Bound,
    tls: Option<Arc<ServerConfig>>,
    front: Option<Arc<Front>>,
    limits: Limits,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
    shutdown: Option<(Arc<SignalFd>, Duration)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.bound.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listeners. `tls: None` serves plain HTTP.
    pub fn bind(config: &Config, tls: Option<Arc<ServerConfig>>) -> Result<Server> {
        config.limits.validate()?;
        if config.workers == 0 {
            return Err(Error::Config("workers must be at least 1".into()));
        }
        let bound = listener::bind(config.listen, config.workers)?;
        Ok(Server {
            bound,
            tls,
            front: None,
            limits: config.limits.clone(),
            stats: Arc::new(Stats::default()),
            budget: Arc::new(Budget::new(config.limits.memory_budget)),
            shutdown: None,
        })
    }

    /// Makes SIGTERM and SIGINT stop the server gracefully: stop accepting, answer the
    /// requests in progress (with `Connection: close`) for at most `drain_timeout`, close the
    /// rest, then [`Server::run`] returns `Ok`. Blocks the two signals in the calling thread;
    /// call it before any other thread is started (threads inherit the mask), or block them
    /// in those threads too, otherwise a thread that does not block them dies of them.
    pub fn stop_on_signals(&mut self, drain_timeout: Duration) -> Result<()> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        mask.thread_block().map_err(|e| Error::Signals(e.into()))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::Signals(e.into()))?;
        self.shutdown = Some((Arc::new(fd), drain_timeout));
        Ok(())
    }

    /// Front mode (see [`crate::front`]): the handler given to [`Server::run`] answers only
    /// `front.local_paths` (the attestation endpoint); every other request is forwarded to the
    /// application at `front.upstream`.
    pub fn front(&mut self, front: Front) {
        self.front = Some(Arc::new(front));
    }

    /// The address bound (port 0 resolved to the real port).
    pub fn local_addr(&self) -> ListenAddr {
        self.bound.addr
    }

    /// The counters, for the application (`/health`) and tests.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The memory budget shared by the workers (for an application that keeps data of its
    /// own per client, and for `/health`).
    pub fn budget(&self) -> Arc<Budget> {
        Arc::clone(&self.budget)
    }

    /// Runs the workers until one fails (returns that failure) or, after
    /// [`Server::stop_on_signals`], until a signal has been handled (returns `Ok` after a
    /// line on stdout saying how the drain went).
    pub fn run(self, handler: Arc<dyn Handler>) -> Result<()> {
        let mut threads = Vec::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (log_tx, log_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(LOG_QUEUE);
        let stats = Arc::clone(&self.stats);
        let log_thread = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || write_log(&log_rx, &stats))
            .map_err(Error::Spawn)?;
        for (i, listener) in self.bound.listeners.into_iter().enumerate() {
            let shared = Shared {
                tls: self.tls.clone(),
                front: self.front.clone(),
                handler: Arc::clone(&handler),
                limits: self.limits.clone(),
                stats: Arc::clone(&self.stats),
                budget: Arc::clone(&self.budget),
                slice: crate::http::DEFAULT_SLICE,
                log_tx: log_tx.clone(),
            };
            let mut worker =
                Worker::new(listener, self.bound.shared, shared).map_err(Error::Epoll)?;
            if let Some((signals, drain)) = &self.shutdown {
                worker
                    .stop_on(Arc::clone(signals), *drain)
                    .map_err(Error::Epoll)?;
            }
            let tx = tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    let r = worker.run();
                    let _ = tx.send(r);
                })
                .map_err(Error::Spawn)?;
            threads.push(t);
        }
        drop(tx);
        drop(log_tx);
        // Without a shutdown signal workers run forever: the first one to return ends the
        // server. After one, each returns once drained.
        let Some((signals, drain_timeout)) = self.shutdown else {
            return match rx.recv() {
                Ok(Err(e)) => Err(Error::Epoll(e)),
                Ok(Ok(_)) | Err(_) => Err(Error::Config("a worker stopped".into())),
            };
        };
        let mut cut = 0;
        for _ in 0..threads.len() {
            match rx.recv() {
                Ok(Ok(drained)) => cut += drained.cut,
                Ok(Err(e)) => return Err(Error::Epoll(e)),
                Err(_) => return Err(Error::Config("a worker stopped".into())),
            }
        }
        for t in threads {
            let _ = t.join();
        }
        // Every sender is gone: the log thread writes what is left and ends.
        let _ = log_thread.join();
        let name = match signals.read_signal() {
            Ok(Some(info)) => match Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) {
                Ok(sig) => sig.as_str(),
                Err(_) => "a signal",
            },
            _ => "a signal",
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "server: {name}: stopped accepting and drained; {cut} connection(s) with a request still in progress closed at the {}ms deadline; exiting",
            drain_timeout.as_millis()
        );
        let _ = out.flush();
        Ok(())
    }
}
