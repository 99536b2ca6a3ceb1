//! One worker: an epoll instance, its listener, and the connections it accepted, all on one
//! thread, nothing shared with other workers but the handler, the TLS configuration and the
//! counters.
//!
//! epoll is used **level-triggered**: a descriptor is reported as long as it is ready, so a
//! connection may read a bounded amount per wakeup (fairness between connections) without
//! losing the rest, and interest is simply what the connection wants now: IN when rustls
//! `wants_read` and we have room for input, OUT when rustls `wants_write`. It is changed with
//! `epoll_ctl(MOD)` only when it differs from what is registered. Edge-triggered would save
//! those calls but require draining every socket to WouldBlock on every event.
//!
//! A connection's life: accept → TLS handshake → requests (answered in order by
//! [`http::Session`]) → close, when the session or the peer ends it, on any socket or TLS
//! error, or when its deadline passes: the handshake timeout from accept, the request timeout
//! from the first byte of a request, the idle timeout otherwise (reset by each response and by
//! each write that makes progress). Deadlines are checked once a second.
//!
//! Shutdown: the server's signalfd (SIGTERM, SIGINT) is registered in every worker's epoll
//! and never read by them, so a pending signal wakes them all (level-triggered). A worker then
//! stops accepting, closes its connections that have no request in progress, answers the
//! requests in progress with `Connection: close`, and returns once none is left or at the
//! drain deadline, closing what remains.

use crate::config::Limits;
use crate::handler::Handler;
use crate::http::{self, Ctx, Session};
use crate::server::Stats;
use crate::sys::Socket;
use crate::tls;
use crate::tls::ServerConfig;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::SignalFd;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The listener's epoll token; connection `i` of the slab is `i + 1`.
const LISTENER: u64 = 0;
/// The shutdown signalfd's token.
const SIGNAL: u64 = u64::MAX;
/// How often a draining worker looks for connections that became idle.
const DRAIN_TICK: Duration = Duration::from_millis(50);
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// Connections accepted per listener wakeup, so a flood of connects cannot starve the others.
const ACCEPTS_PER_WAKEUP: usize = 64;
/// Socket reads per connection wakeup.
const READS_PER_WAKEUP: usize = 4;
/// How long accepting pauses after running out of descriptors or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Request log lines are handed to the log thread once this many bytes or this much time
/// gathered (the thread, not the loop, waits for a slow console).
const LOG_HANDOFF_BYTES: usize = 16 * 1024;
const LOG_HANDOFF_EVERY: Duration = Duration::from_millis(20);
/// How long a connection we end is drained (see [`Conn::lingering`]).
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes drained from it.
const LINGER_BYTES: usize = 256 * 1024;

/// How bytes travel: through TLS, or as they are (`--plain-http`).
#[derive(Debug)]
enum Transport {
    /// Boxed: rustls's state is over a kilobyte, and the slab holds one `Conn` per slot.
    Tls(Box<tls::Conn>),
    Plain {
        out: Vec<u8>,
        sent: usize,
    },
}

impl Transport {
    fn receive(&mut self, sock: &Socket, input: &mut Vec<u8>, max: usize) -> tls::Received {
        match self {
            Transport::Tls(t) => t.receive(sock, input, max),
            Transport::Plain { .. } => {
                let old = input.len();
                let room = max.saturating_sub(old).min(16 * 1024);
                input.resize(old + room, 0);
                let r = (&*sock).read(input.get_mut(old..).unwrap_or_default());
                let n = match r {
                    Ok(n) => n,
                    Err(ref e) => {
                        input.truncate(old);
                        return match e.kind() {
                            io::ErrorKind::WouldBlock => tls::Received::WouldBlock,
                            io::ErrorKind::Interrupted => tls::Received::Data,
                            _ => tls::Received::Fatal,
                        };
                    }
                };
                input.truncate(old + n);
                if n == 0 {
                    tls::Received::Eof
                } else {
                    tls::Received::Data
                }
            }
        }
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tls(t) => t.send(data),
            Transport::Plain { out, .. } => {
                out.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Writes until done or WouldBlock; returns whether anything was written.
    fn flush(&mut self, sock: &Socket) -> io::Result<bool> {
        match self {
            Transport::Tls(t) => t.flush(sock),
            Transport::Plain { out, sent } => {
                let mut progressed = false;
                while let Some(rest) = out.get(*sent..).filter(|r| !r.is_empty()) {
                    match (&*sock).write(rest) {
                        Ok(n) => {
                            *sent += n;
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if *sent >= out.len() {
                    *sent = 0;
                    out.clear();
                    if out.capacity() > 64 * 1024 {
                        *out = Vec::new();
                    }
                }
                Ok(progressed)
            }
        }
    }

    fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(t) => t.wants_write(),
            Transport::Plain { out, sent } => *sent < out.len(),
        }
    }

    fn wants_read(&self) -> bool {
        match self {
            Transport::Tls(t) => t.wants_read(),
            Transport::Plain { .. } => true,
        }
    }

    fn is_handshaking(&self) -> bool {
        match self {
            Transport::Tls(t) => t.is_handshaking(),
            Transport::Plain { .. } => false,
        }
    }

    fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.close_notify();
        }
    }
}

/// Where a connection is in its life, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Idle,
    Request,
    Writing,
}

#[derive(Debug)]
struct Conn {
    sock: Socket,
    transport: Transport,
    session: Session,
    /// Plaintext received and not yet consumed by the session.
    input: Vec<u8>,
    /// The peer will send nothing more.
    eof: bool,
    /// close_notify queued.
    notified: bool,
    /// We ended the connection while the peer may still be sending (an error response before
    /// the body was read, or `Connection: close` with more pipelined): our side is half-closed
    /// and what arrives is discarded until EOF, [`LINGER`] or [`LINGER_BYTES`]. Closing at once
    /// would make the kernel answer unread data with a reset, which can destroy the response
    /// still in flight to the client.
    lingering: Option<usize>,
    phase: Phase,
    deadline: Instant,
    /// The interest registered with epoll.
    interest: EpollFlags,
}

/// What to do with a connection after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Close,
}

/// A worker's state.
pub(crate) struct Worker {
    epoll: Epoll,
    listener: Arc<OwnedFd>,
    shared_listener: bool,
    accepting: bool,
    accept_resume: Option<Instant>,
    tls: Option<Arc<ServerConfig>>,
    handler: Arc<dyn Handler>,
    limits: Limits,
    stats: Arc<Stats>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// The most input a connection may hold: one request of the maximum size plus slack.
    input_cap: usize,
    out: Vec<u8>,
    log: Vec<u8>,
    log_tx: SyncSender<Vec<u8>>,
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
            .field("connections", &(self.conns.len() - self.free.len()))
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
        tls: Option<Arc<ServerConfig>>,
        handler: Arc<dyn Handler>,
        limits: Limits,
        stats: Arc<Stats>,
        log_tx: SyncSender<Vec<u8>>,
    ) -> io::Result<Worker> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(listener.as_fd(), listener_event(shared_listener))?;
        let input_cap = limits
            .max_header_bytes
            .saturating_add(limits.max_body_bytes.saturating_mul(2))
            .saturating_add(64 * 1024);
        Ok(Worker {
            epoll,
            listener,
            shared_listener,
            accepting: true,
            accept_resume: None,
            tls,
            handler,
            limits,
            stats,
            conns: Vec::new(),
            free: Vec::new(),
            input_cap,
            out: Vec::new(),
            log: Vec::new(),
            log_tx,
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
            let wait = wake.saturating_duration_since(Instant::now());
            let timeout = EpollTimeout::try_from(wait).unwrap_or(EpollTimeout::NONE);
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            self.refresh_date();
            let now = Instant::now();
            for ev in events.get(..n).unwrap_or_default() {
                let token = ev.data();
                if token == LISTENER {
                    if self.draining.is_none() {
                        self.accept(now);
                    }
                } else if token == SIGNAL {
                    self.start_drain(now);
                } else if let Ok(slot) = usize::try_from(token - 1) {
                    self.on_event(slot, ev.events(), now);
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
                        let _ = self.log_tx.send(std::mem::take(&mut self.log));
                    }
                    return Ok(drained);
                }
            }
            self.hand_off_log(now);
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
        for conn in self.conns.iter_mut().flatten() {
            conn.session.drain();
        }
    }

    /// Closes the connections with no request in progress; `Some` once none is left, or at
    /// the deadline (closing the rest).
    fn drain_step(&mut self, now: Instant, deadline: Instant) -> Option<Drained> {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().filter(|c| is_idle(c)).map(|_| i))
            .collect();
        for slot in idle {
            self.close(slot);
        }
        let open: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|_| i))
            .collect();
        if open.is_empty() {
            return Some(Drained::default());
        }
        if now < deadline {
            return None;
        }
        let mut cut = 0;
        for slot in open {
            if let Some(Some(c)) = self.conns.get(slot) {
                // Lingering ones had their last response sent already.
                cut += usize::from(c.lingering.is_none());
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
            self.date = http::http_date(secs);
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
            self.log_tx.try_send(lines)
        {
            let n = lines.iter().filter(|&&b| b == b'\n').count();
            self.stats
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
            // Reserve a place first; give it back if over the limit (the race between workers
            // can then only refuse, never overshoot).
            let open = self.stats.open.fetch_add(1, Ordering::Relaxed);
            if open >= self.limits.max_connections {
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                continue; // dropping `sock` closes it
            }
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            let transport = match &self.tls {
                Some(config) => match tls::Conn::new(config) {
                    Some(c) => Transport::Tls(Box::new(c)),
                    None => {
                        self.stats.open.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                },
                None => Transport::Plain {
                    out: Vec::new(),
                    sent: 0,
                },
            };
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            let token = slot as u64 + 1;
            let interest = EpollFlags::EPOLLIN;
            if self
                .epoll
                .add(sock.as_fd(), EpollEvent::new(interest, token))
                .is_err()
            {
                self.free.push(slot);
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let (phase, timeout) = if self.tls.is_some() {
                (Phase::Handshake, self.limits.handshake_timeout)
            } else {
                (Phase::Idle, self.limits.idle_timeout)
            };
            if let Some(entry) = self.conns.get_mut(slot) {
                *entry = Some(Conn {
                    sock,
                    transport,
                    session: Session::new(),
                    input: Vec::new(),
                    eof: false,
                    notified: false,
                    lingering: None,
                    phase,
                    deadline: now + timeout,
                    interest,
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
        if let Some(entry) = self.conns.get_mut(slot) {
            if let Some(conn) = entry.take() {
                let _ = self.epoll.delete(conn.sock.as_fd());
                drop(conn);
                self.free.push(slot);
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
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
        let expired: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().filter(|c| c.deadline <= now).map(|_| i))
            .collect();
        for slot in expired {
            self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            self.close(slot);
        }
    }

    fn on_event(&mut self, slot: usize, events: EpollFlags, now: Instant) {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return; // a stale event for a connection closed earlier in this batch
        };
        let mut ctx = Ctx {
            limits: &self.limits,
            handler: &*self.handler,
            date: self.date.as_bytes(),
            log: &mut self.log,
        };
        let next = drive(conn, events, &mut ctx, &mut self.out, self.input_cap, now);
        if next == Next::Close {
            self.close(slot);
            return;
        }
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        let wanted = interest(conn, self.input_cap);
        if wanted != conn.interest {
            let mut ev = EpollEvent::new(wanted, slot as u64 + 1);
            if self.epoll.modify(conn.sock.as_fd(), &mut ev).is_err() {
                self.close(slot);
                return;
            }
            conn.interest = wanted;
        }
    }
}

/// Whether a connection can be closed at shutdown without losing a request: handshake not
/// done (no request yet), or nothing received that is unanswered and nothing left to send.
fn is_idle(conn: &Conn) -> bool {
    if conn.lingering.is_some() {
        return false;
    }
    conn.transport.is_handshaking() || (conn.input.is_empty() && !conn.transport.wants_write())
}

/// What the connection waits for now.
fn interest(conn: &Conn, input_cap: usize) -> EpollFlags {
    if conn.lingering.is_some() {
        return EpollFlags::EPOLLIN;
    }
    let mut flags = EpollFlags::empty();
    let writing = conn.transport.wants_write();
    if writing {
        flags |= EpollFlags::EPOLLOUT;
    } else if !conn.eof
        && !conn.session.is_closing()
        && conn.transport.wants_read()
        && conn.input.len() < input_cap
    {
        // Reading waits while output is stuck: a client that does not read its responses
        // cannot make us buffer more of them.
        flags |= EpollFlags::EPOLLIN;
    }
    flags
}

/// Discards what a lingering connection receives; closes at EOF or after too much.
fn linger(sock: &Socket, drained: &mut usize) -> Next {
    let mut buf = [0u8; 8192];
    loop {
        match (&*sock).read(&mut buf) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                *drained += n;
                if *drained > LINGER_BYTES {
                    return Next::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
}

/// Handles readiness of one connection: read, answer, write, decide.
fn drive(
    conn: &mut Conn,
    events: EpollFlags,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<u8>,
    input_cap: usize,
    now: Instant,
) -> Next {
    if events.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
        // Reset or fully shut down: nothing can be delivered any more.
        return Next::Close;
    }
    if let Some(drained) = &mut conn.lingering {
        return linger(&conn.sock, drained);
    }
    if events.contains(EpollFlags::EPOLLIN) {
        for _ in 0..READS_PER_WAKEUP {
            if conn.eof
                || conn.session.is_closing()
                || conn.input.len() >= input_cap
                || !conn.transport.wants_read()
            {
                break;
            }
            match conn
                .transport
                .receive(&conn.sock, &mut conn.input, input_cap)
            {
                tls::Received::Data => {}
                tls::Received::WouldBlock => break,
                tls::Received::Eof => conn.eof = true,
                tls::Received::Fatal => return Next::Close,
            }
        }
    }
    // Write what is queued (handshake flights, earlier responses), then answer and write until
    // the socket is full or nothing more can be answered.
    let served = conn.session.served();
    let mut wrote = match conn.transport.flush(&conn.sock) {
        Ok(p) => p,
        Err(_) => return Next::Close,
    };
    for _ in 0..4 {
        if conn.transport.wants_write()
            || conn.input.is_empty()
            || conn.session.is_closing()
            || conn.transport.is_handshaking()
        {
            break;
        }
        out.clear();
        let before = conn.input.len();
        conn.session.process(&mut conn.input, out, ctx);
        let produced = !out.is_empty() || conn.input.len() != before;
        if !out.is_empty() && conn.transport.send(out).is_err() {
            return Next::Close;
        }
        if let Transport::Tls(t) = &mut conn.transport {
            // Plaintext rustls held back while our input was full.
            t.take_plaintext(&mut conn.input, input_cap);
        }
        if conn.session.is_closing() && !conn.notified {
            conn.notified = true;
            conn.transport.close_notify();
        }
        match conn.transport.flush(&conn.sock) {
            Ok(p) => wrote |= p,
            Err(_) => return Next::Close,
        }
        if !produced {
            break; // a partial request: wait for more input
        }
    }
    if conn.input.is_empty() && conn.input.capacity() > 0 {
        conn.input = Vec::new(); // idle connections hold no input buffer
    }
    if !conn.transport.wants_write() && (conn.session.is_closing() || conn.eof) {
        if conn.eof || conn.sock.shutdown_write().is_err() {
            return Next::Close;
        }
        conn.deadline = now + LINGER;
        let drained = conn.lingering.insert(0);
        return linger(&conn.sock, drained);
    }
    let (phase, timeout) = if conn.transport.is_handshaking() {
        (Phase::Handshake, ctx.limits.handshake_timeout)
    } else if conn.transport.wants_write() {
        (Phase::Writing, ctx.limits.idle_timeout)
    } else if !conn.input.is_empty() {
        (Phase::Request, ctx.limits.request_timeout)
    } else {
        (Phase::Idle, ctx.limits.idle_timeout)
    };
    // Only an answered request renews the request and idle deadlines (bytes trickling in, or
    // anything the client can make us write, do not); the writing deadline is renewed by every
    // write that makes progress.
    let answered = conn.session.served() != served;
    let renew = match phase {
        Phase::Handshake => false,
        Phase::Writing => wrote || conn.phase != phase,
        Phase::Request | Phase::Idle => answered || conn.phase != phase,
    };
    if renew {
        conn.deadline = now + timeout;
    }
    conn.phase = phase;
    Next::Keep
}
