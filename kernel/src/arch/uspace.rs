//! User address spaces on every arch: a root per task that shares the
//! kernel's top-level entries and adds, under one top-level slot of its
//! own, the task's pages: its ELF segments (W^X as the ELF says), the IPC
//! buffer page and the stack. The kernel reaches a task's frames through
//! its identity map only, after checking each page's user bits in the
//! task's own tables. What differs per arch (the entry format, the TLB and
//! the translation root register) is a [`UserPaging`].
#![allow(
    clippy::cast_possible_truncation,
    reason = "Mica's kernels are 64-bit: u64 addresses and sizes fit usize"
)]

use core::ops::Range;

use ipc::syscall::{IMAGE_TOP, IPC_BUFFER, IPC_BUFFER_SIZE, STACK_SIZE, STACK_TOP};

use super::frame_tables::{FrameTables, IdentityWalk, zero_frames};
use super::page_table::{PAGE_SIZE, TableMemory};
use super::per_cpu::this_cpu;
use super::user_presence::UserPresence;
use crate::elf::{self, ElfError};
use crate::frame::FrameAllocator;
use crate::obj::MAX_CPUS;

/// An arch's user page tables: their format and the TLB around them.
/// Implemented by a unit type per arch; every call is static.
pub trait UserPaging: Copy + core::fmt::Debug {
    /// Entry permission bits.
    type Flags: Copy;
    /// Why a mapping was refused.
    type MapError: Copy + core::fmt::Debug;
    /// The ELF machine tasks are built for.
    const ELF_MACHINE: u16;
    /// The top-level entry every task's pages hang from.
    const USER_SLOT: usize;
    /// No frame was left for a table or a page.
    const OUT_OF_FRAMES: Self::MapError;
    /// A task's own read-write page (IPC buffer, stack), freed with it.
    const USER_RW_OWNED: Self::Flags;
    /// A read-write page shared with the kernel (an ioreq page).
    const USER_RW_SHARED: Self::Flags;

    /// The flags of a segment's pages (marked owned).
    fn segment_flags(segment: &elf::Segment) -> Self::Flags;
    /// Refuses a segment the arch cannot place.
    fn check_segment(segment: &elf::Segment) -> Result<(), ElfError>;
    /// Whether a leaf with `flags` may be read on the task's behalf.
    fn user_readable(flags: Self::Flags) -> bool;
    /// Maps the 4 KiB page `va` to `pa`.
    fn map_page(
        mem: &mut impl TableMemory,
        root: u64,
        va: u64,
        pa: u64,
        flags: Self::Flags,
    ) -> Result<(), Self::MapError>;
    /// Removes the 4 KiB page at `va`, if mapped.
    fn unmap_page(mem: &mut impl TableMemory, root: u64, va: u64);
    /// What `va` maps to: the physical address and the leaf's flags.
    fn translate(mem: &mut impl TableMemory, root: u64, va: u64) -> Option<(u64, Self::Flags)>;
    /// Frees the owned pages and tables under the root entries `slots`.
    fn release_user(
        mem: &mut impl TableMemory,
        root: u64,
        slots: Range<usize>,
        free: &mut impl FnMut(u64),
    );
    /// Makes `root` (tagged `asid`) the CPU's address space.
    fn activate(root: u64, asid: u16);
    /// After a mapping at `va` changed in a space.
    fn changed(va: u64);
    /// After a space tagged `asid` was built or freed: nothing cached
    /// under the tag may be taken for the next space that uses it.
    fn retag(asid: u16);
    /// Drops every task translation the CPU holds (its space's too).
    fn flush_user();
}

/// Which task space each CPU runs in user mode, and which must drop their
/// task translations ([`UserPresence`]).
static PRESENCE: UserPresence<MAX_CPUS> = UserPresence::new();

/// The CPU left user mode (it trapped): a remote shootdown waiting for it
/// to be out of its task's space goes on. Before the kernel lock.
#[inline(always)]
pub fn left_user_here() {
    PRESENCE.left(this_cpu());
}

/// Why a task could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError<E> {
    /// The image is not a valid task ELF.
    Elf(ElfError),
    /// Out of frames or a mapping was refused.
    Map(E),
}

/// A task's address space.
#[derive(Debug, Clone, Copy)]
pub struct AddressSpace<P> {
    root: u64,
    asid: u16,
    /// Physical address of the IPC buffer frame.
    ipc_frame: u64,
    paging: core::marker::PhantomData<P>,
}

/// A loaded task: its space and where it starts.
#[derive(Debug, Clone, Copy)]
pub struct LoadedTask<P> {
    pub space: AddressSpace<P>,
    pub entry: u64,
}

/// Maps `size` bytes of fresh zeroed frames at `va`; returns the first.
fn map_fresh<P: UserPaging, const W: usize>(
    t: &mut FrameTables<'_, W>,
    root: u64,
    va: u64,
    size: u64,
    flags: P::Flags,
) -> Result<u64, P::MapError> {
    let mut first = 0;
    for page in (va..va + size).step_by(PAGE_SIZE as usize) {
        let frame = t.frames().alloc().map_err(|_| P::OUT_OF_FRAMES)?;
        zero_frames(frame, 1);
        P::map_page(t, root, page, frame, flags)?;
        if page == va {
            first = frame;
        }
    }
    Ok(first)
}

/// Builds a space for the ELF `image`: the kernel's top-level entries
/// (copied from `kernel_root`), the segments, the IPC buffer and the stack.
pub fn load<P: UserPaging, const W: usize>(
    frames: &mut FrameAllocator<W>,
    kernel_root: u64,
    image: &[u8],
    asid: u16,
) -> Result<LoadedTask<P>, LoadError<P::MapError>> {
    let parsed = elf::parse(image, P::ELF_MACHINE, IMAGE_TOP as u64).map_err(LoadError::Elf)?;
    let mut t = FrameTables::new(frames);
    let root = t.alloc_table().ok_or(LoadError::Map(P::OUT_OF_FRAMES))?;
    let kernel = *IdentityWalk.entries(kernel_root);
    *t.entries(root) = kernel;
    t.entries(root)[P::USER_SLOT] = 0;
    for seg in parsed.segments() {
        P::check_segment(seg).map_err(LoadError::Elf)?;
        let flags = P::segment_flags(seg);
        let start = seg.page_start();
        for page in (start..seg.page_end()).step_by(PAGE_SIZE as usize) {
            let frame = t
                .frames()
                .alloc()
                .map_err(|_| LoadError::Map(P::OUT_OF_FRAMES))?;
            zero_frames(frame, 1);
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
            P::map_page(&mut t, root, page, frame, flags).map_err(LoadError::Map)?;
        }
    }
    let rw = P::USER_RW_OWNED;
    let ipc_frame = map_fresh::<P, W>(&mut t, root, IPC_BUFFER as u64, IPC_BUFFER_SIZE as u64, rw)
        .map_err(LoadError::Map)?;
    let stack = (STACK_TOP - STACK_SIZE) as u64;
    map_fresh::<P, W>(&mut t, root, stack, STACK_SIZE as u64, rw).map_err(LoadError::Map)?;
    // A restarted task reuses its slot's tag.
    P::retag(asid);
    Ok(LoadedTask {
        space: AddressSpace {
            root,
            asid,
            ipc_frame,
            paging: core::marker::PhantomData,
        },
        entry: parsed.entry,
    })
}

impl<P: UserPaging> AddressSpace<P> {
    /// Makes this the CPU's address space.
    #[inline]
    pub fn activate(&self) {
        P::activate(self.root, self.asid);
    }

    /// The CPU returns to this space in user mode (under the kernel lock,
    /// after [`AddressSpace::activate`]): it first drops what a change on
    /// another CPU left stale, then says where it runs
    /// ([`AddressSpace::shootdown`] waits for it to leave).
    #[inline(always)]
    pub fn entering_user(&self) {
        if PRESENCE.entering(this_cpu(), self.root) {
            P::flush_user();
        }
    }

    /// A mapping of this space changed, or it is about to be freed, under
    /// the kernel lock: every other CPU drops its task translations before
    /// it next returns to user mode, and one running this space in user
    /// mode now is kicked out of it and waited for (its trap says it left
    /// before it takes the lock this CPU holds). The calling CPU flushes
    /// for itself ([`UserPaging::changed`], `retag`).
    pub fn shootdown(&self) {
        let me = this_cpu();
        for cpu in (0..MAX_CPUS).filter(|&cpu| cpu != me) {
            PRESENCE.mark_stale(cpu);
            if !PRESENCE.runs(cpu, self.root) {
                continue;
            }
            super::kick(1 << cpu);
            while PRESENCE.runs(cpu, self.root) {
                core::hint::spin_loop();
            }
        }
    }

    /// Copies `out.len()` bytes from user address `ptr`; `false` (nothing
    /// trusted) if a byte is not user-readable in this space or is not RAM
    /// (a device window).
    pub fn read_user(&self, ptr: usize, out: &mut [u8]) -> bool {
        crate::translated::copy_from(
            ptr as u64,
            out,
            PAGE_SIZE,
            |va| {
                P::translate(&mut IdentityWalk, self.root, va)
                    .filter(|(_, flags)| P::user_readable(*flags))
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

    /// Copies the first `out.len()` bytes of the task's IPC buffer into
    /// `out`; `false`, with nothing copied, for more than the buffer holds.
    #[inline]
    pub fn read_ipc(&self, out: &mut [u8]) -> bool {
        if out.len() > IPC_BUFFER_SIZE {
            return false;
        }
        // SAFETY: `ipc_frame` is this task's IPC buffer frame, which the
        // kernel allocated (4 KiB, identity-mapped); `out.len()` is at most
        // 4 KiB and `out` is a kernel slice distinct from it. The task
        // writes the frame only while it runs, and it does not run while
        // the kernel serves its call.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.ipc_frame as *const u8,
                out.as_mut_ptr(),
                out.len(),
            );
        }
        true
    }

    /// The first `N` bytes of the task's IPC buffer (at most the buffer's
    /// size): a fixed-size copy, for a short message read on a fast path.
    #[inline(always)]
    pub fn ipc_head<const N: usize>(&self) -> [u8; N] {
        const { assert!(N <= IPC_BUFFER_SIZE) };
        // SAFETY: as in `read_ipc`: `ipc_frame` is this task's IPC buffer
        // frame (4 KiB, identity-mapped, kernel-allocated), `N` is at most
        // its size, and the task does not run while the kernel serves its
        // call. `read_unaligned` asks nothing of the frame's alignment.
        unsafe { core::ptr::read_unaligned(self.ipc_frame as *const [u8; N]) }
    }

    /// Maps the kernel-owned frame `frame` read-write at user address `va`
    /// (a page shared with the kernel, such as an ioreq page).
    pub fn map_shared<const W: usize>(
        &self,
        frames: &mut FrameAllocator<W>,
        va: u64,
        frame: u64,
    ) -> Result<(), P::MapError> {
        let mut t = FrameTables::new(frames);
        P::unmap_page(&mut t, self.root, va);
        P::map_page(&mut t, self.root, va, frame, P::USER_RW_SHARED)?;
        P::changed(va);
        self.shootdown();
        Ok(())
    }

    /// Removes the page at `va` (the table pages stay).
    pub fn unmap(&self, va: u64) {
        P::unmap_page(&mut IdentityWalk, self.root, va);
        P::changed(va);
        self.shootdown();
    }

    /// Frees the space of a dead task (not the CPU's current one): the
    /// frames it was loaded into or given fresh (its image, IPC buffer and
    /// stack), its page tables and its root. Shared pages (ioreq pages,
    /// device windows, DMA) stay with their owners. Returns how many
    /// frames went back.
    pub fn release<const W: usize>(self, frames: &mut FrameAllocator<W>) -> usize {
        self.shootdown();
        let mut freed = 0;
        let mut free = |frame| {
            if frames.free(frame).is_ok() {
                freed += 1;
            }
        };
        P::release_user(
            &mut IdentityWalk,
            self.root,
            P::USER_SLOT..P::USER_SLOT + 1,
            &mut free,
        );
        free(self.root);
        // Nothing the CPU cached for the space may outlive it.
        P::retag(self.asid);
        freed
    }
}

/// Copies `len` bytes from one task's IPC buffer frame to another's.
#[inline]
pub fn copy_message<P>(from: &AddressSpace<P>, to: &AddressSpace<P>, len: usize) {
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
