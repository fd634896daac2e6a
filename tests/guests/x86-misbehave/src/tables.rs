//! The guest's own GDT (64-bit code, data, a TSS), IDT with a #GP handler
//! that counts the fault and steps over the 2-byte RDMSR/WRMSR that
//! raised it, and the MSR instructions.

/// GDT selectors: code 0x08 and data 0x10 as Mica entered us, TSS 0x18.
const TSS_SELECTOR: u16 = 0x18;
const GP_VECTOR: usize = 13;

#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 5],
    tss: [u32; 26],
    idt: [u64; 2 * 32],
}

static mut TABLES: Tables = Tables {
    gdt: [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0, 0],
    tss: [0; 26],
    idt: [0; 64],
};

core::arch::global_asm!(
    r#"
    .section .data
    .balign 8
    .globl misbehave_gp_count
misbehave_gp_count:
    .quad 0
    .section .text
    .globl misbehave_gp
misbehave_gp:
    add     qword ptr [rsp + 8], 2
    add     rsp, 8
    inc     qword ptr [rip + misbehave_gp_count]
    iretq
    "#
);

unsafe extern "C" {
    fn misbehave_gp();
    static misbehave_gp_count: u64;
}

/// How many #GP the handler took.
pub fn gp_count() -> u64 {
    // SAFETY: the counter is a quadword in .data only the handler writes,
    // on this (only) CPU.
    unsafe { (&raw const misbehave_gp_count).read_volatile() }
}

/// Builds the TSS descriptor and the #GP gate, loads GDTR, IDTR and TR.
pub fn install() {
    let tables = &raw mut TABLES;
    // SAFETY: TABLES is this guest's alone, written here before any use
    // and only read by the CPU afterwards; one CPU, interrupts off.
    unsafe {
        let tss = (&raw const (*tables).tss) as u64;
        let limit = 103u64;
        (*tables).gdt[3] = limit | (tss & 0xff_ffff) << 16 | 0x89 << 40 | (tss >> 24 & 0xff) << 56;
        (*tables).gdt[4] = tss >> 32;
        let handler = misbehave_gp as *const () as u64;
        (*tables).idt[2 * GP_VECTOR] =
            (handler & 0xffff) | 0x08 << 16 | 0x8e00 << 32 | (handler >> 16 & 0xffff) << 48;
        (*tables).idt[2 * GP_VECTOR + 1] = handler >> 32;
        let gdtr: [u16; 5] = pseudo_descriptor(39, (&raw const (*tables).gdt) as u64);
        let idtr: [u16; 5] = pseudo_descriptor(32 * 16 - 1, (&raw const (*tables).idt) as u64);
        core::arch::asm!("lgdt [{}]", in(reg) gdtr.as_ptr(), options(nostack));
        core::arch::asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(nostack));
        core::arch::asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack));
    }
}

/// What LGDT/LIDT read: the limit, then the base (as 16-bit words).
fn pseudo_descriptor(limit: u16, base: u64) -> [u16; 5] {
    let b = base.to_le_bytes();
    let word = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    [limit, word(0), word(1), word(2), word(3)]
}

/// RDMSR (0 when it raised #GP).
pub fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: CPL 0 in the guest; a refused MSR raises #GP, which the
    // handler counts and steps over (EAX/EDX then read as zero).
    unsafe {
        core::arch::asm!("xor eax, eax", "xor edx, edx", "rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nostack));
    }
    u64::from(high) << 32 | u64::from(low)
}

/// WRMSR.
#[allow(
    clippy::cast_possible_truncation,
    reason = "EAX and EDX take the low and high halves of the value"
)]
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: as `rdmsr`: the guest's own state or a counted #GP.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack));
    }
}

/// SWAPGS: GS base and KernelGSBase trade places.
pub fn swapgs() {
    // SAFETY: changes only the GS base, which this guest does not use.
    unsafe { core::arch::asm!("swapgs", options(nostack, nomem)) };
}
