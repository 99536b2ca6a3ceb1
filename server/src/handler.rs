//! The seam between the event loop and an application: a [`Handler`] gets a fully received,
//! validated [`Request`] and returns a [`Response`]. Framing (Content-Length, chunked bodies,
//! keep-alive, `Connection: close`, HEAD, limits) is the loop's business, not the handler's.

/// A parsed request, borrowed from the connection's input buffer.
#[derive(Debug)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a [httparse::Header<'a>],
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The method, as sent (case-sensitive: `GET`, `HEAD`, …). For HEAD, answer as for GET: the
    /// loop drops the body and keeps its length.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The path, without the query (no percent-decoding).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query string after `?`, if any (no percent-decoding).
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// All headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The body (decoded if it was sent chunked; empty if there was none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Builds a request by hand (for handlers' own tests).
    pub fn new(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a [httparse::Header<'a>],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            headers,
            body,
        }
    }
}

/// A response: status, content type, extra headers and body. `Content-Length`, `Date` and
/// `Connection` are written by the loop; extra headers with a CR, LF or NUL in their value are
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (100–999; anything else is sent as 500).
    pub status: u16,
    /// The `Content-Type`, omitted if empty.
    pub content_type: &'static str,
    /// Further headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given type.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `application/json` with the given body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "application/json", body)
    }

    /// A JSON `{"error": message}` body.
    pub fn json_error(status: u16, message: &str) -> Response {
        let mut body = String::with_capacity(message.len() + 16);
        body.push_str("{\"error\":");
        push_json_string(&mut body, message);
        body.push('}');
        Response::json(status, body)
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An application: called once per request, on the worker thread that owns the connection, so it
/// must not block for long (every connection of that worker waits).
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: &Request<'_>) -> Response;
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>) -> Response + Send + Sync + 'static,
{
    fn handle(&self, request: &Request<'_>) -> Response {
        self(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_escapes() {
        let r = Response::json_error(400, "bad \"nonce\"\n\u{1}");
        assert_eq!(r.body, b"{\"error\":\"bad \\\"nonce\\\"\\n\\u0001\"}");
        assert_eq!(r.content_type, "application/json");
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let headers = [httparse::Header {
            name: "Content-Type",
            value: b"text/plain",
        }];
        let r = Request::new("GET", "/", None, &headers, b"");
        assert_eq!(r.header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(r.header("host"), None);
        assert_eq!(r.headers().count(), 1);
    }
}
