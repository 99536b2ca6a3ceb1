//! The seam between the event loop and an application: a [`Handler`] gets a fully received,
//! validated [`Request`] and returns a [`Response`]. Framing (Content-Length, chunked bodies,
//! keep-alive, `Connection: close`, HEAD, limits) is the loop's business, not the handler's.

use std::borrow::Cow;

/// The headers of a request: as parsed from the wire, or as a test gave them.
#[derive(Debug, Clone, Copy)]
enum Headers<'a> {
    Parsed(&'a [httparse::Header<'a>]),
    Given(&'a [(&'a str, &'a [u8])]),
}

/// A parsed request, borrowed from the connection's input buffer.
#[derive(Debug)]
pub struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Headers<'a>,
    body: &'a [u8],
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
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        let (parsed, given): (&[httparse::Header<'a>], &[(&'a str, &'a [u8])]) = match self.headers
        {
            Headers::Parsed(h) => (h, &[]),
            Headers::Given(h) => (&[], h),
        };
        parsed
            .iter()
            .map(|h| (h.name, h.value))
            .chain(given.iter().copied())
    }

    /// The body (decoded if it was sent chunked; empty if there was none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Builds a request by hand (for handlers' own tests): headers as (name, value) pairs.
    pub fn new(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            headers: Headers::Given(headers),
            body,
        }
    }

    /// A request as the HTTP layer parsed it.
    pub(crate) fn parsed(
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
            headers: Headers::Parsed(headers),
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
    pub content_type: Cow<'static, str>,
    /// Further headers (a name is usually a constant; a proxy passes on names it read).
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The body is a secret (decrypted private data): the loop wipes it, and its serialized
    /// copy, once sent to TLS.
    pub sensitive: bool,
}

impl Response {
    /// A response with a body of the given type.
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Vec<u8>>,
    ) -> Response {
        Response {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
            sensitive: false,
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
        contract::json::write_string(&mut body, message);
        body.push('}');
        Response::json(status, body)
    }

    /// Marks the body as a secret (see [`Response::sensitive`](Response#structfield.sensitive)).
    #[must_use]
    pub fn sensitive(mut self) -> Response {
        self.sensitive = true;
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
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
        let headers: [(&str, &[u8]); 1] = [("Content-Type", b"text/plain")];
        let r = Request::new("GET", "/", None, &headers, b"");
        assert_eq!(r.header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(r.header("host"), None);
        assert_eq!(r.headers().count(), 1);
    }
}
