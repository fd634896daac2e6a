//! [`StaticSlot`]: room in `.bss` for one value too large for the 64 KiB
//! task stack (the device service's state is about 78 KiB), handed out once
//! as a `&'static mut`.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

/// Static storage for one `T`, initialised at most once.
pub struct StaticSlot<T> {
    taken: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the only access to `value` is through `init_with`, which the
// `taken` flag lets succeed at most once, so at most one `&mut T` exists
// and it moves to one thread; `T: Send` makes that move sound.
unsafe impl<T: Send> Sync for StaticSlot<T> {}

impl<T> StaticSlot<T> {
    /// An empty slot (for a `static`).
    pub const fn new() -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Stores `init()` in the slot and returns it; `None` if the slot was
    /// already used. `init` is called inside, so with optimisation the
    /// value is built in place rather than on the stack (check a large
    /// `T`'s frame with `llvm-objdump`).
    #[allow(
        clippy::mut_from_ref,
        reason = "the `taken` flag makes this the only `&mut T` ever formed (as in static_cell)"
    )]
    pub fn init_with(&'static self, init: impl FnOnce() -> T) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false and is now true, so this is the first
        // and only call to get here: no other reference to `value` exists,
        // and the one returned lives as long as the static.
        let slot = unsafe { &mut *self.value.get() };
        Some(slot.write(init()))
    }
}

impl<T> Default for StaticSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_handed_out_once() {
        static SLOT: StaticSlot<[u32; 4]> = StaticSlot::new();
        let first = SLOT.init_with(|| [1, 2, 3, 4]).expect("first use");
        first[0] = 9;
        assert_eq!(*first, [9, 2, 3, 4]);
        assert!(SLOT.init_with(|| [0; 4]).is_none());
    }
}
