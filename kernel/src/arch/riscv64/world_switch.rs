//! The world switch: [`enter_guest`] saves the kernel's callee-saved state,
//! points `stvec` at a guest-exit vector, loads the guest's registers and
//! `sret`s into VS-mode; the next trap from the guest lands in that vector,
//! which stores the guest's registers, pc and `sstatus` and returns to the
//! caller as if `enter_guest` were an ordinary call.
//!
//! The entry sets `hstatus.SPV` (the rest of `hstatus`, VTW and SPVP, the
//! caller sets once per run) and the exit clears it again, so the
//! kernel's next `sret` (to a U-mode task) does not enter a guest by
//! mistake. The exit leaves SPVP, the mode the guest trapped in, in the
//! CSR. `sstatus` is not restored at the exit: the trap left SIE clear,
//! SUM and MXR are the kernel's (a guest cannot change them), and FS and
//! SPP matter only to the FP save and to the next `sret`, whose `sstatus`
//! the next entry or the return to a task writes whole.
//!
//! The host's `tp` (the CPU number, see `cpus::this_cpu`) is saved and
//! restored with the callee-saved registers: the guest owns `tp` while it
//! runs.
//!
//! While the guest runs, `sscratch` holds the [`GuestFrame`]'s address; the
//! kernel's own trap vector and `sscratch` (always `__trap_entry` and 0 in
//! the kernel, see `trap.rs`) are put back before returning.

use core::mem::offset_of;

use crate::vm::posted::PostLease;

/// A vCPU's registers as the switch saves them, plus the trap that ended
/// the last run.
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct GuestFrame {
    /// x0..x31 of the guest (x0 kept 0).
    pub regs: [usize; 32],
    /// Where the guest resumes.
    pub sepc: usize,
    /// `sstatus` for the entry: SPP=1 (VS-mode), SIE/SPIE clear.
    pub sstatus: usize,
    host: [usize; 15],
    /// SBI calls the running hart served without the kernel lock since the
    /// kernel last counted the vCPU's exits (`vcpu::serve_here`).
    pub local_calls: u32,
    /// The run's leave to post device writes without the kernel lock, and
    /// the frame of the VM's ring it posts them to (`vcpu::serve_here`).
    pub post: PostLease,
    pub posted_ring: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .globl __enter_guest
__enter_guest:
    sd      ra, {host}+0(a0)
    sd      sp, {host}+8(a0)
    sd      s0, {host}+16(a0)
    sd      s1, {host}+24(a0)
    sd      s2, {host}+32(a0)
    sd      s3, {host}+40(a0)
    sd      s4, {host}+48(a0)
    sd      s5, {host}+56(a0)
    sd      s6, {host}+64(a0)
    sd      s7, {host}+72(a0)
    sd      s8, {host}+80(a0)
    sd      s9, {host}+88(a0)
    sd      s10, {host}+96(a0)
    sd      s11, {host}+104(a0)
    sd      tp, {host}+112(a0)
    la      t0, __guest_exit
    csrw    stvec, t0
    csrw    sscratch, a0
    ld      t0, {sstatus}(a0)
    csrw    sstatus, t0
    li      t0, {spv}
    csrs    0x600, t0
    ld      t0, {sepc}(a0)
    csrw    sepc, t0
    ld      x1, 8(a0)
    ld      x2, 16(a0)
    ld      x3, 24(a0)
    ld      x4, 32(a0)
    ld      x5, 40(a0)
    ld      x6, 48(a0)
    ld      x7, 56(a0)
    ld      x8, 64(a0)
    ld      x9, 72(a0)
    ld      x11, 88(a0)
    ld      x12, 96(a0)
    ld      x13, 104(a0)
    ld      x14, 112(a0)
    ld      x15, 120(a0)
    ld      x16, 128(a0)
    ld      x17, 136(a0)
    ld      x18, 144(a0)
    ld      x19, 152(a0)
    ld      x20, 160(a0)
    ld      x21, 168(a0)
    ld      x22, 176(a0)
    ld      x23, 184(a0)
    ld      x24, 192(a0)
    ld      x25, 200(a0)
    ld      x26, 208(a0)
    ld      x27, 216(a0)
    ld      x28, 224(a0)
    ld      x29, 232(a0)
    ld      x30, 240(a0)
    ld      x31, 248(a0)
    ld      x10, 80(a0)
    sret

    .balign 4
__guest_exit:
    csrrw   a0, sscratch, a0
    sd      x1, 8(a0)
    sd      x2, 16(a0)
    sd      x3, 24(a0)
    sd      x4, 32(a0)
    sd      x5, 40(a0)
    sd      x6, 48(a0)
    sd      x7, 56(a0)
    sd      x8, 64(a0)
    sd      x9, 72(a0)
    sd      x11, 88(a0)
    sd      x12, 96(a0)
    sd      x13, 104(a0)
    sd      x14, 112(a0)
    sd      x15, 120(a0)
    sd      x16, 128(a0)
    sd      x17, 136(a0)
    sd      x18, 144(a0)
    sd      x19, 152(a0)
    sd      x20, 160(a0)
    sd      x21, 168(a0)
    sd      x22, 176(a0)
    sd      x23, 184(a0)
    sd      x24, 192(a0)
    sd      x25, 200(a0)
    sd      x26, 208(a0)
    sd      x27, 216(a0)
    sd      x28, 224(a0)
    sd      x29, 232(a0)
    sd      x30, 240(a0)
    sd      x31, 248(a0)
    csrr    t0, sscratch
    sd      t0, 80(a0)
    csrr    t0, sepc
    sd      t0, {sepc}(a0)
    csrr    t0, sstatus
    sd      t0, {sstatus}(a0)
    li      t1, {spv}
    csrc    0x600, t1
    la      t0, __trap_entry
    csrw    stvec, t0
    csrw    sscratch, zero
    ld      ra, {host}+0(a0)
    ld      sp, {host}+8(a0)
    ld      s0, {host}+16(a0)
    ld      s1, {host}+24(a0)
    ld      s2, {host}+32(a0)
    ld      s3, {host}+40(a0)
    ld      s4, {host}+48(a0)
    ld      s5, {host}+56(a0)
    ld      s6, {host}+64(a0)
    ld      s7, {host}+72(a0)
    ld      s8, {host}+80(a0)
    ld      s9, {host}+88(a0)
    ld      s10, {host}+96(a0)
    ld      s11, {host}+104(a0)
    ld      tp, {host}+112(a0)
    ret
    "#,
    host = const offset_of!(GuestFrame, host),
    sstatus = const offset_of!(GuestFrame, sstatus),
    sepc = const offset_of!(GuestFrame, sepc),
    spv = const 1 << 7,
);

#[allow(
    improper_ctypes,
    reason = "the switch reads and writes only the frame's registers, sepc, sstatus and host words, at the offsets given above"
)]
unsafe extern "C" {
    fn __enter_guest(frame: *mut GuestFrame);
}

/// Runs the guest described by `frame` until its next trap to HS-mode;
/// `frame` then holds its registers and the trap's cause.
///
/// The caller has loaded the vCPU's G-stage (`hgatp`), VS CSRs and
/// delegation, `hstatus` (all but SPV), cleared `sstatus.SIE` and set
/// `frame.sstatus` for the entry. The exit leaves the trap's `scause`,
/// `stval`, `htval` and `htinst` in their CSRs until the kernel's next
/// trap: the exit handler reads the ones it needs.
pub fn enter_guest(frame: &mut GuestFrame) {
    // SAFETY: `__enter_guest` saves every callee-saved register, `sp`, `tp`
    // and `ra` into `frame` and restores them before returning, puts back the
    // kernel's trap vector and its `sscratch` of 0 (the kernel always runs
    // with both) and leaves SIE clear (the caller cleared it; the trap
    // clears it again), so to Rust it is a call that clobbers the
    // caller-saved registers (declared by the C ABI). The guest runs under
    // its own G-stage and cannot reach kernel memory; its traps come back
    // through `__guest_exit`, which uses only `frame`.
    unsafe { __enter_guest(frame) }
}
