//! The boot CPU's local APIC, through its MMIO page (identity-mapped,
//! uncached): enable, end of interrupt, and the one-shot timer.

use super::msr_io::{rdmsr, wrmsr};

/// IA32_APIC_BASE.
const APIC_BASE_MSR: u32 = 0x1b;
/// Global enable in IA32_APIC_BASE.
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const EOI: usize = 0xb0;
const SPURIOUS: usize = 0xf0;
const LVT_TIMER: usize = 0x320;
const INITIAL_COUNT: usize = 0x380;
const CURRENT_COUNT: usize = 0x390;
const DIVIDE_CONFIG: usize = 0x3e0;
/// LVT mask bit.
const MASKED: u32 = 1 << 16;
/// Software enable in the spurious-interrupt register.
const SOFTWARE_ENABLE: u32 = 1 << 8;

/// The physical address of the LAPIC's register page.
pub fn base() -> u64 {
    rdmsr(APIC_BASE_MSR) & 0x000f_ffff_ffff_f000
}

fn write(reg: usize, value: u32) {
    let addr = base() as usize + reg;
    // SAFETY: `addr` is a register of the LAPIC page (from IA32_APIC_BASE),
    // identity-mapped uncached by the boot and kernel tables.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) };
}

fn read(reg: usize) -> u32 {
    let addr = base() as usize + reg;
    // SAFETY: as in `write`; LAPIC register reads have no side effect.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Enables the LAPIC with `spurious` as its spurious vector; the timer
/// stays masked, dividing the bus clock by `divide` (the DCR encoding).
pub fn enable(spurious: u8, divide: u32) {
    let msr = rdmsr(APIC_BASE_MSR) | APIC_GLOBAL_ENABLE;
    // SAFETY: sets the global enable bit of IA32_APIC_BASE, keeping its base.
    unsafe { wrmsr(APIC_BASE_MSR, msr) };
    write(SPURIOUS, SOFTWARE_ENABLE | u32::from(spurious));
    write(LVT_TIMER, MASKED);
    write(DIVIDE_CONFIG, divide);
}

/// Unmasks the timer in one-shot mode on `vector`.
pub fn one_shot(vector: u8) {
    write(LVT_TIMER, u32::from(vector));
}

/// Starts the timer counting down from `count`.
pub fn start_count(count: u32) {
    write(INITIAL_COUNT, count);
}

/// The timer's current count.
pub fn current_count() -> u32 {
    read(CURRENT_COUNT)
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}
