//! The worker threads: one epoll loop each, sharing the listeners (EPOLLEXCLUSIVE, so one worker
//! wakes per connection) and owning the connections they accepted, from the first connect
//! attempt to the close. Nothing blocks: reaching a target is [`crate::connector`]'s state
//! machine driven by this loop's readiness and timers, relaying is [`crate::conn`]'s.
//!
//! Tokens: a socket of slot `s` is `s << 1 | side` (side 1 is the target, and a connecting
//! client's attempt socket); the listeners and the wake-up eventfd use the top of the u64 range.
//! Timers (connect deadlines and retries) are [`crate::timers`]': one per connecting slot, with
//! the slot's generation, gone once the slot connects or closes.

use crate::addr::Route;
use crate::conn::{Close, Conn, Pool, Side};
use crate::connector::{self, Connecting, Policy};
use crate::listener::{Accepted, Listener};
use crate::metrics::Counters;
use crate::route::RouteRt;
use crate::sys;
use crate::timers::Timers;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const WAKE: u64 = u64::MAX;
const LISTENER_BASE: u64 = u64::MAX - 1024;
const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// Longest sleep in epoll_wait: how often idle timeouts, lingers and the shutdown flag are
/// checked.
const TICK: Duration = Duration::from_millis(200);
/// Clients accepted per listener wakeup, so a flood of connects cannot starve the others.
const ACCEPTS_PER_WAKEUP: usize = 64;

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Close connections with no traffic for this long.
    pub idle_timeout: Option<Duration>,
    /// Close a pair this long after the target ended while the client has not.
    pub linger: Duration,
    /// Connect timeout and retries.
    pub policy: Policy,
    /// After SIGTERM, how long open connections may continue.
    pub drain: Duration,
    /// Never splice (copy mode everywhere).
    pub no_splice: bool,
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Shared {
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

impl Shared {
    /// Shared state for the workers.
    pub fn new(routes: Vec<RouteRt>, listeners: Vec<Listener>, settings: Settings) -> Shared {
        Shared {
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

/// The part of a worker the main thread talks to.
#[derive(Debug)]
pub struct Handle {
    wake: OwnedFd,
    /// The worker no longer watches the listeners.
    pub stopped_accepting: AtomicBool,
}

impl Handle {
    /// A handle with its eventfd.
    pub fn new() -> io::Result<Handle> {
        Ok(Handle {
            wake: sys::eventfd()?,
            stopped_accepting: AtomicBool::new(false),
        })
    }

    /// Wakes the worker.
    pub fn wake(&self) {
        sys::eventfd_wake(self.wake.as_fd());
    }
}

/// A client on its way to its target.
#[derive(Debug)]
struct Pending {
    client: OwnedFd,
    connecting: Connecting,
    /// The attempt socket registered with epoll (its number, see
    /// [`Connecting::socket_number`]), and for which events.
    registered: Option<(u64, u32)>,
    /// When its timer (connect deadline or retry) is due, if it has one.
    timer: Option<Instant>,
}

#[derive(Debug)]
enum Entry {
    Connecting(Box<Pending>),
    Relaying(Conn),
}

/// A slab slot: the connection, its route and log identity, and a generation for timers.
#[derive(Debug)]
struct Slot {
    entry: Entry,
    route: usize,
    id: u64,
    peer: String,
    opened: Instant,
    gen: u64,
}

struct Worker {
    shared: Arc<Shared>,
    me: Arc<Handle>,
    ep: OwnedFd,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Generations, one counter per worker: every new slot content gets the next.
    next_gen: u64,
    timers: Timers,
    open: usize,
    pool: Pool,
    listening: bool,
}

/// Runs a worker loop until shutdown has drained.
pub fn run(shared: Arc<Shared>, me: Arc<Handle>) -> io::Result<()> {
    let ep = sys::epoll_create()?;
    sys::epoll_ctl(
        ep.as_fd(),
        libc::EPOLL_CTL_ADD,
        me.wake.as_raw_fd(),
        EPOLLIN,
        WAKE,
    )?;
    for (i, l) in shared.listeners().iter().enumerate() {
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
        shared,
        me,
        ep,
        slots: Vec::new(),
        free: Vec::new(),
        next_gen: 0,
        timers: Timers::default(),
        open: 0,
        pool: Pool::default(),
        listening: true,
    };
    w.event_loop()
}

fn token(slot: usize, side: Side) -> u64 {
    (slot as u64) << 1 | side.index() as u64
}

impl Worker {
    fn event_loop(&mut self) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut next_scan = Instant::now();
        let mut drain_deadline = None;
        loop {
            let now = Instant::now();
            let mut wait = TICK;
            if let Some(at) = self.timers.next() {
                wait = wait.min(at.saturating_duration_since(now));
            }
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            let n = sys::epoll_wait(self.ep.as_fd(), &mut events, ms)?;
            for ev in events.get(..n).unwrap_or_default() {
                let (tok, bits) = (ev.u64, ev.events);
                if tok == WAKE {
                    sys::eventfd_clear(self.me.wake.as_fd());
                } else if tok >= LISTENER_BASE {
                    self.accept(usize::try_from(tok - LISTENER_BASE).unwrap_or(usize::MAX));
                } else {
                    let slot = usize::try_from(tok >> 1).unwrap_or(usize::MAX);
                    self.on_event(slot, Side::of(usize::from(tok & 1 == 1)), bits);
                }
            }
            let now = Instant::now();
            self.fire_timers(now);
            if self.shared.stop.load(SeqCst) {
                if self.listening {
                    self.listening = false;
                    for (i, l) in self.shared.listeners().iter().enumerate() {
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
                    drain_deadline = Some(now + self.shared.settings.drain);
                }
                if self.open == 0 {
                    return Ok(());
                }
                if drain_deadline.is_some_and(|d| now >= d) {
                    for slot in 0..self.slots.len() {
                        self.close(slot, Close::Drain);
                    }
                    return Ok(());
                }
            }
            if now >= next_scan {
                next_scan = now + TICK;
                self.scan(now);
            }
        }
    }

    /// Idle timeouts and half-dead pairs.
    fn scan(&mut self, now: Instant) {
        let idle = self.shared.settings.idle_timeout;
        let linger = self.shared.settings.linger;
        for slot in 0..self.slots.len() {
            let why = match self.slots.get(slot) {
                Some(Some(Slot {
                    entry: Entry::Relaying(c),
                    ..
                })) => {
                    if c.half_dead(linger, now) {
                        Some(Close::HalfDead)
                    } else if idle.is_some_and(|limit| now.duration_since(c.active) >= limit) {
                        Some(Close::Idle)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(why) = why {
                self.close(slot, why);
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((slot, gen)) = self.timers.pop_due(now) {
            let live = match self.slots.get_mut(slot) {
                Some(Some(Slot {
                    entry: Entry::Connecting(p),
                    gen: g,
                    ..
                })) if *g == gen => {
                    p.timer = None;
                    true
                }
                _ => false,
            };
            if live {
                self.advance(slot, false, now);
            }
        }
    }

    fn accept(&mut self, idx: usize) {
        let shared = Arc::clone(&self.shared);
        let Some(rt) = shared.routes.get(idx) else {
            return;
        };
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let accepted = {
                let ls = shared.listeners();
                match ls.get(idx) {
                    Some(Some(l)) => l.accept(),
                    _ => return,
                }
            };
            let a = match accepted {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {
                    continue
                }
                Err(e) => {
                    rt.counters.errors.fetch_add(1, Relaxed);
                    eprintln!("host-relay: route {idx}: accept: {e}");
                    return;
                }
            };
            let c = &rt.counters;
            if shared.stop.load(SeqCst) || c.active.load(Relaxed) >= rt.max_conns {
                c.refused.fetch_add(1, Relaxed);
                continue; // dropping the socket closes it
            }
            c.active.fetch_add(1, Relaxed);
            c.accepted.fetch_add(1, Relaxed);
            self.start(idx, a);
        }
    }

    /// A new client: its slot, then the first connect attempt.
    fn start(&mut self, route: usize, a: Accepted) {
        let rt = &self.shared.routes[route];
        let preamble = if rt.proxy_v2 {
            contract::proxy_v2::header(a.tcp)
        } else {
            Vec::new()
        };
        let now = Instant::now();
        let connecting = Connecting::new(preamble, &self.shared.settings.policy, now);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.next_gen += 1;
        self.slots[slot] = Some(Slot {
            entry: Entry::Connecting(Box::new(Pending {
                client: a.socket,
                connecting,
                registered: None,
                timer: None,
            })),
            route,
            id: self.shared.next_id.fetch_add(1, Relaxed),
            peer: a.peer,
            opened: now,
            gen: self.next_gen,
        });
        self.open += 1;
        self.advance(slot, false, now);
    }

    /// Drives a connecting slot: re-registers its attempt socket, sets its timer, and on the
    /// end turns it into a relayed connection or closes it.
    fn advance(&mut self, slot: usize, ready: bool, now: Instant) {
        let shared = Arc::clone(&self.shared);
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        let Entry::Connecting(p) = &mut s.entry else {
            return;
        };
        let rt = &shared.routes[s.route];
        let target: &Route = &rt.route;
        let addresses = || rt.addresses();
        let next = p.connecting.advance(
            &target.target,
            &addresses,
            &shared.settings.policy,
            ready,
            now,
        );
        let gen = s.gen;
        match next {
            connector::Next::Wait { events, deadline } => {
                let Some(fd) = p.connecting.socket().map(|f| f.as_raw_fd()) else {
                    return;
                };
                let number = p.connecting.socket_number();
                let op = match p.registered {
                    Some((r, e)) if r == number && e == events => None,
                    Some((r, _)) if r == number => Some(libc::EPOLL_CTL_MOD),
                    // A new socket (the old one, closed, left the epoll set by itself).
                    _ => Some(libc::EPOLL_CTL_ADD),
                };
                if let Some(op) = op {
                    if let Err(e) =
                        sys::epoll_ctl(self.ep.as_fd(), op, fd, events, token(slot, Side::Target))
                    {
                        let why = Close::Failed {
                            side: Side::Target,
                            op: "epoll_ctl",
                            error: e,
                        };
                        self.close(slot, why);
                        return;
                    }
                    p.registered = Some((number, events));
                }
                self.timers.set(slot, gen, deadline, &mut p.timer);
            }
            connector::Next::Sleep(at) => {
                // The attempt socket (if any) was closed, which took it out of epoll.
                p.registered = None;
                self.timers.set(slot, gen, at, &mut p.timer);
            }
            connector::Next::Failed(error) => {
                let target = rt.route.target.to_string();
                rt.counters.connect_failures.fetch_add(1, Relaxed);
                self.close(slot, Close::Unreachable { target, error });
            }
            connector::Next::Connected(target_fd) => {
                p.registered = None;
                self.relay(slot, target_fd);
            }
        }
    }

    /// The target is reached: the slot becomes a relayed connection.
    fn relay(&mut self, slot: usize, target: OwnedFd) {
        let Some(mut s) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let Entry::Connecting(mut p) = s.entry else {
            return;
        };
        self.timers.clear(slot, s.gen, &mut p.timer);
        let rt = &self.shared.routes[s.route];
        let copy = self.shared.settings.no_splice || rt.path.load(Relaxed) == 2;
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
                s.route, rt.listen, rt.route.target
            );
        }
        eprintln!(
            "open id={} route={} peer={} target={} connect_ms={}",
            s.id,
            s.route,
            s.peer,
            rt.route.target,
            s.opened.elapsed().as_millis()
        );
        let conn = Conn::new(p.client, target, copy);
        let fds = [conn.fds[0].as_raw_fd(), conn.fds[1].as_raw_fd()];
        s.entry = Entry::Relaying(conn);
        self.slots[slot] = Some(s);
        for side in [Side::Client, Side::Target] {
            let op = match side {
                // The attempt socket is this one: it is registered already.
                Side::Target => libc::EPOLL_CTL_MOD,
                Side::Client => libc::EPOLL_CTL_ADD,
            };
            let mut r =
                sys::epoll_ctl(self.ep.as_fd(), op, fds[side.index()], 0, token(slot, side));
            if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) {
                // Connected at once, never registered.
                r = sys::epoll_ctl(
                    self.ep.as_fd(),
                    libc::EPOLL_CTL_ADD,
                    fds[side.index()],
                    0,
                    token(slot, side),
                );
            }
            if let Err(e) = r {
                let why = Close::Failed {
                    side,
                    op: "epoll_ctl",
                    error: e,
                };
                self.close(slot, why);
                return;
            }
        }
        // Bytes may already be waiting (a target that speaks first, or the client's request):
        // pump once, which also sets the interest.
        self.on_event(slot, Side::Client, 0);
    }

    fn on_event(&mut self, slot: usize, side: Side, bits: u32) {
        let now = Instant::now();
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        let conn = match &mut s.entry {
            Entry::Connecting(_) => {
                // The attempt socket's readiness (errors included: SO_ERROR will tell).
                self.advance(slot, true, now);
                return;
            }
            Entry::Relaying(c) => c,
        };
        let i = side.index();
        if bits & EPOLLERR != 0 {
            let error = take_socket_error(conn.fds[i].as_fd());
            self.close(
                slot,
                Close::Failed {
                    side,
                    op: "socket",
                    error,
                },
            );
            return;
        }
        if bits & EPOLLHUP != 0 && conn.interest[i].is_some() {
            // Peer fully gone: stop watching it (HUP is level-triggered and cannot be masked);
            // what it sent before is still read through the other side's events below.
            let _ = sys::epoll_ctl(
                self.ep.as_fd(),
                libc::EPOLL_CTL_DEL,
                conn.fds[i].as_raw_fd(),
                0,
                0,
            );
            conn.interest[i] = None;
        }
        let rt = &self.shared.routes[s.route];
        let before = (conn.dirs[0].bytes, conn.dirs[1].bytes, conn.copying());
        // EPOLLIN on a side feeds the direction it is the source of, EPOLLOUT the one it is the
        // sink of; anything else (first pump, HUP) runs both.
        let which = if bits & !(EPOLLIN | EPOLLOUT) == 0 && bits != 0 {
            let (read, write) = (bits & EPOLLIN != 0, bits & EPOLLOUT != 0);
            match side {
                Side::Client => [read, write],
                Side::Target => [write, read],
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
        count_bytes(&rt.counters, conn, before);
        if !before.2 && conn.copying() && rt.path.swap(2, Relaxed) != 2 {
            eprintln!(
                "host-relay: route {} ({} -> {}): splice refused (EINVAL), data path copy (read/write)",
                s.route, rt.listen, rt.route.target
            );
        }
        match result {
            Err(why) => self.close(slot, why),
            Ok(_) if conn.done() => self.close(slot, Close::Eof),
            Ok(_) => {
                for side in [Side::Client, Side::Target] {
                    let i = side.index();
                    let want = conn.interest(i);
                    if conn.interest[i].is_some_and(|have| have != want) {
                        let fd = conn.fds[i].as_raw_fd();
                        if let Err(e) = sys::epoll_ctl(
                            self.ep.as_fd(),
                            libc::EPOLL_CTL_MOD,
                            fd,
                            want,
                            token(slot, side),
                        ) {
                            let why = Close::Failed {
                                side,
                                op: "epoll_ctl",
                                error: e,
                            };
                            self.close(slot, why);
                            return;
                        }
                        conn.interest[i] = Some(want);
                    }
                }
            }
        }
    }

    fn close(&mut self, slot: usize, why: Close) {
        let Some(mut s) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if let Entry::Connecting(p) = &mut s.entry {
            self.timers.clear(slot, s.gen, &mut p.timer);
        }
        self.free.push(slot);
        self.open -= 1;
        let c = &self.shared.routes[s.route].counters;
        c.active.fetch_sub(1, Relaxed);
        if why.is_error() {
            c.errors.fetch_add(1, Relaxed);
        }
        let (up, down, path) = match &s.entry {
            Entry::Relaying(conn) => (
                conn.dirs[0].bytes,
                conn.dirs[1].bytes,
                if conn.copying() { "copy" } else { "splice" },
            ),
            Entry::Connecting(_) => (0, 0, "none"),
        };
        if let Entry::Relaying(mut conn) = s.entry {
            conn.release(&mut self.pool);
        }
        eprintln!(
            "close id={} route={} peer={} up={up} down={down} dur_ms={} path={path} reason={why}",
            s.id,
            s.route,
            s.peer,
            s.opened.elapsed().as_millis(),
        );
        // Dropping the entry closed its sockets (which leaves the epoll set) and any pipe that
        // still held bytes.
    }
}

fn count_bytes(c: &Counters, conn: &Conn, before: (u64, u64, bool)) {
    let up = conn.dirs[0].bytes - before.0;
    let down = conn.dirs[1].bytes - before.1;
    if up > 0 {
        c.bytes_up.fetch_add(up, Relaxed);
    }
    if down > 0 {
        c.bytes_down.fetch_add(down, Relaxed);
    }
}

/// The pending error of a socket (SO_ERROR).
fn take_socket_error(fd: std::os::fd::BorrowedFd<'_>) -> io::Error {
    match sys::take_error(fd) {
        Err(e) => e,
        Ok(()) => io::Error::other("socket error"),
    }
}
