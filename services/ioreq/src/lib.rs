//! I/O request pages, client ranges, dispatch and completion: the ioreq service's logic.
#![no_std]
#![forbid(unsafe_code)]

pub mod clients;
pub mod counters;
pub mod page;
pub mod slot;
