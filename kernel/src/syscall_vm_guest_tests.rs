//! The calls that reach into a guest (`vm_set_external_irq`,
//! `vm_write_genid`, `vm_clone_ram`, the boot calls `vm_load`,
//! `image_info`, `vm_write_ram`, `vm_start`): who may make them, what the
//! arch layer is asked to do, and what they refuse.

use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;
use crate::obj::sched::{Priority, TaskState};
use crate::obj::task::DeathNotice;
use crate::syscall;
use ipc::syscall::status_of;

#[derive(Default)]
struct Host {
    results: Vec<(usize, usize, [usize; 3])>,
    irqs: Vec<(usize, usize, bool)>,
    genids: Vec<(usize, [u8; 16])>,
    clones: Vec<(usize, usize)>,
    boot: Vec<String>,
    /// What `vm_exit` answers.
    ended_as: Option<(usize, ipc::syscall::vm_exit::ExitRecord)>,
    /// What `write_ipc` wrote, by task slot.
    ipc: Vec<(usize, Vec<u8>)>,
    /// Who serves which endpoint.
    servers: Vec<(usize, TaskId)>,
    /// The device model's RAM accesses: (read, vm, gpa, len).
    dma: Vec<(bool, usize, u64, usize)>,
    /// Its device-state accesses: (read, vm, offset, len).
    state: Vec<(bool, usize, usize, usize)>,
}

impl crate::syscall_console::ConsoleHost for Host {}

impl crate::syscall_stats::StatsHost for Host {}

impl crate::syscall_entropy::EntropyHost for Host {}

impl Machine for Host {
    fn set_result(&mut self, task: TaskId, status: usize, values: [usize; 3]) {
        self.results.push((task.slot(), status, values));
    }
    fn copy_message(&mut self, _: TaskId, _: TaskId, _: usize) {}
    fn read_user(&mut self, _: TaskId, _: usize, _: &mut [u8]) -> bool {
        false
    }
    fn console_line(&mut self, _: TaskId, _: &[u8]) {}
    fn report_death(&mut self, _: &DeathNotice) {}
    fn supervisor(&self) -> Option<TaskId> {
        None
    }
    fn endpoint_of(&self, task: TaskId) -> Option<usize> {
        self.servers
            .iter()
            .find(|(_, t)| *t == task)
            .map(|&(e, _)| e)
    }
    fn restart(
        &mut self,
        _: &mut KernelObjects,
        _: &DeathNotice,
    ) -> Result<crate::syscall::Restarted, Error> {
        Err(Error::KernelRefused)
    }
}

impl VmHost for Host {
    fn vm_create(&mut self, _: usize, _: u64, _: usize, _: TlbTag) -> Result<(), Error> {
        Ok(())
    }
    fn vm_start(&mut self, vm: usize, entry: u64, dtb: u64) -> Result<(), Error> {
        self.boot.push(format!("start {vm} {entry:#x} {dtb:#x}"));
        Ok(())
    }
    fn vm_load(&mut self, vm: usize, image: usize, offset: u64) -> Result<usize, Error> {
        self.boot.push(format!("load {vm} {image} {offset:#x}"));
        Ok(1234)
    }
    fn image_info(&mut self, _: TaskId, image: usize) -> Result<usize, Error> {
        self.boot.push(format!("info {image}"));
        Ok(31_167_488)
    }
    fn image_name(&mut self, _: TaskId, index: usize) -> Result<(usize, usize), Error> {
        self.boot.push(format!("name {index}"));
        match index {
            0 => Ok((5, 8192)),
            _ => Err(Error::UnknownImage),
        }
    }
    fn vm_write_ram(&mut self, _: TaskId, vm: usize, offset: u64, len: usize) -> Result<(), Error> {
        self.boot.push(format!("write {vm} {offset:#x} {len}"));
        Ok(())
    }
    fn vm_ram_copy(
        &mut self,
        _: TaskId,
        vm: usize,
        gpa: u64,
        len: usize,
        to_guest: bool,
    ) -> Result<(), Error> {
        self.dma.push((!to_guest, vm, gpa, len));
        Ok(())
    }
    fn vm_state_copy(
        &mut self,
        _: TaskId,
        vm: usize,
        offset: usize,
        len: usize,
        to_state: bool,
    ) -> Result<(), Error> {
        self.state.push((!to_state, vm, offset, len));
        Ok(())
    }
    fn vm_set_external_irq(&mut self, vm: usize, vcpu: usize, raised: bool) -> Result<(), Error> {
        self.irqs.push((vm, vcpu, raised));
        Ok(())
    }
    fn vm_write_genid(&mut self, vm: usize, id: [u8; 16]) -> Result<u64, Error> {
        self.genids.push((vm, id));
        Ok(0x8000_0000 + (64 << 20) - 8192)
    }
    fn vm_clone_ram(&mut self, src: usize, dst: usize) -> Result<(), Error> {
        self.clones.push((src, dst));
        Ok(())
    }
    fn vm_exit(&mut self, _: usize) -> Option<(usize, ipc::syscall::vm_exit::ExitRecord)> {
        self.ended_as
    }
    fn write_ipc(&mut self, task: TaskId, bytes: &[u8]) {
        self.ipc.push((task.slot(), bytes.to_vec()));
    }
}

struct World {
    o: KernelObjects,
    host: Host,
    manager: TaskId,
    devices: TaskId,
}

fn world() -> World {
    let mut o = KernelObjects::new();
    let p = Priority::new(5).unwrap();
    let manager = o.spawn("vm-manager", p).unwrap();
    let devices = o.spawn("devices", p).unwrap();
    let rights = |o: &mut KernelObjects, t, r| o.tasks.get_mut(t).unwrap().set_kernel_rights(r);
    rights(&mut o, manager, KernelRights::VM_CONTROL);
    rights(
        &mut o,
        devices,
        KernelRights::CONSOLE.union(KernelRights::GUEST_IRQ),
    );
    o.sched.schedule();
    World {
        o,
        host: Host::default(),
        manager,
        devices,
    }
}

impl World {
    fn call(&mut self, task: TaskId, call: Sysno, args: [usize; 3]) -> (usize, [usize; 3]) {
        let mut a = [0; 6];
        a[..3].copy_from_slice(&args);
        syscall::dispatch(&mut self.o, &mut self.host, task, call as usize, a);
        let (_, status, values) = *self.host.results.last().unwrap();
        (status, values)
    }

    fn created(&mut self, vm: usize) {
        let m = self.manager;
        assert_eq!(self.call(m, Sysno::VmCreate, [vm, 64, 1]).0, OK);
    }
}

const DENIED: usize = status_of(Error::PermissionDenied);
const INVALID: usize = status_of(Error::InvalidArgument);
const UNKNOWN: usize = status_of(Error::UnknownVm);

#[test]
fn only_the_guest_irq_right_drives_a_vms_external_interrupt() {
    let mut w = world();
    w.created(0);
    let (m, d) = (w.manager, w.devices);
    assert_eq!(w.call(m, Sysno::VmSetExternalIrq, [0, 1, 0]).0, DENIED);
    assert!(w.host.irqs.is_empty());
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [0, 1, 0]).0, OK);
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [0, 0, 0]).0, OK);
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [0, 2, 0]).0, INVALID);
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [7, 1, 0]).0, UNKNOWN);
    assert_eq!(
        w.call(d, Sysno::VmSetExternalIrq, [0, 1, 1]).0,
        INVALID,
        "no vCPU 1"
    );
    assert_eq!(w.host.irqs, [(0, 0, true), (0, 0, false)]);
}

#[test]
fn each_vcpu_has_its_own_external_interrupt_and_wakes_alone() {
    let mut w = world();
    let (m, d) = (w.manager, w.devices);
    assert_eq!(w.call(m, Sysno::VmCreate, [2, 64, 3]).0, OK);
    assert_eq!(w.call(m, Sysno::VmStart, [2, 0, 0]).0, OK);
    let tasks: Vec<_> =
        w.o.vms
            .get(2)
            .unwrap()
            .vcpus()
            .iter()
            .map(|v| v.task)
            .collect();
    assert_eq!(tasks.len(), 3);
    assert_eq!(
        w.o.sched.state(tasks[1]),
        Some(TaskState::Held),
        "stopped until started"
    );
    control::wake(&mut w.o, 2, 0b110);
    control::sleep(&mut w.o, 2, 1, u64::MAX);
    control::sleep(&mut w.o, 2, 2, u64::MAX);
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [2, 1, 2]).0, OK);
    assert_eq!(
        w.o.sched.state(tasks[2]),
        Some(TaskState::Ready),
        "vCPU 2 woke"
    );
    assert_eq!(
        w.o.sched.state(tasks[1]),
        Some(TaskState::Held),
        "vCPU 1 sleeps on"
    );
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [2, 1, 3]).0, INVALID);
    assert_eq!(w.host.irqs, [(2, 2, true)]);
}

#[test]
fn a_vm_has_one_to_max_vcpus() {
    let mut w = world();
    let m = w.manager;
    let most = ipc::syscall::MAX_VCPUS;
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, 0]).0, INVALID);
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, most + 1]).0, INVALID);
    assert!(w.o.vms.get(0).is_err(), "nothing kept");
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, most]).0, OK);
    assert_eq!(w.o.vms.get(0).unwrap().vcpus().len(), most);
    assert_eq!(w.call(m, Sysno::VmDestroy, [0, 0, 0]).0, OK);
    assert!(
        (0..crate::obj::MAX_TASKS).all(|slot| w
            .o
            .vms
            .vcpu_of_task(crate::obj::ids::TaskId::new(slot, 0).unwrap())
            .is_none()),
        "no vCPU task outlives its VM"
    );
}

#[test]
fn a_raised_external_interrupt_wakes_the_vcpu_from_wfi() {
    let mut w = world();
    w.created(1);
    let (m, d) = (w.manager, w.devices);
    assert_eq!(w.call(m, Sysno::VmStart, [1, 0, 0]).0, OK);
    control::sleep(&mut w.o, 1, 0, u64::MAX);
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held));
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [1, 0, 0]).0, OK);
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held), "lowered");
    assert_eq!(w.call(d, Sysno::VmSetExternalIrq, [1, 1, 0]).0, OK);
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Ready));
}

#[test]
fn the_generation_id_goes_to_the_guest_little_endian() {
    let mut w = world();
    w.created(2);
    let (m, d) = (w.manager, w.devices);
    let (lo, hi) = (0x0706_0504_0302_0100_usize, 0x0f0e_0d0c_0b0a_0908_usize);
    assert_eq!(w.call(d, Sysno::VmWriteGenid, [2, lo, hi]).0, DENIED);
    assert_eq!(w.call(m, Sysno::VmWriteGenid, [3, lo, hi]).0, UNKNOWN);
    let (status, values) = w.call(m, Sysno::VmWriteGenid, [2, lo, hi]);
    assert_eq!((status, values[0]), (OK, 0x8000_0000 + (64 << 20) - 8192));
    let bytes: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(w.host.genids, [(2, bytes)]);
}

/// The endpoint the tests' devices task serves, and its grant bit.
const DEVICES_EP: usize = 2;
const DEVICES: usize = 1 << DEVICES_EP;

#[test]
fn a_device_model_reaches_guest_ram_only_through_its_endpoints_grant() {
    let mut w = world();
    w.created(0);
    w.created(1);
    let (m, d) = (w.manager, w.devices);
    w.host.servers.push((DEVICES_EP, d));
    let read = |w: &mut World, t, vm| w.call(t, Sysno::VmRamRead, [vm, 0x8000_1000, 64]).0;
    assert_eq!(read(&mut w, d, 0), DENIED, "no grant yet");
    assert_eq!(w.call(d, Sysno::VmGrantRam, [0, DEVICES, 0]).0, DENIED);
    assert_eq!(w.call(m, Sysno::VmGrantRam, [9, DEVICES, 0]).0, UNKNOWN);
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, 1 << 5, 0]).0, OK);
    assert_eq!(read(&mut w, d, 0), DENIED, "granted to another endpoint");
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, 1 << 5 | DEVICES, 0]).0, OK);
    assert_eq!(read(&mut w, d, 0), OK);
    assert_eq!(w.call(d, Sysno::VmRamWrite, [0, 0x8000_2000, 4096]).0, OK);
    assert_eq!(
        read(&mut w, m, 0),
        DENIED,
        "the vm-manager serves no granted endpoint"
    );
    assert_eq!(read(&mut w, d, 1), DENIED, "the grant is per VM");
    assert_eq!(
        w.call(d, Sysno::VmRamRead, [0, 0x8000_0000, 4097]).0,
        status_of(Error::MessageTooLarge)
    );
    assert_eq!(
        w.host.dma,
        [(true, 0, 0x8000_1000, 64), (false, 0, 0x8000_2000, 4096)]
    );
    // A restarted server of the endpoint keeps the grant.
    let p = Priority::new(5).unwrap();
    let d2 = w.o.spawn("devices-2", p).unwrap();
    w.host.servers = vec![(DEVICES_EP, d2)];
    assert_eq!(
        read(&mut w, d, 0),
        DENIED,
        "the old server no longer serves it"
    );
    assert_eq!(read(&mut w, d2, 0), OK);
    // Revoked, then granted again and ended by a reset.
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, 0, 0]).0, OK);
    assert_eq!(read(&mut w, d2, 0), DENIED);
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, DEVICES, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::VmReset, [0, 0, 0]).0, OK);
    assert_eq!(read(&mut w, d2, 0), DENIED, "a reset ends the grant");
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, DEVICES, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::VmDestroy, [0, 0, 0]).0, OK);
    assert_eq!(read(&mut w, d2, 0), UNKNOWN, "nor after a destroy");
    assert_eq!(w.host.dma.len(), 3);
}

#[test]
fn the_device_state_area_is_kept_for_the_servers_of_the_granted_endpoints() {
    let mut w = world();
    w.created(0);
    w.created(1);
    let (m, d) = (w.manager, w.devices);
    w.host.servers.push((DEVICES_EP, d));
    let end = ipc::syscall::DEVICE_STATE_BYTES;
    assert_eq!(w.call(d, Sysno::VmStateWrite, [0, 0, 16]).0, DENIED);
    assert_eq!(w.call(m, Sysno::VmGrantRam, [0, DEVICES, 0]).0, OK);
    assert_eq!(w.call(d, Sysno::VmStateWrite, [0, 256, 16]).0, OK);
    assert_eq!(w.call(d, Sysno::VmStateRead, [0, end - 8, 8]).0, OK);
    let range = status_of(Error::InvalidRange);
    assert_eq!(w.call(d, Sysno::VmStateRead, [0, end - 8, 9]).0, range);
    assert_eq!(w.call(d, Sysno::VmStateWrite, [0, usize::MAX, 2]).0, range);
    assert_eq!(w.call(d, Sysno::VmStateRead, [1, 0, 8]).0, DENIED, "per VM");
    assert_eq!(w.call(m, Sysno::VmStateRead, [0, 0, 8]).0, DENIED);
    assert_eq!(w.host.state, [(false, 0, 256, 16), (true, 0, end - 8, 8)]);
}

#[test]
fn ram_is_cloned_only_from_a_held_vm_into_another() {
    let mut w = world();
    w.created(0);
    w.created(1);
    let (m, d) = (w.manager, w.devices);
    assert_eq!(w.call(d, Sysno::VmCloneRam, [0, 1, 0]).0, DENIED);
    assert_eq!(w.call(m, Sysno::VmCloneRam, [0, 0, 0]).0, INVALID);
    assert_eq!(w.call(m, Sysno::VmCloneRam, [0, 4, 0]).0, UNKNOWN);
    assert_eq!(w.call(m, Sysno::VmStart, [0, 0, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::VmCloneRam, [0, 1, 0]).0, INVALID, "runs");
    assert!(w.host.clones.is_empty());
    assert_eq!(w.call(m, Sysno::VmPause, [0, 0, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::VmCloneRam, [0, 1, 0]).0, OK);
    assert_eq!(w.host.clones, [(0, 1)]);
}

#[test]
fn the_boot_calls_need_vm_control_and_pass_image_numbers_and_offsets_through() {
    let mut w = world();
    w.created(0);
    let (m, d) = (w.manager, w.devices);
    for call in [
        Sysno::ImageInfo,
        Sysno::ImageName,
        Sysno::VmWriteRam,
        Sysno::VmLoad,
        Sysno::VmStart,
    ] {
        assert_eq!(w.call(d, call, [0, 2, 0x20_0000]).0, DENIED);
    }
    assert!(w.host.boot.is_empty());
    assert_eq!(
        w.call(m, Sysno::ImageInfo, [2, 0, 0]),
        (OK, [31_167_488, 0, 0])
    );
    assert_eq!(w.call(m, Sysno::ImageName, [0, 0, 0]), (OK, [5, 8192, 0]));
    assert_eq!(
        w.call(m, Sysno::ImageName, [1, 0, 0]).0,
        status_of(Error::UnknownImage)
    );
    assert_eq!(
        w.call(m, Sysno::VmLoad, [0, 2, 0x20_0000]),
        (OK, [1234, 0, 0])
    );
    assert_eq!(w.call(m, Sysno::VmWriteRam, [0, 0x3ff_d000, 4096]).0, OK);
    assert_eq!(w.call(m, Sysno::VmWriteRam, [5, 0, 8]).0, UNKNOWN);
    assert_eq!(w.call(m, Sysno::VmStart, [0, 0x20_0000, 0x3ff_d000]).0, OK);
    assert_eq!(
        w.host.boot,
        [
            "info 2",
            "name 0",
            "name 1",
            "load 0 2 0x200000",
            "write 0 0x3ffd000 4096",
            "start 0 0x200000 0x3ffd000"
        ]
    );
}

/// The vm-manager learns how a VM it made ended: it is woken with the VM's
/// bit, then `vm_status` says powered off, reboot or stopped.
#[test]
fn vm_status_follows_the_lifecycle_and_says_how_a_guest_ended() {
    use ipc::syscall::vm_status;
    let mut w = world();
    w.created(3);
    let (m, d) = (w.manager, w.devices);
    assert_eq!(
        w.call(m, Sysno::VmStatus, [3, 0, 0]),
        (OK, [vm_status::CREATED, 0, 0])
    );
    assert_eq!(w.call(m, Sysno::VmStart, [3, 0, 0]).0, OK);
    assert_eq!(
        w.call(m, Sysno::VmStatus, [3, 0, 0]).1[0],
        vm_status::RUNNING
    );
    assert_eq!(w.call(m, Sysno::VmPause, [3, 0, 0]).0, OK);
    assert_eq!(
        w.call(m, Sysno::VmStatus, [3, 0, 0]).1[0],
        vm_status::PAUSED
    );
    assert_eq!(w.call(m, Sysno::VmResume, [3, 0, 0]).0, OK);
    let none = ipc::syscall::vm_exit::ExitRecord::default();
    assert_eq!(
        w.host.ipc.last(),
        Some(&(m.slot(), none.to_bytes().to_vec())),
        "a running VM's record says it has not ended"
    );
    // The guest powers off: the creator is told, with the VM's bit.
    let off = crate::vm::VmState::PoweredOff { reason: 1 }.exit_record(0x8020_0000);
    w.host.ended_as = Some((vm_status::POWERED_OFF, off));
    assert_eq!(
        control::ended(&mut w.o, 3),
        None,
        "the manager is not in recv"
    );
    assert_eq!(control::take_pending(&mut w.o, m), Some(1 << 3));
    assert_eq!(
        w.call(m, Sysno::VmStatus, [3, 0, 0]).1[0],
        vm_status::POWERED_OFF
    );
    // The reason travels in the caller's IPC buffer.
    let (task, bytes) = w.host.ipc.last().unwrap().clone();
    assert_eq!(task, m.slot());
    let record = ipc::syscall::vm_exit::ExitRecord::from_bytes(&bytes).unwrap();
    assert_eq!(record, off);
    assert_eq!(
        (record.kind, record.detail, record.pc),
        (ipc::syscall::vm_exit::POWER_OFF, 1, 0x8020_0000)
    );
    // An ended VM whose arch layer cannot tell is a stop of unknown kind.
    w.host.ended_as = None;
    assert_eq!(
        w.call(m, Sysno::VmStatus, [3, 0, 0]).1[0],
        vm_status::STOPPED
    );
    let record = ipc::syscall::vm_exit::ExitRecord::from_bytes(&w.host.ipc.last().unwrap().1);
    assert_eq!(
        record.map(|r| r.kind),
        Some(ipc::syscall::vm_exit::STOPPED_UNKNOWN)
    );
    let writes = w.host.ipc.len();
    assert_eq!(w.call(d, Sysno::VmStatus, [3, 0, 0]).0, DENIED);
    assert_eq!(w.call(m, Sysno::VmStatus, [9, 0, 0]).0, UNKNOWN);
    assert_eq!(w.host.ipc.len(), writes, "a refused call writes nothing");
}
