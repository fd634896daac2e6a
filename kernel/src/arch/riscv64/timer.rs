//! The S-mode timer: `time` for now, and the next interrupt armed through
//! Sstc's `stimecmp` when present, else through SBI TIME.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{csr, sbi};

static USE_SSTC: AtomicBool = AtomicBool::new(false);
static TICKS_PER_SECOND: AtomicU64 = AtomicU64::new(10_000_000);

/// Sets the tick frequency (the DT `timebase-frequency`) and whether the
/// hart has Sstc; enables timer interrupts.
pub fn init(ticks_per_second: u64, sstc: bool) {
    TICKS_PER_SECOND.store(ticks_per_second, Ordering::Relaxed);
    USE_SSTC.store(sstc, Ordering::Relaxed);
    csr::sie::set(csr::SIE_STIE);
}

/// Timer ticks per second.
pub fn ticks_per_second() -> u64 {
    TICKS_PER_SECOND.load(Ordering::Relaxed)
}

/// The current time in ticks.
pub fn now() -> u64 {
    csr::time::read() as u64
}

/// Arms one timer interrupt at absolute tick `deadline`.
pub fn set_deadline(deadline: u64) {
    if USE_SSTC.load(Ordering::Relaxed) {
        csr::stimecmp::write(deadline as usize);
    } else {
        sbi::set_timer(deadline);
    }
}

/// Whether timer deadlines go straight to `stimecmp`.
pub fn uses_sstc() -> bool {
    USE_SSTC.load(Ordering::Relaxed)
}

/// What `platform_info` reports: the timebase (guests see the same one)
/// and `ipc::syscall::PLATFORM_SSTC` when the hart has Sstc.
pub fn platform_info() -> Option<(u64, usize)> {
    let flags = if uses_sstc() {
        ipc::syscall::PLATFORM_SSTC
    } else {
        0
    };
    Some((ticks_per_second(), flags))
}

/// Enables interrupts and waits for one (`wfi`).
pub fn wait_for_interrupt() {
    csr::sstatus::set(csr::SSTATUS_SIE);
    // SAFETY: `wfi` only pauses the hart until an interrupt is pending.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    csr::sstatus::clear(csr::SSTATUS_SIE);
}
