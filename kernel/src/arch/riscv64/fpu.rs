//! Guest floating-point state: the 32 `f` registers and `fcsr` of a vCPU,
//! kept in the hart while it runs and saved only when the guest changed
//! them.
//!
//! While a guest runs, `sstatus.FS` (the HS-level field) is set to Clean;
//! the hart sets it to Dirty on the guest's first FP write (the H
//! extension sets both `vsstatus.FS` and `sstatus.FS`), so the exit knows
//! whether to save. The registers are loaded again only when another
//! vCPU's state was in the hart ([`FpOwner`]): tasks run with FS Off and
//! the kernel uses no FP, so nothing else touches them. Vector state is
//! not offered to guests: they run with `sstatus.VS` Off and the device
//! tree does not list V, so a vector instruction is an illegal-instruction
//! exception the guest takes itself.

use core::sync::atomic::{AtomicU64, Ordering};

/// `sstatus.FS`.
pub const SSTATUS_FS: usize = 3 << 13;
/// `sstatus.FS` = Clean.
pub const FS_CLEAN: usize = 2 << 13;
/// `sstatus.FS` = Dirty.
pub const FS_DIRTY: usize = 3 << 13;
/// `sstatus.VS`.
pub const SSTATUS_VS: usize = 3 << 9;

/// The 32 instructions `$op fN, 8*N({p})` for N = 0..32 (`fld` or `fsd`
/// of every FP register at its slot of an [`FpRegs`]), as one template.
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
macro_rules! each_fp_register {
    ($op:literal) => {
        concat!(
            $op,
            " f0, 0({p})\n",
            $op,
            " f1, 8({p})\n",
            $op,
            " f2, 16({p})\n",
            $op,
            " f3, 24({p})\n",
            $op,
            " f4, 32({p})\n",
            $op,
            " f5, 40({p})\n",
            $op,
            " f6, 48({p})\n",
            $op,
            " f7, 56({p})\n",
            $op,
            " f8, 64({p})\n",
            $op,
            " f9, 72({p})\n",
            $op,
            " f10, 80({p})\n",
            $op,
            " f11, 88({p})\n",
            $op,
            " f12, 96({p})\n",
            $op,
            " f13, 104({p})\n",
            $op,
            " f14, 112({p})\n",
            $op,
            " f15, 120({p})\n",
            $op,
            " f16, 128({p})\n",
            $op,
            " f17, 136({p})\n",
            $op,
            " f18, 144({p})\n",
            $op,
            " f19, 152({p})\n",
            $op,
            " f20, 160({p})\n",
            $op,
            " f21, 168({p})\n",
            $op,
            " f22, 176({p})\n",
            $op,
            " f23, 184({p})\n",
            $op,
            " f24, 192({p})\n",
            $op,
            " f25, 200({p})\n",
            $op,
            " f26, 208({p})\n",
            $op,
            " f27, 216({p})\n",
            $op,
            " f28, 224({p})\n",
            $op,
            " f29, 232({p})\n",
            $op,
            " f30, 240({p})\n",
            $op,
            " f31, 248({p})\n",
        )
    };
}

/// A vCPU's FP registers as saved in memory.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FpRegs {
    /// f0..f31 (as 64-bit patterns).
    pub f: [u64; 32],
    /// `fcsr` (rounding mode and exception flags).
    pub fcsr: u64,
}

/// Which vCPU's FP state the hart holds: a token per vCPU life (taken
/// again at every start), never reused, so a destroyed VM's state can
/// never be mistaken for a new one's.
pub struct FpOwner;

/// Per CPU: the token of the vCPU whose FP state the hart holds.
static LOADED: super::cpus::PerCpu<AtomicU64> =
    super::cpus::PerCpu([const { AtomicU64::new(0) }; super::cpus::MAX_HARTS]);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl FpOwner {
    /// A token no vCPU had before.
    pub fn fresh_token() -> u64 {
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether this hart holds the state of the vCPU with `token`.
    pub fn holds(token: u64) -> bool {
        LOADED.here().load(Ordering::Relaxed) == token
    }

    #[cfg(all(target_arch = "riscv64", target_os = "none"))]
    fn set(token: u64) {
        LOADED.here().store(token, Ordering::Relaxed);
    }

    /// This hart holds no vCPU's FP state as last saved (a vCPU that ran
    /// on another hart since comes back: its state is loaded again).
    pub fn forget_here() {
        LOADED.here().store(0, Ordering::Relaxed);
    }
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
/// Puts `regs` into the hart for the vCPU with `token`, unless it is
/// already there.
pub fn load(token: u64, regs: &FpRegs) {
    if FpOwner::holds(token) {
        return;
    }
    with_fs_on(|| {
        // SAFETY: reads 33 doublewords from `regs` (a valid, aligned
        // `FpRegs`) into the FP registers and fcsr; FS is on, and no Rust
        // code keeps values in FP registers (the kernel uses no floats).
        unsafe {
            core::arch::asm!(
                ".option push",
                ".option arch, +d",
                each_fp_register!("fld"),
                "ld {t}, 256({p})",
                "fscsr {t}",
                ".option pop",
                p = in(reg) regs as *const FpRegs,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
    });
    FpOwner::set(token);
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
/// Copies the hart's FP registers into `regs` (the state of the vCPU that
/// just ran, which the hart keeps holding).
pub fn save(regs: &mut FpRegs) {
    with_fs_on(|| {
        // SAFETY: writes 33 doublewords into `regs` (a valid, aligned,
        // exclusively borrowed `FpRegs`); FS is on.
        unsafe {
            core::arch::asm!(
                ".option push",
                ".option arch, +d",
                each_fp_register!("fsd"),
                "frcsr {t}",
                "sd {t}, 256({p})",
                ".option pop",
                p = in(reg) regs as *mut FpRegs,
                t = out(reg) _,
                options(nostack),
            );
        }
    });
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
/// Runs `f` with `sstatus.FS` on, then puts FS back as it was.
fn with_fs_on(f: impl FnOnce()) {
    let before = super::csr::sstatus::read() & SSTATUS_FS;
    super::csr::sstatus::set(FS_DIRTY);
    f();
    super::csr::sstatus::clear(SSTATUS_FS & !before);
}

/// The `sstatus` a guest is entered with, from the kernel's: FS Clean (the
/// hart marks it Dirty when the guest writes FP state), VS Off.
pub const fn guest_sstatus(host: usize) -> usize {
    (host & !(SSTATUS_FS | SSTATUS_VS)) | FS_CLEAN
}

/// Whether the guest wrote FP state during the run that ended with
/// `sstatus` (as saved at the exit).
pub const fn dirtied(sstatus: usize) -> bool {
    sstatus & SSTATUS_FS == FS_DIRTY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_enter_with_fs_clean_and_vs_off() {
        let host = FS_DIRTY | SSTATUS_VS | (1 << 8) | (1 << 1);
        let guest = guest_sstatus(host);
        assert_eq!(guest & SSTATUS_FS, FS_CLEAN);
        assert_eq!(guest & SSTATUS_VS, 0);
        assert_eq!(guest & ((1 << 8) | (1 << 1)), (1 << 8) | (1 << 1));
        assert!(!dirtied(guest));
        assert!(dirtied(guest | FS_DIRTY));
    }

    #[test]
    fn tokens_are_never_reused() {
        let a = FpOwner::fresh_token();
        let b = FpOwner::fresh_token();
        assert_ne!(a, b);
        assert!(a > 0 && b > 0, "0 is the token of no vCPU (nothing loaded)");
        assert!(
            !FpOwner::holds(a) && !FpOwner::holds(b),
            "a fresh token is in no hart"
        );
    }
}
