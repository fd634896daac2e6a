//! The device calls on the running kernel: [`DeviceHost`] over the tasks'
//! address spaces and the frame allocator (device windows and DMA frames
//! mapped read-write at the user addresses `syscall_device` chose), and
//! the per-tick wake-up of tasks in `sleep`.

use ipc::Error;
use mica_boot::MemRange;

use super::{Runner, Tasks};
use crate::arch;
use crate::kmain::FRAMES;
use crate::obj::ids::TaskId;
use crate::syscall_device::{self, DeviceHost};
use crate::ticks;

impl DeviceHost for Tasks {
    fn map_device(&mut self, task: TaskId, va: usize, window: MemRange) -> Result<(), Error> {
        self.map_frame(task, va, window.start)
    }

    fn dma_take(&mut self, pages: usize) -> Result<u64, Error> {
        let pa = FRAMES
            .lock()
            .alloc_contiguous(pages, 1)
            .map_err(|_| Error::OutOfMemory)?;
        arch::zero_frames(pa, pages);
        Ok(pa)
    }

    fn map_frame(&mut self, task: TaskId, va: usize, pa: u64) -> Result<(), Error> {
        let slot = self.slot(task).ok_or(Error::InvalidArgument)?;
        slot.space
            .map_shared(&mut FRAMES.lock(), va as u64, pa)
            .map_err(|_| Error::OutOfMemory)
    }

    fn unmap_frame(&mut self, task: TaskId, va: usize) {
        if let Some(slot) = self.slot(task) {
            slot.space.unmap(va as u64);
        }
    }

    fn dma_free(&mut self, pa: u64, pages: usize) {
        FRAMES.lock().free_contiguous(pa, pages);
    }

    fn device_reset(&mut self, window: MemRange) {
        arch::device_reset(window.start);
    }
}

/// On a timer tick or an idle wake-up: tasks whose `sleep` ended are ready.
pub(super) fn wake_sleepers(r: &mut Runner) {
    let mut grants = syscall_device::GRANTS.lock();
    syscall_device::wake_sleepers(&mut grants, &mut r.objects, ticks::count());
}
