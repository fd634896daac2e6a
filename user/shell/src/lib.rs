//! Mica's management shell on the hypervisor console: a line editor
//! ([`editor`]) and the command loop ([`shell`]) over mica-mgmt's grammar,
//! requests and formatters, written against a [`shell::Hypervisor`] so that
//! the host tests drive it with a stand-in vm-manager. The task binary
//! (`main.rs`) plugs in the console and IPC calls.
//!
//! Layer: user task (`cargo xtask check-layers`): it links only `ipc`, the user
//! runtime and `mica-mgmt`, never a service library.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod editor;
pub mod shell;
