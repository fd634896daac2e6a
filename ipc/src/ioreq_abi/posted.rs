//! The per-VM posted-write ring: device writes the kernel completes at
//! once, without waiting for a service (Xen's buffered ioreq page).
//!
//! A guest store to a range the ioreq service declared postable (a 16550's
//! transmit register, say) goes into this ring and the vCPU runs on; the
//! ioreq service drains the ring, in order, before it serves any slot of
//! the VM, so every later synchronous access sees the writes' effects, as
//! if they had been emulated one by one. When the ring is full the kernel
//! takes the synchronous path through the vCPU's slot instead.
//!
//! The page is shared: the kernel owns the write index (it keeps its own
//! copy and never reads the page's back) and the entries between the read
//! and the write index; the service owns the read index. Each side treats
//! what the other wrote as untrusted: the kernel sees a read index that
//! makes no sense as a full ring, the service refuses an entry that does
//! not decode. Every access is atomic (the two sides may run on different
//! harts once there are several); indices are published with release and
//! read with acquire ordering:
//!
//! - the kernel writes an entry (relaxed), then publishes the write index
//!   (release); the service loads the write index (acquire) before it reads
//!   the entries below it;
//! - the service reads an entry, then publishes the read index (release);
//!   the kernel loads the read index (acquire) before it reuses an entry
//!   below it. The ioreq service publishes it only once the writes it took
//!   were carried out (the devices service answered), so a ring the kernel
//!   sees read is a ring whose output is out: a vCPU's exit the kernel
//!   reports waits for that, and the guest's last lines come before
//!   Mica's word on how it ended.
//!
//! `posted/model_tests.rs` explores every interleaving of one producer and
//! one consumer over the real steps below with a happens-before race
//! detector on the entries.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::Space;

/// Entries in the ring (a power of two, so free-running `u32` indices wrap
/// onto the same entries).
pub const ENTRIES: usize = 64;
/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;

const _: () = assert!(ENTRIES.is_power_of_two());
const _: () = assert!(core::mem::size_of::<PostedPage>() == PAGE_SIZE);

/// The kernel's load of the read index, before it reuses an entry.
pub(crate) const READ_INDEX_LOAD: Ordering = Ordering::Acquire;
/// The kernel's store of the write index, after it wrote the entries.
pub(crate) const WRITE_INDEX_PUBLISH: Ordering = Ordering::Release;
/// The service's load of the write index, before it reads the entries.
pub(crate) const WRITE_INDEX_LOAD: Ordering = Ordering::Acquire;
/// The service's store of the read index, after it read the entries.
pub(crate) const READ_INDEX_PUBLISH: Ordering = Ordering::Release;

/// One posted write, as the kernel stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostedWrite {
    /// MMIO or port I/O (PCI configuration writes are never posted).
    pub space: Space,
    /// Guest-physical address or port.
    pub addr: u64,
    /// Access width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// The value written (its low `size` bytes).
    pub value: u64,
}

/// An entry the service cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostedError {
    /// The entry's width or space word does not decode.
    BadEntry,
    /// The write index is more than [`ENTRIES`] ahead of the read index:
    /// the page was overwritten. The service skips to the write index.
    Overrun,
}

/// One ring entry: three words (address, value, width | space << 8).
#[derive(Debug, Default)]
#[repr(C)]
struct Entry {
    addr: AtomicU64,
    value: AtomicU64,
    meta: AtomicU64,
}

/// The ring page: the read index (service), the write index (kernel), each
/// on its own 64-byte line, then the entries.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct PostedPage {
    read: AtomicU32,
    _read_line: [u32; 15],
    write: AtomicU32,
    _write_line: [u32; 15],
    entries: [Entry; ENTRIES],
    _rest: [u64; (PAGE_SIZE - 128 - ENTRIES * 24) / 8],
}

impl Default for PostedPage {
    fn default() -> Self {
        Self::new()
    }
}

fn space_code(space: Space) -> u64 {
    match space {
        Space::Mmio => 0,
        Space::Pio => 1,
        Space::PciConfig => 2,
    }
}

fn decode(addr: u64, value: u64, meta: u64) -> Result<PostedWrite, PostedError> {
    let size = u8::try_from(meta & 0xff).map_err(|_| PostedError::BadEntry)?;
    let space = match meta >> 8 {
        0 => Space::Mmio,
        1 => Space::Pio,
        _ => return Err(PostedError::BadEntry),
    };
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(PostedError::BadEntry);
    }
    Ok(PostedWrite {
        space,
        addr,
        size,
        value,
    })
}

impl PostedPage {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            read: AtomicU32::new(0),
            _read_line: [0; 15],
            write: AtomicU32::new(0),
            _write_line: [0; 15],
            entries: [const {
                Entry {
                    addr: AtomicU64::new(0),
                    value: AtomicU64::new(0),
                    meta: AtomicU64::new(0),
                }
            }; ENTRIES],
            _rest: [0; (PAGE_SIZE - 128 - ENTRIES * 24) / 8],
        }
    }

    fn entry(&self, index: u32) -> &Entry {
        // `ENTRIES` is a power of two that fits in u32: the mask keeps the
        // index in bounds.
        &self.entries[index as usize & (ENTRIES - 1)]
    }

    /// The kernel's side: appends `write` after entry `*next` (the kernel's
    /// own write index, which it keeps and advances; the page's copy is only
    /// published). `false`, with nothing changed, when the ring is full, or
    /// when the service's read index is not within [`ENTRIES`] behind
    /// `*next` (then the kernel treats the ring as full and uses the slot).
    #[inline]
    pub fn push(&self, next: &mut u32, write: &PostedWrite) -> bool {
        if !self.has_room(*next) {
            return false;
        }
        self.put(*next, write);
        *next = next.wrapping_add(1);
        self.publish_write(*next);
        true
    }

    /// Whether entry `next` is free: the service's read index (acquire:
    /// its reads of the entry are over) is within [`ENTRIES`] behind it.
    #[inline]
    fn has_room(&self, next: u32) -> bool {
        let read = self.read.load(READ_INDEX_LOAD);
        (next.wrapping_sub(read) as usize) < ENTRIES
    }

    /// Writes entry `index`.
    #[inline]
    fn put(&self, index: u32, write: &PostedWrite) {
        let entry = self.entry(index);
        entry.addr.store(write.addr, Ordering::Relaxed);
        entry.value.store(write.value, Ordering::Relaxed);
        entry.meta.store(
            u64::from(write.size) | space_code(write.space) << 8,
            Ordering::Relaxed,
        );
    }

    /// Publishes the entries below `next` to the service.
    #[inline]
    fn publish_write(&self, next: u32) {
        self.write.store(next, WRITE_INDEX_PUBLISH);
    }

    /// The kernel's side: the write index it last published (its own
    /// write index whenever no push is under way: only the kernel pushes,
    /// from one CPU at a time).
    #[inline]
    pub fn published(&self) -> u32 {
        self.write.load(Ordering::Relaxed)
    }

    /// The kernel's side: whether the service has not taken every entry
    /// up to the kernel's write index `next` yet.
    #[inline]
    pub fn unread(&self, next: u32) -> bool {
        self.read.load(Ordering::Acquire) != next
    }

    /// Whether the service has entries to take.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.read.load(Ordering::Relaxed) == self.write.load(Ordering::Acquire)
    }

    /// The service's side: takes the oldest entry and hands it back to the
    /// kernel at once, or `None` when the ring is empty ([`Self::take_at`]
    /// then [`Self::release`]).
    #[inline]
    pub fn pop(&self) -> Option<Result<PostedWrite, PostedError>> {
        let mut read = self.read_index();
        let taken = self.take_at(&mut read)?;
        self.publish_read(read);
        Some(taken)
    }

    /// The service's side: the entry at `*read` (a cursor that starts at
    /// [`Self::read_index`]), moving the cursor past it, or `None` when
    /// the cursor is at the kernel's write index. The entry stays the
    /// service's until it [`Self::release`]s it, so the kernel's
    /// [`Self::unread`] holds until the write was carried out. An entry
    /// that does not decode is taken all the same (`Err(BadEntry)`); a
    /// write index too far ahead moves the cursor up to it
    /// (`Err(Overrun)`: those entries are lost).
    #[inline]
    pub fn take_at(&self, read: &mut u32) -> Option<Result<PostedWrite, PostedError>> {
        let at = *read;
        let write = self.written();
        if at == write {
            return None;
        }
        if write.wrapping_sub(at) as usize > ENTRIES {
            *read = write;
            return Some(Err(PostedError::Overrun));
        }
        *read = at.wrapping_add(1);
        Some(self.take(at))
    }

    /// The service's side: hands the entries below `read` (a cursor
    /// [`Self::take_at`] moved) back to the kernel, their writes done.
    #[inline]
    pub fn release(&self, read: u32) {
        self.publish_read(read);
    }

    /// The service's own read index (only it stores it): where its next
    /// [`Self::take_at`] starts.
    #[inline]
    pub fn read_index(&self) -> u32 {
        self.read.load(Ordering::Relaxed)
    }

    /// The kernel's write index (acquire: the entries below it are written).
    #[inline]
    fn written(&self) -> u32 {
        self.write.load(WRITE_INDEX_LOAD)
    }

    /// Reads and decodes entry `index`.
    #[inline]
    fn take(&self, index: u32) -> Result<PostedWrite, PostedError> {
        let entry = self.entry(index);
        decode(
            entry.addr.load(Ordering::Relaxed),
            entry.value.load(Ordering::Relaxed),
            entry.meta.load(Ordering::Relaxed),
        )
    }

    /// Hands the entries below `read` back to the kernel.
    #[inline]
    fn publish_read(&self, read: u32) {
        self.read.store(read, READ_INDEX_PUBLISH);
    }

    /// Overwrites the read index (tests and hostile-service models only:
    /// what a misbehaving service could do to the page).
    pub fn scribble_read(&self, read: u32) {
        self.read.store(read, Ordering::Release);
    }

    /// Overwrites the write index and the meta word of entry `index` (tests
    /// only: what a corrupted page looks like to the service).
    pub fn scribble_entry(&self, index: u32, meta: u64, write: u32) {
        self.entry(index).meta.store(meta, Ordering::Relaxed);
        self.write.store(write, Ordering::Release);
    }
}

impl AsRef<PostedPage> for PostedPage {
    fn as_ref(&self) -> &PostedPage {
        self
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
