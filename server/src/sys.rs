//! The only unsafe code of the crate: taking ownership of the descriptor `accept4` returns.
//! Everything else goes through nix's safe wrappers. Every wrapper returns `io::Error`.

use nix::sys::socket::{self, MsgFlags, SockFlag};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A connected, non-blocking stream socket (TCP or vsock).
#[derive(Debug)]
pub struct Socket(OwnedFd);

impl Socket {
    /// Accepts one pending connection from the non-blocking listener `listener`, itself
    /// non-blocking and close-on-exec. WouldBlock when there is none.
    pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Socket> {
        let fd = socket::accept4(
            listener.as_raw_fd(),
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )?;
        // SAFETY: accept4 succeeded, so `fd` is a new, open descriptor that nothing else owns;
        // the OwnedFd becomes its only owner and closes it once.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

impl Socket {
    /// Half-closes: the peer reads EOF after what was sent; we can still read.
    pub fn shutdown_write(&self) -> io::Result<()> {
        Ok(socket::shutdown(
            self.0.as_raw_fd(),
            socket::Shutdown::Write,
        )?)
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl io::Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(&self.0, buf)?)
    }
}

impl io::Write for &Socket {
    /// `send` with MSG_NOSIGNAL: a peer that went away gives EPIPE, never SIGPIPE.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(socket::send(
            self.0.as_raw_fd(),
            buf,
            MsgFlags::MSG_NOSIGNAL,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
