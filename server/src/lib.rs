//! The HTTPS server of enclave-https: the one process inside the enclave, and a library for
//! writing your own.
//!
//! # Design
//!
//! ```text
//!            worker thread 1 .. N (one per CPU by default), no async runtime
//!  listener ──► epoll (level-triggered) ──► Conn ─ socket ⇄ tls::Conn (rustls) ⇄ http::Session ⇄ Handler
//!  TCP: one SO_REUSEPORT listener per worker; vsock: one listener shared with EPOLLEXCLUSIVE
//! ```
//!
//! - [`tls`] holds every rustls call: rustls 0.23's sans-I/O `ServerConnection`, driven with
//!   `read_tls` / `process_new_packets` / `reader()` / `writer()` / `write_tls`, interest
//!   recomputed from `wants_read` / `wants_write` after each event.
//! - [`http`] is HTTP/1.1 without I/O (httparse underneath): keep-alive, pipelining,
//!   Content-Length and chunked bodies, `Expect: 100-continue`, HEAD, limits with their status
//!   codes, request-smuggling shapes refused.
//! - Errors of one connection close that connection only; nothing a client sends can panic
//!   the server (no unwrap, expect or indexing on received bytes).
//! - [`Server::stop_on_signals`]: SIGTERM/SIGINT arrive on a signalfd watched by every
//!   worker's epoll; the workers stop accepting, finish the requests in progress for a bounded
//!   time, and [`Server::run`] returns `Ok`.
//! - [`vault`]: the enclave key and the sealed, memory-only value of `/private-data`.
//!
//! # Your own routes
//!
//! ```no_run
//! use server::{Config, Handler, Identity, Limits, Request, Response, Server};
//! use std::sync::Arc;
//!
//! # fn main() -> server::Result<()> {
//! let hello = |req: &Request<'_>| match req.path() {
//!     "/" => Response::new(200, "text/plain", "hello\n"),
//!     _ => Response::json_error(404, "not found"),
//! };
//! let config = Config { listen: "tcp:127.0.0.1:8443".parse()?, workers: 1, limits: Limits::default() };
//! let server = Server::bind(&config, Some(Identity::generate()?.into_config()?))?;
//! server.run(Arc::new(hello))
//! # }
//! ```

#![deny(unsafe_code)]

pub mod app;
pub mod cert;
pub mod cli;
pub mod config;
pub mod error;
pub mod handler;
pub mod http;
pub mod listener;
pub mod nsm;
pub mod server;
#[allow(unsafe_code)] // the one accept4 descriptor handover; see the module's SAFETY comment
mod sys;
pub mod tls;
pub mod vault;
mod worker;

// The public interface:
pub use config::{Limits, ListenAddr};
pub use error::{Error, Result};
pub use handler::{Handler, Request, Response};
pub use server::{Config, Server, Stats};
pub use tls::Identity;
