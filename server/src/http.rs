//! HTTP/1.1 over one connection, without I/O: [`Session::process`] takes the plaintext received
//! so far, answers every complete request at its front in order (pipelining), appends the
//! responses to an output buffer and removes what it consumed. The event loop moves bytes between
//! that and the socket (through TLS or not); tests call it with byte strings.
//!
//! What it enforces, each with the status sent before the connection is closed:
//! - request line and headers: syntax (400, via httparse), target length (414), header block size
//!   and header count (431), `Host` present once on HTTP/1.1 (400);
//! - body framing (request smuggling): Content-Length together with Transfer-Encoding (400),
//!   Content-Length values that differ or are not plain digits (400), a transfer coding other
//!   than exactly `chunked` (400 if chunked is not last, 501 otherwise), chunked syntax (400);
//! - body size (413), before the body is read when a length is announced;
//! - `Expect`: `100-continue` is answered with an interim 100 once the head is in and the body
//!   is not, anything else with 417.
//!
//! Keep-alive is the default on HTTP/1.1; `Connection: close`, HTTP/1.0 without
//! `Connection: keep-alive`, and the last request allowed on a connection end it after the
//! response. HEAD gets GET's headers and no body.

use crate::config::{Limits, MAX_HEADERS_CAP};
use crate::handler::{Handler, Request, Response};
use std::io::Write as _;
use std::time::Instant;

/// Stop answering pipelined requests once this much output waits, until it is sent.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// The longest chunk-size line (size plus extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Most bytes of the request target kept in the log line.
const MAX_LOGGED_PATH: usize = 200;

/// Why a request was refused: the status and a short message for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// The status code.
    pub status: u16,
    /// The JSON error message.
    pub message: &'static str,
}

const fn reject(status: u16, message: &'static str) -> Reject {
    Reject { status, message }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A complete, validated request head.
#[derive(Debug)]
struct Head<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: &'a [httparse::Header<'a>],
    /// Bytes of request line and headers, final CRLF included.
    len: usize,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

#[derive(Debug)]
enum HeadParse<'a> {
    Partial,
    Complete(Head<'a>),
}

/// Finds the request target's length in the request line, if the line is complete.
fn request_line_target_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf.get(..line_end)?;
    let first = line.iter().position(|&b| b == b' ')?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    Some(last.saturating_sub(first + 1))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

/// Comma-separated list elements, trimmed, empty ones skipped.
fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// The path-and-query of an absolute-form target (`/` if it has none).
fn absolute_form_path(target: &str) -> Option<&str> {
    let scheme_len = if target.len() >= 7 && target.get(..7)?.eq_ignore_ascii_case("http://") {
        7
    } else if target.len() >= 8 && target.get(..8)?.eq_ignore_ascii_case("https://") {
        8
    } else {
        return None;
    };
    let rest = target.get(scheme_len..)?;
    match rest.find(['/', '?']) {
        Some(i) if rest.get(i..)?.starts_with('/') => rest.get(i..),
        _ => Some("/"),
    }
}

/// Parses and validates a request head at the front of `buf`.
fn parse_head<'a>(
    buf: &'a [u8],
    storage: &'a mut [httparse::Header<'a>],
    limits: &Limits,
) -> Result<HeadParse<'a>, Reject> {
    // The target's length first, so a huge URI gets 414 and not 431. Skip the empty lines a
    // request may be preceded by, as httparse does.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    match request_line_target_len(rest) {
        Some(n) if n > limits.max_uri_bytes => {
            return Err(reject(414, "request target too long"));
        }
        None if rest.len() > limits.max_uri_bytes.saturating_add(32) => {
            return Err(reject(414, "request target too long"));
        }
        _ => {}
    }
    let mut req = httparse::Request::new(storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(reject(431, "request header block too large"));
            }
            return Ok(HeadParse::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "too many request headers"));
        }
        Err(_) => return Err(reject(400, "malformed request")),
    };
    if len > limits.max_header_bytes {
        return Err(reject(431, "request header block too large"));
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(reject(400, "malformed request"));
    };
    if target.len() > limits.max_uri_bytes {
        return Err(reject(414, "request target too long"));
    }
    // Absolute-form (`http://host/path`) must be accepted (RFC 9112 §3.2.2); only its path
    // and query are used.
    let target = match absolute_form_path(target) {
        Some(t) => t,
        None if target.starts_with('/') || (target == "*" && method == "OPTIONS") => target,
        None => return Err(reject(400, "request target must be a path")),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None; // Some(chunked-is-last)
    let mut codings = 0usize;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut hosts = 0usize;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = trim_ows(h.value);
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(reject(400, "invalid Content-Length"));
            }
            let n = v
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
            if content_length.is_some_and(|prev| prev != n) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for item in list_items(h.value) {
                codings += 1;
                transfer_encoding = Some(item.eq_ignore_ascii_case(b"chunked"));
            }
            if transfer_encoding.is_none() {
                return Err(reject(400, "empty Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for item in list_items(h.value) {
                if item.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if item.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") {
            if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(reject(417, "unsupported expectation"));
            }
        }
    }
    if hosts > 1 || (version == 1 && hosts == 0) {
        return Err(reject(400, "exactly one Host header is required"));
    }
    let framing = match (content_length, transfer_encoding) {
        (Some(_), Some(_)) => {
            return Err(reject(
                400,
                "both Content-Length and Transfer-Encoding are present",
            ));
        }
        (None, Some(_)) if version == 0 => {
            return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        (None, Some(false)) => {
            return Err(reject(400, "the final transfer coding is not chunked"));
        }
        (None, Some(true)) if codings > 1 => {
            return Err(reject(501, "transfer codings other than chunked"));
        }
        (None, Some(true)) => Framing::Chunked,
        (Some(n), None) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > limits.max_body_bytes {
                return Err(reject(413, "request body too large"));
            }
            if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            }
        }
        (None, None) => Framing::None,
    };
    let keep_alive = if version == 1 {
        !close
    } else {
        keep_alive_token && !close
    };
    Ok(HeadParse::Complete(Head {
        method,
        path,
        query,
        version,
        headers: req.headers,
        len,
        framing,
        keep_alive,
        expect_continue: expect_continue && version == 1,
    }))
}

/// Incremental state of a chunked body: offsets are relative to the start of the request.
#[derive(Debug, Default)]
struct Chunked {
    /// Where the next chunk-size line (or trailer line) starts.
    pos: usize,
    /// The decoded body so far.
    decoded: Vec<u8>,
    /// In the trailer section (after the last chunk).
    trailers: bool,
    /// Bytes of trailer lines so far.
    trailer_bytes: usize,
}

impl Chunked {
    /// Decodes what `req` (the whole request so far) holds; returns the request's total length
    /// once the last chunk and trailers are in.
    fn advance(
        &mut self,
        req: &[u8],
        head_len: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, Reject> {
        if self.pos < head_len {
            self.pos = head_len;
        }
        // Raw bytes are bounded too: tiny chunks can make the encoding many times the body.
        let raw_limit = limits
            .max_body_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024);
        loop {
            let rest = req.get(self.pos..).unwrap_or_default();
            if self.pos - head_len > raw_limit {
                return Err(reject(413, "request body too large"));
            }
            if self.trailers {
                let Some(i) = rest.windows(2).position(|w| w == b"\r\n") else {
                    if self.trailer_bytes + rest.len() > limits.max_header_bytes {
                        return Err(reject(431, "request trailers too large"));
                    }
                    return Ok(None);
                };
                self.pos += i + 2;
                if i == 0 {
                    return Ok(Some(self.pos));
                }
                self.trailer_bytes += i + 2;
                if self.trailer_bytes > limits.max_header_bytes {
                    return Err(reject(431, "request trailers too large"));
                }
                continue;
            }
            match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((line, size))) => {
                    if size == 0 {
                        self.trailers = true;
                        self.pos += line;
                        continue;
                    }
                    let room = limits.max_body_bytes.saturating_sub(self.decoded.len());
                    let size = match usize::try_from(size) {
                        Ok(s) if s <= room => s,
                        _ => return Err(reject(413, "request body too large")),
                    };
                    let data_end = line.saturating_add(size);
                    let Some(crlf) = rest.get(data_end..data_end.saturating_add(2)) else {
                        return Ok(None);
                    };
                    if crlf != b"\r\n" {
                        return Err(reject(400, "malformed chunked body"));
                    }
                    self.decoded
                        .extend_from_slice(rest.get(line..data_end).unwrap_or_default());
                    self.pos += data_end + 2;
                }
                Ok(httparse::Status::Partial) => {
                    if rest.len() > MAX_CHUNK_LINE {
                        return Err(reject(400, "malformed chunked body"));
                    }
                    return Ok(None);
                }
                Err(_) => return Err(reject(400, "malformed chunked body")),
            }
        }
    }
}

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
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("limits", self.limits)
            .finish_non_exhaustive()
    }
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

    /// The server is shutting down: the request in progress (or the next one) is still
    /// answered, with `Connection: close`, and then the connection closes.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Answers the complete requests at the front of `input`, in order, appending to `out`;
    /// removes what was consumed from `input`. Stops early once `out` holds
    /// [`OUT_HIGH_WATER`] bytes (call again when it is sent) or the connection is closing.
    pub fn process(&mut self, input: &mut Vec<u8>, out: &mut Vec<u8>, ctx: &mut Ctx<'_>) {
        let mut consumed = 0;
        while !self.closing && out.len() < OUT_HIGH_WATER {
            let buf = input.get(consumed..).unwrap_or_default();
            if buf.is_empty() {
                break;
            }
            match self.step(buf, out, ctx) {
                Ok(Step::NeedMore) => break,
                Ok(Step::Answered(n)) => consumed += n,
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
        input.drain(..consumed.min(input.len()));
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
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
        };
        let response = ctx.handler.handle(&request);
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

/// What the `Connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing (HTTP/1.1 keep-alive).
    Default,
    /// `keep-alive` (HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `close`.
    Close,
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn valid_header_value(v: &str) -> bool {
    !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Serializes a response; returns the body bytes sent (0 for HEAD).
pub fn write_response(
    out: &mut Vec<u8>,
    resp: &Response,
    head_only: bool,
    conn: Connection,
    date: &[u8],
) -> usize {
    let status = if (200..=999).contains(&resp.status) {
        resp.status
    } else {
        500
    };
    let no_body = status == 204 || status == 304;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    if !date.is_empty() {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    if !no_body {
        if !resp.content_type.is_empty() && valid_header_value(resp.content_type) {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(resp.content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n", resp.body.len());
    }
    match conn {
        Connection::Default => {}
        Connection::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    for (name, value) in &resp.headers {
        let reserved = ["content-length", "connection", "transfer-encoding", "date"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r));
        if !reserved && valid_header_name(name) && valid_header_value(value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    if head_only || no_body {
        0
    } else {
        out.extend_from_slice(&resp.body);
        resp.body.len()
    }
}

/// Appends `METHOD PATH STATUS BYTES USus`: no query, no header, no body; the path is cut to
/// [`MAX_LOGGED_PATH`] bytes and anything but printable ASCII shown as `?`.
pub fn log_line(log: &mut Vec<u8>, method: &str, path: &str, status: u16, bytes: usize, us: u64) {
    log.extend_from_slice(method.as_bytes());
    log.push(b' ');
    for &b in path.as_bytes().iter().take(MAX_LOGGED_PATH) {
        log.push(if b.is_ascii_graphic() { b } else { b'?' });
    }
    if path.len() > MAX_LOGGED_PATH {
        log.extend_from_slice(b"...");
    }
    let _ = writeln!(log, " {status} {bytes} {us}us");
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let wd = DAYS
        .get(usize::try_from(days % 7).unwrap_or(0))
        .unwrap_or(&"Thu");
    let mon = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .unwrap_or(&"Jan");
    format!("{wd}, {d:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
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
        assert_eq!(absolute_form_path("HTTPS://h"), Some("/"));
        assert_eq!(absolute_form_path("http://h?q"), Some("/"));
        assert_eq!(absolute_form_path("/p"), None);
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
    fn response_headers_are_sanitized() {
        let resp = Response::new(204, "text/plain", "x")
            .with_header("X-Ok", "1")
            .with_header("X-Bad", "a\r\nInjected: 1")
            .with_header("Content-Length", "5")
            .with_header("Bad Name", "1");
        let mut out = Vec::new();
        let n = write_response(&mut out, &resp, false, Connection::Default, b"D");
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "HTTP/1.1 204 No Content\r\nDate: D\r\nX-Ok: 1\r\n\r\n");
        assert_eq!(n, 0);
        let mut out = Vec::new();
        write_response(
            &mut out,
            &Response::new(42, "", ""),
            false,
            Connection::Close,
            b"",
        );
        assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
    }

    #[test]
    fn log_lines_hide_queries_and_odd_bytes() {
        let mut log = Vec::new();
        log_line(&mut log, "GET", "/a\u{7f}b", 200, 5, 7);
        assert_eq!(log, b"GET /a?b 200 5 7us\n");
        let mut log = Vec::new();
        log_line(&mut log, "GET", &"/x".repeat(200), 200, 5, 7);
        assert!(log.len() < 240);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
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
