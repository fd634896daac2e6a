//! VM objects as the scheduler and the ioreq service see them: per VM
//! number its lifecycle phase, its vCPU (a kernel thread in the task table,
//! scheduled below every service) and why that vCPU is held, the task that
//! serves the VM's I/O requests, and per task the VMs with I/O pending.
//!
//! Pure logic over [`KernelObjects`]; the arch layer owns guest RAM, tables
//! and registers and calls these functions around what it does. A vCPU runs
//! exactly when its VM is running, it waits for no I/O request and it is not
//! asleep in `wfi`; [`sync`] keeps the scheduler's view equal to that rule.

use ipc::Error;
use ipc::syscall::MAX_VMS;

use crate::obj::MAX_TASKS;
use crate::obj::endpoint::Wait;
use crate::obj::ids::TaskId;
use crate::obj::objects::KernelObjects;
use crate::obj::sched::{Decision, Priority, TaskState};
use crate::vm::tlb_tag::{TlbTag, TlbTags};

/// vCPUs run below every service (services use priorities 1 and up).
pub const VCPU_PRIORITY: Priority = Priority::LOWEST;

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Made (or reset): RAM, tables and vCPU exist; it has not started.
    Created,
    /// Its vCPU may run.
    Running,
    /// Held by `vm_pause`.
    Paused,
    /// The guest powered off or was stopped by the kernel; reset or destroy.
    Ended,
}

/// One VM's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmRecord {
    /// Its phase.
    pub phase: Phase,
    /// Its vCPU's scheduler entity.
    pub vcpu: TaskId,
    /// The vCPU waits for its ioreq slot to be completed.
    pub io_wait: bool,
    /// The vCPU sleeps in `wfi` until this time (timer ticks).
    pub asleep_until: Option<u64>,
    /// The task that attached to its ioreq page.
    pub ioreq_task: Option<TaskId>,
    /// The task that created it (the vm-manager): told when the guest
    /// ends itself or the kernel stops it.
    pub controller: Option<TaskId>,
    /// The TLB tag (VMID, ASID, VPID) its translations carry, held until
    /// it is destroyed; 0 when untagged.
    pub tag: u16,
    /// The endpoints (bit `n` = endpoint `n`) whose servers may read and
    /// write its RAM (`vm_grant_ram`): device models. Ends with a reset.
    pub ram_grant: u64,
}

/// Every VM, and the ioreq work pending per task.
#[derive(Clone, Debug)]
pub struct VmTable {
    vms: [Option<VmRecord>; MAX_VMS],
    /// Per task slot: bit `vm` = that VM has an I/O request for the task.
    pending: [u64; MAX_TASKS],
    /// Per task slot: the VM whose vCPU it is ([`NO_VM`] for none), so the
    /// run loop finds a vCPU's VM without scanning every VM.
    vm_of_task: [u8; MAX_TASKS],
    /// The TLB tags: each VM's own while it exists.
    tags: TlbTags,
}

/// `vm_of_task` for a task that is no vCPU.
const NO_VM: u8 = u8::MAX;
const _: () = assert!(MAX_VMS < NO_VM as usize, "VM numbers fit below NO_VM");

impl Default for VmTable {
    fn default() -> Self {
        Self::new()
    }
}

impl VmTable {
    /// No VMs.
    pub const fn new() -> Self {
        VmTable {
            vms: [None; MAX_VMS],
            pending: [0; MAX_TASKS],
            vm_of_task: [NO_VM; MAX_TASKS],
            tags: TlbTags::new(),
        }
    }

    /// VM `vm`'s record; `Error::UnknownVm` if there is none.
    pub fn get(&self, vm: usize) -> Result<VmRecord, Error> {
        self.vms.get(vm).copied().flatten().ok_or(Error::UnknownVm)
    }

    fn get_mut(&mut self, vm: usize) -> Result<&mut VmRecord, Error> {
        self.vms
            .get_mut(vm)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownVm)
    }

    /// The VM whose vCPU is `task`, if it is one.
    pub fn vm_of_vcpu(&self, task: TaskId) -> Option<usize> {
        let vm = usize::from(*self.vm_of_task.get(task.slot())?);
        // The record must still name this very task (not a stale id).
        self.vms
            .get(vm)?
            .as_ref()
            .filter(|r| r.vcpu == task)
            .map(|_| vm)
    }

    /// Whether `task` has ioreq work pending.
    pub fn has_pending(&self, task: TaskId) -> bool {
        self.pending.get(task.slot()).is_some_and(|&bits| bits != 0)
    }

    /// The VMs that exist, by number.
    pub fn numbers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_VMS).filter(|&vm| self.vms[vm].is_some())
    }

    /// The TLB tags, as the VMs hold them.
    pub fn tags(&self) -> &TlbTags {
        &self.tags
    }

    /// Hands out at most `count` TLB tags from now on (the boot option).
    pub fn limit_tags(&mut self, count: u16) {
        self.tags.limit(count);
    }

    /// A TLB tag for a VM about to be made, on hardware with tags
    /// `1..=hardware_max` (0: none, and the VM is untagged): the lowest
    /// tag no VM holds. `Error::KernelRefused` (nothing taken) when every
    /// tag is held: a new VM never shares a tag with a live one. The tag
    /// is the new VM's once [`adopt_tag`] records it, or goes back with
    /// [`VmTable::return_tag`] if the VM is not made.
    pub fn take_tag(&mut self, hardware_max: u16) -> Result<TlbTag, Error> {
        self.tags.set_hardware_max(hardware_max);
        self.tags.alloc().map_err(|_| Error::KernelRefused)
    }

    /// Gives back a tag from [`VmTable::take_tag`] that no VM adopted.
    pub fn return_tag(&mut self, tag: TlbTag) {
        self.tags.free(tag.id);
    }
}

/// Records VM `vm` (below `MAX_VMS`, not in use) with a held vCPU.
pub fn create(objects: &mut KernelObjects, vm: usize) -> Result<TaskId, Error> {
    if vm >= MAX_VMS {
        return Err(Error::InvalidArgument);
    }
    if objects.vms.vms[vm].is_some() {
        return Err(Error::VmExists);
    }
    let mut name = [0u8; 4];
    let name = super::numbered_name(vm, &mut name);
    let vcpu = objects
        .spawn(name, VCPU_PRIORITY)
        .map_err(|_| Error::OutOfMemory)?;
    objects.vms.vms[vm] = Some(VmRecord {
        phase: Phase::Created,
        vcpu,
        io_wait: false,
        asleep_until: None,
        ioreq_task: None,
        controller: None,
        tag: 0,
        ram_grant: 0,
    });
    if let (Some(entry), Ok(number)) = (
        objects.vms.vm_of_task.get_mut(vcpu.slot()),
        u8::try_from(vm),
    ) {
        *entry = number;
    }
    sync(objects, vm);
    Ok(vcpu)
}

fn transition(objects: &mut KernelObjects, vm: usize, from: Phase, to: Phase) -> Result<(), Error> {
    let record = objects.vms.get_mut(vm)?;
    if record.phase != from {
        return Err(Error::InvalidArgument);
    }
    record.phase = to;
    sync(objects, vm);
    Ok(())
}

/// Checks that `vm` can start (it is freshly created or reset).
pub fn check_start(objects: &KernelObjects, vm: usize) -> Result<(), Error> {
    match objects.vms.get(vm)?.phase {
        Phase::Created => Ok(()),
        _ => Err(Error::InvalidArgument),
    }
}

/// Created -> Running: the vCPU becomes ready.
pub fn start(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Created, Phase::Running)
}

/// Running -> Paused: the vCPU is held (an I/O request stays in flight).
pub fn pause(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Running, Phase::Paused)
}

/// Paused -> Running.
pub fn resume(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Paused, Phase::Running)
}

/// Any phase -> Created: the vCPU is held and any I/O request is dropped.
pub fn reset(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    let record = objects.vms.get_mut(vm)?;
    record.phase = Phase::Created;
    record.io_wait = false;
    record.asleep_until = None;
    record.ram_grant = 0;
    let server = record.ioreq_task;
    clear_pending(objects, server, vm);
    sync(objects, vm);
    Ok(())
}

/// `vm` holds `tag` (from [`VmTable::take_tag`]) until it is destroyed.
pub fn adopt_tag(objects: &mut KernelObjects, vm: usize, tag: TlbTag) -> Result<(), Error> {
    objects.vms.get_mut(vm)?.tag = tag.id;
    Ok(())
}

/// The servers of the endpoints in `endpoints` (bit `n` = endpoint `n`)
/// may read and write `vm`'s RAM until the next reset (0: nobody may).
pub fn grant_ram(objects: &mut KernelObjects, vm: usize, endpoints: u64) -> Result<(), Error> {
    objects.vms.get_mut(vm)?.ram_grant = endpoints;
    Ok(())
}

/// `task` (the VM's creator) is told when `vm` ends.
pub fn set_controller(objects: &mut KernelObjects, vm: usize, task: TaskId) -> Result<(), Error> {
    objects.vms.get_mut(vm)?.controller = Some(task);
    Ok(())
}

/// The guest ended itself, or the kernel stopped it: its vCPU never runs
/// again until a reset. Its controller learns of it as of an ioreq wake-up
/// (bit `vm`); if it waits in `recv`, it is woken and the bits it takes
/// are returned for the caller to deliver.
pub fn ended(objects: &mut KernelObjects, vm: usize) -> Option<(TaskId, u64)> {
    let record = objects.vms.get_mut(vm).ok()?;
    record.phase = Phase::Ended;
    record.io_wait = false;
    let controller = record.controller;
    sync(objects, vm);
    upcall(objects, controller?, vm)
}

/// Forgets `vm` from any phase (even with its vCPU waiting for I/O); its
/// vCPU thread leaves the scheduler and its TLB tag goes back to the pool
/// (the next VM to get it flushes it first). Returns the task that had its
/// ioreq page mapped, so the arch layer can unmap it.
pub fn destroy(objects: &mut KernelObjects, vm: usize) -> Result<Option<TaskId>, Error> {
    let record = objects.vms.get(vm)?;
    clear_pending(objects, record.ioreq_task, vm);
    objects
        .retire(record.vcpu)
        .map_err(|_| Error::KernelRefused)?;
    objects.vms.vms[vm] = None;
    objects.vms.tags.free(record.tag);
    if let Some(entry) = objects.vms.vm_of_task.get_mut(record.vcpu.slot()) {
        *entry = NO_VM;
    }
    Ok(record.ioreq_task)
}

/// `task` serves `vm`'s I/O requests from now on; returns the task that
/// served them before. A request already waiting is pending for `task`.
pub fn attach(
    objects: &mut KernelObjects,
    vm: usize,
    task: TaskId,
) -> Result<Option<TaskId>, Error> {
    let record = objects.vms.get_mut(vm)?;
    let previous = record.ioreq_task.replace(task);
    let waiting = record.io_wait;
    clear_pending(objects, previous, vm);
    if waiting {
        set_pending(objects, task, vm);
    }
    Ok(previous)
}

/// The running vCPU of `vm` trapped on a device access and its slot is
/// PENDING: it is held, and the VM's ioreq task learns of it. If that task
/// waits in `recv`, it is woken and the bits it takes are returned (the
/// caller delivers them as its result: len 0, `IOREQ_BADGE`, bits).
pub fn io_exit(objects: &mut KernelObjects, vm: usize) -> Option<(TaskId, u64)> {
    let record = objects.vms.get_mut(vm).ok()?;
    record.io_wait = true;
    let server = record.ioreq_task;
    sync(objects, vm);
    upcall(objects, server?, vm)
}

/// `vm`'s vCPU posted writes since its ioreq task last heard, and left the
/// CPU for another reason than a slot: the task learns of the ring. Its
/// bit is set; if it waits in `recv` it is made ready (not switched to:
/// it runs when the scheduler next decides, which the caller is about to
/// ask) and the bits it takes are returned (the caller delivers them).
pub fn posted(objects: &mut KernelObjects, vm: usize) -> Option<(TaskId, u64)> {
    let server = objects.vms.get(vm).ok()?.ioreq_task?;
    upcall(objects, server, vm)
}

/// The plain case of [`io_exit`], as a direct switch: the running vCPU of
/// `vm` trapped on a device access, its slot is PENDING, the VM's ioreq
/// task waits in `recv` and nothing at its priority or above is ready: the
/// vCPU is held and the task runs at once, on its own slice, with no pass
/// over the ready queues (`Scheduler::wake_direct`). Returns the task, the
/// bits it takes (the caller delivers them) and what runs next; `None`,
/// with nothing changed, otherwise (then [`io_exit`] applies).
#[inline]
pub fn io_exit_direct(objects: &mut KernelObjects, vm: usize) -> Option<(TaskId, u64, Decision)> {
    let record = objects.vms.get(vm).ok()?;
    let server = record.ioreq_task?;
    if record.phase != Phase::Running
        || objects.sched.current() != Some(record.vcpu)
        || objects.sched.state(server) != Some(TaskState::BlockedRecv)
        || objects.endpoints.waiting(server) != Some(Wait::Recv)
    {
        return None;
    }
    objects
        .sched
        .wake_direct(record.vcpu, TaskState::Held, server)?;
    let decision = Decision::SwitchTo(server);
    objects.endpoints.cancel_recv(server);
    if let Ok(record) = objects.vms.get_mut(vm) {
        record.io_wait = true;
    }
    let pending = objects.vms.pending.get_mut(server.slot())?;
    let bits = core::mem::take(pending) | 1 << vm;
    Some((server, bits, decision))
}

/// Whether `task` may resume `vm`'s vCPU `vcpu` ([`check_resume`]) and
/// the vCPU, held for its I/O, may run as soon as the I/O is resumed (the
/// VM runs and the vCPU is not asleep); the vCPU's task if so.
#[inline]
pub fn resumes_plainly(
    objects: &KernelObjects,
    vm: usize,
    vcpu: usize,
    task: TaskId,
) -> Option<TaskId> {
    let record = objects.vms.vms.get(vm)?.as_ref()?;
    (record.ioreq_task == Some(task)
        && vcpu == 0
        && record.io_wait
        && record.phase == Phase::Running
        && record.asleep_until.is_none()
        && objects.sched.state(record.vcpu) == Some(TaskState::Held))
    .then_some(record.vcpu)
}

/// [`io_resumed`] without the scheduler step: the caller has checked
/// [`resumes_plainly`] and hands the CPU to the vCPU itself.
#[inline]
pub fn io_resumed_plain(objects: &mut KernelObjects, vm: usize) {
    if let Ok(record) = objects.vms.get_mut(vm) {
        record.io_wait = false;
    }
}

/// Checks an `ioreq_resume` of `vm`'s vCPU `vcpu` by `task` before the
/// arch layer reads the slot.
pub fn check_resume(
    objects: &KernelObjects,
    vm: usize,
    vcpu: usize,
    task: TaskId,
) -> Result<(), Error> {
    let record = objects.vms.get(vm)?;
    if record.ioreq_task != Some(task) {
        return Err(Error::PermissionDenied);
    }
    if vcpu != 0 {
        return Err(Error::InvalidArgument);
    }
    if !record.io_wait {
        return Err(Error::BadSlotState);
    }
    Ok(())
}

/// The arch layer took `vm`'s completion: its vCPU may run again.
pub fn io_resumed(objects: &mut KernelObjects, vm: usize) {
    if let Ok(record) = objects.vms.get_mut(vm) {
        record.io_wait = false;
        sync(objects, vm);
    }
}

/// The running vCPU of `vm` executed `wfi` with its timer due at `until`.
pub fn sleep(objects: &mut KernelObjects, vm: usize, until: u64) {
    if let Ok(record) = objects.vms.get_mut(vm) {
        record.asleep_until = Some(until);
        sync(objects, vm);
    }
}

/// `vm`'s external interrupt was raised: a vCPU asleep in `wfi` wakes now
/// (the guest takes the interrupt, or sleeps again on its next `wfi`).
pub fn interrupt(objects: &mut KernelObjects, vm: usize) {
    if let Ok(record) = objects.vms.get_mut(vm)
        && record.asleep_until.take().is_some()
    {
        sync(objects, vm);
    }
}

/// Checks a RAM copy from `src` to `dst`: two different VMs, neither of
/// them running (`src` is held so its RAM does not change under the copy;
/// `dst` is created, paused or ended).
pub fn check_clone(objects: &KernelObjects, src: usize, dst: usize) -> Result<(), Error> {
    let (from, to) = (objects.vms.get(src)?, objects.vms.get(dst)?);
    if src == dst || from.phase == Phase::Running || to.phase == Phase::Running {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// Wakes every vCPU whose `wfi` deadline is at or before `now`.
pub fn wake_sleepers(objects: &mut KernelObjects, now: u64) {
    for vm in 0..MAX_VMS {
        if let Some(record) = objects.vms.vms[vm].as_mut()
            && record.asleep_until.is_some_and(|t| t <= now)
        {
            record.asleep_until = None;
            sync(objects, vm);
        }
    }
}

/// The earliest `wfi` deadline of any sleeping vCPU.
pub fn next_wakeup(objects: &KernelObjects) -> Option<u64> {
    objects
        .vms
        .vms
        .iter()
        .flatten()
        .filter_map(|r| r.asleep_until)
        .min()
}

/// Takes and clears `task`'s pending ioreq bits (for a `recv` that returns
/// at once); `None` if there are none.
pub fn take_pending(objects: &mut KernelObjects, task: TaskId) -> Option<u64> {
    let bits = objects.vms.pending.get_mut(task.slot())?;
    (*bits != 0).then(|| core::mem::take(bits))
}

fn set_pending(objects: &mut KernelObjects, task: TaskId, vm: usize) {
    if objects
        .tasks
        .get(task)
        .is_ok_and(|t| t.exit_reason().is_none())
        && let Some(bits) = objects.vms.pending.get_mut(task.slot())
    {
        *bits |= 1 << vm;
    }
}

/// Sets `vm`'s bit for `task`; if it waits in `recv`, wakes it and returns
/// the bits it takes (the caller delivers them).
fn upcall(objects: &mut KernelObjects, task: TaskId, vm: usize) -> Option<(TaskId, u64)> {
    set_pending(objects, task, vm);
    wake_receiver(objects, task).map(|bits| (task, bits))
}

fn clear_pending(objects: &mut KernelObjects, task: Option<TaskId>, vm: usize) {
    if let Some(bits) = task.and_then(|t| objects.vms.pending.get_mut(t.slot())) {
        *bits &= !(1 << vm);
    }
}

/// If `task` waits in `recv` and has pending bits: takes it off the
/// endpoint, makes it ready and returns the bits it takes.
fn wake_receiver(objects: &mut KernelObjects, task: TaskId) -> Option<u64> {
    if objects.sched.state(task) != Some(TaskState::BlockedRecv)
        || objects.endpoints.waiting(task) != Some(Wait::Recv)
    {
        return None;
    }
    let bits = take_pending(objects, task)?;
    objects.endpoints.cancel_recv(task);
    objects.sched.unblock(task).ok()?;
    Some(bits)
}

/// Makes the scheduler's state of `vm`'s vCPU match the rule: ready or
/// running exactly when the VM runs, waits for no I/O and is awake.
pub fn sync(objects: &mut KernelObjects, vm: usize) {
    let Ok(record) = objects.vms.get(vm) else {
        return;
    };
    let runnable =
        record.phase == Phase::Running && !record.io_wait && record.asleep_until.is_none();
    match objects.sched.state(record.vcpu) {
        Some(TaskState::Held) if runnable => {
            let _ = objects.sched.unblock_boosted(record.vcpu);
        }
        Some(TaskState::Ready | TaskState::Running) if !runnable => {
            let _ = objects.sched.block(record.vcpu, TaskState::Held);
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ioreq_fast_tests.rs"]
mod ioreq_fast_tests;
