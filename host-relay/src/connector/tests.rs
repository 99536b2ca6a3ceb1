//! The connector driven the way the worker drives it, against real Unix sockets: a listener
//! that is not there yet, a hybrid-vsock device that answers, refuses, hangs up or trickles.

use super::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

fn policy(retries: u32) -> Policy {
    Policy {
        timeout: Duration::from_millis(500),
        retries,
        backoff: Duration::from_millis(10),
    }
}

fn path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hr-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn none() -> Result<Vec<SocketAddr>, String> {
    Err("not TCP".into())
}

/// Drives `c` to its end as the worker would (sleeping for timers, polling for readiness).
fn drive(c: &mut Connecting, target: &Addr, policy: &Policy) -> Next {
    let mut ready = false;
    loop {
        match c.advance(target, &none, policy, ready, Instant::now()) {
            Next::Sleep(at) => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                ready = false;
            }
            Next::Wait { events, deadline } => {
                let fd = c.socket().expect("a socket to wait on");
                ready = poll(fd, events, deadline);
            }
            end => return end,
        }
    }
}

fn poll(fd: BorrowedFd<'_>, events: u32, deadline: Instant) -> bool {
    sys::poll_one(
        fd,
        events,
        deadline.saturating_duration_since(Instant::now()),
    )
    .unwrap()
}

#[test]
fn a_target_that_comes_up_late_is_reached_by_retrying() {
    let p = path("late");
    let target = Addr::Unix(p.clone());
    let pol = policy(8);
    let mut c = Connecting::new(b"PRE".to_vec(), &pol, Instant::now());
    let late = p.clone();
    let up = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        let l = UnixListener::bind(&late).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut pre = [0u8; 3];
        s.read_exact(&mut pre).unwrap();
        pre
    });
    let Next::Connected(_fd) = drive(&mut c, &target, &pol) else {
        panic!("not connected")
    };
    assert!(c.retries() >= 1, "it had to retry");
    assert_eq!(&up.join().unwrap(), b"PRE", "the preamble came first");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn nothing_there_fails_after_the_retries_with_the_errno() {
    let target = Addr::Unix(path("absent"));
    let pol = policy(2);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let Next::Failed(e) = drive(&mut c, &target, &pol) else {
        panic!("connected to nothing")
    };
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(c.retries(), 2);
}

/// A hybrid-vsock device that reads `CONNECT N\n` and answers `reply` in `pieces`.
fn device(
    name: &str,
    reply: &'static [&'static [u8]],
) -> (PathBuf, std::thread::JoinHandle<Vec<u8>>) {
    let p = path(name);
    let l = UnixListener::bind(&p).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\n") {
            s.read_exact(&mut b).unwrap();
            req.push(b[0]);
        }
        for piece in reply {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        req
    });
    (p, t)
}

#[test]
fn the_hybrid_vsock_handshake_keeps_the_guest_bytes() {
    let (p, dev) = device("ok", &[b"OK 10", b"73741824\npayload"]);
    let target = Addr::VsockUds {
        path: p.clone(),
        port: 5,
    };
    let pol = policy(0);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let Next::Connected(fd) = drive(&mut c, &target, &pol) else {
        panic!("not connected")
    };
    let mut s = UnixStream::from(fd);
    s.set_nonblocking(false).unwrap();
    let mut got = [0u8; 7];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"payload");
    assert_eq!(dev.join().unwrap(), b"CONNECT 5\n");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn a_refusal_is_final_and_a_hang_up_is_retried() {
    let (p, dev) = device("no", &[b"NO\n"]);
    let target = Addr::VsockUds {
        path: p.clone(),
        port: 5,
    };
    let pol = policy(3);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let Next::Failed(e) = drive(&mut c, &target, &pol) else {
        panic!("connected")
    };
    assert_eq!(e.to_string(), "CONNECT refused: \"NO\"");
    assert_eq!(c.retries(), 0);
    dev.join().unwrap();
    let _ = std::fs::remove_file(&p);

    let (p, dev) = device("eof", &[]);
    let target = Addr::VsockUds {
        path: p.clone(),
        port: 5,
    };
    let pol = policy(1);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let Next::Failed(e) = drive(&mut c, &target, &pol) else {
        panic!("connected")
    };
    // Closed before replying, retried once, then nothing listens any more.
    assert_eq!(c.retries(), 1);
    assert!(retryable(&e), "{e}");
    dev.join().unwrap();
    let _ = std::fs::remove_file(&p);
}

#[test]
fn a_silent_device_times_out() {
    let p = path("silent");
    let l = UnixListener::bind(&p).unwrap();
    let target = Addr::VsockUds {
        path: p.clone(),
        port: 5,
    };
    let pol = policy(0);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let t0 = Instant::now();
    let Next::Failed(e) = drive(&mut c, &target, &pol) else {
        panic!("connected")
    };
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(t0.elapsed() >= Duration::from_millis(450));
    drop(l);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn tcp_tries_each_address_then_retries() {
    // Port 1 on loopback refuses at once.
    let target = Addr::Tcp {
        host: "localhost".into(),
        port: 1,
    };
    let pol = policy(1);
    let mut c = Connecting::new(Vec::new(), &pol, Instant::now());
    let addrs = || {
        Ok(vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.2:1".parse().unwrap(),
        ])
    };
    let mut ready = false;
    let end = loop {
        match c.advance(&target, &addrs, &pol, ready, Instant::now()) {
            Next::Sleep(at) => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                ready = false;
            }
            Next::Wait { events, deadline } => ready = poll(c.socket().unwrap(), events, deadline),
            end => break end,
        }
    };
    let Next::Failed(e) = end else {
        panic!("connected")
    };
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
    assert_eq!(c.retries(), 1);
}
