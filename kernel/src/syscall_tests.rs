//! Syscalls as a task sees them: registers after each call, message copies,
//! containment of a faulting server and the supervisor's restart.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::obj::cap::Capability;
use crate::obj::ids::Badge;
use crate::obj::sched::{Priority, TaskState};
use crate::obj::task::FaultKind;

#[derive(Default)]
struct FakeMachine {
    results: BTreeMap<usize, (usize, [usize; 3])>,
    copies: Vec<(usize, usize, usize)>,
    lines: Vec<String>,
    deaths: Vec<String>,
    supervisor: Option<TaskId>,
    /// The task that serves endpoint number [`EP_NUMBER`].
    server: Option<TaskId>,
    /// Readable user memory of every task: [0x1000, 0x2000).
    memory: Vec<u8>,
}

impl VmHost for FakeMachine {}

impl crate::syscall_console::ConsoleHost for FakeMachine {}

impl crate::syscall_stats::StatsHost for FakeMachine {}

impl crate::syscall_entropy::EntropyHost for FakeMachine {}

impl Machine for FakeMachine {
    fn set_result(&mut self, task: TaskId, status: usize, values: [usize; 3]) {
        self.results.insert(task.slot(), (status, values));
    }
    fn copy_message(&mut self, from: TaskId, to: TaskId, len: usize) {
        self.copies.push((from.slot(), to.slot(), len));
    }
    fn read_user(&mut self, _task: TaskId, ptr: usize, out: &mut [u8]) -> bool {
        let Some(end) = ptr.checked_add(out.len()) else {
            return false;
        };
        if ptr < 0x1000 || end > 0x2000 {
            return false;
        }
        out.copy_from_slice(&self.memory[ptr - 0x1000..end - 0x1000]);
        true
    }
    fn console_line(&mut self, _task: TaskId, line: &[u8]) {
        self.lines.push(String::from_utf8_lossy(line).into_owned());
    }
    fn report_death(&mut self, notice: &DeathNotice) {
        self.deaths.push(notice.to_string());
    }
    fn supervisor(&self) -> Option<TaskId> {
        self.supervisor
    }
    fn server_of(&self, _objects: &KernelObjects, endpoint: usize) -> Option<TaskId> {
        (endpoint == usize::from(EP_NUMBER))
            .then_some(self.server)
            .flatten()
    }
    fn restart(
        &mut self,
        objects: &mut KernelObjects,
        dead: &DeathNotice,
    ) -> Result<Restarted, Error> {
        let task = objects
            .spawn(dead.name.as_str(), Priority::new(3).unwrap())
            .map_err(|_| Error::KernelRefused)?;
        Ok(Restarted {
            task,
            serves: Some(EP_NUMBER),
            lived_ms: 1234,
        })
    }
}

struct World {
    k: KernelObjects,
    m: FakeMachine,
    init: TaskId,
    server: TaskId,
}

const EP: usize = 0;
/// The endpoint number the fake machine says a restarted task serves.
const EP_NUMBER: u8 = 2;
const NTF: usize = 1;

/// init (supervisor, prio 10) holds a call cap (badge 7) and the death
/// notification; the server (prio 5) holds the receive cap.
fn world() -> World {
    let mut k = KernelObjects::new();
    let init = k.spawn("init", Priority::new(10).unwrap()).unwrap();
    let server = k.spawn("devices", Priority::new(5).unwrap()).unwrap();
    let ep = k.endpoints.create().unwrap();
    let n = k.notifications.create().unwrap();
    k.set_supervisor_notification(n);
    let give = |k: &mut KernelObjects, t, slot, object, rights| {
        let cap = Capability { object, rights };
        k.tasks
            .get_mut(t)
            .unwrap()
            .caps_mut()
            .insert_at(slot, cap)
            .unwrap();
    };
    let badged = Object::Endpoint {
        id: ep,
        badge: Badge(7),
    };
    let plain = Object::Endpoint {
        id: ep,
        badge: Badge(0),
    };
    give(&mut k, init, EP, badged, Rights::CALL);
    give(
        &mut k,
        init,
        NTF,
        Object::Notification { id: n, bits: 0 },
        Rights::RECV,
    );
    give(&mut k, server, EP, plain, Rights::RECV);
    let m = FakeMachine {
        supervisor: Some(init),
        server: Some(server),
        memory: b"hello from a task".repeat(300),
        ..FakeMachine::default()
    };
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(init));
    World { k, m, init, server }
}

fn sys(w: &mut World, task: TaskId, call: Sysno, args: &[usize]) -> Decision {
    let mut a = [0; 6];
    a[..args.len()].copy_from_slice(args);
    dispatch(&mut w.k, &mut w.m, task, call as usize, a)
}

#[test]
fn a_call_reaches_the_server_with_its_badge_and_the_reply_comes_back() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    // init calls before the server listens: it waits, the server runs.
    assert_eq!(
        sys(&mut w, init, Sysno::Call, &[EP, 12]),
        Decision::SwitchTo(server)
    );
    assert!(
        !w.m.results.contains_key(&init.slot()),
        "a blocked caller has no result yet"
    );
    // The server's first reply_recv owes nothing and takes the request.
    assert_eq!(
        sys(&mut w, server, Sysno::ReplyRecv, &[EP, 0]),
        Decision::Continue
    );
    assert_eq!(w.m.results[&server.slot()], (OK, [12, 7, 0]));
    assert_eq!(w.m.copies, [(init.slot(), server.slot(), 12)]);
    // Its answer goes back to init, which runs again with the reply length.
    assert_eq!(
        sys(&mut w, server, Sysno::ReplyRecv, &[EP, 30]),
        Decision::SwitchTo(init)
    );
    assert_eq!(w.m.results[&init.slot()], (OK, [30, 0, 0]));
    assert_eq!(w.m.copies[1], (server.slot(), init.slot(), 30));
}

#[test]
fn bad_slots_and_unknown_calls_fail_with_an_error_status_and_keep_running() {
    let mut w = world();
    let init = w.init;
    assert_eq!(sys(&mut w, init, Sysno::Call, &[40, 1]), Decision::Continue);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::InvalidArgument)
    );
    // A receive right is not a call right.
    assert_eq!(sys(&mut w, init, Sysno::Recv, &[EP]), Decision::Continue);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::PermissionDenied)
    );
    assert_eq!(
        sys(&mut w, init, Sysno::Call, &[EP, 513]),
        Decision::Continue
    );
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::MessageTooLarge)
    );
    let d = dispatch(&mut w.k, &mut w.m, init, 999, [0; 6]);
    assert_eq!(d, Decision::Continue);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::InvalidArgument)
    );
}

#[test]
fn debug_write_prints_only_memory_the_task_can_read() {
    let mut w = world();
    let init = w.init;
    sys(&mut w, init, Sysno::DebugWrite, &[0x1000, 5]);
    assert_eq!(w.m.results[&init.slot()].0, OK);
    assert_eq!(w.m.lines, ["hello"]);
    sys(&mut w, init, Sysno::DebugWrite, &[0x1ffe, 5]);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::InvalidArgument)
    );
    sys(&mut w, init, Sysno::DebugWrite, &[usize::MAX - 2, 5]);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::InvalidArgument)
    );
    sys(
        &mut w,
        init,
        Sysno::DebugWrite,
        &[0x1000, MAX_DEBUG_WRITE + 1],
    );
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::MessageTooLarge)
    );
    assert_eq!(w.m.lines.len(), 1);
}

#[test]
fn a_faulting_server_is_reported_its_caller_gets_server_died_and_init_restarts_it() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    sys(&mut w, init, Sysno::Call, &[EP, 4]);
    sys(&mut w, server, Sysno::ReplyRecv, &[EP, 0]);
    // The server holds the request and touches memory it was not granted.
    let reason = ExitReason::Faulted {
        kind: FaultKind::StorePageFault,
        address: 0xdead_0000,
    };
    let d = kill(&mut w.k, &mut w.m, server, reason);
    assert_eq!(
        w.m.deaths,
        ["task 1 (devices) killed: store page fault at 0xdead0000"]
    );
    assert_eq!(
        w.m.results[&init.slot()],
        (status_of(Error::ServerDied), [0; 3])
    );
    assert_eq!(d, Decision::SwitchTo(init));
    // The death bit is pending for the supervisor.
    assert_eq!(sys(&mut w, init, Sysno::Wait, &[NTF]), Decision::Continue);
    assert_eq!(w.m.results[&init.slot()], (OK, [1 << server.slot(), 0, 0]));
    // Only the supervisor may restart; it gets the new task's slot, the
    // endpoint it serves and how long the dead copy ran.
    let other = w.k.spawn("other", Priority::new(1).unwrap()).unwrap();
    sys(&mut w, other, Sysno::Restart, &[server.slot()]);
    assert_eq!(
        w.m.results[&other.slot()].0,
        status_of(Error::PermissionDenied)
    );
    sys(&mut w, init, Sysno::Restart, &[server.slot()]);
    let (status, [slot, serves, lived]) = w.m.results[&init.slot()];
    assert_eq!(status, OK);
    assert_eq!((serves, lived), (usize::from(EP_NUMBER), 1234));
    let fresh = w.k.tasks.id_at(slot).unwrap();
    assert_ne!(fresh, server, "a restarted task has a new id");
    assert_eq!(w.k.tasks.get(fresh).unwrap().name().as_str(), "devices");
}

#[test]
fn a_waiting_supervisor_is_woken_with_the_death_bit_when_a_task_exits() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    assert_eq!(
        sys(&mut w, init, Sysno::Wait, &[NTF]),
        Decision::SwitchTo(server)
    );
    let d = sys(&mut w, server, Sysno::Exit, &[0]);
    assert_eq!(d, Decision::SwitchTo(init));
    assert_eq!(w.m.deaths, ["task 1 (devices) exited with code 0"]);
    assert_eq!(w.m.results[&init.slot()], (OK, [1 << server.slot(), 0, 0]));
}

#[test]
fn a_timed_call_to_a_server_that_never_answers_fails_with_timed_out_at_its_deadline() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    // The server takes requests, then hangs on the first one.
    sys(&mut w, server, Sysno::Recv, &[EP]);
    assert_eq!(
        sys(&mut w, init, Sysno::CallTimed, &[EP, 12, 5]),
        Decision::SwitchTo(server)
    );
    let now = crate::ticks::count();
    time_out(&mut w.k, &mut w.m, now + 4);
    assert!(!w.m.results.contains_key(&init.slot()), "not due yet");
    time_out(&mut w.k, &mut w.m, now + 5);
    assert_eq!(w.m.results[&init.slot()].0, status_of(Error::TimedOut));
    assert_eq!(w.k.sched.state(init), Some(TaskState::Ready));
    // The late reply is dropped; the server goes on serving.
    assert_eq!(sys(&mut w, server, Sysno::Reply, &[4]), Decision::Continue);
    assert_eq!(w.m.results[&server.slot()].0, OK);
    assert_eq!(w.m.copies.len(), 1, "the late reply was not copied");
    // A deadline out of range is refused before anything is sent.
    for ticks in [0, ipc::syscall::MAX_CALL_TICKS + 1] {
        w.k.sched.schedule();
        sys(&mut w, init, Sysno::CallTimed, &[EP, 12, ticks]);
        assert_eq!(
            w.m.results[&init.slot()].0,
            status_of(Error::InvalidArgument)
        );
    }
}

#[test]
fn a_timed_call_answered_in_time_is_not_disturbed_by_its_deadline() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    sys(&mut w, server, Sysno::Recv, &[EP]);
    sys(&mut w, init, Sysno::CallTimed, &[EP, 12, 5]);
    assert_eq!(
        sys(&mut w, server, Sysno::ReplyRecv, &[EP, 30]),
        Decision::SwitchTo(init)
    );
    // init calls again, plainly, and the server is slow this time.
    assert_eq!(
        sys(&mut w, init, Sysno::Call, &[EP, 12]),
        Decision::SwitchTo(server)
    );
    time_out(&mut w.k, &mut w.m, u64::MAX);
    assert_eq!(w.m.results[&init.slot()], (OK, [30, 0, 0]), "untouched");
    assert_eq!(w.k.sched.state(init), Some(TaskState::BlockedReply));
}

#[test]
fn a_timed_wait_with_no_bit_fails_with_timed_out_and_a_plain_wait_never_does() {
    let mut w = world();
    let init = w.init;
    assert_ne!(
        sys(&mut w, init, Sysno::WaitTimed, &[NTF, 3]),
        Decision::Continue
    );
    let now = crate::ticks::count();
    time_out(&mut w.k, &mut w.m, now + 2);
    assert!(!w.m.results.contains_key(&init.slot()));
    time_out(&mut w.k, &mut w.m, now + 3);
    assert_eq!(w.m.results[&init.slot()].0, status_of(Error::TimedOut));
    assert_eq!(w.k.sched.state(init), Some(TaskState::Ready));
    assert_eq!(w.k.notifications.waiting_on(init), None);
    // A timed wait that a death bit ends leaves its deadline behind: the
    // plain wait after it is not ended by that deadline.
    w.k.sched.schedule();
    sys(&mut w, init, Sysno::WaitTimed, &[NTF, 3]);
    kill(&mut w.k, &mut w.m, w.server, ExitReason::Killed);
    assert_eq!(
        w.m.results[&init.slot()],
        (OK, [1 << w.server.slot(), 0, 0])
    );
    w.k.sched.schedule();
    sys(&mut w, init, Sysno::Wait, &[NTF]);
    w.m.results.clear();
    time_out(&mut w.k, &mut w.m, u64::MAX);
    assert!(!w.m.results.contains_key(&init.slot()));
    assert!(w.k.notifications.waiting_on(init).is_some());
}

#[test]
fn only_the_supervisor_kills_a_server_by_its_endpoint() {
    let mut w = world();
    let (init, server) = (w.init, w.server);
    sys(&mut w, server, Sysno::Recv, &[EP]);
    // The server runs, and may not kill anyone: it is not the supervisor.
    sys(&mut w, server, Sysno::KillServer, &[usize::from(EP_NUMBER)]);
    assert_eq!(
        w.m.results[&server.slot()].0,
        status_of(Error::PermissionDenied)
    );
    sys(&mut w, server, Sysno::Recv, &[EP]);
    sys(&mut w, init, Sysno::KillServer, &[9]);
    assert_eq!(
        w.m.results[&init.slot()].0,
        status_of(Error::InvalidArgument)
    );
    sys(&mut w, init, Sysno::KillServer, &[usize::from(EP_NUMBER)]);
    assert_eq!(w.m.results[&init.slot()], (OK, [server.slot(), 0, 0]));
    assert_eq!(w.m.deaths, ["task 1 (devices) killed by the supervisor"]);
    assert_eq!(w.k.sched.state(server), Some(TaskState::Dead));
}
