//! Writing a response, and the request log line.

use crate::handler::Response;
use std::io::Write as _;

/// Most bytes of the request target kept in the log line.
const MAX_LOGGED_PATH: usize = 200;

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
        507 => "Insufficient Storage",
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
        if !resp.content_type.is_empty() && valid_header_value(&resp.content_type) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
