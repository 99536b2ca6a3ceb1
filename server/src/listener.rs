//! Listening sockets. TCP: one listener per worker on the same address with SO_REUSEPORT, so
//! the kernel spreads connections over the workers and no accept is contended. vsock: one
//! listener shared by all workers, each registering it with EPOLLEXCLUSIVE so a connection
//! wakes one worker, not all (the vsock transport of the enclave kernel does not balance
//! SO_REUSEPORT groups).

use crate::config::ListenAddr;
use crate::error::{Error, Result};
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    SockaddrStorage, VsockAddr,
};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

/// Pending connections per listener (the kernel caps it at `net.core.somaxconn`). nix refuses
/// a backlog above `libc::SOMAXCONN`, which is 4096 on glibc but 128 on musl (the enclave
/// build), so the value used is the smaller of the two.
const BACKLOG: i32 = 1024;

/// The buffer of vsock connections (SO_VM_SOCKETS_BUFFER_SIZE): Linux's own default, set
/// explicitly. Not less: the kernel caps what a vsock socket may have in flight at its own
/// buffer size too (net/vmw_vsock, `virtio_transport_tx_buf_alloc`, in 6.12 stable), while a
/// peer sends credit updates only once it has consumed most of its buffer (a Linux peer: all
/// but 64 KiB of 256 KiB; vhost-device-vsock: three quarters of 64 KiB), so with 32 KiB a
/// response larger than that stalled until the send timeout. What it lets a client make the
/// kernel hold is counted in the connection limit (`config::KERNEL_BYTES_PER_CONNECTION`).
pub const VSOCK_BUFFER: u64 = 256 * 1024;

/// The listeners for a number of workers, and the address actually bound (port 0 resolved).
#[derive(Debug)]
pub struct Bound {
    /// One entry per worker; the same descriptor repeated when shared.
    pub listeners: Vec<Arc<OwnedFd>>,
    /// Whether the workers share one listener (register it with EPOLLEXCLUSIVE).
    pub shared: bool,
    /// The address bound.
    pub addr: ListenAddr,
}

fn step<'a>(addr: &'a ListenAddr, step: &'static str) -> impl FnOnce(nix::Error) -> Error + 'a {
    move |e| Error::Listen {
        addr: addr.to_string(),
        step,
        source: e.into(),
    }
}

fn tcp_listener(addr: SocketAddr, shown: &ListenAddr) -> Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(step(shown, "socket"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(step(shown, "SO_REUSEADDR"))?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true).map_err(step(shown, "SO_REUSEPORT"))?;
    // Accepted sockets inherit it: responses leave at once, without waiting for an ACK.
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true).map_err(step(shown, "TCP_NODELAY"))?;
    match addr {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    }
    .map_err(step(shown, "bind"))?;
    let backlog =
        Backlog::new(BACKLOG.min(nix::libc::SOMAXCONN)).map_err(step(shown, "backlog"))?;
    socket::listen(&fd, backlog).map_err(step(shown, "listen"))?;
    Ok(fd)
}

fn local_addr(fd: &OwnedFd, shown: &ListenAddr) -> Result<SocketAddr> {
    let ss: SockaddrStorage =
        socket::getsockname(fd.as_raw_fd()).map_err(step(shown, "getsockname"))?;
    if let Some(a) = ss.as_sockaddr_in() {
        Ok(SocketAddr::V4((*a).into()))
    } else if let Some(a) = ss.as_sockaddr_in6() {
        Ok(SocketAddr::V6((*a).into()))
    } else {
        Err(step(shown, "getsockname")(nix::Error::EAFNOSUPPORT))
    }
}

/// Binds `addr` for `workers` workers (at least one).
pub fn bind(addr: ListenAddr, workers: usize) -> Result<Bound> {
    let workers = workers.max(1);
    match addr {
        ListenAddr::Tcp(sa) => {
            let first = tcp_listener(sa, &addr)?;
            // Port 0: the others must join the port the kernel chose for the first.
            let actual = local_addr(&first, &addr)?;
            let bound = ListenAddr::Tcp(actual);
            let mut listeners = vec![Arc::new(first)];
            for _ in 1..workers {
                listeners.push(Arc::new(tcp_listener(actual, &bound)?));
            }
            Ok(Bound {
                listeners,
                shared: false,
                addr: bound,
            })
        }
        ListenAddr::Vsock(port) => {
            let fd = socket::socket(
                AddressFamily::Vsock,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(step(&addr, "socket"))?;
            socket::bind(
                fd.as_raw_fd(),
                &VsockAddr::new(nix::libc::VMADDR_CID_ANY, port),
            )
            .map_err(step(&addr, "bind"))?;
            // What a client can make the kernel hold for a connection the server does not read
            // (the default is 256 KiB): the connection limit's arithmetic counts on it.
            crate::sys::set_vsock_buffer_size(fd.as_fd(), VSOCK_BUFFER).map_err(|e| {
                Error::Listen {
                    addr: addr.to_string(),
                    step: "SO_VM_SOCKETS_BUFFER_SIZE",
                    source: e,
                }
            })?;
            let backlog =
                Backlog::new(BACKLOG.min(nix::libc::SOMAXCONN)).map_err(step(&addr, "backlog"))?;
            socket::listen(&fd, backlog).map_err(step(&addr, "listen"))?;
            let fd = Arc::new(fd);
            Ok(Bound {
                listeners: vec![fd; workers],
                shared: true,
                addr,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_resolved_and_shared_by_all_workers() {
        let b = bind("tcp:127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ListenAddr::Tcp(a) = b.addr else {
            panic!("not tcp")
        };
        assert_ne!(a.port(), 0);
        assert_eq!(b.listeners.len(), 3);
        assert!(!b.shared);
        for l in &b.listeners {
            assert_eq!(local_addr(l, &b.addr).unwrap(), a);
        }
    }
}
