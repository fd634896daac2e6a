//! The device calls on the running kernel: [`DeviceHost`] over the tasks'
//! address spaces and the frame allocator (device windows and DMA frames
//! mapped read-write at the user addresses `syscall_device` chose), and
//! the per-tick wake-up of tasks in `sleep`.

use ipc::Error;
use mica_boot::MemRange;

use super::{Runner, Tasks};
use crate::arch;
use crate::frame::FRAME_SIZE;
use crate::kmain::FRAMES;
use crate::obj::ids::TaskId;
use crate::syscall_device::{self, DeviceHost};
use crate::ticks;

impl Tasks {
    /// Maps `pages` frames from `pa` read-write at `va` of `task`.
    fn map_frames(&self, task: TaskId, va: usize, pa: u64, pages: usize) -> Result<(), Error> {
        let slot = self.slot(task).ok_or(Error::InvalidArgument)?;
        let mut frames = FRAMES.lock();
        for page in 0..pages as u64 {
            let offset = page * FRAME_SIZE;
            slot.space
                .map_shared(&mut frames, va as u64 + offset, pa + offset)
                .map_err(|_| Error::OutOfMemory)?;
        }
        Ok(())
    }
}

impl DeviceHost for Tasks {
    fn map_device(&mut self, task: TaskId, va: usize, window: MemRange) -> Result<(), Error> {
        self.map_frames(task, va, window.start, 1)
    }

    fn dma_map(&mut self, task: TaskId, va: usize, pages: usize) -> Result<u64, Error> {
        let pa = FRAMES
            .lock()
            .alloc_contiguous(pages, 1)
            .map_err(|_| Error::OutOfMemory)?;
        arch::zero_frames(pa, pages);
        if let Err(e) = self.map_frames(task, va, pa, pages) {
            // Pages mapped before the failure stay in the task's tables but
            // the task never learns their address; it gets an error.
            self.dma_free(pa, pages);
            return Err(e);
        }
        Ok(pa)
    }

    fn dma_free(&mut self, pa: u64, pages: usize) {
        let mut frames = FRAMES.lock();
        for page in 0..pages as u64 {
            // Every frame came from this allocator; a refusal means it is
            // already free, and nothing more can be done.
            let _ = frames.free(pa + page * FRAME_SIZE);
        }
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
