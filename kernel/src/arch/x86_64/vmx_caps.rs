//! What VMX allows, decided from the capability MSRs' values (pure,
//! host-tested): the feature-control check before VMXON, CR0/CR4 with the
//! FIXED0/FIXED1 bits applied, the VMCS revision id, and a VM-execution
//! control word adjusted through an allowed-0/allowed-1 MSR (Intel SDM
//! vol. 3C, appendix A).

use core::fmt;

/// IA32_FEATURE_CONTROL: lock bit.
pub const FEATURE_LOCK: u64 = 1 << 0;
/// IA32_FEATURE_CONTROL: VMXON allowed outside SMX operation.
pub const FEATURE_VMX_OUTSIDE_SMX: u64 = 1 << 2;
/// CR4.VMXE.
pub const CR4_VMXE: u64 = 1 << 13;
/// CR0.NE (VMXON requires it: numeric errors reported natively).
pub const CR0_NE: u64 = 1 << 5;

/// Why VMX cannot be switched on or configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxError {
    /// The firmware locked IA32_FEATURE_CONTROL without allowing VMXON
    /// outside SMX: VMX must be enabled in the firmware setup.
    DisabledByFirmware,
    /// A control register needs a bit the running kernel cannot give it
    /// (which register, the value and the fixed bits it violates).
    FixedBits {
        /// "CR0" or "CR4".
        register: &'static str,
        /// The bits that must be 1 but are not allowed to be 1 or the
        /// reverse (FIXED0 & !FIXED1): an inconsistent CPU report.
        conflicting: u64,
    },
    /// A control the backend requires is not allowed to be 1.
    ControlUnsupported {
        /// Which control word.
        word: &'static str,
        /// The required bits the CPU does not offer.
        missing: u32,
    },
    /// VMXON failed (the CPU set CF or ZF).
    VmxonFailed,
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmxError::DisabledByFirmware => f.write_str(
                "VMX is disabled: IA32_FEATURE_CONTROL is locked without VMX outside SMX (enable VMX in the firmware)",
            ),
            VmxError::FixedBits {
                register,
                conflicting,
            } => write!(
                f,
                "{register} fixed bits conflict ({conflicting:#x} must be both 1 and 0)"
            ),
            VmxError::ControlUnsupported { word, missing } => write!(
                f,
                "the CPU does not offer the {word} controls {missing:#x} the VMX backend needs"
            ),
            VmxError::VmxonFailed => f.write_str("VMXON failed (VMfail)"),
        }
    }
}

/// What to do with IA32_FEATURE_CONTROL before VMXON: nothing (already
/// locked with VMX allowed), write the returned value (unlocked: lock it
/// with VMX outside SMX allowed, as firmware would), or give up.
pub fn feature_control(value: u64) -> Result<Option<u64>, VmxError> {
    if value & FEATURE_LOCK == 0 {
        return Ok(Some(value | FEATURE_LOCK | FEATURE_VMX_OUTSIDE_SMX));
    }
    if value & FEATURE_VMX_OUTSIDE_SMX == 0 {
        return Err(VmxError::DisabledByFirmware);
    }
    Ok(None)
}

/// `cr` with the bits FIXED0 requires set and the bits FIXED1 forbids
/// cleared (appendix A.7/A.8: a bit 1 in FIXED0 must be 1, a bit 0 in
/// FIXED1 must be 0).
pub fn apply_fixed(
    register: &'static str,
    cr: u64,
    fixed0: u64,
    fixed1: u64,
) -> Result<u64, VmxError> {
    let conflicting = fixed0 & !fixed1;
    if conflicting != 0 {
        return Err(VmxError::FixedBits {
            register,
            conflicting,
        });
    }
    Ok((cr | fixed0) & fixed1)
}

/// The VMCS revision identifier: bits 30:0 of IA32_VMX_BASIC.
pub fn revision_id(basic: u64) -> u32 {
    (basic & 0x7fff_ffff) as u32
}

/// Whether the TRUE_* control MSRs exist (IA32_VMX_BASIC bit 55).
pub fn has_true_controls(basic: u64) -> bool {
    basic & 1 << 55 != 0
}

/// A control word: `required` plus every bit the CPU insists on (the
/// allowed-0 settings, low half of `msr`), refused if a required bit is
/// not allowed to be 1 (high half of `msr`).
pub fn adjust_controls(word: &'static str, required: u32, msr: u64) -> Result<u32, VmxError> {
    let must_be_one = msr as u32;
    let may_be_one = (msr >> 32) as u32;
    let missing = required & !may_be_one;
    if missing != 0 {
        return Err(VmxError::ControlUnsupported { word, missing });
    }
    Ok(required | must_be_one)
}

/// The INVEPT and INVVPID types (1: single context, 2: all contexts)
/// IA32_VMX_EPT_VPID_CAP offers, single context preferred; `None` when
/// the instruction or both types are missing.
pub fn invalidation_types(cap: u64) -> (Option<u64>, Option<u64>) {
    let pick = |instruction: u32, single: u32, all: u32| {
        if cap & 1 << instruction == 0 {
            None
        } else if cap & 1 << single != 0 {
            Some(1)
        } else if cap & 1 << all != 0 {
            Some(2)
        } else {
            None
        }
    };
    (pick(20, 25, 26), pick(32, 41, 42))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn an_unlocked_feature_control_is_locked_with_vmx_allowed() {
        assert_eq!(feature_control(0), Ok(Some(0b101)));
        assert_eq!(feature_control(0b101), Ok(None));
        assert_eq!(feature_control(0b111), Ok(None));
    }

    #[test]
    fn a_locked_feature_control_without_vmx_is_refused() {
        let err = feature_control(0b011).unwrap_err();
        assert_eq!(err, VmxError::DisabledByFirmware);
        assert!(err.to_string().contains("enable VMX in the firmware"));
    }

    #[test]
    fn fixed_bits_set_and_clear_the_control_register() {
        // A typical CR0: FIXED0 = PE|NE|PG, FIXED1 = all ones (low 32).
        let cr0 = apply_fixed("CR0", 0x8000_0011, 0x8000_0021, 0xffff_ffff).unwrap();
        assert_eq!(cr0, 0x8000_0031);
        // CR4: VMXE required, bits above 22 forbidden.
        let cr4 = apply_fixed("CR4", 0x0100_0020, 0x2000, 0x003f_ffff).unwrap();
        assert_eq!(cr4, 0x2020);
    }

    #[test]
    fn inconsistent_fixed_bits_are_reported() {
        let err = apply_fixed("CR4", 0, 0x2000, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CR4 fixed bits conflict (0x2000 must be both 1 and 0)"
        );
    }

    #[test]
    fn basic_gives_the_revision_and_true_controls() {
        let basic = 0x00da_0400_0000_0004;
        assert_eq!(revision_id(basic), 4);
        assert!(has_true_controls(basic));
        assert!(!has_true_controls(0x0000_0400_8000_0001));
        assert_eq!(revision_id(0x8000_0001), 1);
    }

    #[test]
    fn invalidation_prefers_single_context() {
        // Skylake-like: INVEPT single+all, INVVPID single+all.
        let cap = 1 << 20 | 1 << 25 | 1 << 26 | 1 << 32 | 1 << 41 | 1 << 42;
        assert_eq!(invalidation_types(cap), (Some(1), Some(1)));
        assert_eq!(
            invalidation_types(1 << 20 | 1 << 26 | 1 << 32 | 1 << 42),
            (Some(2), Some(2))
        );
        assert_eq!(invalidation_types(1 << 25 | 1 << 41), (None, None));
    }

    #[test]
    fn controls_add_the_must_be_one_bits() {
        // Pin-based TRUE MSR: allowed-0 0x16, allowed-1 0x7f.
        let msr = 0x0000_007f_0000_0016;
        assert_eq!(adjust_controls("pin", 1 << 0 | 1 << 3, msr), Ok(0x1f));
    }

    #[test]
    fn a_control_the_cpu_lacks_is_refused_by_name() {
        let msr = 0x0000_007f_0000_0016;
        let err = adjust_controls("pin", 1 << 7, msr).unwrap_err();
        assert_eq!(
            err,
            VmxError::ControlUnsupported {
                word: "pin",
                missing: 0x80
            }
        );
        assert!(err.to_string().contains("pin controls 0x80"));
    }
}
