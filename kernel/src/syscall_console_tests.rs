//! The console calls as a task sees them: bytes in registers, waiting until
//! input arrives without holding up other tasks, rights, and halt.

use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

use super::*;
use crate::obj::sched::Priority;
use crate::syscall_vm::VmHost;

#[derive(Default)]
struct Console {
    results: BTreeMap<usize, (usize, [usize; 3])>,
    typed: VecDeque<u8>,
    printed: Vec<u8>,
    halted: Option<bool>,
}

impl VmHost for Console {}

impl crate::syscall_stats::StatsHost for Console {}

impl crate::syscall_entropy::EntropyHost for Console {}

impl ConsoleHost for Console {
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(b) = self.typed.pop_front() else {
                break;
            };
            buf[n] = b;
            n += 1;
        }
        n
    }
    fn console_put(&mut self, bytes: &[u8]) {
        self.printed.extend_from_slice(bytes);
    }
    fn halt(&mut self, success: bool) {
        self.halted = Some(success);
    }
}

// Every task's memory at 0x1000 reads "mica> mica> ...".
crate::test_machine::test_machine!(Console, |ptr: usize, out: &mut [u8]| {
    if ptr != 0x1000 {
        return false;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = b"mica> "[i % 6];
    }
    true
});

struct World {
    k: KernelObjects,
    m: Console,
    wait: ConsoleWait,
    shell: TaskId,
    other: TaskId,
}

/// The shell (CONSOLE + HALT, priority 1) runs; a task without rights
/// (priority 1) is ready behind it.
fn world() -> World {
    let mut k = KernelObjects::new();
    let shell = k.spawn("shell", Priority::new(1).unwrap()).unwrap();
    let other = k.spawn("other", Priority::new(1).unwrap()).unwrap();
    k.tasks
        .get_mut(shell)
        .unwrap()
        .set_kernel_rights(KernelRights::CONSOLE.union(KernelRights::HALT));
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(shell));
    World {
        k,
        m: Console::default(),
        wait: ConsoleWait::new(),
        shell,
        other,
    }
}

impl World {
    fn call(&mut self, task: TaskId, call: Sysno, args: [usize; 6]) -> Decision {
        dispatch(&mut self.wait, &mut self.k, &mut self.m, task, call, args)
    }
    fn result(&self, task: TaskId) -> (usize, [usize; 3]) {
        self.m.results[&task.slot()]
    }
}

#[test]
fn pending_bytes_come_back_at_once_packed_in_two_registers() {
    let mut w = world();
    w.m.typed.extend(b"vm list\nhalt\n12345".iter());
    let shell = w.shell;
    assert_eq!(
        w.call(shell, Sysno::ConsoleRead, [16, 0, 0, 0, 0, 0]),
        Decision::Continue
    );
    let (status, [n, lo, hi]) = w.result(shell);
    assert_eq!((status, n), (OK, 16));
    let mut bytes = lo.to_le_bytes().to_vec();
    bytes.extend_from_slice(&hi.to_le_bytes());
    assert_eq!(&bytes, b"vm list\nhalt\n123");
    // The rest stays for the next read, which may ask for fewer.
    w.call(shell, Sysno::ConsoleRead, [1, 0, 0, 0, 0, 0]);
    assert_eq!(w.result(shell), (OK, [1, usize::from(b'4'), 0]));
}

#[test]
fn with_nothing_typed_the_reader_waits_and_others_run_until_a_tick_finds_input() {
    let mut w = world();
    let (shell, other) = (w.shell, w.other);
    assert_eq!(
        w.call(shell, Sysno::ConsoleRead, [16, 0, 0, 0, 0, 0]),
        Decision::SwitchTo(other)
    );
    assert_eq!(w.k.sched.state(shell), Some(TaskState::Held));
    assert!(!w.m.results.contains_key(&shell.slot()), "no result yet");
    // A tick with nothing typed changes nothing.
    poll_input(&mut w.wait, &mut w.k, &mut w.m);
    assert_eq!(w.k.sched.state(shell), Some(TaskState::Held));
    w.m.typed.extend(b"x".iter());
    poll_input(&mut w.wait, &mut w.k, &mut w.m);
    assert_eq!(w.k.sched.state(shell), Some(TaskState::Ready));
    assert_eq!(w.result(shell), (OK, [1, usize::from(b'x'), 0]));
    assert_eq!(w.wait.reader(), None);
}

#[test]
fn a_second_reader_is_refused_while_the_first_waits() {
    let mut w = world();
    let (shell, other) = (w.shell, w.other);
    w.k.tasks
        .get_mut(other)
        .unwrap()
        .set_kernel_rights(KernelRights::CONSOLE);
    w.call(shell, Sysno::ConsoleRead, [4, 0, 0, 0, 0, 0]);
    w.call(other, Sysno::ConsoleRead, [4, 0, 0, 0, 0, 0]);
    assert_eq!(w.result(other).0, status_of(Error::KernelRefused));
    assert_eq!(w.wait.reader(), Some(shell));
}

#[test]
fn a_dead_reader_does_not_swallow_input() {
    let mut w = world();
    let shell = w.shell;
    w.call(shell, Sysno::ConsoleRead, [4, 0, 0, 0, 0, 0]);
    w.k.kill(shell, crate::obj::task::ExitReason::Killed)
        .unwrap();
    w.m.typed.extend(b"y".iter());
    poll_input(&mut w.wait, &mut w.k, &mut w.m);
    assert_eq!(w.wait.reader(), None);
    assert_eq!(w.m.typed.len(), 1, "the byte stays for the next reader");
}

#[test]
fn reads_need_the_console_right_and_a_size_that_fits_two_registers() {
    let mut w = world();
    let (shell, other) = (w.shell, w.other);
    w.call(other, Sysno::ConsoleRead, [4, 0, 0, 0, 0, 0]);
    assert_eq!(w.result(other).0, status_of(Error::PermissionDenied));
    for bad in [0, MAX_CONSOLE_READ + 1] {
        w.call(shell, Sysno::ConsoleRead, [bad, 0, 0, 0, 0, 0]);
        assert_eq!(w.result(shell).0, status_of(Error::InvalidArgument));
    }
}

#[test]
fn console_put_prints_the_bytes_without_a_newline() {
    let mut w = world();
    let (shell, other) = (w.shell, w.other);
    w.call(shell, Sysno::ConsolePut, [0x1000, 6, 0, 0, 0, 0]);
    assert_eq!(w.result(shell).0, OK);
    assert_eq!(w.m.printed, b"mica> ");
    w.call(
        shell,
        Sysno::ConsolePut,
        [0x1000, MAX_DEBUG_WRITE + 1, 0, 0, 0, 0],
    );
    assert_eq!(w.result(shell).0, status_of(Error::MessageTooLarge));
    w.call(shell, Sysno::ConsolePut, [0x2000, 1, 0, 0, 0, 0]);
    assert_eq!(w.result(shell).0, status_of(Error::InvalidArgument));
    w.call(other, Sysno::ConsolePut, [0x1000, 6, 0, 0, 0, 0]);
    assert_eq!(w.result(other).0, status_of(Error::PermissionDenied));
    assert_eq!(w.m.printed, b"mica> ");
}

#[test]
fn halt_needs_the_halt_right_and_passes_success_for_status_zero() {
    let mut w = world();
    let (shell, other) = (w.shell, w.other);
    w.call(other, Sysno::Halt, [0; 6]);
    assert_eq!(w.result(other).0, status_of(Error::PermissionDenied));
    assert_eq!(w.m.halted, None);
    w.call(shell, Sysno::Halt, [3, 0, 0, 0, 0, 0]);
    assert_eq!(w.m.halted, Some(false));
    w.call(shell, Sysno::Halt, [0; 6]);
    assert_eq!(w.m.halted, Some(true));
}

#[test]
fn bytes_pack_little_endian_across_two_words() {
    assert_eq!(pack(b""), [0, 0]);
    assert_eq!(pack(b"ab"), [0x6261, 0]);
    let sixteen: Vec<u8> = (1..=16).collect();
    let [lo, hi] = pack(&sixteen);
    assert_eq!(lo.to_le_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(hi.to_le_bytes(), [9, 10, 11, 12, 13, 14, 15, 16]);
}
