//! Time on x86_64: the TSC as the clock. No timer interrupt is wired yet
//! (the LAPIC timer comes with the IDT), so `timer_start` reports none and
//! the generic boot skips its tick check.

use super::firmware::Firmware;

/// Starts the periodic timer; `None`: x86_64 has no timer interrupt yet.
pub fn timer_start(_: &Firmware) -> Option<u64> {
    None
}

/// Where ticks come from, for the boot log.
pub fn timer_source() -> &'static str {
    "none"
}

/// The current time stamp counter.
pub fn timer_now() -> u64 {
    // SAFETY: RDTSC only reads the time stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Arms the next tick. Never called while `timer_start` reports no timer.
pub fn timer_set_deadline(_deadline: u64) {}

/// Sleeps until the next interrupt.
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` idles the CPU until an interrupt; no memory is
    // touched.
    unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Sets up trap handling. Nothing yet: the boot GDT stays and no IDT is
/// loaded, so any exception resets the machine (QEMU exits).
pub fn trap_init() {}
