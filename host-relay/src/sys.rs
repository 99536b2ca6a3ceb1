//! Every system call std does not wrap, and so every `unsafe` block of the crate.
//!
//! Each wrapper takes and returns owned or borrowed file descriptors, so no caller handles a raw
//! descriptor's lifetime, and turns `-1` into `io::Error::last_os_error()`.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Takes ownership of a descriptor a successful system call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful call that creates a descriptor; nothing else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(owned)
}

/// `epoll_ctl(op, fd, {events, data})`.
pub fn epoll_ctl(
    ep: BorrowedFd<'_>,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel validates fds.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &raw mut ev) }).map(drop)
}

/// `epoll_wait`; fills `events` and returns how many are valid. EINTR gives 0.
pub fn epoll_wait(
    ep: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the kernel writes at most `max` entries into `events`, which holds that many.
    let r = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
    match cvt(r) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// A non-blocking `eventfd` used to wake a worker.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) }).map(owned)
}

/// Adds 1 to an eventfd (wakes its reader).
pub fn eventfd_wake(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) already means "wake up".
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Resets an eventfd to 0.
pub fn eventfd_clear(fd: BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
}

/// A non-blocking pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// The capacity of a pipe in bytes (F_GETPIPE_SZ).
pub fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Asks for a pipe capacity of `bytes` (F_SETPIPE_SZ); the kernel rounds up to a power of two
/// of pages and refuses (EPERM) beyond /proc/sys/fs/pipe-max-size or the user's pipe quota.
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ takes an int.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, n) }).map(drop)
}

/// `splice(fd_in → fd_out, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`, from the current offsets.
pub fn splice(fd_in: BorrowedFd<'_>, fd_out: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets mean "use the file position" (required for pipes and sockets); no
    // memory of ours is passed.
    let r = unsafe {
        libc::splice(
            fd_in.as_raw_fd(),
            std::ptr::null_mut(),
            fd_out.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    cvt_size(r)
}

/// `read(2)` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `send(2)` with MSG_NOSIGNAL, falling back to `write(2)` on descriptors that are no socket.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    match cvt_size(r) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            // SAFETY: as above.
            cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
        }
        other => other,
    }
}

/// `shutdown(fd, SHUT_WR)`.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) }).map(drop)
}

/// Sets or clears O_NONBLOCK.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no argument.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL takes an int.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
}

fn sockaddr_vm(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value (and zeroes the padding).
    let mut a: libc::sockaddr_vm = unsafe { zeroed() };
    a.svm_family = libc::sa_family_t::try_from(libc::AF_VSOCK).unwrap_or_default();
    a.svm_cid = cid;
    a.svm_port = port;
    a
}

// 16 bytes: fits any socklen_t.
#[allow(clippy::cast_possible_truncation)]
const VM_LEN: libc::socklen_t = size_of::<libc::sockaddr_vm>() as libc::socklen_t;

fn vsock_socket() -> io::Result<OwnedFd> {
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
        .map(owned)
}

/// A listening AF_VSOCK stream socket on (cid, port), non-blocking.
pub fn vsock_listen(cid: u32, port: u32, backlog: i32) -> io::Result<OwnedFd> {
    let fd = vsock_socket()?;
    let a = sockaddr_vm(cid, port);
    // SAFETY: `a` is a valid sockaddr_vm of VM_LEN bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const a).cast(), VM_LEN) })?;
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    set_nonblocking(fd.as_fd(), true)?;
    Ok(fd)
}

/// `listen(fd, backlog)` again on a listening socket: raises std's fixed backlog of 128 (the
/// kernel caps it at net.core.somaxconn).
pub fn relisten(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: no pointer arguments.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// Accepts on a vsock listener: the connection (non-blocking) and the peer's (cid, port).
pub fn vsock_accept(l: BorrowedFd<'_>) -> io::Result<(OwnedFd, u32, u32)> {
    let mut a = sockaddr_vm(0, 0);
    let mut len = VM_LEN;
    // SAFETY: `a` and `len` are valid for writing; the kernel writes at most `len` bytes.
    let fd = cvt(unsafe {
        libc::accept4(
            l.as_raw_fd(),
            (&raw mut a).cast(),
            &raw mut len,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    })?;
    Ok((owned(fd), a.svm_cid, a.svm_port))
}

/// Where a non-blocking connect goes.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// An IPv4 or IPv6 TCP address.
    Ip(std::net::SocketAddr),
    /// A Unix stream socket.
    Unix(&'a std::path::Path),
    /// An AF_VSOCK (cid, port).
    Vsock(u32, u32),
}

fn sockaddr_un(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain old data; all-zero is valid (and NUL-terminates the path).
    let mut a: libc::sockaddr_un = unsafe { zeroed() };
    a.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).unwrap_or_default();
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= a.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, &s) in a.sun_path.iter_mut().zip(bytes) {
        *d = libc::c_char::from_ne_bytes([s]);
    }
    let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((a, libc::socklen_t::try_from(len).unwrap_or(0)))
}

/// Starts connecting a new non-blocking, close-on-exec stream socket to `peer`: `(socket,
/// true)` while the connect is in progress (wait for EPOLLOUT, then [`take_error`]), `(socket,
/// false)` once connected. Errors are the connect's own (ECONNREFUSED, ENOENT, …).
pub fn connect_start(peer: Peer<'_>) -> io::Result<(OwnedFd, bool)> {
    let family = match peer {
        Peer::Ip(std::net::SocketAddr::V4(_)) => libc::AF_INET,
        Peer::Ip(std::net::SocketAddr::V6(_)) => libc::AF_INET6,
        Peer::Unix(_) => libc::AF_UNIX,
        Peer::Vsock(..) => libc::AF_VSOCK,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: no pointer arguments.
    let fd = owned(cvt(unsafe { libc::socket(family, kind, 0) })?);
    let r = match peer {
        Peer::Ip(std::net::SocketAddr::V4(v4)) => {
            // SAFETY: plain old data; all-zero is valid.
            let mut a: libc::sockaddr_in = unsafe { zeroed() };
            a.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default();
            a.sin_port = v4.port().to_be();
            a.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap_or(0);
            // SAFETY: `a` is a valid sockaddr_in of `len` bytes.
            unsafe { libc::connect(fd.as_raw_fd(), (&raw const a).cast(), len) }
        }
        Peer::Ip(std::net::SocketAddr::V6(v6)) => {
            // SAFETY: plain old data; all-zero is valid.
            let mut a: libc::sockaddr_in6 = unsafe { zeroed() };
            a.sin6_family = libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default();
            a.sin6_port = v6.port().to_be();
            a.sin6_addr.s6_addr = v6.ip().octets();
            a.sin6_flowinfo = v6.flowinfo();
            a.sin6_scope_id = v6.scope_id();
            let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in6>()).unwrap_or(0);
            // SAFETY: `a` is a valid sockaddr_in6 of `len` bytes.
            unsafe { libc::connect(fd.as_raw_fd(), (&raw const a).cast(), len) }
        }
        Peer::Unix(path) => {
            let (a, len) = sockaddr_un(path)?;
            // SAFETY: `a` is a valid sockaddr_un of `len` bytes.
            unsafe { libc::connect(fd.as_raw_fd(), (&raw const a).cast(), len) }
        }
        Peer::Vsock(cid, port) => {
            let a = sockaddr_vm(cid, port);
            // SAFETY: `a` is a valid sockaddr_vm of VM_LEN bytes.
            unsafe { libc::connect(fd.as_raw_fd(), (&raw const a).cast(), VM_LEN) }
        }
    };
    if r == 0 {
        return Ok((fd, false));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) => Ok((fd, true)),
        _ => Err(e),
    }
}

/// The pending error of a socket (SO_ERROR, which clears it): `Err` if there was one.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `err` and `len` are valid for writing an int.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &raw mut len,
        )
    })?;
    if err == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(err))
    }
}

/// `recv(MSG_PEEK)`: what is there, left in the socket.
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    cvt_size(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    })
}

/// Waits up to `timeout` for `events` (EPOLLIN/EPOLLOUT bits, which are poll's too) on one
/// descriptor: whether it became ready.
pub fn poll_one(fd: BorrowedFd<'_>, events: u32, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::c_short::try_from(events).unwrap_or(0),
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let n = cvt(unsafe { libc::poll(&raw mut p, 1, ms) })?;
    Ok(n > 0)
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it spawns later).
pub fn block_term_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain old data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { zeroed() };
    // SAFETY: `set` is a valid sigset_t for these calls.
    unsafe {
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        libc::sigaddset(&raw mut set, libc::SIGINT);
    }
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(set)
}

/// Waits up to `timeout` for one of the signals in `set` (blocked beforehand): its number, or
/// `None` when the time ran out (or a signal outside the set interrupted the wait).
pub fn sigtimedwait(set: &libc::sigset_t, timeout: Duration) -> io::Result<Option<libc::c_int>> {
    // Through a zeroed timespec's own field types: musl's libc crate deprecates naming
    // `time_t` (its width is changing there).
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    ts.tv_sec = timeout.as_secs().try_into().unwrap_or(i32::MAX.into());
    ts.tv_nsec = timeout.subsec_nanos().into();
    // SAFETY: `set` is an initialised sigset_t, `ts` a valid timespec; no siginfo is wanted.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &raw const ts) };
    if r >= 0 {
        return Ok(Some(r));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;

    #[test]
    fn splice_moves_socket_bytes_through_a_pipe() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        let (r, w) = pipe().unwrap();
        assert!(pipe_size(r.as_fd()).unwrap() >= 4096);
        a.write_all(b"hello").unwrap();
        assert_eq!(splice(b.as_fd(), w.as_fd(), 4096).unwrap(), 5);
        assert_eq!(splice(r.as_fd(), c.as_fd(), 5).unwrap(), 5);
        let mut buf = [0u8; 5];
        std::io::Read::read_exact(&mut d, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        set_nonblocking(b.as_fd(), true).unwrap();
        let e = splice(b.as_fd(), w.as_fd(), 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
