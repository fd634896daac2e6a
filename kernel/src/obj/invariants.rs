//! Property test: random sequences of system calls on the object model keep
//! its invariants: each task is in at most one queue, the running task is in
//! none, and every blocked task is recorded where a wake-up can find it.

use proptest::prelude::*;

use super::cap::{Capability, Object};
use super::endpoint::Wait;
use super::ids::{Badge, TaskId};
use super::objects::KernelObjects;
use super::rights::Rights;
use super::sched::{Priority, TaskState};
use super::task::ExitReason;

const TASKS: usize = 6;
const EP_SLOT: usize = 0;
const NOTE_SLOT: usize = 1;

#[derive(Clone, Debug)]
enum Op {
    Call(usize),
    Send(usize),
    Recv,
    Reply(usize),
    ReplyRecv(usize),
    Signal,
    Wait,
    Tick,
    Yield,
    Kill(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..600usize).prop_map(Op::Call),
        (0..600usize).prop_map(Op::Send),
        Just(Op::Recv),
        (0..600usize).prop_map(Op::Reply),
        (0..600usize).prop_map(Op::ReplyRecv),
        Just(Op::Signal),
        Just(Op::Wait),
        Just(Op::Tick),
        Just(Op::Yield),
        (0..TASKS).prop_map(Op::Kill),
    ]
}

fn setup() -> (KernelObjects, Vec<TaskId>) {
    let mut k = KernelObjects::new();
    let ep = k.endpoints.create().unwrap();
    let n = k.notifications.create().unwrap();
    let mut ids = Vec::new();
    for i in 0..TASKS {
        let id = k.spawn("t", Priority::new(i % 3).unwrap()).unwrap();
        let caps = k.tasks.get_mut(id).unwrap().caps_mut();
        let badge = Badge(u64::try_from(i).unwrap() + 1);
        caps.insert(Capability {
            object: Object::Endpoint { id: ep, badge },
            rights: Rights::ALL,
        })
        .unwrap();
        caps.insert(Capability {
            object: Object::Notification {
                id: n,
                bits: 1 << i,
            },
            rights: Rights::ALL,
        })
        .unwrap();
        ids.push(id);
    }
    k.sched.schedule();
    (k, ids)
}

fn check(k: &KernelObjects, ids: &[TaskId]) -> Result<(), TestCaseError> {
    k.sched.check_invariants().map_err(TestCaseError::fail)?;
    let running = ids
        .iter()
        .filter(|&&t| k.sched.state(t) == Some(TaskState::Running))
        .count();
    prop_assert!(running <= 1);
    for &t in ids {
        let state = k.sched.state(t);
        prop_assert!(state.is_some(), "task {t:?} was lost");
        let ipc = k.endpoints.waiting(t);
        let on_note = k.notifications.waiting_on(t).is_some();
        let queued_ep = k.endpoints.queued_on(t).is_some();
        match state {
            Some(TaskState::BlockedSend) => {
                prop_assert!(ipc == Some(Wait::Send) && queued_ep && !on_note)
            }
            Some(TaskState::BlockedRecv) => {
                prop_assert!(ipc == Some(Wait::Recv) && queued_ep && !on_note)
            }
            Some(TaskState::BlockedReply) => {
                prop_assert!(ipc == Some(Wait::Reply) && !queued_ep && !on_note)
            }
            Some(TaskState::BlockedNotification) => prop_assert!(on_note && ipc.is_none()),
            _ => prop_assert!(
                ipc.is_none() && !queued_ep && !on_note,
                "{t:?} in {state:?} is queued"
            ),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_system_calls_keep_the_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let (mut k, ids) = setup();
        for op in ops {
            let Some(cur) = k.sched.current() else {
                if let Op::Kill(i) = op {
                    let _ = k.kill(ids[i], ExitReason::Killed);
                }
                check(&k, &ids)?;
                continue;
            };
            // Errors are fine (refused operations); broken invariants are not.
            let _ = match op {
                Op::Call(len) => k.call(cur, EP_SLOT, len).map(|_| ()),
                Op::Send(len) => k.send(cur, EP_SLOT, len).map(|_| ()),
                Op::Recv => k.recv(cur, EP_SLOT).map(|_| ()),
                Op::Reply(len) => k.reply(cur, len).map(|_| ()),
                Op::ReplyRecv(len) => k.reply_recv(cur, EP_SLOT, len).map(|_| ()),
                Op::Signal => k.signal(cur, NOTE_SLOT).map(|_| ()),
                Op::Wait => k.wait(cur, NOTE_SLOT).map(|_| ()),
                Op::Tick => { k.sched.tick(); Ok(()) }
                Op::Yield => { k.sched.yield_now(); Ok(()) }
                Op::Kill(i) => k.kill(ids[i], ExitReason::Killed).map(|_| ()),
            };
            check(&k, &ids)?;
        }
    }
}
