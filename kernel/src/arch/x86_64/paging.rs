//! Kernel paging on x86_64: 4-level tables built in frames from the frame
//! allocator (through the boot identity map), mapping the kernel's sections
//! with their permissions (text RX, rodata R, data RW + NX), the rest of
//! RAM and low memory RW + NX, and the LAPIC page uncached; page 0 stays
//! unmapped so a null access faults. EFER.NXE and CR4.PGE are set, then
//! CR3 is loaded.

use mica_boot::MemRange;

use super::lapic;
use super::pt4::{self, Flags, MapError, PAGE_SIZE, TableMemory};
use crate::arch::frame_tables::FrameTables;
use crate::arch::layout::KernelImage;
use crate::frame::FrameAllocator;

/// The paging mode, for the boot log.
pub const PAGING: &str = "4-level";

/// Why the kernel cannot run with its own tables.
pub type PagingError = MapError;

/// EFER and its no-execute enable.
const EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;
/// CR4 global-pages enable.
const CR4_PGE: u64 = 1 << 7;

fn page_floor(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

/// Builds the kernel's tables and switches CR3 to them; returns the root.
pub fn enable_kernel_paging<const W: usize>(
    frames: &mut FrameAllocator<W>,
    image: &KernelImage,
    ram: MemRange,
) -> Result<u64, PagingError> {
    let mut mem = FrameTables::new(frames);
    let root = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
    let identity = |mem: &mut FrameTables<'_, W>, start: u64, end: u64, flags| {
        let (start, end) = (page_floor(start), end.next_multiple_of(PAGE_SIZE));
        if start >= end {
            return Ok(());
        }
        pt4::map_range(mem, root, start, start, end - start, flags)
    };
    let whole = image.whole();
    // Low memory (BIOS data, the loader's structures) up to the kernel.
    identity(&mut mem, PAGE_SIZE, whole.start, Flags::KERNEL_RW)?;
    identity(
        &mut mem,
        image.text.start,
        image.text.end(),
        Flags::KERNEL_RX,
    )?;
    identity(
        &mut mem,
        image.rodata.start,
        image.rodata.end(),
        Flags::KERNEL_R,
    )?;
    identity(
        &mut mem,
        image.data.start,
        image.data.end(),
        Flags::KERNEL_RW,
    )?;
    identity(&mut mem, whole.end(), ram.end(), Flags::KERNEL_RW)?;
    let apic = lapic::base();
    identity(&mut mem, apic, apic + PAGE_SIZE, Flags::KERNEL_MMIO)?;
    activate(root);
    Ok(root)
}

/// Turns on NX and global pages, then loads `root` into CR3 (the boot CPU
/// here, each application processor from `smp::ap_entry`).
pub fn activate(root: u64) {
    // SAFETY: EFER.NXE only makes the NX bit meaningful (the new tables use
    // it; the boot tables do not); CR4.PGE only keeps global entries across
    // CR3 loads. The new tables map the running code, stack and data at the
    // same addresses (identity), so execution continues after the CR3 load
    // (an application processor comes from the boot tables, which map the
    // kernel identity too).
    unsafe {
        core::arch::asm!(
            "rdmsr",
            "or eax, {nxe:e}",
            "wrmsr",
            "mov {tmp}, cr4",
            "or {tmp}, {pge}",
            "mov cr4, {tmp}",
            "mov cr3, {root}",
            in("ecx") EFER,
            nxe = in(reg) EFER_NXE as u32,
            pge = in(reg) CR4_PGE,
            root = in(reg) root,
            tmp = out(reg) _,
            out("eax") _,
            out("edx") _,
            options(nostack),
        );
    }
}
