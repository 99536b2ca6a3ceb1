//! The request head: request line and headers, parsed by httparse and then held to what every
//! parser downstream of us would read the same way. What is refused, with its status:
//!
//! - line endings other than CRLF anywhere in the head (a bare LF or a bare CR): 400, since
//!   parsers that accept bare LF and parsers that do not see different requests;
//! - syntax (httparse): 400; target length: 414; header block size and count: 431; `Host`
//!   present once on HTTP/1.1: 400;
//! - body framing (request smuggling): Content-Length together with Transfer-Encoding (400),
//!   Content-Length values that differ or are not plain digits (400), a transfer coding other
//!   than exactly `chunked` (400 if chunked is not last, 501 otherwise);
//! - a body over the limit announced by Content-Length (413), before it is read;
//! - an `Expect` other than `100-continue` (417).

use crate::config::Limits;

/// Why a request was refused: the status and a short message for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// The status code.
    pub status: u16,
    /// The JSON error message.
    pub message: &'static str,
}

/// A refusal.
pub const fn reject(status: u16, message: &'static str) -> Reject {
    Reject { status, message }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, validated request head.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: &'a [httparse::Header<'a>],
    /// Bytes of request line and headers, final CRLF included.
    pub len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// A head, or not enough bytes yet.
#[derive(Debug)]
pub enum HeadParse<'a> {
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

/// Whether every LF in `bytes` follows a CR and every CR precedes an LF.
pub fn crlf_only(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return false,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

pub fn trim_ows(v: &[u8]) -> &[u8] {
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

/// Hop-by-hop headers (RFC 9110 §7.6.1) and `Content-Length`: what a forwarder (the front, an
/// HTTP proxy) never copies from one side to the other; it writes the framing itself.
pub const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Whether `token` is listed in a `Connection` header among `headers` (name, value): a header
/// so named is hop-by-hop too, and `close` ends the connection after this message.
pub fn connection_lists<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    token: &str,
) -> bool {
    headers
        .into_iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| list_items(value))
        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Comma-separated list elements, trimmed, empty ones skipped.
pub(crate) fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// The path-and-query of an absolute-form target (`/` if it has none).
pub fn absolute_form_path(target: &str) -> Option<&str> {
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
pub fn parse_head<'a>(
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
            // A bare LF refused as soon as it is in, not when the head completes.
            let whole_lines = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if !crlf_only(buf.get(..whole_lines).unwrap_or_default()) {
                return Err(reject(400, "line endings other than CRLF"));
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
    if !crlf_only(buf.get(..len).unwrap_or_default()) {
        return Err(reject(400, "line endings other than CRLF"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crlf() {
        assert!(crlf_only(b"a\r\nb\r\n\r\n"));
        assert!(!crlf_only(b"a\nb"));
        assert!(!crlf_only(b"a\r\nb\n"));
        assert!(!crlf_only(b"a\rb\r\n"));
        assert!(!crlf_only(b"a\r"));
    }

    #[test]
    fn absolute_form() {
        assert_eq!(absolute_form_path("HTTPS://h"), Some("/"));
        assert_eq!(absolute_form_path("http://h?q"), Some("/"));
        assert_eq!(absolute_form_path("http://h/p?q"), Some("/p?q"));
        assert_eq!(absolute_form_path("/p"), None);
    }
}
