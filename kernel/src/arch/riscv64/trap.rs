//! The trap vector: saves every register into a [`TrapFrame`] on the kernel
//! stack, decodes `scause` into the generic [`Trap`], lets generic code
//! decide, and reports anything unexpected before a failing shutdown.
//!
//! `sscratch` is 0 while the hart runs the kernel and holds the kernel
//! stack top while it runs a U-mode task.

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
}

const FRAME_BYTES: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(
    FRAME_BYTES == 34 * 8,
    "TrapFrame::copy_from copies 34 words"
);

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .globl __trap_entry
__trap_entry:
    csrrw   sp, sscratch, sp
    bnez    sp, 1f
    csrrw   sp, sscratch, sp
1:  addi    sp, sp, -{frame}
    sd      x1, 8(sp)
    sd      x3, 24(sp)
    sd      x4, 32(sp)
    sd      x5, 40(sp)
    sd      x6, 48(sp)
    sd      x7, 56(sp)
    sd      x8, 64(sp)
    sd      x9, 72(sp)
    sd      x10, 80(sp)
    sd      x11, 88(sp)
    sd      x12, 96(sp)
    sd      x13, 104(sp)
    sd      x14, 112(sp)
    sd      x15, 120(sp)
    sd      x16, 128(sp)
    sd      x17, 136(sp)
    sd      x18, 144(sp)
    sd      x19, 152(sp)
    sd      x20, 160(sp)
    sd      x21, 168(sp)
    sd      x22, 176(sp)
    sd      x23, 184(sp)
    sd      x24, 192(sp)
    sd      x25, 200(sp)
    sd      x26, 208(sp)
    sd      x27, 216(sp)
    sd      x28, 224(sp)
    sd      x29, 232(sp)
    sd      x30, 240(sp)
    sd      x31, 248(sp)
    csrr    t1, sstatus
    andi    t2, t1, {spp}
    addi    t0, sp, {frame}
    bnez    t2, 2f
    csrr    t0, sscratch
2:  sd      t0, 16(sp)
    csrw    sscratch, zero
    sd      t1, 256(sp)
    csrr    t2, sepc
    sd      t2, 264(sp)
    mv      a0, sp
    call    trap_dispatch
    .globl __trap_return
__trap_return:
    ld      t1, 256(sp)
    csrw    sstatus, t1
    ld      t2, 264(sp)
    csrw    sepc, t2
    andi    t1, t1, {spp}
    bnez    t1, 3f
    addi    t0, sp, {frame}
    csrw    sscratch, t0
3:  ld      x1, 8(sp)
    ld      x3, 24(sp)
    ld      x4, 32(sp)
    ld      x5, 40(sp)
    ld      x6, 48(sp)
    ld      x7, 56(sp)
    ld      x8, 64(sp)
    ld      x9, 72(sp)
    ld      x10, 80(sp)
    ld      x11, 88(sp)
    ld      x12, 96(sp)
    ld      x13, 104(sp)
    ld      x14, 112(sp)
    ld      x15, 120(sp)
    ld      x16, 128(sp)
    ld      x17, 136(sp)
    ld      x18, 144(sp)
    ld      x19, 152(sp)
    ld      x20, 160(sp)
    ld      x21, 168(sp)
    ld      x22, 176(sp)
    ld      x23, 184(sp)
    ld      x24, 192(sp)
    ld      x25, 200(sp)
    ld      x26, 208(sp)
    ld      x27, 216(sp)
    ld      x28, 224(sp)
    ld      x29, 232(sp)
    ld      x30, 240(sp)
    ld      x31, 248(sp)
    ld      sp, 16(sp)
    sret
    "#,
    frame = const FRAME_BYTES,
    spp = const csr::SSTATUS_SPP,
);

unsafe extern "C" {
    fn __trap_entry();
    fn __trap_return();
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

    /// Copies every register of `from` into `self`: 34 loads and stores,
    /// where `*self = *from` calls `memcpy` (about 190 instructions, taken
    /// twice per trap from U-mode).
    pub fn copy_from(&mut self, from: &TrapFrame) {
        // SAFETY: both are valid, aligned `TrapFrame`s (`repr(C)`, 34
        // words) and `&mut self` cannot alias `&from`; the block reads
        // only `from` and writes only `self`, through t0 and the pointers.
        unsafe {
            core::arch::asm!(
                ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33",
                "ld t0, 8*\\n({src})",
                "sd t0, 8*\\n({dst})",
                ".endr",
                src = in(reg) from as *const TrapFrame,
                dst = in(reg) self as *mut TrapFrame,
                out("t0") _,
                options(nostack, preserves_flags),
            );
        }
    }

    /// The system call number (a7) and arguments (a0-a5).
    pub fn syscall(&self) -> (usize, [usize; 6]) {
        let r = &self.regs;
        (r[17], [r[10], r[11], r[12], r[13], r[14], r[15]])
    }

    /// Sets a0-a3 to a system call's status and results.
    pub fn set_result(&mut self, status: usize, values: [usize; 3]) {
        self.regs[10] = status;
        self.regs[11..14].copy_from_slice(&values);
    }
}

/// Leaves the kernel for the U-mode context `frame`, for good: the kernel
/// stack below the current one's frame becomes the stack every later trap
/// from U-mode starts on.
pub fn enter_user(frame: &TrapFrame) -> ! {
    // SAFETY: the frame is copied onto this stack exactly where the trap
    // vector would have saved it, then the vector's return path restores it
    // and `sret`s to U-mode (SPP clear); it sets sscratch to the stack top
    // above the frame, so later traps from U-mode reuse this stack. Nothing
    // on the stack below is needed again: this function never returns.
    unsafe {
        core::arch::asm!(
            "addi   sp, sp, -{frame}",
            "andi   sp, sp, -16",
            "mv     t0, sp",
            "li     t1, {words}",
            "1: ld  t2, 0(a0)",
            "sd     t2, 0(t0)",
            "addi   a0, a0, 8",
            "addi   t0, t0, 8",
            "addi   t1, t1, -1",
            "bnez   t1, 1b",
            "j      {ret}",
            frame = const FRAME_BYTES,
            words = const FRAME_BYTES / 8,
            in("a0") frame as *const TrapFrame,
            ret = sym __trap_return,
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
        8 => Trap::Syscall,
        1 | 12 => fault(Access::Execute),
        5 | 13 => fault(Access::Read),
        7 | 15 => fault(Access::Write),
        _ => Trap::Exception { code, value: stval },
    }
}

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let origin = if frame.sstatus & csr::SSTATUS_SPP != 0 {
        Origin::Kernel
    } else {
        Origin::User
    };
    let trap = decode(csr::scause::read(), csr::stval::read());
    if origin == Origin::User {
        crate::userland::user_trap(frame, trap);
        return;
    }
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

/// Whether `hstatus` can be read, i.e. the hart has the H extension. Runs
/// with a private trap vector that skips the faulting read.
pub fn probe_hypervisor() -> bool {
    let present: usize;
    // SAFETY: interrupts are off (sstatus.SIE is clear during boot), so the
    // only trap possible is the illegal-instruction trap of the 4-byte
    // `csrr`, which __probe_trap skips; stvec is restored afterwards.
    unsafe {
        core::arch::asm!(
            "csrr   {saved}, stvec",
            "la     {tmp}, __probe_trap",
            "csrw   stvec, {tmp}",
            "li     a0, 1",
            ".option push",
            ".option norvc",
            "csrr   {tmp}, 0x600",
            ".option pop",
            "csrw   stvec, {saved}",
            saved = out(reg) _,
            tmp = out(reg) _,
            out("a0") present,
            out("t0") _,
        );
    }
    present != 0
}
