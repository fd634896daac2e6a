//! The fast path against the general path: on random system states (with
//! deaths, timed calls and waits, and deadlines falling among them), a fast
//! `call` / `reply_recv` either declines and changes nothing, or leaves the
//! objects exactly as the general call does, with the same transfer and a
//! direct switch to the partner.

use proptest::prelude::*;

use super::super::MAX_MESSAGE_LEN;
use super::super::cap::{Capability, Object};
use super::super::endpoint::{Next, Outcome, ReplyStatus, Wait};
use super::super::ids::{Badge, TaskId};
use super::super::objects::{IpcStep, KernelObjects};
use super::super::rights::Rights;
use super::super::sched::{Decision, Priority};
use super::super::task::ExitReason;

const TASKS: usize = 5;
const NOTE_SLOT: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    Call(usize, usize),
    Recv(usize),
    Reply(usize),
    ReplyRecv(usize, usize),
    Send(usize, usize),
    Signal,
    Wait,
    Tick,
    Yield,
    Kill(usize),
    /// A call whose deadline is `now + 1..4` ticks.
    CallTimed(usize, usize, u64),
    /// A notification wait with a deadline.
    WaitTimed(u64),
    /// The clock moves on by this many ticks, and due deadlines fall.
    Clock(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..3usize;
    let len = prop_oneof![0..64usize, Just(MAX_MESSAGE_LEN), Just(MAX_MESSAGE_LEN + 1)];
    prop_oneof![
        4 => (slot.clone(), len.clone()).prop_map(|(s, l)| Op::Call(s, l)),
        3 => slot.clone().prop_map(Op::Recv),
        1 => len.clone().prop_map(Op::Reply),
        4 => (slot.clone(), len.clone()).prop_map(|(s, l)| Op::ReplyRecv(s, l)),
        1 => (slot, len).prop_map(|(s, l)| Op::Send(s, l)),
        1 => Just(Op::Signal),
        1 => Just(Op::Wait),
        1 => Just(Op::Tick),
        1 => Just(Op::Yield),
        1 => (0..TASKS).prop_map(Op::Kill),
        2 => (0..3usize, 0..64usize, 1..4u64).prop_map(|(s, l, d)| Op::CallTimed(s, l, d)),
        1 => (1..4u64).prop_map(Op::WaitTimed),
        2 => (1..3u64).prop_map(Op::Clock),
    ]
}

/// Tasks at mixed priorities, two endpoints in slots 0 and 1 with rights
/// that vary per task (some lack CALL or RECV), a notification in slot 2.
fn setup(rights: &[(Rights, Rights)]) -> (KernelObjects, Vec<TaskId>) {
    let mut k = KernelObjects::new();
    let eps = [k.endpoints.create().unwrap(), k.endpoints.create().unwrap()];
    let n = k.notifications.create().unwrap();
    let mut ids = Vec::new();
    for (i, pair) in rights.iter().enumerate() {
        let id = k.spawn("t", Priority::new(i % 3 + 1).unwrap()).unwrap();
        let caps = k.tasks.get_mut(id).unwrap().caps_mut();
        let badge = Badge(u64::try_from(i).unwrap() + 1);
        for (ep, r) in eps.iter().zip([pair.0, pair.1]) {
            caps.insert(Capability {
                object: Object::Endpoint { id: *ep, badge },
                rights: r,
            })
            .unwrap();
        }
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

fn rights() -> impl Strategy<Value = Rights> {
    prop_oneof![
        4 => Just(Rights::ALL),
        1 => Just(Rights::CALL),
        1 => Just(Rights::RECV),
        1 => Just(Rights::SEND),
    ]
}

fn same(a: &KernelObjects, b: &KernelObjects) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Runs `op` for `cur` on `k`, comparing the fast path (where it exists)
/// with the general path; returns whether the fast path was taken.
fn step(
    k: &mut KernelObjects,
    ids: &[TaskId],
    cur: TaskId,
    op: &Op,
    now: &mut u64,
) -> Result<bool, TestCaseError> {
    match *op {
        Op::CallTimed(slot, len, d) => Ok(k
            .call_timed(cur, slot, len, *now + d)
            .map(|_| false)
            .unwrap_or(false)),
        Op::WaitTimed(d) => Ok(k
            .wait_until(cur, NOTE_SLOT, Some(*now + d))
            .map(|_| false)
            .unwrap_or(false)),
        Op::Clock(by) => {
            *now += by;
            for task in k.time_out(*now).iter() {
                prop_assert!(k.endpoints.waiting(task).is_none(), "timed out but waiting");
                prop_assert!(k.notifications.waiting_on(task).is_none());
            }
            Ok(false)
        }
        Op::Call(slot, len) => {
            let mut fast = k.clone();
            let taken = fast.fast_call(cur, slot, len);
            let slow = k.call(cur, slot, len);
            let Some(t) = taken else {
                return Ok(false);
            };
            let next = Next::SwitchTo {
                to: t.to,
                waits: Wait::Reply,
            };
            let expected = IpcStep {
                outcome: Outcome {
                    transfers: [Some(t), None],
                    next,
                },
                decision: Decision::SwitchTo(t.to),
            };
            prop_assert_eq!(slow, Ok(expected));
            prop_assert!(same(&fast, k), "fast call left other state");
            Ok(true)
        }
        Op::ReplyRecv(slot, len) => {
            let mut fast = k.clone();
            let taken = fast.fast_reply_recv(cur, slot, len);
            let slow = k.reply_recv(cur, slot, len);
            let Some(t) = taken else {
                return Ok(false);
            };
            let next = Next::SwitchTo {
                to: t.to,
                waits: Wait::Recv,
            };
            let expected = IpcStep {
                outcome: Outcome {
                    transfers: [Some(t), None],
                    next,
                },
                decision: Decision::SwitchTo(t.to),
            };
            prop_assert_eq!(slow, Ok((ReplyStatus::Delivered, expected)));
            prop_assert!(same(&fast, k), "fast reply_recv left other state");
            Ok(true)
        }
        Op::Recv(slot) => Ok(k.recv(cur, slot).map(|_| false).unwrap_or(false)),
        Op::Reply(len) => Ok(k.reply(cur, len).map(|_| false).unwrap_or(false)),
        Op::Send(slot, len) => Ok(k.send(cur, slot, len).map(|_| false).unwrap_or(false)),
        Op::Signal => Ok(k.signal(cur, NOTE_SLOT).map(|_| false).unwrap_or(false)),
        Op::Wait => Ok(k.wait(cur, NOTE_SLOT).map(|_| false).unwrap_or(false)),
        Op::Tick => Ok(matches!(k.sched.tick(), Decision::Idle)),
        Op::Yield => Ok(matches!(k.sched.yield_now(), Decision::Idle)),
        Op::Kill(i) => Ok(k
            .kill(ids[i], ExitReason::Killed)
            .map(|_| false)
            .unwrap_or(false)),
    }
}

/// Whether the fast path declines without changing anything.
fn declines_cleanly(k: &KernelObjects, cur: TaskId, op: &Op) -> bool {
    let mut fast = k.clone();
    let taken = match *op {
        Op::Call(slot, len) => fast.fast_call(cur, slot, len).is_some(),
        Op::ReplyRecv(slot, len) => fast.fast_reply_recv(cur, slot, len).is_some(),
        _ => return true,
    };
    taken || same(&fast, k)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_fast_path_does_what_the_general_path_does(
        rights in proptest::collection::vec((rights(), rights()), TASKS),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let (mut k, ids) = setup(&rights);
        let mut now = 0;
        for op in &ops {
            let Some(cur) = k.sched.current() else {
                match *op {
                    Op::Kill(i) => {
                        let _ = k.kill(ids[i], ExitReason::Killed);
                    }
                    Op::Clock(by) => {
                        now += by;
                        k.time_out(now);
                    }
                    _ => {}
                }
                continue;
            };
            prop_assert!(declines_cleanly(&k, cur, op), "a declined fast path changed state");
            step(&mut k, &ids, cur, op, &mut now)?;
            k.sched.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
}

/// The fast path is no dead code: a client calling a waiting server and the
/// server answering with `reply_recv` take it both ways; a more urgent
/// ready task, a missing right or a too-long message send both to the
/// general path.
#[test]
fn a_plain_round_trip_takes_the_fast_path_and_the_odd_cases_do_not() {
    let all = (Rights::ALL, Rights::ALL);
    let (mut k, ids) = setup(&[all, all]);
    let (client, server) = (ids[0], ids[1]);
    // The server (priority 2) runs first and waits on endpoint 0.
    assert_eq!(k.sched.current(), Some(server));
    k.recv(server, 0).unwrap();
    assert_eq!(k.sched.current(), Some(client));
    assert_eq!(k.fast_call(client, 0, MAX_MESSAGE_LEN + 1), None);
    assert_eq!(
        k.fast_call(client, 1, 8),
        None,
        "nobody waits on endpoint 1"
    );
    let t = k.fast_call(client, 0, 8).expect("plain call");
    assert_eq!(
        (t.from, t.to, t.len, t.badge),
        (client, server, 8, Badge(1))
    );
    assert_eq!(k.sched.current(), Some(server));
    let t = k.fast_reply_recv(server, 0, 4).expect("plain reply_recv");
    assert_eq!(
        (t.from, t.to, t.len, t.badge),
        (server, client, 4, Badge::NONE)
    );
    assert_eq!(k.sched.current(), Some(client));
    assert_eq!(k.endpoints.waiting(server), Some(Wait::Recv));

    // A task more urgent than the server is ready: the general path decides.
    let (mut k, ids) = setup(&[all, all, all]);
    let (client, server, urgent) = (ids[0], ids[1], ids[2]);
    assert_eq!(k.sched.current(), Some(urgent));
    k.wait(urgent, NOTE_SLOT).unwrap();
    k.recv(server, 0).unwrap();
    assert_eq!(k.sched.current(), Some(client));
    k.sched.unblock(urgent).unwrap();
    let before = k.clone();
    assert_eq!(k.fast_call(client, 0, 1), None);
    assert!(same(&k, &before));
    assert_eq!(
        k.call(client, 0, 1).unwrap().decision,
        Decision::SwitchTo(urgent)
    );

    // No CALL right: refused by the fast path, and by the general path too.
    let (mut k, ids) = setup(&[(Rights::RECV, Rights::ALL), all]);
    k.recv(ids[1], 0).unwrap();
    assert_eq!(k.fast_call(ids[0], 0, 1), None);
    assert!(k.call(ids[0], 0, 1).is_err());
}
