//! The ioreq shared-memory ABI: the layout of a VM's ioreq page ([`page`]),
//! the slot state machine both sides follow on it ([`slot`]), and the ring of
//! posted writes the kernel completes without waiting ([`posted`]).
//!
//! Unlike the rest of this crate, nothing here is a message: the page is a
//! 4 KiB frame mapped into both the kernel and the ioreq task, so its layout
//! and the ownership of each slot state are an ABI between them. It lives in
//! `ipc` so that the kernel depends on no service crate; the `ioreq` service
//! re-exports both modules under their old paths. The message protocol the
//! ioreq service speaks to its clients is [`crate::ioreq`].

#[cfg(test)]
mod memory_model;
pub mod page;
pub mod posted;
pub mod slot;
