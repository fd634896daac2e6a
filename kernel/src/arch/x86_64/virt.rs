//! Which hardware virtualization this CPU offers, decided from CPUID bits:
//! AMD SVM (leaf 0x8000_0001 ECX bit 2) or Intel VMX (leaf 1 ECX bit 5).
//! The decision is pure and host-tested; `probe` reads the bits on bare
//! metal.

use core::fmt;

/// The backend Mica runs guests with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// AMD Secure Virtual Machine (with nested paging).
    Svm,
    /// Intel VMX (with EPT).
    Vmx,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Svm => "SVM",
            Backend::Vmx => "VMX",
        })
    }
}

/// The CPUID words the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidBits {
    /// Leaf 1, ECX.
    pub leaf1_ecx: u32,
    /// Leaf 0x8000_0000, EAX: the highest extended leaf.
    pub max_extended: u32,
    /// Leaf 0x8000_0001, ECX (meaningful only when `max_extended` reaches it).
    pub ext1_ecx: u32,
}

const VMX_BIT: u32 = 1 << 5;
const SVM_BIT: u32 = 1 << 2;
const EXT1: u32 = 0x8000_0001;

/// The backend the CPU supports, or `None` when it has neither.
pub fn choose(bits: CpuidBits) -> Option<Backend> {
    if bits.max_extended >= EXT1 && bits.ext1_ecx & SVM_BIT != 0 {
        Some(Backend::Svm)
    } else if bits.leaf1_ecx & VMX_BIT != 0 {
        Some(Backend::Vmx)
    } else {
        None
    }
}

/// The guest TLB tags `backend` offers, as `crate::vm::tlb_tag` hands
/// them out (`1..=n`; tag 0 is the host's on both):
/// - SVM: ASIDs below NASID, "the number of available address space
///   identifiers" (CPUID Fn8000_000A EBX, AMD APM vol. 2 and 3); QEMU
///   reports 16.
/// - VMX: 16-bit VPIDs (a VPID of 0000H with "enable VPID" set fails the
///   VM-entry checks on VMX controls, Intel SDM vol. 3C), but only when
///   INVVPID can drop one VPID's or every VPID's mappings
///   (`vmx_invvpid`), so that a recycled VPID can be flushed.
///
/// 0 (no tags: a VM cannot be made) otherwise.
pub fn tlb_tags(backend: Option<Backend>, svm_nasid: u32, vmx_invvpid: bool) -> u16 {
    match backend {
        Some(Backend::Svm) => u16::try_from(svm_nasid.saturating_sub(1)).unwrap_or(u16::MAX),
        Some(Backend::Vmx) if vmx_invvpid => u16::MAX,
        _ => 0,
    }
}

/// Reads the CPUID bits of the running CPU.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub fn probe() -> Option<Backend> {
    use core::arch::x86_64::__cpuid;
    let leaf1 = __cpuid(1);
    let max_extended = __cpuid(0x8000_0000).eax;
    let ext1_ecx = if max_extended >= EXT1 {
        __cpuid(EXT1).ecx
    } else {
        0
    };
    choose(CpuidBits {
        leaf1_ecx: leaf1.ecx,
        max_extended,
        ext1_ecx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu64_with_svm_uses_svm() {
        // qemu64,+svm: leaf 1 ECX without VMX, 0x8000_0001 ECX with SVM.
        let bits = CpuidBits {
            leaf1_ecx: 0x8080_2001,
            max_extended: 0x8000_000a,
            ext1_ecx: 0x0000_0065,
        };
        assert_eq!(choose(bits), Some(Backend::Svm));
        assert_eq!(Backend::Svm.to_string(), "SVM");
    }

    #[test]
    fn an_intel_cpu_with_vmx_uses_vmx() {
        let bits = CpuidBits {
            leaf1_ecx: 0x0000_0020,
            max_extended: 0x8000_0008,
            ext1_ecx: 0x0000_0121,
        };
        assert_eq!(choose(bits), Some(Backend::Vmx));
    }

    #[test]
    fn neither_bit_means_no_backend() {
        let bits = CpuidBits {
            leaf1_ecx: 0x8080_2001,
            max_extended: 0x8000_000a,
            ext1_ecx: 0x0000_0061,
        };
        assert_eq!(choose(bits), None);
    }

    #[test]
    fn svm_offers_the_asids_below_nasid_and_vmx_every_nonzero_vpid() {
        // QEMU's SVM: NASID 16, so ASIDs 1-15.
        assert_eq!(tlb_tags(Some(Backend::Svm), 16, false), 15);
        assert_eq!(tlb_tags(Some(Backend::Svm), 32768, false), 32767);
        assert_eq!(tlb_tags(Some(Backend::Svm), 1 << 20, false), u16::MAX);
        assert_eq!(tlb_tags(Some(Backend::Svm), 0, false), 0);
        assert_eq!(tlb_tags(Some(Backend::Vmx), 0, true), u16::MAX);
        assert_eq!(
            tlb_tags(Some(Backend::Vmx), 0, false),
            0,
            "a VPID that cannot be flushed cannot be recycled"
        );
        assert_eq!(tlb_tags(None, 16, true), 0);
    }

    #[test]
    fn an_svm_bit_beyond_the_highest_leaf_is_ignored() {
        let bits = CpuidBits {
            leaf1_ecx: 0,
            max_extended: 0x8000_0000,
            ext1_ecx: SVM_BIT,
        };
        assert_eq!(choose(bits), None);
    }
}
