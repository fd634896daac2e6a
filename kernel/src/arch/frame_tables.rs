//! Page-table pages as the kernel holds them on every arch: frames from
//! the frame allocator, zeroed, read and written through the kernel's
//! identity map. One [`TableMemory`] for the kernel's own tables, every
//! task's, and every VM's G-stage or nested tables.
#![allow(
    clippy::cast_possible_truncation,
    reason = "Mica's kernels are 64-bit: u64 addresses and sizes fit usize"
)]

extern crate alloc;

use alloc::vec::Vec;

use super::page_table::{ENTRIES, PAGE_SIZE, TableMemory};
use crate::frame::FrameAllocator;

/// Table pages taken from `frames`; with a `record`, each one is also
/// pushed there so that the owner (a VM) can return them at destroy.
pub struct FrameTables<'a, const W: usize> {
    frames: &'a mut FrameAllocator<W>,
    record: Option<&'a mut Vec<u64>>,
}

impl<'a, const W: usize> FrameTables<'a, W> {
    /// Tables whose frames the walk of their root finds again (the
    /// kernel's, a task's: `release_user`).
    pub fn new(frames: &'a mut FrameAllocator<W>) -> Self {
        Self {
            frames,
            record: None,
        }
    }

    /// Tables whose frames are also listed in `record`.
    pub fn recording(frames: &'a mut FrameAllocator<W>, record: &'a mut Vec<u64>) -> Self {
        Self {
            frames,
            record: Some(record),
        }
    }

    /// The allocator behind the tables, for the frames they map.
    pub fn frames(&mut self) -> &mut FrameAllocator<W> {
        self.frames
    }
}

impl<const W: usize> TableMemory for FrameTables<'_, W> {
    fn alloc_table(&mut self) -> Option<u64> {
        let frame = self.frames.alloc().ok()?;
        zero_frames(frame, 1);
        if let Some(record) = self.record.as_mut() {
            record.push(frame);
        }
        Some(frame)
    }

    fn entries(&mut self, table: u64) -> &mut [u64; ENTRIES] {
        identity_entries(table)
    }
}

/// Walks tables the kernel built, allocating nothing (translation,
/// unmapping, release).
pub struct IdentityWalk;

impl TableMemory for IdentityWalk {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }

    fn entries(&mut self, table: u64) -> &mut [u64; ENTRIES] {
        identity_entries(table)
    }
}

/// The entries of the table frame at `table`.
fn identity_entries<'a>(table: u64) -> &'a mut [u64; ENTRIES] {
    // SAFETY: callers pass a table of tables the kernel built: a root or
    // a frame reached through an entry the builder wrote, 4 KiB-aligned
    // RAM in the identity map that only the kernel writes. The kernel runs
    // on one CPU with interrupts off while it walks or edits tables, and
    // each borrow ends before the next table is reached.
    unsafe { &mut *(table as *mut [u64; ENTRIES]) }
}

/// Zeroes `pages` frames from `pa`: RAM the caller just took from the
/// frame allocator (nothing else refers to it).
pub fn zero_frames(pa: u64, pages: usize) {
    let len = pages.saturating_mul(PAGE_SIZE as usize);
    // SAFETY: `pa..pa+len` are frames the caller took from the frame
    // allocator for this purpose; RAM is identity-mapped read-write in the
    // kernel's part of every space (or paging is still off).
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, len) };
}
