//! Powering off with a status QEMU turns into its exit code. SBI SRST is the
//! standard way, but OpenSBI on QEMU virt reports every shutdown as a pass
//! (it pokes the syscon-poweroff value), so a failure first goes to the
//! `sifive,test0` finisher the device tree names, which exits non-zero.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::{csr, sbi};
use crate::ExitStatus;

const FINISHER_FAIL: u32 = 0x3333;
/// QEMU exits with this code for a failed boot.
const FAILURE_EXIT_CODE: u32 = 1;

static FINISHER: AtomicUsize = AtomicUsize::new(0);

/// Remembers the test finisher from the device tree, if there is one.
pub fn init(info: &mica_boot::BootInfo<'_>) {
    if let Some(addr) = info.test_finisher.and_then(|a| usize::try_from(a).ok()) {
        FINISHER.store(addr, Ordering::Relaxed);
    }
}

/// Powers off: QEMU exits 0 on success and non-zero on failure.
pub fn shutdown(status: ExitStatus) -> ! {
    match status {
        ExitStatus::Success => sbi::shutdown(sbi::RESET_REASON_NONE),
        ExitStatus::Failure => {
            let finisher = FINISHER.load(Ordering::Relaxed);
            if finisher != 0 {
                // The finisher is not in the kernel's page tables; the kernel
                // runs identity-mapped, so paging can simply be switched off.
                csr::satp::write(0);
                // SAFETY: flushes stale translations after the satp write, and
                // stores one word to the device-tree-named finisher register,
                // an MMIO device that only ends the emulation.
                unsafe {
                    core::arch::asm!("sfence.vma", options(nostack));
                    core::ptr::write_volatile(
                        finisher as *mut u32,
                        FINISHER_FAIL | (FAILURE_EXIT_CODE << 16),
                    );
                }
                // QEMU only *requests* the exit here and ends the machine a
                // little later; a second shutdown (SRST, which reports a pass)
                // would overwrite the failure code. Wait for the end instead.
                loop {
                    // SAFETY: `wfi` only idles the hart until the emulator
                    // stops it; no state is touched.
                    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
                }
            }
            sbi::shutdown(sbi::RESET_REASON_FAILURE)
        }
    }
}
