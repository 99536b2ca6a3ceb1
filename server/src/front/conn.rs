//! One client connection in front mode, as a state machine over two byte streams (the client
//! socket `S` and the application connection `U`), driven by its worker like `conn.rs`'s
//! [`crate::conn::Conn`] and tested the same way, over scripted streams (`tests.rs`).
//!
//! ```text
//!  accept ─► [PROXY v2] ─► Handshake ─► Idle ◄─► Request head ─┬─ local path ─► answer ─┐
//!                                                  ▲            └─ Exchange ────────────┤
//!                                                  └───────────────────────────────────┘
//! ```
//!
//! An exchange moves the request upstream (normalized head, then the body as it arrives:
//! Content-Length counted, chunked decoded and re-encoded) while the response comes back
//! (head normalized; body counted, decoded or read to EOF, and sent to the client with one
//! framing). Every buffer is bounded: [`UP_OUT_MAX`] toward the application (client reading
//! stops while it is full), [`UP_IN_MAX`] from it, and reading from the application stops while
//! more than [`crate::http::OUT_HIGH_WATER`] waits for the client. One exchange at a time per
//! connection; pipelined requests wait in the input.
//!
//! Failures: an application that refuses or resets before answering gets the client a 502
//! (a request without a body is tried once more on a fresh connection when a pooled one turns
//! out dead); one that says nothing for `upstream_timeout` a 504; a response that is not
//! HTTP/1.x a 502. After the response head has gone out, a failure can only cut the
//! connection (its framing tells the client the body is short).

use super::chunks::{self, Decoder};
use super::Front;
use crate::budget::Budget;
use crate::config::Limits;
use crate::conn::{Closed, Env, Interest, Next, Phase, Ready, Stream, Transport, LINGER};
use crate::handler::{Request, Response};
use crate::http::head::{
    connection_lists, list_items, parse_head, reject, Framing, HeadParse, Reject, NOT_FORWARDED,
};
use crate::http::{log_line, reason, write_response, Connection, OUT_HIGH_WATER};
use crate::tls::{Received, ServerConfig};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The most request bytes queued for the application.
pub const UP_OUT_MAX: usize = 64 * 1024;
/// The most response bytes read from the application per read, and held of a response head.
pub const UP_IN_MAX: usize = 64 * 1024;
/// The most bytes asked of the application's socket per read.
const UP_READ: usize = 16 * 1024;
/// Response header lines accepted from the application.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Socket reads per side per round.
const READS_PER_WAKEUP: usize = 4;
/// The memory of a connection besides its buffers, rounded up.
const BASE_BYTES: usize = 1024;

/// Client headers replaced by the front's own (a client must not choose what the application
/// believes about where it came from).
const CLIENT_SET: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "expect",
];

/// The application connections a front connection gets and gives back: the worker's pool
/// and connector, or a test's scripted streams.
pub trait Upstreams<U> {
    /// A connection to send a request on: a pooled one (`true`) or a new one.
    fn open(&mut self) -> io::Result<(U, bool)>;
    /// A new connection, never a pooled one.
    fn fresh(&mut self) -> io::Result<U>;
    /// A connection that finished an exchange cleanly and may be used again.
    fn release(&mut self, up: U);
    /// Whether the client connection that used a connection may keep it for its next request
    /// (counted until [`Upstreams::unkeep`]): the worker's pool, parked with its last user.
    fn keep(&mut self) -> bool;
    /// A kept connection was taken for an exchange, closed or given back.
    fn unkeep(&mut self);
}

/// A connection to the application, as the exchange sees it.
pub trait Upstream: Read + Write {
    /// Whether a connect that was in progress succeeded (`Ok` once connected).
    fn connected(&self) -> io::Result<()>;
}

impl Upstream for super::upstream::UpSock {
    fn connected(&self) -> io::Result<()> {
        self.connect_result()
    }
}

/// How the request body arrives from the client.
#[derive(Debug)]
enum ReqBody {
    /// Bytes left of a Content-Length body.
    Length(u64),
    /// A chunked body.
    Chunked(Decoder),
    /// All of it is queued for the application.
    Done,
}

/// How the response body arrives from the application.
#[derive(Debug)]
enum RespBody {
    /// The head is not in yet.
    Head,
    /// Bytes left of a Content-Length body.
    Length(u64),
    /// A chunked body.
    Chunked(Decoder),
    /// Until the application closes.
    UntilClose,
    /// All of it is queued for the client.
    Done,
}

/// One request in flight to the application.
#[derive(Debug)]
struct Exchange<U> {
    up: Option<U>,
    connected: bool,
    reused: bool,
    /// The request head, kept while a retry on a fresh connection is possible.
    retry: Option<Vec<u8>>,
    up_out: Vec<u8>,
    up_sent: usize,
    up_in: Vec<u8>,
    req: ReqBody,
    resp: RespBody,
    head_only: bool,
    /// The response goes to the client chunked (the application's was chunked or ended by
    /// close, and the client speaks HTTP/1.1).
    chunk_out: bool,
    /// The application allows another request on this connection.
    reusable: bool,
    /// The response head went to the client.
    head_sent: bool,
    status: u16,
    bytes: usize,
    started: Instant,
    method: String,
    path: String,
    client_v10: bool,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The client's request was malformed mid-body.
    Client(Reject),
    /// The application failed: refused, reset, closed early, or sent garbage.
    Upstream(&'static str),
    /// The application said nothing in time.
    Timeout,
}

/// What a tick asks of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Nothing to do.
    Nothing,
    /// Serve the connection now (it has an answer to send: a 504).
    Run,
    /// Close it.
    Close(Closed),
}

/// One client connection of the front.
#[derive(Debug)]
pub struct FrontConn<S, U> {
    sock: S,
    tls: Transport,
    front: Arc<Front>,
    /// The PROXY v2 header received so far, while one is expected.
    proxy: Option<Vec<u8>>,
    client: Option<SocketAddr>,
    input: Vec<u8>,
    eof: bool,
    closing: bool,
    notified: bool,
    lingered: usize,
    phase: Phase,
    deadline: Instant,
    charged: usize,
    served: u64,
    ex: Option<Box<Exchange<U>>>,
    /// The application connection of the last exchange, kept for the next request of this
    /// client (no pool round trip, and it stays registered as it is); read-watched, so the
    /// application closing it is noticed.
    kept: Option<U>,
    /// Changes whenever the application connection does (the worker re-registers it).
    up_gen: u64,
    /// A tick's verdict waiting for the next step (a 504 to send).
    timed_out: bool,
    paused: bool,
    /// The most client input held (see [`input_cap`]).
    cap: usize,
}

impl<S: Stream, U: Upstream> FrontConn<S, U> {
    /// A connection just accepted; `tls: None` for plain HTTP. `None` if rustls refuses.
    pub fn new(
        sock: S,
        tls: Option<&Arc<ServerConfig>>,
        front: &Arc<Front>,
        limits: &Limits,
        now: Instant,
    ) -> Option<FrontConn<S, U>> {
        Some(FrontConn {
            sock,
            tls: Transport::new(tls)?,
            front: Arc::clone(front),
            proxy: front.proxy_protocol.then(Vec::new),
            client: None,
            input: Vec::new(),
            eof: false,
            closing: false,
            notified: false,
            lingered: 0,
            phase: Phase::Handshake,
            deadline: now + limits.handshake_timeout,
            charged: 0,
            served: 0,
            ex: None,
            kept: None,
            up_gen: 0,
            timed_out: false,
            paused: false,
            cap: input_cap(limits),
        })
    }

    /// The client socket.
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The application connection of the exchange in progress, what it waits for, and its
    /// generation (which changes with the connection).
    pub fn upstream(&self) -> Option<(&U, Interest, u64)> {
        let Some(ex) = self.ex.as_ref() else {
            let read = Interest {
                read: true,
                write: false,
            };
            return self.kept.as_ref().map(|k| (k, read, self.up_gen));
        };
        let up = ex.up.as_ref()?;
        let pending_out = ex.up_sent < ex.up_out.len();
        let interest = Interest {
            read: ex.connected
                && !matches!(ex.resp, RespBody::Done)
                && self.tls.pending_out() < OUT_HIGH_WATER,
            write: !ex.connected || pending_out,
        };
        Some((up, interest, self.up_gen))
    }

    /// The kept application connection, taken out (the connection is closing: the worker
    /// gives it back to the pool).
    pub fn take_kept(&mut self) -> Option<U> {
        self.kept.take()
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes charged to the budget.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Gives back everything charged.
    pub fn release(&mut self, budget: &Budget) {
        budget.charge(&mut self.charged, 0);
    }

    /// The server is shutting down: the exchange in progress finishes, then the connection
    /// closes.
    pub fn drain(&mut self) {
        self.closing = true;
    }

    /// Whether it can be closed at shutdown without losing a request.
    pub fn is_idle(&self) -> bool {
        self.phase != Phase::Linger
            && (self.tls.is_handshaking()
                || (self.ex.is_none() && self.input.is_empty() && !self.tls.wants_write()))
    }

    /// Whether it had answered everything already (it was lingering).
    pub fn is_lingering(&self) -> bool {
        self.phase == Phase::Linger
    }

    fn held(&self) -> usize {
        BASE_BYTES
            + self.input.capacity()
            + self.tls.held()
            + self
                .ex
                .as_ref()
                .map_or(0, |e| e.up_out.capacity() + e.up_in.capacity() + 256)
    }

    fn burden(&self) -> usize {
        self.input.capacity()
            + self.tls.unfinished()
            + self.tls.pending_out()
            + self
                .ex
                .as_ref()
                .map_or(0, |e| e.up_out.capacity() + e.up_in.capacity())
    }

    /// Time passed: the phase's deadline. An exchange past its deadline before the response
    /// head went out is answered 504 ([`Tick::Run`]).
    pub fn on_tick(&mut self, now: Instant) -> Tick {
        if now < self.deadline {
            return Tick::Nothing;
        }
        match &self.ex {
            Some(ex) if !ex.head_sent && !self.timed_out => {
                self.timed_out = true;
                Tick::Run
            }
            _ => Tick::Close(Closed::Timeout(self.phase)),
        }
    }

    /// Handles readiness of the client socket (`client`) and of the application connection
    /// (`up`); `Ready::default()` for both comes back to a connection that asked for it.
    pub fn on_ready(
        &mut self,
        client: Ready,
        up: Ready,
        env: &mut Env<'_>,
        upstreams: &mut dyn Upstreams<U>,
    ) -> Next {
        let next = self.step(client, up, env, upstreams);
        if let Next::Close(_) = next {
            self.release(env.budget);
        } else {
            let held = self.held();
            env.budget.charge(&mut self.charged, held);
        }
        next
    }

    fn step(
        &mut self,
        client: Ready,
        up: Ready,
        env: &mut Env<'_>,
        upstreams: &mut dyn Upstreams<U>,
    ) -> Next {
        if client.hangup {
            return Next::Close(Closed::Socket);
        }
        if self.phase == Phase::Linger {
            return match self.linger() {
                Some(c) => Next::Close(c),
                None => self.keep(false),
            };
        }
        if self.proxy.is_some() {
            match self.read_proxy_header() {
                Ok(true) => {}
                Ok(false) => return self.keep(false),
                Err(c) => return Next::Close(c),
            }
        }
        let cap = self.cap;
        if client.read || self.paused {
            self.paused = false;
            for _ in 0..READS_PER_WAKEUP {
                if !self.wants_input(cap) {
                    break;
                }
                if env.budget.room(self.burden(), env.open) == 0 {
                    self.paused = true;
                    break;
                }
                match self
                    .tls
                    .receive(&mut self.sock, &mut self.input, cap, false)
                {
                    Received::Data { short: false } => {}
                    Received::Data { short: true } | Received::WouldBlock => break,
                    Received::Eof => {
                        self.eof = true;
                        break;
                    }
                    Received::Fatal => return Next::Close(Closed::Tls),
                }
            }
        }
        if self.ex.is_none() && (up.read || up.hangup) {
            self.check_kept(upstreams);
        }
        let mut progress = false;
        if self.timed_out {
            self.timed_out = false;
            self.fail(Failure::Timeout, env);
            progress = true;
        }
        for _ in 0..8 {
            let mut moved = false;
            if self.ex.is_none() && !self.closing && !self.tls.is_handshaking() {
                moved |= self.start(env, upstreams);
            }
            if self.ex.is_some() {
                match self.pump(up, env, upstreams) {
                    Ok(m) => moved |= m,
                    Err(f) => {
                        let head_sent = self.ex.as_ref().is_some_and(|e| e.head_sent);
                        if head_sent {
                            // What came before the failure still goes out (best effort).
                            let _ = self.tls.flush(&mut self.sock);
                            return Next::Close(Closed::Upstream);
                        }
                        self.fail(f, env);
                        moved = true;
                    }
                }
            }
            if self.tls.flush(&mut self.sock).is_err() {
                return Next::Close(Closed::Socket);
            }
            progress |= moved;
            if !moved {
                break;
            }
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            zeroize::Zeroize::zeroize(&mut self.input);
            self.input = Vec::new();
        }
        if self.eof
            && self
                .ex
                .as_ref()
                .is_some_and(|e| !matches!(e.req, ReqBody::Done))
        {
            // The client went away in the middle of its request body.
            return Next::Close(Closed::Done);
        }
        if self.ex.is_none() && (self.closing || self.eof) && !self.tls.wants_write() {
            if !self.notified {
                self.notified = true;
                self.tls.close_notify();
                if self.tls.flush(&mut self.sock).is_err() {
                    return Next::Close(Closed::Socket);
                }
                if self.tls.wants_write() {
                    return self.keep(false);
                }
            }
            if self.eof || self.sock.shutdown_write().is_err() {
                return Next::Close(Closed::Done);
            }
            self.phase = Phase::Linger;
            self.deadline = env.now + LINGER;
            return match self.linger() {
                Some(c) => Next::Close(c),
                None => self.keep(false),
            };
        }
        self.set_deadline(progress, env);
        self.keep(false)
    }

    /// The kept application connection woke up between exchanges: the application closed it
    /// (EOF), reset it, or sent bytes nobody asked for. Either way it is dropped.
    fn check_kept(&mut self, upstreams: &mut dyn Upstreams<U>) {
        let Some(k) = self.kept.as_mut() else {
            return;
        };
        let mut b = [0u8; 1];
        match k.read(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => {
                self.kept = None;
                self.up_gen += 1;
                upstreams.unkeep();
            }
        }
    }

    /// Reads the PROXY v2 header, exactly (what follows it is the TLS handshake's).
    /// `Ok(true)` once it is in.
    fn read_proxy_header(&mut self) -> Result<bool, Closed> {
        let Some(buf) = self.proxy.as_mut() else {
            return Ok(true);
        };
        loop {
            // The fixed part first, then exactly the length it announces.
            let want = match contract::proxy_v2::parse(buf) {
                Ok(Some((h, _))) => {
                    self.client = h.source;
                    self.proxy = None;
                    return Ok(true);
                }
                Ok(None) if buf.len() < 16 => 16,
                Ok(None) => {
                    16 + usize::from(u16::from_be_bytes([
                        buf.get(14).copied().unwrap_or(0),
                        buf.get(15).copied().unwrap_or(0),
                    ]))
                }
                Err(_) => return Err(Closed::Tls),
            };
            let old = buf.len();
            buf.resize(want, 0);
            match self.sock.read(buf.get_mut(old..).unwrap_or_default()) {
                Ok(0) => return Err(Closed::Done),
                Ok(n) => buf.truncate(old + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    buf.truncate(old);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(old),
                Err(_) => return Err(Closed::Socket),
            }
        }
    }

    fn wants_input(&self, cap: usize) -> bool {
        if self.eof || self.tls.wants_write() || !self.tls.wants_read() {
            return false;
        }
        match &self.ex {
            // A request body streams in while the application takes it.
            Some(ex) if !matches!(ex.req, ReqBody::Done) => {
                ex.up_out.len() - ex.up_sent < UP_OUT_MAX && self.input.len() < cap
            }
            _ => !self.closing && self.input.len() < cap,
        }
    }

    /// Begins the request at the front of the input, if its head is in: answers it here
    /// (a local path, or a refusal) or starts an exchange. Returns whether anything happened.
    fn start(&mut self, env: &mut Env<'_>, upstreams: &mut dyn Upstreams<U>) -> bool {
        if self.input.is_empty() {
            return false;
        }
        let limits = front_limits(env.limits);
        let mut storage = [httparse::EMPTY_HEADER; crate::config::MAX_HEADERS_CAP];
        let cap = limits.max_headers.clamp(1, crate::config::MAX_HEADERS_CAP);
        let slots = storage.get_mut(..cap).unwrap_or_default();
        let head = match parse_head(&self.input, slots, &limits) {
            Ok(HeadParse::Partial) => return false,
            Ok(HeadParse::Complete(h)) => h,
            Err(r) => {
                self.refuse(r, env);
                return true;
            }
        };
        let head_len = head.len;
        self.served += 1;
        let closing = !head.keep_alive
            || self.served >= env.limits.max_requests_per_connection
            || self.closing;
        if self.front.local_paths.iter().any(|p| p == head.path) {
            let resp = if head.framing != Framing::None {
                Response::json_error(400, "this endpoint takes no request body")
            } else if env.budget.shedding() {
                Response::json_error(503, "the server is short of memory; try again shortly")
            } else {
                let req = Request::parsed(head.method, head.path, head.query, head.headers, &[]);
                env.handler.handle(&req)
            };
            let conn = if closing || resp.status == 400 {
                Connection::Close
            } else if head.version == 0 {
                Connection::KeepAlive
            } else {
                Connection::Default
            };
            self.closing |= conn == Connection::Close;
            env.out.clear();
            let n = write_response(env.out, &resp, head.method == "HEAD", conn, env.date);
            log_line(env.log, head.method, head.path, resp.status, n, 0);
            let sent = self.tls.send(env.out);
            zeroize::Zeroize::zeroize(env.out.as_mut_slice());
            let n = if resp.status == 400 {
                self.input.len()
            } else {
                head_len
            };
            self.consume(n);
            if sent.is_err() {
                self.closing = true;
            }
            return true;
        }
        if env.budget.shedding() {
            self.refuse(
                reject(503, "the server is short of memory; try again shortly"),
                env,
            );
            return true;
        }
        let mut up_out = Vec::with_capacity(1024);
        request_head(&mut up_out, &head, self.client);
        let req = match head.framing {
            Framing::None => ReqBody::Done,
            Framing::Length(0) => ReqBody::Done,
            Framing::Length(n) => ReqBody::Length(n as u64),
            Framing::Chunked => ReqBody::Chunked(Decoder::new(env.limits.max_header_bytes)),
        };
        if head.expect_continue && !matches!(req, ReqBody::Done) {
            // The application has not been asked, but the front takes the body either way.
            let _ = self.tls.send(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let method = head.method.to_owned();
        let path = head.path.to_owned();
        let head_only = head.method == "HEAD";
        let client_v10 = head.version == 0;
        self.closing |= closing;
        self.consume(head_len);
        let retry = matches!(req, ReqBody::Done).then(|| up_out.clone());
        let opened = match self.kept.take() {
            // Registered as it is: the generation stays.
            Some(k) => {
                upstreams.unkeep();
                Ok((k, true))
            }
            None => {
                self.up_gen += 1;
                upstreams.open()
            }
        };
        let (up, reused, connected) = match opened {
            Ok((u, reused)) => (Some(u), reused, reused),
            Err(_) => (None, false, false),
        };
        self.ex = Some(Box::new(Exchange {
            up,
            connected,
            reused,
            retry: retry.filter(|_| reused),
            up_out,
            up_sent: 0,
            up_in: Vec::new(),
            req,
            resp: RespBody::Head,
            head_only,
            chunk_out: false,
            reusable: false,
            head_sent: false,
            status: 0,
            bytes: 0,
            started: env.now,
            method,
            path,
            client_v10,
        }));
        if self.ex.as_ref().is_some_and(|e| e.up.is_none()) {
            self.fail(
                Failure::Upstream("the application refused the connection"),
                env,
            );
        }
        true
    }

    /// Removes `n` bytes from the front of the input, wiping them.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.input.len());
        zeroize::Zeroize::zeroize(self.input.get_mut(..n).unwrap_or_default());
        self.input.drain(..n);
    }

    /// Answers a request refused before it began with `r`, and closes.
    fn refuse(&mut self, r: Reject, env: &mut Env<'_>) {
        env.out.clear();
        let resp = Response::json_error(r.status, r.message);
        let n = write_response(env.out, &resp, false, Connection::Close, env.date);
        log_line(env.log, "-", "-", r.status, n, 0);
        let _ = self.tls.send(env.out);
        self.closing = true;
        let all = self.input.len();
        self.consume(all);
    }

    /// Ends the exchange in progress with an error response (its head has not gone out), and
    /// closes the connection after it.
    fn fail(&mut self, f: Failure, env: &mut Env<'_>) {
        let Some(ex) = self.ex.take() else {
            return;
        };
        self.up_gen += 1;
        let (status, message) = match f {
            Failure::Client(r) => (r.status, r.message),
            Failure::Upstream(m) => (502, m),
            Failure::Timeout => (504, "the application did not answer in time"),
        };
        env.out.clear();
        let resp = Response::json_error(status, message);
        let n = write_response(env.out, &resp, ex.head_only, Connection::Close, env.date);
        let us = u64::try_from(ex.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        log_line(env.log, &ex.method, &ex.path, status, n, us);
        let _ = self.tls.send(env.out);
        self.closing = true;
        let all = self.input.len();
        self.consume(all);
    }

    /// Moves bytes of the exchange: request body in, request out, response in, response to
    /// the client. `Ok(true)` if anything moved.
    fn pump(
        &mut self,
        up_ready: Ready,
        env: &mut Env<'_>,
        upstreams: &mut dyn Upstreams<U>,
    ) -> Result<bool, Failure> {
        let Some(ex) = self.ex.as_mut() else {
            return Ok(false);
        };
        let mut moved = false;
        // Connected yet?
        if !ex.connected {
            if !(up_ready.write || up_ready.hangup) {
                return Ok(false);
            }
            let Some(up) = ex.up.as_ref() else {
                return Err(Failure::Upstream("no connection to the application"));
            };
            up.connected()
                .map_err(|_| Failure::Upstream("the application refused the connection"))?;
            ex.connected = true;
            moved = true;
        }
        // The request body, from the client's input to the application's queue.
        if !matches!(ex.req, ReqBody::Done) && !self.input.is_empty() {
            let before = self.input.len();
            let taken = match &mut ex.req {
                ReqBody::Length(left) => {
                    let room = UP_OUT_MAX.saturating_sub(ex.up_out.len() - ex.up_sent);
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(self.input.len())
                        .min(room);
                    ex.up_out
                        .extend_from_slice(self.input.get(..n).unwrap_or_default());
                    *left -= n as u64;
                    if *left == 0 {
                        ex.req = ReqBody::Done;
                    }
                    n
                }
                ReqBody::Chunked(dec) => {
                    let (out, sent) = (&mut ex.up_out, ex.up_sent);
                    let n = dec
                        .feed(&self.input, &mut |data| {
                            // Over the limit only when something is queued already: a piece
                            // is never larger than the input, itself bounded.
                            let pending = out.len() - sent;
                            if pending > 0 && pending + data.len() > UP_OUT_MAX {
                                return false;
                            }
                            chunks::encode(out, data);
                            true
                        })
                        .map_err(Failure::Client)?;
                    if dec.is_done() {
                        ex.up_out.extend_from_slice(chunks::LAST);
                        ex.req = ReqBody::Done;
                    }
                    n
                }
                ReqBody::Done => 0,
            };
            let n = taken.min(before);
            zeroize::Zeroize::zeroize(self.input.get_mut(..n).unwrap_or_default());
            self.input.drain(..n);
            moved |= n > 0;
        }
        // The request to the application.
        if ex.up_sent < ex.up_out.len() {
            let Some(up) = ex.up.as_mut() else {
                return Err(Failure::Upstream("no connection to the application"));
            };
            while let Some(rest) = ex.up_out.get(ex.up_sent..).filter(|r| !r.is_empty()) {
                match up.write(rest) {
                    Ok(0) => {
                        return retry_or(
                            ex,
                            &mut self.up_gen,
                            upstreams,
                            "the application closed the connection",
                        )
                    }
                    Ok(n) => {
                        ex.up_sent += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        return retry_or(
                            ex,
                            &mut self.up_gen,
                            upstreams,
                            "the application reset the connection",
                        )
                    }
                }
            }
            if ex.up_sent >= ex.up_out.len() {
                ex.up_out.clear();
                ex.up_sent = 0;
                if ex.up_out.capacity() > UP_OUT_MAX * 2 {
                    ex.up_out = Vec::new();
                }
            }
        }
        // The response from the application.
        let mut up_eof = false;
        if up_ready.read || up_ready.hangup {
            // Into the buffer, 16 KiB at most per read (what is zero-filled first); a short
            // read means the socket is empty: no further read just to hear EAGAIN.
            for _ in 0..READS_PER_WAKEUP {
                let room = UP_IN_MAX.saturating_sub(ex.up_in.len()).min(UP_READ);
                let wanted = !matches!(ex.resp, RespBody::Done)
                    && self.tls.pending_out() < OUT_HIGH_WATER
                    && room > 0;
                let (true, Some(up)) = (wanted, ex.up.as_mut()) else {
                    break;
                };
                let old = ex.up_in.len();
                ex.up_in.resize(old + room, 0);
                let r = up.read(ex.up_in.get_mut(old..).unwrap_or_default());
                let n = *r.as_ref().unwrap_or(&0);
                ex.up_in.truncate(old + n);
                match r {
                    Ok(0) => {
                        up_eof = true;
                        break;
                    }
                    Ok(n) => {
                        moved = true;
                        if n < room {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) if matches!(ex.resp, RespBody::Head) && ex.up_in.is_empty() => {
                        return retry_or(
                            ex,
                            &mut self.up_gen,
                            upstreams,
                            "the application reset the connection",
                        );
                    }
                    Err(_) => {
                        return Err(Failure::Upstream("the application reset the connection"))
                    }
                }
            }
        }
        moved |= self.respond(env, up_eof, upstreams)?;
        Ok(moved)
    }

    /// Turns what came from the application into the client's response; finishes the
    /// exchange once both directions are done.
    fn respond(
        &mut self,
        env: &mut Env<'_>,
        up_eof: bool,
        upstreams: &mut dyn Upstreams<U>,
    ) -> Result<bool, Failure> {
        let Some(ex) = self.ex.as_mut() else {
            return Ok(false);
        };
        let mut moved = false;
        if matches!(ex.resp, RespBody::Head) {
            if ex.up_in.is_empty() && up_eof {
                return retry_or(
                    ex,
                    &mut self.up_gen,
                    upstreams,
                    "the application closed the connection without answering",
                );
            }
            env.out.clear();
            match response_head(
                &ex.up_in,
                ex.head_only,
                ex.client_v10,
                self.closing,
                env.out,
            )? {
                None if ex.up_in.len() >= UP_IN_MAX => {
                    return Err(Failure::Upstream(
                        "the application's response head is too large",
                    ))
                }
                None if up_eof => {
                    return Err(Failure::Upstream(
                        "the application closed the connection mid-head",
                    ))
                }
                None => {}
                Some(h) => {
                    ex.up_in.drain(..h.len);
                    if h.interim {
                        return Ok(true);
                    }
                    ex.status = h.status;
                    ex.chunk_out = h.chunk_out;
                    ex.reusable = h.reusable;
                    self.closing |= h.close_client;
                    ex.resp = h.body;
                    ex.head_sent = true;
                    ex.retry = None;
                    self.tls
                        .send(env.out)
                        .map_err(|_| Failure::Upstream("the client connection failed"))?;
                    moved = true;
                }
            }
        }
        // The body, as far as it is in.
        if !ex.up_in.is_empty() || up_eof {
            env.out.clear();
            let mut n = 0;
            let chunk_out = ex.chunk_out;
            match &mut ex.resp {
                // The head is still incomplete: wait for the rest.
                RespBody::Head => {}
                RespBody::Done => {
                    if !ex.up_in.is_empty() {
                        // Bytes after the response, or before the request was sent.
                        ex.reusable = false;
                        ex.up_in.clear();
                    }
                }
                RespBody::Length(left) => {
                    let k = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(ex.up_in.len());
                    env.out
                        .extend_from_slice(ex.up_in.get(..k).unwrap_or_default());
                    n = k;
                    *left -= k as u64;
                    if *left == 0 {
                        ex.resp = RespBody::Done;
                    }
                }
                RespBody::Chunked(dec) => {
                    let out = &mut *env.out;
                    n = dec
                        .feed(&ex.up_in, &mut |data| {
                            if chunk_out {
                                chunks::encode(out, data);
                            } else {
                                out.extend_from_slice(data);
                            }
                            true
                        })
                        .map_err(|_| {
                            Failure::Upstream("the application's chunked body is malformed")
                        })?;
                    if dec.is_done() {
                        if chunk_out {
                            env.out.extend_from_slice(chunks::LAST);
                        }
                        ex.resp = RespBody::Done;
                    }
                }
                RespBody::UntilClose => {
                    n = ex.up_in.len();
                    if chunk_out {
                        chunks::encode(env.out, &ex.up_in);
                    } else {
                        env.out.extend_from_slice(&ex.up_in);
                    }
                    if up_eof {
                        if chunk_out {
                            env.out.extend_from_slice(chunks::LAST);
                        }
                        ex.resp = RespBody::Done;
                        ex.reusable = false;
                    }
                }
            }
            ex.up_in.drain(..n.min(ex.up_in.len()));
            if ex.up_in.is_empty() && ex.up_in.capacity() > UP_IN_MAX {
                ex.up_in = Vec::new();
            }
            if !env.out.is_empty() {
                ex.bytes += env.out.len();
                self.tls
                    .send(env.out)
                    .map_err(|_| Failure::Upstream("the client connection failed"))?;
                zeroize::Zeroize::zeroize(env.out.as_mut_slice());
                moved = true;
            }
            if up_eof && !matches!(ex.resp, RespBody::Done) {
                // What came is with the client; the framing tells it the rest is missing.
                return Err(Failure::Upstream(
                    "the application's response was cut short",
                ));
            }
            if up_eof {
                ex.reusable = false;
            }
        }
        // Done both ways?
        if matches!(ex.resp, RespBody::Done) {
            let request_done = matches!(ex.req, ReqBody::Done) && ex.up_sent >= ex.up_out.len();
            if !request_done {
                // The application answered before taking the whole body: the rest of it
                // cannot be told from a next request, so the connection ends here.
                self.closing = true;
                ex.reusable = false;
            }
            let us = u64::try_from(ex.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            log_line(env.log, &ex.method, &ex.path, ex.status, ex.bytes, us);
            let ex_reusable = ex.reusable;
            let up = ex.up.take();
            self.ex = None;
            match up {
                // Kept by this client for its next request, registered as it is.
                Some(up) if ex_reusable && request_done && !self.closing && upstreams.keep() => {
                    self.kept = Some(up);
                }
                Some(up) if ex_reusable && request_done => {
                    upstreams.release(up);
                    self.up_gen += 1;
                }
                _ => self.up_gen += 1,
            }
            if !request_done {
                let all = self.input.len();
                self.consume(all);
            }
            moved = true;
        }
        Ok(moved)
    }

    /// The phase after this event and its deadline: renewed by progress during an exchange.
    fn set_deadline(&mut self, progress: bool, env: &Env<'_>) {
        let limits = env.limits;
        let (phase, timeout, renew) = if self.proxy.is_some() || self.tls.is_handshaking() {
            (Phase::Handshake, limits.handshake_timeout, false)
        } else if self.ex.is_some() {
            (Phase::Request, self.front.upstream_timeout, progress)
        } else if self.tls.wants_write() {
            (Phase::Writing, limits.send_timeout, progress)
        } else if !self.input.is_empty() {
            (Phase::Request, limits.request_timeout, false)
        } else {
            (Phase::Idle, limits.idle_timeout, progress)
        };
        if renew || phase != self.phase {
            self.deadline = env.now + timeout;
        }
        self.phase = phase;
    }

    fn keep(&self, again: bool) -> Next {
        let interest = if self.phase == Phase::Linger || self.proxy.is_some() {
            Interest {
                read: true,
                write: false,
            }
        } else {
            Interest {
                read: self.wants_input(self.cap) && !self.paused,
                write: self.tls.wants_write(),
            }
        };
        Next::Keep {
            interest,
            again,
            paused: self.paused,
        }
    }

    fn linger(&mut self) -> Option<Closed> {
        crate::conn::linger(&mut self.sock, &mut self.lingered)
    }
}

/// A failure before the application answered: a pooled connection may have died while idle,
/// so a request without a body is sent once more on a fresh connection.
fn retry_or<U>(
    ex: &mut Exchange<U>,
    generation: &mut u64,
    upstreams: &mut dyn Upstreams<U>,
    why: &'static str,
) -> Result<bool, Failure> {
    if let Some(head) = ex.retry.take() {
        if let Ok(up) = upstreams.fresh() {
            ex.up = Some(up);
            *generation += 1;
            ex.connected = false;
            ex.reused = false;
            ex.up_out = head;
            ex.up_sent = 0;
            ex.up_in.clear();
            return Ok(true);
        }
    }
    Err(Failure::Upstream(why))
}

/// The most a front connection holds of client input: a request head and a window of body.
fn input_cap(limits: &Limits) -> usize {
    limits.max_header_bytes.saturating_add(UP_OUT_MAX)
}

/// The limits heads are parsed with: bodies stream through, so their size is the
/// application's business, not a reason for 413.
fn front_limits(limits: &Limits) -> Limits {
    Limits {
        max_body_bytes: usize::MAX,
        ..limits.clone()
    }
}

fn header_is(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether `name` is listed in a `Connection` header of `headers` (those are hop-by-hop too).
fn named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    connection_lists(headers.iter().map(|h| (h.name, h.value)), name)
}

/// Writes the request head for the application: the same method and target, HTTP/1.1, the
/// client's end-to-end headers, one framing header, and where the client is.
fn request_head(out: &mut Vec<u8>, head: &crate::http::head::Head<'_>, client: Option<SocketAddr>) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path.as_bytes());
    if let Some(q) = head.query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    for h in head.headers {
        if header_is(h.name, NOT_FORWARDED)
            || header_is(h.name, CLIENT_SET)
            || named_by_connection(head.headers, h.name)
        {
            continue;
        }
        host |= h.name.eq_ignore_ascii_case("host");
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !host {
        out.extend_from_slice(b"Host: localhost\r\n");
    }
    match head.framing {
        Framing::None => {}
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    match client {
        Some(a) => {
            let _ = write!(
                out,
                "Forwarded: for=\"{a}\";proto=https\r\nX-Forwarded-For: {}\r\n",
                a.ip()
            );
        }
        None => out.extend_from_slice(b"Forwarded: for=unknown;proto=https\r\n"),
    }
    out.extend_from_slice(b"X-Forwarded-Proto: https\r\n\r\n");
}

/// A response head read from the application.
#[derive(Debug)]
struct RespHead {
    /// Bytes it took.
    len: usize,
    /// A 1xx interim response, dropped (the front answers `Expect` itself).
    interim: bool,
    status: u16,
    body: RespBody,
    chunk_out: bool,
    reusable: bool,
    close_client: bool,
}

/// Parses the application's response head at the front of `buf` and writes the client's
/// into `out`. `Ok(None)` while incomplete.
fn response_head(
    buf: &[u8],
    head_only: bool,
    client_v10: bool,
    closing: bool,
    out: &mut Vec<u8>,
) -> Result<Option<RespHead>, Failure> {
    let garbage = Failure::Upstream("the application's response is not HTTP/1.x");
    let mut storage = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut r = httparse::Response::new(&mut storage);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(garbage),
    };
    let status = r.code.ok_or(garbage)?;
    let version = r.version.ok_or(garbage)?;
    if (100..200).contains(&status) {
        if status == 101 {
            return Err(Failure::Upstream("the application switched protocols"));
        }
        return Ok(Some(RespHead {
            len,
            interim: true,
            status,
            body: RespBody::Done,
            chunk_out: false,
            reusable: false,
            close_client: false,
        }));
    }
    let headers = r.headers;
    let mut chunked = false;
    let mut other_coding = false;
    let mut length: Option<u64> = None;
    let mut close = version == 0;
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            for t in list_items(h.value) {
                chunked = t.eq_ignore_ascii_case(b"chunked");
                other_coding |= !chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = crate::http::head::trim_ows(h.value);
            let n = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(Failure::Upstream(
                    "the application sent a bad Content-Length",
                ))?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Upstream(
                    "the application sent two Content-Lengths",
                ));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in list_items(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if version == 0 && t.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let no_body = head_only || status == 204 || status == 304;
    let body = if no_body {
        RespBody::Done
    } else if chunked && !other_coding {
        RespBody::Chunked(Decoder::new(64 * 1024))
    } else if chunked || other_coding {
        // Chunked not last: the body ends when the connection does (RFC 9112 §6.3).
        RespBody::UntilClose
    } else if let Some(n) = length {
        if n == 0 {
            RespBody::Done
        } else {
            RespBody::Length(n)
        }
    } else {
        RespBody::UntilClose
    };
    // What the client is told of the body's length.
    let out_len = match &body {
        RespBody::Length(n) => Some(*n),
        RespBody::Done if !no_body => Some(0),
        _ => None,
    };
    let until_close = matches!(body, RespBody::UntilClose);
    let chunk_out =
        !no_body && !client_v10 && (until_close || matches!(body, RespBody::Chunked(_)));
    // An HTTP/1.0 client gets a body of unknown length only delimited by close.
    let close_client = closing || (!no_body && out_len.is_none() && !chunk_out);
    let reusable = !close && !until_close;
    let given = r.reason.unwrap_or("");
    let reason = if !given.is_empty() && !given.bytes().any(|b| b < 0x20 && b != b'\t') {
        given
    } else {
        reason(status)
    };
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    for h in headers.iter() {
        if header_is(h.name, NOT_FORWARDED) || named_by_connection(headers, h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if chunk_out {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if no_body {
        // A HEAD or 304 answer's length describes the body it would have had.
        if let Some(n) = length.filter(|_| status != 204) {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
    } else if let Some(n) = out_len {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    if close_client {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_v10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(RespHead {
        len,
        interim: false,
        status,
        body,
        chunk_out,
        reusable,
        close_client,
    }))
}

#[cfg(test)]
mod tests;
