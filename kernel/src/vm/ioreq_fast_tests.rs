//! The ioreq fast path against the general path, on random histories of
//! guest I/O exits, completions, service deaths and restarts, pauses,
//! ticks and a busy neighbour service: the direct exit into the ioreq task
//! (`io_exit_direct`) and the plain `ioreq_complete_recv`
//! (`plain_complete_recv` + `complete_recv_direct`) either decline and
//! change nothing, or leave the kernel objects exactly as the general path
//! does (`io_exit` + `schedule`; `resume` checks + `io_resumed` + `recv`).
//! VM 1 has three vCPUs, each with its own slot, started and stopped by
//! the guest (SBI HSM) along the way.

use proptest::prelude::*;

use super::*;
use crate::obj::cap::{Capability, Object};
use crate::obj::ids::Badge;
use crate::obj::rights::Rights;
use crate::obj::task::ExitReason;
use mica_boot::image::KernelRights;

const VMS: usize = 2;
/// vCPUs of VM `vm`.
const VCPUS: [usize; VMS] = [1, 3];

#[derive(Clone, Debug)]
enum Op {
    /// The running vCPU exits on a device access.
    Exit,
    /// The running ioreq task completes the access of VM `vm`'s vCPU
    /// `vcpu` and waits.
    Complete(usize, usize),
    /// The running vCPU stops itself (HSM `hart_stop`).
    StopHart,
    /// VM 1's vCPUs in the mask are started or woken by a sibling.
    Wake(u64),
    /// The running ioreq task waits (or takes pending work).
    Recv,
    /// The neighbour service wakes up or blocks again.
    Neighbour,
    Tick,
    Yield,
    /// The ioreq task dies; a new one attaches to every VM.
    KillAndRestart,
    Pause(usize),
    Resume(usize),
    /// The running ioreq task hands VM `vm`'s vCPU `vcpu`'s access to the
    /// client (`ioreq_forward` with a receive).
    Forward(usize, usize),
    /// The running client answers the access handed to it plainly and
    /// waits again (or, owing none, just waits).
    Answer,
    /// The running client gives the access handed to it up (a receive
    /// without answering: the access goes back to the ioreq task).
    GiveUp,
    /// The client dies (handing back what it owed) and a new one waits.
    KillClient,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::Exit),
        5 => (0..VMS, 0..3usize).prop_map(|(vm, vcpu)| Op::Complete(vm, vcpu % VCPUS[vm])),
        1 => Just(Op::StopHart),
        1 => (1..8u64).prop_map(Op::Wake),
        2 => Just(Op::Recv),
        2 => Just(Op::Neighbour),
        2 => Just(Op::Tick),
        1 => Just(Op::Yield),
        1 => Just(Op::KillAndRestart),
        1 => (0..VMS).prop_map(Op::Pause),
        1 => (0..VMS).prop_map(Op::Resume),
        4 => (0..VMS, 0..3usize).prop_map(|(vm, vcpu)| Op::Forward(vm, vcpu % VCPUS[vm])),
        4 => Just(Op::Answer),
        1 => Just(Op::GiveUp),
        1 => Just(Op::KillClient),
    ]
}

struct World {
    o: KernelObjects,
    ioreq: TaskId,
    neighbour: TaskId,
    ep: crate::obj::ids::EndpointId,
    /// The client the ioreq task hands accesses to, and its endpoint
    /// (the ioreq task calls it through slot 1).
    client: TaskId,
    client_ep: crate::obj::ids::EndpointId,
}

/// A client task waiting to receive on `ep` (its slot 0).
fn spawn_client(o: &mut KernelObjects, ep: crate::obj::ids::EndpointId) -> TaskId {
    let client = o.spawn("client", Priority::new(5).unwrap()).unwrap();
    let cap = Capability {
        object: Object::Endpoint {
            id: ep,
            badge: Badge::NONE,
        },
        rights: Rights::RECV,
    };
    o.tasks
        .get_mut(client)
        .unwrap()
        .caps_mut()
        .insert_at(0, cap)
        .unwrap();
    client
}

fn spawn_ioreq(o: &mut KernelObjects, ep: crate::obj::ids::EndpointId) -> TaskId {
    let ioreq = o.spawn("ioreq", Priority::new(6).unwrap()).unwrap();
    let task = o.tasks.get_mut(ioreq).unwrap();
    task.set_kernel_rights(KernelRights::IOREQ);
    let cap = Capability {
        object: Object::Endpoint {
            id: ep,
            badge: Badge::NONE,
        },
        rights: Rights::RECV,
    };
    task.caps_mut().insert_at(0, cap).unwrap();
    for vm in 0..VMS {
        attach(o, vm, ioreq).unwrap();
    }
    ioreq
}

/// Gives `ioreq` the right to call the client's endpoint `client_ep`
/// (slot 1, badge 7).
fn may_call_client(o: &mut KernelObjects, ioreq: TaskId, client_ep: crate::obj::ids::EndpointId) {
    let cap = Capability {
        object: Object::Endpoint {
            id: client_ep,
            badge: Badge(7),
        },
        rights: Rights::CALL,
    };
    o.tasks
        .get_mut(ioreq)
        .unwrap()
        .caps_mut()
        .insert_at(1, cap)
        .unwrap();
}

fn world() -> World {
    let mut o = KernelObjects::new();
    let ep = o.endpoints.create().unwrap();
    let neighbour = o.spawn("devices", Priority::new(5).unwrap()).unwrap();
    for (vm, vcpus) in VCPUS.into_iter().enumerate() {
        create(&mut o, vm, vcpus).unwrap();
    }
    let ioreq = spawn_ioreq(&mut o, ep);
    let client_ep = o.endpoints.create().unwrap();
    may_call_client(&mut o, ioreq, client_ep);
    let client = spawn_client(&mut o, client_ep);
    for vm in 0..VMS {
        start(&mut o, vm).unwrap();
    }
    // vCPU 0 boots VM 1's other vCPUs.
    wake(&mut o, 1, 0b110);
    // The client and the ioreq task wait on their endpoints, the
    // neighbour is busy.
    o.sched.schedule();
    o.recv(client, 0).unwrap();
    assert_eq!(o.sched.state(client), Some(TaskState::BlockedRecv));
    o.sched.schedule();
    let _ = o.recv(ioreq, 0);
    o.sched.schedule();
    World {
        o,
        ioreq,
        neighbour,
        ep,
        client,
        client_ep,
    }
}

/// The ioreq task (running) waits on its endpoint, or takes its pending
/// work at once, as `ioreq_complete_recv` and `ioreq_forward` do after
/// their first half.
fn ioreq_waits(w: &mut World) {
    if take_pending(&mut w.o, w.ioreq).is_none() {
        let _ = w.o.recv(w.ioreq, 0);
    } else {
        w.o.sched.schedule();
    }
}

/// The client (running) waits again on its endpoint.
fn client_waits(w: &mut World) {
    let _ = w.o.recv(w.client, 0);
}

fn same(a: &KernelObjects, b: &KernelObjects) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Runs `op` on `w`, comparing fast and general where a fast path exists;
/// returns whether the fast path was taken.
fn step(w: &mut World, op: &Op) -> Result<bool, TestCaseError> {
    let current = w.o.sched.current();
    match *op {
        Op::Exit => {
            let Some((vm, vcpu)) = current.and_then(|c| w.o.vms.vcpu_of_task(c)) else {
                return Ok(false);
            };
            let mut fast = w.o.clone();
            let taken = io_exit_direct(&mut fast, vm, vcpu);
            if taken.is_none() {
                prop_assert!(same(&fast, &w.o), "a declined exit changed state");
            }
            let woken = io_exit(&mut w.o, vm, vcpu);
            let decision = w.o.sched.schedule();
            match taken {
                None => Ok(false),
                Some((task, bits, fast_decision)) => {
                    prop_assert_eq!(woken, Some((task, bits)));
                    prop_assert_eq!(fast_decision, decision);
                    prop_assert!(same(&fast, &w.o), "fast exit left other state");
                    Ok(true)
                }
            }
        }
        Op::Complete(vm, vcpu) => {
            if current != Some(w.ioreq) {
                return Ok(false);
            }
            let mut fast = w.o.clone();
            // A check only (`&self`): it cannot change the objects.
            let plain = fast.plain_complete_recv(w.ioreq, vm, vcpu, 0);
            // The general path: the checks, io_resumed, then the receive.
            let resumed = check_resume(&w.o, vm, vcpu, w.ioreq);
            if resumed.is_err() {
                prop_assert!(plain.is_none());
                return Ok(false);
            }
            io_resumed(&mut w.o, vm, vcpu);
            ioreq_waits(w);
            let Some((task, ep)) = plain else {
                return Ok(false);
            };
            prop_assert_eq!(ep, w.ep);
            fast.complete_recv_direct(w.ioreq, (vm, vcpu), task, ep);
            prop_assert_eq!(w.o.sched.current(), Some(task));
            prop_assert!(same(&fast, &w.o), "fast completion left other state");
            Ok(true)
        }
        Op::Recv => {
            if current == Some(w.ioreq) && take_pending(&mut w.o, w.ioreq).is_none() {
                let _ = w.o.recv(w.ioreq, 0);
            }
            Ok(false)
        }
        Op::Neighbour => {
            match w.o.sched.state(w.neighbour) {
                Some(TaskState::BlockedNotification) => {
                    let _ = w.o.sched.unblock(w.neighbour);
                }
                Some(TaskState::Running) => {
                    let _ = w.o.sched.block(w.neighbour, TaskState::BlockedNotification);
                }
                _ => {}
            }
            w.o.sched.schedule();
            Ok(false)
        }
        Op::StopHart => {
            if let Some((vm, vcpu)) = current.and_then(|c| w.o.vms.vcpu_of_task(c)) {
                hart_stopped(&mut w.o, vm, vcpu);
                w.o.sched.schedule();
            }
            Ok(false)
        }
        Op::Wake(mask) => {
            wake(&mut w.o, 1, mask);
            w.o.sched.schedule();
            Ok(false)
        }
        Op::Tick => {
            w.o.sched.tick();
            Ok(false)
        }
        Op::Yield => {
            w.o.sched.yield_now();
            Ok(false)
        }
        Op::KillAndRestart => {
            let _ = w.o.kill(w.ioreq, ExitReason::Killed);
            w.ioreq = spawn_ioreq(&mut w.o, w.ep);
            w.o.sched.schedule();
            Ok(false)
        }
        Op::Pause(vm) => {
            let _ = pause(&mut w.o, vm);
            w.o.sched.schedule();
            Ok(false)
        }
        Op::Resume(vm) => {
            let _ = resume(&mut w.o, vm);
            w.o.sched.schedule();
            Ok(false)
        }
        Op::Forward(vm, vcpu) => {
            if current != Some(w.ioreq) {
                return Ok(false);
            }
            let mut fast = w.o.clone();
            let plain = fast.plain_forward_recv(w.ioreq, (1, 9), (vm, vcpu), 0);
            // The general path: the checks, the hand-over, the receive.
            if check_forward(&w.o, vm, vcpu, w.ioreq).is_err() {
                prop_assert!(plain.is_none());
                return Ok(false);
            }
            let Ok(transfer) = w.o.hand_to_receiver(w.ioreq, 1, 9) else {
                prop_assert!(plain.is_none());
                return Ok(false);
            };
            forwarded(&mut w.o, vm, vcpu, transfer.to);
            if take_pending(&mut w.o, w.ioreq).is_some() {
                w.o.sched.unblock(transfer.to).unwrap();
                w.o.sched.schedule();
            } else {
                let _ = w.o.recv_then_switch(w.ioreq, 0, transfer.to);
            }
            let Some((call_ep, recv_ep, client, badge)) = plain else {
                return Ok(false);
            };
            prop_assert_eq!(
                (call_ep, recv_ep, client, badge),
                (w.client_ep, w.ep, transfer.to, transfer.badge)
            );
            fast.apply_forward_recv(w.ioreq, (call_ep, recv_ep), client, (vm, vcpu));
            prop_assert_eq!(fast.sched.current(), Some(client));
            prop_assert!(same(&fast, &w.o), "fast forward left other state");
            Ok(true)
        }
        Op::Answer => {
            if current != Some(w.client) {
                return Ok(false);
            }
            let Some((vm, vcpu)) = peek_forward(&w.o, w.client) else {
                client_waits(w);
                return Ok(false);
            };
            let mut fast = w.o.clone();
            let plain = fast.plain_answer_recv(w.client, (vm, vcpu), 0);
            // The general path: the answer taken, the vCPU resumed, the
            // receive.
            let taken = take_forward(&mut w.o, w.client);
            if let Some((vm, vcpu)) = taken {
                io_resumed(&mut w.o, vm, vcpu);
            }
            client_waits(w);
            let Some((task, ep)) = plain else {
                return Ok(false);
            };
            prop_assert_eq!(taken, Some((vm, vcpu)));
            prop_assert_eq!(ep, w.client_ep);
            clear_forward(&mut fast, w.client);
            fast.complete_recv_direct(w.client, (vm, vcpu), task, ep);
            prop_assert_eq!(w.o.sched.current(), Some(task));
            prop_assert!(same(&fast, &w.o), "fast answer left other state");
            Ok(true)
        }
        Op::GiveUp => {
            if current != Some(w.client) {
                return Ok(false);
            }
            if let Some((vm, vcpu)) = take_forward(&mut w.o, w.client) {
                let _ = forward_handed_back(&mut w.o, vm, vcpu);
                prop_assert_eq!(
                    w.o.vms.get(vm).unwrap().vcpu(vcpu).unwrap().forward,
                    Forward::HandedBack
                );
            }
            client_waits(w);
            Ok(false)
        }
        Op::KillClient => {
            if let Some((vm, vcpu)) = take_forward(&mut w.o, w.client) {
                let _ = forward_handed_back(&mut w.o, vm, vcpu);
            }
            let _ = w.o.kill(w.client, ExitReason::Killed);
            w.client = spawn_client(&mut w.o, w.client_ep);
            w.o.sched.schedule();
            Ok(false)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_ioreq_fast_path_does_what_the_general_path_does(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut w = world();
        for op in &ops {
            step(&mut w, op)?;
            w.o.sched.check_invariants().map_err(TestCaseError::fail)?;
            // The client owes the kernel an answer exactly while the vCPU's
            // record says its access is with the client.
            for (vm, vcpus) in VCPUS.into_iter().enumerate() {
                for vcpu in 0..vcpus {
                    let record = w.o.vms.get(vm).unwrap().vcpu(vcpu).unwrap();
                    if let Forward::To(client) = record.forward {
                        prop_assert!(record.io_wait);
                        prop_assert_eq!(peek_forward(&w.o, client), Some((vm, vcpu)));
                    }
                }
            }
        }
    }
}

/// Both fast paths are no dead code: a vCPU's exit goes straight to the
/// waiting ioreq task and its completion straight back to the vCPU; a busy
/// more urgent neighbour sends the completion the general way.
#[test]
fn the_plain_round_trip_takes_both_fast_paths() {
    let mut w = world();
    // Let the neighbour block so that the vCPUs run.
    step(&mut w, &Op::Neighbour).unwrap();
    let vcpu = w.o.sched.current().unwrap();
    let (vm, index) = w.o.vms.vcpu_of_task(vcpu).unwrap();
    assert!(step(&mut w, &Op::Exit).unwrap());
    assert_eq!(w.o.sched.current(), Some(w.ioreq));
    assert!(step(&mut w, &Op::Complete(vm, index)).unwrap());
    assert_eq!(w.o.sched.current(), Some(vcpu));
    assert!(step(&mut w, &Op::Exit).unwrap());
    // The neighbour wakes while the ioreq task works: it is more urgent
    // than the vCPU, so the completion goes through the scheduler.
    let _ = w.o.sched.unblock(w.neighbour);
    assert!(!step(&mut w, &Op::Complete(vm, index)).unwrap());
    assert_eq!(w.o.sched.current(), Some(w.neighbour));
}

/// The forwarded round trip takes its fast paths too: the exit goes to the
/// ioreq task, its hand-over straight to the client, and the client's
/// answer straight back to the vCPU.
#[test]
fn the_forwarded_round_trip_takes_its_fast_paths() {
    let mut w = world();
    step(&mut w, &Op::Neighbour).unwrap();
    let vcpu = w.o.sched.current().unwrap();
    let (vm, index) = w.o.vms.vcpu_of_task(vcpu).unwrap();
    for _ in 0..3 {
        assert!(step(&mut w, &Op::Exit).unwrap());
        assert_eq!(w.o.sched.current(), Some(w.ioreq));
        assert!(step(&mut w, &Op::Forward(vm, index)).unwrap());
        assert_eq!(w.o.sched.current(), Some(w.client));
        assert!(step(&mut w, &Op::Answer).unwrap());
        assert_eq!(w.o.sched.current(), Some(vcpu));
    }
}
