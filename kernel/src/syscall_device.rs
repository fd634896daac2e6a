//! The device system calls (`ipc::syscall` numbers 26-28) of a task that
//! drives a real device itself (the `mgmt` task and its virtio console):
//! `device_map` maps one of the machine's virtio-mmio register windows (from
//! the device tree, never RAM or the kernel), `dma_alloc` hands out zeroed,
//! physically contiguous frames and their physical address, `sleep` waits a
//! number of timer ticks so a polling driver does not starve the guests.
//!
//! The first two need the DEVICES kernel right. Each task's grants are kept
//! here, bounded ([`MAX_DMA_PAGES`] pages in at most [`MAX_DMA_ALLOCS`]
//! pieces), and undone when it dies ([`DeviceGrants::task_died`]): its
//! device windows are reset first, so no device writes into frames that go
//! back to the allocator. The arch layer's [`DeviceHost`] does the mapping.

// Registers and addresses are 64 bits wide on the targets with user tasks.
#![allow(clippy::cast_possible_truncation)]

use ipc::Error;
use ipc::syscall::{
    DEVICE_WINDOW_SIZE, DEVICE_WINDOWS, DMA_WINDOW, MAX_DEVICE_WINDOWS, MAX_DMA_PAGES,
    MAX_SLEEP_TICKS, OK, Sysno, status_of,
};
use mica_boot::image::KernelRights;
use mica_boot::{MemRange, RangeList};

use crate::obj::MAX_TASKS;
use crate::obj::ids::TaskId;
use crate::obj::objects::KernelObjects;
use crate::obj::sched::{Decision, TaskState};
use crate::syscall::Machine;

/// The most separate `dma_alloc` pieces one task may hold.
pub const MAX_DMA_ALLOCS: usize = 16;

/// What the machine does for the device calls. The defaults are a machine
/// that can neither map nor give DMA memory.
pub trait DeviceHost {
    /// Maps `window` read-write as device memory at user address `va` of
    /// `task`.
    fn map_device(&mut self, _task: TaskId, _va: usize, _window: MemRange) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Takes `pages` zeroed, physically contiguous frames; returns the
    /// first one's address.
    fn dma_take(&mut self, _pages: usize) -> Result<u64, Error> {
        Err(Error::OutOfMemory)
    }
    /// Maps the frame `pa` read-write at user address `va` of `task`; on a
    /// refusal nothing new is mapped there.
    fn map_frame(&mut self, _task: TaskId, _va: usize, _pa: u64) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Removes the page at user address `va` of `task` (nothing happens
    /// where nothing is mapped).
    fn unmap_frame(&mut self, _task: TaskId, _va: usize) {}
    /// Returns `pages` frames from `pa` to the allocator (none of them may
    /// still be mapped anywhere).
    fn dma_free(&mut self, _pa: u64, _pages: usize) {}
    /// Stops the device at `window` (a virtio reset: status 0), so it
    /// neither reads nor writes memory any more.
    fn device_reset(&mut self, _window: MemRange) {}
}

/// One `dma_alloc` piece: its first frame, where the task sees it and its
/// length in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct DmaPiece {
    pa: u64,
    va: usize,
    pages: usize,
}

/// Bytes in one DMA page.
const DMA_PAGE: usize = 4096;

/// Takes `pages` frames from `host` and maps them at `va` of `task`. A
/// refusal part-way undoes exactly what was done, in reverse: each page
/// mapped (and the refused one) is unmapped, and only then do the frames
/// go back, so no freed frame stays reachable from the task.
fn map_dma(host: &mut dyn DeviceHost, task: TaskId, va: usize, pages: usize) -> Result<u64, Error> {
    let pa = host.dma_take(pages)?;
    for page in 0..pages {
        let at = va + page * DMA_PAGE;
        if let Err(e) = host.map_frame(task, at, pa + (page * DMA_PAGE) as u64) {
            for undo in (0..=page).rev() {
                host.unmap_frame(task, va + undo * DMA_PAGE);
            }
            host.dma_free(pa, pages);
            return Err(e);
        }
    }
    Ok(pa)
}

/// Unmaps `piece` from `task`, then returns its frames.
fn unmap_dma(host: &mut dyn DeviceHost, task: TaskId, piece: &DmaPiece) {
    for page in 0..piece.pages {
        host.unmap_frame(task, piece.va + page * DMA_PAGE);
    }
    host.dma_free(piece.pa, piece.pages);
}

/// What one task holds.
#[derive(Clone, Copy, Debug)]
struct TaskDevices {
    owner: Option<TaskId>,
    /// Bit `i`: window `i` is mapped.
    mapped: u8,
    dma_pages: usize,
    pieces: [DmaPiece; MAX_DMA_ALLOCS],
    piece_count: usize,
    /// The tick at which a sleeping task wakes.
    wake_at: Option<u64>,
}

impl TaskDevices {
    const EMPTY: TaskDevices = TaskDevices {
        owner: None,
        mapped: 0,
        dma_pages: 0,
        pieces: [DmaPiece {
            pa: 0,
            va: 0,
            pages: 0,
        }; MAX_DMA_ALLOCS],
        piece_count: 0,
        wake_at: None,
    };
}

/// Every task's device windows, DMA frames and sleep deadline, by task slot.
#[derive(Debug)]
pub struct DeviceGrants {
    /// The machine's virtio-mmio windows, by ascending address.
    windows: RangeList<MAX_DEVICE_WINDOWS>,
    /// The virtio device ID in each window (0: empty; read at boot).
    device_ids: [u32; MAX_DEVICE_WINDOWS],
    tasks: [TaskDevices; MAX_TASKS],
}

impl Default for DeviceGrants {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel's one table.
pub static GRANTS: spin::Mutex<DeviceGrants> = spin::Mutex::new(DeviceGrants::new());

impl DeviceGrants {
    /// Nobody holds anything.
    pub const fn new() -> Self {
        DeviceGrants {
            windows: RangeList::new(),
            device_ids: [0; MAX_DEVICE_WINDOWS],
            tasks: [TaskDevices::EMPTY; MAX_TASKS],
        }
    }

    /// Sets the windows tasks may map (the boot info's virtio-mmio
    /// windows), each with the virtio device ID `device_id` reads from it
    /// (0 for none); a window that overlaps `ram` (a malformed device tree)
    /// is left out, and never read, as is one that is not whole pages of
    /// at most one window's size, so an index then names no window.
    pub fn set_windows(
        &mut self,
        windows: &[MemRange],
        ram: &[MemRange],
        device_id: &mut dyn FnMut(u64) -> u32,
    ) {
        let page = DEVICE_WINDOW_SIZE as u64;
        let mut kept = RangeList::new();
        let mut ids = [0; MAX_DEVICE_WINDOWS];
        for w in windows {
            let usable = w.start % page == 0 && w.size > 0 && w.size <= page;
            if usable && !ram.iter().any(|r| r.overlaps(w)) {
                if let Some(id) = ids.get_mut(kept.as_slice().len()) {
                    *id = device_id(w.start);
                }
                // At most MAX_DEVICE_WINDOWS: the rest stay unused.
                let _ = kept.push(MemRange::new(w.start, page));
            }
        }
        self.windows = kept;
        self.device_ids = ids;
    }

    /// `task`'s record; a record left by an earlier task in the slot is
    /// forgotten (its frames were returned when that task died).
    fn entry(&mut self, task: TaskId) -> Result<&mut TaskDevices, Error> {
        let entry = self
            .tasks
            .get_mut(task.slot())
            .ok_or(Error::InvalidArgument)?;
        if entry.owner != Some(task) {
            *entry = TaskDevices {
                owner: Some(task),
                ..TaskDevices::EMPTY
            };
        }
        Ok(entry)
    }

    /// Maps window `index` into `task`, which may map devices of the
    /// virtio IDs in `classes` (bit `n`: ID `n`); returns its user address
    /// and size. `InvalidArgument` past the last window, `PermissionDenied`
    /// for a device of another class.
    pub fn device_map(
        &mut self,
        host: &mut dyn DeviceHost,
        task: TaskId,
        classes: u32,
        index: usize,
    ) -> Result<[usize; 3], Error> {
        let window = self
            .windows
            .as_slice()
            .get(index)
            .copied()
            .ok_or(Error::InvalidArgument)?;
        let id = self.device_ids.get(index).copied().unwrap_or(0);
        if id >= u32::BITS || classes & (1 << id) == 0 {
            return Err(Error::PermissionDenied);
        }
        let va = DEVICE_WINDOWS + index * DEVICE_WINDOW_SIZE;
        let entry = self.entry(task)?;
        let bit = 1u8 << index;
        if entry.mapped & bit == 0 {
            host.map_device(task, va, window)?;
            entry.mapped |= bit;
        }
        Ok([va, DEVICE_WINDOW_SIZE, 0])
    }

    /// Gives `task` `pages` contiguous zeroed frames; returns (va, pa).
    pub fn dma_alloc(
        &mut self,
        host: &mut dyn DeviceHost,
        task: TaskId,
        pages: usize,
    ) -> Result<[usize; 3], Error> {
        if pages == 0 || pages > MAX_DMA_PAGES {
            return Err(Error::InvalidArgument);
        }
        let entry = self.entry(task)?;
        if entry.dma_pages + pages > MAX_DMA_PAGES || entry.piece_count >= MAX_DMA_ALLOCS {
            return Err(Error::OutOfMemory);
        }
        let va = DMA_WINDOW + entry.dma_pages * DMA_PAGE;
        let pa = map_dma(host, task, va, pages)?;
        entry.pieces[entry.piece_count] = DmaPiece { pa, va, pages };
        entry.piece_count += 1;
        entry.dma_pages += pages;
        Ok([va, pa as usize, 0])
    }

    /// Records that `task` sleeps until tick `now + ticks`.
    pub fn sleep(&mut self, task: TaskId, ticks: usize, now: u64) -> Result<(), Error> {
        if ticks == 0 || ticks > MAX_SLEEP_TICKS {
            return Err(Error::InvalidArgument);
        }
        self.entry(task)?.wake_at = Some(now + ticks as u64);
        Ok(())
    }

    /// Takes the next task whose sleep has ended at tick `now`.
    pub fn take_due(&mut self, now: u64) -> Option<TaskId> {
        let entry = self
            .tasks
            .iter_mut()
            .find(|e| e.wake_at.is_some_and(|t| t <= now))?;
        entry.wake_at = None;
        entry.owner
    }

    /// Undoes everything `task` held: resets its devices, then unmaps and
    /// frees its DMA frames. Nothing happens for a task that held nothing.
    pub fn task_died(&mut self, host: &mut dyn DeviceHost, task: TaskId) {
        let Some(entry) = self.tasks.get_mut(task.slot()) else {
            return;
        };
        if entry.owner != Some(task) {
            return;
        }
        let held = core::mem::replace(entry, TaskDevices::EMPTY);
        for (i, window) in self.windows.as_slice().iter().enumerate() {
            if held.mapped & (1 << i) != 0 {
                host.device_reset(*window);
            }
        }
        for piece in &held.pieces[..held.piece_count] {
            unmap_dma(host, task, piece);
        }
    }

    /// DMA pages `task` holds now.
    pub fn dma_pages(&self, task: TaskId) -> usize {
        self.tasks
            .get(task.slot())
            .filter(|e| e.owner == Some(task))
            .map_or(0, |e| e.dma_pages)
    }
}

/// The device classes `task` may map; `PermissionDenied` without the
/// DEVICES right.
fn has_devices(objects: &KernelObjects, task: TaskId) -> Result<u32, Error> {
    let task = objects
        .tasks
        .get(task)
        .map_err(|_| Error::InvalidArgument)?;
    if task.kernel_rights().contains(KernelRights::DEVICES) {
        Ok(task.device_classes())
    } else {
        Err(Error::PermissionDenied)
    }
}

/// Runs `device_map`, `dma_alloc` or `sleep` for `current` at tick `now`
/// on `host` (`None`: a machine without devices); returns the result
/// registers and what the CPU does next.
pub fn run(
    grants: &mut DeviceGrants,
    objects: &mut KernelObjects,
    host: Option<&mut dyn DeviceHost>,
    current: TaskId,
    call: Sysno,
    args: [usize; 6],
    now: u64,
) -> Result<([usize; 3], Decision), Error> {
    match call {
        Sysno::Sleep => {
            grants.sleep(current, args[0], now)?;
            objects
                .sched
                .block(current, TaskState::Held)
                .map_err(|_| Error::KernelRefused)?;
            Ok(([0; 3], objects.sched.schedule()))
        }
        Sysno::DeviceMap | Sysno::DmaAlloc => {
            let classes = has_devices(objects, current)?;
            let host = host.ok_or(Error::KernelRefused)?;
            let values = if call == Sysno::DeviceMap {
                grants.device_map(host, current, classes, args[0])?
            } else {
                grants.dma_alloc(host, current, args[0])?
            };
            Ok((values, Decision::Continue))
        }
        _ => Err(Error::InvalidArgument),
    }
}

/// [`run`] on the machine, whose `current` gets the result.
pub fn dispatch<M: Machine>(
    grants: &mut DeviceGrants,
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    call: Sysno,
    args: [usize; 6],
    now: u64,
) -> Decision {
    match run(grants, objects, machine.devices(), current, call, args, now) {
        Ok((values, decision)) => {
            machine.set_result(current, OK, values);
            decision
        }
        Err(e) => {
            machine.set_result(current, status_of(e), [0; 3]);
            Decision::Continue
        }
    }
}

/// On each timer tick and idle wake-up: makes the tasks whose sleep ended
/// ready (their result was set when they went to sleep).
pub fn wake_sleepers(grants: &mut DeviceGrants, objects: &mut KernelObjects, now: u64) {
    while let Some(task) = grants.take_due(now) {
        if objects.sched.state(task) == Some(TaskState::Held) {
            // Held was checked: the task can be made ready.
            let _ = objects.sched.unblock(task);
        }
    }
}

#[cfg(test)]
#[path = "syscall_device_tests.rs"]
mod tests;
