//! `fetch`: an enclave application that calls outside services through the image's egress
//! (`egress = ["api.example.com:80"]` in its `enclave.toml`). For each `http://HOST:PORT/PATH`
//! it resolves HOST the normal way (the image's `/etc/hosts` maps each egress name to a
//! loopback address where the forwarder listens), sends a plain HTTP/1.0 GET and prints one
//! line:
//!
//! ```text
//! fetch http://api.example.com:80/: HTTP/1.0 200 OK: <the first 200 bytes of the body>
//! fetch http://other.example:80/: failed: cannot resolve other.example: ...
//! ```
//!
//! It exits 0 once every URL has had its line (2 on a usage error). Nothing here knows about
//! enclaves: a name that is not in the manifest's `egress` does not resolve, and nothing else
//! is reachable.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Connect, read and write timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a refused connection is tried again: the egress forwarder starts beside the
/// application and may not listen yet.
const REFUSED_RETRY: Duration = Duration::from_secs(3);

/// The most bytes of a response read (headers and the body's beginning).
const MAX_RESPONSE: usize = 64 * 1024;

/// The most body bytes printed.
const BODY_SHOWN: usize = 200;

/// `http://HOST[:PORT][/PATH]`.
#[derive(Debug, PartialEq, Eq)]
struct Url<'a> {
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http://HOST:PORT/PATH URLs are fetched")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(format!("bad host {host:?}"));
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("the path has a space or control character".into());
    }
    Ok(Url { host, port, path })
}

/// Connects to the first address of `host:port` that answers.
fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: no address"));
    }
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let mut refused = false;
        for a in &addrs {
            match TcpStream::connect_timeout(a, TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    refused |= e.kind() == std::io::ErrorKind::ConnectionRefused;
                    last = format!("cannot connect to {a} ({host}): {e}");
                }
            }
        }
        if !refused || start.elapsed() >= REFUSED_RETRY {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status line and the body's beginning (one line) of `GET url`.
fn fetch(url: &str) -> Result<String, String> {
    let u = parse_url(url)?;
    let mut s = connect(u.host, u.port)?;
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    s.set_read_timeout(Some(TIMEOUT)).map_err(io("socket"))?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(io("socket"))?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: enclave-https-fetch\r\nConnection: close\r\n\r\n",
        u.path, u.host, u.port
    );
    s.write_all(request.as_bytes()).map_err(io("sending"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).map_err(io("reading the response"))?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if let Some(end) = header_end(&response) {
            if response.len() >= end + BODY_SHOWN {
                break;
            }
        }
        if response.len() >= MAX_RESPONSE {
            break;
        }
    }
    summary(&response)
}

fn header_end(response: &[u8]) -> Option<usize> {
    response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// `STATUS LINE: BODY` from a whole (or long enough) response.
fn summary(response: &[u8]) -> Result<String, String> {
    if response.is_empty() {
        return Err("the connection closed without a response".into());
    }
    let end = header_end(response)
        .ok_or_else(|| format!("no end of the headers in {} bytes", response.len()))?;
    let status = response
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let status = one_line(status);
    if !status.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: {status:?}"));
    }
    let body = response.get(end..).unwrap_or_default();
    let body = one_line(body.get(..BODY_SHOWN).unwrap_or(body));
    Ok(format!("{status}: {}", body.trim_end()))
}

/// Text with every control character (line breaks included) shown as a space.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn main() -> ExitCode {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() || urls.iter().any(|u| u == "-h" || u == "--help") {
        eprintln!("usage: fetch http://HOST:PORT/PATH ...");
        return ExitCode::from(2);
    }
    let mut out = std::io::stdout().lock();
    for url in &urls {
        let line = match fetch(url) {
            Ok(s) => format!("fetch {url}: {s}"),
            Err(e) => format!("fetch {url}: failed: {e}"),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://api.example.com:8080/a/b?c").unwrap(),
            Url {
                host: "api.example.com",
                port: 8080,
                path: "/a/b?c"
            }
        );
        assert_eq!(
            parse_url("http://a.example").unwrap(),
            Url {
                host: "a.example",
                port: 80,
                path: "/"
            }
        );
        assert_eq!(
            parse_url("https://a:1/").unwrap_err(),
            "only http://HOST:PORT/PATH URLs are fetched"
        );
        assert_eq!(parse_url("http://a:0/").unwrap_err(), "bad port \"0\"");
        assert_eq!(parse_url("http://:80/").unwrap_err(), "bad host \"\"");
        assert_eq!(
            parse_url("http://a/b c").unwrap_err(),
            "the path has a space or control character"
        );
    }

    #[test]
    fn responses() {
        assert_eq!(
            summary(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\nthere\r\n")
                .unwrap(),
            "HTTP/1.0 200 OK: hello there"
        );
        let long = format!("HTTP/1.1 404 Not Found\r\n\r\n{}", "x".repeat(500));
        assert_eq!(
            summary(long.as_bytes()).unwrap(),
            format!("HTTP/1.1 404 Not Found: {}", "x".repeat(200))
        );
        assert_eq!(
            summary(b"").unwrap_err(),
            "the connection closed without a response"
        );
        assert_eq!(
            summary(b"HTTP/1.0 200 OK\r\n").unwrap_err(),
            "no end of the headers in 17 bytes"
        );
        assert_eq!(
            summary(b"SSH-2.0\r\n\r\n").unwrap_err(),
            "not an HTTP response: \"SSH-2.0\""
        );
    }
}
