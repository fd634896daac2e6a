//! What a RISC-V hart caches for guests, and how the kernel keeps it
//! right: the VMIDs the hart has (`hgatp.VMID`, probed once), the `hgatp`
//! value last loaded, and the G-stage, VS-stage and instruction-fetch
//! fences.
#![allow(
    clippy::cast_possible_truncation,
    reason = "VMIDLEN is at most 14 bits, the VMID count fits u16"
)]

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::cpus::{MAX_HARTS, PerCpu};
use super::{csr, gstage};

/// Width of `hgatp.VMID` on this hart, probed once (0 = no VMIDs).
static VMID_BITS: AtomicU32 = AtomicU32::new(u32::MAX);
/// Per CPU: the `hgatp` value in the hart (the last VM entered; 0 before
/// any, and after a VM is destroyed).
pub(super) static LOADED_HGATP: PerCpu<AtomicUsize> =
    PerCpu([const { AtomicUsize::new(0) }; MAX_HARTS]);
/// VMIDLEN, as the privileged spec's H chapter (`hgatp`) says to find it:
/// "writing one to every bit position in the VMID field, then reading
/// back the value in `hgatp` to see which bit positions in the VMID field
/// hold a one" (the least-significant bits are implemented first; it "is
/// UNSPECIFIED and may be zero"; at most 14 for Sv39x4).
fn vmid_bits() -> u32 {
    let known = VMID_BITS.load(Ordering::Relaxed);
    if known != u32::MAX {
        return known;
    }
    let old = csr::hgatp::read();
    // Bare mode with every VMID bit set: the hart keeps the bits it has.
    csr::hgatp::write(((1usize << gstage::VMID_BITS_MAX) - 1) << 44);
    let bits = ((csr::hgatp::read() >> 44) & ((1 << gstage::VMID_BITS_MAX) - 1)).count_ones();
    csr::hgatp::write(old);
    VMID_BITS.store(bits, Ordering::Relaxed);
    bits
}

/// The VMIDs this hart has for guests: `1..=n` (`2^VMIDLEN - 1`; VMID 0
/// marks an untagged VM), 0 without VMIDs (every VM then runs as VMID 0
/// and each switch flushes). Handed out by `crate::vm::tlb_tag`.
pub fn guest_tlb_tags() -> u16 {
    ((1u32 << vmid_bits()) - 1) as u16
}

/// A VM was destroyed: its `hgatp` value (root and VMID) may come back
/// for the next VM, whose first entry must then still write `hgatp` and
/// flush what VMID 0 holds.
pub(super) fn forget_loaded_hgatp() {
    for loaded in LOADED_HGATP.all() {
        loaded.store(0, Ordering::Relaxed);
    }
}

/// Flushes every G-stage translation (all VMIDs).
pub fn hfence_gvma_all() {
    // SAFETY: a TLB flush has no effect on memory; the assembler needs the
    // H extension named to accept the instruction.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "hfence.gvma zero, zero",
            ".option pop",
            options(nostack)
        )
    };
}

/// Flushes the G-stage translations cached under `vmid` (and, on harts
/// that cache guest-virtual to host-physical, every entry made through
/// them): HFENCE.GVMA with rs1 = x0 and rs2 = the VMID, which "specifies a
/// single virtual machine identifier" (privileged spec, H chapter,
/// "Hypervisor Memory-Management Fence Instructions").
pub(super) fn hfence_gvma_vmid(vmid: u16) {
    // SAFETY: a TLB flush has no effect on memory; the assembler needs the
    // H extension named to accept the instruction.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "hfence.gvma zero, {0}",
            ".option pop",
            in(reg) usize::from(vmid),
            options(nostack)
        )
    };
}

/// Flushes the VS-stage translations of the VM whose VMID is in `hgatp`
/// (the calling guest's, during its SBI call; or a VM about to run under a
/// VMID another VM used).
pub(super) fn hfence_vvma_all() {
    // SAFETY: a TLB flush has no effect on memory; the assembler needs the
    // H extension named to accept the instruction.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "hfence.vvma zero, zero",
            ".option pop",
            options(nostack)
        )
    };
}

/// Makes the hart's instruction fetches see its earlier stores.
pub(super) fn fence_i() {
    // SAFETY: an instruction-fetch barrier has no effect on memory.
    unsafe { core::arch::asm!("fence.i", options(nostack)) };
}
