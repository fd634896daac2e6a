//! Mica's management logic, shared by the shell task on the hypervisor
//! console and the host `mica` CLI: the command grammar ([`parse`]), the
//! requests a command sends ([`command`]), the text and JSON output
//! ([`table`], [`images`], [`json`], [`errors`]), the shell's quoting rule ([`words`]),
//! attaching to a VM's console from the host ([`console`]), reading a VM's
//! recent console output back ([`log`]), following the VMs' state changes
//! ([`events`]),
//! and the framed, versioned management wire ([`cobs`], [`frame`],
//! [`serve`]).
//!
//! Everything here is `no_std` and heap-free: the shell task links it as is
//! (but for the test helpers of feature `testing`: the stand-in hypervisor
//! and `help_lines`, which reads help texts back for the tests).
//!
//! Layer: management library (`cargo xtask check-layers`): it depends only on
//! `ipc` and vm-manager's validated name types (the same checks on both sides
//! of the wire), never on another service.
#![no_std]
#![forbid(unsafe_code)]

pub mod cobs;
pub mod command;
pub mod console;
pub mod errors;
pub mod events;
pub mod frame;
#[cfg(feature = "testing")]
pub mod help_lines;
pub mod images;
pub mod json;
pub mod log;
pub mod parse;
pub mod serve;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
pub mod words;

pub use command::{
    Command, ImageList, ImagesPager, ListPager, PagedList, Pager, ReplyError, VmCommand, VmList,
};
pub use frame::{FrameDecoder, FrameError, VERSION};
pub use parse::{ParseError, parse_console, parse_line, parse_vm};
