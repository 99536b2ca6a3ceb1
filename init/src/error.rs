//! init's error type: one variant per way a step can fail, naming the step and keeping the
//! cause whole (the errno of a system call or of an I/O error), so the console line that ends a
//! failed boot says exactly what went wrong and where.

use std::fmt;
use std::io;
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
    /// A file could not be opened, read or created.
    Io {
        /// What was being done (`reading`, `opening`, `creating the mount point`).
        op: &'static str,
        /// Which file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file's content is not what it must be.
    Malformed {
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
    /// /dev/nsm cannot be opened: not a Nitro enclave, or no NSM driver.
    NoNsm(io::Error),
    /// The NSM answered a request wrongly (init fails closed: no randomness, no boot).
    Nsm(String),
    /// The kernel's hardware RNG is missing or is not the NSM's.
    HwRng {
        /// What was found, or why nothing could be read.
        found: String,
    },
    /// The boot heartbeat to the parent failed.
    Heartbeat {
        /// The step (`socket`, `connect`, `send`, `reply`, `join`).
        step: &'static str,
        /// The parent's vsock address (CID, port).
        parent: (u32, u32),
        /// What happened.
        cause: HeartbeatFailure,
    },
    /// A network interface could not be brought up.
    Interface {
        /// The interface (`lo`).
        name: &'static str,
        /// The step (`socket(…)`, `SIOCGIFFLAGS`, `SIOCSIFFLAGS`).
        op: &'static str,
        /// The cause.
        source: nix::Error,
    },
    /// A process listed in the processes file could not be started.
    Process {
        /// Its name in the file.
        name: String,
        /// Its program, as the file names it.
        program: String,
        /// Why.
        reason: String,
    },
    /// The application could not be started.
    Exec {
        /// The program, as `/cmd` names it.
        program: String,
        /// Why.
        reason: String,
    },
}

/// How a heartbeat step failed.
#[derive(Debug)]
pub enum HeartbeatFailure {
    /// A system call failed.
    Sys(nix::Error),
    /// Reading or writing failed.
    Io(io::Error),
    /// Nothing within the time allowed (seconds).
    Timeout(u64),
    /// The parent closed without answering.
    Closed,
    /// The thread that sent it ended without a result (a panic).
    Thread,
    /// The parent answered another byte than the one expected.
    WrongByte {
        /// What came.
        got: u8,
        /// What should have.
        expected: u8,
    },
}

impl fmt::Display for HeartbeatFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeartbeatFailure::Sys(e) => f.write_str(e.desc()),
            HeartbeatFailure::Io(e) => write!(f, "{e}"),
            HeartbeatFailure::Timeout(s) => write!(f, "no answer within {s}s"),
            HeartbeatFailure::Closed => {
                f.write_str("the parent closed the connection without answering")
            }
            HeartbeatFailure::Thread => f.write_str("the heartbeat thread ended without a result"),
            HeartbeatFailure::WrongByte { got, expected } => write!(
                f,
                "the parent answered 0x{got:02X}, expected 0x{expected:02X}"
            ),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Mount {
                what,
                target,
                source,
            } => write!(
                f,
                "mounting {what} on {}: {}",
                target.display(),
                source.desc()
            ),
            Error::Sys { op, source } => write!(f, "{op}: {}", source.desc()),
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Malformed { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Module { path, source } => write!(
                f,
                "loading kernel module {}: {}",
                path.display(),
                source.desc()
            ),
            Error::NoNsm(e) => write!(
                f,
                "NSM: cannot open /dev/nsm ({e}): this is not a Nitro enclave, or the kernel \
                 lacks the NSM driver (CONFIG_NSM, or nsm.ko in the bootstrap ramdisk); \
                 refusing to start without trustworthy randomness"
            ),
            Error::Nsm(msg) => write!(f, "NSM: {msg}"),
            Error::HwRng { found } => write!(f, "NSM: the kernel's hardware RNG {found}"),
            Error::Heartbeat {
                step,
                parent: (cid, port),
                cause,
            } => write!(f, "heartbeat: {step} (vsock {cid}:{port}): {cause}"),
            Error::Interface { name, op, source } => write!(
                f,
                "bringing up the network interface {name}: {op}: {}",
                source.desc()
            ),
            Error::Process {
                name,
                program,
                reason,
            } => write!(f, "starting process {name}: {program}: {reason}"),
            Error::Exec { program, reason } => {
                write!(f, "starting the application: {program}: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Mount { source, .. }
            | Error::Sys { source, .. }
            | Error::Module { source, .. }
            | Error::Interface { source, .. } => Some(source),
            Error::Io { source, .. } | Error::NoNsm(source) => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for init's results.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Wraps a nix error with the operation that failed.
pub fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |source| Error::Sys { op, source }
}

/// Wraps an I/O error with the operation and the file.
pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_step_and_keep_the_cause() {
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
        let e = io("reading", "/cmd")(io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(
            e.to_string(),
            "reading /cmd: Input/output error (os error 5)"
        );
        let Some(cause) = std::error::Error::source(&e) else {
            panic!("no cause")
        };
        assert!(cause.to_string().contains("os error 5"));
        let e = Error::Malformed {
            path: "/cmd".into(),
            reason: "is empty".into(),
        };
        assert_eq!(e.to_string(), "/cmd: is empty");
        let e = Error::Heartbeat {
            step: "reply",
            parent: (3, 9000),
            cause: HeartbeatFailure::WrongByte {
                got: 0,
                expected: 0xB7,
            },
        };
        assert_eq!(
            e.to_string(),
            "heartbeat: reply (vsock 3:9000): the parent answered 0x00, expected 0xB7"
        );
        let e = Error::Heartbeat {
            step: "connect",
            parent: (3, 9000),
            cause: HeartbeatFailure::Sys(nix::Error::ETIMEDOUT),
        };
        assert_eq!(
            e.to_string(),
            "heartbeat: connect (vsock 3:9000): Connection timed out"
        );
        let e = Error::Heartbeat {
            step: "join",
            parent: (3, 9000),
            cause: HeartbeatFailure::Thread,
        };
        assert_eq!(
            e.to_string(),
            "heartbeat: join (vsock 3:9000): the heartbeat thread ended without a result"
        );
        let e = Error::NoNsm(io::Error::from_raw_os_error(libc::ENOENT));
        assert!(
            e.to_string()
                .starts_with("NSM: cannot open /dev/nsm (No such file or directory (os error 2))"),
            "{e}"
        );
        let e = Error::Exec {
            program: "/server".into(),
            reason: "no such executable".into(),
        };
        assert_eq!(
            e.to_string(),
            "starting the application: /server: no such executable"
        );
        let e = Error::Interface {
            name: "lo",
            op: "SIOCSIFFLAGS",
            source: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "bringing up the network interface lo: SIOCSIFFLAGS: Operation not permitted"
        );
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::Process {
            name: "web".into(),
            program: "httpd".into(),
            reason: "no such executable".into(),
        };
        assert_eq!(
            e.to_string(),
            "starting process web: httpd: no such executable"
        );
    }
}
