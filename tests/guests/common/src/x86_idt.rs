//! An x86 test guest's interrupt table: a GDT that backs the selectors
//! Mica enters the guest with (CS = 0x08 flat 64-bit code, SS = DS = 0x10
//! flat data; delivering an interrupt loads CS from the gate and IRETQ
//! loads CS and SS again, from this table), and an IDT of [`GATES`]
//! vectors whose gates the guest sets ([`set_gate`]) before its vCPUs load
//! it ([`load`]). A vector without a gate is not present: an exception or
//! a stray interrupt there is a triple fault, and Mica stops the VM.

/// Gates in the table: vectors 0 to 0x4f.
pub const GATES: usize = 0x50;
/// A present 64-bit interrupt gate at DPL 0 (type 0xe; IF cleared on
/// entry), in the gate's second doubleword.
const INTERRUPT_GATE: u64 = 0x8e00;

/// The gates, two quadwords each (16-byte aligned, as the CPU likes).
#[repr(C, align(16))]
struct Table([u64; 2 * GATES]);

/// The IDT: written by [`set_gate`] before any vCPU loads it; only the
/// CPUs read it afterwards.
static mut IDT: Table = Table([0; 2 * GATES]);

/// The guest's GDT: null, flat 64-bit code (0x08), flat data (0x10).
static GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];

/// Makes `vector` an interrupt gate to `handler` (an assembly stub that
/// ends with IRETQ), on the code segment the guest runs on. Called by one
/// vCPU before any vCPU [`load`]s the table; a vector past [`GATES`] is
/// ignored.
pub fn set_gate(vector: u8, handler: unsafe extern "C" fn()) {
    let v = usize::from(vector);
    if v >= GATES {
        return;
    }
    let cs: u16;
    // SAFETY: reads the CS selector into a register.
    unsafe { core::arch::asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack)) };
    let handler = handler as *const () as u64;
    let low = (handler & 0xffff)
        | u64::from(cs) << 16
        | INTERRUPT_GATE << 32
        | (handler >> 16 & 0xffff) << 48;
    let idt = &raw mut IDT;
    // SAFETY: the IDT is this guest's own; the caller writes it before any
    // vCPU loads it (the contract above), so no CPU reads it meanwhile.
    unsafe {
        (*idt).0[2 * v] = low;
        (*idt).0[2 * v + 1] = handler >> 32;
    }
}

/// The 10 bytes LGDT and LIDT read: the limit, then the base, as 16-bit
/// words.
fn pointer(base: u64, limit: usize) -> [u16; 5] {
    let b = base.to_le_bytes();
    let word = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    let limit = u16::try_from(limit).unwrap_or(u16::MAX);
    [limit, word(0), word(1), word(2), word(3)]
}

/// Loads the GDT and the IDT on the calling vCPU (after the gates it
/// needs were set).
pub fn load() {
    let gdtr = pointer((&raw const GDT) as u64, 3 * 8 - 1);
    // SAFETY: LGDT reads the 10 bytes of `gdtr`; the table lives for the
    // whole run and describes the segments the vCPU already runs on (the
    // segment registers keep their cached descriptors until reloaded).
    unsafe { core::arch::asm!("lgdt [{}]", in(reg) gdtr.as_ptr(), options(readonly, nostack)) };
    let idtr = pointer((&raw const IDT) as u64, GATES * 16 - 1);
    // SAFETY: LIDT reads the 10 bytes of `idtr`; the table it names lives
    // for the whole run and holds only the gates the guest set.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(readonly, nostack)) };
}
