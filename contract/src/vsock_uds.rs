//! The hybrid-vsock handshake (Firecracker's convention, also spoken by vhost-device-vsock):
//! to reach port P of the guest, connect to the Unix socket of the vsock device, send
//! `CONNECT P\n`, and read one line back, `OK N\n` (N: the host-side port the device picked);
//! from then on the stream is the guest's accepted connection. Anything else is a refusal.
//!
//! The reply must be read without consuming a byte after its `\n` (those belong to the guest):
//! read it a byte at a time, at most [`MAX_REPLY`] bytes, and give the line to [`parse_reply`].

use std::fmt;

/// The longest reply line accepted, newline included.
pub const MAX_REPLY: usize = 32;

/// The request for guest port `port`.
pub fn connect_request(port: u32) -> String {
    format!("CONNECT {port}\n")
}

/// Why a reply is not `OK N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Longer than [`MAX_REPLY`] without a newline.
    TooLong,
    /// The device answered something else (the line, lossily decoded).
    Refused(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooLong => write!(f, "the reply to CONNECT is over {MAX_REPLY} bytes"),
            ReplyError::Refused(line) => write!(f, "CONNECT refused: {line:?}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Reads the reply line (without its `\n`): `OK` SP decimal port. Returns the port.
pub fn parse_reply(line: &[u8]) -> Result<u32, ReplyError> {
    if line.len() >= MAX_REPLY {
        return Err(ReplyError::TooLong);
    }
    let refused = || ReplyError::Refused(String::from_utf8_lossy(line).into_owned());
    let digits = line.strip_prefix(b"OK ").ok_or_else(refused)?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(refused());
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(n).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_and_a_port() {
        assert_eq!(connect_request(443), "CONNECT 443\n");
        assert_eq!(parse_reply(b"OK 1073741824"), Ok(1_073_741_824));
        for bad in [
            &b"OK"[..],
            b"OK ",
            b"OK x",
            b"OK 1 ",
            b"ok 1",
            b"NO",
            b"OK 4294967296",
            b"",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_reply(&[b'1'; 40]), Err(ReplyError::TooLong));
        assert_eq!(
            parse_reply(b"NO").unwrap_err().to_string(),
            "CONNECT refused: \"NO\""
        );
    }
}
