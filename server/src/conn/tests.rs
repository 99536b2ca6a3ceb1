//! The connection state machine driven over a scripted stream (Firecracker's `TestStream`
//! idea): reads come from a script of data, would-block, EOF and errors; writes go to a
//! buffer whose room the test sets (partial writes, would-block) or fail. No sockets.

use super::*;
use crate::handler::{Request, Response};
use std::collections::VecDeque;

/// One scripted read.
#[derive(Debug)]
pub(crate) enum Op {
    Data(Vec<u8>),
    WouldBlock,
    Eof,
    Fail(io::ErrorKind),
}

#[derive(Debug, Default)]
pub(crate) struct TestStream {
    pub(crate) reads: VecDeque<Op>,
    /// Every `read` call made.
    pub(crate) read_calls: usize,
    pub(crate) written: Vec<u8>,
    /// Bytes writes may still take (`None`: unlimited); 0 means WouldBlock.
    pub(crate) room: Option<usize>,
    pub(crate) write_error: Option<io::ErrorKind>,
    pub(crate) shut: bool,
    /// What `unsent()` reports (the kernel's send queue), if anything.
    pub(crate) queue: Option<usize>,
}

impl TestStream {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.reads.push_back(Op::Data(bytes.to_vec()));
    }
}

impl Read for TestStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_calls += 1;
        match self.reads.pop_front() {
            None | Some(Op::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Some(Op::Eof) => {
                self.reads.push_front(Op::Eof);
                Ok(0)
            }
            Some(Op::Fail(kind)) => Err(kind.into()),
            Some(Op::Data(mut d)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                if n < d.len() {
                    self.reads.push_front(Op::Data(d.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

impl Write for TestStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.write_error {
            return Err(kind.into());
        }
        let n = match self.room {
            Some(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(room) => room.min(buf.len()),
            None => buf.len(),
        };
        if let Some(room) = &mut self.room {
            *room -= n;
        }
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for TestStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }

    fn unsent(&self) -> Option<usize> {
        self.queue
    }
}

fn echo(req: &Request<'_>) -> Response {
    let mut body = format!("{} {} ", req.method(), req.path()).into_bytes();
    body.extend_from_slice(req.body());
    Response::new(200, "text/plain", body)
}

/// A worker's side of the tests: limits, handler, budget, clock.
struct World {
    limits: Limits,
    handler: Box<dyn Handler>,
    budget: Budget,
    log: Vec<u8>,
    out: Vec<u8>,
    now: Instant,
    open: usize,
    slice: Duration,
}

impl World {
    fn new() -> World {
        World::with(Limits::default(), echo)
    }

    fn with(limits: Limits, handler: impl Handler) -> World {
        World {
            budget: Budget::new(limits.memory_budget),
            limits,
            handler: Box::new(handler),
            log: Vec::new(),
            out: Vec::new(),
            now: Instant::now(),
            open: 1,
            slice: http::DEFAULT_SLICE,
        }
    }

    fn plain(&self, s: TestStream) -> Conn<TestStream> {
        Conn::new(s, None, &self.limits, self.now).unwrap()
    }

    fn event(&mut self, c: &mut Conn<TestStream>, ready: Ready) -> Next {
        let mut env = Env {
            limits: &self.limits,
            handler: &*self.handler,
            date: b"D",
            log: &mut self.log,
            budget: &self.budget,
            open: self.open,
            out: &mut self.out,
            slice: self.slice,
            now: self.now,
        };
        c.on_ready(ready, &mut env)
    }

    fn readable(&mut self, c: &mut Conn<TestStream>) -> Next {
        self.event(c, READ)
    }

    fn later(&mut self, d: Duration) {
        self.now += d;
    }
}

const READ: Ready = Ready {
    read: true,
    write: false,
    hangup: false,
};
const WRITE: Ready = Ready {
    read: false,
    write: true,
    hangup: false,
};
const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";

fn keep(read: bool, write: bool) -> Next {
    Next::Keep {
        interest: Interest { read, write },
        again: false,
        paused: false,
    }
}

fn written(c: &Conn<TestStream>) -> String {
    String::from_utf8_lossy(&c.socket().written).into_owned()
}

#[test]
fn a_request_is_answered_and_the_connection_waits_for_the_next() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(GET);
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), keep(true, false));
    let out = written(&c);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\nDate: D\r\n"), "{out}");
    assert!(out.ends_with("GET /a "));
    assert_eq!(c.phase(), Phase::Idle);
    assert!(c.is_idle());
    // One short read ended the round: no second read just to hear EAGAIN.
    assert_eq!(c.socket().read_calls, 1);
    assert!(
        w.log.starts_with(b"GET /a 200 7 "),
        "{:?}",
        String::from_utf8_lossy(&w.log)
    );
}

#[test]
fn would_block_reads_nothing_and_keeps_waiting() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.reads.push_back(Op::WouldBlock);
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), keep(true, false));
    assert!(written(&c).is_empty());
    assert_eq!(c.phase(), Phase::Idle);
}

#[test]
fn pipelined_requests_in_one_read_are_answered_in_order() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(&[GET, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HT"].concat());
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), keep(true, false));
    let out = written(&c);
    let (a, b) = (out.find("GET /a").unwrap(), out.find("GET /b").unwrap());
    assert!(a < b);
    assert_eq!(out.matches("200 OK").count(), 2);
    // The partial third request is a request in progress.
    assert_eq!(c.phase(), Phase::Request);
    c.sock.push(b"TP/1.1\r\nHost: h\r\n\r\n");
    w.readable(&mut c);
    assert_eq!(written(&c).matches("200 OK").count(), 3);
}

#[test]
fn partial_writes_hold_reading_until_the_client_takes_its_responses() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(GET);
    s.room = Some(10);
    let mut c = w.plain(s);
    // Ten bytes went out; the rest waits for EPOLLOUT, and reading waits too.
    assert_eq!(w.readable(&mut c), keep(false, true));
    assert_eq!(c.socket().written.len(), 10);
    assert_eq!(c.phase(), Phase::Writing);
    c.sock.room = Some(0);
    assert_eq!(w.event(&mut c, WRITE), keep(false, true));
    c.sock.room = None;
    c.sock.push(GET);
    assert_eq!(w.event(&mut c, WRITE), keep(true, false));
    assert!(written(&c).ends_with("GET /a "));
    // The second request was not read while the first response was stuck.
    assert_eq!(written(&c).matches("200 OK").count(), 1);
    w.readable(&mut c);
    assert_eq!(written(&c).matches("200 OK").count(), 2);
}

#[test]
fn eof_after_a_request_answers_it_then_closes() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(GET);
    s.reads.push_back(Op::Eof);
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), keep(true, false));
    assert_eq!(w.readable(&mut c), Next::Close(Closed::Done));
    assert_eq!(written(&c).matches("200 OK").count(), 1);
    assert!(!c.socket().shut, "nothing to half-close: the peer is gone");
}

#[test]
fn connection_close_half_closes_then_lingers_until_eof() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), keep(true, false));
    assert!(c.socket().shut, "write side shut down");
    assert_eq!(c.phase(), Phase::Linger);
    assert!(written(&c).contains("Connection: close\r\n"));
    // What the client still sends is read and dropped, never answered.
    c.sock.push(GET);
    assert_eq!(w.readable(&mut c), keep(true, false));
    assert_eq!(written(&c).matches("HTTP/1.1").count(), 1);
    c.sock.reads.push_back(Op::Eof);
    assert_eq!(w.readable(&mut c), Next::Close(Closed::Done));
}

#[test]
fn a_lingering_client_that_keeps_sending_is_cut_off() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(b"GET / HTTP/1.0\r\n\r\n");
    let mut c = w.plain(s);
    w.readable(&mut c);
    assert_eq!(c.phase(), Phase::Linger);
    c.sock.push(&vec![b'x'; LINGER_BYTES + 1]);
    assert_eq!(w.readable(&mut c), Next::Close(Closed::LingerOverflow));
}

#[test]
fn socket_errors_and_hangups_close() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.reads.push_back(Op::Fail(io::ErrorKind::ConnectionReset));
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), Next::Close(Closed::Socket));

    let mut s = TestStream::default();
    s.push(GET);
    s.write_error = Some(io::ErrorKind::BrokenPipe);
    let mut c = w.plain(s);
    assert_eq!(w.readable(&mut c), Next::Close(Closed::Socket));

    let mut c = w.plain(TestStream::default());
    let hup = Ready {
        hangup: true,
        ..Ready::default()
    };
    assert_eq!(w.event(&mut c, hup), Next::Close(Closed::Socket));
    assert_eq!(
        w.budget.used(),
        0,
        "a closed connection gives back all it held"
    );
}

#[test]
fn request_timeout_is_not_renewed_by_trickling_bytes() {
    let mut w = World::new();
    let mut c = w.plain(TestStream::default());
    let timeout = w.limits.request_timeout;
    for b in b"GET / HTTP/1.1\r\nHo" {
        c.sock.push(&[*b]);
        w.readable(&mut c);
        w.later(timeout / 40);
    }
    assert_eq!(c.phase(), Phase::Request);
    assert_eq!(c.on_tick(&w.limits, w.now), None);
    w.later(timeout);
    assert_eq!(
        c.on_tick(&w.limits, w.now),
        Some(Closed::Timeout(Phase::Request))
    );
}

#[test]
fn idle_timeout_after_the_last_answer() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(GET);
    let mut c = w.plain(s);
    w.later(w.limits.idle_timeout / 2);
    w.readable(&mut c);
    w.later(w.limits.idle_timeout - Duration::from_millis(1));
    assert_eq!(c.on_tick(&w.limits, w.now), None, "renewed by the answer");
    w.later(Duration::from_millis(1));
    assert_eq!(
        c.on_tick(&w.limits, w.now),
        Some(Closed::Timeout(Phase::Idle))
    );
}

#[test]
fn a_client_reading_a_byte_now_and_then_is_closed_by_the_send_timeout() {
    let big = |_: &Request<'_>| Response::new(200, "", vec![b'x'; 100_000]);
    let mut w = World::with(Limits::default(), big);
    let mut s = TestStream::default();
    s.push(GET);
    s.room = Some(1);
    let mut c = w.plain(s);
    w.readable(&mut c);
    assert_eq!(c.phase(), Phase::Writing);
    let timeout = w.limits.send_timeout;
    // One byte per event, many events: the deadline does not move.
    for _ in 0..100 {
        w.later(timeout / 200);
        c.sock.room = Some(1);
        assert_eq!(w.event(&mut c, WRITE), keep(false, true));
    }
    w.later(timeout / 2);
    assert_eq!(
        c.on_tick(&w.limits, w.now),
        Some(Closed::Timeout(Phase::Writing))
    );

    // A client taking 16 KiB per period is a slow client, not an attacker: it stays.
    let mut s = TestStream::default();
    s.push(GET);
    s.room = Some(0);
    let mut c = w.plain(s);
    w.readable(&mut c);
    for _ in 0..5 {
        w.later(timeout - Duration::from_millis(1));
        assert_eq!(c.on_tick(&w.limits, w.now), None);
        c.sock.room = Some(MIN_SEND_PROGRESS);
        w.event(&mut c, WRITE);
    }
    assert_eq!(c.phase(), Phase::Writing);
}

#[test]
fn what_the_client_takes_from_the_kernel_renews_the_send_deadline() {
    let big = |_: &Request<'_>| Response::new(200, "", vec![b'x'; 100_000]);
    let mut w = World::with(Limits::default(), big);
    let mut s = TestStream::default();
    s.push(GET);
    // The kernel took 50,000 bytes at once and holds them; we hold the rest.
    s.room = Some(50_000);
    s.queue = Some(50_000);
    let mut c = w.plain(s);
    w.readable(&mut c);
    assert_eq!(c.phase(), Phase::Writing);
    let timeout = w.limits.send_timeout;
    // No write is possible, but the client drains the kernel's queue by 20,000 bytes a
    // period: the deadline moves on.
    for _ in 0..2 {
        w.later(timeout - Duration::from_millis(1));
        c.sock.queue = c.sock.queue.map(|q| q - 20_000);
        assert_eq!(c.on_tick(&w.limits, w.now), None);
    }
    // It stops taking: closed one period later.
    w.later(timeout);
    assert_eq!(
        c.on_tick(&w.limits, w.now),
        Some(Closed::Timeout(Phase::Writing))
    );
}

#[test]
fn limits_answer_with_their_status_and_close() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let mut w = World::with(limits, echo);
    let mut s = TestStream::default();
    s.push(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
    let mut c = w.plain(s);
    w.readable(&mut c);
    assert!(written(&c).starts_with("HTTP/1.1 413 "), "{}", written(&c));
    assert_eq!(c.phase(), Phase::Linger);
}

#[test]
fn a_slow_handler_yields_and_the_loop_comes_back() {
    let slow = |_: &Request<'_>| {
        std::thread::sleep(Duration::from_millis(3));
        Response::new(200, "", "")
    };
    let mut w = World::with(Limits::default(), slow);
    let mut s = TestStream::default();
    s.push(&GET.repeat(3));
    let mut c = w.plain(s);
    let Next::Keep { again, .. } = w.readable(&mut c) else {
        panic!("closed")
    };
    assert!(again);
    assert_eq!(written(&c).matches("200 OK").count(), 1);
    w.event(&mut c, Ready::default());
    w.event(&mut c, Ready::default());
    assert_eq!(written(&c).matches("200 OK").count(), 3);
}

#[test]
fn memory_budget_charges_releases_sheds_and_pauses() {
    let limits = Limits {
        memory_budget: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let mut w = World::with(limits, echo);
    w.open = 2;
    let mut s = TestStream::default();
    s.push(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n");
    s.push(&vec![b'a'; 300_000]);
    let mut big = w.plain(s);
    // A round reads at most READS_PER_WAKEUP times; level-triggered epoll calls again.
    while !big.sock.reads.is_empty() {
        w.readable(&mut big);
    }
    assert_eq!(big.phase(), Phase::Request);
    assert!(big.charged() > 300_000, "{}", big.charged());
    assert_eq!(w.budget.used(), big.charged());
    // Someone else holds more than half the budget: with ten connections open, the big
    // unfinished request is over its share of what is left ((8 MiB - ~5.5 MiB) / 10) and
    // holds back; nothing is shed yet.
    w.open = 10;
    let mut other = 0;
    w.budget.charge(&mut other, 5 * 1024 * 1024);
    big.sock.push(&vec![b'a'; 1000]);
    let Next::Keep { paused, .. } = w.readable(&mut big) else {
        panic!("closed")
    };
    assert!(paused);
    assert!(!w.budget.shedding());
    // Less held elsewhere: under half the budget, it reads on.
    w.budget.charge(&mut other, 1024 * 1024);
    w.event(&mut big, Ready::default());
    assert!(big.sock.reads.is_empty());
    w.budget.charge(&mut other, 6 * 1024 * 1024);
    assert!(w.budget.shedding());
    // Now past the limit: it is paused, and a new request on another connection gets 503.
    w.budget.charge(&mut other, 8 * 1024 * 1024);
    big.sock.push(&vec![b'a'; 100_000]);
    let Next::Keep {
        interest, paused, ..
    } = w.readable(&mut big)
    else {
        panic!("closed")
    };
    assert!(paused && !interest.read);
    let mut s = TestStream::default();
    s.push(GET);
    let mut newcomer = w.plain(s);
    w.readable(&mut newcomer);
    assert!(
        written(&newcomer).starts_with("HTTP/1.1 503 "),
        "{}",
        written(&newcomer)
    );
    // Memory is freed: the paused one reads on when the loop comes back to it.
    w.budget.charge(&mut other, 0);
    let Next::Keep {
        interest, paused, ..
    } = w.event(&mut big, Ready::default())
    else {
        panic!("closed")
    };
    assert!(!paused && interest.read);
    big.release(&w.budget);
    newcomer.release(&w.budget);
    assert_eq!(w.budget.used(), 0);
}

#[test]
fn draining_answers_the_request_in_progress_with_close() {
    let mut w = World::new();
    let mut s = TestStream::default();
    s.push(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab");
    let mut c = w.plain(s);
    w.readable(&mut c);
    assert!(!c.is_idle());
    c.drain();
    c.sock.push(b"cd");
    w.readable(&mut c);
    let out = written(&c);
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(out.ends_with("POST / abcd"));
    assert!(c.is_lingering());
}

mod tls {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

    /// Trusts any certificate: these tests are about the server's state machine.
    #[derive(Debug)]
    struct AnyCert;

    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }

    fn client() -> ClientConnection {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        ClientConnection::new(Arc::new(config), ServerName::try_from("x").unwrap()).unwrap()
    }

    fn server_config() -> Arc<ServerConfig> {
        crate::tls::Identity::generate()
            .unwrap()
            .into_config()
            .unwrap()
    }

    /// Moves the client's records into the script and the server's output into the client.
    fn exchange(client: &mut ClientConnection, c: &mut Conn<TestStream>) {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        if !to_server.is_empty() {
            c.sock.push(&to_server);
        }
    }

    fn deliver(client: &mut ClientConnection, c: &mut Conn<TestStream>) {
        let bytes = std::mem::take(&mut c.sock.written);
        let mut rd = &bytes[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
        }
        client.process_new_packets().unwrap();
    }

    #[test]
    fn handshake_request_and_response_through_the_state_machine() {
        let mut w = World::new();
        let config = server_config();
        let mut c = Conn::new(TestStream::default(), Some(&config), &w.limits, w.now).unwrap();
        assert_eq!(c.phase(), Phase::Handshake);
        let mut cl = client();
        for _ in 0..4 {
            exchange(&mut cl, &mut c);
            w.readable(&mut c);
            deliver(&mut cl, &mut c);
        }
        assert!(!cl.is_handshaking());
        cl.writer().write_all(GET).unwrap();
        exchange(&mut cl, &mut c);
        w.readable(&mut c);
        deliver(&mut cl, &mut c);
        let mut plain = Vec::new();
        let _ = cl.reader().read_to_end(&mut plain);
        let text = String::from_utf8_lossy(&plain);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert_eq!(c.phase(), Phase::Idle);
        assert!(c.charged() >= crate::tls::MAX_RECORD);
    }

    #[test]
    fn garbage_instead_of_a_client_hello_is_a_tls_close_with_an_alert() {
        let mut w = World::new();
        let config = server_config();
        let mut s = TestStream::default();
        s.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut c = Conn::new(s, Some(&config), &w.limits, w.now).unwrap();
        assert_eq!(w.readable(&mut c), Next::Close(Closed::Tls));
        assert_eq!(c.socket().written.first(), Some(&21), "an alert record");
        assert_eq!(w.budget.used(), 0);
    }

    #[test]
    fn a_stalled_handshake_times_out_and_its_bytes_are_charged() {
        let mut w = World::new();
        let config = server_config();
        let mut s = TestStream::default();
        // The first 3 KiB of a large handshake record: rustls holds them, we count them.
        let mut hello = vec![0x16, 0x03, 0x01, 0x40, 0x00];
        hello.extend_from_slice(&[1u8; 3072]);
        s.push(&hello);
        let mut c = Conn::new(s, Some(&config), &w.limits, w.now).unwrap();
        w.readable(&mut c);
        assert_eq!(c.phase(), Phase::Handshake);
        assert!(c.charged() >= crate::tls::MAX_RECORD);
        w.later(w.limits.handshake_timeout);
        assert_eq!(
            c.on_tick(&w.limits, w.now),
            Some(Closed::Timeout(Phase::Handshake))
        );
    }
}
