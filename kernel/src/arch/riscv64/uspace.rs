//! RISC-V user address spaces (`crate::arch::uspace` builds them): Sv39
//! roots whose first GiB (root entry 0) holds the task's U pages beside
//! the kernel's global, non-U mappings, tagged with the task's ASID when
//! the hart has enough ASID bits.

use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use super::csr;
use super::sv39::{self, MapError, PAGE_SIZE, PteFlags, TableMemory};
use crate::arch::uspace::{self, LoadError, LoadedTask, UserPaging};
use crate::elf::{self, ElfError};
use crate::frame::FrameAllocator;

/// Sv39 user paging.
#[derive(Debug, Clone, Copy)]
pub struct Sv39User;

/// A task's address space.
pub type AddressSpace = uspace::AddressSpace<Sv39User>;

/// Builds a task's space for the ELF `image` ([`uspace::load`]).
pub fn load<const W: usize>(
    frames: &mut FrameAllocator<W>,
    kernel_root: u64,
    image: &[u8],
    asid: u16,
) -> Result<LoadedTask<Sv39User>, LoadError<MapError>> {
    uspace::load(frames, kernel_root, image, asid)
}

const USER_RW: PteFlags = PteFlags::U.union(PteFlags::R).union(PteFlags::W);

impl UserPaging for Sv39User {
    type Flags = PteFlags;
    type MapError = MapError;
    const ELF_MACHINE: u16 = elf::EM_RISCV;
    // User addresses live in the first GiB; the kernel never maps there.
    const USER_SLOT: usize = 0;
    const OUT_OF_FRAMES: MapError = MapError::OutOfFrames;
    const USER_RW_OWNED: PteFlags = USER_RW.union(PteFlags::OWNED);
    const USER_RW_SHARED: PteFlags = USER_RW;

    fn segment_flags(s: &elf::Segment) -> PteFlags {
        let mut f = PteFlags::U.union(PteFlags::OWNED);
        if s.read {
            f = f.union(PteFlags::R);
        }
        if s.write {
            f = f.union(PteFlags::W.union(PteFlags::R));
        }
        if s.execute {
            f = f.union(PteFlags::X);
        }
        f
    }

    fn check_segment(_segment: &elf::Segment) -> Result<(), ElfError> {
        Ok(())
    }

    fn user_readable(flags: PteFlags) -> bool {
        flags.contains(PteFlags::U.union(PteFlags::R))
    }

    fn map_page(
        mem: &mut impl TableMemory,
        root: u64,
        va: u64,
        pa: u64,
        flags: PteFlags,
    ) -> Result<(), MapError> {
        sv39::map_range(mem, root, va, pa, PAGE_SIZE, flags)
    }

    fn unmap_page(mem: &mut impl TableMemory, root: u64, va: u64) {
        sv39::unmap_page(mem, root, va);
    }

    fn translate(mem: &mut impl TableMemory, root: u64, va: u64) -> Option<(u64, PteFlags)> {
        sv39::translate(mem, root, va)
    }

    fn release_user(
        mem: &mut impl TableMemory,
        root: u64,
        slots: Range<usize>,
        free: &mut impl FnMut(u64),
    ) {
        sv39::release_user(mem, root, slots, free);
    }

    /// The ASID tags the space's TLB entries; the full flush keeps it
    /// correct on harts that ignore ASIDs.
    ///
    /// When the hart has ASIDs for every task, the switch is the `satp`
    /// write alone: the TLB keeps each space's entries apart, a reused ASID
    /// is flushed when its new space is built ([`UserPaging::retag`]) and
    /// every change of a mapping flushes ([`UserPaging::changed`]). Without
    /// them every switch flushes.
    #[inline]
    fn activate(root: u64, asid: u16) {
        csr::satp::write(sv39::satp_value(root, asid) as usize);
        if !asids_tag_tasks() {
            // The kernel's own mappings are identical (global) in every
            // space: only the task's are dropped.
            flush_all();
        }
    }

    /// Stale translations of the space go after the change.
    fn changed(_va: u64) {
        flush_all();
    }

    fn retag(asid: u16) {
        flush_asid(asid);
    }

    fn flush_user() {
        flush_all();
    }
}

/// Whether `satp.ASID` is wide enough for every task's ASID (slot + 1),
/// probed once: the hart keeps only the ASID bits it implements.
fn asids_tag_tasks() -> bool {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static KNOWN: AtomicU8 = AtomicU8::new(UNKNOWN);
    match KNOWN.load(Ordering::Relaxed) {
        YES => return true,
        NO => return false,
        _ => {}
    }
    let current = csr::satp::read();
    let asid_field = 0xffff_usize << 44;
    csr::satp::write(current | asid_field);
    let kept = (csr::satp::read() & asid_field) >> 44;
    csr::satp::write(current);
    flush_all();
    // ASIDs run up to MAX_TASKS (slot + 1): its bit length is what it takes.
    let needed = usize::BITS - crate::obj::MAX_TASKS.leading_zeros();
    let wide = kept.count_ones() >= needed;
    KNOWN.store(if wide { YES } else { NO }, Ordering::Relaxed);
    wide
}

/// Flushes every translation the hart cached under `asid`.
fn flush_asid(asid: u16) {
    // SAFETY: a TLB flush of one address space has no effect on memory.
    unsafe {
        core::arch::asm!("sfence.vma zero, {0}", in(reg) usize::from(asid), options(nostack))
    };
}

/// Flushes every translation.
fn flush_all() {
    // SAFETY: a TLB flush has no effect on memory.
    unsafe { core::arch::asm!("sfence.vma", options(nostack)) };
}
