//! One connection's life, as a state machine over any byte stream: the TLS (or plain) adapter,
//! the HTTP session, the input buffer, the phase and its deadline, lingering, draining, and
//! what the connection holds of the memory budget. The worker (`worker.rs`) keeps only epoll,
//! the slab of connections, accepting and the clock; it tells a connection what its socket is
//! ready for ([`Conn::on_ready`]) or that time passed ([`Conn::on_tick`]) and gets back
//! [`Next`]: the readiness to wait for, whether to come back without waiting ("again"), or
//! to close, and why. Tests drive it with a scripted stream (`tests` below), no sockets.
//!
//! ```text
//!  accept ─► Handshake ─► Idle ◄──► Request ──► (answer) ──► Writing ──► Idle …
//!                                                   │ close / EOF / error response
//!                                                   ▼
//!                                      half-close, Linger ─► closed
//! ```
//!
//! Deadlines, one per phase: the handshake timeout from accept; the request timeout from a
//! request's first byte (slowloris); the idle timeout between requests; and while responses
//! wait to be sent, the send timeout, renewed only when the client has taken
//! [`MIN_SEND_PROGRESS`] bytes or everything (a client reading a byte now and then is closed);
//! [`LINGER`] once we have ended the connection.
//!
//! Reading: level-triggered epoll reports a socket for as long as it has bytes, so a round
//! reads at most [`READS_PER_WAKEUP`] times and stops at the first short read (the socket is
//! most likely empty: another read would only return EAGAIN). Reading waits while responses
//! are not sent (a client that does not read cannot make us queue more), while the input holds
//! a whole request of the maximum size, and while the memory budget says so.

use crate::budget::Budget;
use crate::config::{Limits, MIN_SEND_PROGRESS};
use crate::handler::Handler;
use crate::http::{self, Flow, Session};
use crate::tls::{self, Received, ServerConfig};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket reads per connection per round.
pub const READS_PER_WAKEUP: usize = 4;
/// How long a connection we end is drained (see [`Phase::Linger`]).
pub const LINGER: Duration = Duration::from_secs(2);
/// The most bytes drained from it.
pub const LINGER_BYTES: usize = 256 * 1024;
/// Bytes read per `read` on a plain connection.
const PLAIN_READ: usize = 16 * 1024;
/// The memory of a connection besides its buffers (this struct, the slab slot, the socket's
/// user-side state), rounded up.
const BASE_BYTES: usize = 1024;

/// A byte stream a connection runs on: a socket, or a scripted stream in tests.
pub trait Stream: Read + Write {
    /// Half-closes: the peer reads EOF after what was sent; we can still read.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Bytes written and not yet taken by the peer (the kernel's send queue, `SIOCOUTQ`), if
    /// the stream can tell. It makes the send timeout judge what the client really took, not
    /// when the kernel's large buffers happen to let us write again.
    fn unsent(&self) -> Option<usize> {
        None
    }
}

/// What the socket is ready for (epoll's report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// EPOLLIN.
    pub read: bool,
    /// EPOLLOUT.
    pub write: bool,
    /// EPOLLERR or EPOLLHUP: reset or fully shut down.
    pub hangup: bool,
}

/// The readiness a connection waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    /// EPOLLIN.
    pub read: bool,
    /// EPOLLOUT.
    pub write: bool,
}

/// Where a connection is in its life, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TLS handshake, from accept.
    Handshake,
    /// Between requests.
    Idle,
    /// A request has begun arriving.
    Request,
    /// Responses wait for the client to take them.
    Writing,
    /// We ended the connection (half-closed) while the client may still be sending: what
    /// arrives is discarded until EOF, [`LINGER`] or [`LINGER_BYTES`]. Closing at once would
    /// make the kernel answer unread data with a reset, which can destroy the response still
    /// in flight to the client.
    Linger,
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Ended normally: the peer closed with nothing left to answer, or after lingering.
    Done,
    /// The socket was reset or failed (EPOLLERR/EPOLLHUP, a read or write error).
    Socket,
    /// A TLS protocol error (the alert was sent, best effort).
    Tls,
    /// The phase's deadline passed.
    Timeout(Phase),
    /// A lingering client sent more than [`LINGER_BYTES`].
    LingerOverflow,
    /// Front mode: the application failed after its response had begun, so the client's
    /// connection is cut (its framing shows the body is short).
    Upstream,
}

/// What the loop does with a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep it.
    Keep {
        /// Wait for this.
        interest: Interest,
        /// It has work that needs no readiness (its time slice ran out): come back this round.
        again: bool,
        /// The memory budget stopped its reading: come back when memory is freed.
        paused: bool,
    },
    /// Close it.
    Close(Closed),
}

/// What a connection needs from its worker for one event.
pub struct Env<'a> {
    /// The limits.
    pub limits: &'a Limits,
    /// The application.
    pub handler: &'a dyn Handler,
    /// The `Date` header's value.
    pub date: &'a [u8],
    /// Where request log lines go.
    pub log: &'a mut Vec<u8>,
    /// The shared memory budget.
    pub budget: &'a Budget,
    /// Connections open now, over all workers (for the budget's fair share).
    pub open: usize,
    /// Scratch space for responses (the worker's, reused).
    pub out: &'a mut Vec<u8>,
    /// Handler time per round (see `http.rs`).
    pub slice: Duration,
    /// Now.
    pub now: Instant,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

/// How bytes travel: through TLS, or as they are (`--plain-http`).
#[derive(Debug)]
pub(crate) enum Transport {
    /// Boxed: rustls's state is over a kilobyte, and the slab holds one `Conn` per slot.
    Tls(Box<tls::Conn>),
    Plain {
        out: Vec<u8>,
        sent: usize,
    },
}

impl Transport {
    /// TLS with `config`, or plain with `None`; `None` if rustls refuses.
    pub(crate) fn new(tls: Option<&Arc<ServerConfig>>) -> Option<Transport> {
        Some(match tls {
            Some(config) => Transport::Tls(Box::new(tls::Conn::new(config)?)),
            None => Transport::Plain {
                out: Vec::new(),
                sent: 0,
            },
        })
    }

    /// Reads once into `input`, up to `max` bytes of it; with `exact`, `input` grows by
    /// exactly what it takes (memory is short: no amortized doubling).
    pub(crate) fn receive(
        &mut self,
        sock: &mut impl Stream,
        input: &mut Vec<u8>,
        max: usize,
        exact: bool,
    ) -> Received {
        match self {
            Transport::Tls(t) => t.receive(sock, input, max, exact),
            Transport::Plain { .. } => {
                let old = input.len();
                let room = max.saturating_sub(old).min(PLAIN_READ);
                if exact {
                    input.reserve_exact(room);
                }
                input.resize(old + room, 0);
                let r = sock.read(input.get_mut(old..).unwrap_or_default());
                let n = match r {
                    Ok(n) => n,
                    Err(ref e) => {
                        input.truncate(old);
                        return match e.kind() {
                            io::ErrorKind::WouldBlock => Received::WouldBlock,
                            io::ErrorKind::Interrupted => Received::Data { short: false },
                            _ => Received::Fatal,
                        };
                    }
                };
                input.truncate(old + n);
                if n == 0 {
                    Received::Eof
                } else {
                    Received::Data { short: n < room }
                }
            }
        }
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tls(t) => t.send(data),
            Transport::Plain { out, .. } => {
                out.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Writes until done or WouldBlock; returns the bytes written.
    pub(crate) fn flush(&mut self, sock: &mut impl Stream) -> io::Result<usize> {
        match self {
            Transport::Tls(t) => t.flush(sock),
            Transport::Plain { out, sent } => {
                let mut written = 0;
                while let Some(rest) = out.get(*sent..).filter(|r| !r.is_empty()) {
                    match sock.write(rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            *sent += n;
                            written += n;
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
                Ok(written)
            }
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(t) => t.wants_write(),
            Transport::Plain { out, sent } => *sent < out.len(),
        }
    }

    pub(crate) fn wants_read(&self) -> bool {
        match self {
            Transport::Tls(t) => t.wants_read(),
            Transport::Plain { .. } => true,
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        match self {
            Transport::Tls(t) => t.is_handshaking(),
            Transport::Plain { .. } => false,
        }
    }

    pub(crate) fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.close_notify();
        }
    }

    pub(crate) fn held(&self) -> usize {
        match self {
            Transport::Tls(t) => t.held(),
            Transport::Plain { out, .. } => out.capacity(),
        }
    }

    /// Responses queued and not yet taken by the client.
    pub(crate) fn pending_out(&self) -> usize {
        match self {
            Transport::Tls(t) => t.queued(),
            Transport::Plain { out, sent } => out.len() - *sent,
        }
    }

    /// Bytes received of requests not yet in `input`: a TLS handshake in progress, plaintext
    /// rustls decrypted and we have not taken.
    pub(crate) fn unfinished(&self) -> usize {
        match self {
            Transport::Tls(t) if t.is_handshaking() => t.handshake_bytes(),
            Transport::Tls(t) => t.plaintext(),
            Transport::Plain { .. } => 0,
        }
    }
}

/// One connection.
#[derive(Debug)]
pub struct Conn<S> {
    sock: S,
    transport: Transport,
    session: Session,
    /// Plaintext received and not yet consumed by the session.
    input: Vec<u8>,
    /// The peer will send nothing more.
    eof: bool,
    /// close_notify queued.
    notified: bool,
    /// Bytes discarded while lingering.
    lingered: usize,
    phase: Phase,
    deadline: Instant,
    /// Bytes the client took since the send deadline was last renewed.
    sent_since_renewal: usize,
    /// The kernel's send queue when last looked at (see [`Stream::unsent`]).
    unsent: Option<usize>,
    /// What this connection holds of the budget.
    charged: usize,
    /// The budget stopped its reading.
    paused: bool,
}

impl<S: Stream> Conn<S> {
    /// A connection just accepted; `tls: None` for plain HTTP. `None` if rustls refuses.
    pub fn new(
        sock: S,
        tls: Option<&Arc<ServerConfig>>,
        limits: &Limits,
        now: Instant,
    ) -> Option<Conn<S>> {
        let transport = Transport::new(tls)?;
        let (phase, timeout) = match transport {
            Transport::Tls(_) => (Phase::Handshake, limits.handshake_timeout),
            Transport::Plain { .. } => (Phase::Idle, limits.idle_timeout),
        };
        Some(Conn {
            sock,
            transport,
            session: Session::new(),
            input: Vec::new(),
            eof: false,
            notified: false,
            lingered: 0,
            phase,
            deadline: now + timeout,
            sent_since_renewal: 0,
            unsent: None,
            charged: 0,
            paused: false,
        })
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The deadline of the current phase.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Bytes this connection holds of the memory budget (as last charged).
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// The bytes held now: buffers, TLS state, and a fixed share for the connection itself.
    fn held(&self) -> usize {
        BASE_BYTES + self.input.capacity() + self.session.held() + self.transport.held()
    }

    /// What the client has made us hold that it could make grow: requests received and not
    /// answered yet (the memory their buffers take), and responses it has not taken yet.
    fn burden(&self) -> usize {
        self.input.capacity()
            + self.session.held()
            + self.transport.unfinished()
            + self.transport.pending_out()
    }

    /// Gives back everything charged (the connection is closing).
    pub fn release(&mut self, budget: &Budget) {
        budget.charge(&mut self.charged, 0);
    }

    /// The server is shutting down: the request in progress (or the next one) is answered
    /// with `Connection: close`, then the connection closes.
    pub fn drain(&mut self) {
        self.session.drain();
    }

    /// Whether it can be closed at shutdown without losing a request: handshake not done (no
    /// request yet), or nothing received that is unanswered and nothing left to send.
    pub fn is_idle(&self) -> bool {
        self.phase != Phase::Linger
            && (self.transport.is_handshaking()
                || (self.input.is_empty()
                    && !self.session.in_request()
                    && !self.transport.wants_write()))
    }

    /// Whether it had already answered everything it was going to (it was lingering).
    pub fn is_lingering(&self) -> bool {
        self.phase == Phase::Linger
    }

    /// Time passed: closes the connection if its phase's deadline has. While responses wait,
    /// what the client took from the kernel since the last look counts as progress first.
    pub fn on_tick(&mut self, limits: &Limits, now: Instant) -> Option<Closed> {
        if self.phase == Phase::Writing && self.took(0) >= MIN_SEND_PROGRESS {
            self.deadline = now + limits.send_timeout;
            self.sent_since_renewal = 0;
        }
        (now >= self.deadline).then_some(Closed::Timeout(self.phase))
    }

    /// Adds to the client's progress since the last renewal what it took: `wrote` bytes we
    /// just handed to the kernel, less what the kernel's send queue grew by (all of it when
    /// the stream cannot tell). Returns the progress.
    fn took(&mut self, wrote: usize) -> usize {
        let now = self.sock.unsent();
        let took = match now {
            // A queue never looked at was empty: this connection had written nothing yet.
            Some(after) => (self.unsent.unwrap_or(0) + wrote).saturating_sub(after),
            None => wrote,
        };
        self.unsent = now;
        self.sent_since_renewal = self.sent_since_renewal.saturating_add(took);
        self.sent_since_renewal
    }

    /// Handles readiness of the socket (or, with `Ready::default()`, comes back to a
    /// connection that yielded or was paused): read, answer, write, decide.
    pub fn on_ready(&mut self, ready: Ready, env: &mut Env<'_>) -> Next {
        let next = self.step(ready, env);
        if let Next::Close(_) = next {
            self.release(env.budget);
        } else {
            let held = self.held();
            env.budget.charge(&mut self.charged, held);
        }
        next
    }

    fn step(&mut self, ready: Ready, env: &mut Env<'_>) -> Next {
        if ready.hangup {
            // Reset or fully shut down: nothing can be delivered any more.
            return Next::Close(Closed::Socket);
        }
        if self.phase == Phase::Linger {
            return match self.linger() {
                Some(c) => Next::Close(c),
                None => self.keep(false, env),
            };
        }
        let input_cap = env.limits.input_cap();
        // A paused connection is tried again when the worker comes back to it.
        if ready.read || self.paused {
            self.paused = false;
            for _ in 0..READS_PER_WAKEUP {
                if !self.wants_input(input_cap) {
                    break;
                }
                let room = env.budget.room(self.burden(), env.open);
                if room == 0 {
                    self.paused = true;
                    break;
                }
                // Short of memory: take no more than the room left, and grow by no more.
                let exact = room != usize::MAX;
                let max = input_cap.min(self.input.len().saturating_add(room));
                match self
                    .transport
                    .receive(&mut self.sock, &mut self.input, max, exact)
                {
                    Received::Data { short: false } => {}
                    Received::Data { short: true } | Received::WouldBlock => break,
                    Received::Eof => {
                        self.eof = true;
                        break;
                    }
                    Received::Fatal => {
                        return Next::Close(if matches!(self.transport, Transport::Tls(_)) {
                            Closed::Tls
                        } else {
                            Closed::Socket
                        });
                    }
                }
            }
        }
        // Write what is queued (handshake flights, earlier responses), then answer and write
        // until the socket is full or nothing more can be answered.
        let served = self.session.served();
        let mut wrote = match self.transport.flush(&mut self.sock) {
            Ok(n) => n,
            Err(_) => return Next::Close(Closed::Socket),
        };
        let mut again = false;
        for _ in 0..4 {
            if self.transport.wants_write()
                || self.input.is_empty()
                || self.session.is_closing()
                || self.transport.is_handshaking()
            {
                break;
            }
            env.out.clear();
            // Nothing is pending here (the output was flushed): the output of this round may
            // take the connection's room, at least one request's answer.
            let room = env.budget.room(0, env.open);
            let before = self.input.len();
            let mut ctx = http::Ctx {
                limits: env.limits,
                handler: env.handler,
                date: env.date,
                log: env.log,
                shed: env.budget.shedding(),
                slice: env.slice,
                out_limit: room,
            };
            let flow = self.session.process(&mut self.input, env.out, &mut ctx);
            let produced = !env.out.is_empty() || self.input.len() != before;
            if !env.out.is_empty() {
                let sent = self.transport.send(env.out);
                // The responses are in TLS records (or the plain output) now: the scratch copy
                // is wiped, as a body may have been a secret.
                zeroize::Zeroize::zeroize(env.out.as_mut_slice());
                if sent.is_err() {
                    return Next::Close(Closed::Tls);
                }
            }
            if let Transport::Tls(t) = &mut self.transport {
                // Plaintext rustls held back while our input was full.
                t.take_plaintext(&mut self.input, input_cap, false);
            }
            if self.session.is_closing() && !self.notified {
                self.notified = true;
                self.transport.close_notify();
            }
            match self.transport.flush(&mut self.sock) {
                Ok(n) => wrote += n,
                Err(_) => return Next::Close(Closed::Socket),
            }
            if flow == Flow::Yield {
                again = true;
                break;
            }
            if !produced {
                break; // a partial request: wait for more input
            }
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            // Idle connections hold no input buffer, and leave nothing of it behind.
            zeroize::Zeroize::zeroize(&mut self.input);
            self.input = Vec::new();
        }
        let now = env.now;
        if !self.transport.wants_write() && (self.session.is_closing() || self.eof) {
            if self.eof || self.sock.shutdown_write().is_err() {
                return Next::Close(Closed::Done);
            }
            self.phase = Phase::Linger;
            self.deadline = now + LINGER;
            return match self.linger() {
                Some(c) => Next::Close(c),
                None => self.keep(false, env),
            };
        }
        self.set_deadline(served, wrote, env.limits, now);
        self.keep(again, env)
    }

    fn wants_input(&self, input_cap: usize) -> bool {
        !self.eof
            && !self.session.is_closing()
            && self.input.len() < input_cap
            && self.transport.wants_read()
            && !self.transport.wants_write()
    }

    /// The phase after this event and, when it changed or the rules say so, a new deadline.
    fn set_deadline(&mut self, served: u64, wrote: usize, limits: &Limits, now: Instant) {
        let (phase, timeout) = if self.transport.is_handshaking() {
            (Phase::Handshake, limits.handshake_timeout)
        } else if self.transport.wants_write() {
            (Phase::Writing, limits.send_timeout)
        } else if !self.input.is_empty() || self.session.in_request() {
            (Phase::Request, limits.request_timeout)
        } else {
            (Phase::Idle, limits.idle_timeout)
        };
        // Only an answered request renews the request and idle deadlines (bytes trickling in,
        // or anything the client can make us write, do not); the send deadline is renewed
        // once the client has taken MIN_SEND_PROGRESS bytes since the last renewal.
        let answered = self.session.served() != served;
        let renew = match phase {
            Phase::Handshake | Phase::Linger => false,
            Phase::Writing => {
                let progress = self.took(wrote);
                self.phase != phase || progress >= MIN_SEND_PROGRESS
            }
            Phase::Request | Phase::Idle => answered || self.phase != phase,
        };
        if renew {
            self.deadline = now + timeout;
            self.sent_since_renewal = 0;
        }
        self.phase = phase;
    }

    /// What to wait for now.
    fn keep(&self, again: bool, env: &Env<'_>) -> Next {
        let interest = if self.phase == Phase::Linger {
            Interest {
                read: true,
                write: false,
            }
        } else {
            let write = self.transport.wants_write();
            let read = self.wants_input(env.limits.input_cap()) && !self.paused;
            Interest { read, write }
        };
        Next::Keep {
            interest,
            again,
            paused: self.paused,
        }
    }

    /// Discards what a lingering connection receives; `Some` closes it (EOF or too much).
    fn linger(&mut self) -> Option<Closed> {
        linger(&mut self.sock, &mut self.lingered)
    }
}

/// Discards what a lingering connection receives (`lingered` counts it); `Some` closes it:
/// EOF, more than [`LINGER_BYTES`], or an error. Front mode's connections linger the same way.
pub(crate) fn linger(sock: &mut impl Read, lingered: &mut usize) -> Option<Closed> {
    let mut buf = [0u8; 8192];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Some(Closed::Done),
            Ok(n) => {
                *lingered += n;
                if *lingered > LINGER_BYTES {
                    return Some(Closed::LingerOverflow);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(Closed::Socket),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
