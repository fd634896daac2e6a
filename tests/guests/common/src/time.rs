//! The `time` CSR (`rdtime`): ticks at the device tree's timebase frequency.

/// The current value of the `time` CSR.
pub fn now() -> u64 {
    let ticks: u64;
    // SAFETY: `rdtime` only reads the time counter into a register.
    unsafe { core::arch::asm!("rdtime {0}", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

/// Spins until `ticks` timebase ticks have passed.
pub fn wait_ticks(ticks: u64) {
    let start = now();
    while now().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
