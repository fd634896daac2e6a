//! The VM, ioreq and console calls as a service sees them: rights checked
//! before anything happens, results in registers, the ioreq upcall in
//! `recv`.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::obj::cap::{Capability, Object};
use crate::obj::ids::Badge;
use crate::obj::rights::Rights;
use crate::obj::sched::{Priority, TaskState};
use crate::syscall;
use ipc::syscall::MAX_DEBUG_WRITE;
use ipc::syscall::status_of;

#[derive(Default)]
struct Host {
    results: BTreeMap<usize, (usize, [usize; 3])>,
    created: Vec<(usize, u64)>,
    destroyed: Vec<(usize, Option<usize>)>,
    lines: Vec<String>,
    slot_complete: bool,
    resumed: usize,
    posted: Vec<(usize, ipc::Space, u64, u64)>,
    /// The slot of `ioreq_forward`'s vCPU is PROCESSING.
    processing: bool,
    /// The answers the kernel carried to forwarded accesses.
    answers: Vec<(usize, usize, Option<ipc::devices::Response>)>,
    /// Each task's IPC buffer, as `read_message` finds it.
    buffers: BTreeMap<usize, Vec<u8>>,
}

impl crate::syscall_console::ConsoleHost for Host {}

impl crate::syscall_stats::StatsHost for Host {}

impl crate::syscall_entropy::EntropyHost for Host {}

// Every task's memory at 0x1000 reads as `x`s; nothing else is readable.
crate::test_machine::test_machine!(Host, |ptr: usize, out: &mut [u8]| {
    out.fill(b'x');
    ptr == 0x1000
});

impl VmHost for Host {
    fn vm_create(&mut self, vm: usize, ram_bytes: u64, _: usize, _: TlbTag) -> Result<(), Error> {
        self.created.push((vm, ram_bytes));
        Ok(())
    }
    fn vm_start(&mut self, _: usize, _: u64, _: u64) -> Result<(), Error> {
        Ok(())
    }
    fn vm_destroy(&mut self, vm: usize, ioreq: Option<TaskId>) {
        self.destroyed.push((vm, ioreq.map(|t| t.slot())));
    }
    fn ioreq_attach(&mut self, _: TaskId, vm: usize, _: Option<TaskId>) -> Result<usize, Error> {
        Ok(0x3000_0000 + vm * 4096)
    }
    fn ioreq_resume(&mut self, _: usize, _: usize) -> Result<(), Error> {
        if self.slot_complete {
            self.resumed += 1;
            Ok(())
        } else {
            Err(Error::BadSlotState)
        }
    }
    fn ioreq_forwardable(&mut self, _: usize, _: usize) -> Result<(), Error> {
        if self.processing {
            Ok(())
        } else {
            Err(Error::BadSlotState)
        }
    }
    fn ioreq_answer(
        &mut self,
        vm: usize,
        vcpu: usize,
        answer: Option<ipc::devices::Response>,
    ) -> Result<bool, Error> {
        if !self.processing {
            return Err(Error::BadSlotState);
        }
        self.answers.push((vm, vcpu, answer.clone()));
        // Completed and taken (FREE), or handed back (PENDING).
        self.processing = false;
        Ok(matches!(
            answer,
            Some(ipc::devices::Response::Value(_) | ipc::devices::Response::Ok)
        ))
    }
    fn read_message(&mut self, task: TaskId, out: &mut [u8]) -> bool {
        match self.buffers.get(&task.slot()) {
            Some(bytes) if bytes.len() >= out.len() => {
                out.copy_from_slice(&bytes[..out.len()]);
                true
            }
            _ => false,
        }
    }
    fn ioreq_post(
        &mut self,
        vm: usize,
        space: ipc::Space,
        start: u64,
        len: u64,
    ) -> Result<(), Error> {
        self.posted.push((vm, space, start, len));
        Ok(())
    }
    fn console_raw(&mut self, line: &[u8]) {
        self.lines.push(String::from_utf8_lossy(line).into_owned());
    }
    fn vm_describe(&mut self, _: TaskId, vm: usize) -> Result<u64, Error> {
        self.created
            .iter()
            .find(|(n, _)| *n == vm)
            .map(|(_, ram)| *ram)
            .ok_or(Error::UnknownVm)
    }
}

struct World {
    o: KernelObjects,
    host: Host,
    manager: TaskId,
    ioreq: TaskId,
    plain: TaskId,
}

fn world() -> World {
    let mut o = KernelObjects::new();
    let p = Priority::new(5).unwrap();
    let manager = o.spawn("vm-manager", p).unwrap();
    let ioreq = o.spawn("ioreq", p).unwrap();
    let plain = o.spawn("plain", p).unwrap();
    let rights = |o: &mut KernelObjects, t, r| o.tasks.get_mut(t).unwrap().set_kernel_rights(r);
    rights(&mut o, manager, KernelRights::VM_CONTROL);
    rights(
        &mut o,
        ioreq,
        KernelRights::IOREQ.union(KernelRights::CONSOLE),
    );
    let ep = o.endpoints.create().unwrap();
    let recv = Capability {
        object: Object::Endpoint {
            id: ep,
            badge: Badge::NONE,
        },
        rights: Rights::RECV,
    };
    let caps = o.tasks.get_mut(ioreq).unwrap().caps_mut();
    caps.insert_at(0, recv).unwrap();
    o.sched.schedule();
    World {
        o,
        host: Host::default(),
        manager,
        ioreq,
        plain,
    }
}

impl World {
    fn call(&mut self, task: TaskId, call: Sysno, args: [usize; 5]) -> (usize, [usize; 3]) {
        self.dispatch(task, call, args);
        self.host.results[&task.slot()]
    }

    /// Runs `call` for `task`, which may block (no result is read).
    fn dispatch(&mut self, task: TaskId, call: Sysno, args: [usize; 5]) {
        let mut a = [0; 6];
        a[..5].copy_from_slice(&args);
        syscall::dispatch(&mut self.o, &mut self.host, task, call as usize, a);
    }

    /// `client`'s `reply_recv` on its slot 0 with `answer` in its IPC
    /// buffer.
    fn reply_recv_with(&mut self, client: TaskId, answer: &[u8]) {
        self.host.buffers.insert(client.slot(), answer.to_vec());
        self.dispatch(client, Sysno::ReplyRecv, [0, answer.len(), 0, 0, 0]);
    }
}

const DENIED: usize = status_of(Error::PermissionDenied);

#[test]
fn vm_calls_need_vm_control_and_change_nothing_without_it() {
    let mut w = world();
    let (plain, ioreq) = (w.plain, w.ioreq);
    assert_eq!(w.call(plain, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, DENIED);
    assert_eq!(w.call(ioreq, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, DENIED);
    assert!(w.host.created.is_empty());
    assert_eq!(w.o.vms.get(0), Err(Error::UnknownVm));
    let manager = w.manager;
    assert_eq!(w.call(manager, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, OK);
    assert_eq!(w.host.created, [(0, 64 << 20)]);
    assert_eq!(w.call(plain, Sysno::VmStart, [0; 5]).0, DENIED);
    assert_eq!(w.call(plain, Sysno::VmDestroy, [0; 5]).0, DENIED);
    assert!(w.o.vms.get(0).is_ok());
}

#[test]
fn a_restarted_manager_adopts_a_vm_and_hears_when_it_ends() {
    let mut w = world();
    let (manager, plain) = (w.manager, w.plain);
    assert_eq!(w.call(manager, Sysno::VmCreate, [2, 64, 1, 0, 0]).0, OK);
    assert_eq!(w.call(manager, Sysno::VmStart, [2, 0, 0, 0, 0]).0, OK);
    // The manager dies; its successor (another task with the right)
    // takes the VM over and learns how it stands.
    let successor = w.o.spawn("vm-manager", Priority::new(5).unwrap()).unwrap();
    w.o.tasks
        .get_mut(successor)
        .unwrap()
        .set_kernel_rights(KernelRights::VM_CONTROL);
    assert_eq!(w.call(plain, Sysno::VmAdopt, [2, 0, 0, 0, 0]).0, DENIED);
    assert_eq!(
        w.call(successor, Sysno::VmAdopt, [2, 0, 0, 0, 0]),
        (OK, [ipc::syscall::vm_status::RUNNING, 64, 1])
    );
    assert_eq!(w.o.vms.get(2).unwrap().controller, Some(successor));
    assert_eq!(
        w.call(successor, Sysno::VmAdopt, [3, 0, 0, 0, 0]).0,
        status_of(Error::UnknownVm)
    );
    // The guest ends: the successor is the one told.
    assert_eq!(
        crate::vm::control::ended(&mut w.o, 2).map(|(task, _)| task),
        None,
        "it does not wait in recv, so the bit is left pending"
    );
    assert!(w.o.vms.has_pending(successor));
    assert!(!w.o.vms.has_pending(manager));
}

#[test]
fn vm_create_checks_its_arguments() {
    let mut w = world();
    let m = w.manager;
    let invalid = status_of(Error::InvalidArgument);
    assert_eq!(
        w.call(m, Sysno::VmCreate, [MAX_VMS, 64, 1, 0, 0]).0,
        invalid
    );
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 0, 1, 0, 0]).0, invalid);
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 3, 1, 0, 0]).0, invalid);
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, 9, 0, 0]).0, invalid); // past MAX_VCPUS
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, OK);
    let exists = status_of(Error::VmExists);
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, exists);
    assert_eq!(w.call(m, Sysno::VmPause, [0; 5]).0, invalid, "not running");
    assert_eq!(
        w.call(m, Sysno::VmStart, [9; 5]).0,
        status_of(Error::UnknownVm)
    );
}

#[test]
fn console_write_needs_the_console_right_and_prints_the_raw_line() {
    let mut w = world();
    let (plain, ioreq) = (w.plain, w.ioreq);
    assert_eq!(
        w.call(plain, Sysno::ConsoleWrite, [0x1000, 3, 0, 0, 0]).0,
        DENIED
    );
    assert!(w.host.lines.is_empty());
    assert_eq!(
        w.call(ioreq, Sysno::ConsoleWrite, [0x1000, 3, 0, 0, 0]).0,
        OK
    );
    assert_eq!(w.host.lines, ["xxx"]);
    let too_long = [0x1000, MAX_DEBUG_WRITE + 1, 0, 0, 0];
    let status = w.call(ioreq, Sysno::ConsoleWrite, too_long).0;
    assert_eq!(status, status_of(Error::MessageTooLarge));
    let bad = w.call(ioreq, Sysno::ConsoleWrite, [0x9000, 3, 0, 0, 0]).0;
    assert_eq!(bad, status_of(Error::InvalidArgument));
}

fn running_vm_with_io(w: &mut World) {
    let (m, ioreq) = (w.manager, w.ioreq);
    assert_eq!(w.call(m, Sysno::VmCreate, [1, 64, 1, 0, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::VmStart, [1, 0, 0, 0, 0]).0, OK);
    let (status, values) = w.call(ioreq, Sysno::IoreqAttach, [1, 0, 0, 0, 0]);
    assert_eq!((status, values[0]), (OK, 0x3000_1000));
    control::io_exit(&mut w.o, 1, 0);
}

#[test]
fn recv_with_pending_io_returns_at_once_with_the_ioreq_badge() {
    let mut w = world();
    running_vm_with_io(&mut w);
    let ioreq = w.ioreq;
    let (status, values) = w.call(ioreq, Sysno::Recv, [0; 5]);
    assert_eq!((status, values), (OK, [0, IOREQ_BADGE, 1 << 1]));
    assert_ne!(w.o.sched.state(ioreq), Some(TaskState::BlockedRecv));
    // Taken: the next recv waits for a message.
    w.host.results.clear();
    w.call_blocking_recv(ioreq);
    assert_eq!(w.o.sched.state(ioreq), Some(TaskState::BlockedRecv));
}

impl World {
    fn call_blocking_recv(&mut self, task: TaskId) {
        self.dispatch(task, Sysno::Recv, [0; 5]);
    }
}

#[test]
fn reply_recv_with_pending_io_returns_at_once_too() {
    let mut w = world();
    running_vm_with_io(&mut w);
    let ioreq = w.ioreq;
    let (status, values) = w.call(ioreq, Sysno::ReplyRecv, [0; 5]);
    assert_eq!((status, values), (OK, [0, IOREQ_BADGE, 1 << 1]));
}

#[test]
fn ioreq_resume_refuses_an_incomplete_slot_and_then_resumes_the_vcpu() {
    let mut w = world();
    running_vm_with_io(&mut w);
    let (ioreq, plain) = (w.ioreq, w.plain);
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    assert_eq!(w.call(plain, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0, DENIED);
    let bad = status_of(Error::BadSlotState);
    assert_eq!(w.call(ioreq, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0, bad);
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held), "still waits");
    w.host.slot_complete = true;
    assert_eq!(w.call(ioreq, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0, OK);
    assert_eq!(w.host.resumed, 1);
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Ready));
    assert_eq!(
        w.call(ioreq, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0,
        bad,
        "once"
    );
}

/// Only the VM's own ioreq task may let the kernel post its writes, and
/// only MMIO or port I/O.
#[test]
fn ioreq_post_is_for_the_vms_ioreq_task_only() {
    let mut w = world();
    let (m, ioreq, plain) = (w.manager, w.ioreq, w.plain);
    assert_eq!(w.call(m, Sysno::VmCreate, [1, 64, 1, 0, 0]).0, OK);
    let args = [1, 0, 0x1000_0000, 1, 0];
    let denied = status_of(Error::PermissionDenied);
    assert_eq!(
        w.call(ioreq, Sysno::IoreqPost, args).0,
        denied,
        "not attached"
    );
    assert_eq!(w.call(ioreq, Sysno::IoreqAttach, [1, 0, 0, 0, 0]).0, OK);
    assert_eq!(w.call(plain, Sysno::IoreqPost, args).0, DENIED, "no right");
    assert_eq!(w.call(m, Sysno::IoreqPost, args).0, DENIED, "no right");
    let bad = status_of(Error::InvalidArgument);
    assert_eq!(
        w.call(ioreq, Sysno::IoreqPost, [1, 2, 0, 1, 0]).0,
        bad,
        "PCI configuration space"
    );
    assert_eq!(
        w.call(ioreq, Sysno::IoreqPost, [2, 0, 0, 1, 0]).0,
        status_of(Error::UnknownVm)
    );
    assert!(w.host.posted.is_empty());
    assert_eq!(w.call(ioreq, Sysno::IoreqPost, args).0, OK);
    assert_eq!(w.call(ioreq, Sysno::IoreqPost, [1, 1, 0x3f8, 1, 0]).0, OK);
    assert_eq!(
        w.host.posted,
        [
            (1, ipc::Space::Mmio, 0x1000_0000, 1),
            (1, ipc::Space::Pio, 0x3f8, 1)
        ]
    );
}

#[test]
fn destroy_while_waiting_for_io_returns_everything() {
    let mut w = world();
    running_vm_with_io(&mut w);
    let (m, ioreq) = (w.manager, w.ioreq);
    assert_eq!(w.call(m, Sysno::VmDestroy, [1, 0, 0, 0, 0]).0, OK);
    assert_eq!(w.host.destroyed, [(1, Some(ioreq.slot()))]);
    let unknown = status_of(Error::UnknownVm);
    assert_eq!(
        w.call(ioreq, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0,
        unknown
    );
    assert_eq!(w.call(m, Sysno::VmDestroy, [1, 0, 0, 0, 0]).0, unknown);
}

#[test]
fn ioreq_calls_need_the_ioreq_right() {
    let mut w = world();
    let m = w.manager;
    assert_eq!(w.call(m, Sysno::VmCreate, [0, 64, 1, 0, 0]).0, OK);
    assert_eq!(w.call(m, Sysno::IoreqAttach, [0, 0, 0, 0, 0]).0, DENIED);
    assert_eq!(w.o.vms.get(0).unwrap().ioreq_task, None);
}

/// The world of `ioreq_forward`: VM 1's vCPU waits on an access the ioreq
/// task took (PROCESSING), and a `devices` task waits to receive on an
/// endpoint the ioreq task may call (slot 1, badge 7). Returns devices.
fn forwarding_world(w: &mut World) -> TaskId {
    running_vm_with_io(w);
    let devices = w.o.spawn("devices", Priority::new(5).unwrap()).unwrap();
    let ep = w.o.endpoints.create().unwrap();
    let cap = |badge, rights| Capability {
        object: Object::Endpoint { id: ep, badge },
        rights,
    };
    let ioreq = w.ioreq;
    let caps = w.o.tasks.get_mut(ioreq).unwrap().caps_mut();
    caps.insert_at(1, cap(Badge(7), Rights::CALL)).unwrap();
    let caps = w.o.tasks.get_mut(devices).unwrap().caps_mut();
    caps.insert_at(0, cap(Badge::NONE, Rights::RECV)).unwrap();
    w.call_blocking_recv(devices);
    assert_eq!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
    // The ioreq task took the wake-up and the access.
    let (status, values) = w.call(ioreq, Sysno::Recv, [0; 5]);
    assert_eq!((status, values), (OK, [0, IOREQ_BADGE, 1 << 1]));
    w.host.processing = true;
    devices
}

/// `ioreq_forward(call_slot 1, len 9, vm 1, vcpu 0, recv_slot 0)`.
const FORWARD: [usize; 5] = [1, 9, 1, 0, 0];

#[test]
fn a_forward_is_refused_with_nothing_done_unless_everything_holds() {
    let mut w = world();
    let devices = forwarding_world(&mut w);
    let (ioreq, plain) = (w.ioreq, w.plain);
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    assert_eq!(w.call(plain, Sysno::IoreqForward, FORWARD).0, DENIED);
    let bad = status_of(Error::BadSlotState);
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, [1, 9, 1, 1, 0]).0,
        status_of(Error::InvalidArgument),
        "no vCPU 1"
    );
    w.host.processing = false;
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, FORWARD).0,
        bad,
        "not PROCESSING"
    );
    w.host.processing = true;
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, [2, 9, 1, 0, 0]).0,
        status_of(Error::InvalidArgument),
        "no endpoint in slot 2"
    );
    let too_long = ipc::syscall::IPC_BUFFER_SIZE + 1;
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, [1, too_long, 1, 0, 0]).0,
        status_of(Error::MessageTooLarge)
    );
    assert_eq!(
        w.o.sched.state(devices),
        Some(TaskState::BlockedRecv),
        "still waits"
    );
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held));
    assert!(!control::owes_forward(&w.o, devices));
    // The client busy (not receiving): refused, for the service to call.
    w.o.endpoints.cancel_recv(devices);
    w.o.sched.unblock(devices).unwrap();
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, FORWARD).0,
        status_of(Error::KernelRefused)
    );
    assert!(w.host.answers.is_empty());
}

#[test]
fn a_plain_answer_to_a_forwarded_access_resumes_the_vcpu() {
    let mut w = world();
    let devices = forwarding_world(&mut w);
    let ioreq = w.ioreq;
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    w.host.results.clear();
    w.dispatch(ioreq, Sysno::IoreqForward, FORWARD);
    // The client has the access (len 9, the ioreq task's badge) and runs;
    // the ioreq task waits for its next request.
    assert_eq!(w.host.results[&devices.slot()], (OK, [9, 7, 0]));
    assert_eq!(w.o.sched.state(ioreq), Some(TaskState::BlockedRecv));
    assert_ne!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held));
    assert!(control::owes_forward(&w.o, devices));
    // The client's `reply_recv` with `Value(0x60)`: the kernel completes
    // the access and the vCPU may run; the client waits again.
    answer_0x60(&mut w, devices, vcpu);
    assert_eq!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
    assert!(!control::owes_forward(&w.o, devices));
    assert_eq!(
        w.o.vms.get(1).unwrap().vcpus()[0].forward,
        control::Forward::None
    );
}

/// An ioreq service that restarted while a client held an access finds
/// its slot PROCESSING and adopts it: the kernel refuses to forward it a
/// second time with its own error (the service must not call the client
/// with it either), and the client's answer still completes it.
#[test]
fn an_access_a_client_holds_is_not_forwarded_again() {
    let mut w = world();
    let devices = forwarding_world(&mut w);
    let ioreq = w.ioreq;
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    forwarded(&mut w, devices);
    // The service (restarted, say) runs again and tries the access anew.
    w.o.endpoints.cancel_recv(ioreq);
    w.o.sched.unblock(ioreq).unwrap();
    w.host.processing = true;
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, [1, 9, 1, 0, NO_RECV]).0,
        status_of(Error::Forwarded)
    );
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held));
    assert!(control::owes_forward(&w.o, devices));
    answer_0x60(&mut w, devices, vcpu);
}

/// `devices` answers the access it holds with `Value(0x60)`: the kernel
/// completes it with that value and the vCPU's task `vcpu` may run.
fn answer_0x60(w: &mut World, devices: TaskId, vcpu: TaskId) {
    w.reply_recv_with(devices, &[1, 0x60]);
    assert_eq!(
        w.host.answers,
        [(1, 0, Some(ipc::devices::Response::Value(0x60)))]
    );
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Ready));
}

/// Forwards the access of [`forwarding_world`] to `devices`, with the
/// ioreq task waiting to receive after.
fn forwarded(w: &mut World, devices: TaskId) {
    let ioreq = w.ioreq;
    w.dispatch(ioreq, Sysno::IoreqForward, FORWARD);
    assert!(control::owes_forward(&w.o, devices));
    assert_eq!(w.o.sched.state(ioreq), Some(TaskState::BlockedRecv));
}

/// After a hand-back: the ioreq task was woken with the VM's bit, the
/// vCPU still waits, the access may not be forwarded again, and the
/// service completes it itself.
fn assert_handed_back(w: &mut World) {
    let ioreq = w.ioreq;
    let vcpu = w.o.vms.get(1).unwrap().vcpus()[0].task;
    assert_eq!(
        w.host.results[&ioreq.slot()],
        (OK, [0, IOREQ_BADGE, 1 << 1])
    );
    assert_ne!(w.o.sched.state(ioreq), Some(TaskState::BlockedRecv));
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Held));
    w.host.processing = true;
    assert_eq!(
        w.call(ioreq, Sysno::IoreqForward, FORWARD).0,
        status_of(Error::BadSlotState),
        "handed back once: not forwarded again"
    );
    w.host.slot_complete = true;
    assert_eq!(w.call(ioreq, Sysno::IoreqResume, [1, 0, 0, 0, 0]).0, OK);
    assert_eq!(w.o.sched.state(vcpu), Some(TaskState::Ready));
    assert_eq!(
        w.o.vms.get(1).unwrap().vcpus()[0].forward,
        control::Forward::None
    );
}

#[test]
fn an_answer_other_than_the_plain_one_hands_the_access_back() {
    let mut w = world();
    let devices = forwarding_world(&mut w);
    forwarded(&mut w, devices);
    // `Response::Err(UnknownVm)` as postcard writes it (a restarted
    // client that does not know the VM yet).
    let mut buf = [0u8; 16];
    let err = ipc::devices::Response::Err(Error::UnknownVm);
    let len = ipc::devices::wire::encode_response(&err, &mut buf).unwrap();
    w.reply_recv_with(devices, &buf[..len]);
    assert_eq!(w.host.answers, [(1, 0, None)]);
    assert_eq!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
    assert_handed_back(&mut w);
}

#[test]
fn a_client_that_dies_or_receives_again_owing_the_answer_hands_the_access_back() {
    for dies in [true, false] {
        let mut w = world();
        let devices = forwarding_world(&mut w);
        forwarded(&mut w, devices);
        if dies {
            syscall::kill(
                &mut w.o,
                &mut w.host,
                devices,
                crate::obj::task::ExitReason::Killed,
            );
        } else {
            w.call_blocking_recv(devices);
            assert_eq!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
        }
        assert_eq!(w.host.answers, [(1, 0, None)], "dies: {dies}");
        assert!(!control::owes_forward(&w.o, devices));
        assert_handed_back(&mut w);
    }
}

#[test]
fn an_answer_to_an_access_the_vm_no_longer_has_is_dropped() {
    let mut w = world();
    let devices = forwarding_world(&mut w);
    forwarded(&mut w, devices);
    let m = w.manager;
    assert_eq!(w.call(m, Sysno::VmReset, [1, 0, 0, 0, 0]).0, OK);
    w.reply_recv_with(devices, &[1, 0x60]);
    assert!(
        w.host.answers.is_empty(),
        "the reset VM's slot is not touched"
    );
    assert!(!control::owes_forward(&w.o, devices));
    assert_eq!(w.o.sched.state(devices), Some(TaskState::BlockedRecv));
}
