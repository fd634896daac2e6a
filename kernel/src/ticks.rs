//! The periodic timer tick: counts ticks and computes the next deadline.

use core::sync::atomic::{AtomicU64, Ordering};

static TICKS: AtomicU64 = AtomicU64::new(0);
static INTERVAL: AtomicU64 = AtomicU64::new(u64::MAX / 2);

/// Timer counts between ticks.
pub fn set_interval(counts: u64) {
    INTERVAL.store(counts.max(1), Ordering::Relaxed);
}

/// The interval for `hz` ticks per second of a `counts_per_second` clock.
pub fn interval_for(counts_per_second: u64, hz: u64) -> u64 {
    (counts_per_second / hz.max(1)).max(1)
}

/// Records one tick at time `now`; returns the next deadline.
pub fn on_tick(now: u64) -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed);
    now.saturating_add(INTERVAL.load(Ordering::Relaxed))
}

/// Ticks since boot.
pub fn count() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_divides_the_clock_and_never_is_zero() {
        assert_eq!(interval_for(10_000_000, 100), 100_000);
        assert_eq!(interval_for(10, 100), 1);
        assert_eq!(interval_for(10, 0), 10);
    }

    #[test]
    fn each_tick_counts_and_saturates_the_deadline() {
        let before = count();
        assert_eq!(on_tick(u64::MAX - 1), u64::MAX);
        assert!(count() > before);
    }
}
