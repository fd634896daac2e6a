//! Intel VMX operation: the checks and VMXON on bare metal and the control
//! words read from the capability MSRs (the decisions themselves are pure,
//! in `vmx_caps` and `vmx_controls`).

use super::msr_io::{rdmsr, wrmsr};
use super::vmx_caps::{self, CR0_NE, CR4_VMXE, VmxError};
use super::vmx_controls::{self, ControlMsrs, Controls, PROC_SECONDARY};

/// Capability and control MSRs (Intel SDM vol. 3C, appendix A).
mod msr {
    pub const FEATURE_CONTROL: u32 = 0x3a;
    pub const VMX_BASIC: u32 = 0x480;
    pub const CR0_FIXED0: u32 = 0x486;
    pub const CR0_FIXED1: u32 = 0x487;
    pub const CR4_FIXED0: u32 = 0x488;
    pub const CR4_FIXED1: u32 = 0x489;
    pub const PINBASED: u32 = 0x481;
    pub const PROCBASED: u32 = 0x482;
    pub const EXIT: u32 = 0x483;
    pub const ENTRY: u32 = 0x484;
    pub const PROCBASED2: u32 = 0x48b;
    pub const TRUE_PINBASED: u32 = 0x48d;
    pub const TRUE_PROCBASED: u32 = 0x48e;
    pub const TRUE_EXIT: u32 = 0x48f;
    pub const TRUE_ENTRY: u32 = 0x490;
    pub const MISC: u32 = 0x485;
}

/// The backend's control words on this CPU (through the TRUE_* MSRs when
/// IA32_VMX_BASIC says they exist) and the VMCS revision id.
pub fn controls() -> Result<(Controls, u32), VmxError> {
    let basic = rdmsr(msr::VMX_BASIC);
    let msrs = if vmx_caps::has_true_controls(basic) {
        ControlMsrs {
            pin: rdmsr(msr::TRUE_PINBASED),
            proc: rdmsr(msr::TRUE_PROCBASED),
            proc2: 0,
            exit: rdmsr(msr::TRUE_EXIT),
            entry: rdmsr(msr::TRUE_ENTRY),
            misc: rdmsr(msr::MISC),
        }
    } else {
        ControlMsrs {
            pin: rdmsr(msr::PINBASED),
            proc: rdmsr(msr::PROCBASED),
            proc2: 0,
            exit: rdmsr(msr::EXIT),
            entry: rdmsr(msr::ENTRY),
            misc: rdmsr(msr::MISC),
        }
    };
    // PROCBASED_CTLS2 exists only if the secondary controls can be on.
    let proc2 = if msrs.proc >> 32 & u64::from(PROC_SECONDARY) != 0 {
        rdmsr(msr::PROCBASED2)
    } else {
        0
    };
    let controls = vmx_controls::controls(&ControlMsrs { proc2, ..msrs })?;
    Ok((controls, vmx_caps::revision_id(basic)))
}

/// Switches this CPU into VMX root operation with `vmxon_region` (a zeroed
/// 4 KiB frame the kernel keeps for as long as VMX is on) and returns the
/// VMCS revision id.
pub fn enable(vmxon_region: u64) -> Result<u32, VmxError> {
    if let Some(value) = vmx_caps::feature_control(rdmsr(msr::FEATURE_CONTROL))? {
        // SAFETY: the register is unlocked (checked in `feature_control`):
        // locking it with VMX outside SMX allowed only permits VMXON.
        unsafe { wrmsr(msr::FEATURE_CONTROL, value) };
    }
    let (cr0, cr4): (u64, u64);
    // SAFETY: reading CR0 and CR4 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
    }
    let cr0 = vmx_caps::apply_fixed(
        "CR0",
        cr0 | CR0_NE,
        rdmsr(msr::CR0_FIXED0),
        rdmsr(msr::CR0_FIXED1),
    )?;
    let cr4 = vmx_caps::apply_fixed(
        "CR4",
        cr4 | CR4_VMXE,
        rdmsr(msr::CR4_FIXED0),
        rdmsr(msr::CR4_FIXED1),
    )?;
    let revision = vmx_caps::revision_id(rdmsr(msr::VMX_BASIC));
    // SAFETY: the kernel already runs paged in long mode with protection
    // on, so FIXED0 adds only bits it has or NE/VMXE (native FPU errors,
    // VMX allowed); FIXED1 clears only bits VMX operation cannot have. The
    // region is a kernel-owned identity-mapped frame; its first word is the
    // revision id VMXON checks.
    unsafe {
        core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nostack));
        core::arch::asm!("mov cr4, {}", in(reg) cr4, options(nostack));
        core::ptr::write_volatile(vmxon_region as *mut u32, revision);
    }
    let failed: u8;
    // SAFETY: CR0/CR4 and the feature control satisfy VMXON's checks (set
    // above); the operand is the physical address of the region (identity
    // mapped, 4 KiB aligned). A VMfail sets CF or ZF, read by `setbe`.
    unsafe {
        core::arch::asm!(
            "vmxon [{region}]",
            "setbe {failed}",
            region = in(reg) &raw const vmxon_region,
            failed = out(reg_byte) failed,
            options(nostack),
        );
    }
    if failed != 0 {
        return Err(VmxError::VmxonFailed);
    }
    Ok(revision)
}
