//! The device calls as a task sees them: only the machine's virtio windows
//! map, DMA is bounded per task and comes back (after the devices are
//! reset) when the task dies, the DEVICES right is needed, and `sleep`
//! lets others run until its tick.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::obj::sched::Priority;
use crate::obj::task::ExitReason;

/// Two virtio windows (QEMU virt's first two), frames handed out from
/// 0x9000_0000 up, the DMA pages each task has mapped, and a log of what
/// was unmapped, reset and freed.
struct Board {
    next_frame: u64,
    mapped: Vec<(TaskId, usize, MemRange)>,
    /// Pages of each `dma_take`.
    dma: Vec<usize>,
    /// The tasks' DMA page tables: (task slot, user address) -> frame.
    table: BTreeMap<(usize, usize), u64>,
    /// `map_frame` calls that succeed before one is refused.
    maps_before_refusal: Option<usize>,
    /// Frames given back while a task could still reach them.
    freed_while_mapped: Vec<u64>,
    events: Vec<String>,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            next_frame: 0x9000_0000,
            mapped: Vec::new(),
            dma: Vec::new(),
            table: BTreeMap::new(),
            maps_before_refusal: None,
            freed_while_mapped: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl DeviceHost for Board {
    fn map_device(&mut self, task: TaskId, va: usize, window: MemRange) -> Result<(), Error> {
        self.mapped.push((task, va, window));
        Ok(())
    }
    fn dma_take(&mut self, pages: usize) -> Result<u64, Error> {
        let pa = self.next_frame;
        self.next_frame += pages as u64 * 4096;
        self.dma.push(pages);
        Ok(pa)
    }
    fn map_frame(&mut self, task: TaskId, va: usize, pa: u64) -> Result<(), Error> {
        match &mut self.maps_before_refusal {
            Some(0) => return Err(Error::OutOfMemory),
            Some(left) => *left -= 1,
            None => {}
        }
        self.table.insert((task.slot(), va), pa);
        Ok(())
    }
    fn unmap_frame(&mut self, task: TaskId, va: usize) {
        self.table.remove(&(task.slot(), va));
        self.events.push(format!("unmap {:#x}", va - DMA_WINDOW));
    }
    fn dma_free(&mut self, pa: u64, pages: usize) {
        let freed = pa..pa + pages as u64 * 4096;
        let reachable = self.table.values().filter(|f| freed.contains(f));
        self.freed_while_mapped.extend(reachable);
        self.events.push(format!("free {pa:#x} {pages}"));
    }
    fn device_reset(&mut self, window: MemRange) {
        self.events.push(format!("reset {:#x}", window.start));
    }
}

/// QEMU virt's first two virtio windows, and its RAM.
const WINDOWS: [MemRange; 2] = [
    MemRange::new(0x1000_1000, 0x1000),
    MemRange::new(0x1000_2000, 0x1000),
];
const RAM: [MemRange; 1] = [MemRange::new(0x8000_0000, 0x2000_0000)];
/// A console in the first window, a block device in the second.
const IDS: [u32; 2] = [3, 2];
/// Reads `ids` as the device IDs of [`WINDOWS`], by address.
fn ids(ids: &[u32]) -> impl FnMut(u64) -> u32 + '_ {
    move |window| {
        let index = WINDOWS.iter().position(|w| w.start == window).unwrap();
        ids[index]
    }
}

/// The classes `mgmt` may map: consoles and block devices.
const MGMT_CLASSES: u32 = 1 << 3 | 1 << 2;

struct World {
    last: BTreeMap<usize, (usize, [usize; 3])>,
    k: KernelObjects,
    m: Board,
    grants: DeviceGrants,
    mgmt: TaskId,
    other: TaskId,
}

/// `mgmt` (DEVICES, priority 1) runs; `other` (no rights, priority 1) is
/// ready behind it.
fn world() -> World {
    let mut k = KernelObjects::new();
    let mgmt = k.spawn("mgmt", Priority::new(1).unwrap()).unwrap();
    let other = k.spawn("other", Priority::new(1).unwrap()).unwrap();
    k.tasks
        .get_mut(mgmt)
        .unwrap()
        .set_kernel_rights(KernelRights::DEVICES);
    k.tasks
        .get_mut(mgmt)
        .unwrap()
        .set_device_classes(MGMT_CLASSES);
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(mgmt));
    let mut grants = DeviceGrants::new();
    grants.set_windows(&WINDOWS, &RAM, &mut ids(&IDS));
    World {
        last: Default::default(),
        k,
        m: Board::default(),
        grants,
        mgmt,
        other,
    }
}

impl World {
    /// Makes the call; the status and result registers are kept for
    /// [`World::result`].
    fn call(&mut self, task: TaskId, call: Sysno, a0: usize, now: u64) -> Decision {
        let args = [a0, 0, 0, 0, 0, 0];
        let host: &mut dyn DeviceHost = &mut self.m;
        let (status, values, decision) = match run(
            &mut self.grants,
            &mut self.k,
            Some(host),
            task,
            call,
            args,
            now,
        ) {
            Ok((values, decision)) => (OK, values, decision),
            Err(e) => (status_of(e), [0; 3], Decision::Continue),
        };
        self.last.insert(task.slot(), (status, values));
        decision
    }
    fn result(&self, task: TaskId) -> (usize, [usize; 3]) {
        self.last[&task.slot()]
    }
}

#[test]
fn a_virtio_window_maps_at_its_fixed_address_once() {
    let mut w = world();
    let mgmt = w.mgmt;
    w.call(mgmt, Sysno::DeviceMap, 1, 0);
    assert_eq!(w.result(mgmt), (OK, [DEVICE_WINDOWS + 4096, 4096, 0]));
    w.call(mgmt, Sysno::DeviceMap, 1, 0);
    assert_eq!(w.result(mgmt), (OK, [DEVICE_WINDOWS + 4096, 4096, 0]));
    assert_eq!(
        w.m.mapped,
        [(
            mgmt,
            DEVICE_WINDOWS + 4096,
            MemRange::new(0x1000_2000, 4096)
        )],
        "mapped once, the second window's registers"
    );
}

#[test]
fn only_the_machines_windows_map() {
    let mut w = world();
    let mgmt = w.mgmt;
    for index in [2, MAX_DEVICE_WINDOWS, usize::MAX] {
        w.call(mgmt, Sysno::DeviceMap, index, 0);
        assert_eq!(w.result(mgmt).0, status_of(Error::InvalidArgument));
    }
    assert!(w.m.mapped.is_empty());
}

#[test]
fn a_window_in_ram_or_not_whole_pages_is_never_offered() {
    let mut w = world();
    let mgmt = w.mgmt;
    let bad = [
        MemRange::new(0x8020_0000, 0x1000),
        MemRange::new(0x1000_1800, 0x1000),
        MemRange::new(0x1000_3000, 0x2000),
        MemRange::new(0x1000_4000, 0x1000),
    ];
    // The last (usable) window holds a console.
    w.grants.set_windows(&bad, &RAM, &mut |window| {
        assert_eq!(window, 0x1000_4000, "only a usable window is read");
        3
    });
    w.call(mgmt, Sysno::DeviceMap, 0, 0);
    assert_eq!(w.result(mgmt).0, OK);
    assert_eq!(w.m.mapped[0].2, MemRange::new(0x1000_4000, 0x1000));
    w.call(mgmt, Sysno::DeviceMap, 1, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::InvalidArgument));
}

#[test]
fn a_task_maps_only_the_device_classes_its_manifest_names() {
    let mut w = world();
    let mgmt = w.mgmt;
    // Consoles only: the block device in window 1 is refused, and so is
    // an empty window (device ID 0) unless class 0 is named.
    w.k.tasks.get_mut(mgmt).unwrap().set_device_classes(1 << 3);
    w.call(mgmt, Sysno::DeviceMap, 1, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::PermissionDenied));
    w.call(mgmt, Sysno::DeviceMap, 0, 0);
    assert_eq!(w.result(mgmt).0, OK);
    assert_eq!(w.m.mapped.len(), 1);
    w.grants.set_windows(&WINDOWS, &RAM, &mut ids(&[0, 3]));
    w.call(mgmt, Sysno::DeviceMap, 0, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::PermissionDenied));
    // A device ID past the mask's bits is nobody's class.
    w.grants.set_windows(&WINDOWS, &RAM, &mut ids(&[40, 3]));
    w.k.tasks
        .get_mut(mgmt)
        .unwrap()
        .set_device_classes(u32::MAX);
    w.call(mgmt, Sysno::DeviceMap, 0, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::PermissionDenied));
}

#[test]
fn a_task_without_the_devices_right_gets_nothing() {
    let mut w = world();
    let other = w.other;
    w.call(other, Sysno::DeviceMap, 0, 0);
    assert_eq!(w.result(other).0, status_of(Error::PermissionDenied));
    w.call(other, Sysno::DmaAlloc, 1, 0);
    assert_eq!(w.result(other).0, status_of(Error::PermissionDenied));
    assert!(w.m.mapped.is_empty() && w.m.dma.is_empty());
}

#[test]
fn dma_pieces_follow_each_other_in_the_window_up_to_the_limit() {
    let mut w = world();
    let mgmt = w.mgmt;
    w.call(mgmt, Sysno::DmaAlloc, 2, 0);
    assert_eq!(w.result(mgmt), (OK, [DMA_WINDOW, 0x9000_0000, 0]));
    w.call(mgmt, Sysno::DmaAlloc, 1, 0);
    assert_eq!(
        w.result(mgmt),
        (OK, [DMA_WINDOW + 2 * 4096, 0x9000_2000, 0])
    );
    // The rest of the limit in one piece is fine; one page more is not.
    w.call(mgmt, Sysno::DmaAlloc, MAX_DMA_PAGES - 3, 0);
    assert_eq!(w.result(mgmt).0, OK);
    w.call(mgmt, Sysno::DmaAlloc, 1, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::OutOfMemory));
    assert_eq!(w.grants.dma_pages(mgmt), MAX_DMA_PAGES);
    for pages in [0, MAX_DMA_PAGES + 1] {
        w.call(mgmt, Sysno::DmaAlloc, pages, 0);
        assert_eq!(w.result(mgmt).0, status_of(Error::InvalidArgument));
    }
}

#[test]
fn too_many_pieces_are_refused() {
    let mut w = world();
    let mgmt = w.mgmt;
    for _ in 0..MAX_DMA_ALLOCS {
        w.call(mgmt, Sysno::DmaAlloc, 1, 0);
        assert_eq!(w.result(mgmt).0, OK);
    }
    w.call(mgmt, Sysno::DmaAlloc, 1, 0);
    assert_eq!(w.result(mgmt).0, status_of(Error::OutOfMemory));
}

#[test]
fn a_dying_task_resets_its_devices_then_returns_its_frames() {
    let mut w = world();
    let mgmt = w.mgmt;
    w.call(mgmt, Sysno::DeviceMap, 1, 0);
    w.call(mgmt, Sysno::DmaAlloc, 2, 0);
    w.call(mgmt, Sysno::DmaAlloc, 3, 0);
    // What `syscall::kill` does with the kernel's table.
    w.grants.task_died(&mut w.m, mgmt);
    assert_eq!(
        w.m.events,
        [
            "reset 0x10002000",
            "unmap 0x0",
            "unmap 0x1000",
            "free 0x90000000 2",
            "unmap 0x2000",
            "unmap 0x3000",
            "unmap 0x4000",
            "free 0x90002000 3"
        ],
        "the device stops, then each piece leaves the task before it is freed"
    );
    assert!(w.m.table.is_empty() && w.m.freed_while_mapped.is_empty());
    assert_eq!(w.grants.dma_pages(mgmt), 0);
    // A second death report (or another task's) frees nothing twice.
    w.grants.task_died(&mut w.m, mgmt);
    w.grants.task_died(&mut w.m, w.other);
    assert_eq!(w.m.events.len(), 8);
}

#[test]
fn a_mapping_refused_part_way_is_undone_before_the_frames_go_back() {
    for mapped in 0..4 {
        let mut w = world();
        let mgmt = w.mgmt;
        w.m.maps_before_refusal = Some(mapped);
        w.call(mgmt, Sysno::DmaAlloc, 4, 0);
        assert_eq!(w.result(mgmt).0, status_of(Error::OutOfMemory));
        // Every page mapped, and the refused one, leave in reverse; then
        // the frames are freed once, none of them still reachable.
        let mut undo: Vec<String> = (0..=mapped)
            .rev()
            .map(|page| format!("unmap {:#x}", page * 4096))
            .collect();
        undo.push("free 0x90000000 4".into());
        assert_eq!(w.m.events, undo, "refused after {mapped} page(s)");
        assert!(w.m.table.is_empty(), "{:?} left mapped", w.m.table);
        assert!(w.m.freed_while_mapped.is_empty());
        // Nothing is held: the whole limit and the window's start remain.
        assert_eq!(w.grants.dma_pages(mgmt), 0);
        w.m.maps_before_refusal = None;
        w.call(mgmt, Sysno::DmaAlloc, MAX_DMA_PAGES, 0);
        assert_eq!(w.result(mgmt), (OK, [DMA_WINDOW, 0x9000_4000, 0]));
        // And its death frees only what it holds now.
        w.m.events.clear();
        w.grants.task_died(&mut w.m, mgmt);
        assert_eq!(
            w.m.events.last().map(String::as_str),
            Some(format!("free 0x90004000 {MAX_DMA_PAGES}").as_str())
        );
        assert!(w.m.table.is_empty() && w.m.freed_while_mapped.is_empty());
    }
}

#[test]
fn a_new_task_in_the_slot_starts_with_the_whole_limit() {
    let mut w = world();
    let mgmt = w.mgmt;
    w.call(mgmt, Sysno::DmaAlloc, MAX_DMA_PAGES, 0);
    w.k.kill(mgmt, ExitReason::Exited { code: 1 }).unwrap();
    w.grants.task_died(&mut w.m, mgmt);
    w.k.reap(mgmt).unwrap();
    let again = w.k.spawn("mgmt", Priority::new(1).unwrap()).unwrap();
    assert_eq!(again.slot(), mgmt.slot());
    w.k.tasks
        .get_mut(again)
        .unwrap()
        .set_kernel_rights(KernelRights::DEVICES);
    w.call(again, Sysno::DmaAlloc, MAX_DMA_PAGES, 0);
    assert_eq!(w.result(again), (OK, [DMA_WINDOW, 0x9004_0000, 0]));
}

#[test]
fn a_sleeper_lets_others_run_until_its_tick() {
    let mut w = world();
    let (mgmt, other) = (w.mgmt, w.other);
    assert_eq!(w.call(mgmt, Sysno::Sleep, 3, 10), Decision::SwitchTo(other));
    assert_eq!(w.result(mgmt), (OK, [0; 3]));
    wake_sleepers(&mut w.grants, &mut w.k, 12);
    assert_eq!(w.k.sched.state(mgmt), Some(TaskState::Held));
    wake_sleepers(&mut w.grants, &mut w.k, 13);
    assert_eq!(w.k.sched.state(mgmt), Some(TaskState::Ready));
    for ticks in [0, MAX_SLEEP_TICKS + 1] {
        w.call(other, Sysno::Sleep, ticks, 20);
        assert_eq!(w.result(other).0, status_of(Error::InvalidArgument));
    }
}
