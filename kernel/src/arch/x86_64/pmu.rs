//! The performance-monitoring unit a guest does not get: the CPUID bits
//! and leaves that would advertise one, and the MSRs behind it. Pure and
//! host-tested.
//!
//! Mica does not virtualise the PMU: nothing switches its counters and
//! event selectors with the world switch, so they count whatever the host
//! and the other VMs on the CPU do. A guest that could read them (RDPMC,
//! or RDMSR of a counter) would learn of its neighbours' activity (a side
//! channel), and one that could program them would change what the host
//! counts. So a guest meets a CPU without counters:
//!
//! - RDPMC always exits (SVM's RDPMC intercept, VMX's "RDPMC exiting")
//!   and is answered with #GP(0) in the guest, as on a CPU whose counter
//!   ECX names does not exist; the VM runs on;
//! - the PMU's MSRs ([`MSRS`]: Intel's PMCx, PERFEVTSELx, fixed counters,
//!   global controls, PEBS and the debug store; AMD's PERF_CTL/PERF_CTR
//!   in both ranges and PerfMonV2's globals) are never passed through:
//!   the MSR bitmaps intercept them and `msr::emulate` answers #GP(0);
//! - CPUID ([`hide`]) reports architectural performance monitoring
//!   version 0 (leaf 0xA zeroed, and leaf 0x23, its extension), no PDCM
//!   (IA32_PERF_CAPABILITIES), no debug store (DS, DTES64, DS-CPL), no
//!   APERF/MPERF, none of AMD's PerfCtrExtCore, PerfCtrExtNB, PerfTsc or
//!   PerfCtrExtLLC, and no PerfMonV2 (leaf 0x8000_0022 zeroed). AMD's
//!   four legacy counters have no CPUID bit: a guest that probes them
//!   (as Linux does) gets #GP(0) and runs without hardware events.

/// CPUID leaf 1 ECX: DTES64 (2), DS-CPL (4), PDCM (15).
pub const CPUID1_ECX_HIDDEN: u32 = 1 << 2 | 1 << 4 | 1 << 15;
/// CPUID leaf 1 EDX: DS, the debug store (21).
pub const CPUID1_EDX_HIDDEN: u32 = 1 << 21;
/// CPUID leaf 6 ECX: APERFMPERF (0), counters of the CPU's own cycles
/// the host's load drives.
pub const CPUID6_ECX_HIDDEN: u32 = 1;
/// CPUID leaf 0x8000_0001 ECX: PerfCtrExtCore (23), PerfCtrExtNB (24),
/// PerfTsc (27), PerfCtrExtLLC (28).
pub const CPUID_EXT1_ECX_HIDDEN: u32 = 1 << 23 | 1 << 24 | 1 << 27 | 1 << 28;
/// Leaves answered with zeros: architectural performance monitoring
/// (0xA: version 0, no counters) and its extension (0x23), AMD's
/// extended performance monitoring and debug (0x8000_0022).
pub const ZEROED_LEAVES: [u32; 3] = [0xa, 0x23, 0x8000_0022];

/// The PMU's MSRs, as inclusive ranges: none is ever passed to a guest
/// (Intel SDM vol. 4, 2.1 and chapter 20; AMD APM vol. 2, 13.2).
pub const MSRS: [(u32, u32); 16] = [
    (0xc1, 0xc8),               // IA32_PMC0-7
    (0x186, 0x18d),             // IA32_PERFEVTSEL0-7
    (0x309, 0x30c),             // IA32_FIXED_CTR0-3
    (0x345, 0x345),             // IA32_PERF_CAPABILITIES
    (0x38d, 0x393),             // IA32_FIXED_CTR_CTRL, PERF_GLOBAL_*
    (0x3f1, 0x3f2),             // IA32_PEBS_ENABLE, PEBS_LD_LAT
    (0x4c1, 0x4c8),             // IA32_A_PMC0-7
    (0x600, 0x600),             // IA32_DS_AREA
    (0xe7, 0xe8),               // IA32_MPERF, IA32_APERF
    (0xc000_0300, 0xc000_0303), // AMD PerfCntrGlobalStatus/Ctl/StatusClr
    (0xc001_0000, 0xc001_0007), // AMD PERF_CTL0-3, PERF_CTR0-3
    (0xc001_0200, 0xc001_020b), // AMD PERF_CTL0-5/PERF_CTR0-5 (core ext.)
    (0xc001_0230, 0xc001_023b), // AMD L3 (LLC) PERF_CTL/CTR
    (0xc001_0240, 0xc001_0247), // AMD Data Fabric (NB) PERF_CTL/CTR
    (0xc001_0280, 0xc001_0280), // AMD PTSC (PerfTsc)
    (0xc000_00e7, 0xc000_00e8), // AMD MPERF/APERF read-only copies
];

/// Whether `msr` belongs to the PMU ([`MSRS`]).
pub fn is_pmu_msr(msr: u32) -> bool {
    MSRS.iter()
        .any(|&(first, last)| (first..=last).contains(&msr))
}

/// Applies the hiding above to a CPUID answer `(eax, ebx, ecx, edx)` for
/// `leaf` (every subleaf alike).
pub fn hide(leaf: u32, regs: &mut [u32; 4]) {
    match leaf {
        1 => {
            regs[2] &= !CPUID1_ECX_HIDDEN;
            regs[3] &= !CPUID1_EDX_HIDDEN;
        }
        6 => regs[2] &= !CPUID6_ECX_HIDDEN,
        0x8000_0001 => regs[2] &= !CPUID_EXT1_ECX_HIDDEN,
        _ if ZEROED_LEAVES.contains(&leaf) => *regs = [0; 4],
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::msr::{self, Access, GUEST_OWNED, GuestView, Outcome};
    use super::*;

    /// Every MSR of [`MSRS`], one by one.
    fn every_pmu_msr() -> impl Iterator<Item = u32> {
        MSRS.iter().flat_map(|&(first, last)| first..=last)
    }

    #[test]
    fn leaf_0xa_reports_no_architectural_pmu() {
        // Bochs' Skylake-X: version 4, 4 counters of 48 bits, 7 events;
        // 3 fixed counters of 48 bits.
        let mut leaf_a = [0x0730_0404, 0, 0, 0x0000_0603];
        hide(0xa, &mut leaf_a);
        assert_eq!(leaf_a[0] & 0xff, 0, "version 0");
        assert_eq!(leaf_a, [0; 4]);
        for leaf in [0x23, 0x8000_0022] {
            let mut regs = [u32::MAX; 4];
            hide(leaf, &mut regs);
            assert_eq!(regs, [0; 4], "{leaf:#x}");
        }
    }

    #[test]
    fn the_pmu_feature_bits_are_cleared_and_nothing_else() {
        let mut ext1 = [u32::MAX; 4];
        hide(0x8000_0001, &mut ext1);
        assert_eq!(ext1[2] & (1 << 23 | 1 << 24 | 1 << 27 | 1 << 28), 0);
        assert_eq!(ext1[2], !CPUID_EXT1_ECX_HIDDEN);
        assert_eq!([ext1[0], ext1[1], ext1[3]], [u32::MAX; 3], "LM, NX shown");
        let mut leaf1 = [u32::MAX; 4];
        hide(1, &mut leaf1);
        assert_eq!(leaf1[2] & 1 << 15, 0, "PDCM");
        assert_eq!(leaf1[2], !(1 << 2 | 1 << 4 | 1 << 15));
        assert_eq!(leaf1[3], !(1 << 21), "DS");
        let mut leaf6 = [u32::MAX; 4];
        hide(6, &mut leaf6);
        assert_eq!(leaf6, [u32::MAX, u32::MAX, !1, u32::MAX]);
        for leaf in [0, 7, 0xb, 0xd, 0x8000_0008, 0x4000_0000] {
            let mut regs = [u32::MAX; 4];
            hide(leaf, &mut regs);
            assert_eq!(regs, [u32::MAX; 4], "{leaf:#x}");
        }
    }

    #[test]
    fn the_pmu_msrs_are_the_ones_named() {
        for msr in [0xc1, 0x186, 0x309, 0x38f, 0xc001_0000, 0xc001_0201] {
            assert!(is_pmu_msr(msr), "{msr:#x}");
        }
        for msr in [0xc0, 0xc9, 0x185, 0x18e, 0x10, 0xc000_0080, 0xc001_0117] {
            assert!(!is_pmu_msr(msr), "{msr:#x}");
        }
    }

    #[test]
    fn every_pmu_msr_faults_and_none_is_passed_through() {
        let guest = GuestView {
            efer: 1 << 8 | 1 << 10,
            efer_writable: msr::EFER_SCE,
            tsc: 1,
        };
        // The bitmaps as the backends build them: all intercepted but
        // the guest-owned MSRs.
        let mut svm = [0xffu8; 0x2000];
        let mut vmx = [0xffu8; 0x1000];
        for owned in GUEST_OWNED {
            assert!(!is_pmu_msr(owned), "{owned:#x}");
            msr::msrpm_pass(&mut svm, owned);
            msr::vmx_bitmap_pass(&mut vmx, owned);
        }
        let mut count = 0;
        for index in every_pmu_msr() {
            count += 1;
            for access in [Access::Read, Access::Write(0), Access::Write(0x43_003c)] {
                assert_eq!(
                    msr::emulate(index, access, &guest),
                    Outcome::GeneralProtection,
                    "{index:#x} {access:?}"
                );
            }
            // SVM: every PMU MSR lies in the map, both bits set.
            let (byte, bit) = msr::msrpm_read_bit(index).unwrap();
            assert_eq!(svm[byte] >> bit & 0b11, 0b11, "{index:#x}");
            // VMX: read and write bits set, or outside the bitmap's
            // ranges (AMD's 0xc001_xxxx), where every access exits.
            if let Some((byte, bit)) = msr::vmx_bitmap_read_bit(index) {
                assert_eq!(vmx[byte] >> bit & 1, 1, "{index:#x}");
                assert_eq!(vmx[byte + msr::VMX_WRITE_BITMAP] >> bit & 1, 1);
            } else {
                assert!(index >= 0xc001_0000, "{index:#x}");
            }
        }
        assert_eq!(count, 88);
    }
}
