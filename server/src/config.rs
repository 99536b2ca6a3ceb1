//! What the server is told: where to listen, how many workers, and the limits every connection
//! is held to. Parsing of the textual forms (`vsock:PORT`, `tcp:ADDR:PORT`, `10s`) lives here so
//! the binary and tests share it.

use crate::error::{Error, Result};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// An AF_VSOCK port on any CID (`vsock:PORT`): the enclave's side of the host relay.
    Vsock(u32),
    /// A TCP address (`tcp:ADDR:PORT`, IPv6 in brackets): local work and tests. Port 0 picks a
    /// free port; the startup line names the one bound.
    Tcp(SocketAddr),
}

impl FromStr for ListenAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<ListenAddr> {
        let bad = || Error::ListenSyntax(s.to_owned());
        if let Some(port) = s.strip_prefix("vsock:") {
            // Decimal only, so "vsock:+1" or "vsock:0x10" are not silently accepted.
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            port.parse().map(ListenAddr::Vsock).map_err(|_| bad())
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse().map(ListenAddr::Tcp).map_err(|_| bad())
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Vsock(port) => write!(f, "vsock:{port}"),
            ListenAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// The most header lines a request may have, whatever [`Limits::max_headers`] says: the parser's
/// header array lives on the stack.
pub const MAX_HEADERS_CAP: usize = 128;

/// Limits applied to every connection; a client that exceeds one gets the status named on the
/// field (then the connection is closed) or is disconnected, and no other connection notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections over all workers; further ones are accepted and closed at once.
    pub max_connections: usize,
    /// Bytes of request line plus headers (431).
    pub max_header_bytes: usize,
    /// Header lines per request (431); at most [`MAX_HEADERS_CAP`].
    pub max_headers: usize,
    /// Bytes of the request target, query included (414).
    pub max_uri_bytes: usize,
    /// Bytes of a request body, after chunked decoding (413).
    pub max_body_bytes: usize,
    /// Requests on one connection; the last one is answered with `Connection: close`.
    pub max_requests_per_connection: u64,
    /// Time allowed for the TLS handshake, from accept.
    pub handshake_timeout: Duration,
    /// Time allowed from a request's first byte to its last (headers and body): the slowloris
    /// guard.
    pub request_timeout: Duration,
    /// Time a connection may sit with no request in progress, or with responses the client does
    /// not read.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_header_bytes: 8 * 1024,
            max_headers: 64,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 1024 * 1024,
            max_requests_per_connection: 100_000,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Checks the values that would make the server useless or unsafe.
    pub fn validate(&self) -> Result<()> {
        let err = |s: &str| Err(Error::Config(s.to_owned()));
        if self.max_connections == 0 {
            return err("max connections must be at least 1");
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAP {
            return Err(Error::Config(format!(
                "max headers must be between 1 and {MAX_HEADERS_CAP}"
            )));
        }
        if self.max_header_bytes < 64 {
            return err("max header bytes must be at least 64");
        }
        if self.max_uri_bytes == 0 {
            return err("max URI bytes must be at least 1");
        }
        if self.max_requests_per_connection == 0 {
            return err("max requests per connection must be at least 1");
        }
        for (name, d) in [
            ("handshake", self.handshake_timeout),
            ("request", self.request_timeout),
            ("idle", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!(
                    "the {name} timeout must not be zero"
                )));
            }
        }
        Ok(())
    }
}

/// Parses `10`, `10s`, `500ms` or `2m` into a duration (seconds when no unit is given).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let bad = || format!("invalid duration {s:?}: expected a number with s, ms or m");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "vsock:443".parse::<ListenAddr>().unwrap(),
            ListenAddr::Vsock(443)
        );
        assert_eq!(
            "tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            "tcp:[::1]:8443".parse::<ListenAddr>().unwrap().to_string(),
            "tcp:[::1]:8443"
        );
        for bad in [
            "",
            "443",
            "vsock:",
            "vsock:+1",
            "vsock:4294967296",
            "tcp:localhost:1",
            "tcp:1.2.3.4",
            "udp:1.2.3.4:5",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "s", "-1", "1h", "1.5s", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_limits_are_valid_and_zero_is_not() {
        Limits::default().validate().unwrap();
        let l = Limits {
            max_headers: MAX_HEADERS_CAP + 1,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
        let l = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
    }
}
