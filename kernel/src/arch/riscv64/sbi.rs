//! Calls into the SBI firmware (OpenSBI): debug console, system reset,
//! timer, hart start (HSM) and extension probing.

use core::sync::atomic::{AtomicU8, Ordering};

const EID_BASE: usize = 0x10;
const EID_LEGACY_PUTCHAR: usize = 0x01;
const EID_LEGACY_SHUTDOWN: usize = 0x08;
const EID_TIME: usize = 0x5449_4d45;
pub(super) const EID_SRST: usize = 0x5352_5354;
/// The Hart State Management extension (`sbi_hart_start`).
pub(super) const EID_HSM: usize = 0x0048_534d;
const HSM_HART_START: usize = 0;
pub(super) const EID_DBCN: usize = 0x4442_434e;
const BASE_PROBE_EXTENSION: usize = 3;

/// `sbi_system_reset` reason: none (a clean shutdown).
pub const RESET_REASON_NONE: usize = 0;
/// `sbi_system_reset` reason: system failure.
pub const RESET_REASON_FAILURE: usize = 1;

/// An SBI return: `(error, value)`.
pub(super) fn ecall(eid: usize, fid: usize, a0: usize, a1: usize, a2: usize) -> (isize, usize) {
    let (error, value): (isize, usize);
    // SAFETY: the SBI calling convention clobbers only a0/a1; the firmware
    // reads memory only where an argument points (the console buffer, which
    // is identity-mapped kernel memory valid for the call).
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") a0 => error,
            inlateout("a1") a1 => value,
            in("a2") a2,
            in("a6") fid,
            in("a7") eid,
            options(nostack),
        );
    }
    (error, value)
}

/// Whether the firmware implements extension `eid`.
pub fn probe(eid: usize) -> bool {
    let (error, value) = ecall(EID_BASE, BASE_PROBE_EXTENSION, eid, 0, 0);
    error == 0 && value != 0
}

/// 0 = not probed yet, 1 = DBCN, 2 = legacy putchar only.
static CONSOLE_KIND: AtomicU8 = AtomicU8::new(0);

/// Writes `s` to the firmware console (DBCN, or legacy putchar without it).
pub fn console_write(s: &str) {
    let kind = match CONSOLE_KIND.load(Ordering::Relaxed) {
        0 => {
            let kind = if probe(EID_DBCN) { 1 } else { 2 };
            CONSOLE_KIND.store(kind, Ordering::Relaxed);
            kind
        }
        k => k,
    };
    if kind == 1 {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            // The kernel runs identity-mapped: the virtual address is physical.
            let (error, written) = ecall(EID_DBCN, 0, rest.len(), rest.as_ptr() as usize, 0);
            if error != 0 || written == 0 {
                break;
            }
            rest = rest.get(written..).unwrap_or_default();
        }
    } else {
        for &b in s.as_bytes() {
            ecall(EID_LEGACY_PUTCHAR, 0, usize::from(b), 0, 0);
        }
    }
}

/// Powers the machine off with `reason`; QEMU exits 0 for
/// [`RESET_REASON_NONE`] and non-zero for [`RESET_REASON_FAILURE`].
pub fn shutdown(reason: usize) -> ! {
    if probe(EID_SRST) {
        ecall(EID_SRST, 0, 0, reason, 0);
    }
    ecall(EID_LEGACY_SHUTDOWN, 0, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

/// Arms the S-mode timer for absolute time `deadline` (SBI TIME).
pub fn set_timer(deadline: u64) {
    ecall(EID_TIME, 0, deadline as usize, 0, 0);
}

/// Starts the stopped hart `hart` in S-mode at physical address `entry`
/// with a0 = `hart`, a1 = `opaque`, satp = 0 and interrupts off (SBI HSM
/// `hart_start`); the error is the SBI error code.
pub fn hart_start(hart: usize, entry: usize, opaque: usize) -> Result<(), isize> {
    match ecall(EID_HSM, HSM_HART_START, hart, entry, opaque) {
        (0, _) => Ok(()),
        (error, _) => Err(error),
    }
}

/// The sPI extension (IPIs between harts).
const EID_IPI: usize = 0x0073_5049;

/// Sends a supervisor software interrupt to the harts of `mask` (bit `n`
/// = hart `base + n`; SBI sPI `send_ipi`).
pub fn send_ipi(mask: usize, base: usize) {
    ecall(EID_IPI, 0, mask, base, 0);
}

/// The SBI specification's name for `error`, for the log.
pub fn error_name(error: isize) -> &'static str {
    match error {
        -1 => "failed",
        -2 => "not supported",
        -3 => "invalid parameter",
        -4 => "denied",
        -5 => "invalid address",
        -6 => "already available",
        -7 => "already started",
        -8 => "already stopped",
        _ => "unknown error",
    }
}
