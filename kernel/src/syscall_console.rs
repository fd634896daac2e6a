//! The console system calls (`ipc::syscall` numbers 22-24): reading what is
//! typed at the hypervisor console (`console_read`, waiting without
//! stopping the machine), printing a partial line (`console_put`: a prompt,
//! echoed keys) and powering off (`halt`). Rights: CONSOLE for the first
//! two, HALT or SUPERVISOR for `halt`.
//!
//! A task that finds no byte pending is held (`TaskState::Held`, like a
//! vCPU that may not run) and remembered in a [`ConsoleWait`]; the runner
//! calls [`poll_input`] on every timer tick and when the hart idles, which
//! hands the bytes over in the task's result registers and makes it ready.

// Registers and byte-packed words are 64 bits wide on the targets with user
// tasks (RV64, x86_64).
#![allow(clippy::cast_possible_truncation)]

use ipc::Error;
use ipc::syscall::{MAX_CONSOLE_READ, MAX_DEBUG_WRITE, OK, Sysno, status_of};
use mica_boot::image::KernelRights;

use crate::obj::ids::TaskId;
use crate::obj::objects::KernelObjects;
use crate::obj::sched::{Decision, TaskState};
use crate::syscall::Machine;

/// What the machine does for the console calls. The defaults are a
/// console with no input that cannot power off.
pub trait ConsoleHost {
    /// Reads the bytes typed at the console that are pending now, up to
    /// `buf.len()`, without waiting; returns how many.
    fn console_read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
    /// Prints `bytes` without ending the line.
    fn console_put(&mut self, _bytes: &[u8]) {}
    /// Powers the machine off: QEMU exits 0 when `success`. Returns only
    /// on a machine that cannot (a test double).
    fn halt(&mut self, _success: bool) {}
}

/// The task waiting in `console_read`, and how many bytes it takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleWait {
    reader: Option<(TaskId, usize)>,
}

impl ConsoleWait {
    /// Nobody waits.
    pub const fn new() -> Self {
        ConsoleWait { reader: None }
    }

    /// The waiting task, if any.
    pub fn reader(&self) -> Option<TaskId> {
        self.reader.map(|(task, _)| task)
    }
}

/// The kernel's one console reader (the hypervisor has one console).
pub static WAIT: spin::Mutex<ConsoleWait> = spin::Mutex::new(ConsoleWait::new());

fn has_right(objects: &KernelObjects, task: TaskId, right: KernelRights) -> bool {
    objects
        .tasks
        .get(task)
        .is_ok_and(|t| t.kernel_rights().contains(right))
}

/// Packs `bytes` (at most 16) into two little-endian words.
pub fn pack(bytes: &[u8]) -> [usize; 2] {
    let mut words = [0usize; 2];
    for (i, &b) in bytes.iter().take(MAX_CONSOLE_READ).enumerate() {
        words[i / 8] |= usize::from(b) << (8 * (i % 8));
    }
    words
}

/// Runs `console_read`, `halt` or `console_put` for `current`, with `wait`
/// the console's reader state.
pub fn dispatch<M: Machine>(
    wait: &mut ConsoleWait,
    objects: &mut KernelObjects,
    machine: &mut M,
    current: TaskId,
    call: Sysno,
    args: [usize; 6],
) -> Decision {
    let result = match call {
        Sysno::ConsoleRead => return console_read(wait, objects, machine, current, args[0]),
        Sysno::Halt => {
            if has_right(objects, current, KernelRights::HALT)
                || has_right(objects, current, KernelRights::SUPERVISOR)
            {
                machine.halt(args[0] == 0);
                Ok([0; 3])
            } else {
                Err(Error::PermissionDenied)
            }
        }
        Sysno::ConsolePut => {
            console_bytes(objects, machine, current, args[0], args[1], M::console_put)
        }
        _ => Err(Error::InvalidArgument),
    };
    machine.set_outcome(current, result);
    Decision::Continue
}

/// Shows the `len` bytes (at most [`MAX_DEBUG_WRITE`]) `task` passes at
/// user address `ptr` with `show` if it holds the CONSOLE right: the one
/// path by which a task's bytes reach the console. `console_put` (a
/// partial line) and `console_write` (bytes as they are) differ only in
/// `show`.
pub(crate) fn console_bytes<M: Machine>(
    objects: &KernelObjects,
    machine: &mut M,
    task: TaskId,
    ptr: usize,
    len: usize,
    show: impl FnOnce(&mut M, &[u8]),
) -> Result<[usize; 3], Error> {
    if !has_right(objects, task, KernelRights::CONSOLE) {
        return Err(Error::PermissionDenied);
    }
    let mut text = [0u8; MAX_DEBUG_WRITE];
    let buf = text.get_mut(..len).ok_or(Error::MessageTooLarge)?;
    if !machine.read_user(task, ptr, buf) {
        return Err(Error::InvalidArgument);
    }
    show(machine, buf);
    Ok([0; 3])
}

fn console_read<M: Machine>(
    wait: &mut ConsoleWait,
    objects: &mut KernelObjects,
    machine: &mut M,
    task: TaskId,
    max: usize,
) -> Decision {
    let refuse = |machine: &mut M, e: Error| {
        machine.set_result(task, status_of(e), [0; 3]);
        Decision::Continue
    };
    if !has_right(objects, task, KernelRights::CONSOLE) {
        return refuse(machine, Error::PermissionDenied);
    }
    if max == 0 || max > MAX_CONSOLE_READ {
        return refuse(machine, Error::InvalidArgument);
    }
    if let Some(other) = wait.reader() {
        if objects.sched.state(other) == Some(TaskState::Held) {
            return refuse(machine, Error::KernelRefused);
        }
        // The reader died (or was restarted) while it waited.
        wait.reader = None;
    }
    let mut buf = [0u8; MAX_CONSOLE_READ];
    let n = machine.console_read(&mut buf[..max]);
    if n > 0 {
        let [lo, hi] = pack(&buf[..n]);
        machine.set_result(task, OK, [n, lo, hi]);
        return Decision::Continue;
    }
    if objects.sched.block(task, TaskState::Held).is_err() {
        return refuse(machine, Error::KernelRefused);
    }
    wait.reader = Some((task, max));
    objects.sched.schedule()
}

/// Called on each timer tick and idle wake-up: if a task waits for console
/// input and bytes are pending, gives them to it and makes it ready (the
/// caller's next scheduling decision may switch to it).
pub fn poll_input<M: Machine>(
    wait: &mut ConsoleWait,
    objects: &mut KernelObjects,
    machine: &mut M,
) {
    let Some((task, max)) = wait.reader else {
        return;
    };
    if objects.sched.state(task) != Some(TaskState::Held) {
        wait.reader = None;
        return;
    }
    let mut buf = [0u8; MAX_CONSOLE_READ];
    let n = machine.console_read(&mut buf[..max.min(MAX_CONSOLE_READ)]);
    if n == 0 {
        return;
    }
    let [lo, hi] = pack(&buf[..n]);
    machine.set_result(task, OK, [n, lo, hi]);
    wait.reader = None;
    // Held was checked above, so the task can be made ready.
    let _ = objects.sched.unblock(task);
}

#[cfg(test)]
#[path = "syscall_console_tests.rs"]
mod tests;
