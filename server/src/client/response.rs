//! Reading one HTTP/1.1 response from a server we do not trust, over any [`Read`]: the head
//! (httparse, at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers), interim 1xx responses
//! skipped (at most [`MAX_INTERIM`]), then the body framed by `Content-Length`,
//! `Transfer-Encoding: chunked` or the end of the connection. Every byte read counts against
//! one bound (`max_bytes`: heads, chunk framing, trailers and body together), and reading
//! stops at the bound, so a server can make the client hold no more than that.
//!
//! Refused, as framings that other parsers read differently: `Content-Length` together with
//! `Transfer-Encoding`, a `Content-Length` that is not one plain decimal number (or given twice),
//! a transfer coding other than `chunked`, a chunk-size line that is not `1*16HEXDIG
//! [;extension]`, any line ending in the chunked framing but CRLF, and data where CRLF must
//! follow a chunk.
//!
//! [`parse`] reads a response from bytes in memory: the fuzz target's way in.

use crate::http::chunked::parse_chunk_size;
use std::fmt;
use std::io::{self, Read};

/// The most bytes of one response head (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// The most headers in one response head.
pub const MAX_HEADERS: usize = 100;

/// The most interim (1xx) responses skipped before the final one.
pub const MAX_INTERIM: usize = 8;

/// The longest chunk-size line or trailer line.
pub const MAX_LINE: usize = 4 * 1024;

/// The most trailer lines after the last chunk.
pub const MAX_TRAILERS: usize = 100;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 200 to 599 (interim responses are skipped; the reason phrase is
    /// dropped).
    pub status: u16,
    /// The headers in order, names as sent; values decoded as UTF-8, with any byte that is
    /// not replaced by U+FFFD.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from the chunked coding if it had one.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name`, compared without regard to ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text for a message: at most `max` characters, controls replaced by spaces.
    pub fn body_excerpt(&self, max: usize) -> String {
        String::from_utf8_lossy(
            self.body
                .get(..self.body.len().min(max))
                .unwrap_or_default(),
        )
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
    }
}

/// Why a response could not be read (the client adds the URL).
#[derive(Debug)]
pub enum ResponseError {
    /// The bytes are not a well-framed HTTP/1.1 response.
    Framing(String),
    /// More than a bound.
    TooLarge {
        /// What exceeded it: `"response head"`, `"response"`.
        what: &'static str,
        /// The bound, in bytes.
        limit: usize,
    },
    /// Reading failed (a timeout, a reset, a TLS error: the client tells them apart).
    Io(io::Error),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Framing(reason) => write!(f, "malformed HTTP response: {reason}"),
            ResponseError::TooLarge { what, limit } => {
                write!(f, "the {what} is larger than the {limit} bytes allowed")
            }
            ResponseError::Io(e) => write!(f, "reading the response: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}

fn framing(reason: impl Into<String>) -> ResponseError {
    ResponseError::Framing(reason.into())
}

/// Bytes read from the connection and not consumed yet, with the count of every byte read
/// (never more than `limit`).
struct Input<'r, R: Read> {
    reader: &'r mut R,
    buf: Vec<u8>,
    /// Consumed bytes at the front of `buf`.
    pos: usize,
    /// Bytes read so far.
    read: usize,
    limit: usize,
    eof: bool,
}

impl<R: Read> Input<'_, R> {
    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Bytes read and consumed.
    fn consumed(&self) -> usize {
        self.read.saturating_sub(self.available().len())
    }

    /// Whether `n` more bytes fit under the bound.
    fn fits(&self, n: u64) -> bool {
        usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(self.consumed()))
            .is_some_and(|total| total <= self.limit)
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more: `Ok(false)` at the end of the connection; [`ResponseError::TooLarge`] when
    /// the bound is reached and more is wanted.
    fn fill(&mut self) -> Result<bool, ResponseError> {
        if self.eof {
            return Ok(false);
        }
        let room = self.limit.saturating_sub(self.read);
        if room == 0 {
            return Err(ResponseError::TooLarge {
                what: "response",
                limit: self.limit,
            });
        }
        let mut chunk = [0u8; 8192];
        let want = room.min(chunk.len());
        let n = loop {
            match self.reader.read(chunk.get_mut(..want).unwrap_or_default()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ResponseError::Io(e)),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.read = self.read.saturating_add(n);
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(true)
    }

    /// A line ending in CRLF, without it; at most [`MAX_LINE`] bytes.
    fn line(&mut self, what: &str) -> Result<Vec<u8>, ResponseError> {
        let mut scanned = 0;
        loop {
            let avail = self.available();
            for (i, &b) in avail.iter().enumerate().skip(scanned) {
                match b {
                    b'\r' => match avail.get(i + 1) {
                        Some(b'\n') if i > MAX_LINE => {
                            return Err(framing(format!(
                                "a {what} line longer than {MAX_LINE} bytes"
                            )))
                        }
                        Some(b'\n') => {
                            let line = avail.get(..i).unwrap_or_default().to_vec();
                            self.consume(i + 2);
                            return Ok(line);
                        }
                        Some(_) => return Err(framing(format!("a bare CR in a {what} line"))),
                        None => break,
                    },
                    b'\n' => return Err(framing(format!("a bare LF in a {what} line"))),
                    _ => scanned = i + 1,
                }
            }
            if scanned > MAX_LINE {
                return Err(framing(format!(
                    "a {what} line longer than {MAX_LINE} bytes"
                )));
            }
            if !self.fill()? {
                return Err(framing(format!(
                    "the connection ended inside a {what} line"
                )));
            }
        }
    }

    /// Exactly `n` bytes appended to `out`.
    fn exact(&mut self, n: usize, out: &mut Vec<u8>, what: &str) -> Result<(), ResponseError> {
        let mut left = n;
        while left > 0 {
            if self.available().is_empty() && !self.fill()? {
                return Err(framing(format!(
                    "the connection ended {left} bytes before the end of the {what}"
                )));
            }
            let take = left.min(self.available().len());
            out.extend_from_slice(self.available().get(..take).unwrap_or_default());
            self.consume(take);
            left -= take;
        }
        Ok(())
    }
}

/// The head of one response, owned.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

fn read_head<R: Read>(input: &mut Input<'_, R>) -> Result<Head, ResponseError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let avail = input.available();
        let window = avail.get(..avail.len().min(MAX_HEAD)).unwrap_or_default();
        match parsed.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                if parsed.version != Some(1) {
                    return Err(framing("the status line is not HTTP/1.1"));
                }
                let head = Head {
                    status,
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                input.consume(len);
                if !(100..=599).contains(&head.status) {
                    return Err(framing(format!(
                        "status {} is not from 100 to 599",
                        head.status
                    )));
                }
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {
                if window.len() >= MAX_HEAD {
                    return Err(ResponseError::TooLarge {
                        what: "response head",
                        limit: MAX_HEAD,
                    });
                }
                if !input.fill()? {
                    return Err(if input.available().is_empty() {
                        framing("the connection ended before a response")
                    } else {
                        framing("the connection ended inside the response head")
                    });
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(framing(format!("more than {MAX_HEADERS} headers")))
            }
            Err(e) => return Err(framing(format!("the head does not parse: {e}"))),
        }
    }
}

/// How the body is framed.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing_of(head: &Head, head_request: bool) -> Result<Framing, ResponseError> {
    let mut length: Option<&str> = None;
    let mut coding: Option<&str> = None;
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(framing("Content-Length is given twice"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if coding.is_some() {
                return Err(framing("Transfer-Encoding is given twice"));
            }
            coding = Some(value);
        }
    }
    if length.is_some() && coding.is_some() {
        return Err(framing(
            "both Content-Length and Transfer-Encoding (the body's end would be ambiguous)",
        ));
    }
    if head_request || head.status == 204 || head.status == 304 {
        return Ok(Framing::None);
    }
    if let Some(coding) = coding {
        if !coding
            .trim_matches([' ', '\t'])
            .eq_ignore_ascii_case("chunked")
        {
            return Err(framing(format!(
                "Transfer-Encoding {:?} (only chunked is read)",
                coding.chars().take(64).collect::<String>()
            )));
        }
        return Ok(Framing::Chunked);
    }
    match length {
        Some(text) => {
            let digits = text.trim_matches([' ', '\t']);
            if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(framing(format!(
                    "Content-Length {:?} is not a decimal number",
                    text.chars().take(64).collect::<String>()
                )));
            }
            let n = digits
                .parse::<u64>()
                .map_err(|_| framing(format!("Content-Length {digits} is out of range")))?;
            Ok(Framing::Length(n))
        }
        None => Ok(Framing::UntilClose),
    }
}

/// The size on a chunk-size line, read as the server reads requests' ([`parse_chunk_size`]).
fn chunk_size(line: &[u8]) -> Result<u64, ResponseError> {
    parse_chunk_size(line).map_err(|_| {
        let shown = String::from_utf8_lossy(line.get(..line.len().min(64)).unwrap_or_default());
        framing(format!("bad chunk-size line {shown:?}"))
    })
}

fn read_chunked<R: Read>(input: &mut Input<'_, R>) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let line = input.line("chunk-size")?;
        let size = chunk_size(&line)?;
        if size == 0 {
            break;
        }
        // A size beyond the bound fails at once, before any of it is read.
        let size = usize::try_from(size)
            .ok()
            .filter(|_| input.fits(size))
            .ok_or(ResponseError::TooLarge {
                what: "response",
                limit: input.limit,
            })?;
        input.exact(size, &mut body, "chunk")?;
        let mut crlf = Vec::with_capacity(2);
        input.exact(2, &mut crlf, "chunk")?;
        if crlf != b"\r\n" {
            return Err(framing("a chunk's data is not followed by CRLF"));
        }
    }
    for _ in 0..=MAX_TRAILERS {
        if input.line("trailer")?.is_empty() {
            return Ok(body);
        }
    }
    Err(framing(format!("more than {MAX_TRAILERS} trailer lines")))
}

/// Reads one response from `reader`, reading at most `max_bytes` bytes in all; `head_request`
/// says the request was `HEAD` (no body follows). Interim responses (1xx but 101) are
/// skipped; 101 is refused (no protocol upgrade was asked for).
pub fn read<R: Read>(
    reader: &mut R,
    max_bytes: usize,
    head_request: bool,
) -> Result<Response, ResponseError> {
    read_reusable(reader, max_bytes, head_request).map(|(response, _)| response)
}

/// [`read`], and whether the connection may carry another request: the body was framed (not
/// read to the end of the connection), the server did not say `Connection: close`, and sent
/// nothing after the response (no request was pipelined, so such bytes are a fault).
pub fn read_reusable<R: Read>(
    reader: &mut R,
    max_bytes: usize,
    head_request: bool,
) -> Result<(Response, bool), ResponseError> {
    let mut input = Input {
        reader,
        buf: Vec::new(),
        pos: 0,
        read: 0,
        limit: max_bytes,
        eof: false,
    };
    let mut interim = 0;
    let head = loop {
        let head = read_head(&mut input)?;
        match head.status {
            101 => return Err(framing("101 Switching Protocols, which was not asked for")),
            100..=199 => {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(framing(format!(
                        "more than {MAX_INTERIM} interim (1xx) responses"
                    )));
                }
            }
            _ => break head,
        }
    };
    let framing = framing_of(&head, head_request)?;
    let closes = crate::http::head::connection_lists(
        head.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        "close",
    );
    let framed = !matches!(framing, Framing::UntilClose);
    let body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(n) => {
            let n = usize::try_from(n).ok().filter(|_| input.fits(n)).ok_or(
                ResponseError::TooLarge {
                    what: "response",
                    limit: max_bytes,
                },
            )?;
            let mut body = Vec::with_capacity(n);
            input.exact(n, &mut body, "body")?;
            body
        }
        Framing::Chunked => read_chunked(&mut input)?,
        Framing::UntilClose => {
            let mut body = input.available().to_vec();
            input.consume(body.len());
            while input.fill()? {
                body.extend_from_slice(input.available());
                let n = input.available().len();
                input.consume(n);
            }
            body
        }
    };
    let reusable = framed && !closes && input.available().is_empty();
    Ok((
        Response {
            status: head.status,
            headers: head.headers,
            body,
        },
        reusable,
    ))
}

/// [`read`] over bytes in memory (their end is the end of the connection).
pub fn parse(
    bytes: &[u8],
    max_bytes: usize,
    head_request: bool,
) -> Result<Response, ResponseError> {
    let mut reader = bytes;
    read(&mut reader, max_bytes, head_request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_reusable_only_after_a_framed_response_and_nothing_more() {
        let reusable = |bytes: &[u8]| {
            let mut r = bytes;
            read_reusable(&mut r, MAX, false).unwrap().1
        };
        assert!(reusable(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        assert!(reusable(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        ));
        assert!(reusable(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!reusable(b"HTTP/1.1 200 OK\r\n\r\nuntil close"));
        assert!(!reusable(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok"
        ));
        assert!(!reusable(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
        ));
    }

    const MAX: usize = 1 << 20;

    fn ok(bytes: &[u8]) -> Response {
        parse(bytes, MAX, false).unwrap()
    }

    fn err(bytes: &[u8]) -> String {
        parse(bytes, MAX, false).unwrap_err().to_string()
    }

    /// A reader that hands out one byte at a time.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn content_length_chunked_and_until_close() {
        let r =
            ok(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("content-TYPE"), Some("text/plain"));
        assert_eq!(r.header("x-missing"), None);
        assert!(r.is_success());
        // Bytes after a Content-Length body are not read as part of it.
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhijunk").body,
            b"hi"
        );

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n\
                        5;name=value\r\nhello\r\n1 \t; x\r\n!\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let r = ok(chunked);
        assert_eq!(r.body, b"hello!");
        let mut trickle = Trickle(chunked);
        assert_eq!(read(&mut trickle, MAX, false).unwrap().body, b"hello!");

        let r = ok(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end");
        assert_eq!(r.body, b"until the end");
        let r = ok(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(r.body, b"");
    }

    #[test]
    fn no_body_for_head_204_and_304_and_interim_responses_skipped() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", MAX, true).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(ok(b"HTTP/1.1 204 No Content\r\n\r\nignored").body, b"");
        assert_eq!(
            ok(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").body,
            b""
        );
        let r = ok(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n\
                     HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
        assert_eq!(r.header("link"), None);
        let many = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert_eq!(
            err(many.as_bytes()),
            "malformed HTTP response: more than 8 interim (1xx) responses"
        );
    }

    #[test]
    fn bounds() {
        let e = |bytes: &[u8], max: usize| parse(bytes, max, false).unwrap_err().to_string();
        let body = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        assert_eq!(parse(body, body.len(), false).unwrap().body, b"0123456789");
        assert_eq!(
            e(body, body.len() - 1),
            format!(
                "the response is larger than the {} bytes allowed",
                body.len() - 1
            )
        );
        // A declared length over the bound fails before the body is read.
        assert_eq!(
            e(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                MAX
            ),
            "the response is larger than the 1048576 bytes allowed"
        );
        assert_eq!(
            e(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n",
                MAX
            ),
            "the response is larger than the 1048576 bytes allowed"
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, chunked.len(), false).unwrap().body, b"hello");
        assert!(e(chunked, chunked.len() - 1).starts_with("the response is larger"));
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
        assert!(e(until_close, until_close.len() - 1).starts_with("the response is larger"));
        let big_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            err(big_head.as_bytes()),
            "the response head is larger than the 16384 bytes allowed"
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(
            err(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes()),
            "malformed HTTP response: more than 100 headers"
        );
        let trailers: String = (0..=MAX_TRAILERS)
            .map(|i| format!("T-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            err(format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{trailers}\r\n"
            )
            .as_bytes()),
            "malformed HTTP response: more than 100 trailer lines"
        );
        let long_line = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
            "x".repeat(MAX_LINE)
        );
        assert_eq!(
            err(long_line.as_bytes()),
            "malformed HTTP response: a chunk-size line longer than 4096 bytes"
        );
    }

    #[test]
    fn framing_errors() {
        for (bytes, expected) in [
            (&b""[..], "the connection ended before a response"),
            (b"HTTP/1.1 200 OK\r\nContent-Le", "the connection ended inside the response head"),
            (b"HTTP/1.0 200 OK\r\n\r\n", "the status line is not HTTP/1.1"),
            (b"HTTP/1.1 600 Odd\r\n\r\n", "status 600 is not from 100 to 599"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "the head does not parse: invalid response status"),
            (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "the head does not parse: invalid header name"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "the head does not parse"),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101 Switching Protocols, which was not asked for"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", "the connection ended 2 bytes before the end of the body"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "Content-Length is given twice"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "Content-Length \"+5\" is not a decimal number"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "Content-Length \"5, 5\" is not a decimal number"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "Content-Length \"\" is not a decimal number"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length \"99999999999999999999\" is not a decimal number"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer-Encoding (the body's end would be ambiguous)"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding \"gzip, chunked\" (only chunked is read)"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding is given twice"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", "bad chunk-size line \"x\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "bad chunk-size line \"\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\n", "bad chunk-size line \"+5\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", "bad chunk-size line \"5 x\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;\x01\r\n", "bad chunk-size line \"5;\\u{1}\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\n", "bad chunk-size line \"00000000000000005\""),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello", "a bare LF in a chunk-size line"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello", "a bare CR in a chunk-size line"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", "a chunk's data is not followed by CRLF"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "the connection ended 2 bytes before the end of the chunk"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "the connection ended inside a chunk-size line"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", "a bare LF in a trailer line"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "the connection ended inside a trailer line"),
        ] {
            let e = err(bytes);
            assert!(e.contains(expected), "{:?}: {e}", String::from_utf8_lossy(bytes));
            assert!(!e.contains('\n'), "{e}");
        }
        let io = ResponseError::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(io.to_string(), "reading the response: reset");
    }
}
