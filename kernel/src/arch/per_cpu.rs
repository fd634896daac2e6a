//! One value per CPU, indexed by the CPU the kernel runs on (the backend's
//! `this_cpu`: RISC-V keeps the number in `tp`, x86 finds it from the
//! stack it runs on). On the host, where the kernel's logic is tested,
//! every call runs on CPU 0.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::obj::MAX_CPUS;

/// One `T` per CPU.
pub struct PerCpu<T>(pub [T; MAX_CPUS]);

impl<T> PerCpu<T> {
    /// This CPU's.
    #[inline(always)]
    pub fn here(&self) -> &T {
        &self.0[this_cpu() % MAX_CPUS]
    }

    /// CPU `cpu`'s.
    #[inline]
    pub fn of(&self, cpu: usize) -> &T {
        &self.0[cpu % MAX_CPUS]
    }

    /// Every CPU's.
    pub fn all(&self) -> &[T] {
        &self.0
    }
}

/// The number of the CPU running this code (0 on the host).
#[cfg(target_os = "none")]
#[inline(always)]
pub fn this_cpu() -> usize {
    super::this_cpu()
}

/// The number of the CPU running this code (0 on the host).
#[cfg(not(target_os = "none"))]
#[inline(always)]
pub fn this_cpu() -> usize {
    0
}

/// Per CPU: the address of the vCPU frame the CPU runs in a guest, set
/// under the kernel lock before the entry ([`entering_guest`]) and
/// cleared right after the exit, before the CPU takes the lock again
/// ([`left_guest`]); 0 outside a guest. A pause, reset or destroy waits on
/// it ([`kick_out_of_guest`]).
static IN_GUEST: PerCpu<AtomicUsize> = PerCpu([const { AtomicUsize::new(0) }; MAX_CPUS]);

/// This CPU is about to enter the guest of the vCPU frame at `frame`.
#[inline(always)]
pub fn entering_guest(frame: usize) {
    IN_GUEST.here().store(frame, Ordering::Release);
}

/// This CPU left its guest (before it takes the kernel lock).
#[inline(always)]
pub fn left_guest() {
    IN_GUEST.here().store(0, Ordering::Release);
}

/// If CPU `cpu` is in the guest of the vCPU frame at `frame`, kicks it out
/// and waits (holding the kernel lock) until it has left it.
#[cfg(target_os = "none")]
pub fn kick_out_of_guest(cpu: usize, frame: usize) {
    if IN_GUEST.of(cpu).load(Ordering::Acquire) != frame {
        return;
    }
    super::kick(1 << cpu);
    while IN_GUEST.of(cpu).load(Ordering::Acquire) == frame {
        core::hint::spin_loop();
    }
}
