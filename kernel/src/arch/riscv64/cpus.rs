//! Which harts the kernel brings up, and which are online: the pure part of
//! secondary-hart bring-up (`smp.rs` does the SBI calls), tested on the
//! host.
//!
//! Every hart the device tree lists is judged by [`verdict`]: the boot hart
//! is already running; a hart without Sv39 or whose id has no boot stack
//! (ids from [`MAX_HARTS`]) stays stopped and is named in the log; the rest
//! are started. A started hart announces itself in [`CpuSet`] once it runs
//! on the kernel's page table with the trap vector installed, then parks
//! until [`CpuSet::release`] (nothing calls it yet: SMP scheduling will).

use core::sync::atomic::{AtomicUsize, Ordering};

use mica_boot::Hart;

/// Hart ids with a boot stack of their own (`entry.rs`): only these are
/// started; a boot hart with a larger id runs on a spare stack, and the
/// other harts past the bound stay stopped.
pub const MAX_HARTS: usize = 8;

/// What bring-up does with one listed hart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The hart running this code.
    Boot,
    /// Started with SBI HSM.
    Start,
    /// Left stopped: its `mmu-type` has no Sv39.
    NoSv39,
    /// Left stopped: its id is [`MAX_HARTS`] or more (no boot stack).
    NoStack,
}

/// What to do with `hart` when `boot` is the boot hart's id.
pub fn verdict(boot: usize, hart: &Hart) -> Verdict {
    if hart.id == boot as u64 {
        Verdict::Boot
    } else if hart.id >= MAX_HARTS as u64 {
        Verdict::NoStack
    } else if !hart.smode_mmu {
        Verdict::NoSv39
    } else {
        Verdict::Start
    }
}

/// The harts that are online (running kernel code), by id, and the flag
/// that releases the parked ones.
pub type CpuSet = crate::online::Online<MAX_HARTS>;

/// The kernel's harts.
pub static CPUS: CpuSet = CpuSet::new();

/// The kernel numbers the harts it runs on as CPUs `0..n` (what the
/// scheduler and the per-CPU state index): the boot hart is CPU 0, the
/// started ones follow in the device tree's order. Hart ids need not be
/// dense, nor the boot hart's 0.
pub struct CpuNumbers {
    /// The hart id of CPU `n`, `usize::MAX` for none.
    hart_of: [AtomicUsize; MAX_HARTS],
    count: AtomicUsize,
}

impl CpuNumbers {
    /// No CPU numbered.
    pub const fn new() -> Self {
        CpuNumbers {
            hart_of: [const { AtomicUsize::new(usize::MAX) }; MAX_HARTS],
            count: AtomicUsize::new(0),
        }
    }

    /// Gives hart `hart` the next CPU number; `None` once [`MAX_HARTS`]
    /// are numbered.
    pub fn number(&self, hart: usize) -> Option<usize> {
        let cpu = self.count.load(Ordering::Relaxed);
        let slot = self.hart_of.get(cpu)?;
        slot.store(hart, Ordering::Release);
        self.count.store(cpu + 1, Ordering::Release);
        Some(cpu)
    }

    /// The CPU number of hart `hart`, if it has one.
    pub fn cpu_of(&self, hart: usize) -> Option<usize> {
        self.hart_of
            .iter()
            .position(|h| h.load(Ordering::Acquire) == hart)
    }

    /// The hart id of CPU `cpu`, if it is numbered.
    pub fn hart_of(&self, cpu: usize) -> Option<usize> {
        let hart = self.hart_of.get(cpu)?.load(Ordering::Acquire);
        (hart != usize::MAX).then_some(hart)
    }

    /// How many CPUs are numbered.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

impl Default for CpuNumbers {
    fn default() -> Self {
        CpuNumbers::new()
    }
}

/// The kernel's CPU numbers.
pub static NUMBERS: CpuNumbers = CpuNumbers::new();

pub use crate::arch::per_cpu::PerCpu;

const _: () = assert!(
    MAX_HARTS == crate::obj::MAX_CPUS,
    "a PerCpu holds one entry per hart"
);

/// The number of the CPU running this code: the kernel keeps it in `tp`
/// (set at each hart's entry, restored from the trap frame after a trap
/// from U-mode and from the host save area after a guest exit). Always 0
/// on the host, where the kernel's logic is tested.
#[inline(always)]
pub fn this_cpu() -> usize {
    #[cfg(all(target_arch = "riscv64", target_os = "none"))]
    {
        let cpu: usize;
        // SAFETY: reads `tp`, which the kernel keeps as the CPU number.
        unsafe {
            core::arch::asm!("mv {}, tp", out(reg) cpu, options(nomem, nostack, preserves_flags))
        };
        cpu
    }
    #[cfg(not(all(target_arch = "riscv64", target_os = "none")))]
    0
}

/// Makes `cpu` this hart's CPU number (`tp`), at its entry.
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub fn set_this_cpu(cpu: usize) {
    // SAFETY: `tp` is not used by compiled Rust code (no thread-local
    // storage in the kernel); it holds the CPU number from here on.
    unsafe { core::arch::asm!("mv tp, {}", in(reg) cpu, options(nomem, nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hart(id: u64, smode_mmu: bool) -> Hart {
        Hart { id, smode_mmu }
    }

    #[test]
    fn the_boot_hart_need_not_be_hart_0() {
        assert_eq!(verdict(2, &hart(2, true)), Verdict::Boot);
        assert_eq!(verdict(2, &hart(0, true)), Verdict::Start);
        assert_eq!(verdict(0, &hart(0, true)), Verdict::Boot);
        assert_eq!(verdict(0, &hart(1, true)), Verdict::Start);
    }

    #[test]
    fn harts_without_sv39_or_a_stack_stay_stopped() {
        assert_eq!(verdict(0, &hart(3, false)), Verdict::NoSv39);
        assert_eq!(verdict(0, &hart(MAX_HARTS as u64, true)), Verdict::NoStack);
        assert_eq!(verdict(0, &hart(u64::MAX, false)), Verdict::NoStack);
        assert_eq!(
            verdict(0, &hart(MAX_HARTS as u64 - 1, true)),
            Verdict::Start
        );
    }

    #[test]
    fn cpus_are_numbered_in_order_from_the_boot_hart() {
        let numbers = CpuNumbers::new();
        assert_eq!(numbers.number(5), Some(0), "the boot hart is CPU 0");
        assert_eq!(numbers.number(0), Some(1));
        assert_eq!(numbers.number(2), Some(2));
        assert_eq!(numbers.count(), 3);
        assert_eq!(numbers.cpu_of(2), Some(2));
        assert_eq!(numbers.cpu_of(5), Some(0));
        assert_eq!(numbers.cpu_of(1), None, "never numbered");
        assert_eq!(numbers.hart_of(1), Some(0));
        assert_eq!(numbers.hart_of(3), None);
        for hart in 10..15 {
            numbers.number(hart);
        }
        assert_eq!(numbers.count(), MAX_HARTS);
        assert_eq!(numbers.number(20), None, "no number past MAX_HARTS");
    }

    #[test]
    fn harts_count_once_they_announce() {
        let cpus = CpuSet::new();
        assert_eq!(cpus.online_count(), 0);
        cpus.announce(3);
        cpus.announce(3);
        cpus.announce(0);
        cpus.announce(MAX_HARTS);
        assert_eq!(cpus.online_count(), 2);
        assert!(cpus.is_online(3));
        assert!(!cpus.is_online(1));
        assert!(!cpus.is_online(MAX_HARTS));
        assert!(!cpus.released());
        cpus.release();
        assert!(cpus.released());
    }
}
