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
//! [`IoreqEffects`] trait: forward, complete, resume.
#![no_std]
#![forbid(unsafe_code)]

pub mod clients;
pub mod counters;
pub mod dispatch;
pub mod page;
pub mod service;
pub mod slot;
pub mod worker;

pub use dispatch::{Action, Actions, Forward};
pub use service::{Handled, IoreqService, OwnedPages, PageSource};
pub use worker::{IoreqEffects, Problem};
