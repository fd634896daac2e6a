//! User address spaces: an Sv39 root per task that shares the kernel's
//! (global, non-U) mappings and adds the task's U pages below 1 GiB: its
//! ELF segments (W^X as the ELF says), the IPC buffer page and the stack.
//! The kernel reaches a task's frames through its identity map only, after
//! checking each page's U and R/W bits in the task's own tables.

use core::sync::atomic::{AtomicU8, Ordering};

use ipc::syscall::{IMAGE_TOP, IPC_BUFFER, IPC_BUFFER_SIZE, STACK_SIZE, STACK_TOP};

use super::csr;
use super::sv39::{self, MapError, PAGE_SIZE, PteFlags, TableMemory};
use crate::elf::{self, ElfError};
use crate::frame::FrameAllocator;

/// Why a task could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// The image is not a valid task ELF.
    Elf(ElfError),
    /// Out of frames or a mapping was refused.
    Map(MapError),
}

impl From<MapError> for LoadError {
    fn from(e: MapError) -> Self {
        LoadError::Map(e)
    }
}

/// A task's address space.
#[derive(Debug, Clone, Copy)]
pub struct AddressSpace {
    root: u64,
    asid: u16,
    /// Physical address of the IPC buffer frame.
    ipc_frame: u64,
}

/// A loaded task: its space and where it starts.
#[derive(Debug, Clone, Copy)]
pub struct LoadedTask {
    pub space: AddressSpace,
    pub entry: u64,
}

struct Tables<'a, const W: usize> {
    frames: &'a mut FrameAllocator<W>,
}

fn zero_frame(frame: u64) {
    // SAFETY: `frame` was just taken from the allocator (nothing else uses
    // it), is RAM identity-mapped in the kernel's tables, 4 KiB long.
    unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE_SIZE as usize) };
}

impl<const W: usize> TableMemory for Tables<'_, W> {
    fn alloc_table(&mut self) -> Option<u64> {
        let frame = self.frames.alloc().ok()?;
        zero_frame(frame);
        Some(frame)
    }

    fn entries(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: `table` is a page-table frame of this space (its root or one
        // reached through a PTE the builder wrote), identity-mapped, aligned.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}

/// Walks tables read-only (translation needs no allocation).
struct Walk;

impl TableMemory for Walk {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }

    fn entries(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: as for `Tables::entries`; a walk only reads, and the kernel
        // runs on one hart with interrupts off while it walks.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}

fn user_flags(s: &elf::Segment) -> PteFlags {
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

/// Maps `size` bytes of fresh zeroed frames at `va`; returns the first.
fn map_fresh<const W: usize>(
    t: &mut Tables<'_, W>,
    root: u64,
    va: u64,
    size: u64,
    flags: PteFlags,
) -> Result<u64, MapError> {
    let mut first = 0;
    for page in (va..va + size).step_by(PAGE_SIZE as usize) {
        let frame = t.frames.alloc().map_err(|_| MapError::OutOfFrames)?;
        zero_frame(frame);
        sv39::map_range(t, root, page, frame, PAGE_SIZE, flags)?;
        if page == va {
            first = frame;
        }
    }
    Ok(first)
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

/// Builds a space for the ELF `image`: the kernel's mappings (copied from
/// `kernel_root`), the segments, the IPC buffer and the stack.
pub fn load<const W: usize>(
    frames: &mut FrameAllocator<W>,
    kernel_root: u64,
    image: &[u8],
    asid: u16,
) -> Result<LoadedTask, LoadError> {
    let parsed = elf::parse(image, elf::EM_RISCV, IMAGE_TOP as u64).map_err(LoadError::Elf)?;
    let mut t = Tables { frames };
    let root = t.alloc_table().ok_or(MapError::OutOfFrames)?;
    let kernel = *Walk.entries(kernel_root);
    // User addresses live in the first GiB; the kernel never maps there.
    *t.entries(root) = kernel;
    t.entries(root)[0] = 0;
    for seg in parsed.segments() {
        let flags = user_flags(seg);
        let start = seg.page_start();
        for page in (start..seg.page_end()).step_by(PAGE_SIZE as usize) {
            let frame = t.frames.alloc().map_err(|_| MapError::OutOfFrames)?;
            zero_frame(frame);
            // The file bytes that fall into this page.
            let file_start = seg.vaddr.max(page);
            let file_end = (seg.vaddr + seg.file_len).min(page + PAGE_SIZE);
            if file_start < file_end {
                let from = (seg.file_offset + (file_start - seg.vaddr)) as usize;
                let len = (file_end - file_start) as usize;
                // `parse` checked the segment's file range against the image.
                if let Some(bytes) = image.get(from..from + len) {
                    let dst = (frame + (file_start - page)) as *mut u8;
                    // SAFETY: `dst..dst+len` lies inside the fresh frame
                    // (file_start..file_end is within this page); the source
                    // is a checked slice of the image.
                    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, len) };
                }
            }
            sv39::map_range(&mut t, root, page, frame, PAGE_SIZE, flags)?;
        }
    }
    let rw = PteFlags::U
        .union(PteFlags::R)
        .union(PteFlags::W)
        .union(PteFlags::OWNED);
    let ipc_frame = map_fresh(&mut t, root, IPC_BUFFER as u64, IPC_BUFFER_SIZE as u64, rw)?;
    let stack = (STACK_TOP - STACK_SIZE) as u64;
    map_fresh(&mut t, root, stack, STACK_SIZE as u64, rw)?;
    // A restarted task reuses its slot's ASID: nothing the hart cached for
    // the old space may be taken for the new one.
    flush_asid(asid);
    Ok(LoadedTask {
        space: AddressSpace {
            root,
            asid,
            ipc_frame,
        },
        entry: parsed.entry,
    })
}

impl AddressSpace {
    /// Makes this the hart's address space. The ASID tags its TLB entries;
    /// the full flush keeps it correct on harts that ignore ASIDs.
    ///
    /// When the hart has ASIDs for every task, the switch is the `satp`
    /// write alone: the TLB keeps each space's entries apart, a reused ASID
    /// is flushed when its new space is built ([`load`]) and every change
    /// of a mapping flushes ([`AddressSpace::map_shared`],
    /// [`AddressSpace::unmap`]). Without them every switch flushes.
    pub fn activate(&self) {
        csr::satp::write(sv39::satp_value(self.root, self.asid) as usize);
        if !asids_tag_tasks() {
            // The kernel's own mappings are identical (global) in every
            // space: only the task's are dropped.
            flush_all();
        }
    }

    /// Copies `out.len()` bytes from user address `ptr`; `false` (nothing
    /// trusted) if a byte is not user-readable in this space or is not RAM
    /// (a device window).
    pub fn read_user(&self, ptr: usize, out: &mut [u8]) -> bool {
        let readable = PteFlags::U.union(PteFlags::R);
        crate::translated::copy_from(
            ptr as u64,
            out,
            PAGE_SIZE,
            |va| {
                sv39::translate(&mut Walk, self.root, va)
                    .filter(|(_, flags)| flags.contains(readable))
                    .map(|(pa, _)| pa)
            },
            // A device window the task mapped translates too: MMIO is
            // never read on a task's behalf.
            crate::ram::is_ram,
            |pa, dst| {
                // SAFETY: `copy_from` passes `pa..pa+len` only inside one
                // user-readable page of this space that `is_ram` accepted:
                // RAM, which the kernel identity-maps; `dst` is a kernel
                // buffer distinct from it.
                let src = unsafe { core::slice::from_raw_parts(pa as *const u8, dst.len()) };
                dst.copy_from_slice(src);
            },
        )
    }
}

impl AddressSpace {
    /// Writes `bytes` (at most a page; the rest is cut) to the start of this
    /// task's IPC buffer (a kernel call's result, such as `image_info`'s
    /// header).
    pub fn write_ipc(&self, bytes: &[u8]) {
        let len = bytes.len().min(IPC_BUFFER_SIZE);
        // SAFETY: `ipc_frame` is this task's IPC buffer frame, which the
        // kernel allocated (4 KiB, identity-mapped); `len` is at most 4 KiB
        // and `bytes` is a kernel slice distinct from it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ipc_frame as *mut u8, len) };
    }
}

/// Copies `len` bytes from one task's IPC buffer frame to another's.
pub fn copy_message(from: &AddressSpace, to: &AddressSpace, len: usize) {
    let len = len.min(ipc::MAX_MESSAGE_SIZE);
    if from.ipc_frame == to.ipc_frame {
        return;
    }
    // Messages on the I/O path are a few words: whole words, then the tail
    // bytes, costs a fraction of a general memcpy (volatile, so it is not
    // turned back into one; the buffers are shared with user mode anyway).
    let (src, dst) = (from.ipc_frame as *const u64, to.ipc_frame as *mut u64);
    let words = len / 8;
    // SAFETY: both are distinct IPC buffer frames the kernel allocated (4 KiB
    // each, page-aligned, identity-mapped); `len` is at most
    // MAX_MESSAGE_SIZE <= 4 KiB, so every word and byte read or written
    // lies inside the two frames.
    unsafe {
        for i in 0..words {
            dst.add(i).write_volatile(src.add(i).read_volatile());
        }
        let (src, dst) = (src.add(words).cast::<u8>(), dst.add(words).cast::<u8>());
        for i in 0..len % 8 {
            dst.add(i).write_volatile(src.add(i).read_volatile());
        }
    }
}

impl AddressSpace {
    /// Maps the kernel-owned frame `frame` read-write at user address `va`
    /// (a page shared with the kernel, such as an ioreq page).
    pub fn map_shared<const W: usize>(
        &self,
        frames: &mut FrameAllocator<W>,
        va: u64,
        frame: u64,
    ) -> Result<(), MapError> {
        let rw = PteFlags::U.union(PteFlags::R).union(PteFlags::W);
        let mut t = Tables { frames };
        sv39::unmap_page(&mut t, self.root, va);
        sv39::map_range(&mut t, self.root, va, frame, PAGE_SIZE, rw)?;
        // Stale translations of this space go after the change.
        flush_all();
        Ok(())
    }

    /// Removes the page at `va` (the table pages stay).
    pub fn unmap(&self, va: u64) {
        sv39::unmap_page(&mut Walk, self.root, va);
        flush_all();
    }

    /// Frees the space of a dead task: the frames it was loaded into or
    /// given fresh (its image, IPC buffer and stack), its page tables and
    /// its root. Shared pages (ioreq pages, device windows, DMA) stay with
    /// their owners. Returns how many frames went back.
    pub fn release<const W: usize>(self, frames: &mut FrameAllocator<W>) -> usize {
        let mut freed = 0;
        let mut free = |frame| {
            if frames.free(frame).is_ok() {
                freed += 1;
            }
        };
        // User addresses live in the first GiB (root entry 0).
        sv39::release_user(&mut Walk, self.root, 0..1, &mut free);
        free(self.root);
        // Nothing the hart cached for the space may outlive it.
        flush_asid(self.asid);
        freed
    }
}
