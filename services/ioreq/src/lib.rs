//! I/O request pages, client ranges, dispatch and completion: the ioreq service's logic.
//!
//! The kernel fills a VM's [`page::IoreqPage`] slot when a guest access
//! traps and notifies the service; [`IoreqService::handle`] then drains the
//! PENDING slots into [`dispatch::Forward`]s to the clients registered in
//! [`clients::ClientRegistry`], and turns each client's `Complete` into a
//! COMPLETE slot and a vCPU resume. The library does no I/O: the task binary
//! sends what [`Handled::actions`] lists. Everything read from the shared
//! page is validated by [`slot`]; what is refused is counted in
//! [`counters::IoreqCounters`]. [`worker`] is the task's work loop over an
//! [`IoreqEffects`] trait: forward, complete, resume; before a VM's slots it
//! drains the VM's ring of posted writes ([`posted`]) to their clients in
//! batches. [`page`], [`slot`] and [`posted`] are the kernel/service ABI
//! defined in `ipc::ioreq_abi`, re-exported here.
//!
//! Layer: service library (`cargo xtask check-layers`): it owns this service's
//! state machine and depends only on `ipc`; other services are reached over
//! IPC, never linked (only tests may link another service library).
#![no_std]
#![forbid(unsafe_code)]

pub mod clients;
pub mod counters;
pub mod dispatch;
pub mod problem_log;
pub mod service;
pub mod worker;

// The page layout and slot state machine are an ABI shared with the kernel,
// so they live in `ipc`; re-exported here under their old paths.
pub use ipc::ioreq_abi::{page, posted, slot};

pub use dispatch::{Action, Actions, Forward};
pub use service::{Handled, IoreqService, OwnedPages, PageSource};
pub use worker::{IoreqEffects, Problem};
