//! One worker: an epoll instance, its listener, and the connections it accepted, all on one
//! thread, nothing shared with other workers but the handler, the TLS configuration, the
//! counters and the memory budget. What a connection does with an event is `conn.rs`'s
//! business; the worker keeps epoll, the slab of connections, accepting, and the clock.
//!
//! epoll is used **level-triggered**: a descriptor is reported as long as it is ready, so a
//! connection may read a bounded amount per round (fairness between connections) without
//! losing the rest, and interest is simply what the connection wants now. It is changed with
//! `epoll_ctl(MOD)` only when it differs from what is registered. A connection that yielded
//! its time slice is put on a run queue and served again after the other events of the round
//! (the next `epoll_wait` does not sleep then); one the memory budget paused is tried again
//! once memory is freed or at the next sweep.
//!
//! Accepting refuses (accepts and closes at once) beyond `max_connections` and while the
//! memory budget says so. Deadlines are checked once a second.
//!
//! Shutdown: the server's signalfd (SIGTERM, SIGINT) is registered in every worker's epoll
//! and never read by them, so a pending signal wakes them all (level-triggered). A worker then
//! stops accepting, closes its connections that have no request in progress, answers the
//! requests in progress with `Connection: close`, and returns once none is left or at the
//! drain deadline, closing what remains.

use crate::budget::Budget;
use crate::config::Limits;
use crate::conn::{Conn, Env, Interest, Next, Ready};
use crate::front::conn::{FrontConn, Tick, Upstreams};
use crate::front::upstream::{Pool, UpSock};
use crate::front::{Front, UpstreamAddr};
use crate::handler::Handler;
use crate::stats::Stats;
use crate::sys::Socket;
use crate::tls::ServerConfig;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::SignalFd;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The listener's epoll token; connection `i` of the slab is `i + 1`.
const LISTENER: u64 = 0;
/// The shutdown signalfd's token.
const SIGNAL: u64 = u64::MAX;
/// Front mode: the application connection of connection `i` is `UPSTREAM | (i + 1)`.
const UPSTREAM: u64 = 1 << 62;
/// How often a draining worker looks for connections that became idle.
const DRAIN_TICK: Duration = Duration::from_millis(50);
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// Connections accepted per listener wakeup, so a flood of connects cannot starve the others.
const ACCEPTS_PER_WAKEUP: usize = 64;
/// How long accepting pauses after running out of descriptors or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Request log lines are handed to the log thread once this many bytes or this much time
/// gathered (the thread, not the loop, waits for a slow console).
const LOG_HANDOFF_BYTES: usize = 16 * 1024;
const LOG_HANDOFF_EVERY: Duration = Duration::from_millis(20);

fn epoll_flags(i: Interest) -> EpollFlags {
    let mut f = EpollFlags::empty();
    if i.read {
        f |= EpollFlags::EPOLLIN;
    }
    if i.write {
        f |= EpollFlags::EPOLLOUT;
    }
    f
}

/// A client connection: served here, or forwarded to the application (front mode).
#[derive(Debug)]
// The served connection stays inline, as before front mode: no allocation per connection.
#[allow(clippy::large_enum_variant)]
enum Client {
    Serve(Conn<Socket>),
    Front(Box<FrontConn<Socket, UpSock>>),
}

impl Client {
    fn socket(&self) -> &Socket {
        match self {
            Client::Serve(c) => c.socket(),
            Client::Front(c) => c.socket(),
        }
    }

    fn release(&mut self, budget: &Budget) {
        match self {
            Client::Serve(c) => c.release(budget),
            Client::Front(c) => c.release(budget),
        }
    }

    fn drain(&mut self) {
        match self {
            Client::Serve(c) => c.drain(),
            Client::Front(c) => c.drain(),
        }
    }

    fn is_idle(&self) -> bool {
        match self {
            Client::Serve(c) => c.is_idle(),
            Client::Front(c) => c.is_idle(),
        }
    }

    fn is_lingering(&self) -> bool {
        match self {
            Client::Serve(c) => c.is_lingering(),
            Client::Front(c) => c.is_lingering(),
        }
    }
}

/// A connection in the slab with the interest registered for it (and, in front mode, for
/// its application connection: which one, by generation, and the interest).
#[derive(Debug)]
struct Slot {
    conn: Client,
    registered: Interest,
    up: Option<(u64, Interest)>,
}

/// The application connections of one worker: its pool, and new ones.
struct WorkerUpstreams<'a> {
    pool: &'a mut Pool,
    /// Connections kept by their last client (counted against the pool's size).
    kept: &'a mut usize,
    addr: &'a UpstreamAddr,
    epoll: &'a Epoll,
}

impl Upstreams<UpSock> for WorkerUpstreams<'_> {
    fn open(&mut self) -> io::Result<(UpSock, bool)> {
        match self.pool.take() {
            Some(s) => Ok((s, true)),
            None => self.fresh().map(|s| (s, false)),
        }
    }

    fn fresh(&mut self) -> io::Result<UpSock> {
        UpSock::connect(self.addr)
    }

    fn release(&mut self, up: UpSock) {
        // Idle in the pool, it must not wake the connection it served (it may be out of
        // epoll already, if it last waited for nothing).
        match self.epoll.delete(up.as_fd()) {
            Ok(()) | Err(Errno::ENOENT) => self.pool.put(up),
            Err(_) => {}
        }
    }

    fn keep(&mut self) -> bool {
        let room = *self.kept + self.pool.len() < self.pool.max();
        if room {
            *self.kept += 1;
        }
        room
    }

    fn unkeep(&mut self) {
        *self.kept = self.kept.saturating_sub(1);
    }
}

/// What the worker shares with every other one.
pub(crate) struct Shared {
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) front: Option<Arc<Front>>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<Stats>,
    pub(crate) budget: Arc<Budget>,
    pub(crate) slice: Duration,
    pub(crate) log_tx: SyncSender<Vec<u8>>,
}

/// A worker's state.
pub(crate) struct Worker {
    epoll: Epoll,
    listener: Arc<OwnedFd>,
    shared_listener: bool,
    accepting: bool,
    accept_resume: Option<Instant>,
    shared: Shared,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Front mode: idle connections to the application.
    pool: Pool,
    /// Front mode: idle connections to the application kept by the client that used them.
    kept: usize,
    /// Connections to serve again this round (their slice ran out).
    run_queue: Vec<usize>,
    /// Connections the memory budget paused.
    paused: Vec<usize>,
    out: Vec<u8>,
    log: Vec<u8>,
    log_handoff: Instant,
    date: String,
    date_secs: u64,
    /// The shutdown signalfd and the drain timeout, if the server stops on signals.
    shutdown: Option<(Arc<SignalFd>, Duration)>,
    /// Set once a signal arrived: the drain deadline.
    draining: Option<Instant>,
}

/// How a worker's drain ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Connections that were still busy at the drain deadline and were closed.
    pub(crate) cut: usize,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("connections", &(self.slots.len() - self.free.len()))
            .finish_non_exhaustive()
    }
}

fn listener_event(shared: bool) -> EpollEvent {
    let flags = if shared {
        EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE
    } else {
        EpollFlags::EPOLLIN
    };
    EpollEvent::new(flags, LISTENER)
}

impl Worker {
    pub(crate) fn new(
        listener: Arc<OwnedFd>,
        shared_listener: bool,
        shared: Shared,
    ) -> io::Result<Worker> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(listener.as_fd(), listener_event(shared_listener))?;
        let pool = Pool::new(shared.front.as_ref().map_or(0, |f| f.pool));
        Ok(Worker {
            pool,
            kept: 0,
            epoll,
            listener,
            shared_listener,
            accepting: true,
            accept_resume: None,
            shared,
            slots: Vec::new(),
            free: Vec::new(),
            run_queue: Vec::new(),
            paused: Vec::new(),
            out: Vec::new(),
            log: Vec::new(),
            log_handoff: Instant::now(),
            date: String::new(),
            date_secs: u64::MAX,
            shutdown: None,
            draining: None,
        })
    }

    /// Drains and returns when `signals` (the server's SIGTERM/SIGINT signalfd) is readable.
    pub(crate) fn stop_on(&mut self, signals: Arc<SignalFd>, drain: Duration) -> io::Result<()> {
        self.epoll.add(
            signals.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, SIGNAL),
        )?;
        self.shutdown = Some((signals, drain));
        Ok(())
    }

    /// Runs the loop; returns when a shutdown signal has been handled (drained), or if epoll
    /// itself fails.
    pub(crate) fn run(mut self) -> io::Result<Drained> {
        let mut events = [EpollEvent::empty(); EVENTS];
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let mut wake = next_sweep;
            if !self.log.is_empty() {
                wake = wake.min(self.log_handoff + LOG_HANDOFF_EVERY);
            }
            if self.draining.is_some() {
                wake = wake.min(Instant::now() + DRAIN_TICK);
            }
            let timeout = if self.run_queue.is_empty() {
                let wait = wake.saturating_duration_since(Instant::now());
                EpollTimeout::try_from(wait).unwrap_or(EpollTimeout::NONE)
            } else {
                EpollTimeout::ZERO
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            self.refresh_date();
            let now = Instant::now();
            let again = std::mem::take(&mut self.run_queue);
            for ev in events.get(..n).unwrap_or_default() {
                let token = ev.data();
                if token == LISTENER {
                    if self.draining.is_none() {
                        self.accept(now);
                    }
                } else if token == SIGNAL {
                    self.start_drain(now);
                } else {
                    let f = ev.events();
                    let ready = Ready {
                        read: f.contains(EpollFlags::EPOLLIN),
                        write: f.contains(EpollFlags::EPOLLOUT),
                        hangup: f.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP),
                    };
                    let (client, up) = if token & UPSTREAM != 0 {
                        (Ready::default(), ready)
                    } else {
                        (ready, Ready::default())
                    };
                    if let Ok(slot) = usize::try_from((token & !UPSTREAM) - 1) {
                        self.dispatch(slot, client, up, now);
                    }
                }
            }
            for slot in again {
                self.dispatch(slot, Ready::default(), Ready::default(), now);
            }
            if !self.paused.is_empty() && !self.shared.budget.shedding() {
                for slot in std::mem::take(&mut self.paused) {
                    self.dispatch(slot, Ready::default(), Ready::default(), now);
                }
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_EVERY;
            }
            if let Some(deadline) = self.draining {
                if let Some(drained) = self.drain_step(now, deadline) {
                    if !self.log.is_empty() {
                        // The log thread is alive until every worker is done: wait for it.
                        let _ = self.shared.log_tx.send(std::mem::take(&mut self.log));
                    }
                    return Ok(drained);
                }
            }
            self.hand_off_log(now);
        }
    }

    /// Serves one event of a connection (of its client socket, or in front mode of its
    /// application connection) and applies what it asks for.
    fn dispatch(&mut self, slot: usize, ready: Ready, up_ready: Ready, now: Instant) {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return; // a stale event for a connection closed earlier in this round
        };
        let sh = &self.shared;
        let mut env = Env {
            limits: &sh.limits,
            handler: &*sh.handler,
            date: self.date.as_bytes(),
            log: &mut self.log,
            budget: &sh.budget,
            open: sh.stats.open.load(Ordering::Relaxed),
            out: &mut self.out,
            slice: sh.slice,
            now,
        };
        let next = match &mut s.conn {
            Client::Serve(c) => c.on_ready(ready, &mut env),
            Client::Front(c) => {
                let Some(front) = sh.front.as_ref() else {
                    return;
                };
                let mut ups = WorkerUpstreams {
                    pool: &mut self.pool,
                    kept: &mut self.kept,
                    addr: &front.upstream,
                    epoll: &self.epoll,
                };
                c.on_ready(ready, up_ready, &mut env, &mut ups)
            }
        };
        match next {
            Next::Close(_) => self.close(slot),
            Next::Keep {
                interest,
                again,
                paused,
            } => {
                if interest != s.registered {
                    let mut ev = EpollEvent::new(epoll_flags(interest), slot as u64 + 1);
                    if self.epoll.modify(s.conn.socket().as_fd(), &mut ev).is_err() {
                        self.close(slot);
                        return;
                    }
                    s.registered = interest;
                }
                if let Client::Front(c) = &s.conn {
                    if !register_upstream(&self.epoll, slot, c, &mut s.up) {
                        self.close(slot);
                        return;
                    }
                }
                if again && !self.run_queue.contains(&slot) {
                    self.run_queue.push(slot);
                }
                if paused && !self.paused.contains(&slot) {
                    self.paused.push(slot);
                }
            }
        }
    }

    /// A shutdown signal is pending: stop accepting, mark every connection to close after its
    /// current request, and set the deadline.
    fn start_drain(&mut self, now: Instant) {
        let Some((signals, timeout)) = &self.shutdown else {
            return;
        };
        if self.draining.is_some() {
            return;
        }
        // Left pending (unread) for the other workers and for the server's final log line.
        let _ = self.epoll.delete(signals.as_fd());
        self.draining = Some(now + *timeout);
        if self.accepting {
            let _ = self.epoll.delete(self.listener.as_fd());
            self.accepting = false;
        }
        self.accept_resume = None;
        for s in self.slots.iter_mut().flatten() {
            s.conn.drain();
        }
    }

    /// Closes the connections with no request in progress; `Some` once none is left, or at
    /// the deadline (closing the rest).
    fn drain_step(&mut self, now: Instant, deadline: Instant) -> Option<Drained> {
        let idle: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.conn.is_idle()).map(|_| i))
            .collect();
        for slot in idle {
            self.close(slot);
        }
        let open: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|_| i))
            .collect();
        if open.is_empty() {
            return Some(Drained::default());
        }
        if now < deadline {
            return None;
        }
        let mut cut = 0;
        for slot in open {
            if let Some(Some(s)) = self.slots.get(slot) {
                // Lingering ones had their last response sent already.
                cut += usize::from(!s.conn.is_lingering());
            }
            self.close(slot);
        }
        Some(Drained { cut })
    }

    fn refresh_date(&mut self) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.date_secs {
            self.date_secs = secs;
            self.date = contract::date::http_date(secs);
        }
    }

    /// Gives the gathered log lines to the log thread, or drops them (counted) when it is
    /// behind: a slow console must not slow down serving.
    fn hand_off_log(&mut self, now: Instant) {
        if self.log.is_empty()
            || (self.log.len() < LOG_HANDOFF_BYTES && now < self.log_handoff + LOG_HANDOFF_EVERY)
        {
            return;
        }
        self.log_handoff = now;
        let lines = std::mem::take(&mut self.log);
        if let Err(TrySendError::Full(lines) | TrySendError::Disconnected(lines)) =
            self.shared.log_tx.try_send(lines)
        {
            let n = lines.iter().filter(|&&b| b == b'\n').count();
            self.shared
                .stats
                .log_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let sock = match Socket::accept(self.listener.as_fd()) {
                Ok(s) => s,
                Err(e) => match e.raw_os_error().map(Errno::from_raw) {
                    Some(Errno::EAGAIN) => return,
                    Some(Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO) => continue,
                    Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => {
                        self.pause_accept(now);
                        return;
                    }
                    _ => return,
                },
            };
            let stats = &self.shared.stats;
            if self.shared.budget.refusing() {
                stats.refused_memory.fetch_add(1, Ordering::Relaxed);
                continue; // dropping `sock` closes it
            }
            // Reserve a place first; give it back if over the limit (the race between workers
            // can then only refuse, never overshoot).
            let open = stats.open.fetch_add(1, Ordering::Relaxed);
            if open >= self.shared.limits.max_connections {
                stats.open.fetch_sub(1, Ordering::Relaxed);
                stats.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            let tls = self.shared.tls.as_ref();
            let limits = &self.shared.limits;
            let conn = match &self.shared.front {
                Some(front) => FrontConn::new(sock, tls, front, limits, now)
                    .map(|c| Client::Front(Box::new(c))),
                None => Conn::new(sock, tls, limits, now).map(Client::Serve),
            };
            let Some(mut conn) = conn else {
                stats.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            };
            let registered = Interest {
                read: true,
                write: false,
            };
            let ev = EpollEvent::new(epoll_flags(registered), slot as u64 + 1);
            if self.epoll.add(conn.socket().as_fd(), ev).is_err() {
                self.free.push(slot);
                stats.open.fetch_sub(1, Ordering::Relaxed);
                conn.release(&self.shared.budget);
                continue;
            }
            if let Some(entry) = self.slots.get_mut(slot) {
                *entry = Some(Slot {
                    conn,
                    registered,
                    up: None,
                });
            }
        }
    }

    fn pause_accept(&mut self, now: Instant) {
        if self.accepting && self.epoll.delete(self.listener.as_fd()).is_ok() {
            self.accepting = false;
            self.accept_resume = Some(now + ACCEPT_PAUSE);
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if let Some(mut s) = entry.take() {
                let _ = self.epoll.delete(s.conn.socket().as_fd());
                s.conn.release(&self.shared.budget);
                if let Client::Front(c) = &mut s.conn {
                    // Its kept application connection goes back to the pool.
                    if let Some(up) = c.take_kept() {
                        self.kept = self.kept.saturating_sub(1);
                        match self.epoll.delete(up.as_fd()) {
                            Ok(()) | Err(Errno::ENOENT) => self.pool.put(up),
                            Err(_) => {}
                        }
                    }
                }
                drop(s);
                self.free.push(slot);
                self.shared.stats.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        if let Some(at) = self.accept_resume {
            if now >= at
                && self
                    .epoll
                    .add(self.listener.as_fd(), listener_event(self.shared_listener))
                    .is_ok()
            {
                self.accepting = true;
                self.accept_resume = None;
            }
        }
        let limits = &self.shared.limits;
        let mut expired = Vec::new();
        let mut run = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s.as_mut() else { continue };
            match &mut s.conn {
                Client::Serve(c) => {
                    if c.on_tick(limits, now).is_some() {
                        expired.push(i);
                    }
                }
                Client::Front(c) => match c.on_tick(now) {
                    Tick::Nothing => {}
                    Tick::Run => run.push(i),
                    Tick::Close(_) => expired.push(i),
                },
            }
        }
        for slot in expired {
            self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            self.close(slot);
        }
        for slot in run {
            self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            self.dispatch(slot, Ready::default(), Ready::default(), now);
        }
        // The fair share grows as connections close: paused ones may read again.
        for slot in std::mem::take(&mut self.paused) {
            self.dispatch(slot, Ready::default(), Ready::default(), now);
        }
    }
}

/// Makes epoll watch what a front connection's application connection waits for: added
/// when the connection is new to it (a new generation, or back from waiting on the client),
/// modified when only the interest changed, removed while it waits for nothing. False if
/// epoll refuses (the connection is then closed).
fn register_upstream(
    epoll: &Epoll,
    slot: usize,
    c: &FrontConn<Socket, UpSock>,
    registered: &mut Option<(u64, Interest)>,
) -> bool {
    let Some((up, interest, generation)) = c.upstream() else {
        // Closed (epoll forgot it with its descriptor) or given back to the pool (deleted).
        *registered = None;
        return true;
    };
    if interest == Interest::default() {
        // Waiting on the client: out of epoll altogether, since a hangup or error would be
        // reported whatever the interest, and level-triggered, on every wait.
        if registered.take().is_some() {
            let _ = epoll.delete(up.as_fd());
        }
        return true;
    }
    let token = UPSTREAM | (slot as u64 + 1);
    let mut ev = EpollEvent::new(epoll_flags(interest), token);
    match *registered {
        Some((g, i)) if g == generation => {
            if i != interest && epoll.modify(up.as_fd(), &mut ev).is_err() {
                return false;
            }
        }
        _ => match epoll.add(up.as_fd(), ev) {
            Ok(()) => {}
            // The same descriptor under a new generation (a retry reused the number).
            Err(Errno::EEXIST) => {
                if epoll.modify(up.as_fd(), &mut ev).is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        },
    }
    *registered = Some((generation, interest));
    true
}
