//! The connect timers of one worker: at most one per connecting slot (a deadline or a retry),
//! replaced when the slot sets another and removed when it connects or closes, so an
//! established connection holds no timer and a burst of connections leaves nothing behind.
//! Each timer carries its slot's generation: a slot closed and reused never sees the old one.

use std::collections::BTreeSet;
use std::time::Instant;

/// Pending timers, soonest first.
#[derive(Debug, Default)]
pub struct Timers {
    set: BTreeSet<(Instant, usize, u64)>,
}

impl Timers {
    /// Sets the one timer of `slot` (generation `gen`) to `at`; `current` is where the slot
    /// keeps the time of the timer it has, replaced here.
    pub fn set(&mut self, slot: usize, gen: u64, at: Instant, current: &mut Option<Instant>) {
        if let Some(old) = current.replace(at) {
            self.set.remove(&(old, slot, gen));
        }
        self.set.insert((at, slot, gen));
    }

    /// Removes the timer of `slot`, if it has one.
    pub fn clear(&mut self, slot: usize, gen: u64, current: &mut Option<Instant>) {
        if let Some(old) = current.take() {
            self.set.remove(&(old, slot, gen));
        }
    }

    /// When the soonest timer is due.
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(at, _, _)| at)
    }

    /// Takes the soonest timer if it is due at `now`: its slot and generation.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        let &(at, slot, gen) = self.set.first()?;
        if at > now {
            return None;
        }
        self.set.pop_first();
        Some((slot, gen))
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_timer_per_slot_replaced_and_cleared() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let (mut a, mut b) = (None, None);
        timers.set(1, 7, t0 + Duration::from_secs(5), &mut a);
        timers.set(1, 7, t0 + Duration::from_secs(3), &mut a);
        timers.set(2, 8, t0 + Duration::from_secs(1), &mut b);
        assert_eq!(timers.len(), 2, "a replaced timer leaves one entry");
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        timers.clear(2, 8, &mut b);
        assert_eq!(
            (timers.len(), b),
            (1, None),
            "a connected slot holds no timer"
        );
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(2)), None);
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(3)), Some((1, 7)));
        assert!(timers.is_empty());
    }

    #[test]
    fn due_timers_come_soonest_first() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut slots = [None, None, None];
        for (i, s) in slots.iter_mut().enumerate() {
            timers.set(i, 0, t0 + Duration::from_millis(30 - 10 * i as u64), s);
        }
        let due: Vec<usize> =
            std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(1)).map(|(s, _)| s))
                .collect();
        assert_eq!(due, [2, 1, 0]);
    }
}
