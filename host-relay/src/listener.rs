//! The listening sockets of the routes: TCP, Unix and vsock, non-blocking, with a large
//! backlog, and what an accept gives.

use crate::addr::Addr;
use crate::sys;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

/// Listen backlog: bursts of new connections wait here while the workers accept (a full queue
/// drops SYNs, which clients retry only after a second). The kernel caps it at
/// `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    /// `tcp:`.
    Tcp(TcpListener),
    /// `unix:` (the path is removed on exit).
    Unix(UnixListener, PathBuf),
    /// `vsock:`.
    Vsock(OwnedFd),
}

/// An accepted client: its socket (non-blocking), its address for the log, and for TCP the
/// (client, local) addresses a PROXY v2 header carries.
#[derive(Debug)]
pub struct Accepted {
    /// The socket.
    pub socket: OwnedFd,
    /// The client, for the log.
    pub peer: String,
    /// TCP only: (client, local).
    pub tcp: Option<(SocketAddr, SocketAddr)>,
}

impl Listener {
    /// Binds `addr` (non-blocking). A stale Unix socket file (nothing accepts on it) is
    /// replaced.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        let l = match addr {
            Addr::Tcp { host, port } => Listener::Tcp(TcpListener::bind((host.as_str(), *port))?),
            Addr::Unix(p) => {
                if std::fs::symlink_metadata(p).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) && UnixStream::connect(p).is_err()
                {
                    std::fs::remove_file(p)?;
                }
                Listener::Unix(UnixListener::bind(p)?, p.clone())
            }
            Addr::Vsock { cid, port } => Listener::Vsock(sys::vsock_listen(*cid, *port, BACKLOG)?),
            Addr::VsockUds { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "vsock-uds cannot listen",
                ))
            }
        };
        match &l {
            Listener::Tcp(t) => {
                t.set_nonblocking(true)?;
                sys::relisten(t.as_fd(), BACKLOG)?;
            }
            Listener::Unix(u, _) => {
                u.set_nonblocking(true)?;
                sys::relisten(u.as_fd(), BACKLOG)?;
            }
            Listener::Vsock(_) => {}
        }
        Ok(l)
    }

    /// The bound address, as an address string (shows the port picked for port 0).
    pub fn describe(&self, configured: &Addr) -> String {
        match self {
            Listener::Tcp(t) => match t.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("tcp:[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("tcp:{a}"),
                Err(_) => configured.to_string(),
            },
            _ => configured.to_string(),
        }
    }

    /// The descriptor, for epoll.
    pub fn raw(&self) -> RawFd {
        match self {
            Listener::Tcp(t) => t.as_raw_fd(),
            Listener::Unix(u, _) => u.as_raw_fd(),
            Listener::Vsock(v) => v.as_raw_fd(),
        }
    }

    /// Accepts one client; WouldBlock when none is waiting.
    pub fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(t) => {
                let (s, peer) = t.accept()?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                let local = s.local_addr()?;
                Ok(Accepted {
                    socket: s.into(),
                    peer: peer.to_string(),
                    tcp: Some((peer, local)),
                })
            }
            Listener::Unix(u, _) => {
                let (s, _) = u.accept()?;
                s.set_nonblocking(true)?;
                Ok(Accepted {
                    socket: s.into(),
                    peer: "unix".into(),
                    tcp: None,
                })
            }
            Listener::Vsock(v) => {
                let (s, cid, port) = sys::vsock_accept(v.as_fd())?;
                Ok(Accepted {
                    socket: s,
                    peer: format!("vsock:{cid}:{port}"),
                    tcp: None,
                })
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_unix_socket_is_replaced_and_removed_on_drop() {
        let p = std::env::temp_dir().join(format!("hr-listener-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        drop(UnixListener::bind(&p).unwrap()); // std leaves the file behind
        assert!(p.exists());
        let l = Listener::bind(&Addr::Unix(p.clone())).unwrap();
        assert!(matches!(l.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        let _c = UnixStream::connect(&p).unwrap();
        assert_eq!(l.accept().unwrap().peer, "unix");
        drop(l);
        assert!(!p.exists());
        let e = Listener::bind(&Addr::VsockUds { path: p, port: 1 }).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
