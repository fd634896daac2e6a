//! [`MachineInfo`]: what every boot path (the RISC-V device tree, x86
//! Multiboot) tells the generic kernel, in one firmware-neutral shape.

use crate::info::{MAX_DEVICE_WINDOWS, MAX_MEMORY_RANGES, MAX_RESERVED_RANGES};
use crate::ranges::{MemRange, RangeList};

/// The machine as the loader described it: RAM, ranges not to allocate
/// from, processor count, the boot image and the command line.
#[derive(Debug, Clone, Copy)]
pub struct MachineInfo<'a> {
    /// RAM the kernel may use (before its own reservations).
    pub memory: RangeList<MAX_MEMORY_RANGES>,
    /// Ranges inside `memory` the firmware or loader keeps for itself.
    pub reserved: RangeList<MAX_RESERVED_RANGES>,
    /// Processors, when the loader tells (Multiboot does not: that needs
    /// ACPI).
    pub cpu_count: Option<usize>,
    /// Where the loader put Mica's boot image (the RISC-V initrd, the first
    /// Multiboot module).
    pub boot_image: Option<MemRange>,
    /// The kernel command line (`/chosen` bootargs, Multiboot cmdline); empty
    /// when there is none.
    pub cmdline: &'a str,
    /// The virtio-mmio register windows, by ascending address (the RISC-V
    /// device tree's `virtio,mmio` nodes; none from Multiboot). The only
    /// device memory a task with the DEVICES right may map.
    pub device_windows: RangeList<MAX_DEVICE_WINDOWS>,
}

impl MachineInfo<'_> {
    /// Total RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.total_size()
    }
}
