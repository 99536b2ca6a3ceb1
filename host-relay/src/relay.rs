//! The worker threads: one epoll loop each, sharing the listeners (EPOLLEXCLUSIVE, so one worker
//! wakes per connection) and owning the connections they accepted.
//!
//! Tokens: a connection socket is `slot << 1 | side`; the listeners and the wake-up eventfd use
//! the top of the u64 range. Accepting never blocks: the target is reached on a short-lived
//! connector thread ([`crate::connect`]), which hands the pair back through the worker's queue.
//! New slots are only filled between event batches, so a stale event never reaches a new
//! connection in a reused slot.

use crate::addr::{Addr, Route};
use crate::conn::{Close, Conn, Failure, Pool};
use crate::connect::{self, Policy, TcpPair};
use crate::metrics::Counters;
use crate::{proxy, sys};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const WAKE: u64 = u64::MAX;
const LISTENER_BASE: u64 = u64::MAX - 1024;
const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// Listen backlog: bursts of new connections wait here while the workers accept (a full queue
/// drops SYNs, which clients retry only after a second).
pub const BACKLOG: i32 = 4096;
/// Longest sleep in epoll_wait: how often idle timeouts and the shutdown flag are checked.
const TICK_MS: i32 = 200;

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Close connections with no traffic for this long.
    pub idle_timeout: Option<Duration>,
    /// Connect timeout and retries.
    pub policy: Policy,
    /// After SIGTERM, how long open connections may continue.
    pub drain: Duration,
    /// Never splice (copy mode everywhere).
    pub no_splice: bool,
}

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

/// An accepted client: socket, its address for the log, its TCP addresses for PROXY v2.
type Accepted = (OwnedFd, String, TcpPair);

impl Listener {
    /// Binds `addr` (non-blocking). A stale Unix socket file is replaced.
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
            Addr::Vsock { cid, port } => Listener::Vsock(sys::vsock_listen(*cid, *port)?),
            Addr::VsockUds { .. } => return Err(io::Error::other("vsock-uds cannot listen")),
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
                Ok(std::net::SocketAddr::V6(a)) => format!("tcp:[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("tcp:{a}"),
                Err(_) => configured.to_string(),
            },
            _ => configured.to_string(),
        }
    }

    fn raw(&self) -> RawFd {
        match self {
            Listener::Tcp(t) => t.as_raw_fd(),
            Listener::Unix(u, _) => u.as_raw_fd(),
            Listener::Vsock(v) => v.as_raw_fd(),
        }
    }

    fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(t) => {
                let (s, peer) = t.accept()?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                let local = s.local_addr()?;
                Ok((s.into(), peer.to_string(), Some((peer, local))))
            }
            Listener::Unix(u, _) => {
                let (s, _) = u.accept()?;
                s.set_nonblocking(true)?;
                Ok((s.into(), "unix".into(), None))
            }
            Listener::Vsock(v) => {
                let (s, cid, port) = sys::vsock_accept(v.as_fd())?;
                Ok((s, format!("vsock:{cid}:{port}"), None))
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

/// A route at run time.
#[derive(Debug)]
pub struct RouteRt {
    /// As configured.
    pub route: Route,
    /// The bound listen address.
    pub listen: String,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Connection limit.
    pub max_conns: u64,
    /// Send PROXY v2.
    pub proxy_v2: bool,
    /// 0: nothing logged yet, 1: "splice" logged, 2: copy mode logged (and used from then on).
    path: AtomicU8,
}

impl RouteRt {
    /// A route with its limit and PROXY setting resolved.
    pub fn new(route: Route, listen: String, max_conns: u64, proxy_v2: bool) -> RouteRt {
        RouteRt {
            route,
            listen,
            counters: Arc::default(),
            max_conns,
            proxy_v2,
            path: AtomicU8::new(0),
        }
    }
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Ctx {
    /// The routes, in command-line order.
    pub routes: Vec<RouteRt>,
    /// `listeners[i]` belongs to `routes[i]`; taken (closed) by the main thread when draining.
    pub listeners: Mutex<Vec<Option<Listener>>>,
    /// Settings.
    pub settings: Settings,
    /// Set on SIGTERM.
    pub stop: AtomicBool,
    next_id: AtomicU64,
}

impl Ctx {
    /// Shared state for the workers.
    pub fn new(routes: Vec<RouteRt>, listeners: Vec<Listener>, settings: Settings) -> Ctx {
        Ctx {
            routes,
            listeners: Mutex::new(listeners.into_iter().map(Some).collect()),
            settings,
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        }
    }

    /// The listeners (a poisoned lock still holds valid sockets).
    pub fn listeners(&self) -> MutexGuard<'_, Vec<Option<Listener>>> {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection whose target is reached, on its way to a worker.
#[derive(Debug)]
struct Ready {
    client: OwnedFd,
    target: OwnedFd,
    route: usize,
    id: u64,
    peer: String,
    opened: Instant,
}

/// The part of a worker other threads talk to.
#[derive(Debug)]
pub struct Handle {
    queue: Mutex<Vec<Ready>>,
    wake: OwnedFd,
    /// Connector threads not finished.
    connecting: AtomicUsize,
    /// The worker no longer watches the listeners.
    pub stopped_accepting: AtomicBool,
}

impl Handle {
    /// A handle with its eventfd.
    pub fn new() -> io::Result<Handle> {
        Ok(Handle {
            queue: Mutex::new(Vec::new()),
            wake: sys::eventfd()?,
            connecting: AtomicUsize::new(0),
            stopped_accepting: AtomicBool::new(false),
        })
    }
    /// Wakes the worker.
    pub fn wake(&self) {
        sys::eventfd_wake(self.wake.as_fd());
    }
    fn queue(&self) -> MutexGuard<'_, Vec<Ready>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Worker {
    ctx: Arc<Ctx>,
    me: Arc<Handle>,
    ep: OwnedFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    pool: Pool,
    listening: bool,
}

/// Runs a worker loop until shutdown has drained.
pub fn run(ctx: Arc<Ctx>, me: Arc<Handle>) -> io::Result<()> {
    let ep = sys::epoll_create()?;
    sys::epoll_ctl(
        ep.as_fd(),
        libc::EPOLL_CTL_ADD,
        me.wake.as_raw_fd(),
        EPOLLIN,
        WAKE,
    )?;
    for (i, l) in ctx.listeners().iter().enumerate() {
        if let Some(l) = l {
            let ev = EPOLLIN | libc::EPOLLEXCLUSIVE as u32;
            sys::epoll_ctl(
                ep.as_fd(),
                libc::EPOLL_CTL_ADD,
                l.raw(),
                ev,
                LISTENER_BASE + i as u64,
            )?;
        }
    }
    let mut w = Worker {
        ctx,
        me,
        ep,
        conns: Vec::new(),
        free: Vec::new(),
        open: 0,
        pool: Pool::default(),
        listening: true,
    };
    w.event_loop()
}

impl Worker {
    fn event_loop(&mut self) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut next_scan = Instant::now();
        let mut drain_deadline = None;
        loop {
            let n = sys::epoll_wait(self.ep.as_fd(), &mut events, TICK_MS)?;
            let mut woken = false;
            for ev in &events[..n] {
                let (token, bits) = (ev.u64, ev.events);
                if token == WAKE {
                    sys::eventfd_clear(self.me.wake.as_fd());
                    woken = true;
                } else if token >= LISTENER_BASE {
                    self.accept(usize::try_from(token - LISTENER_BASE).unwrap_or(usize::MAX));
                } else {
                    let slot = usize::try_from(token >> 1).unwrap_or(usize::MAX);
                    self.on_event(slot, usize::from(token & 1 == 1), bits);
                }
            }
            if woken {
                let ready = std::mem::take(&mut *self.me.queue());
                for r in ready {
                    self.add(r);
                }
            }
            let now = Instant::now();
            if self.ctx.stop.load(SeqCst) {
                if self.listening {
                    self.listening = false;
                    for (i, l) in self.ctx.listeners().iter().enumerate() {
                        if let Some(l) = l {
                            let _ = sys::epoll_ctl(
                                self.ep.as_fd(),
                                libc::EPOLL_CTL_DEL,
                                l.raw(),
                                0,
                                LISTENER_BASE + i as u64,
                            );
                        }
                    }
                    self.me.stopped_accepting.store(true, SeqCst);
                    drain_deadline = Some(now + self.ctx.settings.drain);
                }
                let idle = self.open == 0
                    && self.me.connecting.load(SeqCst) == 0
                    && self.me.queue().is_empty();
                if idle {
                    return Ok(());
                }
                if drain_deadline.is_some_and(|d| now >= d) {
                    for slot in 0..self.conns.len() {
                        self.close(slot, Close::Drain, None);
                    }
                    // Connections still being connected end with the process.
                    for r in std::mem::take(&mut *self.me.queue()) {
                        let c = &self.ctx.routes[r.route].counters;
                        c.active.fetch_sub(1, Relaxed);
                    }
                    return Ok(());
                }
            }
            if now >= next_scan {
                next_scan = now + Duration::from_millis(u64::try_from(TICK_MS).unwrap_or(200));
                if let Some(limit) = self.ctx.settings.idle_timeout {
                    for slot in 0..self.conns.len() {
                        if self.conns[slot]
                            .as_ref()
                            .is_some_and(|c| now.duration_since(c.active) >= limit)
                        {
                            self.close(slot, Close::Idle, None);
                        }
                    }
                }
            }
        }
    }

    fn accept(&mut self, idx: usize) {
        let ctx = Arc::clone(&self.ctx);
        let Some(rt) = ctx.routes.get(idx) else {
            return;
        };
        for _ in 0..64 {
            let accepted = {
                let ls = ctx.listeners();
                match ls.get(idx) {
                    Some(Some(l)) => l.accept(),
                    _ => return,
                }
            };
            let (client, peer, pair) = match accepted {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {
                    continue
                }
                Err(e) => {
                    rt.counters.errors.fetch_add(1, Relaxed);
                    eprintln!("host-relay: route {idx}: accept: {e}");
                    // EMFILE and the like: give open connections a moment to finish.
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            };
            let c = &rt.counters;
            if ctx.stop.load(SeqCst) || c.active.load(Relaxed) >= rt.max_conns {
                c.refused.fetch_add(1, Relaxed);
                drop(client);
                continue;
            }
            c.active.fetch_add(1, Relaxed);
            c.accepted.fetch_add(1, Relaxed);
            let id = ctx.next_id.fetch_add(1, Relaxed);
            self.spawn_connector(idx, id, client, peer, pair);
        }
    }

    fn spawn_connector(
        &mut self,
        route: usize,
        id: u64,
        client: OwnedFd,
        peer: String,
        pair: TcpPair,
    ) {
        let ctx = Arc::clone(&self.ctx);
        let me = Arc::clone(&self.me);
        me.connecting.fetch_add(1, SeqCst);
        let opened = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("connect".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let rt = &ctx.routes[route];
                let preamble = if rt.proxy_v2 { proxy::header(pair) } else { Vec::new() };
                match connect::connect(&rt.route.target, &ctx.settings.policy, &preamble) {
                    Ok(target) => {
                        me.queue().push(Ready {
                            client,
                            target,
                            route,
                            id,
                            peer,
                            opened,
                        });
                        me.wake();
                    }
                    Err(e) => {
                        rt.counters.connect_failures.fetch_add(1, Relaxed);
                        rt.counters.errors.fetch_add(1, Relaxed);
                        rt.counters.active.fetch_sub(1, Relaxed);
                        eprintln!(
                            "close id={id} route={route} peer={peer} up=0 down=0 dur_ms={} path=none reason=connect-failed({}: {e})",
                            opened.elapsed().as_millis(),
                            rt.route.target
                        );
                        drop(client);
                    }
                }
                me.connecting.fetch_sub(1, SeqCst);
            });
        if let Err(e) = spawned {
            // The closure (and with it the client socket) was dropped.
            let c = &self.ctx.routes[route].counters;
            c.errors.fetch_add(1, Relaxed);
            c.active.fetch_sub(1, Relaxed);
            self.me.connecting.fetch_sub(1, SeqCst);
            eprintln!("host-relay: route {route}: cannot start a connector thread: {e}");
        }
    }

    fn add(&mut self, r: Ready) {
        let rt = &self.ctx.routes[r.route];
        let copy = self.ctx.settings.no_splice || rt.path.load(Relaxed) == 2;
        if rt
            .path
            .compare_exchange(0, if copy { 2 } else { 1 }, Relaxed, Relaxed)
            .is_ok()
        {
            let why = if copy {
                "copy (read/write, --no-splice)"
            } else {
                "splice"
            };
            eprintln!(
                "host-relay: route {} ({} -> {}): data path {why}",
                r.route, rt.listen, rt.route.target
            );
        }
        eprintln!(
            "open id={} route={} peer={} target={} connect_ms={}",
            r.id,
            r.route,
            r.peer,
            rt.route.target,
            r.opened.elapsed().as_millis()
        );
        let conn = Conn::new(r.client, r.target, copy, r.route, r.id, r.peer, r.opened);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.conns[slot] = Some(conn);
        self.open += 1;
        for side in 0..2 {
            let fd = self.conns[slot].as_ref().map(|c| c.fds[side].as_raw_fd());
            if let Some(fd) = fd {
                if let Err(e) = sys::epoll_ctl(
                    self.ep.as_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd,
                    0,
                    token(slot, side),
                ) {
                    self.close(slot, Close::Error, Some(format!("epoll_ctl: {e}")));
                    return;
                }
            }
        }
        // Bytes may already be waiting (a PROXY-less target that speaks first, or the client's
        // request): pump once, which also sets the interest.
        self.on_event(slot, 0, 0);
    }

    fn on_event(&mut self, slot: usize, side: usize, bits: u32) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if bits & EPOLLERR != 0 {
            let e = take_socket_error(conn.fds[side].as_fd());
            let who = if side == 0 { "client" } else { "target" };
            self.close(slot, Close::Error, Some(format!("{who}: {e}")));
            return;
        }
        if bits & EPOLLHUP != 0 && conn.interest[side].is_some() {
            // Peer fully gone: stop watching it (HUP is level-triggered and cannot be masked);
            // what it sent before is still read through the other side's events below.
            let _ = sys::epoll_ctl(
                self.ep.as_fd(),
                libc::EPOLL_CTL_DEL,
                conn.fds[side].as_raw_fd(),
                0,
                0,
            );
            conn.interest[side] = None;
        }
        let rt = &self.ctx.routes[conn.route];
        let before = (conn.dirs[0].bytes, conn.dirs[1].bytes, conn.copying());
        // EPOLLIN on a side feeds the direction it is the source of, EPOLLOUT the one it is the
        // sink of; anything else (first pump, HUP) runs both.
        let which = if bits & !(EPOLLIN | EPOLLOUT) == 0 && bits != 0 {
            let (read, write) = (bits & EPOLLIN != 0, bits & EPOLLOUT != 0);
            if side == 0 {
                [read, write]
            } else {
                [write, read]
            }
        } else {
            [true, true]
        };
        let mut result = conn.pump_dirs(which, &mut self.pool);
        // A side no longer watched gets no events: keep going while it still has bytes (its
        // peer is gone, so this ends with its receive queue or with an error writing to it).
        for _ in 0..1024 {
            if !(matches!(result, Ok(true)) && conn.interest.iter().any(Option::is_none)) {
                break;
            }
            result = conn.pump(&mut self.pool);
        }
        let up = conn.dirs[0].bytes - before.0;
        let down = conn.dirs[1].bytes - before.1;
        if up > 0 {
            rt.counters.bytes_up.fetch_add(up, Relaxed);
        }
        if down > 0 {
            rt.counters.bytes_down.fetch_add(down, Relaxed);
        }
        if !before.2 && conn.copying() && rt.path.swap(2, Relaxed) != 2 {
            eprintln!(
                "host-relay: route {} ({} -> {}): splice refused (EINVAL), data path copy (read/write)",
                conn.route, rt.listen, rt.route.target
            );
        }
        match result {
            Err((side, f)) => {
                let who = ["client", "target"][side];
                let (who, e) = match f {
                    Failure::Read(e) => (format!("{who} read"), e),
                    Failure::Write(e) => (format!("{who} write"), e),
                    Failure::Pipe(e) => ("pipe".to_string(), e),
                };
                self.close(slot, Close::Error, Some(format!("{who}: {e}")));
            }
            Ok(_) if conn.done() => self.close(slot, Close::Eof, None),
            Ok(_) => {
                for s in 0..2 {
                    let want = conn.interest(s);
                    if conn.interest[s].is_some_and(|have| have != want) {
                        let fd = conn.fds[s].as_raw_fd();
                        if let Err(e) = sys::epoll_ctl(
                            self.ep.as_fd(),
                            libc::EPOLL_CTL_MOD,
                            fd,
                            want,
                            token(slot, s),
                        ) {
                            self.close(slot, Close::Error, Some(format!("epoll_ctl: {e}")));
                            return;
                        }
                        conn.interest[s] = Some(want);
                    }
                }
            }
        }
    }

    fn close(&mut self, slot: usize, why: Close, detail: Option<String>) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.open -= 1;
        conn.release(&mut self.pool);
        let c = &self.ctx.routes[conn.route].counters;
        c.active.fetch_sub(1, Relaxed);
        if why == Close::Error {
            c.errors.fetch_add(1, Relaxed);
        }
        let reason = match detail {
            Some(d) => format!("{}({d})", why.as_str()),
            None => why.as_str().to_string(),
        };
        eprintln!(
            "close id={} route={} peer={} up={} down={} dur_ms={} path={} reason={reason}",
            conn.id,
            conn.route,
            conn.peer,
            conn.dirs[0].bytes,
            conn.dirs[1].bytes,
            conn.opened.elapsed().as_millis(),
            if conn.copying() { "copy" } else { "splice" },
        );
        // Dropping `conn` closes both sockets (which leaves the epoll set) and any pipe that
        // still held bytes.
    }
}

fn token(slot: usize, side: usize) -> u64 {
    (slot as u64) << 1 | side as u64
}

/// The pending error of a socket (SO_ERROR; std's `take_error` works on any socket type).
fn take_socket_error(fd: std::os::fd::BorrowedFd<'_>) -> String {
    let Ok(dup) = fd.try_clone_to_owned() else {
        return "socket error".into();
    };
    match UnixStream::from(dup).take_error() {
        Ok(Some(e)) => e.to_string(),
        _ => "socket error".into(),
    }
}
