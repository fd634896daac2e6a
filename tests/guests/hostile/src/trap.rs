//! The hostile guest's trap vector: it records every exception (cause,
//! trap value, pc) and resumes past the instruction (or at an address
//! armed beforehand, for a fetch that cannot be skipped); it counts the
//! timer and software interrupts of the storms and silences each (the
//! timer pushed to the far future, `sip.SSIP` cleared).

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::sbi;

/// The interrupt bit of `scause`.
pub const INTERRUPT: usize = 1 << 63;
const SUPERVISOR_SOFTWARE: usize = 1;
const SUPERVISOR_TIMER: usize = 5;
/// `sip.SSIP`.
const SIP_SSIP: usize = 1 << 1;
/// `sstatus.SPP`: where `sret` returns (1 = S-mode).
pub const SSTATUS_SPP: usize = 1 << 8;
/// An environment call from U-mode.
pub const USER_ECALL: usize = 8;

/// The last exception: cause (`usize::MAX` = none since the last take),
/// trap value and pc.
static CAUSE: AtomicUsize = AtomicUsize::new(usize::MAX);
static TVAL: AtomicUsize = AtomicUsize::new(0);
static EPC: AtomicUsize = AtomicUsize::new(0);
/// Where the next exception resumes (0: past the instruction).
static RESUME: AtomicUsize = AtomicUsize::new(0);
/// Timer and software interrupts taken since boot.
static TIMER_IRQS: AtomicUsize = AtomicUsize::new(0);
static SOFT_IRQS: AtomicUsize = AtomicUsize::new(0);

mica_guest_common::trap_vector!(hostile_trap);

/// Points `stvec` at the vector (direct mode).
pub fn install() {
    // SAFETY: this guest's own trap vector (4-aligned); nothing else runs.
    unsafe {
        core::arch::asm!("csrw stvec, {0}", in(reg) mica_guest_trap_vector as *const () as usize);
    }
}

#[unsafe(no_mangle)]
extern "C" fn hostile_trap(cause: usize, tval: usize, epc: usize) -> usize {
    if cause & INTERRUPT != 0 {
        match cause & !INTERRUPT {
            SUPERVISOR_TIMER => {
                TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
                sbi::set_timer(u64::MAX);
            }
            SUPERVISOR_SOFTWARE => {
                SOFT_IRQS.fetch_add(1, Ordering::Relaxed);
                // SAFETY: clears this hart's own pending software interrupt.
                unsafe { core::arch::asm!("csrc sip, {0}", in(reg) SIP_SSIP) };
            }
            _ => {}
        }
        return epc;
    }
    CAUSE.store(cause, Ordering::Relaxed);
    TVAL.store(tval, Ordering::Relaxed);
    EPC.store(epc, Ordering::Relaxed);
    if cause == USER_ECALL {
        // Back to S-mode past the `ecall` (the U-mode trick's way home).
        // SAFETY: only changes where this handler's own `sret` returns.
        unsafe { core::arch::asm!("csrs sstatus, {0}", in(reg) SSTATUS_SPP) };
    }
    let resume = RESUME.swap(0, Ordering::Relaxed);
    if resume != 0 {
        return resume;
    }
    // SAFETY: `epc` is the pc of the trapping instruction in this image's
    // text, readable guest RAM (fetch faults arm RESUME instead).
    let low = unsafe { (epc as *const u16).read_volatile() };
    epc + if low & 0b11 == 0b11 { 4 } else { 2 }
}

/// Makes the next exception resume at `pc` instead of past its
/// instruction.
pub fn resume_at(pc: usize) {
    RESUME.store(pc, Ordering::Relaxed);
}

/// The exception taken since the last call, if any: (cause, tval, epc).
pub fn take() -> Option<(usize, usize, usize)> {
    let cause = CAUSE.swap(usize::MAX, Ordering::Relaxed);
    (cause != usize::MAX).then(|| {
        (
            cause,
            TVAL.load(Ordering::Relaxed),
            EPC.load(Ordering::Relaxed),
        )
    })
}

/// Timer interrupts taken since boot.
pub fn timer_irqs() -> usize {
    TIMER_IRQS.load(Ordering::Relaxed)
}

/// Software interrupts taken since boot.
pub fn soft_irqs() -> usize {
    SOFT_IRQS.load(Ordering::Relaxed)
}
