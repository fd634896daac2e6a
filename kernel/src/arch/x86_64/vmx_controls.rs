//! The VM-execution, exit and entry controls the VMX backend runs guests
//! with, adjusted to the CPU through the TRUE_* capability MSRs (Intel SDM
//! vol. 3C, chapter 25 and appendix A.3-A.5). Pure and host-tested.

use super::vmx_caps::{VmxError, adjust_controls};

/// Pin-based: external interrupts and NMIs exit.
pub const PIN_EXTERNAL_INTERRUPT: u32 = 1 << 0;
pub const PIN_NMI: u32 = 1 << 3;
/// Pin-based, when the CPU has it: the VMX-preemption timer, which ends a
/// guest's run after a host tick's time even when the host timer's
/// interrupt would not (Bochs 2.7 makes no external-interrupt exit while
/// the guest runs with RFLAGS.IF clear, so a guest spinning with
/// interrupts off would keep the CPU for ever).
pub const PIN_PREEMPTION_TIMER: u32 = 1 << 6;
/// Primary processor-based: HLT exits, RDPMC exits (the guest has no
/// performance counters, see `pmu`), every IN/OUT exits, RDMSR/WRMSR
/// exit as the MSR bitmap says, secondary on.
pub const PROC_HLT: u32 = 1 << 7;
pub const PROC_RDPMC: u32 = 1 << 11;
pub const PROC_UNCONDITIONAL_IO: u32 = 1 << 24;
pub const PROC_MSR_BITMAPS: u32 = 1 << 28;
pub const PROC_SECONDARY: u32 = 1 << 31;
/// Secondary processor-based: EPT and VPID.
pub const PROC2_EPT: u32 = 1 << 1;
pub const PROC2_VPID: u32 = 1 << 5;
/// Exit: a 64-bit host, guest EFER saved, host EFER loaded.
pub const EXIT_HOST_64: u32 = 1 << 9;
pub const EXIT_SAVE_EFER: u32 = 1 << 20;
pub const EXIT_LOAD_EFER: u32 = 1 << 21;
/// Entry: an IA-32e (long-mode) guest, guest EFER loaded.
pub const ENTRY_IA32E_GUEST: u32 = 1 << 9;
pub const ENTRY_LOAD_EFER: u32 = 1 << 15;

/// The capability MSRs the controls are adjusted through: the TRUE_*
/// ones when IA32_VMX_BASIC bit 55 says they exist, else the plain ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlMsrs {
    /// (TRUE_)PINBASED_CTLS.
    pub pin: u64,
    /// (TRUE_)PROCBASED_CTLS.
    pub proc: u64,
    /// PROCBASED_CTLS2 (no TRUE_ form).
    pub proc2: u64,
    /// (TRUE_)EXIT_CTLS.
    pub exit: u64,
    /// (TRUE_)ENTRY_CTLS.
    pub entry: u64,
    /// IA32_VMX_MISC (bits 4:0: the preemption timer's rate).
    pub misc: u64,
}

/// The five control words a VMCS gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    /// Pin-based VM-execution controls.
    pub pin: u32,
    /// Primary processor-based VM-execution controls.
    pub proc: u32,
    /// Secondary processor-based VM-execution controls.
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// With the VMX-preemption timer on: it counts down once every
    /// `2^shift` TSC cycles. `None` when the CPU lacks the timer.
    pub preemption_timer_shift: Option<u8>,
}

/// The backend's controls on a CPU with these capabilities, or the first
/// word that lacks a control the backend needs.
pub fn controls(msrs: &ControlMsrs) -> Result<Controls, VmxError> {
    let preemption_timer = msrs.pin >> 32 & u64::from(PIN_PREEMPTION_TIMER) != 0;
    let optional = if preemption_timer {
        PIN_PREEMPTION_TIMER
    } else {
        0
    };
    Ok(Controls {
        pin: adjust_controls(
            "pin-based",
            PIN_EXTERNAL_INTERRUPT | PIN_NMI | optional,
            msrs.pin,
        )?,
        proc: adjust_controls(
            "processor-based",
            PROC_HLT | PROC_RDPMC | PROC_UNCONDITIONAL_IO | PROC_MSR_BITMAPS | PROC_SECONDARY,
            msrs.proc,
        )?,
        proc2: adjust_controls(
            "secondary processor-based",
            PROC2_EPT | PROC2_VPID,
            msrs.proc2,
        )?,
        exit: adjust_controls(
            "VM-exit",
            EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER,
            msrs.exit,
        )?,
        entry: adjust_controls("VM-entry", ENTRY_IA32E_GUEST | ENTRY_LOAD_EFER, msrs.entry)?,
        #[allow(clippy::cast_possible_truncation, reason = "five bits")]
        preemption_timer_shift: preemption_timer.then_some((msrs.misc & 0x1f) as u8),
    })
}

/// The VMX-preemption timer's value that ends a run after `tsc_cycles`
/// TSC cycles at `2^shift` cycles per count: at least 1 (0 would exit
/// before the guest's first instruction), at most the 32-bit field.
pub fn preemption_timer_value(tsc_cycles: u64, shift: u8) -> u32 {
    u32::try_from(tsc_cycles >> shift.min(63))
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TRUE_* values of a Skylake-like CPU (allowed-0 low, allowed-1 high).
    const SKYLAKE: ControlMsrs = ControlMsrs {
        pin: 0x0000_00ff_0000_0016,
        proc: 0xfff9_fffe_0400_6172,
        proc2: 0x0055_3cfe_0000_0000,
        exit: 0x01ff_ffff_0003_6dfb,
        entry: 0x0003_ffff_0000_11fb,
        misc: 0x0000_0000_0000_0005,
    };

    #[test]
    fn the_cpu_must_be_one_bits_are_kept() {
        let c = controls(&SKYLAKE).unwrap();
        assert_eq!(
            c.pin,
            0x16 | PIN_EXTERNAL_INTERRUPT | PIN_NMI | PIN_PREEMPTION_TIMER
        );
        assert_eq!(c.preemption_timer_shift, Some(5));
        assert_eq!(
            c.proc,
            0x0400_6172
                | PROC_HLT
                | PROC_RDPMC
                | PROC_UNCONDITIONAL_IO
                | PROC_MSR_BITMAPS
                | PROC_SECONDARY
        );
        assert_ne!(c.proc & 1 << 11, 0, "RDPMC exiting");
        assert_eq!(c.proc2, PROC2_EPT | PROC2_VPID);
        assert_eq!(c.exit & EXIT_HOST_64, EXIT_HOST_64);
        assert_eq!(c.exit & 0x0003_6dfb, 0x0003_6dfb);
        assert_eq!(c.entry, 0x11fb | ENTRY_IA32E_GUEST | ENTRY_LOAD_EFER);
    }

    #[test]
    fn a_cpu_without_ept_is_refused_naming_the_control() {
        let msrs = ControlMsrs {
            proc2: 0x0000_0020_0000_0000,
            ..SKYLAKE
        };
        assert_eq!(
            controls(&msrs),
            Err(VmxError::ControlUnsupported {
                word: "secondary processor-based",
                missing: PROC2_EPT
            })
        );
    }

    #[test]
    fn the_preemption_timer_is_used_when_the_cpu_has_it() {
        let without = ControlMsrs {
            pin: 0x0000_00bf_0000_0016,
            ..SKYLAKE
        };
        let c = controls(&without).unwrap();
        assert_eq!(c.pin & PIN_PREEMPTION_TIMER, 0);
        assert_eq!(c.preemption_timer_shift, None);
    }

    #[test]
    fn the_preemption_timer_value_is_never_0_and_fits_its_field() {
        assert_eq!(preemption_timer_value(10_000_000, 5), 312_500);
        assert_eq!(preemption_timer_value(0, 5), 1);
        assert_eq!(preemption_timer_value(31, 5), 1);
        assert_eq!(preemption_timer_value(u64::MAX, 0), u32::MAX);
        assert_eq!(preemption_timer_value(u64::MAX, 200), 1);
    }
}
