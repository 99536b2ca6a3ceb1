//! The Nitro boot heartbeat: the parent (nitro-cli, or our emulator harness) waits for the
//! enclave to connect to vsock CID 3 port 9000, send the byte 0xB7 and read it back. Every
//! step has a deadline, so a missing listener costs seconds, not a hang.

use crate::error::{Error, HeartbeatFailure, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, VsockAddr,
};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The parent instance's CID.
pub const PARENT_CID: u32 = 3;
/// The port nitro-cli listens on.
pub const PORT: u32 = 9000;
/// The heartbeat byte, sent and expected back.
pub const BYTE: u8 = 0xB7;
/// How long the whole exchange may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the parent's answer.
pub fn check_reply(reply: &[u8]) -> std::result::Result<(), HeartbeatFailure> {
    match reply {
        [BYTE] => Ok(()),
        [] => Err(HeartbeatFailure::Closed),
        [b, ..] => Err(HeartbeatFailure::WrongByte {
            got: *b,
            expected: BYTE,
        }),
    }
}

fn fail(step: &'static str, cause: HeartbeatFailure) -> Error {
    Error::Heartbeat {
        step,
        parent: (PARENT_CID, PORT),
        cause,
    }
}

fn wait(fd: &OwnedFd, flags: PollFlags, deadline: Instant, step: &'static str) -> Result {
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    match poll(&mut fds, timeout) {
        Ok(0) => Err(fail(step, HeartbeatFailure::Timeout(TIMEOUT.as_secs()))),
        Ok(_) => Ok(()),
        Err(e) => Err(fail(step, HeartbeatFailure::Sys(e))),
    }
}

/// Runs the exchange; returns how long it took.
pub fn send() -> Result<Duration> {
    let start = Instant::now();
    let deadline = start + TIMEOUT;
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| fail("socket", HeartbeatFailure::Sys(e)))?;
    match connect(fd.as_raw_fd(), &VsockAddr::new(PARENT_CID, PORT)) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(e) => return Err(fail("connect", HeartbeatFailure::Sys(e))),
    }
    wait(&fd, PollFlags::POLLOUT, deadline, "connect")?;
    match getsockopt(&fd, sockopt::SocketError) {
        Ok(0) => {}
        Ok(errno) => {
            return Err(fail(
                "connect",
                HeartbeatFailure::Sys(nix::Error::from_raw(errno)),
            ))
        }
        Err(e) => return Err(fail("connect", HeartbeatFailure::Sys(e))),
    }
    let mut stream = std::fs::File::from(fd);
    stream
        .write_all(&[BYTE])
        .map_err(|e| fail("send", HeartbeatFailure::Io(e)))?;
    let fd = OwnedFd::from(stream);
    wait(&fd, PollFlags::POLLIN, deadline, "reply")?;
    let mut reply = [0u8; 1];
    let n = std::fs::File::from(fd)
        .read(&mut reply)
        .map_err(|e| fail("reply", HeartbeatFailure::Io(e)))?;
    check_reply(reply.get(..n).unwrap_or_default()).map_err(|c| fail("reply", c))?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_echoed_byte_is_accepted() {
        assert!(check_reply(&[0xB7]).is_ok());
        assert!(matches!(check_reply(&[]), Err(HeartbeatFailure::Closed)));
        assert!(matches!(
            check_reply(&[0x00]),
            Err(HeartbeatFailure::WrongByte {
                got: 0,
                expected: BYTE
            })
        ));
    }
}
