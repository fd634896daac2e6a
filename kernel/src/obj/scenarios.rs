//! End-to-end scenarios on the pure object model: a client calls a server
//! through capabilities, a server dies under a caller, priorities preempt.

use super::cap::{Capability, Object};
use super::endpoint::{IpcError, Next, ReplyStatus, Transfer};
use super::ids::{Badge, EndpointId, TaskId};
use super::objects::{KernelObjects, ObjError};
use super::rights::Rights;
use super::sched::{Decision, Priority, TaskState};
use super::task::{ExitReason, FaultKind};

fn prio(level: usize) -> Priority {
    Priority::new(level).unwrap()
}

/// Gives `task` a capability to `ep` with `rights` and `badge`; returns its slot.
fn give_endpoint(
    k: &mut KernelObjects,
    task: TaskId,
    ep: EndpointId,
    rights: Rights,
    badge: u64,
) -> usize {
    let cap = Capability {
        object: Object::Endpoint {
            id: ep,
            badge: Badge(badge),
        },
        rights,
    };
    k.tasks
        .get_mut(task)
        .unwrap()
        .caps_mut()
        .insert(cap)
        .unwrap()
}

/// A server (waiting in recv) and two clients with badged call capabilities.
struct World {
    k: KernelObjects,
    server: TaskId,
    clients: [TaskId; 2],
    server_slot: usize,
    client_slot: usize,
}

fn world() -> World {
    let mut k = KernelObjects::new();
    let server = k.spawn("devices", prio(10)).unwrap();
    let a = k.spawn("client-a", prio(5)).unwrap();
    let b = k.spawn("client-b", prio(5)).unwrap();
    let ep = k.endpoints.create().unwrap();
    let server_slot = give_endpoint(&mut k, server, ep, Rights::RECV, 0);
    let client_slot = give_endpoint(&mut k, a, ep, Rights::CALL, 0xa);
    assert_eq!(give_endpoint(&mut k, b, ep, Rights::CALL, 0xb), client_slot);
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(server));
    let (status, step) = k.reply_recv(server, server_slot, 0).unwrap();
    assert_eq!(status, ReplyStatus::NoneOwed);
    assert_eq!(step.decision, Decision::SwitchTo(a));
    World {
        k,
        server,
        clients: [a, b],
        server_slot,
        client_slot,
    }
}

#[test]
fn client_calls_server_and_the_badge_names_the_caller() {
    let World {
        mut k,
        server,
        clients: [a, b],
        server_slot,
        client_slot,
    } = world();
    let step = k.call(a, client_slot, 12).unwrap();
    assert_eq!(
        step.outcome.transfers().collect::<Vec<_>>(),
        [Transfer {
            from: a,
            to: server,
            badge: Badge(0xa),
            len: 12
        }]
    );
    assert_eq!(
        step.decision,
        Decision::SwitchTo(server),
        "fastpath straight to the server"
    );
    assert_eq!(k.sched.state(a), Some(TaskState::BlockedReply));

    // The server answers and waits again: straight back to the caller.
    let (status, step) = k.reply_recv(server, server_slot, 3).unwrap();
    assert_eq!(status, ReplyStatus::Delivered);
    assert_eq!(
        step.outcome.next,
        Next::SwitchTo {
            to: a,
            waits: super::endpoint::Wait::Recv
        }
    );
    assert_eq!(step.decision, Decision::SwitchTo(a));
    assert_eq!(k.sched.state(server), Some(TaskState::BlockedRecv));

    // The other client's calls carry its own badge.
    k.sched.block(a, TaskState::BlockedNotification).unwrap();
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(b));
    let step = k.call(b, client_slot, 1).unwrap();
    assert_eq!(step.outcome.transfers().next().unwrap().badge, Badge(0xb));
    k.sched.check_invariants().unwrap();
}

#[test]
fn a_call_without_the_call_right_is_refused_before_any_ipc() {
    let World {
        mut k,
        clients: [a, _],
        server_slot,
        ..
    } = world();
    let ep = EndpointId(0);
    let recv_only = give_endpoint(&mut k, a, ep, Rights::RECV, 0);
    assert!(matches!(k.call(a, recv_only, 0), Err(ObjError::Cap(_))));
    assert!(matches!(
        k.call(a, server_slot + 40, 0),
        Err(ObjError::Cap(_))
    ));
    assert_eq!(k.sched.state(a), Some(TaskState::Running));
}

#[test]
fn server_death_releases_its_caller_with_server_died() {
    let World {
        mut k,
        server,
        clients: [a, b],
        client_slot,
        ..
    } = world();
    k.call(a, client_slot, 8).unwrap();
    let reason = ExitReason::Faulted {
        kind: FaultKind::StorePageFault,
        address: 0xdead_0000,
    };
    let report = k.kill(server, reason).unwrap();
    assert!(report.released.contains(a), "the caller is told ServerDied");
    assert_eq!(report.released.len(), 1);
    // Client b was ready first at the same priority, so it runs first.
    assert_eq!(report.decision, Decision::SwitchTo(b));
    assert_eq!(k.sched.state(a), Some(TaskState::Ready));
    assert_eq!(
        report.notice.to_string(),
        "task 0 (devices) killed: store page fault at 0xdead0000"
    );
    assert_eq!(k.sched.state(server), Some(TaskState::Dead));
    assert_eq!(k.endpoints.waiting(a), None);
    // The caller is free to call again; with no server it queues.
    assert_eq!(k.sched.yield_now(), Decision::SwitchTo(a));
    assert_eq!(
        k.call(a, client_slot, 8).unwrap().decision,
        Decision::SwitchTo(b)
    );
    assert_eq!(k.sched.state(a), Some(TaskState::BlockedSend));
    k.sched.check_invariants().unwrap();
}

#[test]
fn a_caller_dying_makes_the_servers_reply_fail() {
    let World {
        mut k,
        server,
        clients: [a, _],
        client_slot,
        ..
    } = world();
    k.call(a, client_slot, 8).unwrap();
    k.kill(a, ExitReason::Killed).unwrap();
    assert_eq!(k.reply(server, 0), Err(ObjError::Ipc(IpcError::CallerDied)));
}

#[test]
fn the_supervisor_hears_of_deaths_and_reaps() {
    let mut k = KernelObjects::new();
    let init = k.spawn("init", prio(30)).unwrap();
    let worker = k.spawn("ioreq", prio(5)).unwrap();
    let n = k.notifications.create().unwrap();
    k.set_supervisor_notification(n);
    let cap = Capability {
        object: Object::Notification { id: n, bits: 0 },
        rights: Rights::RECV,
    };
    let slot = k
        .tasks
        .get_mut(init)
        .unwrap()
        .caps_mut()
        .insert(cap)
        .unwrap();
    let task_cap = Capability {
        object: Object::Task { id: worker },
        rights: Rights::ALL,
    };
    k.tasks
        .get_mut(init)
        .unwrap()
        .caps_mut()
        .insert(task_cap)
        .unwrap();
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(init));
    assert_eq!(
        k.wait(init, slot).unwrap(),
        (None, Decision::SwitchTo(worker))
    );

    let report = k.kill(worker, ExitReason::Exited { code: 7 }).unwrap();
    assert_eq!(
        report.decision,
        Decision::SwitchTo(init),
        "the supervisor wakes"
    );
    assert_eq!(
        k.tasks.get(init).unwrap().caps().occupied(),
        1,
        "the task capability was revoked"
    );
    let dead = k.tasks.id_at(worker.slot()).unwrap();
    assert_eq!(dead, worker);
    assert_eq!(
        k.reap(worker).unwrap().reason,
        ExitReason::Exited { code: 7 }
    );
    assert!(
        k.tasks.get(worker).is_err(),
        "a reaped id never resolves again"
    );
    let successor = k.spawn("ioreq", prio(5)).unwrap();
    assert_eq!(successor.slot(), worker.slot());
    assert_ne!(successor, worker);
}

#[test]
fn a_higher_priority_task_preempts_when_its_notification_arrives() {
    let mut k = KernelObjects::new();
    let urgent = k.spawn("ioreq", prio(20)).unwrap();
    let busy = k.spawn("shell", prio(3)).unwrap();
    let n = k.notifications.create().unwrap();
    let recv = Capability {
        object: Object::Notification { id: n, bits: 0 },
        rights: Rights::RECV,
    };
    let send = Capability {
        object: Object::Notification { id: n, bits: 0b10 },
        rights: Rights::SEND,
    };
    let rs = k
        .tasks
        .get_mut(urgent)
        .unwrap()
        .caps_mut()
        .insert(recv)
        .unwrap();
    let ss = k
        .tasks
        .get_mut(busy)
        .unwrap()
        .caps_mut()
        .insert(send)
        .unwrap();
    k.sched.schedule();
    assert_eq!(k.wait(urgent, rs).unwrap().1, Decision::SwitchTo(busy));
    assert_eq!(k.signal(busy, ss).unwrap(), Decision::SwitchTo(urgent));
    assert_eq!(k.sched.state(busy), Some(TaskState::Ready));
    // Pending bits are taken without blocking.
    k.signal(urgent, rs).unwrap_err();
    assert_eq!(k.notifications.poll(n), Ok(0));
}

#[test]
fn round_robin_order_within_a_priority() {
    let mut k = KernelObjects::new();
    let ids: Vec<TaskId> = ["a", "b", "c"]
        .iter()
        .map(|n| k.spawn(n, prio(7)).unwrap())
        .collect();
    let mut order = Vec::new();
    for _ in 0..6 {
        match k.sched.yield_now() {
            Decision::SwitchTo(t) => order.push(t),
            other => panic!("expected a switch, got {other:?}"),
        }
    }
    assert_eq!(order, [ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]]);
}

#[test]
fn a_queued_callers_state_becomes_reply_wait_when_its_request_is_taken() {
    let mut k = KernelObjects::new();
    let client = k.spawn("client", prio(9)).unwrap();
    let server = k.spawn("server", prio(2)).unwrap();
    let ep = k.endpoints.create().unwrap();
    let cs = give_endpoint(&mut k, client, ep, Rights::CALL, 1);
    let ss = give_endpoint(&mut k, server, ep, Rights::RECV, 0);
    assert_eq!(k.sched.schedule(), Decision::SwitchTo(client));
    assert_eq!(
        k.call(client, cs, 4).unwrap().decision,
        Decision::SwitchTo(server)
    );
    assert_eq!(k.sched.state(client), Some(TaskState::BlockedSend));
    assert_eq!(k.recv(server, ss).unwrap().decision, Decision::Continue);
    assert_eq!(k.sched.state(client), Some(TaskState::BlockedReply));
    // The reply readies the more urgent client, which preempts the server.
    assert_eq!(
        k.reply(server, 0).unwrap().decision,
        Decision::SwitchTo(client)
    );
}
