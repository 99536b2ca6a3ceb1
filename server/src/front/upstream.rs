//! The application behind the front: its address (`tcp:HOST:PORT` with a numeric host, or
//! `unix:PATH`), connecting to it without blocking the worker, and each worker's pool of idle
//! keep-alive connections to it. A pooled connection the application closed meanwhile is
//! noticed when it is taken (a peek says EOF) and replaced by a fresh one.

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the application listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// `tcp:IP:PORT` (IPv6 in brackets). No name lookup: there is no DNS in an enclave.
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Tcp(a) => write!(f, "tcp:{a}"),
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromStr for UpstreamAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<UpstreamAddr, String> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            return match rest.parse::<SocketAddr>() {
                Ok(a) if a.port() != 0 => Ok(UpstreamAddr::Tcp(a)),
                Ok(_) => Err(format!("`{s}`: port 0 is not an address to connect to")),
                Err(_) => Err(format!(
                    "`{s}`: expected tcp:IP:PORT with a numeric IP (IPv6 in brackets): there is no name lookup in an enclave"
                )),
            };
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("`{s}`: empty path"));
            }
            return Ok(UpstreamAddr::Unix(PathBuf::from(path)));
        }
        Err(format!("`{s}`: expected tcp:IP:PORT or unix:PATH"))
    }
}

/// A connection to the application.
#[derive(Debug)]
pub enum UpSock {
    /// Over TCP (loopback, normally).
    Tcp(TcpStream),
    /// Over a Unix socket.
    Unix(UnixStream),
}

impl UpSock {
    /// Starts connecting to `addr` without blocking: the socket is writable once connected
    /// (then [`UpSock::connect_result`] says whether it worked).
    pub fn connect(addr: &UpstreamAddr) -> io::Result<UpSock> {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let started = |r: nix::Result<()>| match r {
            Ok(()) | Err(Errno::EINPROGRESS) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        };
        match addr {
            UpstreamAddr::Tcp(a) => {
                let family = if a.is_ipv4() {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                let fd = socket::socket(family, SockType::Stream, flags, None)?;
                let r = match a {
                    SocketAddr::V4(v4) => socket::connect(fd.as_raw_fd(), &SockaddrIn::from(*v4)),
                    SocketAddr::V6(v6) => socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(*v6)),
                };
                started(r)?;
                // Requests are written whole: no reason to wait for more before sending.
                let _ = socket::setsockopt(&fd, sockopt::TcpNoDelay, &true);
                Ok(UpSock::Tcp(TcpStream::from(fd)))
            }
            UpstreamAddr::Unix(p) => {
                let fd = socket::socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
                let ua = UnixAddr::new(p.as_path())?;
                match socket::connect(fd.as_raw_fd(), &ua) {
                    Ok(()) => {}
                    // A Unix socket's backlog is full: the application is not keeping up.
                    Err(Errno::EAGAIN) => return Err(io::Error::from(Errno::EAGAIN)),
                    r => started(r)?,
                }
                Ok(UpSock::Unix(UnixStream::from(fd)))
            }
        }
    }

    /// Whether a connect that has become writable succeeded (the socket's pending error).
    pub fn connect_result(&self) -> io::Result<()> {
        match socket::getsockopt(&self.as_fd(), sockopt::SocketError)? {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Whether an idle connection is still usable: nothing to read and no EOF (the
    /// application may close idle keep-alive connections whenever it likes).
    pub fn is_reusable(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            socket::recv(
                self.as_fd().as_raw_fd(),
                &mut b,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Err(Errno::EAGAIN)
        )
    }
}

impl AsFd for UpSock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            UpSock::Tcp(s) => s.as_fd(),
            UpSock::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for UpSock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.read(buf),
            UpSock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for UpSock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.write(buf),
            UpSock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A worker's idle connections to the application, most recently used first out.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Vec<UpSock>,
    max: usize,
}

impl Pool {
    /// A pool keeping at most `max` idle connections.
    pub fn new(max: usize) -> Pool {
        Pool {
            idle: Vec::new(),
            max,
        }
    }

    /// An idle connection still usable, if there is one (the dead ones are closed).
    pub fn take(&mut self) -> Option<UpSock> {
        while let Some(s) = self.idle.pop() {
            if s.is_reusable() {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `s` for a later request (closes it if the pool is full).
    pub fn put(&mut self, s: UpSock) {
        if self.idle.len() < self.max {
            self.idle.push(s);
        }
    }

    /// The most idle connections kept.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Idle connections held.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn addresses() {
        let a: UpstreamAddr = "tcp:127.0.0.1:8080".parse().unwrap();
        assert_eq!(a.to_string(), "tcp:127.0.0.1:8080");
        let a: UpstreamAddr = "unix:/run/app.sock".parse().unwrap();
        assert_eq!(a.to_string(), "unix:/run/app.sock");
        let e = |s: &str| s.parse::<UpstreamAddr>().unwrap_err();
        assert_eq!(e("tcp:localhost:80"), "`tcp:localhost:80`: expected tcp:IP:PORT with a numeric IP (IPv6 in brackets): there is no name lookup in an enclave");
        assert_eq!(
            e("tcp:127.0.0.1:0"),
            "`tcp:127.0.0.1:0`: port 0 is not an address to connect to"
        );
        assert_eq!(e("unix:"), "`unix:`: empty path");
        assert_eq!(
            e("http://a"),
            "`http://a`: expected tcp:IP:PORT or unix:PATH"
        );
    }

    #[test]
    fn the_pool_drops_what_the_application_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = UpstreamAddr::Tcp(l.local_addr().unwrap());
        let a = UpSock::connect(&addr).unwrap();
        let b = UpSock::connect(&addr).unwrap();
        let (sa, _) = l.accept().unwrap();
        let (_sb, _) = l.accept().unwrap();
        a.connect_result().unwrap();
        let mut pool = Pool::new(1);
        pool.put(a);
        pool.put(b); // over the limit: closed
        assert_eq!(pool.len(), 1);
        drop(sa); // the application closes the idle one
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(pool.take().is_none());
        assert!(pool.is_empty());
    }

    #[test]
    fn refused_shows_when_connected() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = UpstreamAddr::Tcp(l.local_addr().unwrap());
        drop(l);
        match UpSock::connect(&addr) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            Ok(s) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                assert!(s.connect_result().is_err());
            }
        }
    }
}
