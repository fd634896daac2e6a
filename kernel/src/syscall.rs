//! The system-call dispatcher: decodes a call (number and argument words as
//! the arch layer found them in registers, see `ipc::syscall`), runs it on
//! the kernel objects, and tells the [`Machine`] which results land in which
//! task's registers and which message bytes to copy. Faults and exits go
//! through [`kill`], which reports the death and releases IPC partners.
//!
//! Register writes are deferred for blocked tasks: a task blocked in `call`,
//! `recv` or `wait` gets its results when the event that wakes it happens.

// Registers, addresses and notification words are all 64 bits wide on the
// targets with user tasks (RV64, x86_64).
#![allow(clippy::cast_possible_truncation)]

use ipc::Error;
use ipc::syscall::{MAX_CALL_TICKS, MAX_DEBUG_WRITE, OK, Sysno, status_of};

use crate::obj::cap::{CapError, Object, ObjectKind};
use crate::obj::endpoint::IpcError;
use crate::obj::ids::TaskId;
use crate::obj::objects::{IpcStep, KernelObjects, ObjError};
use crate::obj::rights::Rights;
use crate::obj::sched::Decision;
use crate::obj::task::{DeathNotice, ExitReason};
use crate::syscall_console::{self, ConsoleHost};
use crate::syscall_device::{self, DeviceHost};
use crate::syscall_entropy::{self, EntropyHost};
use crate::syscall_stats::{self, StatsHost};
use crate::syscall_vm::{self, VmHost};
use crate::vm::control;

/// What the dispatcher needs from the machine: register results, message
/// copies between IPC buffers, user-memory reads and task restarts.
pub trait Machine: VmHost + ConsoleHost + StatsHost + EntropyHost {
    /// Sets `task`'s result registers: `status` (a0) and `values` (a1-a3).
    fn set_result(&mut self, task: TaskId, status: usize, values: [usize; 3]);
    /// Sets `task`'s result registers from `result`: `OK` and its values,
    /// or the error's status and zeros.
    fn set_outcome(&mut self, task: TaskId, result: Result<[usize; 3], Error>) {
        match result {
            Ok(values) => self.set_result(task, OK, values),
            Err(e) => self.set_result(task, status_of(e), [0; 3]),
        }
    }
    /// Copies the first `len` (at most `ipc::MAX_MESSAGE_SIZE`) bytes of
    /// `from`'s IPC buffer to `to`'s.
    fn copy_message(&mut self, from: TaskId, to: TaskId, len: usize);
    /// Copies `out.len()` bytes at user address `ptr` of `task` into `out`;
    /// `false` if any byte is not readable user memory of that task.
    fn read_user(&mut self, task: TaskId, ptr: usize, out: &mut [u8]) -> bool;
    /// Prints a line a task wrote with `debug_write`.
    fn console_line(&mut self, task: TaskId, line: &[u8]);
    /// Prints the kernel's report of a death.
    fn report_death(&mut self, notice: &DeathNotice);
    /// The supervisor task (the only one that may restart others).
    fn supervisor(&self) -> Option<TaskId>;
    /// The live task that serves endpoint number `endpoint`, if any (none
    /// on a machine without boot-image services).
    fn server_of(&self, _objects: &KernelObjects, _endpoint: usize) -> Option<TaskId> {
        None
    }
    /// The endpoint number `task` serves (its boot-image entry's), if any.
    fn endpoint_of(&self, _task: TaskId) -> Option<usize> {
        None
    }
    /// Starts a fresh copy of the dead task of `dead` (already reaped).
    fn restart(
        &mut self,
        objects: &mut KernelObjects,
        dead: &DeathNotice,
    ) -> Result<Restarted, Error>;
    /// Device windows and DMA frames (`syscall_device`); `None` on a
    /// machine without them.
    fn devices(&mut self) -> Option<&mut dyn DeviceHost> {
        None
    }
}

/// A task started again in place of a dead one, as its supervisor learns
/// of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restarted {
    /// The new task.
    pub task: TaskId,
    /// The endpoint it serves, if any.
    pub serves: Option<u8>,
    /// How long the dead copy ran, in milliseconds.
    pub lived_ms: u64,
}

/// The `ipc::Error` a task sees for a refused kernel-object operation.
pub fn error_for(e: ObjError) -> Error {
    match e {
        ObjError::Cap(CapError::MissingRights { .. }) => Error::PermissionDenied,
        ObjError::Cap(_) => Error::InvalidArgument,
        ObjError::Ipc(IpcError::MessageTooLong { .. }) => Error::MessageTooLarge,
        ObjError::Ipc(IpcError::ServerDied) => Error::ServerDied,
        ObjError::Ipc(IpcError::TimedOut) => Error::TimedOut,
        ObjError::Ipc(IpcError::OutOfEndpoints) => Error::KernelRefused,
        ObjError::Ipc(_) | ObjError::Notification(_) | ObjError::Task(_) => Error::InvalidArgument,
        ObjError::Sched(_) => Error::KernelRefused,
    }
}

/// Runs system call `nr` with `args` (a0-a5) for the running task `current`;
/// returns what the CPU does next.
pub fn dispatch<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    nr: usize,
    args: [usize; 6],
) -> Decision {
    let Some(call) = Sysno::from_usize(nr) else {
        machine.set_result(current, status_of(Error::InvalidArgument), [0; 3]);
        return Decision::Continue;
    };
    let done = |m: &mut M, values| {
        m.set_result(current, OK, values);
        Decision::Continue
    };
    let result = match call {
        Sysno::DebugWrite => return debug_write(machine, current, args[0], args[1]),
        Sysno::Exit => {
            let code = u32::try_from(args[0]).unwrap_or(u32::MAX);
            return kill(objects, machine, current, ExitReason::Exited { code });
        }
        Sysno::Yield => {
            machine.set_result(current, OK, [0; 3]);
            return objects.sched.yield_now();
        }
        Sysno::Call => objects.call(current, args[0], args[1]),
        Sysno::CallTimed => {
            if !(1..=MAX_CALL_TICKS).contains(&args[2]) {
                return fail_with(machine, current, Error::InvalidArgument);
            }
            let deadline = crate::ticks::count().saturating_add(args[2] as u64);
            objects.call_timed(current, args[0], args[1], deadline)
        }
        Sysno::Recv => {
            // A client that receives again without answering an access
            // forwarded to it gives the access up.
            if control::owes_forward(objects, current) {
                syscall_vm::answer_forward(objects, machine, current, None);
            }
            if syscall_vm::recv_pending(objects, machine, current) {
                return Decision::Continue;
            }
            objects.recv(current, args[0])
        }
        Sysno::IoreqForward => return syscall_vm::forward(objects, machine, current, args),
        Sysno::IoreqCompleteRecv => {
            let (vm, vcpu, slot) = (args[0], args[1], args[2]);
            if let Err(e) = syscall_vm::resume_vcpu(objects, machine, current, vm, vcpu) {
                machine.set_result(current, status_of(e), [0; 3]);
                return Decision::Continue;
            }
            if syscall_vm::recv_pending(objects, machine, current) {
                return objects.sched.schedule();
            }
            objects.recv(current, slot)
        }
        Sysno::Reply | Sysno::ReplyRecv if control::owes_forward(objects, current) => {
            let len = if call == Sysno::Reply {
                args[0]
            } else {
                args[1]
            };
            syscall_vm::answer_forward(objects, machine, current, Some(len));
            if call == Sysno::Reply {
                return done(machine, [0; 3]);
            }
            if syscall_vm::recv_pending(objects, machine, current) {
                return objects.sched.schedule();
            }
            return recv_after(objects, machine, current, args[0]);
        }
        Sysno::Reply => match objects.reply(current, args[0]) {
            // The caller died after its request was taken: nothing to answer.
            Err(ObjError::Ipc(IpcError::CallerDied)) => return done(machine, [0; 3]),
            other => other,
        },
        Sysno::ReplyRecv if objects.vms.has_pending(current) => {
            // Reply (if owed), then return at once with the ioreq work.
            let decision = match objects.reply(current, args[1]) {
                Ok(step) => apply_step(objects, machine, current, step),
                Err(_) => objects.sched.schedule(),
            };
            syscall_vm::recv_pending(objects, machine, current);
            return decision;
        }
        Sysno::ReplyRecv => objects
            .reply_recv(current, args[0], args[1])
            .map(|(_, step)| step),
        Sysno::Signal => {
            return match objects.signal(current, args[0]) {
                Ok(decision) => {
                    deliver_woken(objects, machine);
                    machine.set_result(current, OK, [0; 3]);
                    decision
                }
                Err(e) => fail(machine, current, e),
            };
        }
        Sysno::Wait | Sysno::WaitTimed => {
            let deadline = if call == Sysno::WaitTimed {
                if !(1..=MAX_CALL_TICKS).contains(&args[1]) {
                    return fail_with(machine, current, Error::InvalidArgument);
                }
                Some(crate::ticks::count().saturating_add(args[1] as u64))
            } else {
                None
            };
            return match objects.wait_until(current, args[0], deadline) {
                Ok((Some(bits), decision)) => {
                    machine.set_result(current, OK, [bits as usize, 0, 0]);
                    decision
                }
                Ok((None, decision)) => decision,
                Err(e) => fail(machine, current, e),
            };
        }
        Sysno::Poll => {
            return match poll(objects, current, args[0]) {
                Ok(bits) => done(machine, [bits as usize, 0, 0]),
                Err(e) => fail(machine, current, e),
            };
        }
        Sysno::Restart => return restart(objects, machine, current, args[0]),
        Sysno::KillServer => {
            if machine.supervisor() != Some(current) {
                return fail_with(machine, current, Error::PermissionDenied);
            }
            let Some(victim) = machine.server_of(objects, args[0]) else {
                return fail_with(machine, current, Error::InvalidArgument);
            };
            machine.set_result(current, OK, [victim.slot(), 0, 0]);
            return kill(objects, machine, victim, ExitReason::Killed);
        }
        Sysno::ConsoleRead | Sysno::Halt | Sysno::ConsolePut => {
            let wait = &mut *syscall_console::WAIT.lock();
            return syscall_console::dispatch(wait, objects, machine, current, call, args);
        }
        Sysno::MemInfo => return syscall_stats::mem_info(machine, current),
        Sysno::PlatformInfo => return syscall_stats::platform_info(machine, current),
        Sysno::Entropy => return syscall_entropy::entropy(objects, machine, current),
        Sysno::DeviceMap | Sysno::DmaAlloc | Sysno::Sleep => {
            let grants = &mut *syscall_device::GRANTS.lock();
            let now = crate::ticks::count();
            return syscall_device::dispatch(grants, objects, machine, current, call, args, now);
        }
        Sysno::ConsoleWrite
        | Sysno::VmCreate
        | Sysno::VmLoad
        | Sysno::VmSetDtb
        | Sysno::VmStart
        | Sysno::VmPause
        | Sysno::VmResume
        | Sysno::VmReset
        | Sysno::VmDestroy
        | Sysno::IoreqAttach
        | Sysno::IoreqResume
        | Sysno::IoreqPost
        | Sysno::VmSetExternalIrq
        | Sysno::VmWriteGenid
        | Sysno::VmCloneRam
        | Sysno::ImageInfo
        | Sysno::ImageName
        | Sysno::VmWriteRam
        | Sysno::VmGrantRam
        | Sysno::VmRamRead
        | Sysno::VmRamWrite
        | Sysno::VmStateRead
        | Sysno::VmStateWrite
        | Sysno::VmStatus
        | Sysno::VmAdopt
        | Sysno::VmSetNote
        | Sysno::VmSetName
        | Sysno::VmStats => {
            return syscall_vm::dispatch(objects, machine, current, call, args);
        }
    };
    match result {
        Ok(step) => apply_step(objects, machine, current, step),
        Err(e) => fail(machine, current, e),
    }
}

/// `current` receives on the endpoint capability in `slot` after a call
/// that did something first (`ioreq_complete_recv`, `ioreq_forward`, a
/// forwarded access answered): its result comes with the message, or is
/// the error.
pub fn recv_after<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    slot: usize,
) -> Decision {
    match objects.recv(current, slot) {
        Ok(step) => apply_step(objects, machine, current, step),
        Err(e) => fail(machine, current, e),
    }
}

/// Kills `victim` for `reason` (a fault, or its own exit): reports it,
/// answers every caller it owed a reply with `ServerDied`, and wakes the
/// supervisor with the death bit.
pub fn kill<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    victim: TaskId,
    reason: ExitReason,
) -> Decision {
    // A client that dies owing the answer to a forwarded access gives it up.
    if control::owes_forward(objects, victim) {
        syscall_vm::answer_forward(objects, machine, victim, None);
    }
    match objects.kill(victim, reason) {
        Ok(report) => {
            if let Some(host) = machine.devices() {
                syscall_device::GRANTS.lock().task_died(host, victim);
            }
            machine.report_death(&report.notice);
            for caller in report.released.iter() {
                machine.set_result(caller, status_of(Error::ServerDied), [0; 3]);
            }
            deliver_woken(objects, machine);
            report.decision
        }
        // Already dead or stale: nothing runs it any more.
        Err(_) => objects.sched.schedule(),
    }
}

pub(crate) fn fail<M: Machine>(machine: &mut M, current: TaskId, e: ObjError) -> Decision {
    fail_with(machine, current, error_for(e))
}

pub(crate) fn fail_with<M: Machine>(machine: &mut M, current: TaskId, e: Error) -> Decision {
    machine.set_result(current, status_of(e), [0; 3]);
    Decision::Continue
}

/// On each timer tick: tasks whose timed call or wait fell due stop
/// waiting, and their call or wait fails with `Error::TimedOut`.
pub fn time_out<M: Machine>(objects: &mut KernelObjects, machine: &mut M, now: u64) {
    for caller in objects.time_out(now).iter() {
        machine.set_result(caller, status_of(Error::TimedOut), [0; 3]);
    }
}

fn deliver_woken<M: Machine>(objects: &mut KernelObjects, machine: &mut M) {
    if let Some((task, bits)) = objects.take_woken_waiter() {
        machine.set_result(task, OK, [bits as usize, 0, 0]);
    }
}

pub fn apply_step<M: Machine>(
    objects: &KernelObjects,
    machine: &mut M,
    current: TaskId,
    step: IpcStep,
) -> Decision {
    let mut current_got_message = false;
    for t in step.outcome.transfers() {
        machine.copy_message(t.from, t.to, t.len);
        machine.set_result(t.to, OK, [t.len, t.badge.0 as usize, 0]);
        current_got_message |= t.to == current;
    }
    let blocked = objects.sched.state(current).is_some_and(|s| s.is_blocked());
    if !blocked && !current_got_message {
        machine.set_result(current, OK, [0; 3]);
    }
    step.decision
}

fn debug_write<M: Machine>(machine: &mut M, task: TaskId, ptr: usize, len: usize) -> Decision {
    let mut line = [0u8; MAX_DEBUG_WRITE];
    let status = match line.get_mut(..len) {
        None => status_of(Error::MessageTooLarge),
        Some(buf) => {
            if machine.read_user(task, ptr, buf) {
                machine.console_line(task, buf);
                OK
            } else {
                status_of(Error::InvalidArgument)
            }
        }
    };
    machine.set_result(task, status, [0; 3]);
    Decision::Continue
}

fn poll(objects: &mut KernelObjects, task: TaskId, slot: usize) -> Result<u64, ObjError> {
    let cap =
        *objects
            .tasks
            .get(task)?
            .caps()
            .lookup(slot, ObjectKind::Notification, Rights::RECV)?;
    match cap.object {
        Object::Notification { id, .. } => Ok(objects.notifications.poll(id)?),
        other => Err(CapError::WrongType {
            slot,
            expected: ObjectKind::Notification,
            found: other.kind(),
        }
        .into()),
    }
}

fn restart<M: Machine>(
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    slot: usize,
) -> Decision {
    let result = if machine.supervisor() != Some(current) {
        Err(Error::PermissionDenied)
    } else {
        match objects.tasks.id_at(slot) {
            Some(dead) => match objects.reap(dead) {
                Ok(notice) => machine.restart(objects, &notice),
                Err(_) => Err(Error::InvalidArgument),
            },
            None => Err(Error::InvalidArgument),
        }
    };
    let values = result.map(|new| {
        let serves = new.serves.map_or(ipc::syscall::SERVES_NOTHING, usize::from);
        let lived = usize::try_from(new.lived_ms).unwrap_or(usize::MAX);
        [new.task.slot(), serves, lived]
    });
    machine.set_outcome(current, values);
    objects.sched.schedule()
}

#[cfg(test)]
#[path = "syscall_tests.rs"]
mod tests;
