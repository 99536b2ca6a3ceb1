//! init's error type: one variant per step that can fail, naming the step and the cause, so
//! the console line that ends a failed boot says exactly what went wrong.

use std::fmt;
use std::path::PathBuf;

/// Why the boot stopped.
#[derive(Debug)]
pub enum Error {
    /// A mount failed.
    Mount {
        /// What was being mounted.
        what: &'static str,
        /// Where.
        target: PathBuf,
        /// The cause.
        source: nix::Error,
    },
    /// A system call outside mounting failed.
    Sys {
        /// The operation, in words.
        op: String,
        /// The cause.
        source: nix::Error,
    },
    /// A file could not be read or was malformed.
    File {
        /// Which file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A kernel module could not be loaded.
    Module {
        /// The module file.
        path: PathBuf,
        /// The cause.
        source: nix::Error,
    },
    /// The Nitro Secure Module is missing or misbehaved: init fails closed.
    Nsm(String),
    /// The boot heartbeat to the parent failed.
    Heartbeat(String),
    /// The application could not be started.
    Exec(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Mount {
                what,
                target,
                source,
            } => {
                write!(
                    f,
                    "mounting {what} on {}: {}",
                    target.display(),
                    source.desc()
                )
            }
            Error::Sys { op, source } => write!(f, "{op}: {}", source.desc()),
            Error::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Module { path, source } => {
                write!(
                    f,
                    "loading kernel module {}: {}",
                    path.display(),
                    source.desc()
                )
            }
            Error::Nsm(msg) => write!(f, "NSM: {msg}"),
            Error::Heartbeat(msg) => write!(f, "heartbeat: {msg}"),
            Error::Exec(msg) => write!(f, "starting the application: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for init's results.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Wraps a nix error with the operation that failed.
pub fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |source| Error::Sys { op, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_step_and_the_cause() {
        let e = Error::Mount {
            what: "proc",
            target: "/proc".into(),
            source: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "mounting proc on /proc: Operation not permitted"
        );
        let e = sys("opening /dev/nsm")(nix::Error::ENOENT);
        assert_eq!(e.to_string(), "opening /dev/nsm: No such file or directory");
        let e = Error::File {
            path: "/cmd".into(),
            reason: "is empty".into(),
        };
        assert_eq!(e.to_string(), "/cmd: is empty");
    }
}
