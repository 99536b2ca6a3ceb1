//! Front mode: the server terminates TLS with its enclave-born key, answers the attestation
//! endpoint itself, and forwards every other request to the application behind it over
//! HTTP/1.1 (`--upstream tcp:127.0.0.1:8080` or `unix:/run/app.sock`), so an unmodified HTTP
//! application gets attested TLS without knowing it.
//!
//! ```text
//!  client ─TLS─► Conn: PROXY v2? ─► tls ─► request head ─┬─► local path: the Handler (attestation)
//!                                                         └─► upstream pool ⇄ application
//! ```
//!
//! - [`conn`]: one client connection's state machine (generic over both streams, tested over
//!   scripted ones), one exchange at a time: the request head normalized and sent upstream,
//!   the body streamed in both directions with bounded buffers, the response head
//!   normalized on the way back;
//! - [`chunks`]: the chunked coding decoded as it streams (the same strict rules as the
//!   server's own parser), re-encoded on the other side;
//! - [`upstream`]: the application's address, non-blocking connects, and each worker's pool
//!   of idle keep-alive connections.
//!
//! What the application sees: one framing per message (a `Content-Length` or chunked, never
//! both: the smuggling shapes are refused with 400 before anything is sent), no hop-by-hop
//! headers, and the client in `Forwarded` and `X-Forwarded-For` (from the PROXY v2 header
//! host-relay sends, when `--proxy-protocol` says one comes; without it such a header is just
//! bytes that are not TLS, and the handshake fails). Headers of those names sent by the client
//! are dropped. An upstream that refuses, resets, stalls or answers something that is not
//! HTTP/1.x gets the client a 502 or 504, never a hang.

pub mod chunks;
pub mod conn;
pub mod upstream;

use std::time::Duration;
pub use upstream::UpstreamAddr;

/// The attestation endpoint's path in front mode, out of the way of the application's paths
/// (RFC 8615 reserves `/.well-known/` for such metadata). `--attestation-path` changes it.
pub const DEFAULT_ATTESTATION_PATH: &str = "/.well-known/enclave-https/attestation";

/// How long the application may take to answer, or stay silent mid-exchange, by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle keep-alive connections to the application kept per worker, by default.
pub const DEFAULT_POOL: usize = 32;

/// Front mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    /// Where the application listens.
    pub upstream: UpstreamAddr,
    /// Paths answered by the server's own handler (exact match, without the query); every
    /// other request goes to the application.
    pub local_paths: Vec<String>,
    /// Each connection starts with a PROXY v2 header (host-relay's `proxy-v2` route option).
    pub proxy_protocol: bool,
    /// See [`DEFAULT_UPSTREAM_TIMEOUT`].
    pub upstream_timeout: Duration,
    /// See [`DEFAULT_POOL`].
    pub pool: usize,
}

impl Front {
    /// Front mode to `upstream` with the defaults: the attestation endpoint at
    /// [`DEFAULT_ATTESTATION_PATH`], no PROXY header.
    pub fn new(upstream: UpstreamAddr) -> Front {
        Front {
            upstream,
            local_paths: vec![DEFAULT_ATTESTATION_PATH.to_owned()],
            proxy_protocol: false,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            pool: DEFAULT_POOL,
        }
    }
}
