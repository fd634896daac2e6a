//! The running CPU's local APIC, through its MMIO page (identity-mapped,
//! uncached): enable, its id, end of interrupt, the one-shot timer and the
//! INIT and STARTUP IPIs that start another CPU, and the fixed IPI that
//! kicks one.

use super::msr_io::{rdmsr, wrmsr};

/// IA32_APIC_BASE.
const APIC_BASE_MSR: u32 = 0x1b;
/// Global enable in IA32_APIC_BASE.
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const ID: usize = 0x20;
const EOI: usize = 0xb0;
const SPURIOUS: usize = 0xf0;
const LVT_TIMER: usize = 0x320;
const INITIAL_COUNT: usize = 0x380;
const CURRENT_COUNT: usize = 0x390;
const DIVIDE_CONFIG: usize = 0x3e0;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
/// ICR: INIT delivery mode, level assert.
const ICR_INIT: u32 = 0x0000_4500;
/// ICR: STARTUP delivery mode, level assert (the low byte is the vector).
const ICR_STARTUP: u32 = 0x0000_4600;
/// ICR: fixed delivery mode, level assert (the low byte is the vector).
const ICR_FIXED: u32 = 0x0000_4000;
/// ICR: the previous IPI is still being sent.
const ICR_PENDING: u32 = 1 << 12;
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

/// This CPU's local APIC id (xAPIC: bits 31:24 of the ID register).
pub fn id() -> u32 {
    read(ID) >> 24
}

/// Sends an INIT IPI to the CPU with local APIC id `apic_id`, which resets
/// it into wait-for-SIPI.
pub fn send_init(apic_id: u32) {
    send(apic_id, ICR_INIT);
}

/// Sends a STARTUP IPI to the CPU `apic_id`: it starts in real mode at
/// `page << 12` (CS = page << 8, IP = 0).
pub fn send_startup(apic_id: u32, page: u8) {
    send(apic_id, ICR_STARTUP | u32::from(page));
}

/// Sends a fixed interrupt on `vector` to the CPU with local APIC id
/// `apic_id`, after the last IPI this CPU sent has left (its ICR takes
/// one at a time).
pub fn send_fixed(apic_id: u32, vector: u8) {
    while ipi_pending() {
        core::hint::spin_loop();
    }
    send(apic_id, ICR_FIXED | u32::from(vector));
}

/// Whether the last IPI is still being delivered (ICR delivery status).
pub fn ipi_pending() -> bool {
    read(ICR_LOW) & ICR_PENDING != 0
}

fn send(apic_id: u32, command: u32) {
    write(ICR_HIGH, (apic_id & 0xff) << 24);
    // Writing the low word sends the IPI.
    write(ICR_LOW, command);
}
