//! The periodic timer tick and the one-shot wake-ups between ticks.
//!
//! The timer is armed for the earlier of the next scheduler tick and the
//! earliest wake-up a sleeping vCPU asked for (its guest timer deadline),
//! so a guest's `wfi` ends at its deadline, not at the next 10 ms tick. A
//! timer interrupt counts as a tick (charging the running task's slice)
//! only when the tick's own deadline has passed.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::obj::MAX_CPUS;

static TICKS: AtomicU64 = AtomicU64::new(0);
static CLOCK_HZ: AtomicU64 = AtomicU64::new(0);
/// Each CPU's clock: every CPU takes its own timer interrupts and ticks
/// (charging the task it runs); CPU 0's ticks are the ones counted.
static CLOCKS: [spin::Mutex<TickClock>; MAX_CPUS] =
    [const { spin::Mutex::new(TickClock::new(u64::MAX / 2)) }; MAX_CPUS];

/// The clock of the CPU running this code.
fn clock() -> spin::MutexGuard<'static, TickClock> {
    CLOCKS[this_cpu() % MAX_CPUS].lock()
}

#[cfg(target_os = "none")]
fn this_cpu() -> usize {
    crate::arch::this_cpu()
}

#[cfg(not(target_os = "none"))]
fn this_cpu() -> usize {
    0
}

/// When the ticks fall, pure (the global one is behind [`on_timer`] and
/// friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickClock {
    interval: u64,
    next_tick: u64,
    tick_pending: bool,
}

impl TickClock {
    /// Ticks every `interval` counts, the first one `interval` from 0.
    pub const fn new(interval: u64) -> Self {
        TickClock {
            interval,
            next_tick: interval,
            tick_pending: false,
        }
    }

    /// Sets the interval and counts the next tick from `now`.
    pub fn start(&mut self, interval: u64, now: u64) -> u64 {
        self.interval = interval.max(1);
        self.next_tick = now.saturating_add(self.interval);
        self.next_tick
    }

    /// A timer interrupt at `now`: a tick if the tick's deadline passed
    /// (the next one is then due an interval later); returns whether it
    /// was one.
    pub fn on_timer(&mut self, now: u64) -> bool {
        if now < self.next_tick {
            return false;
        }
        self.next_tick = now.saturating_add(self.interval);
        self.tick_pending = true;
        true
    }

    /// Takes the tick recorded since the last call (for the scheduler).
    pub fn take_tick(&mut self) -> bool {
        core::mem::take(&mut self.tick_pending)
    }

    /// The deadline to arm: the next tick, or `wakeup` if it is earlier.
    pub fn deadline(&self, wakeup: Option<u64>) -> u64 {
        wakeup.map_or(self.next_tick, |w| w.min(self.next_tick))
    }
}

/// Timer counts between ticks; the next tick is counted from `now`.
/// Returns the first tick's deadline.
pub fn start(counts: u64, now: u64) -> u64 {
    BOOT_CLOCK.store(now, Ordering::Relaxed);
    for clock in &CLOCKS[1..] {
        clock.lock().start(counts, now);
    }
    CLOCKS[0].lock().start(counts, now)
}

/// This CPU's next tick is counted from `now` (it slept without ticks).
pub fn restart_here(now: u64) {
    let mut clock = clock();
    let interval = clock.interval;
    clock.start(interval, now);
}

/// The interval for `hz` ticks per second of a `counts_per_second` clock.
pub fn interval_for(counts_per_second: u64, hz: u64) -> u64 {
    (counts_per_second / hz.max(1)).max(1)
}

/// A timer interrupt at `now`; returns the deadline to arm next (the next
/// tick; callers that know of earlier wake-ups arm [`deadline`] instead).
pub fn on_timer(now: u64) -> u64 {
    let cpu = this_cpu();
    let mut clock = CLOCKS[cpu % MAX_CPUS].lock();
    if clock.on_timer(now) && cpu == 0 {
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
    clock.deadline(None)
}

/// Whether a tick fell since the last call (charge the running task).
pub fn take_tick() -> bool {
    clock().take_tick()
}

/// Whether a tick fell on this CPU that [`take_tick`] has not taken yet.
pub fn tick_pending() -> bool {
    clock().tick_pending
}

/// The deadline to arm given the earliest wake-up anyone waits for.
pub fn deadline(wakeup: Option<u64>) -> u64 {
    clock().deadline(wakeup)
}

/// Timer counts between two ticks.
pub fn interval() -> u64 {
    CLOCKS[0].lock().interval
}

/// Scheduler ticks per second.
pub const TICK_HZ: u64 = ipc::syscall::TICK_HZ as u64;

/// The timer clock's reading when the ticks started (at boot).
static BOOT_CLOCK: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the ticks started (at boot) at timer clock reading
/// `now`; 0 before the timer runs.
pub fn uptime_ms(now: u64) -> u64 {
    uptime_ms_from(BOOT_CLOCK.load(Ordering::Relaxed), now, clock_hz())
}

fn uptime_ms_from(boot: u64, now: u64, hz: u64) -> u64 {
    match hz {
        0 => 0,
        hz => {
            let ms = u128::from(now.saturating_sub(boot)) * 1000 / u128::from(hz);
            u64::try_from(ms).unwrap_or(u64::MAX)
        }
    }
}

/// Records the timer clock's counts per second (`arch::timer_start`'s
/// answer), for turning clock counts into time.
pub fn set_clock_hz(hz: u64) {
    CLOCK_HZ.store(hz, Ordering::Relaxed);
}

/// The timer clock's counts per second; 0 before the timer started.
pub fn clock_hz() -> u64 {
    CLOCK_HZ.load(Ordering::Relaxed)
}

/// Ticks since boot.
pub fn count() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_counts_from_the_start_in_milliseconds() {
        assert_eq!(uptime_ms_from(1_000, 11_000, 10_000), 1_000);
        assert_eq!(uptime_ms_from(1_000, 1_500, 10_000), 50);
        assert_eq!(uptime_ms_from(1_000, 500, 10_000), 0, "before the start");
        assert_eq!(uptime_ms_from(0, 5, 0), 0, "no clock yet");
        assert_eq!(uptime_ms_from(0, u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn interval_divides_the_clock_and_never_is_zero() {
        assert_eq!(interval_for(10_000_000, 100), 100_000);
        assert_eq!(interval_for(10, 100), 1);
        assert_eq!(interval_for(10, 0), 10);
    }

    #[test]
    fn only_an_interrupt_at_or_after_the_tick_deadline_is_a_tick() {
        let mut clock = TickClock::new(1);
        assert_eq!(clock.start(100, 1_000), 1_100);
        // A vCPU's wake-up at 1_030 comes first: armed, but no tick.
        assert_eq!(clock.deadline(Some(1_030)), 1_030);
        assert!(!clock.on_timer(1_030));
        assert!(!clock.take_tick());
        assert_eq!(clock.deadline(None), 1_100);
        assert_eq!(clock.deadline(Some(5_000)), 1_100, "a later wake-up waits");
        assert!(clock.on_timer(1_102));
        assert!(clock.take_tick());
        assert!(!clock.take_tick(), "taken once");
        assert_eq!(clock.deadline(None), 1_202, "an interval after it fell");
    }

    #[test]
    fn the_deadline_saturates() {
        let mut clock = TickClock::new(1);
        assert_eq!(clock.start(100, u64::MAX - 1), u64::MAX);
        assert!(clock.on_timer(u64::MAX));
        assert_eq!(clock.deadline(None), u64::MAX);
        assert_eq!(clock.start(0, 5), 6, "an interval is at least 1");
    }
}
