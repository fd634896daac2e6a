//! The task's heap: a buddy allocator over a fixed array in `.bss`.

use buddy_system_allocator::LockedHeap;

const HEAP_BYTES: usize = 64 * 1024;

#[repr(align(4096))]
#[allow(dead_code, reason = "only its address is used")]
struct Arena([u8; HEAP_BYTES]);

static mut ARENA: Arena = Arena([0; HEAP_BYTES]);

#[global_allocator]
static HEAP: LockedHeap<24> = LockedHeap::empty();

/// Hands the arena to the allocator (once, from `_start`).
pub fn init() {
    let start = (&raw mut ARENA) as usize;
    // SAFETY: called once before anything allocates; the arena is a static
    // used by nothing else, `HEAP_BYTES` long.
    unsafe { HEAP.lock().init(start, HEAP_BYTES) };
}
