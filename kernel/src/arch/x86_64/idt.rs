//! The IDT: 256 gates, each to a 16-byte stub that pushes the vector (and a
//! zero where the CPU pushes no error code) and joins one common path that
//! saves the GPRs and calls [`mica_x86_trap`]. CPU exceptions go through the
//! generic `trap::handle`, and a fatal one prints one `mica: fatal: ...` line
//! and powers off with the failure status; the LAPIC timer vector drives the
//! generic tick; double faults run on their own IST stack. Whatever arrives
//! from ring 3 goes to `usermode::from_user` (the task's trap: a tick, or a
//! fault that kills the task).

use core::mem::size_of;

use super::fault::Fatal;
use super::gdt::{DOUBLE_FAULT_IST, KERNEL_CS};
use super::{poweroff, timer};
use crate::trap::{self, Access, Origin, Trap, TrapAction};
use crate::{ExitStatus, klog};

/// The LAPIC timer's vector.
pub const TIMER_VECTOR: u64 = 0x20;
/// The LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u64 = 0xff;
/// The IPI another CPU sends to make this one decide again (it leaves its
/// guest or its `hlt`; see `smp::kick`).
pub const KICK_VECTOR: u64 = 0xf0;
/// Where the (masked) 8259 PICs are remapped, so a stray IRQ is not taken
/// for an exception.
pub const PIC_BASE: u8 = 0xe0;
const DOUBLE_FAULT: u64 = 8;
const PAGE_FAULT: u64 = 14;

core::arch::global_asm!(
    r#"
    .section .text
    .balign 16
    .globl mica_vectors
mica_vectors:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq   $0
    .endif
    pushq   $vec
    jmp     mica_trap_common
    .set vec, vec + 1
    .endr

mica_trap_common:
    pushq   %rax
    pushq   %rcx
    pushq   %rdx
    pushq   %rbx
    pushq   %rbp
    pushq   %rsi
    pushq   %rdi
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, %rdi
    cld
    call    mica_x86_trap
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdi
    popq    %rsi
    popq    %rbp
    popq    %rbx
    popq    %rdx
    popq    %rcx
    popq    %rax
    addq    $16, %rsp
    iretq
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first of 256 16-byte stubs.
    static mica_vectors: u8;
}

/// What the stubs and the CPU left on the stack, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct InterruptFrame {
    /// R15 down to RAX, as the common path pushed them.
    pub gprs: [u64; 15],
    /// The vector the stub pushed.
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error_code: u64,
    /// Where the interrupted code resumes.
    pub rip: u64,
    /// Its code segment.
    pub cs: u64,
    /// Its flags.
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// Its stack segment.
    pub ss: u64,
}

/// One 16-byte interrupt gate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate([u64; 2]);

impl Gate {
    /// A present ring-0 interrupt gate (interrupts off on entry) to
    /// `handler`, on IST slot `ist` (0: the current stack).
    fn interrupt(handler: u64, ist: u8) -> Self {
        let low = (handler & 0xffff)
            | u64::from(KERNEL_CS) << 16
            | u64::from(ist & 7) << 32
            | 0x8e << 40
            | ((handler >> 16) & 0xffff) << 48;
        Self([low, handler >> 32])
    }
}

static mut IDT: [Gate; 256] = [Gate([0; 2]); 256];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Fills and loads the IDT (on the boot CPU).
pub fn init() {
    let stubs = (&raw const mica_vectors) as u64;
    // SAFETY: runs once on the only CPU with interrupts off, before any gate
    // is used; every gate points at a stub of the table above (16 bytes
    // each).
    unsafe {
        let idt = &raw mut IDT;
        for (vector, gate) in (*idt).iter_mut().enumerate() {
            let ist = if vector as u64 == DOUBLE_FAULT {
                DOUBLE_FAULT_IST
            } else {
                0
            };
            *gate = Gate::interrupt(stubs + 16 * vector as u64, ist);
        }
    }
    load();
}

/// Loads the IDT [`init`] filled (the boot CPU from `init`, each
/// application processor for itself: every CPU shares the one table).
pub fn load() {
    let pointer = Pointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: (&raw const IDT) as u64,
    };
    // SAFETY: `lidt` loads a table that lives forever and that `init`
    // filled before any other CPU was started; it is never written again.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack)) };
}

fn read_cr2() -> u64 {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    cr2
}

/// The generic view of CPU exception `vector`.
fn decode(vector: u64, error_code: u64, cr2: u64) -> Trap {
    match vector {
        3 => Trap::Breakpoint,
        6 => Trap::IllegalInstruction(0),
        PAGE_FAULT => Trap::PageFault {
            addr: cr2 as usize,
            access: if error_code & (1 << 4) != 0 {
                Access::Execute
            } else if error_code & (1 << 1) != 0 {
                Access::Write
            } else {
                Access::Read
            },
        },
        code => Trap::Exception {
            code: code as usize,
            value: error_code as usize,
        },
    }
}

/// A general-protection fault in ring 3 (a privileged instruction such as
/// `in`/`out`, or a non-canonical address) and an invalid opcode are the
/// task's illegal instructions; other exceptions keep their number.
fn user_fault(trap: Trap) -> Trap {
    match trap {
        Trap::Exception { code: 13, .. } => Trap::IllegalInstruction(0),
        other => other,
    }
}

/// Called by the common stub with the saved frame.
#[unsafe(no_mangle)]
extern "C" fn mica_x86_trap(frame: &mut InterruptFrame) {
    if frame.cs & 3 == 3 {
        let trap = match frame.vector {
            vector @ 0..=31 => user_fault(decode(vector, frame.error_code, read_cr2())),
            TIMER_VECTOR => {
                timer::end_of_interrupt();
                Trap::TimerInterrupt
            }
            KICK_VECTOR => {
                timer::end_of_interrupt();
                Trap::OtherInterrupt(KICK_VECTOR as usize)
            }
            vector => Trap::OtherInterrupt(vector as usize),
        };
        super::usermode::from_user(frame, trap);
        return;
    }
    let origin = Origin::Kernel;
    match frame.vector {
        vector @ 0..=31 => {
            let cr2 = read_cr2();
            let trap = decode(vector, frame.error_code, cr2);
            match trap::handle(origin, trap, timer::timer_now()) {
                // `int3` is a trap: RIP is already past it.
                TrapAction::SkipInstruction | TrapAction::ArmTimer(_) => {}
                TrapAction::Fatal => {
                    let fatal = Fatal {
                        vector,
                        rip: frame.rip,
                        error_code: frame.error_code,
                        cr2,
                    };
                    klog::print(format_args!("mica: {fatal}\n"));
                    poweroff::shutdown(ExitStatus::Failure)
                }
            }
        }
        TIMER_VECTOR => {
            let now = timer::timer_now();
            if let TrapAction::ArmTimer(deadline) = trap::handle(origin, Trap::TimerInterrupt, now)
            {
                timer::timer_set_deadline(deadline);
            }
            timer::end_of_interrupt();
        }
        // A kick only ends a guest run or a `hlt`: the code it interrupted
        // decides again.
        KICK_VECTOR => timer::end_of_interrupt(),
        // Spurious LAPIC and stray 8259 interrupts need no EOI.
        SPURIOUS_VECTOR => {}
        v if (u64::from(PIC_BASE)..u64::from(PIC_BASE) + 16).contains(&v) => {}
        vector => {
            klog::print(format_args!(
                "mica: fatal: unexpected interrupt vector {vector:#x} at rip {:#x}\n",
                frame.rip
            ));
            poweroff::shutdown(ExitStatus::Failure)
        }
    }
}
