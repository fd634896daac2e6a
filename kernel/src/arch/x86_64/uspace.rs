//! Ring-3 address spaces on x86_64: a 4-level root per task that shares
//! the kernel's top-level entries (its identity map lies in the first
//! 512 GiB, supervisor-only) and adds the task's U pages in the second
//! 512 GiB (`ipc::syscall::USER_BASE`): its ELF segments (W^X as the ELF
//! says, NX on everything not executable), the IPC buffer page and the
//! stack. The kernel reaches a task's frames through its identity map
//! only, after checking each page's U bit in the task's own tables.

use ipc::syscall::{IMAGE_TOP, IPC_BUFFER, IPC_BUFFER_SIZE, STACK_SIZE, STACK_TOP, USER_BASE};

use super::pt4::{self, Flags, MapError, PAGE_SIZE, TableMemory};
use crate::elf::{self, ElfError};
use crate::frame::FrameAllocator;

/// The top-level entry every task's pages hang from.
const USER_SLOT: usize = USER_BASE >> 39;
const _: () = assert!(USER_SLOT == 1, "tasks live in the second 512 GiB");

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
        // reached through an entry the builder wrote), identity-mapped, aligned.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}

/// Walks tables without allocating.
struct Walk;

impl TableMemory for Walk {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }

    fn entries(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: as for `Tables::entries`; the kernel runs on one CPU with
        // interrupts off while it walks or edits a task's tables.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}

fn user_flags(s: &elf::Segment) -> Flags {
    let flags = if s.execute {
        Flags::USER_RX
    } else if s.write {
        Flags::USER_RW
    } else {
        Flags::USER_R
    };
    flags.union(Flags::OWNED)
}

/// Maps `size` bytes of fresh zeroed frames at `va`; returns the first.
fn map_fresh<const W: usize>(
    t: &mut Tables<'_, W>,
    root: u64,
    va: u64,
    size: u64,
    flags: Flags,
) -> Result<u64, MapError> {
    let mut first = 0;
    for page in (va..va + size).step_by(PAGE_SIZE as usize) {
        let frame = t.frames.alloc().map_err(|_| MapError::OutOfFrames)?;
        zero_frame(frame);
        pt4::map_range(t, root, page, frame, PAGE_SIZE, flags)?;
        if page == va {
            first = frame;
        }
    }
    Ok(first)
}

/// Builds a space for the ELF `image`: the kernel's top-level entries
/// (copied from `kernel_root`), the segments, the IPC buffer and the stack.
/// (`_asid`: x86 runs without PCIDs, a CR3 load flushes the task's pages.)
pub fn load<const W: usize>(
    frames: &mut FrameAllocator<W>,
    kernel_root: u64,
    image: &[u8],
    _asid: u16,
) -> Result<LoadedTask, LoadError> {
    let parsed = elf::parse(image, elf::EM_X86_64, IMAGE_TOP as u64).map_err(LoadError::Elf)?;
    let mut t = Tables { frames };
    let root = t.alloc_table().ok_or(MapError::OutOfFrames)?;
    let kernel = *Walk.entries(kernel_root);
    *t.entries(root) = kernel;
    t.entries(root)[USER_SLOT] = 0;
    for seg in parsed.segments() {
        if (seg.vaddr as usize) < USER_BASE {
            return Err(LoadError::Elf(ElfError::SegmentOutsideUser));
        }
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
            pt4::map_range(&mut t, root, page, frame, PAGE_SIZE, flags)?;
        }
    }
    let ipc_frame = map_fresh(
        &mut t,
        root,
        IPC_BUFFER as u64,
        IPC_BUFFER_SIZE as u64,
        Flags::USER_RW.union(Flags::OWNED),
    )?;
    let stack = (STACK_TOP - STACK_SIZE) as u64;
    let rw = Flags::USER_RW.union(Flags::OWNED);
    map_fresh(&mut t, root, stack, STACK_SIZE as u64, rw)?;
    Ok(LoadedTask {
        space: AddressSpace { root, ipc_frame },
        entry: parsed.entry,
    })
}

fn load_cr3(root: u64) {
    // SAFETY: `root` is a task's top-level table, which maps the kernel
    // exactly as the kernel's own tables do (shared entries), so the
    // running code, stack and data stay where they are.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
}

impl AddressSpace {
    /// Makes this the CPU's address space (CR3; the kernel's global pages
    /// stay in the TLB).
    pub fn activate(&self) {
        load_cr3(self.root);
    }

    /// Copies `out.len()` bytes from user address `ptr`; `false` (nothing
    /// trusted) if a byte is not a user page of this space or is not RAM
    /// (a device window).
    pub fn read_user(&self, ptr: usize, out: &mut [u8]) -> bool {
        let user = Flags::PRESENT.union(Flags::USER);
        crate::translated::copy_from(
            ptr as u64,
            out,
            PAGE_SIZE,
            |va| {
                pt4::translate(&mut Walk, self.root, va)
                    .filter(|(_, flags)| flags.contains(user))
                    .map(|(pa, _)| pa)
            },
            // A device page the task mapped translates too: MMIO is never
            // read on a task's behalf.
            crate::ram::is_ram,
            |pa, dst| {
                // SAFETY: `copy_from` passes `pa..pa+len` only inside one
                // user page of this space that `is_ram` accepted: RAM, which
                // the kernel identity-maps; `dst` is a kernel buffer
                // distinct from it.
                let src = unsafe { core::slice::from_raw_parts(pa as *const u8, dst.len()) };
                dst.copy_from_slice(src);
            },
        )
    }

    /// Maps the kernel-owned frame `frame` read-write at user address `va`
    /// (a page shared with the kernel, such as an ioreq page).
    pub fn map_shared<const W: usize>(
        &self,
        frames: &mut FrameAllocator<W>,
        va: u64,
        frame: u64,
    ) -> Result<(), MapError> {
        let mut t = Tables { frames };
        pt4::unmap_page(&mut t, self.root, va);
        pt4::map_range(&mut t, self.root, va, frame, PAGE_SIZE, Flags::USER_RW)?;
        flush(va);
        Ok(())
    }

    /// Removes the page at `va` (the table pages stay).
    pub fn unmap(&self, va: u64) {
        pt4::unmap_page(&mut Walk, self.root, va);
        flush(va);
    }

    /// Frees the space of a dead task (not the CPU's current one): the
    /// frames it was loaded into or given fresh (its image, IPC buffer and
    /// stack), its page tables and its root. Shared pages (ioreq pages,
    /// device windows, DMA) stay with their owners. Returns how many
    /// frames went back. The CR3 load of the next space drops its
    /// non-global translations.
    pub fn release<const W: usize>(self, frames: &mut FrameAllocator<W>) -> usize {
        let mut freed = 0;
        let mut free = |frame| {
            if frames.free(frame).is_ok() {
                freed += 1;
            }
        };
        pt4::release_user(&mut Walk, self.root, USER_SLOT..USER_SLOT + 1, &mut free);
        free(self.root);
        freed
    }
}

fn flush(va: u64) {
    // SAFETY: drops one stale translation; no memory is touched.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack)) };
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
    // SAFETY: both are distinct IPC buffer frames the kernel allocated (4 KiB
    // each, identity-mapped); `len` is at most MAX_MESSAGE_SIZE <= 4 KiB.
    unsafe {
        core::ptr::copy_nonoverlapping(from.ipc_frame as *const u8, to.ipc_frame as *mut u8, len);
    }
}

/// Zeroes `pages` frames from `pa` (RAM the kernel just allocated).
pub fn zero_frames(pa: u64, pages: usize) {
    let len = pages.saturating_mul(PAGE_SIZE as usize);
    // SAFETY: `pa..pa+len` are frames the caller took from the frame
    // allocator for this purpose; RAM is identity-mapped read-write.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, len) };
}

/// x86 machines report no device windows (`device_map` has none to give),
/// so there is no device to stop.
pub fn device_reset(_window: u64) {}

/// Likewise no window holds a virtio device.
pub fn virtio_device_id(_window: u64) -> u32 {
    0
}
