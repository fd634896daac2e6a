//! Ring 3 on x86_64: a task's saved registers ([`TrapFrame`]), the
//! `syscall` entry (STAR/LSTAR/SFMASK), the way back with `iretq`, and the
//! hand-off of interrupts and exceptions taken in ring 3 to
//! `userland::user_trap`.
//!
//! Each CPU has an [`EntryCpu`]: the frame of the task it runs (in the
//! static `RUNNER` of `userland`), the stack its entries from ring 3 run
//! on (TSS.RSP0 for interrupts too) and a word for the user RSP. `syscall`
//! leaves no register free, so the entry finds its CPU's block through
//! GS: `swapgs` makes KernelGSBase (the block, set per CPU by
//! [`init_cpu`]) the GS base for the few instructions that need it, and a
//! second `swapgs` puts the user's back before any Rust runs (the kernel
//! itself never uses GS, so an interrupt never has to ask whose GS base is
//! loaded). `syscall` saves the registers straight into the frame (`rcx` =
//! the user RIP, `r11` = its RFLAGS), an interrupt from ring 3 copies the
//! stub's frame into it; generic code then names the frame to resume,
//! which becomes the CPU's current one and is restored with `iretq` (also
//! after a `syscall`, so a task preempted by an interrupt and one that
//! made a call return the same way). The kernel never nests on the entry
//! stack, since it runs with interrupts off except while idle.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::cpus::MAX_CPUS;
use super::gdt::{self, KERNEL_CS, SYSRET_BASE, USER_CS, USER_SS};
use super::idt::InterruptFrame;
use super::msr_io::{rdmsr, wrmsr};
use crate::trap::Trap;

const EFER: u32 = 0xc000_0080;
const EFER_SCE: u64 = 1 << 0;
const STAR: u32 = 0xc000_0081;
const LSTAR: u32 = 0xc000_0082;
const SFMASK: u32 = 0xc000_0084;
const KERNEL_GS_BASE: u32 = 0xc000_0102;
/// RFLAGS bits `syscall` clears: TF, IF, DF, AC (the kernel runs with
/// interrupts off and the string direction forward).
const SYSCALL_MASK: u64 = 0x100 | 0x200 | 0x400 | 0x4_0000;
/// RFLAGS of a fresh task: IF and the reserved bit 1.
const USER_RFLAGS: u64 = 0x202;
/// Bytes of the boot CPU's stack for entries from ring 3 (an application
/// processor's is its start stack, see `smp`).
const KERNEL_STACK_BYTES: usize = 64 << 10;

/// A ring-3 task's registers while it does not run.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    /// R15, R14, R13, R12, R11, R10, R9, R8, RDI, RSI, RBP, RBX, RDX, RCX,
    /// RAX (the IDT stub's order).
    pub gprs: [u64; 15],
    /// Where it resumes.
    pub rip: u64,
    /// Its flags.
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
}

const R10: usize = 5;
const R9: usize = 6;
const R8: usize = 7;
const RDI: usize = 8;
const RSI: usize = 9;
const RDX: usize = 12;
const RAX: usize = 14;

const _: () = assert!(
    core::mem::size_of::<TrapFrame>() == 18 * 8,
    "the entry stores 15 registers, RIP at 120, RFLAGS at 128, RSP at 136"
);

impl TrapFrame {
    /// A ring-3 context starting at `pc` with stack `sp` and the first two
    /// argument registers (`rdi`, `rsi`); interrupts are taken while it
    /// runs.
    pub fn for_user(pc: usize, sp: usize, a0: usize, a1: usize) -> TrapFrame {
        let mut frame = TrapFrame {
            rip: pc as u64,
            rflags: USER_RFLAGS,
            rsp: sp as u64,
            ..TrapFrame::default()
        };
        frame.gprs[RDI] = a0 as u64;
        frame.gprs[RSI] = a1 as u64;
        frame
    }

    /// The system call number (rax) and arguments (rdi, rsi, rdx, r10, r8,
    /// r9), as `ipc::syscall` maps them.
    pub fn syscall(&self) -> (usize, [usize; 6]) {
        let g = &self.gprs;
        let args = [g[RDI], g[RSI], g[RDX], g[R10], g[R8], g[R9]];
        (g[RAX] as usize, args.map(|a| a as usize))
    }

    /// Nothing to do: `syscall` saved the address after itself.
    pub fn step_past_syscall(&mut self) {}

    /// Sets rax (status) and rdi, rsi, rdx (results).
    pub fn set_result(&mut self, status: usize, values: [usize; 3]) {
        self.gprs[RAX] = status as u64;
        self.gprs[RDI] = values[0] as u64;
        self.gprs[RSI] = values[1] as u64;
        self.gprs[RDX] = values[2] as u64;
    }
}

#[repr(C, align(16))]
struct KernelStack([u8; KERNEL_STACK_BYTES]);

static mut KERNEL_STACK: KernelStack = KernelStack([0; KERNEL_STACK_BYTES]);

/// One CPU's ring-3 entry words, found through KernelGSBase by the
/// `syscall` entry (the offsets are the asm's).
#[repr(C, align(64))]
pub struct EntryCpu {
    /// The user RSP while the `syscall` entry has no register free (0).
    user_rsp: AtomicU64,
    /// The running task's frame (8; 0 before the CPU's first task).
    current: AtomicUsize,
    /// The top of the stack entries from ring 3 run on (16).
    stack_top: AtomicU64,
}

const _: () = assert!(
    core::mem::offset_of!(EntryCpu, user_rsp) == 0
        && core::mem::offset_of!(EntryCpu, current) == 8
        && core::mem::offset_of!(EntryCpu, stack_top) == 16,
    "the entry reads gs:[0], gs:[8] and gs:[16]"
);

static ENTRY_CPUS: [EntryCpu; MAX_CPUS] = [const {
    EntryCpu {
        user_rsp: AtomicU64::new(0),
        current: AtomicUsize::new(0),
        stack_top: AtomicU64::new(0),
    }
}; MAX_CPUS];

core::arch::global_asm!(
    r#"
    .section .text
    .globl mica_syscall_entry
mica_syscall_entry:
    swapgs
    mov     gs:[0], rsp
    mov     rsp, gs:[8]
    mov     [rsp + 0], r15
    mov     [rsp + 8], r14
    mov     [rsp + 16], r13
    mov     [rsp + 24], r12
    mov     [rsp + 32], r11
    mov     [rsp + 40], r10
    mov     [rsp + 48], r9
    mov     [rsp + 56], r8
    mov     [rsp + 64], rdi
    mov     [rsp + 72], rsi
    mov     [rsp + 80], rbp
    mov     [rsp + 88], rbx
    mov     [rsp + 96], rdx
    mov     [rsp + 104], rcx
    mov     [rsp + 112], rax
    mov     [rsp + 120], rcx
    mov     [rsp + 128], r11
    mov     rax, gs:[0]
    mov     [rsp + 136], rax
    mov     rdi, rsp
    mov     rsp, gs:[16]
    swapgs
    cld
    call    {dispatch}
    jmp     mica_user_return

    /* rax: the frame to resume. */
    .globl mica_user_return
mica_user_return:
    swapgs
    mov     gs:[8], rax
    mov     rsp, gs:[16]
    swapgs
    push    {user_ss}
    push    qword ptr [rax + 136]
    push    qword ptr [rax + 128]
    push    {user_cs}
    push    qword ptr [rax + 120]
    mov     r15, [rax + 0]
    mov     r14, [rax + 8]
    mov     r13, [rax + 16]
    mov     r12, [rax + 24]
    mov     r11, [rax + 32]
    mov     r10, [rax + 40]
    mov     r9, [rax + 48]
    mov     r8, [rax + 56]
    mov     rdi, [rax + 64]
    mov     rsi, [rax + 72]
    mov     rbp, [rax + 80]
    mov     rbx, [rax + 88]
    mov     rdx, [rax + 96]
    mov     rcx, [rax + 104]
    mov     rax, [rax + 112]
    iretq
    "#,
    dispatch = sym mica_x86_syscall,
    user_ss = const USER_SS as u64,
    user_cs = const USER_CS as u64,
);

unsafe extern "C" {
    fn mica_syscall_entry();
    fn mica_user_return();
}

/// Sets up the boot CPU's `syscall` MSRs and the stack its entries from
/// ring 3 run on.
pub fn init() {
    let top = (&raw const KERNEL_STACK) as u64 + KERNEL_STACK_BYTES as u64;
    gdt::set_kernel_stack(top);
    init_cpu(0, top);
}

/// Sets up CPU `cpu`'s `syscall` MSRs and entry block, with `stack_top` the
/// top of the stack its entries from ring 3 run on (its TSS.RSP0, which
/// the caller sets). Called once per CPU, on that CPU, before it runs a
/// task.
pub fn init_cpu(cpu: usize, stack_top: u64) {
    let block = &ENTRY_CPUS[cpu % MAX_CPUS];
    block.stack_top.store(stack_top, Ordering::Relaxed);
    let star = u64::from(SYSRET_BASE) << 48 | u64::from(KERNEL_CS) << 32;
    // SAFETY: SCE only enables `syscall`/`sysret`; STAR names the GDT's
    // kernel and user selectors (laid out as SYSCALL/SYSRET need), LSTAR
    // the entry above, SFMASK clears IF so the entry runs with interrupts
    // off; KernelGSBase is this CPU's entry block, which lives forever and
    // which only the entry's `swapgs` makes the GS base (the kernel uses no
    // GS). Nothing runs in ring 3 on this CPU yet.
    unsafe {
        wrmsr(EFER, rdmsr(EFER) | EFER_SCE);
        wrmsr(STAR, star);
        wrmsr(LSTAR, mica_syscall_entry as *const () as u64);
        wrmsr(SFMASK, SYSCALL_MASK);
        wrmsr(KERNEL_GS_BASE, block as *const EntryCpu as u64);
    }
}

/// Leaves the kernel for the ring-3 context `frame`, for good: it becomes
/// the running task's frame (it must stay where it is: later entries save
/// into it), and the current stack is abandoned.
pub fn enter_user(frame: *mut TrapFrame) -> ! {
    // SAFETY: `frame` points at a task's frame in static memory (the
    // caller's contract); `mica_user_return` records it as this CPU's current frame,
    // switches to the kernel entry stack and `iretq`s into ring 3 with the
    // user selectors, the frame's RIP, RFLAGS (IF set) and RSP.
    unsafe {
        core::arch::asm!(
            "jmp {ret}",
            ret = sym mica_user_return,
            in("rax") frame,
            options(noreturn),
        )
    }
}

/// The `syscall` entry's call: the registers are in the running task's
/// frame; returns the frame to resume.
extern "C" fn mica_x86_syscall(_saved: *mut TrapFrame) -> *mut TrapFrame {
    crate::userland::user_syscall(None)
}

/// An interrupt or exception taken in ring 3, as the IDT stub saved it:
/// the registers go into the running task's frame, generic code decides,
/// and the frame it names is written back for the stub's `iretq`.
pub fn from_user(frame: &mut InterruptFrame, trap: Trap) {
    let block = &ENTRY_CPUS[super::smp::this_cpu() % MAX_CPUS];
    let current = block.current.load(Ordering::Relaxed) as *mut TrapFrame;
    if current.is_null() {
        crate::klog::print(format_args!(
            "mica: fatal: trap from ring 3 with no task: {trap:?}\n"
        ));
        super::poweroff::shutdown(crate::ExitStatus::Failure);
    }
    // SAFETY: `current` is the frame of the task this CPU runs, in the
    // static RUNNER (set by `enter_user` and every return); the kernel lock
    // is not held, but no other CPU touches a task's frame while the task
    // runs here, and interrupts are off.
    unsafe {
        let saved = &mut *current;
        saved.gprs = frame.gprs;
        saved.rip = frame.rip;
        saved.rflags = frame.rflags;
        saved.rsp = frame.rsp;
    }
    let next = crate::userland::user_trap(trap);
    block.current.store(next as usize, Ordering::Relaxed);
    // SAFETY: `next` is a task's frame in the static RUNNER (what
    // `user_trap` returns), valid and not borrowed elsewhere.
    let next = unsafe { &*next };
    frame.gprs = next.gprs;
    frame.rip = next.rip;
    frame.rflags = next.rflags;
    frame.rsp = next.rsp;
    frame.cs = u64::from(USER_CS);
    frame.ss = u64::from(USER_SS);
}
