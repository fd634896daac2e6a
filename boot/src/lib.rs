//! Mica's boot-info handoff: reads the firmware's device tree into a
//! [`BootInfo`] (RAM, harts, ISA, reserved ranges, initrd), an x86
//! loader's Multiboot information into a [`multiboot::MultibootInfo`] and
//! the x86 processors the ACPI MADT lists ([`acpi::read_madt`]), all
//! without panicking on malformed bytes; each gives the generic kernel a
//! [`MachineInfo`].
//!
//! Layer: boot (`cargo xtask check-layers`): it owns parsing what the firmware
//! or loader hands over and depends on no other workspace crate.
#![no_std]

pub mod acpi;
pub mod fdt;
mod harts;
pub mod image;
mod info;
mod isa;
mod machine;
pub mod multiboot;
mod ranges;

pub use harts::{Hart, HartList, MAX_LISTED_HARTS};
pub use info::{
    BootInfo, BootInfoError, MAX_DEVICE_WINDOWS, MAX_MEMORY_RANGES, MAX_RESERVED_RANGES,
};
pub use isa::Isa;
pub use machine::MachineInfo;
pub use ranges::{ListFull, MemRange, RangeList};
