//! Turning Sv39 on for the kernel: tables in frames from the frame
//! allocator, read and written through the identity map, then `satp`.

use mica_boot::MemRange;

use super::csr;
use super::sv39::{self, MapError, PAGE_SIZE, PteFlags, TableMemory};
use crate::arch::frame_tables::FrameTables;
use crate::arch::layout::KernelImage;
use crate::frame::FrameAllocator;

/// Builds the kernel's tables (text RX, rodata R, data RW, the rest of RAM
/// RW, all global) and switches `satp` to them. Returns the root address.
pub fn enable_kernel_paging<const W: usize>(
    frames: &mut FrameAllocator<W>,
    image: &KernelImage,
    ram: MemRange,
) -> Result<u64, MapError> {
    let mut mem = FrameTables::new(frames);
    let root = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
    let identity = |mem: &mut FrameTables<'_, W>, r: MemRange, flags| {
        let start = r.start & !(PAGE_SIZE - 1);
        let end = r.end().next_multiple_of(PAGE_SIZE);
        sv39::map_range(mem, root, start, start, end - start, flags)
    };
    identity(&mut mem, image.text, PteFlags::KERNEL_RX)?;
    identity(&mut mem, image.rodata, PteFlags::KERNEL_R)?;
    identity(&mut mem, image.data, PteFlags::KERNEL_RW)?;
    let whole = image.whole();
    if ram.start < whole.start {
        identity(
            &mut mem,
            MemRange::new(ram.start, whole.start - ram.start),
            PteFlags::KERNEL_RW,
        )?;
    }
    if whole.end() < ram.end() {
        identity(
            &mut mem,
            MemRange::new(whole.end(), ram.end() - whole.end()),
            PteFlags::KERNEL_RW,
        )?;
    }
    activate(root, 0);
    Ok(root)
}

/// Switches to the Sv39 tables at `root` with `asid` and flushes the TLB.
pub fn activate(root: u64, asid: u16) {
    csr::satp::write(sv39::satp_value(root, asid) as usize);
    // SAFETY: a full TLB flush after the satp write; the new tables map the
    // code running now at the same addresses (identity).
    unsafe { core::arch::asm!("sfence.vma", options(nostack)) };
}
