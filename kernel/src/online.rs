//! Which CPUs are online, and the flag that lets the parked ones go on:
//! the part of secondary-CPU bring-up both architectures share (RISC-V
//! harts started with SBI HSM, x86 application processors with
//! INIT-SIPI-SIPI). Each CPU announces itself once it runs kernel code on
//! the kernel's page table; the boot CPU counts them.

use core::sync::atomic::{AtomicBool, Ordering};

/// The online flags of CPUs `0..N` and the release flag.
pub struct Online<const N: usize> {
    online: [AtomicBool; N],
    release: AtomicBool,
}

impl<const N: usize> Online<N> {
    /// No CPU online.
    pub const fn new() -> Self {
        Online {
            online: [const { AtomicBool::new(false) }; N],
            release: AtomicBool::new(false),
        }
    }

    /// Marks `cpu` online (each CPU for itself; numbers from `N` on are
    /// never started, so they are ignored).
    pub fn announce(&self, cpu: usize) {
        if let Some(flag) = self.online.get(cpu) {
            flag.store(true, Ordering::Release);
        }
    }

    /// Whether `cpu` announced itself.
    pub fn is_online(&self, cpu: usize) -> bool {
        self.online
            .get(cpu)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// How many CPUs are online.
    pub fn online_count(&self) -> usize {
        self.online
            .iter()
            .filter(|flag| flag.load(Ordering::Acquire))
            .count()
    }

    /// Lets the parked CPUs go on (for SMP scheduling; unused so far).
    pub fn release(&self) {
        self.release.store(true, Ordering::Release);
    }

    /// Whether [`Online::release`] was called.
    pub fn released(&self) -> bool {
        self.release.load(Ordering::Acquire)
    }
}

impl<const N: usize> Default for Online<N> {
    fn default() -> Self {
        Online::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_announce_themselves_once_and_the_release_is_seen() {
        let set: Online<4> = Online::new();
        assert_eq!(set.online_count(), 0);
        set.announce(2);
        set.announce(2);
        set.announce(9);
        assert!(set.is_online(2) && !set.is_online(1) && !set.is_online(9));
        assert_eq!(set.online_count(), 1, "twice is once; past N is ignored");
        assert!(!set.released());
        set.release();
        assert!(set.released());
    }
}
