//! HTTP/1.1 over one connection, without I/O: [`Session::process`] takes the plaintext received
//! so far, answers every complete request at its front in order (pipelining), appends the
//! responses to an output buffer and removes what it consumed. The connection state machine
//! (`conn.rs`) moves bytes between that and the socket; tests call it with byte strings.
//!
//! - [`head`]: the request line and headers, and what is refused there (framing shapes other
//!   parsers read differently, limits, `Expect`);
//! - [`chunked`]: the chunked body, decoded strictly;
//! - [`response`]: serializing responses, and the log line.
//!
//! Keep-alive is the default on HTTP/1.1; `Connection: close`, HTTP/1.0 without
//! `Connection: keep-alive`, and the last request allowed on a connection end it after the
//! response. HEAD gets GET's headers and no body. `Expect: 100-continue` is answered with an
//! interim 100 once the head is in and the body is not.
//!
//! Two rules keep one connection from hurting the others: while memory is short
//! ([`Ctx::shed`]) a request whose head completes is answered 503 and the connection closed;
//! and a connection gets at most [`Ctx::slice`] of handler time per round (at least one
//! request), then [`Session::process`] says [`Flow::Yield`] and the worker serves its other
//! connections before coming back (an NSM attestation takes longer than a slice, so a client
//! pipelining them gets one per round).

pub mod chunked;
pub mod head;
pub mod response;

use crate::config::{Limits, MAX_HEADERS_CAP};
use crate::handler::{Handler, Request, Response};
use chunked::Chunked;
use head::{parse_head, reject, Framing, HeadParse, Reject};
pub use response::{log_line, reason, write_response, Connection};
use std::time::{Duration, Instant};

/// Stop answering pipelined requests once this much output waits, until it is sent.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// The handler time a connection gets per round by default.
pub const DEFAULT_SLICE: Duration = Duration::from_millis(1);

/// A request whose head is in but whose body is not (yet).
#[derive(Debug)]
struct Pending {
    framing: Framing,
    chunked: Chunked,
    started: Instant,
    continue_sent: bool,
    expect_continue: bool,
}

/// What the session needs from its worker besides the bytes.
pub struct Ctx<'a> {
    /// The limits.
    pub limits: &'a Limits,
    /// The application.
    pub handler: &'a dyn Handler,
    /// The `Date` header's value (IMF-fixdate), refreshed by the worker.
    pub date: &'a [u8],
    /// Where request log lines go.
    pub log: &'a mut Vec<u8>,
    /// Memory is short: answer a request whose head completes now with 503 and close.
    pub shed: bool,
    /// Handler time per connection per round (see the module's documentation).
    pub slice: Duration,
    /// Stop answering once `out` holds this much: [`OUT_HIGH_WATER`], or less when the memory
    /// budget leaves this connection less room. At least one request is answered when `out`
    /// starts empty and this is not 0.
    pub out_limit: usize,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("limits", self.limits)
            .field("shed", &self.shed)
            .finish_non_exhaustive()
    }
}

/// Whether [`Session::process`] stopped for lack of input or output room, or to let other
/// connections have their turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Nothing more can be answered until more input arrives or output is sent.
    Done,
    /// The time slice ran out with complete requests possibly left: call again soon.
    Yield,
}

/// The HTTP state of one connection.
#[derive(Debug, Default)]
pub struct Session {
    pending: Option<Pending>,
    served: u64,
    closing: bool,
    /// The server is shutting down: the next response closes the connection.
    draining: bool,
}

/// One step's result.
enum Step {
    /// Not enough input for the request at the front.
    NeedMore,
    /// A request of this many bytes was answered.
    Answered(usize),
}

impl Session {
    /// A fresh session.
    pub fn new() -> Session {
        Session::default()
    }

    /// Whether the connection is to be closed once the output is sent. Nothing more is read.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Whether a request's head is in and its body is still arriving.
    pub fn in_request(&self) -> bool {
        self.pending.is_some()
    }

    /// Bytes the session holds besides the input (a chunked body decoded so far).
    pub fn held(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.chunked.held())
    }

    /// The server is shutting down: the request in progress (or the next one) is still
    /// answered, with `Connection: close`, and then the connection closes.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Answers the complete requests at the front of `input`, in order, appending to `out`;
    /// removes what was consumed from `input`. Stops once `out` holds [`Ctx::out_limit`]
    /// bytes (call again when it is sent), the connection is closing, or the slice is used.
    pub fn process(&mut self, input: &mut Vec<u8>, out: &mut Vec<u8>, ctx: &mut Ctx<'_>) -> Flow {
        let mut consumed = 0;
        let round = Instant::now();
        let mut flow = Flow::Done;
        while !self.closing && out.len() < ctx.out_limit.min(OUT_HIGH_WATER) {
            let buf = input.get(consumed..).unwrap_or_default();
            if buf.is_empty() {
                break;
            }
            match self.step(buf, out, ctx) {
                Ok(Step::NeedMore) => break,
                Ok(Step::Answered(n)) => {
                    consumed += n;
                    if round.elapsed() >= ctx.slice && consumed < input.len() {
                        flow = Flow::Yield;
                        break;
                    }
                }
                Err(r) => {
                    self.pending = None;
                    self.closing = true;
                    let resp = Response::json_error(r.status, r.message);
                    let n = write_response(out, &resp, false, Connection::Close, ctx.date);
                    log_line(ctx.log, "-", "-", r.status, n, 0);
                    consumed = input.len();
                }
            }
        }
        // The requests answered leave no copy behind (a body may have been a secret to store).
        let consumed = consumed.min(input.len());
        zeroize::Zeroize::zeroize(input.get_mut(..consumed).unwrap_or_default());
        input.drain(..consumed);
        flow
    }

    fn step(&mut self, buf: &[u8], out: &mut Vec<u8>, ctx: &mut Ctx<'_>) -> Result<Step, Reject> {
        let limits = ctx.limits;
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
        let cap = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
        let Some(slots) = storage.get_mut(..cap) else {
            return Err(reject(500, "internal error"));
        };
        let head = match parse_head(buf, slots, limits)? {
            HeadParse::Partial => return Ok(Step::NeedMore),
            HeadParse::Complete(head) => head,
        };
        if self.pending.is_none() && ctx.shed {
            return Err(reject(
                503,
                "the server is short of memory; try again shortly",
            ));
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            framing: head.framing,
            chunked: Chunked::default(),
            started: Instant::now(),
            continue_sent: false,
            expect_continue: head.expect_continue,
        });
        let (total, body): (usize, &[u8]) = match pending.framing {
            Framing::None => (head.len, &[]),
            Framing::Length(n) => match head
                .len
                .checked_add(n)
                .and_then(|end| Some((end, buf.get(head.len..end)?)))
            {
                Some((end, body)) => (end, body),
                None => {
                    send_continue(pending, out);
                    return Ok(Step::NeedMore);
                }
            },
            Framing::Chunked => match pending.chunked.advance(buf, head.len, limits)? {
                Some(total) => (total, &pending.chunked.decoded),
                None => {
                    send_continue(pending, out);
                    return Ok(Step::NeedMore);
                }
            },
        };
        let started = pending.started;
        let request = Request::parsed(head.method, head.path, head.query, head.headers, body);
        let mut response = ctx.handler.handle(&request);
        self.served += 1;
        let conn = if !head.keep_alive
            || self.served >= limits.max_requests_per_connection
            || self.draining
        {
            self.closing = true;
            Connection::Close
        } else if head.version == 0 {
            Connection::KeepAlive
        } else {
            Connection::Default
        };
        let head_only = head.method == "HEAD";
        let n = write_response(out, &response, head_only, conn, ctx.date);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        log_line(ctx.log, head.method, head.path, response.status, n, us);
        if response.sensitive {
            zeroize::Zeroize::zeroize(&mut response.body);
        }
        self.pending = None;
        Ok(Step::Answered(total))
    }
}

fn send_continue(pending: &mut Pending, out: &mut Vec<u8>) {
    if pending.expect_continue && !pending.continue_sent {
        pending.continue_sent = true;
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(req: &Request<'_>) -> Response {
        let mut body = format!("{} {} {:?} ", req.method(), req.path(), req.query()).into_bytes();
        body.extend_from_slice(req.body());
        Response::new(200, "text/plain", body)
    }

    struct Run {
        out: String,
        log: String,
        closing: bool,
        left: usize,
    }

    fn run_with(limits: &Limits, chunks: &[&[u8]]) -> Run {
        let mut session = Session::new();
        let mut input = Vec::new();
        let mut out = Vec::new();
        let mut log = Vec::new();
        for chunk in chunks {
            input.extend_from_slice(chunk);
            let mut ctx = Ctx {
                limits,
                handler: &echo,
                date: b"",
                log: &mut log,
                shed: false,
                slice: DEFAULT_SLICE,
                out_limit: OUT_HIGH_WATER,
            };
            session.process(&mut input, &mut out, &mut ctx);
        }
        Run {
            out: String::from_utf8_lossy(&out).into_owned(),
            log: String::from_utf8(log).unwrap(),
            closing: session.is_closing(),
            left: input.len(),
        }
    }

    #[test]
    fn draining_answers_the_request_in_progress_then_closes() {
        let limits = Limits::default();
        let mut session = Session::new();
        let mut input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab".to_vec();
        let (mut out, mut log) = (Vec::new(), Vec::new());
        let mut ctx = Ctx {
            limits: &limits,
            handler: &echo,
            date: b"",
            log: &mut log,
            shed: false,
            slice: DEFAULT_SLICE,
            out_limit: OUT_HIGH_WATER,
        };
        session.process(&mut input, &mut out, &mut ctx);
        assert!(out.is_empty());
        session.drain();
        input.extend_from_slice(b"cdGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
        session.process(&mut input, &mut out, &mut ctx);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(out.ends_with("POST /a None abcd"), "{out}");
        assert!(session.is_closing());
    }

    fn run(chunks: &[&[u8]]) -> Run {
        run_with(&Limits::default(), chunks)
    }

    fn status_of(out: &str) -> &str {
        out.get(9..12).unwrap_or("")
    }

    #[test]
    fn simple_get_keeps_alive() {
        let r = run(&[b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"]);
        assert!(r.out.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.out);
        assert!(r.out.contains("Content-Length: 24\r\n"));
        assert!(!r.out.contains("Connection:"));
        assert!(r.out.ends_with("GET /health Some(\"x=1\") "));
        assert!(!r.closing);
        assert_eq!(r.left, 0);
        assert!(r.log.starts_with("GET /health 200 24 "), "{}", r.log);
    }

    #[test]
    fn byte_by_byte_is_the_same_as_at_once() {
        let req = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let chunks: Vec<&[u8]> = req.chunks(1).collect();
        let r = run(&chunks);
        assert!(r.out.ends_with("POST /p None abc"), "{}", r.out);
        assert_eq!(r.out.matches("HTTP/1.1").count(), 1);
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let r = run(&[
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTT",
        ]);
        let a = r.out.find("GET /a").unwrap();
        let b = r.out.find("GET /b").unwrap();
        assert!(a < b);
        assert_eq!(r.out.matches("200 OK").count(), 2);
        assert_eq!(r.left, "GET /c HTT".len());
    }

    #[test]
    fn connection_close_stops_the_pipeline() {
        let r = run(&[b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"]);
        assert_eq!(r.out.matches("200 OK").count(), 1);
        assert!(r.out.contains("Connection: close\r\n"));
        assert!(r.closing);
    }

    #[test]
    fn http10_closes_unless_asked() {
        let r = run(&[b"GET / HTTP/1.0\r\n\r\n"]);
        assert!(r.closing && r.out.contains("Connection: close"));
        let r = run(&[b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]);
        assert!(!r.closing && r.out.contains("Connection: keep-alive"));
    }

    #[test]
    fn head_has_length_but_no_body() {
        let r = run(&[b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"]);
        assert!(r.out.contains("Content-Length: 13\r\n"), "{}", r.out);
        assert!(r.out.ends_with("\r\n\r\n"));
        assert!(r.log.contains(" 200 0 "));
    }

    #[test]
    fn smuggling_shapes_are_rejected_and_close() {
        let cases: [(&[u8], &str); 8] = [
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\n\r\n", "400"),
        ];
        for (req, status) in cases {
            let r = run(&[req, b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"]);
            assert_eq!(
                status_of(&r.out),
                status,
                "{}",
                String::from_utf8_lossy(req)
            );
            assert!(r.closing);
            assert!(r.out.contains("Connection: close"));
            assert!(!r.out.contains("/next"));
            assert!(r.log.starts_with(&format!("- - {status} ")));
        }
    }

    #[test]
    fn absolute_form_uses_the_path() {
        let r = run(&[b"GET http://x.example/p?q HTTP/1.1\r\nHost: x.example\r\n\r\n"]);
        assert!(r.out.ends_with("GET /p Some(\"q\") "), "{}", r.out);
    }

    #[test]
    fn identical_content_lengths_are_accepted() {
        let r = run(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz",
        ]);
        assert_eq!(status_of(&r.out), "200");
    }

    #[test]
    fn limits_give_their_status() {
        let limits = Limits {
            max_header_bytes: 256,
            max_uri_bytes: 64,
            max_body_bytes: 10,
            max_headers: 4,
            ..Limits::default()
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
        assert_eq!(
            status_of(&run_with(&limits, &[long_uri.as_bytes()]).out),
            "414"
        );
        // Without the end of the request line yet.
        let partial_uri = format!("GET /{}", "a".repeat(200));
        assert_eq!(
            status_of(&run_with(&limits, &[partial_uri.as_bytes()]).out),
            "414"
        );
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(300)
        );
        assert_eq!(
            status_of(&run_with(&limits, &[big_header.as_bytes()]).out),
            "431"
        );
        let unfinished = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(300));
        assert_eq!(
            status_of(&run_with(&limits, &[unfinished.as_bytes()]).out),
            "431"
        );
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
        assert_eq!(status_of(&run_with(&limits, &[many]).out), "431");
        let body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(status_of(&run_with(&limits, &[body]).out), "413");
        let chunked =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\naaaaaa\r\n6\r\n";
        assert_eq!(status_of(&run_with(&limits, &[chunked]).out), "413");
    }

    #[test]
    fn garbage_is_400() {
        for g in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary\r\n\r\n"[..],
            b"GET\0/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let r = run(&[g]);
            assert_eq!(status_of(&r.out), "400", "{g:?}");
            assert!(r.closing);
        }
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let r = run(&[
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n",
            b"2\r\nde\r\n0\r\nTrailer: x\r\n",
            b"\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
        ]);
        assert!(r.out.contains("POST /c None abcde"), "{}", r.out);
        assert!(r.out.contains("GET /after"));
        assert_eq!(r.left, 0);
        let bad = run(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        ]);
        assert_eq!(status_of(&bad.out), "400");
        let bad = run(&[b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert_eq!(status_of(&bad.out), "400");
    }

    #[test]
    fn expect_continue_gets_one_interim_response() {
        let r = run(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            b"x",
            b"y",
        ]);
        assert!(
            r.out
                .starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{}",
            r.out
        );
        assert_eq!(r.out.matches("100 Continue").count(), 1);
        let r = run(&[b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n"]);
        assert_eq!(status_of(&r.out), "413");
        let r = run(&[b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"]);
        assert_eq!(status_of(&r.out), "417");
    }

    #[test]
    fn requests_per_connection_limit_closes() {
        let limits = Limits {
            max_requests_per_connection: 2,
            ..Limits::default()
        };
        let one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let r = run_with(&limits, &[one, one, one]);
        assert_eq!(r.out.matches("200 OK").count(), 2);
        assert!(r.closing);
    }

    #[test]
    fn output_high_water_pauses_the_pipeline() {
        let big = |_: &Request<'_>| Response::new(200, "", vec![b'x'; OUT_HIGH_WATER]);
        let limits = Limits::default();
        let mut s = Session::new();
        let mut input =
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let mut out = Vec::new();
        let mut log = Vec::new();
        let mut ctx = Ctx {
            limits: &limits,
            handler: &big,
            date: b"",
            log: &mut log,
            shed: false,
            slice: DEFAULT_SLICE,
            out_limit: OUT_HIGH_WATER,
        };
        s.process(&mut input, &mut out, &mut ctx);
        assert_eq!(s.served(), 1);
        assert!(!input.is_empty());
        out.clear();
        s.process(&mut input, &mut out, &mut ctx);
        assert_eq!(s.served(), 2);
        assert!(input.is_empty());
    }

    #[test]
    fn line_endings_other_than_crlf_are_400() {
        for req in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            // Refused before the head is complete.
            b"GET / HTTP/1.1\r\nHost: a\nX-Still: coming",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\ry\r\nabc\r\n0\r\n\r\n",
        ] {
            let r = run(&[req, b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"]);
            assert_eq!(status_of(&r.out), "400", "{:?}", String::from_utf8_lossy(req));
            assert!(r.closing);
            assert!(!r.out.contains("/next"));
        }
    }

    fn ctx<'a>(limits: &'a Limits, handler: &'a dyn Handler, log: &'a mut Vec<u8>) -> Ctx<'a> {
        Ctx {
            limits,
            handler,
            date: b"",
            log,
            shed: false,
            slice: DEFAULT_SLICE,
            out_limit: OUT_HIGH_WATER,
        }
    }

    #[test]
    fn short_of_memory_new_requests_get_503_but_a_body_in_progress_finishes() {
        let limits = Limits::default();
        let mut log = Vec::new();
        let mut s = Session::new();
        let mut input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab".to_vec();
        let mut out = Vec::new();
        assert_eq!(
            s.process(&mut input, &mut out, &mut ctx(&limits, &echo, &mut log)),
            Flow::Done
        );
        assert!(s.in_request());
        let mut c = ctx(&limits, &echo, &mut log);
        c.shed = true;
        input.extend_from_slice(b"cdGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
        s.process(&mut input, &mut out, &mut c);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("POST /a None abcd"));
        let second = text.rfind("HTTP/1.1 ").unwrap();
        assert!(text[second..].starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text[second..].contains("Connection: close\r\n"));
        assert!(s.is_closing());
    }

    #[test]
    fn a_slow_handler_yields_after_one_request_per_slice() {
        let slow = |_: &Request<'_>| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            Response::new(200, "", "")
        };
        let limits = Limits::default();
        let mut log = Vec::new();
        let mut s = Session::new();
        let one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut input = one.repeat(3);
        let mut out = Vec::new();
        let mut c = ctx(&limits, &slow, &mut log);
        assert_eq!(s.process(&mut input, &mut out, &mut c), Flow::Yield);
        assert_eq!(s.served(), 1);
        assert_eq!(s.process(&mut input, &mut out, &mut c), Flow::Yield);
        // The last one: nothing is left to yield for.
        assert_eq!(s.process(&mut input, &mut out, &mut c), Flow::Done);
        assert_eq!(s.served(), 3);
        // Within the slice the whole pipeline is answered in one round.
        let mut s = Session::new();
        let mut input = one.repeat(50);
        let mut c = ctx(&limits, &echo, &mut log);
        c.slice = std::time::Duration::from_secs(3600);
        assert_eq!(s.process(&mut input, &mut out, &mut c), Flow::Done);
        assert_eq!(s.served(), 50);
    }

    /// A poor man's fuzzer until the cargo-fuzz target exists: valid requests with random
    /// bytes changed, cut into random pieces, must never panic, and every reply must be a
    /// well-formed status line.
    #[test]
    fn mutated_requests_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
        ];
        let limits = Limits {
            max_header_bytes: 128,
            max_body_bytes: 16,
            max_uri_bytes: 32,
            max_headers: 4,
            ..Limits::default()
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        // xorshift64: a number below `n`.
        let mut below = move |n: usize| -> usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            usize::try_from(x % u64::try_from(n).unwrap()).unwrap()
        };
        for round in 0..20_000usize {
            let seed = seeds[round % 4];
            let mut req = seed.repeat(1 + below(3));
            for _ in 0..below(4) {
                let i = below(req.len());
                req[i] = u8::try_from(below(256)).unwrap();
            }
            let mut pieces = Vec::new();
            let mut rest = &req[..];
            while !rest.is_empty() {
                let (a, b) = rest.split_at(1 + below(rest.len()));
                pieces.push(a);
                rest = b;
            }
            let r = run_with(&limits, &pieces);
            for line in r.out.split("\r\n").filter(|l| l.starts_with("HTTP/")) {
                assert!(line.len() >= 12, "{line:?}");
            }
            assert!(r.left <= req.len());
        }
    }
}
