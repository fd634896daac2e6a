//! Phase 3: instructions a VS-mode guest may not run. HS-mode CSRs and
//! H-extension instructions are virtual-instruction exits Mica injects as
//! illegal instructions; M-mode CSRs, `mret`, a write to a read-only CSR
//! and illegal encodings are illegal instructions the hart delegates;
//! `ebreak` is a breakpoint. `sret` into its own code works, to S-mode
//! and to U-mode (back with `ecall`).

use mica_guest_common::println;

use crate::trap::{self, SSTATUS_SPP, USER_ECALL};

const ILLEGAL_INSTRUCTION: usize = 2;
const BREAKPOINT: usize = 3;
/// `sstatus.SPIE`: kept clear so `sret` leaves interrupts off.
const SSTATUS_SPIE: usize = 1 << 5;

/// One case: its name, the cause it must raise, and a function that runs
/// it and returns the address of the instruction.
type Case = (&'static str, usize, fn() -> usize);

/// A function running the 4-byte instruction `$insn` at a label whose
/// address it returns.
macro_rules! at_label {
    ($insn:literal) => {{
        fn one() -> usize {
            let at: usize;
            // SAFETY: the instruction traps to this guest's own vector,
            // which resumes after it; it writes at most a0 (declared).
            unsafe {
                core::arch::asm!(
                    ".option push",
                    ".option norvc",
                    "lla {0}, 1f",
                    concat!("1: .4byte ", $insn),
                    ".option pop",
                    out(reg) at,
                    out("a0") _,
                    options(nostack),
                );
            }
            at
        }
        one
    }};
}

const CASES: [Case; 16] = [
    ("csrr hstatus", ILLEGAL_INSTRUCTION, at_label!("0x60002573")),
    ("csrw hgatp", ILLEGAL_INSTRUCTION, at_label!("0x68051073")),
    ("csrr hgatp", ILLEGAL_INSTRUCTION, at_label!("0x68002573")),
    ("csrw hedeleg", ILLEGAL_INSTRUCTION, at_label!("0x60251073")),
    (
        "csrr vsstatus",
        ILLEGAL_INSTRUCTION,
        at_label!("0x20002573"),
    ),
    ("hfence.gvma", ILLEGAL_INSTRUCTION, at_label!("0x62000073")),
    ("hfence.vvma", ILLEGAL_INSTRUCTION, at_label!("0x22000073")),
    ("hlv.d", ILLEGAL_INSTRUCTION, at_label!("0x6c004573")),
    ("hsv.w", ILLEGAL_INSTRUCTION, at_label!("0x6aa04073")),
    ("csrr mstatus", ILLEGAL_INSTRUCTION, at_label!("0x30002573")),
    ("csrw mtvec", ILLEGAL_INSTRUCTION, at_label!("0x30551073")),
    ("mret", ILLEGAL_INSTRUCTION, at_label!("0x30200073")),
    ("csrw time", ILLEGAL_INSTRUCTION, at_label!("0xc0151073")),
    (
        "custom-0 opcode",
        ILLEGAL_INSTRUCTION,
        at_label!("0x0000000b"),
    ),
    (
        "all-ones word",
        ILLEGAL_INSTRUCTION,
        at_label!("0xffffffff"),
    ),
    ("ebreak", BREAKPOINT, at_label!("0x00100073")),
];

pub fn run() {
    let _ = trap::take();
    for (name, want, case) in CASES {
        let at = case();
        match trap::take() {
            Some((cause, _, epc)) if cause == want && epc == at => {}
            other => {
                println!(
                    "hostile: privileged FAILED: {name}: {other:x?}, wanted scause {want} at {at:#x}"
                );
                return;
            }
        }
    }
    if let Err(what) = sret_tricks() {
        println!("hostile: privileged FAILED: {what}");
        return;
    }
    println!(
        "hostile: privileged ok ({} instructions trapped to the guest, sret to S and U works)",
        CASES.len()
    );
}

/// `sret` to its own next instruction in S-mode (no trap), then to
/// U-mode, whose `ecall` comes back to S-mode through the vector.
fn sret_tricks() -> Result<(), &'static str> {
    // SAFETY: `sret` to the label right after it, in S-mode, interrupts
    // staying off; only t0 and t1 change.
    unsafe {
        core::arch::asm!(
            "lla t0, 1f",
            "csrw sepc, t0",
            "csrs sstatus, {spp}",
            "csrc sstatus, {spie}",
            "sret",
            "1:",
            spp = in(reg) SSTATUS_SPP,
            spie = in(reg) SSTATUS_SPIE,
            out("t0") _,
            options(nostack),
        );
    }
    if trap::take().is_some() {
        return Err("sret to S-mode trapped");
    }
    let ecall_at: usize;
    // SAFETY: `sret` to U-mode at the label, whose `ecall` (a U-mode
    // environment call, delegated to this guest) the vector turns back
    // into S-mode past it; the stack and code are the same memory.
    unsafe {
        core::arch::asm!(
            "lla {at}, 1f",
            "csrw sepc, {at}",
            "csrc sstatus, {spp}",
            "csrc sstatus, {spie}",
            "sret",
            "1: ecall",
            at = out(reg) ecall_at,
            spp = in(reg) SSTATUS_SPP,
            spie = in(reg) SSTATUS_SPIE,
            options(nostack),
        );
    }
    match trap::take() {
        Some((USER_ECALL, _, epc)) if epc == ecall_at => {}
        _ => return Err("sret to U-mode: no U-mode ecall came back"),
    }
    // SAFETY: reads sstatus, which traps unless this runs in S-mode.
    unsafe { core::arch::asm!("csrr {0}, sstatus", out(reg) _, options(nomem, nostack)) };
    if trap::take().is_some() {
        return Err("not back in S-mode after the U-mode ecall");
    }
    Ok(())
}
