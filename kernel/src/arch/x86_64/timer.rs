//! Time and traps on x86_64: the TSC is the clock, the local APIC timer in
//! one-shot mode raises the tick at each deadline; both are calibrated
//! against PIT channel 2 over 10 ms. `trap_init` loads the GDT/TSS and the
//! IDT, masks the 8259 PICs and runs a command-line test hook, if any.

use core::sync::atomic::{AtomicU64, Ordering};

use super::idt::{self, PIC_BASE, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::port::{inb, outb};
use super::testhook::TestHook;
use super::{firmware::Firmware, gdt, lapic};
use crate::klog;

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms of PIT counts.
const CALIBRATION_COUNTS: u16 = (PIT_HZ / 100) as u16;
/// The LAPIC timer divides the bus clock by 16.
const LAPIC_DIVIDE_16: u32 = 0x3;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);
static TEST_HOOK: spin::Once<Option<TestHook>> = spin::Once::new();

/// Remembers the command line's test hook for `trap_init`.
pub fn set_test_hook(hook: Option<TestHook>) {
    TEST_HOOK.call_once(|| hook);
}

/// Counts of the TSC and the LAPIC timer during 10 ms of PIT channel 2.
fn calibrate() -> (u64, u64) {
    // SAFETY: ports 0x61 (speaker/PIT gate), 0x43 and 0x42 (PIT mode and
    // channel 2) belong to the PIT, which nothing else in the kernel uses;
    // the speaker output stays off.
    unsafe {
        let gate = inb(0x61) & !0x03;
        outb(0x61, gate);
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        outb(0x42, CALIBRATION_COUNTS as u8);
        outb(0x42, (CALIBRATION_COUNTS >> 8) as u8);
        lapic::start_count(u32::MAX);
        let tsc0 = timer_now();
        outb(0x61, gate | 0x01);
        while inb(0x61) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let tsc1 = timer_now();
        let lapic = u64::from(u32::MAX - lapic::current_count());
        outb(0x61, gate);
        (tsc1 - tsc0, lapic)
    }
}

/// Calibrates the TSC and the LAPIC timer and enables the timer interrupt;
/// returns the TSC frequency (the clock deadlines are in).
pub fn timer_start(_: &Firmware) -> Option<u64> {
    lapic::enable(SPURIOUS_VECTOR as u8, LAPIC_DIVIDE_16);
    let (tsc, lapic) = calibrate();
    if tsc == 0 || lapic == 0 {
        return None;
    }
    TSC_HZ.store(tsc * 100, Ordering::Relaxed);
    LAPIC_HZ.store(lapic * 100, Ordering::Relaxed);
    lapic::one_shot(TIMER_VECTOR as u8);
    Some(tsc * 100)
}

/// The calibrated TSC frequency (0 before `timer_start`, or when
/// calibration failed).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// The LAPIC timer's divide configuration (bus clock / 16), for every CPU.
pub const LAPIC_DIVIDE: u32 = LAPIC_DIVIDE_16;

/// Where ticks come from, for the boot log.
pub fn timer_source() -> &'static str {
    "the LAPIC timer (PIT-calibrated)"
}

/// What `platform_info` reports: nothing, x86 guests have no device tree
/// timebase to take from the host.
pub fn platform_info() -> Option<(u64, usize)> {
    None
}

/// The current time stamp counter.
pub fn timer_now() -> u64 {
    // SAFETY: RDTSC only reads the time stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The LAPIC timer count that spans `tsc_delta` TSC counts (at least 1).
pub fn lapic_counts(tsc_delta: u64, tsc_hz: u64, lapic_hz: u64) -> u32 {
    let counts = u128::from(tsc_delta) * u128::from(lapic_hz) / u128::from(tsc_hz.max(1));
    u32::try_from(counts).unwrap_or(u32::MAX).max(1)
}

/// Arms one timer interrupt at TSC count `deadline`.
pub fn timer_set_deadline(deadline: u64) {
    let delta = deadline.saturating_sub(timer_now());
    let tsc_hz = TSC_HZ.load(Ordering::Relaxed);
    let lapic_hz = LAPIC_HZ.load(Ordering::Relaxed);
    lapic::start_count(lapic_counts(delta, tsc_hz, lapic_hz));
}

/// Signals the end of the timer interrupt to the LAPIC.
pub fn end_of_interrupt() {
    lapic::eoi();
}

/// Sleeps until the next interrupt, which runs before this returns.
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` idles the CPU until an interrupt (the one-instruction
    // interrupt shadow of `sti` keeps the wake-up from being missed); the
    // handler runs, and `cli` restores the kernel's interrupts-off state.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Remaps and masks the 8259 PICs: the LAPIC delivers every interrupt.
fn mask_pics() {
    // SAFETY: the 8259 command and data ports; the standard initialization
    // sequence moves its vectors off the exceptions and masks every line.
    unsafe {
        for (cmd, data, base, cascade) in [(0x20, 0x21, PIC_BASE, 4), (0xa0, 0xa1, PIC_BASE + 8, 2)]
        {
            outb(cmd, 0x11);
            outb(data, base);
            outb(data, cascade);
            outb(data, 0x01);
            outb(data, 0xff);
        }
    }
}

/// Loads the GDT/TSS and the IDT, masks the PICs, then runs a test hook
/// from the command line (which ends the boot with the failure exit).
pub fn trap_init() {
    gdt::init();
    idt::init();
    super::fpu::init();
    super::usermode::init();
    mask_pics();
    let hook = TEST_HOOK.get().copied().flatten();
    match hook {
        None => {}
        Some(TestHook::InvalidOpcode) => {
            klog::print(format_args!(
                "mica: test hook mica.test=ud2: executing ud2\n"
            ));
            // SAFETY: raises #UD on purpose; the IDT is loaded, so the
            // handler reports it and powers off.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
        Some(TestHook::NullStore) => {
            klog::print(format_args!(
                "mica: test hook mica.test=pf: storing to 0x0\n"
            ));
            // SAFETY: a store to page 0, which the kernel tables leave
            // unmapped: raises #PF on purpose, reported by the handler.
            unsafe {
                core::arch::asm!("mov qword ptr [{}], 1", in(reg) 0u64, options(nostack));
            }
        }
    }
}
