//! What the server is told: where to listen, how many workers, and the limits every connection
//! is held to, and their defaults for the memory the server has.

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

const MIB: u64 = 1024 * 1024;
/// Memory left aside from the budget and the connections' kernel buffers: the binary, thread
/// stacks, the allocator's own overhead, and (in an enclave) the kernel and the ramdisk.
pub const RESERVED_MEMORY: u64 = 16 * MIB;
/// What one connection may need at least in the budget: a TLS connection's state and buffers
/// with one request in (about 56 KiB in the budget's accounting).
pub const BYTES_PER_CONNECTION: u64 = 64 * 1024;
/// What one connection may make the kernel hold at most: a vsock connection's receive buffer
/// (`listener::VSOCK_BUFFER`, 256 KiB: less stalls responses, see there) and its send side.
pub const KERNEL_BYTES_PER_CONNECTION: u64 = crate::listener::VSOCK_BUFFER + 32 * 1024;
/// The default connection limit never exceeds this, however large the memory.
pub const MAX_CONNECTIONS_CAP: usize = 10_000;
/// The smallest memory budget accepted.
pub const MIN_MEMORY_BUDGET: usize = 4 * 1024 * 1024;

/// Limits applied to every connection and to all of them together; a client that exceeds one
/// gets the status named on the field (then the connection is closed) or is disconnected, and
/// no other connection notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections over all workers; further ones are accepted and closed at once.
    pub max_connections: usize,
    /// Bytes the server may hold for all its connections together (see `budget.rs`).
    pub memory_budget: usize,
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
    /// Time a connection may sit with no request in progress.
    pub idle_timeout: Duration,
    /// The slow-reader guard: while responses wait to be sent, the client must take at least
    /// [`MIN_SEND_PROGRESS`] bytes of them (or all of them) within each such period.
    pub send_timeout: Duration,
}

/// The progress a client must make reading its responses per [`Limits::send_timeout`].
pub const MIN_SEND_PROGRESS: usize = 16 * 1024;

impl Default for Limits {
    /// The limits for a 256 MiB machine (the enclave size the README recommends); the server
    /// binary uses [`Limits::for_memory`] with the memory it finds.
    fn default() -> Limits {
        Limits::for_memory(256 * MIB)
    }
}

impl Limits {
    /// The defaults for a process with `memory` bytes: of what is left after
    /// [`RESERVED_MEMORY`], half is the memory budget and the other half is for the kernel
    /// (socket buffers). The connection limit lets every connection take
    /// [`BYTES_PER_CONNECTION`] within the first half of the budget (where it is not held back
    /// yet, `budget.rs`) and [`KERNEL_BYTES_PER_CONNECTION`] within the kernel's half, at most
    /// [`MAX_CONNECTIONS_CAP`].
    pub fn for_memory(memory: u64) -> Limits {
        let usable = memory.saturating_sub(RESERVED_MEMORY);
        let budget = usize::try_from(usable / 2)
            .unwrap_or(usize::MAX)
            .max(MIN_MEMORY_BUDGET);
        let in_budget = usable / 4 / BYTES_PER_CONNECTION;
        let in_kernel = usable / 2 / KERNEL_BYTES_PER_CONNECTION;
        let conns = usize::try_from(in_budget.min(in_kernel))
            .unwrap_or(usize::MAX)
            .clamp(16, MAX_CONNECTIONS_CAP);
        Limits {
            max_connections: conns,
            memory_budget: budget,
            max_header_bytes: 8 * 1024,
            max_headers: 64,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 1024 * 1024,
            max_requests_per_connection: 100_000,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(10),
        }
    }

    /// The most input one connection may hold: one request of the maximum size, its encoding
    /// overhead, and slack.
    pub fn input_cap(&self) -> usize {
        self.max_header_bytes
            .saturating_add(self.max_body_bytes.saturating_mul(2))
            .saturating_add(64 * 1024)
    }

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
        let needed = self.input_cap().max(MIN_MEMORY_BUDGET);
        if self.memory_budget < needed {
            return Err(Error::Config(format!(
                "the memory budget ({} bytes) must be at least {needed} bytes: one request of the maximum size must fit",
                self.memory_budget
            )));
        }
        for (name, d) in [
            ("handshake", self.handshake_timeout),
            ("request", self.request_timeout),
            ("idle", self.idle_timeout),
            ("send", self.send_timeout),
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
        let l = Limits {
            memory_budget: 1024 * 1024,
            ..Limits::default()
        };
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "configuration: the memory budget (1048576 bytes) must be at least 4194304 bytes: one request of the maximum size must fit"
        );
    }

    #[test]
    fn defaults_follow_the_memory() {
        let l = Limits::for_memory(256 * MIB);
        assert_eq!(l.memory_budget, 120 * 1024 * 1024);
        // 120 MiB of kernel room at 288 KiB each (not 960 at the budget's 64 KiB each).
        assert_eq!(l.max_connections, 426);
        let l = Limits::for_memory(64 * MIB);
        assert_eq!(l.memory_budget, 24 * 1024 * 1024);
        assert_eq!(l.max_connections, 85);
        let l = Limits::for_memory(64 * 1024 * MIB);
        assert_eq!(l.max_connections, MAX_CONNECTIONS_CAP);
        let l = Limits::for_memory(0);
        assert_eq!(l.memory_budget, MIN_MEMORY_BUDGET);
        assert_eq!(l.max_connections, 16);
        l.validate().unwrap();
    }
}
