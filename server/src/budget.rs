//! The memory budget: one count, shared by every worker, of the bytes the server holds for its
//! connections (request heads and bodies, decoded chunks, responses waiting to be sent, TLS
//! state and buffers). Out of memory in an enclave means init reboots it and every key is lost,
//! so the sum over all connections is bounded, not only each connection.
//!
//! Each connection tells the budget what it holds after every event ([`Budget::charge`]), and
//! gives it all back when it closes. As it fills, the server sheds load the way a careful proxy
//! does, in two steps:
//!
//! - from half the limit on, a connection may grow its *burden* (input of requests not yet
//!   answered, and responses the client has not taken yet) only while the burden is below its
//!   fair share of what is left before shedding (four fifths of the limit minus what is used,
//!   divided by the open connections) ([`Budget::room`]): it stops reading, and stops
//!   answering more pipelined requests. The connections holding the most stop first; clients
//!   that trickle in huge requests or never read their responses converge below the
//!   shedding point between them, and well-behaved clients (no burden between requests) are
//!   served on;
//! - from three fifths on ([`Budget::refusing`]), new connections are refused (accepted and
//!   closed at once);
//! - from four fifths on ([`Budget::shedding`]), requests whose head completes are answered
//!   503 with `Connection: close`;
//! - connections that are mid-response keep being served throughout: writing frees memory.
//!
//! The default connection limit (`config.rs`) leaves every connection room for a request
//! between the first two steps.
//!
//! The limit is a target for the bytes we buffer, not a hard allocator cap: a worker may pass it
//! by what one event adds (a few reads, one response), which the defaults leave room for.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a connection with no burden may always take: a request head (and its answer).
pub const FIRST_REQUEST: usize = 16 * 1024;

/// The shared count.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now, over all connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Where shedding starts: four fifths of the limit.
    pub fn shed_at(&self) -> usize {
        self.limit - self.limit / 5
    }

    /// Where new connections start to be refused: three fifths of the limit.
    pub fn refuse_at(&self) -> usize {
        self.limit / 5 * 3
    }

    /// Where the largest unfinished requests start to be held back: half the limit.
    pub fn hold_at(&self) -> usize {
        self.limit / 2
    }

    /// Records that a connection that held `*held` bytes now holds `now`.
    pub fn charge(&self, held: &mut usize, now: usize) {
        if now > *held {
            self.used.fetch_add(now - *held, Ordering::Relaxed);
        } else if now < *held {
            self.used.fetch_sub(*held - now, Ordering::Relaxed);
        }
        *held = now;
    }

    /// Whether requests whose head completes now are answered 503.
    pub fn shedding(&self) -> bool {
        self.used() >= self.shed_at()
    }

    /// Whether new connections are refused now.
    pub fn refusing(&self) -> bool {
        self.used() >= self.refuse_at()
    }

    /// How many more bytes a connection whose burden is `burden` may add to it, with `open`
    /// connections in all (`usize::MAX`: no limit now). A connection with no burden may always
    /// take [`FIRST_REQUEST`]: that is a well-behaved client between requests, and while
    /// shedding its answer is a short 503 that frees memory.
    pub fn room(&self, burden: usize, open: usize) -> usize {
        let used = self.used();
        let floor = if burden == 0 { FIRST_REQUEST } else { 0 };
        if used < self.hold_at() {
            usize::MAX
        } else if used >= self.shed_at() {
            floor
        } else {
            ((self.shed_at() - used) / open.max(1))
                .saturating_sub(burden)
                .max(floor)
        }
    }

    /// Whether a connection with this burden may read more ([`Budget::room`] is not 0).
    pub fn may_read(&self, burden: usize, open: usize) -> bool {
        self.room(burden, open) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_load_is_shed_in_two_steps() {
        let b = Budget::new(1000);
        let (mut x, mut y) = (0, 0);
        b.charge(&mut x, 300);
        b.charge(&mut y, 150);
        assert_eq!(b.used(), 450);
        assert!(b.may_read(10_000, 2), "below half: anyone reads");
        b.charge(&mut y, 300);
        // Over half: only connections under their share of what is left before shedding
        // ((800 - 600) / 2).
        assert!(!b.may_read(100, 2));
        assert!(b.may_read(99, 2));
        assert_eq!(b.room(50, 2), 50);
        assert_eq!(b.room(0, 2), FIRST_REQUEST);
        assert!(b.refusing(), "three fifths");
        assert!(!b.shedding());
        b.charge(&mut y, 500);
        assert!(b.shedding(), "four fifths");
        // From there: only connections with no burden, one request at a time.
        assert!(!b.may_read(1, 2));
        assert_eq!(b.room(0, 2), FIRST_REQUEST);
        b.charge(&mut x, 0);
        b.charge(&mut y, 0);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn trickled_requests_stop_between_holding_and_shedding() {
        // 100 connections each reading 100 bytes at a time while allowed.
        let b = Budget::new(1_000_000);
        let mut held = vec![0usize; 100];
        loop {
            let mut moved = false;
            for h in held.iter_mut() {
                if b.may_read(*h, 100) {
                    let now = *h + 100;
                    b.charge(h, now);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        assert!(b.used() < b.shed_at(), "{}", b.used());
        assert!(b.used() >= b.hold_at(), "{}", b.used());
    }
}
