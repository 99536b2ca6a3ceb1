//! One relayed connection: two sockets and, for each direction, a buffer between them.
//!
//! A direction moves bytes source → buffer → sink. In splice mode the buffer is a pipe and the bytes
//! never enter user space (`splice(2)` socket → pipe → socket). In copy mode (AF_VSOCK on kernels
//! whose splice refuses it with EINVAL, or `--no-splice`) it is a byte buffer filled by `read` and
//! emptied by `send`. Buffers are taken from the worker's [`Pool`] when bytes arrive and returned
//! once empty, so an idle connection holds none.
//!
//! States of a direction: open → (source EOF) draining → (buffer empty) `shutdown(sink, SHUT_WR)`
//! → done. The connection is done when both directions are; any other error closes both sockets.
//! Interest, computed by [`Conn::interest`], is the back-pressure: a source is watched for EPOLLIN
//! only while its buffer has room, a sink for EPOLLOUT only while its buffer holds bytes.
//!
//! Half-dead pairs: once the target has ended its side and the client has been sent EOF, the
//! client has had everything; if it does not close its side within [`Conn::half_dead`]'s
//! linger (`--linger`, 5 s by default), the worker closes both, instead of holding the
//! sockets and the route's slot until the idle timeout. A client that half-closes first (sends
//! a request, then EOF, and waits for a long answer) is not touched by this.

use crate::sys;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Size of a copy-mode buffer.
pub const COPY_BUF: usize = 64 * 1024;
/// The pipe capacity asked for (the kernel's default is 64 KiB). Pipes are only held while bytes
/// are in flight, so idle connections cost none of it.
pub const PIPE_SIZE: usize = 512 * 1024;
/// Empty buffers of each kind a worker keeps for reuse.
pub const POOL_MAX: usize = 64;
/// Source reads + sink writes per direction before yielding to other connections; level-triggered
/// epoll brings us back.
const BUDGET: usize = 32;

/// A pipe used as a splice buffer.
#[derive(Debug)]
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

/// Empty pipes and copy buffers ready for reuse (per worker thread).
#[derive(Debug, Default)]
pub struct Pool {
    pipes: Vec<Pipe>,
    mems: Vec<Box<[u8]>>,
    /// Pipes created so far (for tests and metrics).
    pub pipes_created: usize,
}

impl Pool {
    fn pipe(&mut self) -> io::Result<Pipe> {
        if let Some(p) = self.pipes.pop() {
            return Ok(p);
        }
        let (r, w) = sys::pipe()?;
        // Larger pipes mean fewer splice calls per byte; without the right to grow (pipe quota),
        // the default 64 KiB works too.
        let _ = sys::set_pipe_size(w.as_fd(), PIPE_SIZE);
        let cap = sys::pipe_size(r.as_fd())?.max(4096);
        self.pipes_created += 1;
        Ok(Pipe { r, w, cap })
    }
    fn mem(&mut self) -> Box<[u8]> {
        self.mems
            .pop()
            .unwrap_or_else(|| vec![0u8; COPY_BUF].into_boxed_slice())
    }
    fn put(&mut self, b: Buffer) {
        match b {
            Buffer::Pipe(p) if self.pipes.len() < POOL_MAX => self.pipes.push(p),
            Buffer::Mem(m) if self.mems.len() < POOL_MAX => self.mems.push(m),
            _ => {}
        }
    }
    /// Pipes currently pooled.
    #[cfg(test)]
    pub fn pooled_pipes(&self) -> usize {
        self.pipes.len()
    }
}

#[derive(Debug)]
enum Buffer {
    Pipe(Pipe),
    Mem(Box<[u8]>),
}

/// One of the two sockets of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The accepted client.
    Client,
    /// The route's target.
    Target,
}

impl Side {
    /// `client` or `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Target => "target",
        }
    }

    /// The index in [`Conn::fds`] (and of the direction this side is the source of).
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Target => 1,
        }
    }

    /// The side of an index (0: client).
    pub fn of(i: usize) -> Side {
        if i == 0 {
            Side::Client
        } else {
            Side::Target
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Target,
            Side::Target => Side::Client,
        }
    }
}

/// Which operation failed, for the close reason.
#[derive(Debug)]
pub enum Failure {
    /// Reading from the source (e.g. ECONNRESET).
    Read(io::Error),
    /// Writing to the sink (EPIPE, ECONNRESET).
    Write(io::Error),
    /// Creating a pipe (EMFILE, ENFILE).
    Pipe(io::Error),
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Dir {
    buf: Option<Buffer>,
    /// Bytes in the buffer (in a copy buffer: `start..start + pending`).
    pending: usize,
    start: usize,
    /// Copy mode instead of splice.
    pub copy: bool,
    /// The source gave EOF.
    pub eof: bool,
    /// The last fill found the source empty or the pipe full while bytes were pending; wait for
    /// the sink before reading again.
    stalled: bool,
    /// `shutdown(sink, SHUT_WR)` done.
    pub shut: bool,
    /// Bytes delivered to the sink.
    pub bytes: u64,
    /// Splice was refused (EINVAL) and this direction switched to copy mode.
    pub fell_back: bool,
}

fn is(e: &io::Error, code: i32) -> bool {
    e.raw_os_error() == Some(code)
}

impl Dir {
    fn cap(&self) -> usize {
        match &self.buf {
            Some(Buffer::Pipe(p)) => p.cap,
            Some(Buffer::Mem(m)) => m.len(),
            None => usize::MAX,
        }
    }

    /// The source may be read (EPOLLIN wanted).
    pub fn wants_read(&self) -> bool {
        !self.eof && !self.stalled && self.pending < self.cap()
    }

    /// Bytes wait for the sink (EPOLLOUT wanted).
    pub fn wants_write(&self) -> bool {
        self.pending > 0
    }

    /// Both ends finished.
    pub fn done(&self) -> bool {
        self.eof && self.pending == 0 && self.shut
    }

    /// Switches to copy mode, moving bytes already in the pipe into a copy buffer.
    fn fall_back(&mut self, pool: &mut Pool) -> io::Result<()> {
        self.copy = true;
        self.fell_back = true;
        if let Some(Buffer::Pipe(p)) = self.buf.take() {
            let mut m = vec![0u8; self.pending.max(COPY_BUF)].into_boxed_slice();
            let mut got = 0;
            while got < self.pending {
                match sys::read(p.r.as_fd(), &mut m[got..self.pending])? {
                    0 => break,
                    n => got += n,
                }
            }
            self.pending = got;
            self.start = 0;
            self.buf = Some(Buffer::Mem(m));
            pool.put(Buffer::Pipe(p));
        }
        Ok(())
    }

    /// Sends buffered bytes to `dst`. Ok(true) if any moved.
    fn drain(&mut self, dst: BorrowedFd<'_>, pool: &mut Pool) -> Result<bool, Failure> {
        let r = match &self.buf {
            Some(Buffer::Pipe(p)) => sys::splice(p.r.as_fd(), dst, self.pending),
            Some(Buffer::Mem(m)) => sys::write(dst, &m[self.start..self.start + self.pending]),
            None => return Ok(false),
        };
        match r {
            Ok(0) => Ok(false),
            Ok(n) => {
                let n = n.min(self.pending);
                self.pending -= n;
                self.start += n;
                self.bytes += n as u64;
                self.stalled = false;
                if self.pending == 0 {
                    self.start = 0;
                    if let Some(b) = self.buf.take() {
                        pool.put(b);
                    }
                }
                Ok(true)
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(false)
            }
            Err(e) if is(&e, libc::EINVAL) && !self.copy => {
                self.fall_back(pool).map_err(Failure::Write)?;
                Ok(true)
            }
            Err(e) => Err(Failure::Write(e)),
        }
    }

    /// Reads from `src` into the buffer. Ok(true) if anything happened (bytes or EOF).
    fn fill(&mut self, src: BorrowedFd<'_>, pool: &mut Pool) -> Result<bool, Failure> {
        if self.buf.is_none() {
            self.buf = Some(if self.copy {
                Buffer::Mem(pool.mem())
            } else {
                Buffer::Pipe(pool.pipe().map_err(Failure::Pipe)?)
            });
        }
        let room = self.cap() - self.pending;
        let r = match &mut self.buf {
            Some(Buffer::Pipe(p)) => sys::splice(src, p.w.as_fd(), room),
            Some(Buffer::Mem(m)) => {
                if self.pending == 0 {
                    self.start = 0;
                } else if self.start + self.pending == m.len() {
                    m.copy_within(self.start..self.start + self.pending, 0);
                    self.start = 0;
                }
                let end = self.start + self.pending;
                sys::read(src, &mut m[end..])
            }
            None => return Ok(false),
        };
        let out = match r {
            Ok(0) => {
                self.eof = true;
                Ok(true)
            }
            Ok(n) => {
                self.pending += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stalled = self.pending > 0;
                Ok(false)
            }
            Err(e) if is(&e, libc::EINVAL) && !self.copy => {
                self.fall_back(pool).map_err(Failure::Read)?;
                Ok(true)
            }
            Err(e) => Err(Failure::Read(e)),
        };
        if self.pending == 0 {
            if let Some(b) = self.buf.take() {
                pool.put(b);
            }
        }
        out
    }

    /// Moves what can be moved now from `src` to `dst`, within a budget. Ok(true) if progress.
    pub fn pump(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        pool: &mut Pool,
    ) -> Result<bool, Failure> {
        let mut any = false;
        // A short read means the source was empty a moment ago: another read now would most
        // likely be a wasted EAGAIN, and level-triggered epoll reports it again if not.
        let mut dry = false;
        for _ in 0..BUDGET {
            let mut moved = false;
            if self.pending > 0 {
                moved |= self.drain(dst, pool)?;
            }
            if !dry && self.wants_read() && self.pending < self.cap() {
                let room = self.cap().saturating_sub(self.pending);
                let before = self.pending;
                moved |= self.fill(src, pool)?;
                dry = self.pending > before && self.pending - before < room.min(COPY_BUF);
            }
            if self.eof && self.pending == 0 && !self.shut {
                self.shut = true;
                moved = true;
                // ENOTCONN: the sink is already gone; its own events will tell.
                let _ = sys::shutdown_write(dst);
            }
            any |= moved;
            if !moved {
                break;
            }
        }
        Ok(any)
    }
}

/// Why a connection ended: the `reason=` of its `close` log line.
#[derive(Debug)]
pub enum Close {
    /// Both directions reached EOF and were shut down.
    Eof,
    /// A socket failed or was reset.
    Failed {
        /// Which one.
        side: Side,
        /// What failed (`read`, `write`, `pipe`, `epoll_ctl`, `socket`).
        op: &'static str,
        /// The cause.
        error: std::io::Error,
    },
    /// No byte moved for the idle timeout.
    Idle,
    /// Still open when the shutdown drain time ran out.
    Drain,
    /// The target had ended and the client did not close within the linger.
    HalfDead,
    /// The target could not be reached (after the retries).
    Unreachable {
        /// The target, as configured.
        target: String,
        /// The last error.
        error: std::io::Error,
    },
}

impl Close {
    /// Whether it counts as an error in the metrics.
    pub fn is_error(&self) -> bool {
        matches!(self, Close::Failed { .. } | Close::Unreachable { .. })
    }
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Eof => f.write_str("eof"),
            Close::Failed { side, op, error } => {
                write!(f, "error({} {op}: {error})", side.as_str())
            }
            Close::Idle => f.write_str("idle-timeout"),
            Close::Drain => f.write_str("drain-timeout"),
            Close::HalfDead => f.write_str("target-closed-client-lingered"),
            Close::Unreachable { target, error } => write!(f, "connect-failed({target}: {error})"),
        }
    }
}

/// A relayed connection: side 0 is the client, side 1 the target; `dirs[0]` is client → target.
#[derive(Debug)]
pub struct Conn {
    /// The two sockets.
    pub fds: [OwnedFd; 2],
    /// `dirs[i]` reads `fds[i]` and writes `fds[1 - i]`.
    pub dirs: [Dir; 2],
    /// The epoll events each socket is registered for (`None`: removed after EPOLLHUP).
    pub interest: [Option<u32>; 2],
    /// When a byte last moved.
    pub active: Instant,
    /// When the target's direction finished while the client's had not (see the module).
    pub half_dead_since: Option<Instant>,
}

impl Conn {
    /// A connection between `client` and `target`; `copy` starts both directions in copy mode.
    pub fn new(client: OwnedFd, target: OwnedFd, copy: bool) -> Conn {
        let dir = || Dir {
            copy,
            ..Dir::default()
        };
        Conn {
            fds: [client, target],
            dirs: [dir(), dir()],
            interest: [Some(0), Some(0)],
            active: Instant::now(),
            half_dead_since: None,
        }
    }

    /// Runs both directions until neither can move; `Err` (the failing socket's side and what
    /// failed) closes the connection.
    pub fn pump(&mut self, pool: &mut Pool) -> Result<bool, Close> {
        self.pump_dirs([true, true], pool)
    }

    /// Whether the client has outlived the target by `linger` (the pair is half dead).
    pub fn half_dead(&self, linger: Duration, now: Instant) -> bool {
        self.half_dead_since
            .is_some_and(|t| now.duration_since(t) >= linger)
    }

    /// Like [`Conn::pump`], for the directions selected (`which[0]`: client → target).
    pub fn pump_dirs(&mut self, which: [bool; 2], pool: &mut Pool) -> Result<bool, Close> {
        let [a, b] = &self.fds;
        // Direction `d` reads side `d` and writes the other.
        let side = |d: usize| {
            move |f: Failure| {
                let src = Side::of(d);
                let (side, op, error) = match f {
                    Failure::Read(e) => (src, "read", e),
                    Failure::Write(e) => (src.other(), "write", e),
                    Failure::Pipe(e) => (src, "pipe", e),
                };
                Close::Failed { side, op, error }
            }
        };
        let mut up = false;
        let mut down = false;
        if which[0] {
            up = self.dirs[0]
                .pump(a.as_fd(), b.as_fd(), pool)
                .map_err(side(0))?;
        }
        if which[1] {
            down = self.dirs[1]
                .pump(b.as_fd(), a.as_fd(), pool)
                .map_err(side(1))?;
        }
        let now = Instant::now();
        if up || down {
            self.active = now;
        }
        if self.half_dead_since.is_none() && self.dirs[1].done() && !self.dirs[0].done() {
            self.half_dead_since = Some(now);
        }
        Ok(up || down)
    }

    /// The epoll events side `s` should be registered for.
    pub fn interest(&self, s: usize) -> u32 {
        let mut ev = 0;
        if self.dirs[s].wants_read() {
            ev |= libc::EPOLLIN as u32;
        }
        if self.dirs[1 - s].wants_write() {
            ev |= libc::EPOLLOUT as u32;
        }
        ev
    }

    /// Both directions finished.
    pub fn done(&self) -> bool {
        self.dirs[0].done() && self.dirs[1].done()
    }

    /// Whether either direction uses copy mode.
    pub fn copying(&self) -> bool {
        self.dirs[0].copy || self.dirs[1].copy
    }

    /// Returns empty buffers to the pool (the connection is closing).
    pub fn release(&mut self, pool: &mut Pool) {
        for d in &mut self.dirs {
            if d.pending == 0 {
                if let Some(b) = d.buf.take() {
                    pool.put(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// client_app <-> (client side | relay | target side) <-> target_app.
    fn setup(copy: bool) -> (UnixStream, UnixStream, Conn) {
        let (app, c) = UnixStream::pair().unwrap();
        let (t, tapp) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        t.set_nonblocking(true).unwrap();
        let conn = Conn::new(c.into(), t.into(), copy);
        (app, tapp, conn)
    }

    fn transfer(copy: bool) {
        let (mut app, mut tapp, mut conn) = setup(copy);
        let mut pool = Pool::default();
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i * 7 + i / 251).to_le_bytes()[0])
            .collect();
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || {
                app.write_all(&data).unwrap();
                app.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                app.read_to_end(&mut back).unwrap();
                back
            })
        };
        let mut got = Vec::new();
        tapp.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 7000];
        let mut sent_back = false;
        while !conn.done() {
            conn.pump(&mut pool).unwrap();
            // A slow reader: at most 7000 bytes per round, so the pipe fills (back-pressure).
            match tapp.read(&mut buf) {
                Ok(0) if !sent_back => {
                    tapp.set_nonblocking(false).unwrap();
                    tapp.write_all(b"thanks").unwrap();
                    tapp.shutdown(std::net::Shutdown::Write).unwrap();
                    sent_back = true;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::yield_now(),
            }
            if conn.dirs[0].pending > 0 && !conn.dirs[0].wants_write() {
                panic!("bytes pending but no EPOLLOUT wanted");
            }
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data);
        assert_eq!(writer.join().unwrap(), b"thanks");
        assert_eq!(conn.dirs[0].bytes, 1_000_000);
        assert_eq!(conn.dirs[1].bytes, 6);
        assert_eq!(conn.copying(), copy);
        conn.release(&mut pool);
        // Buffers came back to the pool; no more pipes than two directions need.
        assert!(pool.pipes_created <= 2);
        assert_eq!(pool.pooled_pipes(), pool.pipes_created);
    }

    #[test]
    fn splice_transfer_with_back_pressure_and_half_close() {
        transfer(false);
    }

    #[test]
    fn copy_transfer_with_back_pressure_and_half_close() {
        transfer(true);
    }

    #[test]
    fn full_sink_stops_reading_the_source() {
        let (mut app, _tapp, mut conn) = setup(false);
        let mut pool = Pool::default();
        app.set_nonblocking(true).unwrap();
        let chunk = vec![1u8; 65536];
        // Nobody reads the target: eventually the relay must stop wanting to read the client.
        for _ in 0..200 {
            let _ = app.write(&chunk);
            conn.pump(&mut pool).unwrap();
            if conn.interest(0) & libc::EPOLLIN as u32 == 0 {
                assert!(conn.interest(1) & libc::EPOLLOUT as u32 != 0);
                return;
            }
        }
        panic!("source still watched although the sink is full");
    }

    #[test]
    fn reset_sink_is_an_error() {
        let (mut app, tapp, mut conn) = setup(false);
        let mut pool = Pool::default();
        drop(tapp);
        app.write_all(b"x").unwrap();
        let Err(close) = conn.pump(&mut pool) else {
            panic!("no error")
        };
        assert!(
            matches!(
                close,
                Close::Failed {
                    side: Side::Target,
                    op: "write",
                    ..
                }
            ),
            "{close}"
        );
        assert!(
            close.to_string().starts_with("error(target write: "),
            "{close}"
        );
    }

    #[test]
    fn a_client_that_outlives_its_target_is_half_dead_and_one_that_half_closes_is_not() {
        let (mut app, mut tapp, mut conn) = setup(false);
        let mut pool = Pool::default();
        tapp.write_all(b"bye").unwrap();
        drop(tapp); // the target ends its side and closes
        for _ in 0..10 {
            conn.pump(&mut pool).unwrap();
        }
        let mut got = Vec::new();
        app.read_to_end(&mut got).unwrap(); // the client got everything, then EOF
        assert_eq!(got, b"bye");
        assert!(conn.dirs[1].done() && !conn.dirs[0].done());
        let t = conn.half_dead_since.expect("half dead");
        assert!(!conn.half_dead(Duration::from_secs(5), t + Duration::from_secs(4)));
        assert!(conn.half_dead(Duration::from_secs(5), t + Duration::from_secs(5)));

        let (app, _tapp, mut conn) = setup(false);
        app.shutdown(std::net::Shutdown::Write).unwrap(); // a request sent, now waiting
        conn.pump(&mut pool).unwrap();
        assert!(conn.dirs[0].done());
        assert_eq!(conn.half_dead_since, None);
    }

    #[test]
    fn close_reasons_read_well_in_the_log() {
        let e = || std::io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Close::Eof.to_string(), "eof");
        assert_eq!(
            Close::Failed {
                side: Side::Client,
                op: "read",
                error: e()
            }
            .to_string(),
            "error(client read: Connection reset by peer (os error 104))"
        );
        assert_eq!(Close::HalfDead.to_string(), "target-closed-client-lingered");
        assert_eq!(
            Close::Unreachable {
                target: "vsock:16:443".into(),
                error: e()
            }
            .to_string(),
            "connect-failed(vsock:16:443: Connection reset by peer (os error 104))"
        );
        assert!(Close::Unreachable {
            target: String::new(),
            error: e()
        }
        .is_error());
        assert!(!Close::Idle.is_error());
    }

    #[test]
    fn splice_refused_falls_back_to_copy() {
        // An eventfd has no splice_read: splice from it fails with EINVAL, as AF_VSOCK does on
        // older kernels. The direction must switch to read/write and deliver the bytes.
        let src = sys::eventfd().unwrap();
        sys::eventfd_wake(src.as_fd());
        let (sink, mut out) = UnixStream::pair().unwrap();
        let (r, w) = sys::pipe().unwrap();
        let e = sys::splice(src.as_fd(), w.as_fd(), 4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        drop((r, w));
        let mut pool = Pool::default();
        let mut d = Dir::default();
        assert!(d.pump(src.as_fd(), sink.as_fd(), &mut pool).unwrap());
        assert!(d.copy && d.fell_back);
        assert_eq!(d.bytes, 8);
        let mut got = [0u8; 8];
        out.read_exact(&mut got).unwrap();
        assert_eq!(u64::from_ne_bytes(got), 1);
    }
}
