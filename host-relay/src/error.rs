//! The errors of host-relay: what went wrong, on which route or address, and the cause kept
//! whole (errno included), so a person reading the one line knows where to look. Errors of one
//! relayed connection never come here: they close that connection and are logged on its
//! `close` line with a [`crate::conn::Close`] reason.

use std::fmt;
use std::io;

/// A command line or address that cannot be used (the message names the bad part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

impl From<String> for Usage {
    fn from(s: String) -> Usage {
        Usage(s)
    }
}

impl From<&str> for Usage {
    fn from(s: &str) -> Usage {
        Usage(s.to_owned())
    }
}

/// What stops the relay from starting, or a worker from running.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Blocking SIGTERM/SIGINT or waiting for them failed.
    Signals(io::Error),
    /// A route's listening socket could not be bound.
    Listen {
        /// The route's index.
        route: usize,
        /// The address, as given.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// The metrics listener could not be bound.
    Metrics {
        /// The address, as given.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// A worker's eventfd or epoll instance could not be made, or epoll failed.
    Epoll(io::Error),
    /// A worker thread could not be started.
    Spawn {
        /// The worker's index.
        worker: usize,
        /// The cause.
        source: io::Error,
    },
    /// A worker thread panicked.
    Panicked,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Signals(e) => write!(f, "handling SIGTERM/SIGINT: {e}"),
            Error::Listen {
                route,
                addr,
                source,
            } => write!(f, "route {route}: listening on {addr}: {source}"),
            Error::Metrics { addr, source } => write!(f, "metrics on {addr}: {source}"),
            Error::Epoll(e) => write!(f, "epoll: {e}"),
            Error::Spawn { worker, source } => write!(f, "starting worker {worker}: {source}"),
            Error::Panicked => f.write_str("a worker panicked"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Signals(e) | Error::Epoll(e) => Some(e),
            Error::Listen { source, .. }
            | Error::Metrics { source, .. }
            | Error::Spawn { source, .. } => Some(source),
            Error::Panicked => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_and_keep_the_errno() {
        let e = Error::Listen {
            route: 1,
            addr: "tcp:127.0.0.1:80".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            e.to_string(),
            "route 1: listening on tcp:127.0.0.1:80: Permission denied (os error 13)"
        );
        let e = Error::Spawn {
            worker: 3,
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert!(e.to_string().starts_with("starting worker 3: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            Error::Metrics {
                addr: "tcp:0.0.0.0:1".into(),
                source: io::Error::from_raw_os_error(libc::EADDRINUSE)
            }
            .to_string(),
            "metrics on tcp:0.0.0.0:1: Address already in use (os error 98)"
        );
        assert_eq!(
            Usage::from("no --route given").to_string(),
            "no --route given"
        );
    }
}
