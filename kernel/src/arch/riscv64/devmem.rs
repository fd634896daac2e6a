//! Device memory for tasks that drive a device: zeroing DMA frames before a
//! task sees them, telling which virtio device a window holds, and stopping
//! a virtio-mmio device whose driver died.
//! (Sv39 PTEs carry no cache attribute: the platform's PMAs already make
//! the device windows uncached, so a window maps like any user page.)

use super::csr;

/// The virtio-mmio `Status` register's offset; writing 0 resets the device.
const VIRTIO_MMIO_STATUS: u64 = 0x70;
/// The virtio-mmio `MagicValue` register ("virt") and `DeviceID`.
const VIRTIO_MMIO_MAGIC: u64 = 0x00;
const VIRTIO_MAGIC: u32 = 0x7472_6976;
const VIRTIO_MMIO_DEVICE_ID: u64 = 0x08;

/// The virtio device ID in the virtio-mmio window at `window` (a
/// device-tree `virtio,mmio` window, checked not to be RAM): 0 for an
/// empty slot or a window that is not virtio-mmio. The manifest grants
/// device windows by this class.
pub fn virtio_device_id(window: u64) -> u32 {
    // As in `device_reset`: paging off for the reads.
    let satp = csr::satp::read();
    csr::satp::write(0);
    // SAFETY: flushes translations around the satp changes; the loads read
    // the `MagicValue` and `DeviceID` registers of a virtio-mmio window the
    // device tree names, which are read-only and have no side effects.
    let (magic, id) = unsafe {
        core::arch::asm!("sfence.vma", options(nostack));
        let magic = core::ptr::read_volatile((window + VIRTIO_MMIO_MAGIC) as *const u32);
        let id = core::ptr::read_volatile((window + VIRTIO_MMIO_DEVICE_ID) as *const u32);
        (magic, id)
    };
    csr::satp::write(satp);
    // SAFETY: flushes translations after restoring the space.
    unsafe { core::arch::asm!("sfence.vma", options(nostack)) };
    if magic == VIRTIO_MAGIC { id } else { 0 }
}

/// Resets the virtio-mmio device whose register window starts at `window`
/// (a device-tree `virtio,mmio` window, checked not to be RAM), so it
/// stops using the memory its driver gave it.
pub fn device_reset(window: u64) {
    // The windows lie below 1 GiB, where every space maps the task, not the
    // kernel: switch paging off for the one store (the kernel runs
    // identity-mapped, with interrupts off in the trap path), then back.
    let satp = csr::satp::read();
    csr::satp::write(0);
    // SAFETY: flushes translations around the satp changes; the store goes
    // to the `Status` register of a virtio-mmio window the device tree
    // names, whose only effect is the device reset the spec defines.
    unsafe {
        core::arch::asm!("sfence.vma", options(nostack));
        core::ptr::write_volatile((window + VIRTIO_MMIO_STATUS) as *mut u32, 0);
    }
    csr::satp::write(satp);
    // SAFETY: flushes translations after restoring the task's space.
    unsafe { core::arch::asm!("sfence.vma", options(nostack)) };
}
