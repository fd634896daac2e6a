//! Ring-3 address spaces on x86_64 (`crate::arch::uspace` builds them): a
//! 4-level root per task that shares the kernel's top-level entries (its
//! identity map lies in the first 512 GiB, supervisor-only) and adds the
//! task's U pages in the second 512 GiB (`ipc::syscall::USER_BASE`), NX on
//! everything not executable. x86 runs without PCIDs: a CR3 load flushes
//! the task's (non-global) pages, so tags need no flush.

use core::ops::Range;

use ipc::syscall::USER_BASE;

use super::pt4::{self, Flags, MapError, PAGE_SIZE, TableMemory};
use crate::arch::uspace::{self, LoadError, LoadedTask, UserPaging};
use crate::elf::{self, ElfError};
use crate::frame::FrameAllocator;

/// The top-level entry every task's pages hang from.
const USER_SLOT: usize = USER_BASE >> 39;
const _: () = assert!(USER_SLOT == 1, "tasks live in the second 512 GiB");

/// 4-level user paging.
#[derive(Debug, Clone, Copy)]
pub struct Pt4User;

/// A task's address space.
pub type AddressSpace = uspace::AddressSpace<Pt4User>;

/// Builds a task's space for the ELF `image` ([`uspace::load`]).
pub fn load<const W: usize>(
    frames: &mut FrameAllocator<W>,
    kernel_root: u64,
    image: &[u8],
    asid: u16,
) -> Result<LoadedTask<Pt4User>, LoadError<MapError>> {
    uspace::load(frames, kernel_root, image, asid)
}

impl UserPaging for Pt4User {
    type Flags = Flags;
    type MapError = MapError;
    const ELF_MACHINE: u16 = elf::EM_X86_64;
    const USER_SLOT: usize = USER_SLOT;
    const OUT_OF_FRAMES: MapError = MapError::OutOfFrames;
    const USER_RW_OWNED: Flags = Flags::USER_RW.union(Flags::OWNED);
    const USER_RW_SHARED: Flags = Flags::USER_RW;

    fn segment_flags(s: &elf::Segment) -> Flags {
        let flags = if s.execute {
            Flags::USER_RX
        } else if s.write {
            Flags::USER_RW
        } else {
            Flags::USER_R
        };
        flags.union(Flags::OWNED)
    }

    fn check_segment(segment: &elf::Segment) -> Result<(), ElfError> {
        if (segment.vaddr as usize) < USER_BASE {
            return Err(ElfError::SegmentOutsideUser);
        }
        Ok(())
    }

    fn user_readable(flags: Flags) -> bool {
        flags.contains(Flags::PRESENT.union(Flags::USER))
    }

    fn map_page(
        mem: &mut impl TableMemory,
        root: u64,
        va: u64,
        pa: u64,
        flags: Flags,
    ) -> Result<(), MapError> {
        pt4::map_range(mem, root, va, pa, PAGE_SIZE, flags)
    }

    fn unmap_page(mem: &mut impl TableMemory, root: u64, va: u64) {
        pt4::unmap_page(mem, root, va);
    }

    fn translate(mem: &mut impl TableMemory, root: u64, va: u64) -> Option<(u64, Flags)> {
        pt4::translate(mem, root, va)
    }

    fn release_user(
        mem: &mut impl TableMemory,
        root: u64,
        slots: Range<usize>,
        free: &mut impl FnMut(u64),
    ) {
        pt4::release_user(mem, root, slots, free);
    }

    /// CR3; the kernel's global pages stay in the TLB.
    #[inline]
    fn activate(root: u64, _asid: u16) {
        // SAFETY: `root` is a task's top-level table, which maps the kernel
        // exactly as the kernel's own tables do (shared entries), so the
        // running code, stack and data stay where they are.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
    }

    fn changed(va: u64) {
        // SAFETY: drops one stale translation; no memory is touched.
        unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack)) };
    }

    /// The CR3 load of the next space drops the old one's translations.
    fn retag(_asid: u16) {}

    fn flush_user() {
        // SAFETY: loads CR3 with its own value: the running space stays,
        // its non-global (task) translations go.
        unsafe {
            core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack));
        }
    }
}

/// x86 machines report no device windows (`device_map` has none to give),
/// so there is no device to stop.
pub fn device_reset(_window: u64) {}

/// Likewise no window holds a virtio device.
pub fn virtio_device_id(_window: u64) -> u32 {
    0
}
