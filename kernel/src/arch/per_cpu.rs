//! One value per CPU, indexed by the CPU the kernel runs on (the backend's
//! `this_cpu`: RISC-V keeps the number in `tp`, x86 finds it from the
//! stack it runs on). On the host, where the kernel's logic is tested,
//! every call runs on CPU 0.

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
