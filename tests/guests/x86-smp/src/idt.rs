//! The IDT every vCPU of the guest loads: one 64-bit interrupt gate, for
//! [`IPI_VECTOR`], whose stub saves the scratch registers, counts the IPI
//! for the vCPU that took it ([`taken`]) and returns with IRETQ. Every
//! other vector is not present (an exception is a triple fault: Mica
//! stops the VM, and the test sees it).

use core::sync::atomic::{AtomicU64, Ordering};

use mica_guest_common::x86;

use crate::guest::{MAX_VCPUS, intel};

/// The vector vCPU 0 sends its application processors.
pub const IPI_VECTOR: u8 = 0x40;
/// Gates in the table: vectors 0 to [`IPI_VECTOR`].
const GATES: usize = IPI_VECTOR as usize + 1;
/// A present 64-bit interrupt gate at DPL 0 (type 0xe; IF cleared on
/// entry), in the gate's second doubleword.
const INTERRUPT_GATE: u64 = 0x8e00;

/// The gates, two quadwords each (16-byte aligned, as the CPU likes).
#[repr(C, align(16))]
struct Table([u64; 2 * GATES]);

/// The IDT: written once by vCPU 0 in [`build`], before it starts any
/// other vCPU; only the CPUs read it afterwards.
static mut IDT: Table = Table([0; 2 * GATES]);

/// IPIs each vCPU took through [`IPI_VECTOR`], indexed by vCPU number.
static TAKEN: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

core::arch::global_asm!(
    r#"
    .section .text
    .balign 16
    .globl smp_ipi_entry
smp_ipi_entry:
    # The CPU aligned RSP to 16 and pushed five quadwords: nine more make
    # it 16-aligned again for the call.
    push    rax
    push    rcx
    push    rdx
    push    rsi
    push    rdi
    push    r8
    push    r9
    push    r10
    push    r11
    cld
    call    {handler}
    pop     r11
    pop     r10
    pop     r9
    pop     r8
    pop     rdi
    pop     rsi
    pop     rdx
    pop     rcx
    pop     rax
    iretq
    "#,
    handler = sym on_ipi,
);

unsafe extern "C" {
    /// The IPI gate's stub (above): never called from Rust.
    fn smp_ipi_entry();
}

/// Called by the stub with the scratch registers saved: counts the IPI
/// for the calling vCPU (its number from Mica; the compiled code uses no
/// SSE registers, so none needs saving).
extern "C" fn on_ipi() {
    let id = x86::vcpu_id(intel());
    if let Some(count) = usize::try_from(id).ok().and_then(|i| TAKEN.get(i)) {
        count.fetch_add(1, Ordering::Release);
    }
}

/// IPIs vCPU `id` took so far.
pub fn taken(id: usize) -> u64 {
    TAKEN.get(id).map_or(0, |c| c.load(Ordering::Acquire))
}

/// Writes the IPI gate with the code segment the guest runs on (vCPU 0,
/// once, before it starts any other vCPU).
pub fn build() {
    let cs: u16;
    // SAFETY: reads the CS selector into a register.
    unsafe { core::arch::asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack)) };
    let handler = smp_ipi_entry as *const () as u64;
    let low = (handler & 0xffff)
        | u64::from(cs) << 16
        | INTERRUPT_GATE << 32
        | (handler >> 16 & 0xffff) << 48;
    let v = usize::from(IPI_VECTOR);
    let idt = &raw mut IDT;
    // SAFETY: the IDT is this guest's own; vCPU 0 writes it before any
    // vCPU loads it (no other vCPU runs yet), and nothing writes it after.
    unsafe {
        (*idt).0[2 * v] = low;
        (*idt).0[2 * v + 1] = handler >> 32;
    }
}

/// The guest's GDT: Mica enters it with CS = 0x08 (flat 64-bit code) and
/// SS = DS = 0x10 (flat data) but no GDT in memory; delivering an
/// interrupt loads CS from the gate's selector, and IRETQ loads CS and SS
/// again, from this table.
static GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];

/// Loads the GDT that backs the selectors the vCPU runs on, and the IDT,
/// on the calling vCPU (after [`build`]).
pub fn load() {
    let gdt = (&raw const GDT) as u64;
    let g = gdt.to_le_bytes();
    let gword = |i: usize| u16::from_le_bytes([g[2 * i], g[2 * i + 1]]);
    let gdtr = [3 * 8 - 1, gword(0), gword(1), gword(2), gword(3)];
    // SAFETY: LGDT reads the 10 bytes of `gdtr`; the table lives for the
    // whole run and describes the segments the vCPU already runs on (the
    // segment registers keep their cached descriptors until reloaded).
    unsafe { core::arch::asm!("lgdt [{}]", in(reg) gdtr.as_ptr(), options(readonly, nostack)) };
    let base = (&raw const IDT) as u64;
    let b = base.to_le_bytes();
    let word = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    // What LIDT reads: the limit, then the base (as 16-bit words).
    let limit = u16::try_from(GATES * 16 - 1).unwrap_or(u16::MAX);
    let idtr = [limit, word(0), word(1), word(2), word(3)];
    // SAFETY: LIDT reads the 10 bytes of `idtr`; the table it names lives
    // for the whole run and holds only the IPI gate (built before).
    unsafe { core::arch::asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(readonly, nostack)) };
}
