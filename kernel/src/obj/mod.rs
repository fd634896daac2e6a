//! The kernel's generic object logic: capabilities, endpoints, notifications,
//! the scheduler and the task table, as pure state machines over task ids.
//!
//! Nothing here names a register, a CSR or an address-space detail, nothing
//! allocates and nothing is `unsafe`: the arch layer calls these functions from
//! its trap handlers and acts on what they return (copy this message, switch to
//! that task, idle). Every capacity is fixed at build time, so every operation
//! is bounded and the hot IPC path never touches a heap.

pub mod cap;
pub mod endpoint;
pub mod fastpath;
pub mod ids;
pub mod notification;
pub mod objects;
pub mod queue;
pub mod rights;
pub mod sched;
pub mod task;

#[cfg(test)]
mod invariants;
#[cfg(test)]
mod scenarios;

/// How many tasks can exist at once (service tasks and vCPU threads).
pub const MAX_TASKS: usize = 64;
/// How many capability slots each task's table has.
pub const CAP_SLOTS: usize = 64;
/// How many endpoints can exist at once.
pub const MAX_ENDPOINTS: usize = 64;
/// How many notifications can exist at once.
pub const MAX_NOTIFICATIONS: usize = 64;
/// How many CPUs the scheduler can run tasks on at once.
pub const MAX_CPUS: usize = 8;
/// How many scheduling priorities there are; 0 is the lowest.
pub const PRIORITIES: usize = 32;
/// The longest message an endpoint carries, in bytes. Equal to
/// `ipc::MAX_MESSAGE_SIZE`, which this crate does not depend on.
pub const MAX_MESSAGE_LEN: usize = 512;
