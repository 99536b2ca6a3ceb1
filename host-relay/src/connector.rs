//! Reaching a route's target without ever blocking a worker: a state machine per client that
//! the worker's event loop drives with the readiness of the one socket it is working on and
//! with timers (no thread per connection: the thread count stays the worker count under any
//! flood).
//!
//! ```text
//!   Waiting(retry time) ─► Connecting (non-blocking connect, EPOLLOUT, SO_ERROR)
//!        ▲                      │ vsock-uds: ─► Request (write CONNECT port) ─► Reply (OK port)
//!        │ retryable error      ▼
//!        └───────────────  Preamble (PROXY v2 header, if any) ─► connected
//! ```
//!
//! Each attempt (connect, and the hybrid-vsock handshake) has the connect timeout; errors that
//! mean "not up yet" (refused, absent, reset, unreachable, timed out, closed before replying)
//! are retried up to `--connect-retries` times, 100 ms apart at first, doubling, at most 2 s.
//! A TCP target named by a host name is tried at each address the main thread resolved.

use crate::addr::Addr;
use crate::sys::{self, Peer};
use contract::vsock_uds;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// How to reach targets.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Time for one attempt (TCP/vsock connect, or the whole hybrid-vsock handshake).
    pub timeout: Duration,
    /// Further attempts after the first, on errors that mean "not up yet".
    pub retries: u32,
    /// Pause before the first retry; doubled each time, at most [`MAX_PAUSE`].
    pub backoff: Duration,
}

/// The longest pause between attempts.
pub const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Errors worth retrying: nothing listening yet, or no route to it yet.
pub fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ENOENT
                | libc::ECONNRESET
                | libc::ENODEV
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ETIMEDOUT
                | libc::EAGAIN
        )
    ) || matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::UnexpectedEof
    )
}

/// Where an attempt is.
#[derive(Debug)]
enum Stage {
    /// Waiting to start the next attempt at this time.
    Waiting(Instant),
    /// Connect in progress to the `n`th address (0 when there is only one).
    Connecting { fd: OwnedFd, n: usize },
    /// Writing `CONNECT port\n` (this many bytes written).
    Request { fd: OwnedFd, sent: usize },
    /// Reading the `OK port\n` line (the bytes of it read so far).
    Reply { fd: OwnedFd, got: Vec<u8> },
    /// Writing the PROXY header (this many bytes written).
    Preamble { fd: OwnedFd, sent: usize },
    /// Handed over, or failed.
    Done,
}

/// What the worker does next with a connecting client.
#[derive(Debug)]
pub enum Next {
    /// Wait for this readiness of [`Connecting::socket`] (EPOLLIN or EPOLLOUT), or for the
    /// deadline, whichever comes first, then call [`Connecting::advance`].
    Wait {
        /// epoll event bits.
        events: u32,
        /// When to call anyway.
        deadline: Instant,
    },
    /// No socket now: call [`Connecting::advance`] at this time.
    Sleep(Instant),
    /// The target is reached (non-blocking; handshake and preamble done).
    Connected(OwnedFd),
    /// Given up: the last error.
    Failed(io::Error),
}

/// One client on its way to its target.
#[derive(Debug)]
pub struct Connecting {
    stage: Stage,
    /// The PROXY v2 header to send first (empty: none).
    preamble: Vec<u8>,
    /// The end of the current attempt.
    deadline: Instant,
    /// Retries made.
    tries: u32,
    pause: Duration,
    /// Sockets made so far: tells the worker when [`Connecting::socket`] is a new one (a
    /// descriptor number can come back after a close).
    sockets: u64,
}

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out: no {what} within the connect timeout"),
    )
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl Connecting {
    /// A client to connect; the first attempt starts at the first [`Connecting::advance`].
    pub fn new(preamble: Vec<u8>, policy: &Policy, now: Instant) -> Connecting {
        Connecting {
            stage: Stage::Waiting(now),
            preamble,
            deadline: now,
            tries: 0,
            pause: policy.backoff,
            sockets: 0,
        }
    }

    /// Which socket [`Connecting::socket`] is: a new number for every new socket.
    pub fn socket_number(&self) -> u64 {
        self.sockets
    }

    /// The socket of the attempt in progress, if any (the worker registers it with epoll).
    pub fn socket(&self) -> Option<BorrowedFd<'_>> {
        match &self.stage {
            Stage::Connecting { fd, .. }
            | Stage::Request { fd, .. }
            | Stage::Reply { fd, .. }
            | Stage::Preamble { fd, .. } => Some(fd.as_fd()),
            Stage::Waiting(_) | Stage::Done => None,
        }
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.tries
    }

    /// Moves on: `ready` says whether the socket reported the readiness asked for (false when
    /// called for a timer). `addresses` gives a TCP target's addresses as last resolved.
    pub fn advance(
        &mut self,
        target: &Addr,
        addresses: &dyn Fn() -> Result<Vec<SocketAddr>, String>,
        policy: &Policy,
        ready: bool,
        now: Instant,
    ) -> Next {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Waiting(at) if now < at => {
                self.stage = Stage::Waiting(at);
                Next::Sleep(at)
            }
            Stage::Waiting(_) => {
                self.deadline = now + policy.timeout;
                self.begin(target, addresses, 0, None, policy, now)
            }
            Stage::Connecting { fd, n } => {
                if !ready {
                    if now < self.deadline {
                        self.stage = Stage::Connecting { fd, n };
                        return self.wait(OUT);
                    }
                    return self.fail(timed_out("connection"), policy, now);
                }
                match sys::take_error(fd.as_fd()) {
                    Ok(()) => self.connected(target, fd, policy, now),
                    // The next address of a TCP target, if there is one.
                    Err(e) if matches!(target, Addr::Tcp { .. }) => {
                        self.begin(target, addresses, n + 1, Some(e), policy, now)
                    }
                    Err(e) => self.fail(e, policy, now),
                }
            }
            Stage::Request { fd, sent } => self.request(target, fd, sent, policy, now),
            Stage::Reply { fd, got } => self.reply(fd, got, policy, now),
            Stage::Preamble { fd, sent } => self.send_preamble(fd, sent, policy, now),
            Stage::Done => Next::Failed(io::Error::other("the connector has finished")),
        }
    }

    fn wait(&self, events: u32) -> Next {
        Next::Wait {
            events,
            deadline: self.deadline,
        }
    }

    /// Starts connecting to the target (for TCP, to its `n`th address and on; `last` is why
    /// the one before failed).
    fn begin(
        &mut self,
        target: &Addr,
        addresses: &dyn Fn() -> Result<Vec<SocketAddr>, String>,
        n: usize,
        last: Option<io::Error>,
        policy: &Policy,
        now: Instant,
    ) -> Next {
        let started = match target {
            Addr::Tcp { .. } => {
                let addrs = match addresses() {
                    Ok(a) => a,
                    Err(msg) => {
                        let e = io::Error::new(io::ErrorKind::NotFound, msg);
                        return self.fail(e, policy, now);
                    }
                };
                let mut last = last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the target has no address")
                });
                let mut started = None;
                for (i, a) in addrs.iter().enumerate().skip(n) {
                    match sys::connect_start(Peer::Ip(*a)) {
                        Ok(s) => {
                            started = Some((s, i));
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                started.ok_or(last)
            }
            Addr::Unix(p) => sys::connect_start(Peer::Unix(p)).map(|s| (s, 0)),
            Addr::Vsock { cid, port } => {
                sys::connect_start(Peer::Vsock(*cid, *port)).map(|s| (s, 0))
            }
            Addr::VsockUds { path, .. } => sys::connect_start(Peer::Unix(path)).map(|s| (s, 0)),
        };
        if started.is_ok() {
            self.sockets += 1;
        }
        match started {
            Ok(((fd, true), n)) => {
                self.stage = Stage::Connecting { fd, n };
                self.wait(OUT)
            }
            Ok(((fd, false), _)) => self.connected(target, fd, policy, now),
            Err(e) => self.fail(e, policy, now),
        }
    }

    /// The socket is connected: the handshake (hybrid vsock), then the preamble.
    fn connected(&mut self, target: &Addr, fd: OwnedFd, policy: &Policy, now: Instant) -> Next {
        match target {
            Addr::VsockUds { .. } => self.request(target, fd, 0, policy, now),
            _ => self.send_preamble(fd, 0, policy, now),
        }
    }

    fn request(
        &mut self,
        target: &Addr,
        fd: OwnedFd,
        mut sent: usize,
        policy: &Policy,
        now: Instant,
    ) -> Next {
        let Addr::VsockUds { port, .. } = target else {
            return self.send_preamble(fd, 0, policy, now);
        };
        let line = vsock_uds::connect_request(*port);
        while let Some(rest) = line.as_bytes().get(sent..).filter(|r| !r.is_empty()) {
            match sys::write(fd.as_fd(), rest) {
                Ok(n) => sent += n,
                Err(e) if would_block(&e) => {
                    if now >= self.deadline {
                        return self.fail(timed_out("room to send CONNECT"), policy, now);
                    }
                    self.stage = Stage::Request { fd, sent };
                    return self.wait(OUT);
                }
                Err(e) => return self.fail(e, policy, now),
            }
        }
        self.reply(fd, Vec::new(), policy, now)
    }

    /// Reads the reply line without taking a byte after its newline (those are the guest's):
    /// what is there is peeked, and only the line is consumed.
    fn reply(&mut self, fd: OwnedFd, mut got: Vec<u8>, policy: &Policy, now: Instant) -> Next {
        let mut buf = [0u8; vsock_uds::MAX_REPLY];
        let room = vsock_uds::MAX_REPLY.saturating_sub(got.len()).max(1);
        let n = match sys::peek(fd.as_fd(), buf.get_mut(..room).unwrap_or_default()) {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before replying to CONNECT",
                );
                return self.fail(e, policy, now);
            }
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                if now >= self.deadline {
                    return self.fail(timed_out("reply to CONNECT"), policy, now);
                }
                self.stage = Stage::Reply { fd, got };
                return self.wait(IN);
            }
            Err(e) => return self.fail(e, policy, now),
        };
        let peeked = buf.get(..n).unwrap_or_default();
        let take = peeked.iter().position(|&b| b == b'\n').map_or(n, |i| i + 1);
        let mut line = vec![0u8; take];
        match sys::read(fd.as_fd(), &mut line) {
            Ok(m) if m == take => {}
            Ok(_) => {
                return self.fail(
                    io::Error::other("short read of a peeked reply"),
                    policy,
                    now,
                )
            }
            Err(e) => return self.fail(e, policy, now),
        }
        got.extend_from_slice(&line);
        if got.last() != Some(&b'\n') {
            if got.len() >= vsock_uds::MAX_REPLY {
                let e = io::Error::new(io::ErrorKind::InvalidData, vsock_uds::ReplyError::TooLong);
                return Next::Failed(e);
            }
            // The rest of the line is still coming: everything so far is part of it.
            self.stage = Stage::Reply { fd, got };
            return self.wait(IN);
        }
        got.pop();
        match vsock_uds::parse_reply(&got) {
            Ok(_) => self.send_preamble(fd, 0, policy, now),
            Err(e) => Next::Failed(io::Error::new(io::ErrorKind::ConnectionRefused, e)),
        }
    }

    fn send_preamble(
        &mut self,
        fd: OwnedFd,
        mut sent: usize,
        policy: &Policy,
        now: Instant,
    ) -> Next {
        while let Some(rest) = self.preamble.get(sent..).filter(|r| !r.is_empty()) {
            match sys::write(fd.as_fd(), rest) {
                Ok(n) => sent += n,
                Err(e) if would_block(&e) => {
                    if now >= self.deadline {
                        return self.fail(timed_out("room to send the PROXY header"), policy, now);
                    }
                    self.stage = Stage::Preamble { fd, sent };
                    return self.wait(OUT);
                }
                Err(e) => return self.fail(e, policy, now),
            }
        }
        Next::Connected(fd)
    }

    /// This attempt failed: try again later if the error is worth it and retries are left.
    fn fail(&mut self, e: io::Error, policy: &Policy, now: Instant) -> Next {
        if self.tries < policy.retries && retryable(&e) {
            self.tries += 1;
            let at = now + self.pause;
            self.pause = (self.pause * 2).min(MAX_PAUSE);
            self.stage = Stage::Waiting(at);
            Next::Sleep(at)
        } else {
            self.stage = Stage::Done;
            Next::Failed(e)
        }
    }
}

#[cfg(test)]
mod tests;
