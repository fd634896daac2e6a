//! The kernel heap behind `alloc`: a buddy allocator over frames the boot
//! code hands it once.

use buddy_system_allocator::LockedHeap;
use mica_boot::MemRange;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Gives `range` to the heap. Call once, with frames taken from the frame
/// allocator that nothing else uses.
// Mica's kernels are 64-bit: u64 addresses and sizes fit usize.
#[allow(clippy::cast_possible_truncation)]
pub fn init(range: MemRange) {
    // SAFETY: the caller hands over frames it took from the frame allocator
    // for the heap alone; they are identity-mapped RAM and never freed.
    unsafe { HEAP.lock().init(range.start as usize, range.size as usize) };
}
