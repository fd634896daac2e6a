//! Mica's boot-info handoff: reads the firmware's device tree into a
//! [`BootInfo`] (RAM, harts, ISA, reserved ranges, initrd) without panicking
//! on malformed bytes.
#![no_std]

pub mod fdt;
pub mod image;
mod info;
mod isa;
mod ranges;

pub use info::{BootInfo, BootInfoError, MAX_MEMORY_RANGES, MAX_RESERVED_RANGES};
pub use isa::Isa;
pub use ranges::{ListFull, MemRange, RangeList};
