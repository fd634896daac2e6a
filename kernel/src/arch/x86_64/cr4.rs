//! CR4 as a guest may have it: the bits it owns, the answer to a write
//! the backend intercepts, and the CPUID bits of the features behind the
//! bits it may not own. Pure and host-tested.
//!
//! Why the guest may not own every bit: CR4 itself is part of the state
//! the world switch swaps (the VMCB's save area, the VMCS guest-state
//! area), but some bits turn on state that nothing swaps. CR4.PKE makes
//! WRPKRU write PKRU, which FXSAVE does not cover and which would reach
//! the next VM on the CPU (RDPKRU); CR4.OSXSAVE enables XSAVE/XRSTOR on
//! the host's XCR0 (XSAVE is hidden, XSETBV intercepted, see `fpu`); CET
//! and PKS have MSR state of their own; VMXE and SMXE would nest; LA57
//! would change the paging form under a guest in long mode. So the
//! backend owns every bit outside [`GUEST_OWNABLE`], and CPUID hides the
//! features behind them ([`CPUID7_ECX_HIDDEN`]): the guest sees a CPU
//! without protection keys, and a MOV to CR4 that sets one of those bits
//! (or a reserved bit) raises #GP(0) in the guest, as on such a CPU. The
//! bits in [`GUEST_OWNABLE`] change only how the guest's own code runs
//! and translates (under its ASID or VPID), so it keeps them.
//!
//! PCE among them: it lets RDPMC run outside ring 0, but RDPMC always
//! exits (SVM's RDPMC intercept, VMX's RDPMC exiting) and is answered
//! with #GP(0) whatever CPL and PCE say (see `pmu`), so PCE reaches no
//! counter. Owning it costs nothing and saves an exit on every MOV to
//! CR4 of a guest kernel that sets it per process (under VMX); taking it
//! would only turn a harmless write into a #GP the guest does not expect
//! of a CPU that has RDPMC.
//!
//! VMX owns them through the CR4 guest/host mask ([`VMX_HOST_OWNED`]) and
//! read shadow: a write that changes only guest-owned bits never exits,
//! and one that sets a host-owned bit exits (CR-access exit) and is
//! answered by [`write`]. SVM has no mask: its CR4 write intercept
//! catches every MOV to CR4, and [`write`] answers each.

/// CR4 bits (Intel SDM vol. 3A, 2.5; AMD APM vol. 2, 3.1.3).
pub mod bit {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const LA57: u64 = 1 << 12;
    pub const VMXE: u64 = 1 << 13;
    pub const SMXE: u64 = 1 << 14;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const CET: u64 = 1 << 23;
    pub const PKS: u64 = 1 << 24;
}

use bit::*;

/// The bits a guest may own (when the CPU has their feature, see
/// [`supported`]): each changes only how the guest's own instructions
/// run or how its own addresses translate.
pub const GUEST_OWNABLE: u64 = VME
    | PVI
    | TSD
    | DE
    | PSE
    | PAE
    | MCE
    | PGE
    | PCE
    | OSFXSR
    | OSXMMEXCPT
    | UMIP
    | FSGSBASE
    | PCIDE
    | SMEP
    | SMAP;

/// The VMX CR4 guest/host mask: every bit a guest may not own, reserved
/// bits among them, so a write that sets one exits (its read shadow keeps
/// them clear, VMXE too).
pub const VMX_HOST_OWNED: u64 = !GUEST_OWNABLE;

/// A change of these makes the CPU drop the translations it cached (Intel
/// SDM vol. 3A, 4.10.4.1): an emulated write must do that for the guest.
const TLB_BITS: u64 = PGE | PAE | PSE | PCIDE | SMEP | SMAP;

/// CPUID leaf 1 ECX: SMX (6), PCID (17).
pub const CPUID1_ECX_SMX: u32 = 1 << 6;
const CPUID1_ECX_PCID: u32 = 1 << 17;
/// CPUID leaf 7 subleaf 0 ECX bits of features behind host-owned bits:
/// PKU (3), OSPKE (4), CET_SS (7), LA57 (16), KL (23), PKS (31).
pub const CPUID7_ECX_HIDDEN: u32 = 1 << 3 | 1 << 4 | 1 << 7 | 1 << 16 | 1 << 23 | 1 << 31;
/// CPUID leaf 7 subleaf 0 EDX: UINTR (5), CET_IBT (20).
pub const CPUID7_EDX_HIDDEN: u32 = 1 << 5 | 1 << 20;

/// The CPUID words the ownable bits depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Leaf 1 ECX.
    pub leaf1_ecx: u32,
    /// Leaf 1 EDX.
    pub leaf1_edx: u32,
    /// Leaf 7 subleaf 0 EBX.
    pub leaf7_ebx: u32,
    /// Leaf 7 subleaf 0 ECX.
    pub leaf7_ecx: u32,
}

/// The ownable bits this CPU has (setting any other is a reserved-bit
/// #GP natively, and a guest state VMRUN or VM entry refuses).
pub fn supported(f: &Features) -> u64 {
    let has = |word: u32, n: u32, bits: u64| if word & (1 << n) != 0 { bits } else { 0 };
    let edx = f.leaf1_edx;
    // PCE: RDPMC exists on every x86-64 CPU (it always exits: see the
    // module comment).
    PCE | has(edx, 1, VME | PVI)
        | has(edx, 2, DE)
        | has(edx, 3, PSE)
        | has(edx, 4, TSD)
        | has(edx, 6, PAE)
        | has(edx, 7, MCE)
        | has(edx, 13, PGE)
        | has(edx, 24, OSFXSR)
        | has(edx, 25, OSXMMEXCPT)
        | has(f.leaf1_ecx, 17, PCIDE)
        | has(f.leaf7_ecx, 2, UMIP)
        | has(f.leaf7_ebx, 0, FSGSBASE)
        | has(f.leaf7_ebx, 7, SMEP)
        | has(f.leaf7_ebx, 20, SMAP)
}

/// What [`write`] needs to know of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// CR4 as the guest sees it now.
    pub cr4: u64,
    /// EFER.LMA: the guest is in long mode.
    pub long_mode: bool,
    /// CR3 (its low 12 bits must be 0 to set PCIDE).
    pub cr3: u64,
}

/// How an intercepted MOV to CR4 ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// CR4 becomes `value` (as the guest sees it), RIP moves past the
    /// instruction; `flush`: the guest's cached translations must go,
    /// as the CPU would drop them for this change.
    Accept { value: u64, flush: bool },
    /// #GP(0) in the guest, which stays at the instruction; CR4 keeps its
    /// value.
    GeneralProtection,
}

/// The answer to a MOV of `value` to CR4 by `guest`, who may own `owned`
/// (at most [`GUEST_OWNABLE`] and what the CPU has): a bit outside it
/// (PKE, OSXSAVE, VMXE, a reserved bit...) is #GP(0), as are the CPU's
/// own checks an intercepted write skips: clearing PAE in long mode, and
/// setting PCIDE outside long mode or with CR3[11:0] not 0.
pub fn write(value: u64, guest: &Guest, owned: u64) -> Write {
    let owned = owned & GUEST_OWNABLE;
    let setting = value & !guest.cr4;
    let refused = value & !owned != 0
        || (guest.long_mode && value & PAE == 0)
        || (setting & PCIDE != 0 && (!guest.long_mode || guest.cr3 & 0xfff != 0));
    if refused {
        return Write::GeneralProtection;
    }
    Write::Accept {
        value,
        flush: (value ^ guest.cr4) & TLB_BITS != 0,
    }
}

/// Applies [`CPUID7_ECX_HIDDEN`]/[`CPUID7_EDX_HIDDEN`] (leaf 7, subleaf
/// 0) and [`CPUID1_ECX_SMX`] (leaf 1) to a CPUID answer `(eax, ebx, ecx,
/// edx)`; PCID stays shown only when `owned` holds PCIDE.
pub fn hide(leaf: u32, subleaf: u32, regs: &mut [u32; 4], owned: u64) {
    match (leaf, subleaf) {
        (1, _) => {
            regs[2] &= !CPUID1_ECX_SMX;
            if owned & PCIDE == 0 {
                regs[2] &= !CPUID1_ECX_PCID;
            }
        }
        (7, 0) => {
            regs[2] &= !CPUID7_ECX_HIDDEN;
            regs[3] &= !CPUID7_EDX_HIDDEN;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Skylake-X-like CPU: every ownable feature, PKU, LA57, CET too.
    const SKYLAKE: Features = Features {
        leaf1_ecx: 1 << 17 | 1 << 26 | 1 << 5,
        leaf1_edx: 0x0fff_ffff,
        leaf7_ebx: 1 | 1 << 7 | 1 << 20,
        leaf7_ecx: 1 << 2 | 1 << 3 | 1 << 7 | 1 << 16,
    };
    const LONG: Guest = Guest {
        cr4: PAE,
        long_mode: true,
        cr3: 0x1000,
    };

    #[test]
    fn every_ownable_bit_a_cpu_has_is_owned_and_nothing_else() {
        assert_eq!(supported(&SKYLAKE), GUEST_OWNABLE);
        // qemu64: no VME, UMIP, FSGSBASE, SMEP, SMAP or PCID.
        let qemu64 = Features {
            leaf1_ecx: 0,
            leaf1_edx: 0x0781_abfd,
            leaf7_ebx: 0,
            leaf7_ecx: 0,
        };
        let owned = supported(&qemu64);
        assert_eq!(
            owned & (VME | PVI | UMIP | FSGSBASE | SMEP | SMAP | PCIDE),
            0
        );
        assert_eq!(
            owned,
            TSD | DE | PSE | PAE | MCE | PGE | PCE | OSFXSR | OSXMMEXCPT
        );
        assert_eq!(VMX_HOST_OWNED & GUEST_OWNABLE, 0);
        for b in [PKE, OSXSAVE, VMXE, SMXE, LA57, CET, PKS, 1 << 15, 1 << 63] {
            assert_ne!(VMX_HOST_OWNED & b, 0, "{b:#x}");
        }
    }

    #[test]
    fn setting_pke_or_another_host_owned_bit_is_a_general_protection_fault() {
        let owned = supported(&SKYLAKE);
        for b in [
            PKE,
            OSXSAVE,
            VMXE,
            SMXE,
            LA57,
            CET,
            PKS,
            1 << 15,
            1 << 31,
            1 << 63,
        ] {
            assert_eq!(
                write(PAE | b, &LONG, owned),
                Write::GeneralProtection,
                "{b:#x}"
            );
        }
        // Even with the bit claimed as owned: ownable bits only.
        assert_eq!(write(PAE | PKE, &LONG, u64::MAX), Write::GeneralProtection);
        // A bit the CPU lacks is reserved for the guest too.
        let no_smep = owned & !SMEP;
        assert_eq!(write(PAE | SMEP, &LONG, no_smep), Write::GeneralProtection);
    }

    #[test]
    fn owned_bits_are_written_and_a_translation_change_flushes() {
        let owned = supported(&SKYLAKE);
        assert_eq!(
            write(PAE | OSFXSR | OSXMMEXCPT, &LONG, owned),
            Write::Accept {
                value: PAE | OSFXSR | OSXMMEXCPT,
                flush: false
            }
        );
        assert_eq!(
            write(PAE | PGE, &LONG, owned),
            Write::Accept {
                value: PAE | PGE,
                flush: true
            }
        );
        let with_pge = Guest {
            cr4: PAE | PGE | TSD,
            ..LONG
        };
        assert_eq!(
            write(PAE | TSD, &with_pge, owned),
            Write::Accept {
                value: PAE | TSD,
                flush: true
            }
        );
        assert_eq!(
            write(with_pge.cr4, &with_pge, owned),
            Write::Accept {
                value: with_pge.cr4,
                flush: false
            }
        );
    }

    #[test]
    fn the_cpus_own_checks_hold_for_an_intercepted_write() {
        let owned = supported(&SKYLAKE);
        // PAE cleared in long mode.
        assert_eq!(write(0, &LONG, owned), Write::GeneralProtection);
        assert_eq!(write(PGE, &LONG, owned), Write::GeneralProtection);
        let legacy = Guest {
            cr4: PAE,
            long_mode: false,
            cr3: 0x1000,
        };
        assert!(matches!(write(0, &legacy, owned), Write::Accept { .. }));
        // PCIDE: long mode and CR3[11:0] = 0 to set it; clearing is fine.
        assert!(matches!(
            write(PAE | PCIDE, &LONG, owned),
            Write::Accept { flush: true, .. }
        ));
        let pcid_in_cr3 = Guest {
            cr3: 0x1005,
            ..LONG
        };
        assert_eq!(
            write(PAE | PCIDE, &pcid_in_cr3, owned),
            Write::GeneralProtection
        );
        assert_eq!(write(PAE | PCIDE, &legacy, owned), Write::GeneralProtection);
        let with_pcide = Guest {
            cr4: PAE | PCIDE,
            cr3: 0x1005,
            long_mode: true,
        };
        assert!(matches!(
            write(PAE | PCIDE | PGE, &with_pcide, owned),
            Write::Accept { .. }
        ));
        assert!(matches!(
            write(PAE, &with_pcide, owned),
            Write::Accept { flush: true, .. }
        ));
    }

    #[test]
    fn cpuid_hides_protection_keys_and_the_other_host_owned_features() {
        let mut leaf7 = [0, u32::MAX, u32::MAX, u32::MAX];
        hide(7, 0, &mut leaf7, GUEST_OWNABLE);
        assert_eq!(leaf7[2] & (1 << 3 | 1 << 4), 0, "PKU and OSPKE");
        assert_eq!(leaf7[2] & (1 << 16 | 1 << 7 | 1 << 31), 0);
        assert_eq!(leaf7[3] & (1 << 20), 0, "CET_IBT");
        assert_eq!(leaf7[1], u32::MAX, "EBX (SMEP, SMAP, FSGSBASE...) shown");
        assert_ne!(leaf7[2] & (1 << 2), 0, "UMIP shown");
        let mut other = [0, u32::MAX, u32::MAX, u32::MAX];
        hide(7, 1, &mut other, GUEST_OWNABLE);
        assert_eq!(other, [0, u32::MAX, u32::MAX, u32::MAX]);
        let mut leaf1 = [0, 0, u32::MAX, u32::MAX];
        hide(1, 0, &mut leaf1, GUEST_OWNABLE);
        assert_eq!(leaf1[2] & CPUID1_ECX_SMX, 0);
        assert_ne!(leaf1[2] & CPUID1_ECX_PCID, 0);
        hide(1, 0, &mut leaf1, GUEST_OWNABLE & !PCIDE);
        assert_eq!(leaf1[2] & CPUID1_ECX_PCID, 0);
    }
}
