//! The device calls of a task that drives a device itself (`ipc::syscall`
//! numbers 26-28): map a virtio-mmio register window, take DMA frames, and
//! sleep between polls. The first two need the DEVICES kernel right.

use ipc::Error;
use ipc::syscall::{MAX_SLEEP_TICKS, Sysno};

use crate::sys::checked;

/// A mapped device window: where the task finds it and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its user address.
    pub va: usize,
    /// Its size in bytes.
    pub size: usize,
}

/// Maps the machine's `index`-th virtio-mmio window (by address);
/// `Error::InvalidArgument` when the machine has no such window.
pub fn device_map(index: usize) -> Result<Window, Error> {
    checked(Sysno::DeviceMap, [index, 0, 0, 0, 0, 0]).map(|[va, size, _]| Window { va, size })
}

/// DMA memory: where the task sees it and what a device is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRegion {
    /// Its user address.
    pub va: usize,
    /// Its physical address.
    pub pa: u64,
}

/// Takes `pages` zeroed, physically contiguous pages (kept until the task
/// ends; `Error::OutOfMemory` past the per-task limit).
pub fn dma_alloc(pages: usize) -> Result<DmaRegion, Error> {
    checked(Sysno::DmaAlloc, [pages, 0, 0, 0, 0, 0])
        .map(|[va, pa, _]| DmaRegion { va, pa: pa as u64 })
}

/// Waits `ticks` kernel timer ticks (100 Hz), cut to 1..=`MAX_SLEEP_TICKS`.
pub fn sleep(ticks: usize) -> Result<(), Error> {
    let ticks = ticks.clamp(1, MAX_SLEEP_TICKS);
    checked(Sysno::Sleep, [ticks, 0, 0, 0, 0, 0]).map(|_| ())
}
