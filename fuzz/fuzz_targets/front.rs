//! Front mode's connection state machine (`server::front::conn::FrontConn`) with both of its
//! peers scripted by the input, without sockets or TLS: the client's bytes (plain HTTP) and the
//! application's, each delivered in pieces of a size the input chooses, in turns.
//!
//! Input: byte 0 picks the client's piece size (bits 0-5, 0 = all at once), whether a PROXY v2
//! header is expected (bit 6) and whether the application refuses connections (bit 7); byte 1
//! the application's piece size; bytes 2-3 (little endian) how many of the rest are the
//! client's, the remainder being the application's answers. Checked besides "no panic": what
//! the client receives starts with a status line, the memory charged stays bounded, and the
//! connection gives everything back when it closes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::budget::Budget;
use server::conn::{Env, Next, Ready, Stream};
use server::front::conn::{FrontConn, Upstream, Upstreams};
use server::front::{Front, UpstreamAddr};
use server::{Limits, Request, Response};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A scripted peer: reads take up to `piece` bytes of what is left, then would block until
/// the script says EOF; writes are kept.
#[derive(Default)]
struct Peer {
    data: Vec<u8>,
    at: usize,
    piece: usize,
    /// Bytes the next read may take (refilled each turn).
    allowance: usize,
    written: Vec<u8>,
}

impl Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len() - self.at;
        if left == 0 {
            return Ok(0);
        }
        let n = left.min(buf.len()).min(self.allowance);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        self.allowance -= n;
        Ok(n)
    }
}

struct Client(Rc<RefCell<Peer>>);

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Client {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct App(Rc<RefCell<Peer>>);

impl Read for App {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Write for App {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upstream for App {
    fn connected(&self) -> io::Result<()> {
        Ok(())
    }
}

struct Apps {
    app: App,
    refuse: bool,
    kept: usize,
}

impl Upstreams<App> for Apps {
    fn open(&mut self) -> io::Result<(App, bool)> {
        self.fresh().map(|a| (a, false))
    }
    fn fresh(&mut self) -> io::Result<App> {
        if self.refuse {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        Ok(self.app.clone())
    }
    fn release(&mut self, _: App) {}
    fn keep(&mut self) -> bool {
        self.kept += 1;
        true
    }
    fn unkeep(&mut self) {
        self.kept = self.kept.checked_sub(1).expect("unkeep without keep");
    }
}

fn local(_: &Request<'_>) -> Response {
    Response::new(200, "text/plain", "local")
}

fuzz_target!(|data: &[u8]| {
    let [mode, up_piece, a, b, rest @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (client_bytes, app_bytes) = rest.split_at(split);
    let piece = |m: u8| match usize::from(m & 0x3f) {
        0 => usize::MAX,
        n => n,
    };
    let limits = Limits::default();
    let budget = Budget::new(limits.memory_budget);
    let mut front = Front::new(UpstreamAddr::Unix("/nonexistent".into()));
    front.proxy_protocol = mode & 0x40 != 0;
    let front = Arc::new(front);
    let now = Instant::now();
    let client_peer = Rc::new(RefCell::new(Peer {
        data: client_bytes.to_vec(),
        piece: piece(*mode),
        ..Peer::default()
    }));
    let client = Client(Rc::clone(&client_peer));
    let app = App(Rc::new(RefCell::new(Peer {
        data: app_bytes.to_vec(),
        piece: piece(*up_piece),
        ..Peer::default()
    })));
    let mut apps = Apps {
        app: app.clone(),
        refuse: mode & 0x80 != 0,
        kept: 0,
    };
    let Some(mut conn) = FrontConn::new(client, None, &front, &limits, now) else {
        return;
    };
    let (mut log, mut out) = (Vec::new(), Vec::new());
    let all = Ready {
        read: true,
        write: true,
        hangup: false,
    };
    for turn in 0..400u32 {
        // Each side may deliver one more piece this turn.
        let c = &mut conn;
        for peer in [&client_peer, &app.0] {
            let mut p = peer.borrow_mut();
            p.allowance = p.piece;
        }
        let mut env = Env {
            limits: &limits,
            handler: &local,
            date: b"D",
            log: &mut log,
            budget: &budget,
            open: 1,
            out: &mut out,
            slice: Duration::from_millis(1),
            now: now + Duration::from_millis(u64::from(turn)),
        };
        let next = c.on_ready(all, all, &mut env, &mut apps);
        assert!(c.charged() < 4 << 20, "charged {}", c.charged());
        {
            let p = client_peer.borrow();
            let w = &p.written;
            assert!(
                w.is_empty() || w.starts_with(b"HTTP/1.1 "),
                "{:?}",
                String::from_utf8_lossy(&w[..w.len().min(40)])
            );
        }
        if let Next::Close(_) = next {
            assert_eq!(c.charged(), 0, "gave back what it held");
            return;
        }
        if turn % 50 == 49 {
            let _ = c.on_tick(now + Duration::from_secs(3600));
        }
    }
});
