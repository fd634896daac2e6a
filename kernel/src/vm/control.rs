//! VM objects as the scheduler and the ioreq service see them: per VM
//! number its lifecycle phase, its vCPUs (each a kernel thread in the task
//! table, scheduled below every service) and why each is held, the task
//! that serves the VM's I/O requests, and per task the VMs with I/O
//! pending.
//!
//! Pure logic over [`KernelObjects`]; the arch layer owns guest RAM, tables
//! and registers and calls these functions around what it does. A vCPU runs
//! exactly when its VM is running, it is started (SBI HSM: vCPU 0 from the
//! VM's start, the others when the guest starts them), it waits for no I/O
//! request and it is not asleep in `wfi`; [`sync`] keeps the scheduler's
//! view equal to that rule.

use ipc::Error;
use ipc::syscall::{MAX_VCPUS, MAX_VMS};

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

/// One vCPU's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuRecord {
    /// Its scheduler entity.
    pub task: TaskId,
    /// It waits for its ioreq slot to be completed.
    pub io_wait: bool,
    /// It sleeps in `wfi` until this time (timer ticks).
    pub asleep_until: Option<u64>,
    /// It is stopped (SBI HSM): it waits for another vCPU to start it.
    pub stopped: bool,
    /// Where its access stands with a client (`ioreq_forward`).
    pub forward: Forward,
}

/// A vCPU's access and `ioreq_forward`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Not forwarded: the ioreq service completes it.
    None,
    /// Forwarded to this client task: its reply completes it.
    To(TaskId),
    /// Handed back once (the client died or answered other than
    /// plainly): the service completes it, and may not forward it again.
    HandedBack,
}

impl VcpuRecord {
    /// Whether it may run while its VM runs.
    fn runnable(&self) -> bool {
        !self.io_wait && self.asleep_until.is_none() && !self.stopped
    }
}

/// One VM's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmRecord {
    /// Its phase.
    pub phase: Phase,
    /// Its vCPUs, `vcpu_records[..vcpus]`.
    vcpu_records: [VcpuRecord; MAX_VCPUS],
    /// How many vCPUs it has (1 to [`MAX_VCPUS`]).
    vcpus: u8,
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

impl VmRecord {
    /// Its vCPUs, by index.
    pub fn vcpus(&self) -> &[VcpuRecord] {
        &self.vcpu_records[..usize::from(self.vcpus)]
    }

    fn vcpus_mut(&mut self) -> &mut [VcpuRecord] {
        &mut self.vcpu_records[..usize::from(self.vcpus)]
    }

    /// vCPU `vcpu`'s record.
    pub fn vcpu(&self, vcpu: usize) -> Option<&VcpuRecord> {
        self.vcpus().get(vcpu)
    }

    fn vcpu_mut(&mut self, vcpu: usize) -> Option<&mut VcpuRecord> {
        self.vcpus_mut().get_mut(vcpu)
    }

    /// Whether any of its vCPUs waits for an I/O completion.
    pub fn io_waiting(&self) -> bool {
        self.vcpus().iter().any(|v| v.io_wait)
    }
}

/// Every VM, and the ioreq work pending per task.
#[derive(Clone, Debug)]
pub struct VmTable {
    vms: [Option<VmRecord>; MAX_VMS],
    /// Per task slot: bit `vm` = that VM has an I/O request for the task.
    pending: [u64; MAX_TASKS],
    /// Per task slot: the VM whose vCPU it is ([`NO_VM`] for none) and
    /// the vCPU's index, so the run loop finds a vCPU's VM without
    /// scanning every VM.
    vm_of_task: [(u8, u8); MAX_TASKS],
    /// Per task slot: the VM and vCPU whose access the ioreq service
    /// forwarded to that task, while its reply is owed ([`Forward::To`]
    /// in the vCPU's record says the same).
    forwards: [Option<(u8, u8)>; MAX_TASKS],
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
            vm_of_task: [(NO_VM, 0); MAX_TASKS],
            forwards: [None; MAX_TASKS],
            tags: TlbTags::new(),
        }
    }

    /// VM `vm`'s record; `Error::UnknownVm` if there is none.
    pub fn get(&self, vm: usize) -> Result<&VmRecord, Error> {
        self.vms
            .get(vm)
            .and_then(Option::as_ref)
            .ok_or(Error::UnknownVm)
    }

    fn get_mut(&mut self, vm: usize) -> Result<&mut VmRecord, Error> {
        self.vms
            .get_mut(vm)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownVm)
    }

    /// The VM and the vCPU index whose vCPU is `task`, if it is one.
    #[inline]
    pub fn vcpu_of_task(&self, task: TaskId) -> Option<(usize, usize)> {
        let (vm, vcpu) = *self.vm_of_task.get(task.slot())?;
        let (vm, vcpu) = (usize::from(vm), usize::from(vcpu));
        // The record must still name this very task (not a stale id).
        self.vms
            .get(vm)?
            .as_ref()
            .filter(|r| r.vcpu(vcpu).is_some_and(|v| v.task == task))
            .map(|_| (vm, vcpu))
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

/// The task name of VM `vm`'s vCPU `vcpu`: `vm3` for vCPU 0, `vm3.1`
/// for the others.
fn vcpu_name(vm: usize, vcpu: usize, buf: &mut [u8; 8]) -> &str {
    let mut number = [0u8; 4];
    let base = super::numbered_name(vm, &mut number).as_bytes();
    let mut len = base.len();
    buf[..len].copy_from_slice(base);
    if vcpu > 0 {
        buf[len] = b'.';
        // At most MAX_VCPUS - 1 = 7: one digit.
        buf[len + 1] = b"0123456789"[vcpu % 10];
        len += 2;
    }
    core::str::from_utf8(&buf[..len]).unwrap_or("vm")
}

/// Records VM `vm` (below `MAX_VMS`, not in use) with `vcpus` held vCPUs
/// (1 to [`MAX_VCPUS`]); returns vCPU 0's task. Nothing is kept if a vCPU
/// cannot get a task.
pub fn create(objects: &mut KernelObjects, vm: usize, vcpus: usize) -> Result<TaskId, Error> {
    let count = u8::try_from(vcpus).map_err(|_| Error::InvalidArgument)?;
    if vm >= MAX_VMS || vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(Error::InvalidArgument);
    }
    if objects.vms.vms[vm].is_some() {
        return Err(Error::VmExists);
    }
    let mut tasks = [None; MAX_VCPUS];
    for index in 0..vcpus {
        let mut name = [0u8; 8];
        match objects.spawn(vcpu_name(vm, index, &mut name), VCPU_PRIORITY) {
            Ok(task) => tasks[index] = Some(task),
            Err(_) => {
                for task in tasks.iter().flatten() {
                    let _ = objects.retire(*task);
                }
                return Err(Error::OutOfMemory);
            }
        }
    }
    let Some(first) = tasks[0] else {
        return Err(Error::OutOfMemory);
    };
    // Entries past `vcpus` are never read; they hold vCPU 0's task.
    let mut records = [VcpuRecord {
        task: first,
        io_wait: false,
        asleep_until: None,
        stopped: true,
        forward: Forward::None,
    }; MAX_VCPUS];
    for (index, (record, task)) in records.iter_mut().zip(tasks).enumerate() {
        let Some(task) = task else { break };
        record.task = task;
        record.stopped = index != 0;
        if let (Some(entry), Ok(vm), Ok(vcpu)) = (
            objects.vms.vm_of_task.get_mut(task.slot()),
            u8::try_from(vm),
            u8::try_from(index),
        ) {
            *entry = (vm, vcpu);
        }
    }
    objects.vms.vms[vm] = Some(VmRecord {
        phase: Phase::Created,
        vcpu_records: records,
        vcpus: count,
        ioreq_task: None,
        controller: None,
        tag: 0,
        ram_grant: 0,
    });
    sync(objects, vm);
    Ok(first)
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

/// Created -> Running: its started vCPUs (vCPU 0) become ready.
pub fn start(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Created, Phase::Running)
}

/// Running -> Paused: every vCPU is held (I/O requests stay in flight).
pub fn pause(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Running, Phase::Paused)
}

/// Paused -> Running.
pub fn resume(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    transition(objects, vm, Phase::Paused, Phase::Running)
}

/// Any phase -> Created: every vCPU is held, any I/O request is dropped,
/// and only vCPU 0 will run at the next start.
pub fn reset(objects: &mut KernelObjects, vm: usize) -> Result<(), Error> {
    let record = objects.vms.get_mut(vm)?;
    record.phase = Phase::Created;
    for (index, vcpu) in record.vcpus_mut().iter_mut().enumerate() {
        vcpu.io_wait = false;
        vcpu.asleep_until = None;
        vcpu.stopped = index != 0;
        vcpu.forward = Forward::None;
    }
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

/// The guest ended itself, or the kernel stopped it: none of its vCPUs
/// runs again until a reset. Its controller learns of it as of an ioreq wake-up
/// (bit `vm`); if it waits in `recv`, it is woken and the bits it takes
/// are returned for the caller to deliver.
pub fn ended(objects: &mut KernelObjects, vm: usize) -> Option<(TaskId, u64)> {
    let record = objects.vms.get_mut(vm).ok()?;
    record.phase = Phase::Ended;
    for vcpu in record.vcpus_mut() {
        vcpu.io_wait = false;
        vcpu.forward = Forward::None;
    }
    let controller = record.controller;
    sync(objects, vm);
    upcall(objects, controller?, vm)
}

/// Forgets `vm` from any phase (even with vCPUs waiting for I/O); its
/// vCPU threads leave the scheduler and its TLB tag goes back to the pool
/// (the next VM to get it flushes it first). Returns the task that had its
/// ioreq page mapped, so the arch layer can unmap it.
pub fn destroy(objects: &mut KernelObjects, vm: usize) -> Result<Option<TaskId>, Error> {
    let record = *objects.vms.get(vm)?;
    clear_pending(objects, record.ioreq_task, vm);
    for vcpu in record.vcpus() {
        objects
            .retire(vcpu.task)
            .map_err(|_| Error::KernelRefused)?;
        if let Some(entry) = objects.vms.vm_of_task.get_mut(vcpu.task.slot()) {
            *entry = (NO_VM, 0);
        }
    }
    objects.vms.vms[vm] = None;
    objects.vms.tags.free(record.tag);
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
    let waiting = record.io_waiting();
    clear_pending(objects, previous, vm);
    if waiting {
        set_pending(objects, task, vm);
    }
    Ok(previous)
}

/// The running vCPU `vcpu` of `vm` trapped on a device access and its
/// slot is PENDING: it is held, and the VM's ioreq task learns of it. If
/// that task waits in `recv`, it is woken and the bits it takes are
/// returned (the caller delivers them as its result: len 0, `IOREQ_BADGE`,
/// bits).
pub fn io_exit(objects: &mut KernelObjects, vm: usize, vcpu: usize) -> Option<(TaskId, u64)> {
    let record = objects.vms.get_mut(vm).ok()?;
    record.vcpu_mut(vcpu)?.io_wait = true;
    let server = record.ioreq_task;
    sync_vcpu(objects, vm, vcpu);
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

/// The plain case of [`io_exit`], as a direct switch: the running vCPU
/// `vcpu` of `vm` trapped on a device access, its slot is PENDING, the VM's ioreq
/// task waits in `recv` and nothing at its priority or above is ready: the
/// vCPU is held and the task runs at once, on its own slice, with no pass
/// over the ready queues (`Scheduler::wake_direct`). Returns the task, the
/// bits it takes (the caller delivers them) and what runs next; `None`,
/// with nothing changed, otherwise (then [`io_exit`] applies).
#[inline]
pub fn io_exit_direct(
    objects: &mut KernelObjects,
    vm: usize,
    vcpu: usize,
) -> Option<(TaskId, u64, Decision)> {
    let record = objects.vms.get_mut(vm).ok()?;
    let server = record.ioreq_task?;
    if record.phase != Phase::Running
        || objects.sched.state(server) != Some(TaskState::BlockedRecv)
        || objects.endpoints.waiting(server) != Some(Wait::Recv)
    {
        return None;
    }
    let v = record.vcpu_mut(vcpu)?;
    // Checks that the vCPU's task is the one running.
    objects.sched.wake_direct(v.task, TaskState::Held, server)?;
    v.io_wait = true;
    let decision = Decision::SwitchTo(server);
    objects.endpoints.cancel_recv(server);
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
    let v = record.vcpu(vcpu)?;
    (record.ioreq_task == Some(task) && runs_once_resumed(objects, record, v)).then_some(v.task)
}

/// Whether vCPU `v` of VM `record`, held for its I/O, may run as soon as
/// the I/O is resumed (the VM runs and the vCPU is not asleep).
#[inline]
fn runs_once_resumed(objects: &KernelObjects, record: &VmRecord, v: &VcpuRecord) -> bool {
    v.io_wait
        && record.phase == Phase::Running
        && v.asleep_until.is_none()
        && !v.stopped
        && objects.sched.state(v.task) == Some(TaskState::Held)
}

/// Whether `vm`'s vCPU `vcpu`'s access is forwarded to `client` and the
/// vCPU, held for it, may run as soon as the answer is taken (the VM runs
/// and the vCPU is not asleep); the vCPU's task if so.
#[inline]
pub fn answered_plainly(
    objects: &KernelObjects,
    vm: usize,
    vcpu: usize,
    client: TaskId,
) -> Option<TaskId> {
    let record = objects.vms.vms.get(vm)?.as_ref()?;
    let v = record.vcpu(vcpu)?;
    (v.forward == Forward::To(client) && runs_once_resumed(objects, record, v)).then_some(v.task)
}

/// The VM and vCPU whose forwarded access `client` owes the answer to, as
/// [`take_forward`] finds them, without taking the record.
#[inline]
pub fn peek_forward(objects: &KernelObjects, client: TaskId) -> Option<(usize, usize)> {
    let (vm, vcpu) = (*objects.vms.forwards.get(client.slot())?)?;
    Some((usize::from(vm), usize::from(vcpu)))
}

/// [`io_resumed`] without the scheduler step: the caller has checked
/// [`resumes_plainly`] and hands the CPU to the vCPU itself.
#[inline]
pub fn io_resumed_plain(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.io_wait = false;
        record.forward = Forward::None;
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
    let Some(v) = record.vcpu(vcpu) else {
        return Err(Error::InvalidArgument);
    };
    if !v.io_wait {
        return Err(Error::BadSlotState);
    }
    Ok(())
}

/// The arch layer took the completion of `vm`'s vCPU `vcpu`: it may run
/// again.
pub fn io_resumed(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.io_wait = false;
        record.forward = Forward::None;
        sync_vcpu(objects, vm, vcpu);
    }
}

/// Checks an `ioreq_forward` of `vm`'s vCPU `vcpu`'s access by `task`
/// before the arch layer looks at the slot: `task` may resume the vCPU
/// ([`check_resume`]) and the access was neither forwarded
/// (`Error::Forwarded`) nor handed back yet (`Error::BadSlotState`).
pub fn check_forward(
    objects: &KernelObjects,
    vm: usize,
    vcpu: usize,
    task: TaskId,
) -> Result<(), Error> {
    check_resume(objects, vm, vcpu, task)?;
    match objects.vms.get(vm)?.vcpu(vcpu).map(|v| v.forward) {
        Some(Forward::None) => Ok(()),
        // A restarted ioreq service adopting the access must not send it
        // to the client a second time.
        Some(Forward::To(_)) => Err(Error::Forwarded),
        _ => Err(Error::BadSlotState),
    }
}

/// [`check_forward`] as a yes or no, with one look at the records (the
/// fast path's).
#[inline]
pub fn may_forward(objects: &KernelObjects, vm: usize, vcpu: usize, task: TaskId) -> bool {
    let Some(record) = objects.vms.vms.get(vm).and_then(Option::as_ref) else {
        return false;
    };
    record.ioreq_task == Some(task)
        && record
            .vcpu(vcpu)
            .is_some_and(|v| v.io_wait && v.forward == Forward::None)
}

/// `vm`'s vCPU `vcpu`'s access went to `client` ([`check_forward`]
/// passed): its reply completes it ([`take_forward`]).
pub fn forwarded(objects: &mut KernelObjects, vm: usize, vcpu: usize, client: TaskId) {
    let (Ok(vm8), Ok(vcpu8)) = (u8::try_from(vm), u8::try_from(vcpu)) else {
        return;
    };
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.forward = Forward::To(client);
        if let Some(entry) = objects.vms.forwards.get_mut(client.slot()) {
            *entry = Some((vm8, vcpu8));
        }
    }
}

/// Whether `client` owes the reply to a forwarded access (it may be
/// stale: [`take_forward`] checks).
#[inline]
pub fn owes_forward(objects: &KernelObjects, client: TaskId) -> bool {
    objects
        .vms
        .forwards
        .get(client.slot())
        .is_some_and(Option::is_some)
}

/// The VM and vCPU whose forwarded access `client` owes the reply to,
/// which it now answers or gives up; the record is taken. `None` if it
/// owes none, or the access it was handed is gone (the VM was reset or
/// destroyed, or the ioreq service completed the access itself).
pub fn take_forward(objects: &mut KernelObjects, client: TaskId) -> Option<(usize, usize)> {
    let (vm, vcpu) = objects.vms.forwards.get_mut(client.slot())?.take()?;
    let (vm, vcpu) = (usize::from(vm), usize::from(vcpu));
    let record = objects.vms.get(vm).ok()?.vcpu(vcpu)?;
    (record.io_wait && record.forward == Forward::To(client)).then_some((vm, vcpu))
}

/// `client` answered the forwarded access [`peek_forward`] found, on the
/// fast path (the vCPU's record is cleared with its completion): it owes
/// nothing any more.
#[inline]
pub fn clear_forward(objects: &mut KernelObjects, client: TaskId) {
    if let Some(entry) = objects.vms.forwards.get_mut(client.slot()) {
        *entry = None;
    }
}

/// The client's answer to `vm`'s vCPU `vcpu`'s forwarded access did not
/// complete it (the arch layer refused: the slot changed meanwhile); the
/// access is left to the ioreq service as it stands.
pub fn forward_dropped(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.forward = Forward::None;
    }
}

/// `vm`'s vCPU `vcpu`'s forwarded access was handed back (its slot is
/// PENDING again): the ioreq service learns of it as of an exit, and may
/// not forward it again. Returns the task and bits to deliver if the
/// service waits in `recv`.
pub fn forward_handed_back(
    objects: &mut KernelObjects,
    vm: usize,
    vcpu: usize,
) -> Option<(TaskId, u64)> {
    let record = objects.vms.get_mut(vm).ok()?;
    record.vcpu_mut(vcpu)?.forward = Forward::HandedBack;
    let server = record.ioreq_task?;
    upcall(objects, server, vm)
}

/// The running vCPU `vcpu` of `vm` executed `wfi` with its timer due at
/// `until`.
pub fn sleep(objects: &mut KernelObjects, vm: usize, vcpu: usize, until: u64) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.asleep_until = Some(until);
        sync_vcpu(objects, vm, vcpu);
    }
}

/// The running vCPU `vcpu` of `vm` stopped itself (SBI HSM `hart_stop`):
/// it is held until another vCPU starts it ([`wake`]).
pub fn hart_stopped(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu)) {
        record.stopped = true;
        sync_vcpu(objects, vm, vcpu);
    }
}

/// The vCPUs of `vm` in `mask` (bit `n` = vCPU `n`) may run now: started
/// by a sibling (SBI HSM `hart_start`) or woken from `wfi` by an
/// interrupt the guest sent them (an IPI).
pub fn wake(objects: &mut KernelObjects, vm: usize, mask: u64) {
    let Ok(record) = objects.vms.get_mut(vm) else {
        return;
    };
    for (index, vcpu) in record.vcpus_mut().iter_mut().enumerate() {
        if mask & 1 << index != 0 {
            vcpu.stopped = false;
            vcpu.asleep_until = None;
        }
    }
    sync(objects, vm);
}

/// The external interrupt of `vm`'s vCPU `vcpu` was raised: if it is
/// asleep in `wfi` it wakes now (the guest takes the interrupt, or sleeps
/// again on its next `wfi`).
pub fn interrupt(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    if let Some(record) = objects.vms.get_mut(vm).ok().and_then(|r| r.vcpu_mut(vcpu))
        && record.asleep_until.take().is_some()
    {
        sync_vcpu(objects, vm, vcpu);
    }
}

/// What `vm_stats` says of `vm`'s vCPU `vcpu` (one of
/// `ipc::syscall::vm_stats::VCPU_*`, with the CPU it runs on above
/// `VCPU_CPU_SHIFT`); `None` for a vCPU the VM lacks.
pub fn vcpu_state(objects: &KernelObjects, vm: usize, vcpu: usize) -> Option<u64> {
    use ipc::syscall::vm_stats::{
        VCPU_CPU_SHIFT, VCPU_HELD, VCPU_IO, VCPU_RUNNING, VCPU_STOPPED, VCPU_WAITING,
    };
    let record = objects.vms.get(vm).ok()?;
    let v = record.vcpu(vcpu)?;
    let on = objects
        .sched
        .running_cpu(v.task)
        .map_or(0, |cpu| (cpu as u64 + 1) << VCPU_CPU_SHIFT);
    Some(
        on | if record.phase != Phase::Running {
            VCPU_HELD
        } else if v.stopped {
            VCPU_STOPPED
        } else if v.io_wait {
            VCPU_IO
        } else if v.asleep_until.is_some() {
            VCPU_WAITING
        } else {
            VCPU_RUNNING
        },
    )
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
        let Some(record) = objects.vms.vms[vm].as_mut() else {
            continue;
        };
        let mut woke = false;
        for vcpu in record.vcpus_mut() {
            if vcpu.asleep_until.is_some_and(|t| t <= now) {
                vcpu.asleep_until = None;
                woke = true;
            }
        }
        if woke {
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
        .flat_map(|r| r.vcpus().iter().filter_map(|v| v.asleep_until))
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

/// Makes the scheduler's state of each of `vm`'s vCPUs match the rule
/// ([`sync_vcpu`]).
pub fn sync(objects: &mut KernelObjects, vm: usize) {
    let count = objects.vms.get(vm).map_or(0, |r| r.vcpus().len());
    for vcpu in 0..count {
        sync_vcpu(objects, vm, vcpu);
    }
}

/// Makes the scheduler's state of `vm`'s vCPU `vcpu` match the rule:
/// ready or running exactly when the VM runs and the vCPU is started,
/// waits for no I/O and is awake.
pub fn sync_vcpu(objects: &mut KernelObjects, vm: usize, vcpu: usize) {
    let Some((record, v)) = objects
        .vms
        .get(vm)
        .ok()
        .and_then(|r| Some((r, r.vcpu(vcpu)?)))
    else {
        return;
    };
    let runnable = record.phase == Phase::Running && v.runnable();
    let task = v.task;
    match objects.sched.state(task) {
        Some(TaskState::Held) if runnable => {
            let _ = objects.sched.unblock_boosted(task);
        }
        Some(TaskState::Ready | TaskState::Running) if !runnable => {
            let _ = objects.sched.block(task, TaskState::Held);
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
