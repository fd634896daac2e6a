//! The trap vector: saves every register into a [`TrapFrame`], decodes
//! `scause` into the generic [`Trap`], lets generic code decide, and reports
//! anything unexpected before a failing shutdown.
//!
//! `sscratch` is 0 while the hart runs the kernel and holds the address of
//! the running task's own [`TrapFrame`] while it runs a U-mode task: a trap
//! from U-mode saves the registers straight into that frame, runs on the
//! hart's kernel trap stack, and returns into whichever task's frame
//! generic code names, with no copy of a frame in or out. The return path
//! writes the hart's kernel stack top and CPU number (`tp`) into the frame
//! it leaves to, and the entry takes them back from it, so every hart has
//! its own trap stack without a global. Traps taken in the kernel save a
//! frame on the kernel stack as usual.

use super::csr;
use crate::trap::{Access, Origin, Trap, TrapAction};

/// Registers of the interrupted context. `regs[2]` is its stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    /// x0..x31 (x0 is stored as 0).
    pub regs: [usize; 32],
    /// `sstatus` at the trap.
    pub sstatus: usize,
    /// The interrupted pc.
    pub sepc: usize,
    /// The kernel stack top a trap from this U-mode context starts on.
    kernel_sp: usize,
    /// The CPU number (`tp` in the kernel) of the hart it runs on.
    kernel_tp: usize,
}

const FRAME_BYTES: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(
    FRAME_BYTES == 36 * 8,
    "the vector saves 32 registers, sstatus at 256, sepc at 264, the kernel sp at 272 and tp at 280"
);

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .globl __trap_entry
__trap_entry:
    csrrw   sp, sscratch, sp
    bnez    sp, 4f
    csrrw   sp, sscratch, sp
    addi    sp, sp, -{frame}
    .irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    sd      x\n, \n*8(sp)
    .endr
    csrr    t1, sstatus
    sd      t1, 256(sp)
    addi    t0, sp, {frame}
    sd      t0, 16(sp)
    csrr    t2, sepc
    sd      t2, 264(sp)
    mv      a0, sp
    call    kernel_trap_dispatch
    ld      t1, 256(sp)
    csrw    sstatus, t1
    ld      t2, 264(sp)
    csrw    sepc, t2
    .irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    ld      x\n, \n*8(sp)
    .endr
    ld      sp, 16(sp)
    sret

4:
    .irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    sd      x\n, \n*8(sp)
    .endr
    csrr    t0, sscratch
    sd      t0, 16(sp)
    csrw    sscratch, zero
    csrr    t1, sstatus
    sd      t1, 256(sp)
    csrr    t2, sepc
    sd      t2, 264(sp)
    ld      tp, 280(sp)
    ld      sp, 272(sp)
    mv      a0, a7
    call    user_trap_dispatch
    .globl __user_return
__user_return:
    ld      t1, 256(a0)
    csrw    sstatus, t1
    ld      t2, 264(a0)
    csrw    sepc, t2
    csrw    sscratch, a0
    sd      sp, 272(a0)
    sd      tp, 280(a0)
    mv      sp, a0
    .irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    ld      x\n, \n*8(sp)
    .endr
    ld      sp, 16(sp)
    sret
    "#,
    frame = const FRAME_BYTES,
);

unsafe extern "C" {
    fn __trap_entry();
    fn __user_return();
}

impl TrapFrame {
    /// A U-mode context starting at `pc` with stack `sp`, `a0` and `a1`;
    /// interrupts are taken while it runs.
    pub fn for_user(pc: usize, sp: usize, a0: usize, a1: usize) -> TrapFrame {
        // SPIE: interrupts on after sret; FS and VS off: the kernel does not
        // switch FP/vector state, so a task using them traps and is killed.
        const SPIE: usize = 1 << 5;
        const VS_FS: usize = (3 << 9) | (3 << 13);
        let sstatus =
            (csr::sstatus::read() | SPIE) & !(csr::SSTATUS_SPP | csr::SSTATUS_SIE | VS_FS);
        let mut frame = TrapFrame {
            sstatus,
            sepc: pc,
            ..TrapFrame::default()
        };
        frame.regs[2] = sp;
        frame.regs[10] = a0;
        frame.regs[11] = a1;
        frame
    }

    /// The system call number (a7) and arguments (a0-a5).
    pub fn syscall(&self) -> (usize, [usize; 6]) {
        let r = &self.regs;
        (r[17], [r[10], r[11], r[12], r[13], r[14], r[15]])
    }

    /// Steps past the `ecall` that trapped, so the task resumes after it.
    #[inline(always)]
    pub fn step_past_syscall(&mut self) {
        self.sepc += 4;
    }

    /// Sets a0-a3 to a system call's status and results.
    pub fn set_result(&mut self, status: usize, values: [usize; 3]) {
        self.regs[10] = status;
        self.regs[11..14].copy_from_slice(&values);
    }
}

/// Leaves the kernel for the U-mode context `frame`, for good: the kernel
/// stack below the current one's position becomes the stack every later
/// trap from U-mode on this hart starts on, and `frame` (which must stay
/// where it is: later traps save into it) is the running task's.
pub fn enter_user(frame: *mut TrapFrame) -> ! {
    // SAFETY: `frame` points at a task's `TrapFrame` in static memory that
    // outlives every trap (the caller's contract). `__user_return` records
    // the aligned stack top and `tp` in the frame for the vector, restores
    // the frame, points sscratch at it and `sret`s to U-mode (the frame's
    // SPP is clear). Nothing on this stack is needed again: this never
    // returns.
    unsafe {
        core::arch::asm!(
            "andi   sp, sp, -16",
            "j      {ret}",
            ret = sym __user_return,
            in("a0") frame,
            options(noreturn),
        )
    }
}

/// Points `stvec` at the trap vector (direct mode).
pub fn init() {
    csr::sscratch::write(0);
    csr::stvec::write(__trap_entry as *const () as usize);
}

const INTERRUPT_BIT: usize = 1 << 63;
/// `scause` of a supervisor software interrupt: another CPU asks this one
/// to decide again (`super::smp::kick`).
pub(super) const SOFTWARE_INTERRUPT: usize = INTERRUPT_BIT | 1;

/// Clears a supervisor software interrupt (the kick itself carries
/// nothing: the caller decides again after any trap); whether `scause` was
/// one.
#[inline]
pub(super) fn take_software_interrupt(scause: usize) -> bool {
    if scause != SOFTWARE_INTERRUPT {
        return false;
    }
    csr::sip::clear(csr::SIP_SSIP);
    true
}
/// `scause` of an `ecall` from U-mode (a system call).
const ECALL_FROM_U: usize = 8;

fn decode(scause: usize, stval: usize) -> Trap {
    let code = scause & !INTERRUPT_BIT;
    if scause & INTERRUPT_BIT != 0 {
        return match code {
            5 => Trap::TimerInterrupt,
            _ => Trap::OtherInterrupt(code),
        };
    }
    let fault = |access| Trap::PageFault {
        addr: stval,
        access,
    };
    match code {
        2 => Trap::IllegalInstruction(stval),
        3 => Trap::Breakpoint,
        ECALL_FROM_U => Trap::Syscall,
        1 | 12 => fault(Access::Execute),
        5 | 13 => fault(Access::Read),
        7 | 15 => fault(Access::Write),
        _ => Trap::Exception { code, value: stval },
    }
}

/// A trap from U-mode, whose registers the vector saved in the running
/// task's own frame; returns the frame of the task to resume. `a7` is the
/// task's a7 as it trapped: for a system call, its number.
#[unsafe(no_mangle)]
extern "C" fn user_trap_dispatch(a7: usize) -> *mut TrapFrame {
    let scause = csr::scause::read();
    if scause == ECALL_FROM_U {
        return crate::userland::user_syscall(Some(a7));
    }
    take_software_interrupt(scause);
    let trap = decode(scause, csr::stval::read());
    crate::userland::user_trap(trap)
}

/// A trap taken in the kernel itself (the frame is on the kernel stack).
#[unsafe(no_mangle)]
extern "C" fn kernel_trap_dispatch(frame: &mut TrapFrame) {
    let origin = Origin::Kernel;
    let scause = csr::scause::read();
    if take_software_interrupt(scause) {
        return;
    }
    let trap = decode(scause, csr::stval::read());
    match crate::trap::handle(origin, trap, super::timer::now()) {
        TrapAction::ArmTimer(deadline) => super::timer::set_deadline(deadline),
        TrapAction::SkipInstruction => frame.sepc += 4,
        TrapAction::Fatal => {
            crate::klog::print(format_args!(
                "mica: fatal: unexpected trap in {origin:?} mode: {trap:?} at pc {:#x} (ra {:#x}, sp {:#x})\n",
                frame.sepc, frame.regs[1], frame.regs[2]
            ));
            super::poweroff::shutdown(crate::ExitStatus::Failure);
        }
    }
}

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .globl __probe_trap
__probe_trap:
    csrr    t0, sepc
    addi    t0, t0, 4
    csrw    sepc, t0
    li      a0, 0
    sret
    "#
);

/// Whether the 4-byte CSR instruction `$insn` (its result goes to
/// `{tmp}`) runs without an illegal-instruction trap: run at boot with
/// interrupts off, under a private trap vector that skips a faulting
/// instruction (`__probe_trap`), stvec restored afterwards.
macro_rules! csr_probe {
    ($insn:literal) => {{
        let present: usize;
        // SAFETY: interrupts are off (sstatus.SIE is clear during boot), so
        // the only trap possible is the illegal-instruction trap of the
        // 4-byte CSR instruction, which __probe_trap skips (a0 = 0); stvec
        // is restored afterwards, and the instruction writes only `tmp`.
        unsafe {
            core::arch::asm!(
                "csrr   {saved}, stvec",
                "la     {tmp}, __probe_trap",
                "csrw   stvec, {tmp}",
                "li     a0, 1",
                ".option push",
                ".option norvc",
                $insn,
                ".option pop",
                "csrw   stvec, {saved}",
                saved = out(reg) _,
                tmp = out(reg) _,
                out("a0") present,
                out("t0") _,
            );
        }
        present != 0
    }};
}
pub(super) use csr_probe;

/// Whether `hstatus` can be read, i.e. the hart has the H extension.
pub fn probe_hypervisor() -> bool {
    csr_probe!("csrr   {tmp}, 0x600")
}
