//! x86 test guests' entry and output: `_start` at 1 MiB (long mode, stack
//! and paging set by Mica, `rdi` = the boot-info block) zeroes `.bss` and
//! calls the guest's main with (0, boot info); COM1 output polls LSR.THRE
//! (0x3fd bit 5) before every THR (0x3f8) write; each access is a port
//! exit Mica serves through its devices task. `power_off`, `hypercall` and
//! the multi-vCPU calls (`vcpu_start`, `vcpu_stop`, `vcpu_status`,
//! `send_ipi`, `vcpu_id`) are VMMCALL (VMCALL on Intel) with the number in
//! `rax`.

use core::fmt::{self, Write};

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .globl _start
_start:
    mov     r12, rdi
    lea     rdi, [rip + __bss_start]
    lea     rcx, [rip + __bss_end]
    sub     rcx, rdi
    xor     eax, eax
    cld
    rep     stosb
    mov     rsi, r12
    xor     edi, edi
    and     rsp, -16
    call    mica_guest_main
2:
    hlt
    jmp     2b
    "#
);

/// COM1's base port, which is also its transmit holding register (THR).
pub const COM1: u16 = 0x3f8;
/// COM1's line status register.
pub const LSR: u16 = COM1 + 5;
/// LSR.THRE: the transmit holding register is empty.
pub const LSR_THRE: u8 = 1 << 5;

/// Reads a byte from `port` (an exit to Mica, served by its devices task).
#[inline(always)]
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: a port read; in a Mica guest it exits to the hypervisor.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack))
    };
    value
}

/// Writes a byte to `port` (an exit to Mica; a write to COM1's THR is
/// posted: the guest runs on at once).
#[inline(always)]
pub fn outb(port: u16, value: u8) {
    // SAFETY: a port write to one of the guest's own devices.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

/// Writes one byte to COM1 once its transmitter holding register is empty.
pub fn putc(byte: u8) {
    while inb(LSR) & LSR_THRE == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, byte);
}

/// COM1 as a `fmt::Write`.
pub struct Com1;

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(putc);
        Ok(())
    }
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter; it is not intercepted.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID leaf 0's EBX on an Intel CPU ("Genu" of "GenuineIntel").
const INTEL_EBX: u32 = 0x756e_6547;

/// The null hypercall's number (`ipc::syscall::X86_HYPERCALL_NULL`).
pub const HYPERCALL_NULL: u64 = 0x4d49_4341_0000_0001;
/// The power-off hypercall's number (`ipc::syscall::X86_HYPERCALL_POWER_OFF`).
pub const HYPERCALL_POWER_OFF: u64 = 0;

/// Whether the CPU is Intel's (VMX: VMCALL), from CPUID leaf 0's vendor
/// (Mica answers with the host's).
pub fn is_intel() -> bool {
    core::arch::x86_64::__cpuid(0).ebx == INTEL_EBX
}

/// Hypercall `nr` (in `rax`): VMCALL when `intel`, VMMCALL otherwise;
/// each is undefined on the other's CPUs.
#[inline(always)]
pub fn hypercall(intel: bool, nr: u64) {
    if intel {
        // SAFETY: VMCALL exits to the hypervisor, which serves `nr`.
        unsafe { core::arch::asm!("vmcall", inout("rax") nr => _, options(nomem, nostack)) };
    } else {
        // SAFETY: VMMCALL exits to the hypervisor, which serves `nr`.
        unsafe { core::arch::asm!("vmmcall", inout("rax") nr => _, options(nomem, nostack)) };
    }
}

/// Starts a stopped vCPU (`ipc::syscall::X86_HYPERCALL_VCPU_START`).
pub const HYPERCALL_VCPU_START: u64 = 0x4d49_4341_0000_0002;
/// The caller stops (`ipc::syscall::X86_HYPERCALL_VCPU_STOP`).
pub const HYPERCALL_VCPU_STOP: u64 = 0x4d49_4341_0000_0003;
/// Whether a vCPU runs (`ipc::syscall::X86_HYPERCALL_VCPU_STATUS`).
pub const HYPERCALL_VCPU_STATUS: u64 = 0x4d49_4341_0000_0004;
/// Sends a vector to a mask of vCPUs (`ipc::syscall::X86_HYPERCALL_SEND_IPI`).
pub const HYPERCALL_SEND_IPI: u64 = 0x4d49_4341_0000_0005;
/// The caller's vCPU number (`ipc::syscall::X86_HYPERCALL_VCPU_ID`).
pub const HYPERCALL_VCPU_ID: u64 = 0x4d49_4341_0000_0006;
/// A hypercall's success (`ipc::syscall::X86_HC_OK`).
pub const HC_OK: u64 = 0;
/// An argument out of range (`ipc::syscall::X86_HC_INVALID`, -3).
pub const HC_INVALID: u64 = -3i64 as u64;
/// The vCPU to start runs already (`ipc::syscall::X86_HC_ALREADY_STARTED`, -7).
pub const HC_ALREADY_STARTED: u64 = -7i64 as u64;
/// [`vcpu_status`]: the vCPU runs, or waits (`ipc::syscall::X86_VCPU_STARTED`).
pub const VCPU_STARTED: u64 = 0;
/// [`vcpu_status`]: the vCPU is stopped (`ipc::syscall::X86_VCPU_STOPPED`).
pub const VCPU_STOPPED: u64 = 1;

/// Hypercall `nr` with the arguments `rdi`, `rsi`, `rdx` and `r8`
/// (VMCALL when `intel`, VMMCALL otherwise); returns `rax`. Not `nomem`:
/// a call may hand guest memory to another vCPU (a stack, an entry), so
/// the compiler writes it out first.
#[inline(always)]
pub fn hypercall_with(intel: bool, nr: u64, args: [u64; 4]) -> u64 {
    let [rdi, rsi, rdx, r8] = args;
    let rax: u64;
    // SAFETY: VMCALL (`intel`) or VMMCALL (SVM) exits to the hypervisor,
    // which serves `nr` and writes at most `rax`; the argument registers
    // count as clobbered, and the flags the test sets are not kept.
    unsafe {
        core::arch::asm!(
            "test {intel:e}, {intel:e}",
            "jz 2f",
            "vmcall",
            "jmp 3f",
            "2:",
            "vmmcall",
            "3:",
            intel = in(reg) u32::from(intel),
            inout("rax") nr => rax,
            inout("rdi") rdi => _,
            inout("rsi") rsi => _,
            inout("rdx") rdx => _,
            inout("r8") r8 => _,
            options(nostack),
        )
    };
    rax
}

/// Starts the stopped vCPU `vcpu` at `rip` with `rsp` and `rdi` (long
/// mode, CPL 0, interrupts off, the boot page tables, no IDT): [`HC_OK`],
/// [`HC_INVALID`] (no such vCPU) or [`HC_ALREADY_STARTED`].
pub fn vcpu_start(intel: bool, vcpu: u64, rip: u64, rsp: u64, rdi: u64) -> u64 {
    hypercall_with(intel, HYPERCALL_VCPU_START, [vcpu, rip, rsp, rdi])
}

/// Stops the calling vCPU; only a sibling's [`vcpu_start`] runs it again,
/// at the entry that start names. Returns (`rax`) only if Mica refused.
pub fn vcpu_stop(intel: bool) -> u64 {
    hypercall_with(intel, HYPERCALL_VCPU_STOP, [0; 4])
}

/// [`VCPU_STARTED`] or [`VCPU_STOPPED`] for `vcpu`, or [`HC_INVALID`].
pub fn vcpu_status(intel: bool, vcpu: u64) -> u64 {
    hypercall_with(intel, HYPERCALL_VCPU_STATUS, [vcpu, 0, 0, 0])
}

/// Sends `vector` (32..=255) to every vCPU in `mask` (bit n = vCPU n):
/// [`HC_OK`], or [`HC_INVALID`] and nothing sent.
pub fn send_ipi(intel: bool, mask: u64, vector: u64) -> u64 {
    hypercall_with(intel, HYPERCALL_SEND_IPI, [mask, vector, 0, 0])
}

/// The calling vCPU's number.
pub fn vcpu_id(intel: bool) -> u64 {
    hypercall_with(intel, HYPERCALL_VCPU_ID, [0; 4])
}

/// Asks Mica to power the VM off: VMCALL on an Intel CPU (VMX), VMMCALL
/// elsewhere (SVM).
pub fn power_off() -> ! {
    hypercall(is_intel(), HYPERCALL_POWER_OFF);
    loop {
        core::hint::spin_loop();
    }
}

/// `println!` for x86 guests: COM1, `\n` line endings.
#[macro_export]
macro_rules! x86_println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::x86::Com1, $($arg)*);
    }};
}
