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

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(&self.0, buf)?)
    }
}

impl crate::conn::Stream for Socket {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Socket::shutdown_write(self)
    }

    fn unsent(&self) -> Option<usize> {
        let mut n: nix::libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int, the bytes in the socket's send queue
        // not yet taken by the peer, to the live `n`; the descriptor is ours and open.
        let r = unsafe { nix::libc::ioctl(self.0.as_raw_fd(), nix::libc::TIOCOUTQ, &raw mut n) };
        if r < 0 {
            return None; // not supported by this socket type or kernel
        }
        usize::try_from(n).ok()
    }
}

impl io::Write for Socket {
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

/// `SO_VM_SOCKETS_BUFFER_SIZE` of `<linux/vm_sockets.h>` (level `AF_VSOCK`): the receive
/// buffer, which is also the credit the peer may fill; accepted sockets inherit it.
const SO_VM_SOCKETS_BUFFER_SIZE: nix::libc::c_int = 0;

/// Sets a vsock socket's buffer size (bytes).
pub fn set_vsock_buffer_size(fd: BorrowedFd<'_>, bytes: u64) -> io::Result<()> {
    let len = nix::libc::socklen_t::try_from(std::mem::size_of::<u64>()).unwrap_or(8);
    // SAFETY: the option takes an unsigned long long, read from the live `bytes` for `len`
    // bytes; the descriptor is borrowed and open.
    let r = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            nix::libc::AF_VSOCK,
            SO_VM_SOCKETS_BUFFER_SIZE,
            (&raw const bytes).cast(),
            len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" {
    /// The process's environment: a NULL-terminated array of `NAME=VALUE` C strings (POSIX;
    /// glibc and musl both define it).
    static mut environ: *mut *mut nix::libc::c_char;
}

/// Overwrites with zeros, in place, the value of every `name=` entry of the process's
/// environment, so that neither `getenv` nor `/proc/self/environ` shows it any more. Returns
/// how many entries were wiped. Call it before any other thread exists.
pub fn wipe_env(name: &str) -> usize {
    let mut wiped = 0;
    // SAFETY: `environ` is the C library's environment array: NULL-terminated, each entry a
    // NUL-terminated string in writable memory (the initial block on the stack, or a copy made
    // by setenv). We read it through raw pointers without creating references to the static,
    // stop at the NULL entry, and write only bytes before each string's NUL. The caller
    // guarantees no other thread reads or changes the environment meanwhile.
    unsafe {
        let mut entry = std::ptr::addr_of!(environ).read();
        if entry.is_null() {
            return 0;
        }
        while !(*entry).is_null() {
            let s = *entry;
            let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
            let prefix = name.len() + 1;
            if bytes.len() >= prefix
                && bytes.get(..name.len()) == Some(name.as_bytes())
                && bytes.get(name.len()) == Some(&b'=')
            {
                let len = bytes.len();
                std::ptr::write_bytes(s.add(prefix), 0, len - prefix);
                wiped += 1;
            }
            entry = entry.add(1);
        }
    }
    wiped
}
