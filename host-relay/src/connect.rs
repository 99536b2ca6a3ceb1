//! Reaching a route's target: connect with a timeout, retry a bounded number of times while the
//! target is not up yet (an enclave still booting refuses or is absent), do the hybrid-vsock
//! `CONNECT` handshake, and write the PROXY v2 header. Runs on a short-lived thread per connection
//! so a slow target never stalls a worker's event loop.

use crate::addr::Addr;
use crate::sys;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How to reach targets.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Time for one attempt (TCP/vsock connect, or the whole hybrid-vsock handshake).
    pub timeout: Duration,
    /// Further attempts after the first, on errors that mean "not up yet".
    pub retries: u32,
    /// Pause before the first retry; doubled each time, at most 2 s.
    pub backoff: Duration,
}

/// Errors worth retrying: nothing listening yet, or no route to it yet.
fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ENOENT
                | libc::ECONNRESET
                | libc::ENODEV
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
        )
    ) || e.kind() == io::ErrorKind::TimedOut
        || e.kind() == io::ErrorKind::WouldBlock
        || e.kind() == io::ErrorKind::UnexpectedEof
}

/// One attempt: a connected, blocking socket.
fn attempt(target: &Addr, timeout: Duration) -> io::Result<OwnedFd> {
    match target {
        Addr::Tcp { host, port } => {
            let mut last = io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            );
            for a in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        return Ok(s.into());
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Addr::Unix(p) => UnixStream::connect(p).map(Into::into),
        Addr::Vsock { cid, port } => sys::vsock_connect(*cid, *port, timeout),
        Addr::VsockUds { path, port } => {
            let deadline = Instant::now() + timeout;
            let mut s = UnixStream::connect(path)?;
            s.set_write_timeout(Some(timeout))?;
            s.write_all(format!("CONNECT {port}\n").as_bytes())?;
            // Read the reply a byte at a time so no payload after the line is consumed.
            let mut line = Vec::with_capacity(32);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no reply to CONNECT",
                    ));
                }
                s.set_read_timeout(Some(left))?;
                let mut b = [0u8; 1];
                let n = match s.read(&mut b) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no reply to CONNECT",
                        ));
                    }
                    r => r?,
                };
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed before replying to CONNECT",
                    ));
                }
                if b[0] == b'\n' {
                    break;
                }
                line.push(b[0]);
                if line.len() > 64 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "reply to CONNECT too long",
                    ));
                }
            }
            if line == b"OK" || line.starts_with(b"OK ") {
                s.set_read_timeout(None)?;
                s.set_write_timeout(None)?;
                Ok(s.into())
            } else {
                let l = String::from_utf8_lossy(&line).into_owned();
                Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("CONNECT refused: {l:?}"),
                ))
            }
        }
    }
}

/// Connects to `target` per `policy`, then writes `preamble` (the PROXY header, may be empty).
/// Returns the socket, non-blocking.
pub fn connect(target: &Addr, policy: &Policy, preamble: &[u8]) -> io::Result<OwnedFd> {
    let mut pause = policy.backoff;
    let mut tries = 0;
    let fd = loop {
        match attempt(target, policy.timeout) {
            Ok(fd) => break fd,
            Err(e) if tries < policy.retries && retryable(&e) => {
                tries += 1;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    };
    let fd = if preamble.is_empty() {
        fd
    } else {
        // A blocking write of a few dozen bytes to a fresh connection.
        let mut f = std::fs::File::from(fd);
        f.write_all(preamble)?;
        OwnedFd::from(f)
    };
    sys::set_nonblocking(fd.as_fd(), true)?;
    Ok(fd)
}

/// The client and local addresses of an accepted TCP connection, for the PROXY header.
pub type TcpPair = Option<(SocketAddr, SocketAddr)>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn policy() -> Policy {
        Policy {
            timeout: Duration::from_millis(300),
            retries: 0,
            backoff: Duration::from_millis(10),
        }
    }

    #[test]
    fn hybrid_vsock_handshake_keeps_the_payload() {
        let dir = std::env::temp_dir().join(format!("hr-hs-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let l = UnixListener::bind(&dir).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 10];
            s.read_exact(&mut req).unwrap();
            assert_eq!(&req, b"CONNECT 5\n");
            s.write_all(b"OK 1073741824\npayload").unwrap();
        });
        let fd = connect(
            &Addr::VsockUds {
                path: dir.clone(),
                port: 5,
            },
            &policy(),
            b"",
        )
        .unwrap();
        t.join().unwrap();
        let mut s = UnixStream::from(fd);
        s.set_nonblocking(false).unwrap();
        let mut got = [0u8; 7];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"payload");
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn refused_handshake_and_retry_budget() {
        let dir = std::env::temp_dir().join(format!("hr-hs2-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let l = UnixListener::bind(&dir).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"NO\n").unwrap();
        });
        let e = connect(
            &Addr::VsockUds {
                path: dir.clone(),
                port: 5,
            },
            &policy(),
            b"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("CONNECT refused"), "{e}");
        t.join().unwrap();
        let _ = std::fs::remove_file(&dir);
        // Nothing at the path: retried, then the error.
        let p = Policy {
            retries: 2,
            ..policy()
        };
        let t0 = Instant::now();
        let e = connect(&Addr::Unix(dir), &p, b"").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }
}
