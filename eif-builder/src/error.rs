//! The crate's one error type, split by who is at fault: the input, the caller, or the system.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in this crate.
///
/// The variants say who is at fault, as rustls's errors do:
///
/// * [`Error::Malformed`]: the bytes we were given do not parse (a damaged or hostile file);
/// * [`Error::Unsupported`]: well-formed, but outside what this crate handles (another EIF
///   version, a curve other than P-384, a size past one of our limits);
/// * [`Error::Mismatch`]: a value we recomputed differs from the one recorded (a CRC, a signed
///   PCR, an input that changed while we read it);
/// * [`Error::Invalid`] and [`Error::List`]: the caller asked for something impossible (a
///   duplicate ramdisk path, a key that does not match its certificate, a bad manifest line);
/// * [`Error::Io`]: the operating system refused an operation.
///
/// Every message is one line and names the field or file concerned.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Input bytes that do not parse.
    Malformed {
        /// The structure or field concerned, e.g. `EIF header magic`.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Well-formed input that this crate does not handle.
    Unsupported {
        /// The structure or field concerned.
        what: String,
        /// What is not supported, and what would be.
        detail: String,
    },
    /// A recomputed value differs from the recorded one.
    Mismatch {
        /// The value concerned, e.g. `EIF CRC32`.
        what: String,
        /// The value recorded in the input (or required).
        expected: String,
        /// The value found or computed.
        actual: String,
    },
    /// A request that cannot be carried out as given.
    Invalid {
        /// The argument or item concerned, e.g. `cpio path "dev/../x"`.
        what: String,
        /// Why it is refused.
        detail: String,
    },
    /// A line of a ramdisk manifest (`cpio --list`) that cannot be used.
    List {
        /// The manifest file.
        file: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong, naming the offending part.
        detail: String,
    },
    /// An operating-system operation failed.
    Io {
        /// What we were doing, e.g. `cannot read`.
        action: &'static str,
        /// The file concerned, when there is one.
        path: Option<PathBuf>,
        /// The cause.
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Malformed {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn mismatch(
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Error::Mismatch {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: Option<&Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// Returns a closure turning an `io::Error` into [`Error::Io`] about `path`.
    pub(crate) fn io_at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl Fn(io::Error) -> Self + 'a {
        move |source| Error::io(action, Some(path), source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Error::Unsupported { what, detail } => write!(f, "unsupported {what}: {detail}"),
            Error::Mismatch {
                what,
                expected,
                actual,
            } => write!(f, "{what} mismatch: expected {expected}, found {actual}"),
            Error::Invalid { what, detail } => write!(f, "{what}: {detail}"),
            Error::List { file, line, detail } => {
                write!(f, "{}:{line}: {detail}", file.display())
            }
            Error::Io {
                action,
                path: Some(path),
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Error::Io {
                action,
                path: None,
                source,
            } => write!(f, "{action}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_texts() {
        let cases = [
            (
                Error::malformed(
                    "EIF header magic",
                    "found 7f454c46, expected 2e656966 (\".eif\")",
                ),
                "malformed EIF header magic: found 7f454c46, expected 2e656966 (\".eif\")",
            ),
            (
                Error::unsupported("EIF version", "3 (only version 4 is supported)"),
                "unsupported EIF version: 3 (only version 4 is supported)",
            ),
            (
                Error::mismatch("EIF CRC32", "0x00000001", "0x00000002"),
                "EIF CRC32 mismatch: expected 0x00000001, found 0x00000002",
            ),
            (
                Error::invalid("cpio path \"a/../b\"", "contains a `..` component"),
                "cpio path \"a/../b\": contains a `..` component",
            ),
            (
                Error::List {
                    file: PathBuf::from("boot.list"),
                    line: 3,
                    detail: "unknown directive `fiel`".into(),
                },
                "boot.list:3: unknown directive `fiel`",
            ),
            (
                Error::io(
                    "cannot open",
                    Some(Path::new("/nonexistent")),
                    io::Error::new(io::ErrorKind::NotFound, "gone"),
                ),
                "cannot open /nonexistent: gone",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
