//! `host-relay`: forwards bytes between TCP, Unix sockets and vsock on the parent EC2 instance.
//!
//! The parent is not trusted by the enclave's users, so this program only moves bytes: it links
//! no TLS or crypto code and parses no payload. Each route is `LISTEN=TARGET`.
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | the command line (`--help` is generated from its table) |
//! | [`addr`] | addresses and routes as written on the command line |
//! | [`listener`] | the listening sockets and what an accept gives |
//! | [`route`] | a route at run time: counters, data path, a TCP target's resolved addresses |
//! | [`worker`] | the epoll loop of each worker thread: accepting, dispatch |
//! | [`timers`] | a worker's connect timers: one per connecting slot, none once connected |
//! | [`connector`] | reaching a target without blocking: connect, retries, hybrid-vsock handshake |
//! | [`conn`] | one relayed connection: splice (or copy) in both directions, half-close, close reasons |
//! | [`metrics`] | Prometheus counters |
//! | [`error`] | the errors that stop the relay, with their causes |
//! | `sys` | every system call std does not wrap: the crate's only `unsafe` |

#![deny(unsafe_code)]

pub mod addr;
pub mod cli;
pub mod conn;
pub mod connector;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod route;
#[allow(unsafe_code)] // the system calls; each unsafe block has its SAFETY comment
pub mod sys;
pub mod timers;
pub mod worker;
