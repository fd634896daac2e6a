//! The guest's MSRs: the ones it owns outright (its values are switched
//! with the world switch, so its RDMSR/WRMSR go straight to the CPU), the
//! few the kernel answers for it, and #GP(0) for every other one; where an
//! MSR's intercept bits lie in SVM's MSR permission map and VMX's MSR
//! bitmap. Pure and host-tested.
//!
//! Guest-owned on both backends: FS/GS base and the SYSENTER MSRs (in the
//! VMCB's VMLOAD/VMSAVE state, and in the VMCS guest-state area), and
//! KernelGSBase, STAR, LSTAR, CSTAR and SFMASK (VMLOAD/VMSAVE on SVM; the
//! VM-entry MSR-load and VM-exit MSR-store areas on VMX, with the host's
//! values in the VM-exit MSR-load area). The host's are back before the
//! kernel runs again, so a guest that writes LSTAR redirects only its own
//! `syscall`.

/// MSR numbers (AMD APM vol. 2; Intel SDM vol. 4).
pub mod index {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1b;
    pub const MTRR_CAP: u32 = 0xfe;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const PAT: u32 = 0x277;
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    pub const EFER: u32 = 0xc000_0080;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
}

/// The MSRs a guest reads and writes without an exit.
pub const GUEST_OWNED: [u32; 10] = [
    index::SYSENTER_CS,
    index::SYSENTER_ESP,
    index::SYSENTER_EIP,
    index::STAR,
    index::LSTAR,
    index::CSTAR,
    index::SFMASK,
    index::FS_BASE,
    index::GS_BASE,
    index::KERNEL_GS_BASE,
];

/// Of those, the ones VMX switches through its MSR areas (the VMCS
/// guest-state area holds the rest).
pub const VMX_SWITCHED: [u32; 5] = [
    index::STAR,
    index::LSTAR,
    index::CSTAR,
    index::SFMASK,
    index::KERNEL_GS_BASE,
];

/// EFER.SCE: `syscall`/`sysret` on (the one bit a guest may flip).
pub const EFER_SCE: u64 = 1;
/// EFER.NXE: no-execute pages (flippable when the CPU has NX).
pub const EFER_NXE: u64 = 1 << 11;

/// The power-on PAT (write-back, write-through, UC-, UC, twice).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// The xAPIC base a guest reads: the usual address, bootstrap processor,
/// global enable clear (no local APIC is emulated).
pub const APIC_BASE_VALUE: u64 = 0xfee0_0000 | 1 << 8;
/// MTRRs on, default type write-back, no variable or fixed ranges: the
/// memory type nested paging gives all guest RAM.
pub const MTRR_DEF_TYPE_VALUE: u64 = 1 << 11 | 1 << 10 | 6;

/// An intercepted access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// RDMSR.
    Read,
    /// WRMSR of EDX:EAX.
    Write(u64),
}

/// What the kernel knows of the guest to answer an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestView {
    /// EFER as the guest sees it (without SVME on SVM).
    pub efer: u64,
    /// The EFER bits the guest may change.
    pub efer_writable: u64,
    /// The time-stamp counter now (guests run without a TSC offset).
    pub tsc: u64,
}

/// How an intercepted access ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// RDMSR returns this in EDX:EAX.
    Value(u64),
    /// WRMSR sets the guest's EFER to this (as the guest sees it).
    SetEfer(u64),
    /// WRMSR done, nothing changes (the value written is the one held).
    Ignored,
    /// #GP(0) into the guest, which stays at the instruction.
    GeneralProtection,
}

/// The answer to an intercepted RDMSR or WRMSR of `msr`.
pub fn emulate(msr: u32, access: Access, guest: &GuestView) -> Outcome {
    match (msr, access) {
        (index::EFER, Access::Read) => Outcome::Value(guest.efer),
        (index::EFER, Access::Write(value)) => {
            if (value ^ guest.efer) & !guest.efer_writable == 0 {
                Outcome::SetEfer(value)
            } else {
                Outcome::GeneralProtection
            }
        }
        (index::TSC, Access::Read) => Outcome::Value(guest.tsc),
        (index::APIC_BASE, Access::Read) => Outcome::Value(APIC_BASE_VALUE),
        (index::MTRR_CAP, Access::Read) => Outcome::Value(0),
        (index::MTRR_DEF_TYPE, Access::Read) => Outcome::Value(MTRR_DEF_TYPE_VALUE),
        (index::PAT, Access::Read) => Outcome::Value(PAT_RESET),
        (index::APIC_BASE, Access::Write(v)) if v == APIC_BASE_VALUE => Outcome::Ignored,
        (index::MTRR_DEF_TYPE, Access::Write(v)) if v == MTRR_DEF_TYPE_VALUE => Outcome::Ignored,
        (index::PAT, Access::Write(v)) if v == PAT_RESET => Outcome::Ignored,
        _ => Outcome::GeneralProtection,
    }
}

/// SVM's MSR permission map: two bits an MSR (read intercept, then write
/// intercept) in three 2 KiB blocks for 0-0x1fff, 0xc000_0000-0xc000_1fff
/// and 0xc001_0000-0xc001_1fff; any other MSR always exits. The byte and
/// bit of `msr`'s read intercept (its write intercept is the next bit).
pub fn msrpm_read_bit(msr: u32) -> Option<(usize, u8)> {
    let (block, offset) = match msr {
        0..=0x1fff => (0, msr),
        0xc000_0000..=0xc000_1fff => (1, msr - 0xc000_0000),
        0xc001_0000..=0xc001_1fff => (2, msr - 0xc001_0000),
        _ => return None,
    };
    let bit = offset as usize * 2;
    Some((block * 0x800 + bit / 8, (bit % 8) as u8))
}

/// Clears both intercept bits of `msr` in an SVM MSR permission map
/// (false when the map does not cover it).
pub fn msrpm_pass(map: &mut [u8], msr: u32) -> bool {
    let Some((byte, bit)) = msrpm_read_bit(msr) else {
        return false;
    };
    let Some(b) = map.get_mut(byte) else {
        return false;
    };
    *b &= !(0b11 << bit);
    true
}

/// VMX's MSR bitmap: one bit an MSR, the read bitmaps for 0-0x1fff and
/// 0xc000_0000-0xc000_1fff in the first two 1 KiB, the write bitmaps
/// likewise in the last two; any other MSR always exits. The byte and bit
/// of `msr`'s read bit (its write bit is 2 KiB further).
pub fn vmx_bitmap_read_bit(msr: u32) -> Option<(usize, u8)> {
    let (block, offset) = match msr {
        0..=0x1fff => (0, msr as usize),
        0xc000_0000..=0xc000_1fff => (1, (msr - 0xc000_0000) as usize),
        _ => return None,
    };
    Some((block * 0x400 + offset / 8, (offset % 8) as u8))
}

/// Bytes from an MSR's read bit to its write bit in the VMX bitmap.
pub const VMX_WRITE_BITMAP: usize = 0x800;

/// Clears the read and write bits of `msr` in a VMX MSR bitmap (false when
/// the bitmap does not cover it).
pub fn vmx_bitmap_pass(map: &mut [u8], msr: u32) -> bool {
    let Some((byte, bit)) = vmx_bitmap_read_bit(msr) else {
        return false;
    };
    if byte + VMX_WRITE_BITMAP >= map.len() {
        return false;
    }
    map[byte] &= !(1 << bit);
    map[byte + VMX_WRITE_BITMAP] &= !(1 << bit);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG_MODE: GuestView = GuestView {
        efer: 1 << 8 | 1 << 10,
        efer_writable: EFER_SCE,
        tsc: 1234,
    };

    #[test]
    fn efer_changes_only_in_the_writable_bits() {
        let e = LONG_MODE.efer;
        assert_eq!(
            emulate(index::EFER, Access::Read, &LONG_MODE),
            Outcome::Value(e)
        );
        assert_eq!(
            emulate(index::EFER, Access::Write(e | EFER_SCE), &LONG_MODE),
            Outcome::SetEfer(e | EFER_SCE)
        );
        // Leaving long mode, turning SVME on, or NX without the CPU's NX.
        for bad in [0, e | 1 << 12, e | EFER_NXE, u64::MAX] {
            assert_eq!(
                emulate(index::EFER, Access::Write(bad), &LONG_MODE),
                Outcome::GeneralProtection,
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn harmless_reads_are_answered_and_their_writes_must_not_change_them() {
        let read = |msr| emulate(msr, Access::Read, &LONG_MODE);
        assert_eq!(read(index::TSC), Outcome::Value(1234));
        assert_eq!(read(index::APIC_BASE), Outcome::Value(0xfee0_0100));
        assert_eq!(read(index::PAT), Outcome::Value(PAT_RESET));
        assert_eq!(read(index::MTRR_CAP), Outcome::Value(0));
        let write = |msr, v| emulate(msr, Access::Write(v), &LONG_MODE);
        assert_eq!(write(index::PAT, PAT_RESET), Outcome::Ignored);
        assert_eq!(write(index::PAT, 0), Outcome::GeneralProtection);
        assert_eq!(write(index::TSC, 0), Outcome::GeneralProtection);
        assert_eq!(
            write(index::APIC_BASE, 0xfee0_0900),
            Outcome::GeneralProtection
        );
    }

    #[test]
    fn unknown_and_host_only_msrs_fault() {
        // VM_HSAVE_PA, VM_CR, FEATURE_CONTROL, a hypervisor-range MSR.
        for msr in [0xc001_0117, 0xc001_0114, 0x3a, 0x4000_0000] {
            assert_eq!(
                emulate(msr, Access::Read, &LONG_MODE),
                Outcome::GeneralProtection
            );
            assert_eq!(
                emulate(msr, Access::Write(0), &LONG_MODE),
                Outcome::GeneralProtection
            );
        }
    }

    #[test]
    fn msrpm_bits_follow_the_apm_layout() {
        assert_eq!(msrpm_read_bit(0), Some((0, 0)));
        assert_eq!(msrpm_read_bit(index::SYSENTER_CS), Some((0x5d, 0)));
        assert_eq!(msrpm_read_bit(index::EFER), Some((0x820, 0)));
        assert_eq!(msrpm_read_bit(index::LSTAR), Some((0x820, 4)));
        assert_eq!(msrpm_read_bit(index::KERNEL_GS_BASE), Some((0x840, 4)));
        assert_eq!(msrpm_read_bit(0xc001_0117), Some((0x1045, 6)));
        assert_eq!(msrpm_read_bit(0x2000), None);
        assert_eq!(msrpm_read_bit(0x4000_0000), None);
    }

    #[test]
    fn vmx_bits_follow_the_sdm_layout() {
        assert_eq!(vmx_bitmap_read_bit(index::SYSENTER_EIP), Some((0x2e, 6)));
        assert_eq!(vmx_bitmap_read_bit(index::FS_BASE), Some((0x420, 0)));
        assert_eq!(vmx_bitmap_read_bit(index::KERNEL_GS_BASE), Some((0x420, 2)));
        assert_eq!(vmx_bitmap_read_bit(0xc001_0117), None);
    }

    #[test]
    fn passing_the_guest_owned_msrs_leaves_every_other_intercepted() {
        let mut svm = [0xffu8; 0x2000];
        let mut vmx = [0xffu8; 0x1000];
        for msr in GUEST_OWNED {
            assert!(msrpm_pass(&mut svm, msr));
            assert!(vmx_bitmap_pass(&mut vmx, msr));
        }
        let svm_clear: usize = svm.iter().map(|b| b.count_zeros() as usize).sum();
        let vmx_clear: usize = vmx.iter().map(|b| b.count_zeros() as usize).sum();
        assert_eq!((svm_clear, vmx_clear), (20, 20));
        for msr in [index::EFER, index::PAT, index::TSC, index::APIC_BASE] {
            let (byte, bit) = msrpm_read_bit(msr).unwrap();
            assert_eq!(svm[byte] >> bit & 0b11, 0b11, "{msr:#x}");
            let (byte, bit) = vmx_bitmap_read_bit(msr).unwrap();
            assert_eq!(vmx[byte] >> bit & 1, 1, "{msr:#x}");
            assert_eq!(vmx[byte + VMX_WRITE_BITMAP] >> bit & 1, 1, "{msr:#x}");
        }
        assert!(!msrpm_pass(&mut svm, 0x4000_0000));
        assert!(!vmx_bitmap_pass(&mut vmx, 0xc001_0117));
    }
}
