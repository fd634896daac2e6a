//! Kernel paging on x86_64. For now the kernel keeps the tables the entry
//! code built (4-level, the first 4 GiB identity-mapped with 2 MiB pages);
//! per-section permissions and task address spaces come with ring 3.

use mica_boot::MemRange;

use super::entry::BOOT_MAP_BYTES;
use super::layout::KernelImage;
use crate::frame::FrameAllocator;

/// The paging mode, for the boot log.
pub const PAGING: &str = "4-level";

/// Why the kernel cannot run with paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError {
    /// RAM reaches above what the boot identity map covers.
    RamAboveBootMap,
}

/// Checks that the boot tables cover the kernel and `ram`, and returns the
/// root (CR3).
pub fn enable_kernel_paging<const W: usize>(
    _frames: &mut FrameAllocator<W>,
    image: &KernelImage,
    ram: MemRange,
) -> Result<u64, PagingError> {
    if ram.end() > BOOT_MAP_BYTES || image.whole().end() > BOOT_MAP_BYTES {
        return Err(PagingError::RamAboveBootMap);
    }
    let root: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) root, options(nomem, nostack)) };
    Ok(root & !0xfff)
}
