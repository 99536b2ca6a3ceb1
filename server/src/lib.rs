//! The HTTPS server of enclave-https, as a library: the event loop, TLS, HTTP/1.1, the
//! [`Handler`] API, and the pieces an enclave application needs (the attestation endpoint and
//! the NSM attester, the memory budget, secrets from the environment). The `server` binary,
//! whose routes are `/health`, `/attestation` and `/private-data`, is one application built on
//! it (`src/bin/server/`); yours is another.
//!
//! # Design
//!
//! ```text
//!            worker thread 1 .. N (one per CPU by default), no async runtime
//!  listener ──► epoll (level-triggered) ──► Conn ─ socket ⇄ tls::Conn (rustls) ⇄ http::Session ⇄ Handler
//!  TCP: one SO_REUSEPORT listener per worker; vsock: one listener shared with EPOLLEXCLUSIVE
//! ```
//!
//! - `worker.rs` owns epoll, the slab of connections, accepting and the clock; [`conn`] is
//!   one connection's state machine (phases, deadlines, lingering, back-pressure, its share
//!   of the budget), generic over the byte stream so tests drive it without sockets.
//! - [`tls`] holds every rustls call (rustls 0.23's sans-I/O `ServerConnection`).
//! - [`http`] is HTTP/1.1 without I/O: keep-alive, pipelining, Content-Length and chunked
//!   bodies, `Expect: 100-continue`, HEAD, limits with their status codes, and the framing
//!   shapes that other parsers read differently refused with 400.
//! - [`front`]: front mode, TLS in front of an HTTP application; [`aws`]: AWS requests from
//!   inside the enclave (SigV4, credentials, KMS `Decrypt`/`GenerateDataKey` with `Recipient`).
//! - [`client`]: a blocking HTTP/HTTPS client for outside services (KMS, the instance
//!   metadata service) through the image's egress table, every wait and size bounded.
//! - [`budget`]: every byte held for connections is counted against one memory budget, from
//!   the memory the server has ([`memory`]); near it the server sheds load instead of dying.
//! - Errors of one connection close that connection only; nothing a client sends can panic
//!   the server (no unwrap, expect or indexing on received bytes).
//! - [`Server::stop_on_signals`]: SIGTERM/SIGINT arrive on a signalfd watched by every
//!   worker's epoll; the workers stop accepting, finish the requests in progress for a bounded
//!   time, and [`Server::run`] returns `Ok`.
//!
//! # Your own application
//!
//! A handler is any `Fn(&Request) -> Response` (or a type implementing [`Handler`]); mount
//! the library's attestation endpoint beside your routes so clients can check what they talk
//! to. `examples/hello` in the repository is this, built and tested in CI:
//!
//! ```no_run
//! use server::attest::Attestation;
//! use server::nsm::Nsm;
//! use server::{Config, Identity, Limits, Request, Response, Server};
//! use std::sync::Arc;
//!
//! # fn main() -> server::Result<()> {
//! // A key pair made inside the enclave; its certificate is what the attestation binds, and
//! // with an NSM it carries the document for its key (clients verify from the handshake).
//! let nsm = Nsm::open_default().ok();
//! let identity = Identity::generate_for(nsm.as_ref())?;
//! let attestation = Attestation::new(nsm, identity.leaf_der());
//! let app = move |req: &Request<'_>| match req.path() {
//!     "/" => Response::new(200, "text/plain", "hello from the enclave\n"),
//!     "/attestation" => attestation.handle(req),
//!     _ => Response::json_error(404, "not found"),
//! };
//! let limits = Limits::for_memory(server::memory::detect().map_or(256 << 20, |m| m.bytes));
//! let config = Config { listen: "vsock:443".parse()?, workers: 2, limits };
//! let mut server = Server::bind(&config, Some(identity.into_config()?))?;
//! server.stop_on_signals(std::time::Duration::from_secs(5))?;
//! server.run(Arc::new(app))
//! # }
//! ```

#![deny(unsafe_code)]

pub mod attest;
pub mod aws;
pub mod budget;
pub mod cert;
pub mod client;
pub mod config;
pub mod conn;
pub mod error;
pub mod front;
pub mod handler;
pub mod http;
pub mod listener;
pub mod memory;
pub mod nsm;
pub mod secrets;
pub mod server;
pub mod stats;
#[allow(unsafe_code)] // accept4's descriptor handover and the environment wipe; see SAFETY comments
mod sys;
pub mod tls;
mod worker;

// The public interface:
pub use config::{Limits, ListenAddr};
pub use error::{Error, Result};
pub use handler::{Handler, Request, Response};
pub use server::{Config, Server};
pub use stats::Stats;
pub use tls::Identity;
