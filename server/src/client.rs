//! A small synchronous HTTP/1.1 client for the outside services an enclave application calls
//! (KMS over HTTPS, the instance metadata service over plain HTTP): one blocking connection
//! per request, no async runtime, every wait and every size bounded.
//!
//! ```no_run
//! use server::client::{Client, ClientOptions, Request};
//!
//! # fn main() -> Result<(), server::client::ClientError> {
//! // Mozilla's roots, and in an enclave the egress table the image was built with.
//! let client = Client::new(ClientOptions::for_enclave(&[])?);
//! let token = client.request(
//!     &Request::new("PUT", "http://169.254.169.254/latest/api/token")?
//!         .with_header("X-aws-ec2-metadata-token-ttl-seconds", "60"),
//! )?;
//! let region = client.request(
//!     &Request::new("GET", "http://169.254.169.254/latest/meta-data/placement/region")?
//!         .with_header("X-aws-ec2-metadata-token", &String::from_utf8_lossy(&token.body)),
//! )?;
//! println!("{} {}", region.status, String::from_utf8_lossy(&region.body));
//! # Ok(())
//! # }
//! ```
//!
//! - Where a connection goes ([`Resolver`]): in an enclave, the egress table
//!   ([`contract::egress`], written by `eif-builder image` at `/etc/enclave-https/egress`) maps
//!   each `HOST:PORT` of the image's `egress` list to the loopback address its forwarder
//!   listens on, IPv4 addresses such as `169.254.169.254` included; a `HOST:PORT` not in it
//!   fails at once, naming it and the table (there is no DNS in an enclave, and a lookup would
//!   only time out). Elsewhere, the system resolver.
//! - TLS ([`tls`]): rustls with Mozilla's roots compiled in ([`tls_config`]) plus extra trust
//!   anchors ([`read_pem_roots`]); SNI is the URL's host (none for an IP address). A
//!   certificate refused as expired or not yet valid gets an error naming the enclave's clock,
//!   the usual cause in an enclave.
//! - HTTP: the request carries `Host`, `Content-Length` and `Connection: close`; headers with
//!   a line break are refused. The response ([`response`]) is read strictly and bounded.
//! - Time: `connect_timeout` per TCP connection attempt, `io_timeout` for each read and write,
//!   `total_timeout` for the whole request; a server that trickles bytes cannot hold the client
//!   past `total_timeout` (every read waits at most for what is left of it).

pub mod error;
pub mod response;
pub mod tls;
pub mod url;

pub use error::{CertificateTime, ClientError, Timeout};
pub use response::Response;
pub use tls::{read_pem_roots, test_roots_from_env, tls_config, TEST_CA_ENV};
pub use url::{Scheme, Url};

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::egress::Entry;
use rustls::pki_types::{CertificateDer, ServerName};

/// Where a connection to `HOST:PORT` goes.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// The system's resolver (`ToSocketAddrs`): outside an enclave.
    System,
    /// The egress table: a `HOST:PORT` in it goes to its loopback address; one not in it is
    /// refused at once ([`ClientError::NotInEgress`]). Loopback addresses and `localhost` (the
    /// enclave itself) are reached directly.
    Egress {
        /// The table's entries.
        entries: Vec<Entry>,
        /// Where it was read from, for messages.
        path: PathBuf,
    },
}

impl Resolver {
    /// The egress table at `path`, read strictly ([`contract::egress::parse`]).
    pub fn egress_file(path: &Path) -> Result<Resolver, ClientError> {
        let bad = |reason: String| ClientError::EgressTable {
            path: path.to_path_buf(),
            reason,
        };
        let max = u64::try_from(contract::egress::MAX_BYTES).unwrap_or(u64::MAX);
        // One byte over the limit is enough for the parser to refuse the size.
        let bytes = read_at_most(path, max).map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8".into()))?;
        let entries = contract::egress::parse(&text).map_err(|e| bad(e.to_string()))?;
        Ok(Resolver::Egress {
            entries,
            path: path.to_path_buf(),
        })
    }

    /// The resolver of an enclave application: the egress table at
    /// [`contract::egress::PATH`] when that file exists (an image built with `egress`), else
    /// [`Resolver::System`]. A table that exists but does not parse is an error.
    pub fn for_enclave() -> Result<Resolver, ClientError> {
        let path = Path::new(contract::egress::PATH);
        match std::fs::symlink_metadata(path) {
            Ok(_) => Resolver::egress_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Resolver::System),
            Err(e) => Err(ClientError::EgressTable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// The addresses to try for `host:port`, in order.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ClientError> {
        match self {
            Resolver::System => {
                let addrs: Vec<SocketAddr> = (host, port)
                    .to_socket_addrs()
                    .map_err(|source| ClientError::Lookup {
                        host: host.to_owned(),
                        port,
                        source,
                    })?
                    .collect();
                if addrs.is_empty() {
                    return Err(ClientError::Lookup {
                        host: host.to_owned(),
                        port,
                        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
                    });
                }
                Ok(addrs)
            }
            Resolver::Egress { entries, path } => {
                if let Some(e) = contract::egress::lookup(entries, host, port) {
                    return Ok(vec![SocketAddr::V4(e.local)]);
                }
                if host.eq_ignore_ascii_case("localhost") {
                    return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
                }
                match host.parse::<Ipv4Addr>() {
                    Ok(ip) if ip.is_loopback() => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
                    _ => Err(ClientError::NotInEgress {
                        host: host.to_owned(),
                        port,
                        table: path.clone(),
                    }),
                }
            }
        }
    }
}

/// The first `max + 1` bytes of the file at `path` (the caller judges a file that reaches
/// `max + 1` too large): a file of trust anchors, the egress table.
pub(crate) fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// How a [`Client`] connects, trusts and bounds.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The TLS configuration of `https` URLs ([`tls_config`] by default; your own for a
    /// verifier of your own).
    pub tls: Arc<rustls::ClientConfig>,
    /// Where connections go.
    pub resolver: Resolver,
    /// The longest wait for one TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// The longest wait for each read and each write (default 10 s).
    pub io_timeout: Duration,
    /// The longest a whole request may take, from the lookup to the last byte of the response
    /// (default 30 s).
    pub total_timeout: Duration,
    /// The most bytes of response read, heads and body together (default 1 MiB; a head is
    /// at most [`response::MAX_HEAD`]).
    pub max_response_bytes: usize,
}

impl ClientOptions {
    /// The defaults with the system resolver and `tls` as the TLS configuration.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> ClientOptions {
        ClientOptions {
            tls,
            resolver: Resolver::System,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_response_bytes: 1 << 20,
        }
    }

    /// The defaults with the system resolver, trusting Mozilla's roots and `extra_roots`.
    pub fn with_roots(extra_roots: &[CertificateDer<'_>]) -> Result<ClientOptions, ClientError> {
        Ok(ClientOptions::new(tls_config(extra_roots)?))
    }

    /// What an enclave application wants: the defaults, trusting Mozilla's roots and
    /// `extra_roots`, and the egress table at [`contract::egress::PATH`] when the image has
    /// one ([`Resolver::for_enclave`]).
    pub fn for_enclave(extra_roots: &[CertificateDer<'_>]) -> Result<ClientOptions, ClientError> {
        let mut options = ClientOptions::with_roots(extra_roots)?;
        options.resolver = Resolver::for_enclave()?;
        Ok(options)
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, `POST`, …
    pub method: String,
    /// Where.
    pub url: Url,
    /// Headers, in order. The client adds `Host` (one given here must equal
    /// [`Url::host_header`]), `Content-Length` (one given here must equal the body's length) and
    /// `Connection: close`; `Connection`, `Transfer-Encoding` and names or values with a
    /// control character (CR, LF, NUL, …) are refused.
    pub headers: Vec<(String, String)>,
    /// The body (sent with `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &str, url: &str) -> Result<Request, ClientError> {
        Ok(Request {
            method: method.to_owned(),
            url: Url::parse(url)?,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The bytes sent: request line, headers, blank line, body.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ClientError> {
        let bad = |reason: String| ClientError::Request(reason);
        if self.method.is_empty() || self.method.len() > 32 || !self.method.bytes().all(is_tchar) {
            return Err(bad(format!("method {:?} is not a token", self.method)));
        }
        let authority = self.url.host_header();
        let length = self.body.len().to_string();
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: {authority}\r\n",
            self.method,
            self.url.target()
        )
        .into_bytes();
        let mut has_length = false;
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(bad(format!("header name {name:?} is not a token")));
            }
            if value.contains(['\r', '\n']) {
                return Err(bad(format!("header {name} contains CR or LF")));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(bad(format!("header {name} contains a control character")));
            }
            if name.eq_ignore_ascii_case("host") {
                if !value.eq_ignore_ascii_case(&authority) {
                    return Err(bad(format!(
                        "header Host {value:?} is not the URL's {authority:?} (the client sends it)"
                    )));
                }
                continue;
            }
            if name.eq_ignore_ascii_case("content-length") {
                if value.trim() != length {
                    return Err(bad(format!(
                        "header Content-Length {value:?} is not the body's {length} bytes (the client sends it)"
                    )));
                }
                has_length = true;
            }
            if name.eq_ignore_ascii_case("connection")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                return Err(bad(format!(
                    "header {name} is the client's (one connection per request, bodies with Content-Length)"
                )));
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let wants_length =
            !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if wants_length && !has_length {
            out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A client: options, nothing else (no pool); share it freely.
#[derive(Debug, Clone)]
pub struct Client {
    options: ClientOptions,
}

/// The payload of the `io::Error` a [`Socket`] returns when a timeout passes.
#[derive(Debug)]
struct Expired(Timeout);

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Expired {}

/// A TCP stream whose every read and write waits at most `io_timeout`, and never past
/// `deadline`.
#[derive(Debug)]
struct Socket {
    sock: TcpStream,
    deadline: Instant,
    io_timeout: Duration,
    total_timeout: Duration,
}

impl Socket {
    /// The wait for the next read or write.
    fn arm(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                Expired(Timeout::Total(self.total_timeout)),
            ));
        }
        // A zero timeout means "none" to the socket: wait at least a millisecond.
        Ok(left.min(self.io_timeout).max(Duration::from_millis(1)))
    }

    fn expired(&self, e: io::Error, wait: Duration) -> io::Error {
        if !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return e;
        }
        let which = if wait < self.io_timeout {
            Timeout::Total(self.total_timeout)
        } else {
            Timeout::Io(self.io_timeout)
        };
        io::Error::new(io::ErrorKind::TimedOut, Expired(which))
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = self.arm()?;
        self.sock.set_read_timeout(Some(wait))?;
        self.sock.read(buf).map_err(|e| self.expired(e, wait))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let wait = self.arm()?;
        self.sock.set_write_timeout(Some(wait))?;
        self.sock.write(buf).map_err(|e| self.expired(e, wait))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Client {
        Client { options }
    }

    /// Its options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Sends `request` on a new connection and reads the response (any status: a 4xx or 5xx is
    /// a [`Response`], not an error).
    pub fn request(&self, request: &Request) -> Result<Response, ClientError> {
        let o = &self.options;
        let start = Instant::now();
        // A total_timeout too large for the clock is a year: the same in practice.
        let deadline = start
            .checked_add(o.total_timeout)
            .unwrap_or(start + Duration::from_secs(365 * 86400));
        let bytes = request.to_bytes()?;
        let url = &request.url;
        let shown = url.without_query();
        let host = url.host();
        let addrs = o.resolver.resolve(host, url.port())?;
        let sock = self.connect(host, url.port(), &addrs, deadline)?;
        let mut socket = Socket {
            sock,
            deadline,
            io_timeout: o.io_timeout,
            total_timeout: o.total_timeout,
        };
        let head_request = request.method == "HEAD";
        match url.scheme() {
            Scheme::Http => {
                socket
                    .write_all(&bytes)
                    .map_err(|e| io_error(e, "sending the request to", &shown, host))?;
                response::read(&mut socket, o.max_response_bytes, head_request)
                    .map_err(|e| response_error(e, &shown, host, false))
            }
            Scheme::Https => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Url {
                    url: url.to_string(),
                    reason: format!("the host is not a TLS server name: {e}"),
                })?;
                let mut conn = rustls::ClientConnection::new(Arc::clone(&o.tls), name)
                    .map_err(|e| tls::tls_error(host, e))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut socket)
                        .map_err(|e| io_error(e, "the TLS handshake with", &shown, host))?;
                }
                let mut stream = rustls::StreamOwned::new(conn, socket);
                stream
                    .write_all(&bytes)
                    .and_then(|()| stream.flush())
                    .map_err(|e| io_error(e, "sending the request to", &shown, host))?;
                let response = response::read(&mut stream, o.max_response_bytes, head_request)
                    .map_err(|e| response_error(e, &shown, host, true))?;
                // A polite close; the response is complete whatever happens to it.
                stream.conn.send_close_notify();
                let _ = stream.conn.write_tls(&mut stream.sock);
                Ok(response)
            }
        }
    }

    /// A TCP connection to the first of `addrs` that answers.
    fn connect(
        &self,
        host: &str,
        port: u16,
        addrs: &[SocketAddr],
        deadline: Instant,
    ) -> Result<TcpStream, ClientError> {
        let mut last = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left
                .min(self.options.connect_timeout)
                .max(Duration::from_millis(1));
            match TcpStream::connect_timeout(addr, wait) {
                Ok(sock) => {
                    // Small requests, sent whole: no reason to wait for more.
                    let _ = sock.set_nodelay(true);
                    return Ok(sock);
                }
                Err(source) => last = Some((*addr, source)),
            }
        }
        let (addr, source) = match last {
            Some(l) => l,
            None => (
                addrs
                    .first()
                    .copied()
                    .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    Expired(Timeout::Total(self.options.total_timeout)),
                ),
            ),
        };
        Err(ClientError::Connect {
            host: host.to_owned(),
            port,
            addr,
            source,
        })
    }
}

/// An I/O error while `during` as a [`ClientError`]: a timeout, a TLS error, or the error.
fn io_error(e: io::Error, during: &'static str, url: &str, host: &str) -> ClientError {
    if let Some(Expired(limit)) = e.get_ref().and_then(|i| i.downcast_ref::<Expired>()) {
        return ClientError::Timeout {
            during,
            url: url.to_owned(),
            limit: *limit,
        };
    }
    if let Some(tls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return tls::tls_error(host, tls_error.clone());
    }
    let source = if e.kind() == io::ErrorKind::UnexpectedEof && during == "the TLS handshake with" {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection during the handshake",
        )
    } else {
        e
    };
    ClientError::Io {
        during,
        url: url.to_owned(),
        source,
    }
}

fn response_error(e: response::ResponseError, url: &str, host: &str, tls: bool) -> ClientError {
    match e {
        response::ResponseError::Framing(reason) => ClientError::Http {
            url: url.to_owned(),
            reason,
        },
        response::ResponseError::TooLarge { what, limit } => ClientError::TooLarge {
            url: url.to_owned(),
            what,
            limit,
        },
        response::ResponseError::Io(e) if tls && e.kind() == io::ErrorKind::UnexpectedEof => {
            ClientError::Http {
                url: url.to_owned(),
                reason: "the server closed the TLS connection without close_notify before the end of the response (it may be truncated)".into(),
            }
        }
        response::ResponseError::Io(e) => io_error(e, "reading the response from", url, host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, url: &str) -> Request {
        Request::new(method, url).unwrap()
    }

    fn text(r: &Request) -> String {
        String::from_utf8(r.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            text(&req("GET", "http://169.254.169.254/latest/meta-data/?x=1")),
            "GET /latest/meta-data/?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            text(
                &req("PUT", "http://169.254.169.254/latest/api/token")
                    .with_header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            ),
            "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n\
             X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            text(
                &req("POST", "https://kms.test:8443/")
                    .with_header("host", "KMS.test:8443")
                    .with_header("Content-Length", "2")
                    .with_header("Content-Type", "application/x-amz-json-1.1")
                    .with_body("{}")
            ),
            "POST / HTTP/1.1\r\nHost: kms.test:8443\r\nContent-Length: 2\r\n\
             Content-Type: application/x-amz-json-1.1\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[test]
    fn refused_requests() {
        let e = |r: Request| r.to_bytes().unwrap_err().to_string();
        let r = || req("GET", "https://a.test/");
        assert_eq!(
            e(r().with_header("X-A", "1\r\nEvil: 1")),
            "invalid request: header X-A contains CR or LF"
        );
        assert_eq!(
            e(r().with_header("X-A", "1\n")),
            "invalid request: header X-A contains CR or LF"
        );
        assert_eq!(
            e(r().with_header("X-A", "a\0b")),
            "invalid request: header X-A contains a control character"
        );
        assert_eq!(
            e(r().with_header("X-A\r\n", "1")),
            "invalid request: header name \"X-A\\r\\n\" is not a token"
        );
        assert_eq!(
            e(r().with_header("", "1")),
            "invalid request: header name \"\" is not a token"
        );
        assert_eq!(
            e(r().with_header("Host", "b.test")),
            "invalid request: header Host \"b.test\" is not the URL's \"a.test\" (the client sends it)"
        );
        assert_eq!(
            e(r().with_header("Content-Length", "5")),
            "invalid request: header Content-Length \"5\" is not the body's 0 bytes (the client sends it)"
        );
        assert_eq!(
            e(r().with_header("Connection", "keep-alive")),
            "invalid request: header Connection is the client's (one connection per request, bodies with Content-Length)"
        );
        assert_eq!(
            e(r().with_header("transfer-encoding", "chunked")),
            "invalid request: header transfer-encoding is the client's (one connection per request, bodies with Content-Length)"
        );
        let mut bad = r();
        bad.method = "GET /x HTTP/1.1\r\n".into();
        assert_eq!(
            e(bad),
            "invalid request: method \"GET /x HTTP/1.1\\r\\n\" is not a token"
        );
        let mut bad = r();
        bad.method = String::new();
        assert_eq!(e(bad), "invalid request: method \"\" is not a token");
    }

    #[test]
    fn the_egress_resolver() {
        let table = "a.test:443 127.0.0.2:443\n169.254.169.254:80 127.0.0.3:80\n";
        let resolver = Resolver::Egress {
            entries: contract::egress::parse(table).unwrap(),
            path: contract::egress::PATH.into(),
        };
        let one = |h: &str, p: u16| resolver.resolve(h, p).map(|a| a[0].to_string());
        assert_eq!(one("a.test", 443).unwrap(), "127.0.0.2:443");
        assert_eq!(one("169.254.169.254", 80).unwrap(), "127.0.0.3:80");
        assert_eq!(one("localhost", 8080).unwrap(), "127.0.0.1:8080");
        assert_eq!(one("127.0.0.5", 9).unwrap(), "127.0.0.5:9");
        let e = one("a.test", 80).unwrap_err();
        assert!(
            matches!(e, ClientError::NotInEgress { port: 80, .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "a.test:80 is not in the egress table /etc/enclave-https/egress: nothing in the enclave forwards it (add \"a.test:80\" to `egress` in the image's enclave.toml)"
        );
        assert!(matches!(
            one("10.0.0.1", 80),
            Err(ClientError::NotInEgress { .. })
        ));
    }

    #[test]
    fn egress_files() {
        let dir = std::env::temp_dir().join(format!("client-egress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("egress");
        std::fs::write(&good, contract::egress::render(&[])).unwrap();
        assert!(matches!(
            Resolver::egress_file(&good),
            Ok(Resolver::Egress { entries, .. }) if entries.is_empty()
        ));
        let bad = dir.join("bad");
        std::fs::write(&bad, "a.test:443\n").unwrap();
        assert_eq!(
            Resolver::egress_file(&bad).unwrap_err().to_string(),
            format!(
                "egress table {}: line 1: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \"a.test:443\"",
                bad.display()
            )
        );
        let missing = dir.join("missing");
        assert!(Resolver::egress_file(&missing)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("egress table {}: ", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
