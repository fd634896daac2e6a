//! The IDT every vCPU of the guest loads (`x86_idt`): one 64-bit interrupt
//! gate, for [`IPI_VECTOR`], whose stub saves the scratch registers, counts the IPI
//! for the vCPU that took it ([`taken`]) and returns with IRETQ. Every
//! other vector is not present (an exception is a triple fault: Mica
//! stops the VM, and the test sees it).

use core::sync::atomic::{AtomicU64, Ordering};

use mica_guest_common::{x86, x86_idt};

use crate::guest::{MAX_VCPUS, intel};

/// The vector vCPU 0 sends its application processors.
pub const IPI_VECTOR: u8 = 0x40;
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

/// Sets the IPI gate (vCPU 0, once, before it starts any other vCPU).
pub fn build() {
    x86_idt::set_gate(IPI_VECTOR, smp_ipi_entry);
}

/// Loads the GDT that backs the selectors the vCPU runs on, and the IDT,
/// on the calling vCPU (after [`build`]).
pub fn load() {
    x86_idt::load();
}
