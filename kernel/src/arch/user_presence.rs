//! Which task space each CPU runs in user mode, and which CPUs must drop
//! their task translations: the two per-CPU words behind a user TLB
//! shootdown (`uspace::AddressSpace::shootdown`). The CPU changing a
//! space's mappings holds the kernel lock; the others may be in user mode
//! without it. The protocol:
//!
//! - a CPU returning to user mode, under the lock: [`UserPresence::entering`]
//!   (drops its translations if they went stale, then publishes the root
//!   it runs);
//! - a CPU trapping from user mode, before it takes the lock:
//!   [`UserPresence::left`];
//! - the CPU that changed space `root`, under the lock, for each other
//!   CPU: [`UserPresence::mark_stale`], then, while
//!   [`UserPresence::runs`] says the CPU is in `root`, kick it and wait.
//!
//! Once the shootdown is over no CPU runs `root` in user mode with a
//! translation from before the change: one that was in it left (and
//! flushes before it returns, the mark being set), one that was not finds
//! the mark when it next enters. `model_tests` explores every
//! interleaving of the steps for two CPUs.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The presence words of `N` CPUs.
pub struct UserPresence<const N: usize> {
    in_user: [AtomicU64; N],
    stale: [AtomicBool; N],
}

impl<const N: usize> UserPresence<N> {
    /// Every CPU in the kernel, nothing stale.
    pub const fn new() -> Self {
        UserPresence {
            in_user: [const { AtomicU64::new(0) }; N],
            stale: [const { AtomicBool::new(false) }; N],
        }
    }

    /// CPU `cpu` returns to user mode in space `root` (a non-zero table
    /// root), under the kernel lock: whether it must first drop its task
    /// translations.
    #[inline(always)]
    pub fn entering(&self, cpu: usize, root: u64) -> bool {
        // Marks are set under the lock too: no mark falls in between.
        let stale = &self.stale[cpu % N];
        let flush = stale.load(Ordering::Relaxed);
        if flush {
            stale.store(false, Ordering::Relaxed);
        }
        self.in_user[cpu % N].store(root, Ordering::Release);
        flush
    }

    /// CPU `cpu` left user mode (it trapped), before the kernel lock.
    #[inline(always)]
    pub fn left(&self, cpu: usize) {
        self.in_user[cpu % N].store(0, Ordering::Release);
    }

    /// CPU `cpu` drops its task translations before it next enters user
    /// mode.
    #[inline]
    pub fn mark_stale(&self, cpu: usize) {
        self.stale[cpu % N].store(true, Ordering::Relaxed);
    }

    /// Whether CPU `cpu` runs space `root` in user mode now.
    #[inline]
    pub fn runs(&self, cpu: usize, root: u64) -> bool {
        self.in_user[cpu % N].load(Ordering::Acquire) == root
    }
}

impl<const N: usize> Default for UserPresence<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod model_tests;
