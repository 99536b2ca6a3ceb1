//! The front's connection state machine over scripted streams: the client is `conn.rs`'s
//! `TestStream` (plain, so the bytes are readable), the application one too, shared with the
//! test so it can script the answer after the request went out. No sockets, no TLS.

use super::*;
use crate::conn::tests::{Op, TestStream};
use crate::front::UpstreamAddr;
use crate::handler::Handler;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// The application's end, shared between the connection (which owns a handle) and the test.
#[derive(Debug, Clone, Default)]
struct Up(Rc<RefCell<TestStream>>, Rc<RefCell<Option<io::ErrorKind>>>);

impl Up {
    fn written(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow().written).into_owned()
    }
    fn push(&self, b: &[u8]) {
        self.0.borrow_mut().push(b);
    }
    fn op(&self, op: Op) {
        self.0.borrow_mut().reads.push_back(op);
    }
}

impl Read for Up {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Write for Up {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upstream for Up {
    fn connected(&self) -> io::Result<()> {
        match *self.1.borrow() {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }
}

/// The worker's pool and connector, scripted.
#[derive(Default)]
struct Ups {
    pooled: Vec<Up>,
    fresh: VecDeque<io::Result<Up>>,
    released: Vec<Up>,
    opened: usize,
    /// Connections a client may keep (0: none, everything goes back to the pool).
    keep_room: usize,
    kept: usize,
}

impl Upstreams<Up> for Ups {
    fn open(&mut self) -> io::Result<(Up, bool)> {
        self.opened += 1;
        if let Some(u) = self.pooled.pop() {
            return Ok((u, true));
        }
        self.fresh().map(|u| (u, false))
    }
    fn fresh(&mut self) -> io::Result<Up> {
        self.fresh
            .pop_front()
            .unwrap_or_else(|| Err(io::ErrorKind::ConnectionRefused.into()))
    }
    fn release(&mut self, up: Up) {
        self.released.push(up);
    }
    fn keep(&mut self) -> bool {
        let ok = self.kept < self.keep_room;
        self.kept += usize::from(ok);
        ok
    }
    fn unkeep(&mut self) {
        self.kept -= 1;
    }
}

fn attestation(_: &Request<'_>) -> Response {
    Response::new(200, "application/json", "{\"local\":true}")
}

struct World {
    limits: Limits,
    handler: Box<dyn Handler>,
    budget: Budget,
    log: Vec<u8>,
    out: Vec<u8>,
    now: Instant,
    front: Arc<Front>,
    ups: Ups,
}

impl World {
    fn new() -> World {
        World::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut Front)) -> World {
        let limits = Limits::default();
        let mut front = Front::new(UpstreamAddr::Tcp("127.0.0.1:8080".parse().unwrap()));
        f(&mut front);
        World {
            budget: Budget::new(limits.memory_budget),
            limits,
            handler: Box::new(attestation),
            log: Vec::new(),
            out: Vec::new(),
            now: Instant::now(),
            front: Arc::new(front),
            ups: Ups::default(),
        }
    }

    fn conn(&self, s: TestStream) -> FrontConn<TestStream, Up> {
        FrontConn::new(s, None, &self.front, &self.limits, self.now).unwrap()
    }

    /// One event: the client readable, the application readable and writable.
    fn event(&mut self, c: &mut FrontConn<TestStream, Up>) -> Next {
        let all = Ready {
            read: true,
            write: true,
            hangup: false,
        };
        let mut env = Env {
            limits: &self.limits,
            handler: &*self.handler,
            date: b"D",
            log: &mut self.log,
            budget: &self.budget,
            open: 1,
            out: &mut self.out,
            slice: Duration::from_millis(1),
            now: self.now,
        };
        c.on_ready(all, all, &mut env, &mut self.ups)
    }

    /// Events until nothing changes (at most 50).
    fn settle(&mut self, c: &mut FrontConn<TestStream, Up>) -> Next {
        let mut last = self.event(c);
        for _ in 0..50 {
            let before = (c.socket().written.len(), c.socket().read_calls);
            last = self.event(c);
            if matches!(last, Next::Close(_))
                || (c.socket().written.len(), c.socket().read_calls) == before
            {
                break;
            }
        }
        last
    }

    fn up(&mut self) -> Up {
        let u = Up::default();
        self.ups.fresh.push_back(Ok(u.clone()));
        u
    }
}

fn client(bytes: &[u8]) -> TestStream {
    let mut s = TestStream::default();
    s.push(bytes);
    s
}

fn said(c: &FrontConn<TestStream, Up>) -> String {
    String::from_utf8_lossy(&c.socket().written).into_owned()
}

#[test]
fn a_request_goes_upstream_normalized_and_the_answer_comes_back() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(
        b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n",
    ));
    w.settle(&mut c);
    let req = up.written();
    assert_eq!(
        req,
        "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nForwarded: for=unknown;proto=https\r\nX-Forwarded-Proto: https\r\n\r\n"
    );
    up.push(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-App: 1\r\n\r\nhello",
    );
    w.settle(&mut c);
    assert_eq!(
        said(&c),
        "HTTP/1.1 200 OK\r\nX-App: 1\r\nContent-Length: 5\r\n\r\nhello"
    );
    assert_eq!(w.ups.released.len(), 1, "kept for the next request");
    assert!(c.is_idle());
    assert!(String::from_utf8_lossy(&w.log).starts_with("GET /a 200 5 "));
}

#[test]
fn the_client_address_comes_from_the_proxy_header() {
    let mut w = World::with(|f| f.proxy_protocol = true);
    let up = w.up();
    let mut h = contract::proxy_v2::header(Some((
        "203.0.113.7:40000".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
    )));
    h.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut c = w.conn(client(&h));
    w.settle(&mut c);
    let req = up.written();
    assert!(
        req.contains(
            "Forwarded: for=\"203.0.113.7:40000\";proto=https\r\nX-Forwarded-For: 203.0.113.7\r\n"
        ),
        "{req}"
    );

    // Expected and not sent: the connection ends, nothing goes upstream.
    let mut w = World::with(|f| f.proxy_protocol = true);
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(matches!(w.settle(&mut c), Next::Close(_)));
    assert_eq!(w.ups.opened, 0);
}

#[test]
fn smuggling_shapes_never_reach_the_application() {
    for req in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    ] {
        let mut w = World::new();
        let mut c = w.conn(client(req));
        w.settle(&mut c);
        assert_eq!(w.ups.opened, 0, "{}", String::from_utf8_lossy(req));
        assert!(said(&c).starts_with("HTTP/1.1 4"), "{}", said(&c));
    }
}

#[test]
fn a_chunked_request_is_one_request_upstream_with_one_framing() {
    let mut w = World::new();
    let up = w.up();
    // A body that holds what looks like a second request: it stays body.
    let mut c = w.conn(client(
        b"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
    ));
    w.settle(&mut c);
    let req = up.written();
    assert!(
        req.starts_with("POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nForwarded"),
        "{req}"
    );
    assert!(
        req.ends_with("\r\n\r\n20\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"),
        "{req}"
    );
    assert_eq!(
        req.matches("HTTP/1.1\r\n").count(),
        2,
        "one request line, one inside the body"
    );
    up.push(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    w.settle(&mut c);
    assert_eq!(
        said(&c),
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    );
}

#[test]
fn a_body_ended_by_close_reaches_the_client_chunked_and_the_connection_is_not_reused() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    up.push(b"HTTP/1.0 200 OK\r\n\r\nall of it");
    up.op(Op::Eof);
    w.settle(&mut c);
    assert_eq!(
        said(&c),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nall of it\r\n0\r\n\r\n"
    );
    assert!(w.ups.released.is_empty());
}

#[test]
fn an_application_that_refuses_or_answers_garbage_gets_the_client_a_502() {
    let mut w = World::new();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    assert!(
        said(&c).starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{}",
        said(&c)
    );
    assert!(said(&c).contains("refused the connection"));
    assert!(said(&c).contains("Connection: close\r\n"));

    let mut w = World::new();
    let up = w.up();
    *up.1.borrow_mut() = Some(io::ErrorKind::ConnectionRefused); // the connect fails later
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    assert!(said(&c).contains("502"), "{}", said(&c));

    for garbage in [
        &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 101 Switching\r\n\r\n",
    ] {
        let mut w = World::new();
        let up = w.up();
        let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        w.settle(&mut c);
        up.push(garbage);
        w.settle(&mut c);
        assert!(said(&c).starts_with("HTTP/1.1 502 "), "{}", said(&c));
    }
}

#[test]
fn a_reset_before_the_answer_is_502_and_a_dead_pooled_connection_is_retried() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    up.op(Op::Fail(io::ErrorKind::ConnectionReset));
    w.settle(&mut c);
    assert!(said(&c).contains("reset the connection"), "{}", said(&c));

    // A pooled connection the application had closed: the request goes out again, fresh.
    let mut w = World::new();
    let dead = Up::default();
    dead.op(Op::Eof);
    w.ups.pooled.push(dead);
    let fresh = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    assert!(fresh.written().starts_with("GET / HTTP/1.1\r\n"));
    fresh.push(b"HTTP/1.1 204 No Content\r\n\r\n");
    w.settle(&mut c);
    assert_eq!(said(&c), "HTTP/1.1 204 No Content\r\n\r\n");
}

#[test]
fn an_application_that_says_nothing_gets_a_504() {
    let mut w = World::with(|f| f.upstream_timeout = Duration::from_secs(5));
    let _up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    assert_eq!(c.on_tick(w.now + Duration::from_secs(4)), Tick::Nothing);
    assert_eq!(c.on_tick(w.now + Duration::from_secs(6)), Tick::Run);
    w.settle(&mut c);
    assert!(
        said(&c).starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{}",
        said(&c)
    );
}

#[test]
fn a_response_cut_after_its_head_cuts_the_connection() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    up.push(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    up.op(Op::Eof);
    assert_eq!(w.settle(&mut c), Next::Close(Closed::Upstream));
    assert!(said(&c).ends_with("only this"));
}

#[test]
fn the_attestation_path_is_answered_here() {
    let mut w = World::new();
    let mut c = w.conn(client(
        b"GET /.well-known/enclave-https/attestation?nonce=ab HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    w.settle(&mut c);
    assert_eq!(w.ups.opened, 0);
    assert!(said(&c).ends_with("{\"local\":true}"), "{}", said(&c));
    assert!(c.is_idle());
}

#[test]
fn a_large_upload_streams_through_bounded_buffers() {
    let mut w = World::new();
    let up = w.up();
    let total = 4 << 20;
    let mut s = TestStream::default();
    s.push(format!("PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes());
    for _ in 0..total / 65536 {
        s.push(&[b'z'; 65536]);
    }
    let mut c = w.conn(s);
    // The application takes nothing at first: the front stops reading.
    up.0.borrow_mut().room = Some(0);
    for _ in 0..20 {
        w.event(&mut c);
    }
    assert!(c.charged() < 512 * 1024, "held {}", c.charged());
    assert!(
        c.socket().reads.len() > 50,
        "most of the body is still with the client"
    );
    // Then it takes everything.
    up.0.borrow_mut().room = None;
    for _ in 0..2000 {
        w.event(&mut c);
        assert!(c.charged() < 512 * 1024, "held {}", c.charged());
        if c.socket().reads.is_empty() {
            break;
        }
    }
    w.settle(&mut c);
    let body_len = up.0.borrow().written.len();
    assert!(body_len > total && body_len < total + 500, "{body_len}");
    up.push(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    w.settle(&mut c);
    assert!(said(&c).ends_with("ok"));
}

#[test]
fn an_early_answer_to_an_upload_ends_the_connection_after_it() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",
    ));
    w.settle(&mut c);
    up.push(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
    w.settle(&mut c);
    assert!(
        said(&c).starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{}",
        said(&c)
    );
    assert!(
        w.ups.released.is_empty(),
        "the rest of the body would be read as a request"
    );
}

#[test]
fn head_and_http10_clients() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    up.push(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    w.settle(&mut c);
    assert_eq!(said(&c), "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    assert_eq!(w.ups.released.len(), 1);

    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.0\r\n\r\n"));
    w.settle(&mut c);
    assert!(up.written().contains("Host: localhost\r\n"));
    up.push(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    w.settle(&mut c);
    assert_eq!(said(&c), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc");
    assert!(c.socket().shut);
}

#[test]
fn a_response_head_may_arrive_in_pieces() {
    let mut w = World::new();
    let up = w.up();
    let mut c = w.conn(client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    for piece in [
        &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
        b"ngth: 2\r\n",
        b"\r",
        b"\nhi",
    ] {
        up.push(piece);
        w.settle(&mut c);
    }
    assert_eq!(said(&c), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
}

#[test]
fn a_client_keeps_its_application_connection_between_requests() {
    let mut w = World::new();
    w.ups.keep_room = 1;
    let up = w.up();
    let mut c = w.conn(client(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.settle(&mut c);
    up.push(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    w.settle(&mut c);
    assert_eq!(
        (w.ups.kept, w.ups.released.len()),
        (1, 0),
        "kept, not pooled"
    );
    let (_, interest, generation) = c.upstream().expect("still watched");
    assert!(interest.read && !interest.write);
    // The next request goes out on it, with no open and no new registration.
    c.sock.push(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    w.settle(&mut c);
    assert_eq!(w.ups.opened, 1);
    assert_eq!(w.ups.kept, 0, "in use again");
    assert_eq!(c.upstream().map(|u| u.2), Some(generation));
    assert_eq!(up.written().matches("GET /").count(), 2);
    up.push(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    w.settle(&mut c);
    assert!(said(&c).ends_with("b"));
    assert_eq!(w.ups.kept, 1);
    // The application closes it while idle: noticed, dropped, counted out.
    up.op(Op::Eof);
    w.settle(&mut c);
    assert_eq!(w.ups.kept, 0);
    assert!(c.upstream().is_none());
}
