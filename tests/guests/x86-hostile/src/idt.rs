//! The hostile guest's own GDT and IDT: every exception vector (0-31)
//! records its vector and error code, counts itself and resumes at the
//! address armed before the faulting instruction ([`arm`]), so a case
//! runs one instruction that must fault and goes on after it.

/// GDT: null, 64-bit code 0x08, data 0x10 (as Mica entered the guest).
static mut GDT: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
static mut IDT: [u64; 64] = [0; 64];

core::arch::global_asm!(
    r#"
    .section .data
    .balign 8
    .globl hostile_resume
hostile_resume:
    .quad 0
hostile_exc_count:
    .quad 0
hostile_last_vector:
    .quad 0
hostile_last_error:
    .quad 0

    .section .text
    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
hostile_vec_\v:
    push 0
    push \v
    jmp hostile_exc
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
hostile_vec_\v:
    push \v
    jmp hostile_exc
    .endr

hostile_exc:
    push rax
    mov rax, [rsp + 8]
    mov [rip + hostile_last_vector], rax
    mov rax, [rsp + 16]
    mov [rip + hostile_last_error], rax
    inc qword ptr [rip + hostile_exc_count]
    mov rax, [rip + hostile_resume]
    test rax, rax
    jz 1f
    mov [rsp + 24], rax
    mov qword ptr [rip + hostile_resume], 0
1:
    pop rax
    add rsp, 16
    iretq

    .section .rodata
    .balign 8
    .globl hostile_vectors
hostile_vectors:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad hostile_vec_\v
    .endr
    "#
);

unsafe extern "C" {
    static hostile_vectors: [u64; 32];
    static hostile_exc_count: u64;
    static hostile_last_vector: u64;
    static hostile_last_error: u64;
}

/// Loads the GDT and an IDT whose 32 exception gates are the recorders.
pub fn install() {
    let gdt = &raw mut GDT;
    let idt = &raw mut IDT;
    // SAFETY: GDT and IDT are this guest's alone, written here before any
    // use and only read by the CPU afterwards; one CPU, interrupts off.
    // The vector table holds the stubs' addresses (in this image).
    unsafe {
        for (v, &handler) in hostile_vectors.iter().enumerate() {
            (*idt)[2 * v] =
                (handler & 0xffff) | 0x08 << 16 | 0x8e00 << 32 | (handler >> 16 & 0xffff) << 48;
            (*idt)[2 * v + 1] = handler >> 32;
        }
        let gdtr = pseudo_descriptor(23, gdt as u64);
        let idtr = pseudo_descriptor(32 * 16 - 1, idt as u64);
        core::arch::asm!("lgdt [{}]", in(reg) gdtr.as_ptr(), options(nostack));
        core::arch::asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(nostack));
    }
}

/// What LGDT/LIDT read: the limit, then the base (as 16-bit words).
fn pseudo_descriptor(limit: u16, base: u64) -> [u16; 5] {
    let b = base.to_le_bytes();
    let word = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    [limit, word(0), word(1), word(2), word(3)]
}

/// Exceptions taken since boot, and the last one's vector and error code.
pub fn last() -> (u64, u64, u64) {
    // SAFETY: quadwords in .data only the handler writes, on this (only)
    // CPU, read between faults.
    unsafe {
        (
            (&raw const hostile_exc_count).read_volatile(),
            (&raw const hostile_last_vector).read_volatile(),
            (&raw const hostile_last_error).read_volatile(),
        )
    }
}

/// Runs the instruction(s) `$insn` (with the asm operands after it),
/// resuming after them if they fault.
macro_rules! faulting {
    ($insn:literal $(, $($operands:tt)*)?) => {
        // SAFETY: the instruction faults into this guest's own handler,
        // which resumes at the label after it (armed just before); every
        // register it writes is named.
        unsafe {
            core::arch::asm!(
                "lea {resume_at}, [rip + 2f]",
                "mov [rip + hostile_resume], {resume_at}",
                $insn,
                "2:",
                "mov qword ptr [rip + hostile_resume], 0",
                resume_at = out(reg) _,
                $($($operands)*)?
            )
        }
    };
}
