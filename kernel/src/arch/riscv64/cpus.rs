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
