//! The system calls on VMs, the ioreq path and the raw console
//! (`ipc::syscall` numbers 11-21, 29-33, 35, 36, 38, 39, 47-49): each checks the caller's kernel rights
//! (`Error::PermissionDenied` otherwise) and its arguments, keeps the VM
//! lifecycle in `vm::control`, and leaves guest memory and registers to the
//! arch layer's [`VmHost`].

// Registers, addresses and pending-bit words are all 64 bits wide on the
// targets with user tasks (RV64, x86_64).
#![allow(clippy::cast_possible_truncation)]

use ipc::Error;
use ipc::syscall::vm_exit::{self, ExitRecord};
use ipc::syscall::{
    DEVICE_STATE_BYTES, IOREQ_BADGE, IPC_BUFFER_SIZE, MAX_VCPUS, MAX_VMS, NO_RECV, OK, Sysno,
};
use mica_boot::image::KernelRights;

use crate::obj::MAX_ENDPOINTS;
use crate::obj::endpoint::IpcError;
use crate::obj::ids::TaskId;
use crate::obj::objects::{KernelObjects, ObjError};
use crate::obj::sched::Decision;
use crate::syscall::Machine;
use crate::vm::control;
use crate::vm::stats::{VcpuStats, VmFigures};
use crate::vm::tlb_tag::TlbTag;

/// Most guest RAM one VM may ask for, in MiB.
pub const MAX_RAM_MIB: usize = 1024;

/// What the arch layer does for the VM calls. A machine without guests
/// refuses them all (the defaults).
pub trait VmHost {
    /// How many TLB tags the CPU has for guests (RISC-V VMIDs, SVM ASIDs,
    /// VMX VPIDs): tags `1..=n` may be handed out; 0 when it has none
    /// (every VM is untagged, and the arch flushes at each switch).
    fn tlb_tags(&mut self) -> u16 {
        0
    }
    /// Builds VM `vm`'s RAM (`ram_bytes`, zeroed), G-stage tables and
    /// ioreq page, with `vcpus` stopped vCPUs whose translations carry
    /// `tag` (flushed before its first run when `tag.reused`);
    /// `Error::InvalidArgument` for more vCPUs than the backend runs.
    fn vm_create(
        &mut self,
        _vm: usize,
        _ram_bytes: u64,
        _vcpus: usize,
        _tag: TlbTag,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Copies guest image number `image` (as [`VmHost::image_name`]
    /// counts them) into `vm`'s RAM at `offset` from its start; returns
    /// its length.
    fn vm_load(&mut self, _vm: usize, _image: usize, _offset: u64) -> Result<usize, Error> {
        Err(Error::KernelRefused)
    }
    /// Copies the first `IMAGE_HEADER_BYTES` of guest image number `image`
    /// to the start of `task`'s IPC buffer; returns the image's length.
    fn image_info(&mut self, _task: TaskId, _image: usize) -> Result<usize, Error> {
        Err(Error::KernelRefused)
    }
    /// Copies the name of guest image number `index` (guest entries only,
    /// in the boot image's order) to the start of `task`'s IPC buffer;
    /// returns the name's length and the image's.
    fn image_name(&mut self, _task: TaskId, _index: usize) -> Result<(usize, usize), Error> {
        Err(Error::KernelRefused)
    }
    /// Copies `len` bytes of `task`'s IPC buffer page into `vm`'s RAM at
    /// `offset` from its start.
    fn vm_write_ram(
        &mut self,
        _task: TaskId,
        _vm: usize,
        _offset: u64,
        _len: usize,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Copies `len` bytes between `vm`'s RAM at guest-physical `gpa` and
    /// the start of `task`'s IPC buffer page: into the buffer for
    /// `vm_ram_read` (`to_guest` false), into the guest for `vm_ram_write`
    /// (the range checked by the arch against the VM's RAM).
    fn vm_ram_copy(
        &mut self,
        _task: TaskId,
        _vm: usize,
        _gpa: u64,
        _len: usize,
        _to_guest: bool,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Copies `len` bytes between `vm`'s device-state area at `offset`
    /// (checked by the caller against [`DEVICE_STATE_BYTES`]) and the
    /// start of `task`'s IPC buffer page: into the buffer for
    /// `vm_state_read` (`to_state` false), into the area for
    /// `vm_state_write`.
    fn vm_state_copy(
        &mut self,
        _task: TaskId,
        _vm: usize,
        _offset: usize,
        _len: usize,
        _to_state: bool,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Copies `len` bytes of `task`'s IPC buffer page to the top of `vm`'s
    /// RAM as its device tree; returns its guest-physical address.
    fn vm_set_dtb(&mut self, _task: TaskId, _vm: usize, _len: usize) -> Result<u64, Error> {
        Err(Error::KernelRefused)
    }
    /// Sets `vm`'s vCPU 0 to its boot-protocol entry state: pc at `entry`,
    /// a1 at `dtb` (both offsets from the start of RAM, already checked
    /// against nothing: the host checks them against the VM's RAM).
    fn vm_start(&mut self, _vm: usize, _entry: u64, _dtb: u64) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Zeroes `vm`'s RAM, frees its ioreq slots, forgets image and DTB.
    fn vm_reset(&mut self, _vm: usize) {}
    /// Returns once no CPU is in `vm`'s guest (each CPU running one of its
    /// vCPUs is kicked out): a pause holds every vCPU before it returns.
    fn vm_quiesce(&mut self, _vm: usize) {}
    /// Returns all of `vm`'s memory; unmaps its ioreq page from `ioreq`.
    fn vm_destroy(&mut self, _vm: usize, _ioreq: Option<TaskId>) {}
    /// Maps `vm`'s ioreq page into `task` (unmapping it from `previous`);
    /// returns the user address.
    fn ioreq_attach(
        &mut self,
        _task: TaskId,
        _vm: usize,
        _previous: Option<TaskId>,
    ) -> Result<usize, Error> {
        Err(Error::KernelRefused)
    }
    /// Validates that `vm`'s vCPU `vcpu` slot is COMPLETE, hands the value
    /// to the guest and frees the slot; `Error::BadSlotState` (nothing
    /// changed) otherwise.
    fn ioreq_resume(&mut self, _vm: usize, _vcpu: usize) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Checks that `vm`'s vCPU `vcpu` waits on an access whose slot is
    /// PROCESSING (the ioreq service took it and may forward it);
    /// `Error::BadSlotState` otherwise.
    fn ioreq_forwardable(&mut self, _vm: usize, _vcpu: usize) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// A client answered `vm`'s vCPU `vcpu`'s forwarded access with
    /// `answer` (`None`: not plainly, or it died): a plain answer of the
    /// right kind completes the PROCESSING slot and is taken at once as
    /// [`VmHost::ioreq_resume`] takes it (`Ok(true)`, the vCPU may run);
    /// any other is handed back, the slot PENDING again (`Ok(false)`).
    /// `Error::BadSlotState`, with nothing changed, when the slot is not
    /// PROCESSING or the vCPU waits on no access.
    fn ioreq_answer(
        &mut self,
        _vm: usize,
        _vcpu: usize,
        _answer: Option<ipc::devices::Response>,
    ) -> Result<bool, Error> {
        Err(Error::KernelRefused)
    }
    /// Copies the first `out.len()` bytes of `task`'s IPC buffer into
    /// `out`; `false` if it has none.
    fn read_message(&mut self, _task: TaskId, _out: &mut [u8]) -> bool {
        false
    }
    /// Lets `vm`'s writes to `[start, start + len)` of `space` be posted
    /// (`len` 0 removes the range at `start`): `vm::posted::Posting::set`.
    fn ioreq_post(
        &mut self,
        _vm: usize,
        _space: ipc::Space,
        _start: u64,
        _len: u64,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Prints `line` as a hypervisor-console line without a task-name
    /// prefix (as `ipc::console_text::Checked`: escaped if it holds a
    /// control byte or invalid UTF-8).
    fn console_raw(&mut self, _line: &[u8]) {}
    /// Raises or lowers the external interrupt of `vm`'s vCPU `vcpu`.
    fn vm_set_external_irq(
        &mut self,
        _vm: usize,
        _vcpu: usize,
        _raised: bool,
    ) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// Writes the 16 bytes of `id` at the start of `vm`'s generation-ID
    /// page; returns its guest-physical address.
    fn vm_write_genid(&mut self, _vm: usize, _id: [u8; 16]) -> Result<u64, Error> {
        Err(Error::KernelRefused)
    }
    /// Names `vm` after the first `len` bytes of `task`'s IPC buffer.
    fn vm_set_name(&mut self, _task: TaskId, _vm: usize, _len: usize) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// How `vm`'s guest left running: its `ipc::syscall::vm_status` value
    /// and its exit record (`None` while it has not: the kernel's phase
    /// tells then).
    fn vm_exit(&mut self, _vm: usize) -> Option<(usize, ExitRecord)> {
        None
    }
    /// Writes `bytes` at the start of `task`'s IPC buffer.
    fn write_ipc(&mut self, _task: TaskId, _bytes: &[u8]) {}
    /// Copies all of `src`'s RAM over the start of `dst`'s;
    /// `Error::InvalidArgument` (nothing copied) if `dst` is smaller.
    fn vm_clone_ram(&mut self, _src: usize, _dst: usize) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// `vm`'s exit and I/O accounting since it last started.
    fn vm_stats(&mut self, _vm: usize) -> Result<VmFigures, Error> {
        Err(Error::KernelRefused)
    }
    /// `vm`'s vCPU `vcpu`'s exits and I/O round trips since it started.
    fn vcpu_stats(&mut self, _vm: usize, _vcpu: usize) -> Result<VcpuStats, Error> {
        Err(Error::KernelRefused)
    }

    /// Keeps the first `len` bytes of `task`'s IPC buffer as `vm`'s note.
    fn vm_set_note(&mut self, _task: TaskId, _vm: usize, _len: usize) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }

    /// Writes `vm`'s generation ID, name and note into `task`'s IPC buffer
    /// (`ipc::syscall::vm_adopt`); returns its RAM in bytes.
    fn vm_describe(&mut self, _task: TaskId, _vm: usize) -> Result<u64, Error> {
        Err(Error::KernelRefused)
    }
}

fn need(objects: &KernelObjects, task: TaskId, right: KernelRights) -> Result<(), Error> {
    let rights = objects
        .tasks
        .get(task)
        .map_err(|_| Error::InvalidArgument)?
        .kernel_rights();
    if rights.contains(right) {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

fn known(objects: &KernelObjects, vm: usize) -> Result<(), Error> {
    objects.vms.get(vm).map(|_| ())
}

/// Runs one of the VM, ioreq or console calls for `current`.
pub fn dispatch<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    call: Sysno,
    args: [usize; 6],
) -> Decision {
    let vm = args[0];
    let result = match call {
        Sysno::ConsoleWrite => crate::syscall_console::console_bytes(
            objects,
            machine,
            current,
            args[0],
            args[1],
            M::console_raw,
        ),
        Sysno::VmCreate => vm_create(objects, machine, current, args),
        Sysno::VmLoad => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| machine.vm_load(vm, args[1], args[2] as u64))
            .map(|len| [len, 0, 0]),
        Sysno::VmSetName => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| machine.vm_set_name(current, vm, args[1]))
            .map(|()| [0; 3]),
        Sysno::VmAdopt => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| machine.vm_describe(current, vm))
            .and_then(|ram| {
                control::set_controller(objects, vm, current)?;
                let record = objects.vms.get(vm)?;
                let (status, _) = vm_status(record.phase, machine.vm_exit(vm));
                Ok([status, (ram >> 20) as usize, 1])
            }),
        Sysno::VmSetNote => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| machine.vm_set_note(current, vm, args[1]))
            .map(|()| [0; 3]),
        Sysno::VmStatus => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| objects.vms.get(vm))
            .map(|record| {
                let (status, exit) = vm_status(record.phase, machine.vm_exit(vm));
                machine.write_ipc(current, &exit.to_bytes());
                [status, 0, 0]
            }),
        Sysno::ImageInfo => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| machine.image_info(current, args[0]))
            .map(|len| [len, 0, 0]),
        Sysno::ImageName => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| machine.image_name(current, args[0]))
            .map(|(name_len, len)| [name_len, len, 0]),
        Sysno::VmWriteRam => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| machine.vm_write_ram(current, vm, args[1] as u64, args[2]))
            .map(|()| [0; 3]),
        Sysno::VmGrantRam => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::grant_ram(objects, vm, args[1] as u64))
            .map(|()| [0; 3]),
        Sysno::VmRamRead | Sysno::VmRamWrite | Sysno::VmStateRead | Sysno::VmStateWrite => {
            granted_copy(objects, machine, current, call, args).map(|()| [0; 3])
        }
        Sysno::VmSetDtb => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| machine.vm_set_dtb(current, vm, args[1]))
            .map(|gpa| [gpa as usize, 0, 0]),
        Sysno::VmStart => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::check_start(objects, vm))
            .and_then(|()| machine.vm_start(vm, args[1] as u64, args[2] as u64))
            .and_then(|()| control::start(objects, vm))
            .map(|()| [0; 3]),
        Sysno::VmPause => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::pause(objects, vm))
            .map(|()| {
                machine.vm_quiesce(vm);
                [0; 3]
            }),
        Sysno::VmResume => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::resume(objects, vm))
            .map(|()| [0; 3]),
        Sysno::VmReset => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::reset(objects, vm))
            .map(|()| {
                machine.vm_reset(vm);
                [0; 3]
            }),
        Sysno::VmDestroy => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::destroy(objects, vm))
            .map(|ioreq| {
                machine.vm_destroy(vm, ioreq);
                [0; 3]
            }),
        Sysno::IoreqAttach => need(objects, current, KernelRights::IOREQ)
            .and_then(|()| objects.vms.get(vm))
            .and_then(|record| machine.ioreq_attach(current, vm, record.ioreq_task))
            .and_then(|addr| control::attach(objects, vm, current).map(|_| [addr, 0, 0])),
        Sysno::IoreqResume => resume_vcpu(objects, machine, current, vm, args[1]).map(|()| [0; 3]),
        Sysno::IoreqPost => post_writes(objects, machine, current, args).map(|()| [0; 3]),
        Sysno::VmSetExternalIrq => {
            set_external_irq(objects, machine, current, vm, args[1], args[2])
        }
        Sysno::VmWriteGenid => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(args[1] as u64).to_le_bytes());
                id[8..].copy_from_slice(&(args[2] as u64).to_le_bytes());
                machine.vm_write_genid(vm, id)
            })
            .map(|gpa| [gpa as usize, 0, 0]),
        Sysno::VmCloneRam => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| control::check_clone(objects, vm, args[1]))
            .and_then(|()| machine.vm_clone_ram(vm, args[1]))
            .map(|()| [0; 3]),
        Sysno::VmStats => need(objects, current, KernelRights::VM_CONTROL)
            .and_then(|()| known(objects, vm))
            .and_then(|()| stats_group(objects, machine, vm, args[1]))
            .map(|values| values.map(|v| v as usize)),
        _ => Err(Error::InvalidArgument),
    };
    machine.set_outcome(current, result);
    objects.sched.schedule()
}

/// `vm_stats` group `group` of `vm`: a VM-wide one, or a vCPU's state,
/// exits and round trips.
fn stats_group<M: Machine>(
    objects: &KernelObjects,
    machine: &mut M,
    vm: usize,
    group: usize,
) -> Result<[u64; 3], Error> {
    use ipc::syscall::vm_stats::VCPU;
    let Some(vcpu) = group.checked_sub(VCPU) else {
        let figures = machine.vm_stats(vm)?;
        return figures.group(group).ok_or(Error::InvalidArgument);
    };
    let state = control::vcpu_state(objects, vm, vcpu).ok_or(Error::InvalidArgument)?;
    let stats = machine.vcpu_stats(vm, vcpu)?;
    Ok([state, stats.total_exits(), stats.round_trips])
}

/// `ioreq_resume(vm, vcpu)` by `task` (also the first half of
/// `ioreq_complete_recv`): checks the IOREQ right and that `task` serves
/// `vm` and the vCPU waits, then the arch layer takes the COMPLETE slot
/// and the vCPU may run again.
pub fn resume_vcpu<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    task: TaskId,
    vm: usize,
    vcpu: usize,
) -> Result<(), Error> {
    need(objects, task, KernelRights::IOREQ)?;
    control::check_resume(objects, vm, vcpu, task)?;
    machine.ioreq_resume(vm, vcpu)?;
    control::io_resumed(objects, vm, vcpu);
    Ok(())
}

/// `ioreq_forward(call_slot, len, vm, vcpu, recv_slot)` by `current`
/// (`Sysno::IoreqForward`): the access goes to the client waiting on the
/// endpoint, which owes its answer to the kernel ([`answer_forward`]);
/// then `current` receives (as `ioreq_complete_recv`), or returns at once
/// with `recv_slot` [`NO_RECV`]. Refused with nothing done otherwise.
pub fn forward<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    args: [usize; 6],
) -> Decision {
    let [call_slot, len, vm, vcpu, recv_slot, _] = args;
    let client = match hand_over_access(objects, machine, current, call_slot, len, (vm, vcpu)) {
        Ok(client) => client,
        Err(e) => return crate::syscall::fail_with(machine, current, e),
    };
    if recv_slot == NO_RECV || recv_pending(objects, machine, current) {
        if recv_slot == NO_RECV {
            machine.set_result(current, OK, [0; 3]);
        }
        let _ = objects.sched.unblock(client);
        return objects.sched.schedule();
    }
    match objects.recv_then_switch(current, recv_slot, client) {
        Ok(step) => crate::syscall::apply_step(objects, machine, current, step),
        Err(e) => crate::syscall::fail(machine, current, e),
    }
}

/// The checks and the hand-over of [`forward`].
fn hand_over_access<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    call_slot: usize,
    len: usize,
    (vm, vcpu): (usize, usize),
) -> Result<TaskId, Error> {
    need(objects, current, KernelRights::IOREQ)?;
    control::check_forward(objects, vm, vcpu, current)?;
    machine.ioreq_forwardable(vm, vcpu)?;
    let transfer = objects
        .hand_to_receiver(current, call_slot, len)
        .map_err(|e| match e {
            ObjError::Ipc(IpcError::Busy) => Error::KernelRefused,
            other => crate::syscall::error_for(other),
        })?;
    machine.copy_message(current, transfer.to, len);
    machine.set_result(transfer.to, OK, [len, transfer.badge.0 as usize, 0]);
    control::forwarded(objects, vm, vcpu, transfer.to);
    Ok(transfer.to)
}

/// `client` answers the access the ioreq service forwarded it with the
/// first `len` bytes of its IPC buffer (`Some`), or gives it up (`None`:
/// it died, or waits to receive again without answering): a plain answer
/// completes the access and the vCPU may run; anything else hands it
/// back to the ioreq service. Nothing happens if `client` owes no such
/// answer (or the access is gone: the VM was reset or destroyed).
pub fn answer_forward<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    client: TaskId,
    len: Option<usize>,
) {
    let Some((vm, vcpu)) = control::take_forward(objects, client) else {
        return;
    };
    let mut bytes = [0u8; ipc::devices::wire::PLAIN_RESPONSE_MAX];
    let answer = len.and_then(|len| bytes.get_mut(..len)).and_then(|bytes| {
        machine
            .read_message(client, bytes)
            .then(|| ipc::devices::wire::plain_response(bytes))?
    });
    match machine.ioreq_answer(vm, vcpu, answer) {
        Ok(true) => control::io_resumed(objects, vm, vcpu),
        Ok(false) => {
            if let Some((task, bits)) = control::forward_handed_back(objects, vm, vcpu) {
                deliver(machine, task, bits);
            }
        }
        Err(_) => control::forward_dropped(objects, vm, vcpu),
    }
}

/// `ioreq_post(vm, space, start, len)` by `task`: the IOREQ right, and
/// `task` must serve `vm`.
fn post_writes<M: Machine>(
    objects: &KernelObjects,
    machine: &mut M,
    task: TaskId,
    args: [usize; 6],
) -> Result<(), Error> {
    need(objects, task, KernelRights::IOREQ)?;
    let vm = args[0];
    if objects.vms.get(vm)?.ioreq_task != Some(task) {
        return Err(Error::PermissionDenied);
    }
    let space = match args[1] {
        0 => ipc::Space::Mmio,
        1 => ipc::Space::Pio,
        _ => return Err(Error::InvalidArgument),
    };
    machine.ioreq_post(vm, space, args[2] as u64, args[3] as u64)
}

/// `vm_ram_read` / `vm_ram_write` and `vm_state_read` / `vm_state_write`
/// by `task`: it must serve an endpoint `vm`'s grant names. A RAM copy
/// must fit the IPC buffer page (the arch checks the range against the
/// VM's RAM); a state copy must lie inside the device-state area.
fn granted_copy<M: Machine>(
    objects: &KernelObjects,
    machine: &mut M,
    task: TaskId,
    call: Sysno,
    args: [usize; 6],
) -> Result<(), Error> {
    let (vm, at, len) = (args[0], args[1], args[2]);
    let grant = objects.vms.get(vm)?.ram_grant;
    // The caller (live: it is making this call) serves one endpoint at most.
    let granted = machine
        .endpoint_of(task)
        .is_some_and(|e| e < MAX_ENDPOINTS && grant & (1 << e) != 0);
    if !granted {
        return Err(Error::PermissionDenied);
    }
    match call {
        Sysno::VmStateRead | Sysno::VmStateWrite => {
            if at
                .checked_add(len)
                .is_none_or(|end| end > DEVICE_STATE_BYTES)
            {
                return Err(Error::InvalidRange);
            }
            machine.vm_state_copy(task, vm, at, len, call == Sysno::VmStateWrite)
        }
        _ if len > IPC_BUFFER_SIZE => Err(Error::MessageTooLarge),
        _ => machine.vm_ram_copy(task, vm, at as u64, len, call == Sysno::VmRamWrite),
    }
}

/// `vm_set_external_irq`: the arch layer sets the vCPU's pending external
/// interrupt; a raised one wakes the vCPU from `wfi`.
fn set_external_irq<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    task: TaskId,
    vm: usize,
    level: usize,
    vcpu: usize,
) -> Result<[usize; 3], Error> {
    need(objects, task, KernelRights::GUEST_IRQ)?;
    if objects.vms.get(vm)?.vcpu(vcpu).is_none() {
        return Err(Error::InvalidArgument);
    }
    let raised = match level {
        0 => false,
        1 => true,
        _ => return Err(Error::InvalidArgument),
    };
    machine.vm_set_external_irq(vm, vcpu, raised)?;
    if raised {
        control::interrupt(objects, vm, vcpu);
    }
    Ok([0; 3])
}

/// The `vm_status` value and exit record of a VM in `phase`; `ended` says
/// how the arch layer saw it leave running (an ended one it cannot tell of
/// is a stop of kind `STOPPED_UNKNOWN`; one that has not ended has no
/// record).
fn vm_status(phase: control::Phase, ended: Option<(usize, ExitRecord)>) -> (usize, ExitRecord) {
    use ipc::syscall::vm_status;
    let none = ExitRecord::default();
    match phase {
        control::Phase::Created => (vm_status::CREATED, none),
        control::Phase::Running => (vm_status::RUNNING, none),
        control::Phase::Paused => (vm_status::PAUSED, none),
        control::Phase::Ended => ended.unwrap_or((
            vm_status::STOPPED,
            ExitRecord {
                kind: vm_exit::STOPPED_UNKNOWN,
                ..none
            },
        )),
    }
}

fn vm_create<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    task: TaskId,
    args: [usize; 6],
) -> Result<[usize; 3], Error> {
    need(objects, task, KernelRights::VM_CONTROL)?;
    let (vm, ram_mib, vcpus) = (args[0], args[1], args[2]);
    // RAM in whole 2 MiB G-stage pages.
    if vm >= MAX_VMS
        || vcpus == 0
        || vcpus > MAX_VCPUS
        || ram_mib == 0
        || ram_mib > MAX_RAM_MIB
        || ram_mib % 2 != 0
    {
        return Err(Error::InvalidArgument);
    }
    if objects.vms.get(vm).is_ok() {
        return Err(Error::VmExists);
    }
    // A TLB tag no live VM holds, or a refusal: never a shared one.
    let tag = objects.vms.take_tag(machine.tlb_tags())?;
    if let Err(e) = machine.vm_create(vm, (ram_mib as u64) << 20, vcpus, tag) {
        objects.vms.return_tag(tag);
        return Err(e);
    }
    if let Err(e) = control::create(objects, vm, vcpus) {
        machine.vm_destroy(vm, None);
        objects.vms.return_tag(tag);
        return Err(e);
    }
    control::adopt_tag(objects, vm, tag)?;
    // The creator (the vm-manager) hears when the guest ends.
    control::set_controller(objects, vm, task)?;
    Ok([0; 3])
}

/// A `recv` or `reply_recv` by `task` with ioreq work pending returns at
/// once: len 0, badge [`IOREQ_BADGE`], a3 = the VMs' bits (then cleared).
/// Returns whether it did.
pub fn recv_pending<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    task: TaskId,
) -> bool {
    match control::take_pending(objects, task) {
        Some(bits) => {
            deliver(machine, task, bits);
            true
        }
        None => false,
    }
}

/// Puts an ioreq wake-up's result into `task`'s registers.
pub fn deliver<M: Machine>(machine: &mut M, task: TaskId, bits: u64) {
    machine.set_result(task, OK, [0, IOREQ_BADGE, bits as usize]);
}

#[cfg(test)]
#[path = "syscall_vm_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "syscall_vm_guest_tests.rs"]
mod guest_tests;

#[cfg(test)]
#[path = "syscall_vm_stats_tests.rs"]
mod stats_tests;

#[cfg(test)]
#[path = "syscall_vm_tag_tests.rs"]
mod tag_tests;
