//! The counters every worker updates and the application reads (`/health`, tests).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters shared by all workers (relaxed atomics: for reporting, not synchronization).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections closed at once because the memory budget was shedding load.
    pub refused_memory: AtomicU64,
    /// Connections closed because a deadline passed.
    pub timed_out: AtomicU64,
    /// Request log lines dropped because stdout was too slow.
    pub log_dropped: AtomicU64,
}

impl Stats {
    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}
