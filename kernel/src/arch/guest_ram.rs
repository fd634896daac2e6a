//! What a VM's memory is on every arch, apart from its translation tables:
//! its RAM (contiguous host frames in the kernel's identity map, the guest
//! image and boot data copied in, the generation ID in the page below the
//! top one) and the two frames it shares with the ioreq task (the ioreq
//! page and the posted-write ring). Each arch's `guest_mem` builds these
//! at create and gives them back at destroy.
#![allow(
    clippy::cast_possible_truncation,
    reason = "Mica's kernels are 64-bit: u64 sizes fit usize"
)]

use ipc::Error;
use ipc::ioreq_abi::page::IoreqPage;
use ipc::ioreq_abi::posted::{PostedPage, PostedWrite};
use ipc::syscall::{GUEST_GENID_FROM_END, IPC_BUFFER_SIZE};

use crate::vm::boot_ranges::dma_offset;
use crate::vm::posted::{PostLease, Posting};
use crate::vm::stats::VmStats;

/// Bytes at the top of RAM kept for the boot data the guest is handed (a
/// device tree, the x86 boot-info block).
pub const TOP_PAGE_BYTES: u64 = IPC_BUFFER_SIZE as u64;

/// A VM's RAM: `bytes` from host frame `start`, owned by the VM.
#[derive(Debug, Clone, Copy)]
pub struct VmRam {
    /// First frame (host-physical, identity-mapped).
    pub start: u64,
    /// Its size.
    pub bytes: u64,
}

impl VmRam {
    /// Where the generation-ID page starts (below the top page).
    pub fn genid_offset(&self) -> u64 {
        self.bytes.saturating_sub(GUEST_GENID_FROM_END)
    }

    /// Where the top page starts.
    pub fn top_page_offset(&self) -> u64 {
        self.bytes.saturating_sub(TOP_PAGE_BYTES)
    }

    /// Copies `bytes` into RAM at `offset` from its start, if they end at
    /// or below the generation-ID page.
    pub fn copy_in(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or(Error::OutOfMemory)?;
        if end > self.genid_offset() {
            return Err(Error::OutOfMemory);
        }
        // SAFETY: `start + offset .. start + end` lies inside this VM's RAM
        // (checked above): identity-mapped frames it owns; the source is a
        // slice distinct from guest RAM.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.start + offset) as *mut u8,
                bytes.len(),
            );
        }
        Ok(())
    }

    /// The `len` bytes of RAM at guest-physical `gpa` (RAM starting at
    /// guest-physical `base`) a device model reads or writes
    /// (`vm_ram_read`, `vm_ram_write`), checked by
    /// `boot_ranges::dma_offset`.
    pub fn dma_window(&mut self, base: u64, gpa: u64, len: usize) -> Result<&mut [u8], Error> {
        let offset = dma_offset(base, self.bytes, gpa, len as u64)?;
        // SAFETY: `start + offset .. + len` lies inside this VM's RAM
        // (checked above): identity-mapped frames it owns, touched while
        // its vCPU is out of the guest (this CPU runs the system call);
        // the borrow of `self` keeps a second window from being taken.
        Ok(unsafe { core::slice::from_raw_parts_mut((self.start + offset) as *mut u8, len) })
    }

    /// Writes the generation ID at the start of the generation-ID page;
    /// returns its offset in RAM.
    pub fn write_genid(&self, id: [u8; 16]) -> Result<u64, Error> {
        if self.bytes < GUEST_GENID_FROM_END {
            return Err(Error::OutOfMemory);
        }
        let offset = self.genid_offset();
        // SAFETY: `offset + 16` lies inside this VM's RAM (it is at least
        // GUEST_GENID_FROM_END bytes): identity-mapped frames it owns.
        unsafe {
            core::ptr::copy_nonoverlapping(id.as_ptr(), (self.start + offset) as *mut u8, id.len());
        }
        Ok(offset)
    }

    /// Zeroes the top page and copies `bytes` (at most a page) there;
    /// returns its offset in RAM.
    pub fn set_top_page(&self, bytes: &[u8]) -> Result<u64, Error> {
        if bytes.len() as u64 > TOP_PAGE_BYTES {
            return Err(Error::MessageTooLarge);
        }
        let offset = self.top_page_offset();
        let top = (self.start + offset) as *mut u8;
        // SAFETY: the last page of this VM's RAM (identity-mapped, owned;
        // RAM is at least a page); `bytes` is a kernel slice distinct from
        // it and at most a page long (checked above).
        unsafe {
            core::ptr::write_bytes(top, 0, TOP_PAGE_BYTES as usize);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), top, bytes.len());
        }
        Ok(offset)
    }

    /// Copies all of `src` over the start of this RAM;
    /// `Error::InvalidArgument` (nothing copied) if it is larger.
    pub fn clone_from(&self, src: &VmRam) -> Result<(), Error> {
        if src.bytes > self.bytes {
            return Err(Error::InvalidArgument);
        }
        // SAFETY: both ranges lie inside their VM's RAM (`src` is at most
        // this one's size): distinct VMs' identity-mapped frames, so they
        // do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                src.start as *const u8,
                self.start as *mut u8,
                src.bytes as usize,
            );
        }
        Ok(())
    }

    /// Zeroes all of it.
    pub fn zero(&self) {
        // SAFETY: this VM's RAM: identity-mapped frames it owns.
        unsafe { core::ptr::write_bytes(self.start as *mut u8, 0, self.bytes as usize) };
    }
}

/// The frames a VM shares with the ioreq task, and what the kernel keeps
/// about the ring.
#[derive(Debug)]
pub struct IoreqFrames {
    /// The ioreq page's frame.
    pub ioreq: u64,
    /// The posted-write ring's frame.
    pub posted: u64,
    /// Which writes may be posted, and the ring's write index.
    pub posting: Posting,
}

impl IoreqFrames {
    /// The frames `ioreq` and `posted`, zeroed by the caller (a free
    /// ioreq page, an empty ring).
    pub const fn new(ioreq: u64, posted: u64) -> Self {
        Self {
            ioreq,
            posted,
            posting: Posting::new(),
        }
    }

    /// The VM's ioreq page.
    #[inline]
    pub fn page(&mut self) -> &mut IoreqPage {
        // SAFETY: `ioreq` is a 4 KiB-aligned frame the VM owns for its
        // whole life, identity-mapped; `IoreqPage` is 4 KiB of plain
        // integers, valid for any bytes the ioreq task writes. The kernel
        // runs on one CPU with interrupts off, so no user write races this
        // borrow, which `&mut self` keeps unique.
        unsafe { &mut *(self.ioreq as *mut IoreqPage) }
    }

    /// Offers the guest's store `write` to the ring ([`Posting::post`]):
    /// whether it was posted (and counted in `stats`).
    #[inline]
    pub fn post(&mut self, write: &PostedWrite, stats: &mut VmStats) -> bool {
        let posted = self.posting.post(ring(self.posted), write);
        if posted {
            stats.posted_write();
        }
        posted
    }

    /// The lease for a run of vCPU `vcpu` ([`Posting::lease`]).
    #[inline]
    pub fn lease(&mut self, vcpu: u8) -> PostLease {
        self.posting.lease(vcpu)
    }

    /// Takes the lease back from vCPU `vcpu`'s run, if it holds it
    /// ([`Posting::settle`]).
    #[inline]
    pub fn settle(&mut self, vcpu: u8) {
        self.posting.settle(ring(self.posted), vcpu);
    }

    /// Takes the lease back from whichever run holds it, every hart being
    /// out of the VM's guests ([`Posting::settle_any`]).
    pub fn settle_any(&mut self) {
        self.posting.settle_any(ring(self.posted));
    }

    /// Whether the exit being handled, at timer reading `now`, waits for
    /// the posted writes first ([`Posting::drain_first`]; for half a
    /// second at most: the services may wait behind other work on a
    /// loaded machine, and only a dead ioreq task takes that long).
    pub fn drain_first(&mut self, now: u64) -> bool {
        self.posting
            .drain_first(ring(self.posted), now, 50 * crate::ticks::interval())
    }
}

/// The posted-write ring in frame `posted`, for a hart that posts under a
/// lease, outside the kernel lock.
///
/// # Safety
/// `posted` is the [`IoreqFrames::posted`] of a VM that lives until the
/// reference is dropped (a hart in one of its guests, or between exits of
/// one, keeps it alive: a destroy first waits for it to leave).
#[inline]
#[cfg_attr(
    not(target_os = "none"),
    expect(dead_code, reason = "the host tests post through `Posting`")
)]
pub(crate) unsafe fn leased_ring<'a>(posted: u64) -> &'a PostedPage {
    ring(posted)
}

/// The posted-write ring in frame `posted`, for the length of one call.
#[inline]
fn ring<'a>(posted: u64) -> &'a PostedPage {
    // SAFETY: `posted` is a VM's ring: a 4 KiB-aligned frame the VM owns
    // for its whole life, identity-mapped and zeroed at creation (an empty
    // ring); `PostedPage` is atomics only, valid for any bytes the ioreq
    // task writes, and only accessed through them. Callers drop the
    // reference before the call that took it returns.
    unsafe { &*(posted as *const PostedPage) }
}
