//! What the model checkers of the slot and the posted-write ring
//! (`slot/model_tests.rs`, `posted/model_tests.rs`) share: the C++/Rust
//! memory model's happens-before edges as vector clocks, one entry per
//! modelled thread.

use core::sync::atomic::Ordering;

/// Whether a load (or the load half of a read-modify-write) with
/// `ordering` takes the writer's history.
pub fn acquires(ordering: Ordering) -> bool {
    matches!(
        ordering,
        Ordering::Acquire | Ordering::AcqRel | Ordering::SeqCst
    )
}

/// Whether a store (or the store half of a read-modify-write) with
/// `ordering` publishes the writer's history.
pub fn releases(ordering: Ordering) -> bool {
    matches!(
        ordering,
        Ordering::Release | Ordering::AcqRel | Ordering::SeqCst
    )
}

/// Adds what `from` knows to `into`: each thread's count is the larger.
pub fn join<const N: usize>(into: &mut [u32; N], from: &[u32; N]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = (*a).max(*b);
    }
}
