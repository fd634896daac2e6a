//! The bench guest's second hart: started with SBI HSM `hart_start` on its
//! own stack, it answers each IPI (SBI sPI `send_ipi`) with one back to the
//! boot hart until told to stop, then stops itself (HSM `hart_stop`). The
//! boot hart times the IPI round trip and the SBI RFENCE calls while it
//! runs (`main.rs`).
//!
//! Both harts wait with `wfi`, `sie.SSIE` set and `sstatus.SIE` clear: a
//! pending supervisor software interrupt ends the wait, no trap is taken,
//! and the waiter clears `sip.SSIP` itself.

use core::sync::atomic::{AtomicBool, Ordering};

/// SBI extensions: HSM, sPI (IPI) and RFENCE.
const EID_HSM: usize = 0x0048_534d;
const EID_IPI: usize = 0x0073_5049;
const EID_RFENCE: usize = 0x5246_4e43;
/// HSM `hart_start`, `hart_stop`, `hart_get_status`; the state `STOPPED`.
const HSM_HART_START: usize = 0;
const HSM_HART_STOP: usize = 1;
const HSM_HART_GET_STATUS: usize = 2;
const HSM_STOPPED: usize = 1;
/// RFENCE `remote_fence_i`, `remote_sfence_vma`.
const RFENCE_FENCE_I: usize = 0;
const RFENCE_SFENCE_VMA: usize = 1;
/// `sip`/`sie` bit of the supervisor software interrupt.
const SSIP: usize = 1 << 1;
/// HSM status polls while waiting for the partner to stop.
const STOP_POLLS: usize = 100_000;

/// Set by the boot hart before its last IPI: the partner stops instead of
/// answering.
static STOP: AtomicBool = AtomicBool::new(false);

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .globl bench_partner_entry
bench_partner_entry:            # a0 = hart id, a1 = opaque (the boot hart)
    la      sp, bench_partner_stack_top
    call    {main}
1:
    wfi
    j       1b

    .section .bss.bench_partner_stack, "aw", @nobits
    .balign 16
    .space  16384
bench_partner_stack_top:
    .section .text
"#,
    main = sym partner_main,
);

unsafe extern "C" {
    fn bench_partner_entry();
}

/// An SBI call without memory arguments: (error, value).
fn sbi(eid: usize, fid: usize, args: [usize; 6]) -> (isize, usize) {
    // SAFETY: every call made here (HSM, sPI, RFENCE) takes hart masks,
    // hart ids or addresses to fence, never guest memory to read or write;
    // `hart_stop` does not return, which its caller expects.
    unsafe { mica_guest_common::sbi::ecall(eid, fid, args) }
}

/// The partner hart for `boot` (the hart the guest was entered on): hart 1,
/// or hart 0 if the boot hart is not 0.
pub fn partner_of(boot: usize) -> usize {
    if boot == 0 { 1 } else { 0 }
}

/// Whether `hart` exists and is stopped (HSM `hart_get_status`): a hart the
/// machine does not have is an `INVALID_PARAM` error.
pub fn is_stopped(hart: usize) -> bool {
    sbi(EID_HSM, HSM_HART_GET_STATUS, [hart, 0, 0, 0, 0, 0]) == (0, HSM_STOPPED)
}

/// Lets a software interrupt end this hart's `wfi`.
fn enable_ssie() {
    // SAFETY: with sstatus.SIE clear, setting sie.SSIE takes no trap; it
    // only makes a pending IPI end `wfi`.
    unsafe { core::arch::asm!("csrs sie, {0}", in(reg) SSIP, options(nomem, nostack)) };
}

/// Starts `hart` at the partner entry, answering IPIs to `boot`, and waits
/// for its first IPI (it is up: OpenSBI drops an IPI to a hart still
/// starting); false if HSM refused.
pub fn start_partner(boot: usize, hart: usize) -> bool {
    enable_ssie();
    STOP.store(false, Ordering::SeqCst);
    let entry = bench_partner_entry as *const () as usize;
    if sbi(EID_HSM, HSM_HART_START, [hart, entry, boot, 0, 0, 0]).0 != 0 {
        return false;
    }
    wait_ipi();
    true
}

/// Tells the partner `hart` to stop, waits for its acknowledging IPI and
/// for HSM to report it stopped; false if it did not stop.
pub fn stop_partner(hart: usize) -> bool {
    STOP.store(true, Ordering::SeqCst);
    send_ipi(hart);
    wait_ipi();
    (0..STOP_POLLS).any(|_| is_stopped(hart))
}

/// SBI sPI `send_ipi` to `hart` alone.
pub fn send_ipi(hart: usize) {
    sbi(EID_IPI, 0, [1, hart, 0, 0, 0, 0]);
}

/// Waits (`wfi`) until a software interrupt is pending, then clears it.
pub fn wait_ipi() {
    loop {
        let sip: usize;
        // SAFETY: reading `sip` has no side effect.
        unsafe { core::arch::asm!("csrr {0}, sip", out(reg) sip, options(nomem, nostack)) };
        if sip & SSIP != 0 {
            break;
        }
        // SAFETY: `wfi` only waits for an interrupt to be pending.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
    // SAFETY: clearing sip.SSIP only acknowledges the IPI just seen.
    unsafe { core::arch::asm!("csrc sip, {0}", in(reg) SSIP, options(nomem, nostack)) };
}

/// One IPI to `hart` and its answer back.
pub fn ipi_round_trip(hart: usize) {
    send_ipi(hart);
    wait_ipi();
}

/// An IPI to this hart itself, then `wfi` (which returns at once: the IPI
/// is pending) and the clear: the two exits of one side of a round trip
/// without a switch to another hart.
pub fn ipi_self(hart: usize) {
    send_ipi(hart);
    // SAFETY: `wfi` only waits for an interrupt to be pending.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    wait_ipi();
}

/// SBI RFENCE `remote_sfence_vma` of the whole address space on the harts
/// of `mask` (bit N = hart N).
pub fn remote_sfence_vma(mask: usize) {
    sbi(
        EID_RFENCE,
        RFENCE_SFENCE_VMA,
        [mask, 0, 0, usize::MAX, 0, 0],
    );
}

/// SBI RFENCE `remote_fence_i` on the harts of `mask`.
pub fn remote_fence_i(mask: usize) {
    sbi(EID_RFENCE, RFENCE_FENCE_I, [mask, 0, 0, 0, 0, 0]);
}

/// The partner hart: says it is up with an IPI to `boot`, answers every
/// IPI with one to `boot` until [`STOP`], then acknowledges and stops.
extern "C" fn partner_main(_hart: usize, boot: usize) -> ! {
    enable_ssie();
    send_ipi(boot);
    loop {
        wait_ipi();
        let stop = STOP.load(Ordering::SeqCst);
        send_ipi(boot);
        if stop {
            sbi(EID_HSM, HSM_HART_STOP, [0; 6]);
        }
    }
}
