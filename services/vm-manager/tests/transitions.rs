//! Every request in every lifecycle state, through `handle`, for a static
//! and a dynamic VM: the expected answer, the resulting state and the
//! platform effect of each cell.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::{Request, Response, VmState};

const STATES: [VmState; 4] = [
    VmState::PoweredOff,
    VmState::Created,
    VmState::Started,
    VmState::Paused,
];

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Start,
    Pause,
    Resume,
    Reset,
    ResetNewId,
    Shutdown,
    Destroy,
    CloneSource,
}

const OPS: [Op; 9] = [
    Op::Create,
    Op::Start,
    Op::Pause,
    Op::Resume,
    Op::Reset,
    Op::ResetNewId,
    Op::Shutdown,
    Op::Destroy,
    Op::CloneSource,
];

fn request(op: Op, name: &str) -> Request {
    match op {
        Op::Create => create(name),
        Op::Start => start(name),
        Op::Pause => pause(name),
        Op::Resume => resume(name),
        Op::Reset => reset(name, false),
        Op::ResetNewId => reset(name, true),
        Op::Shutdown => shutdown(name),
        Op::Destroy => destroy(name),
        Op::CloneSource => clone_vm(name, "the-copy"),
    }
}

/// Brings `name` (static `rtvm` or a dynamic VM) into `state`.
fn bring_to(m: &mut Manager, name: &str, state: VmState) {
    if state == VmState::PoweredOff {
        return;
    }
    expect_info(m, create(name));
    if matches!(state, VmState::Started | VmState::Paused) {
        expect_ok(m, start(name));
    }
    if state == VmState::Paused {
        expect_ok(m, pause(name));
    }
    assert_eq!(current_state(m, name), Some(state));
}

fn current_state(m: &mut Manager, name: &str) -> Option<VmState> {
    info(m, name).map(|i| i.state)
}

/// The expected outcome of `op` in `state`: `Ok(state after)` or the error.
/// `None` as the state after means the VM no longer exists (dynamic).
fn expected(op: Op, state: VmState, dynamic: bool) -> Result<Option<VmState>, Error> {
    use VmState as S;
    let off = if dynamic { None } else { Some(S::PoweredOff) };
    let illegal = Err(Error::IllegalTransition { state });
    match (op, state) {
        (Op::Create, S::PoweredOff) => Ok(Some(S::Created)),
        (Op::Create, _) => Err(Error::DuplicateName),
        (Op::Start, S::Created) => Ok(Some(S::Started)),
        // A powered-off static VM is launched again by `start`.
        (Op::Start, S::PoweredOff) if !dynamic => Ok(Some(S::Started)),
        (Op::Pause, S::Started) => Ok(Some(S::Paused)),
        (Op::Resume, S::Paused) => Ok(Some(S::Started)),
        (Op::Reset | Op::ResetNewId, S::Created) => Ok(Some(S::Created)),
        (Op::Reset | Op::ResetNewId, S::Started | S::Paused) => Ok(Some(S::Started)),
        (Op::Shutdown | Op::Destroy, S::Created | S::Started | S::Paused) => Ok(off),
        (Op::CloneSource, S::Paused) => Ok(Some(S::Paused)),
        _ => illegal,
    }
}

fn check_cell(op: Op, state: VmState, name: &str, dynamic: bool) {
    let mut m = manager();
    bring_to(&mut m, name, state);
    let before = info(&mut m, name);
    let response = m.handle(request(op, name));
    let cell = format!("{op:?} in {state:?} ({name})");
    match expected(op, state, dynamic) {
        Ok(after) => {
            assert!(
                matches!(response, Response::Ok | Response::Info(_)),
                "{cell}: {response:?}"
            );
            assert_eq!(current_state(&mut m, name), after, "{cell}");
        }
        Err(error) => {
            assert_eq!(response, Response::Err(error), "{cell}");
            assert_eq!(
                info(&mut m, name),
                before,
                "{cell}: a refusal changes nothing"
            );
        }
    }
    // What the platform sees matches the state the manager reports.
    let slot = before.as_ref().map_or(2, |i| i.id.0);
    let now = current_state(&mut m, name);
    assert_eq!(
        m.platform().running.contains(&slot),
        now == Some(VmState::Started),
        "{cell}: platform run state"
    );
    assert_eq!(
        m.platform().holds_anything(slot),
        matches!(
            now,
            Some(VmState::Created | VmState::Started | VmState::Paused)
        ),
        "{cell}: platform resources"
    );
}

#[test]
fn every_state_and_request_for_a_static_vm() {
    for state in STATES {
        for op in OPS {
            check_cell(op, state, "rtvm", false);
        }
    }
}

#[test]
fn every_live_state_and_request_for_a_dynamic_vm() {
    for state in [VmState::Created, VmState::Started, VmState::Paused] {
        for op in OPS {
            check_cell(op, state, "web", true);
        }
    }
}

#[test]
fn a_dynamic_vm_is_gone_after_shutdown_or_destroy() {
    for (last, how) in [
        (shutdown("web"), ipc::vm::LastExit::ShutDown),
        (destroy("web"), ipc::vm::LastExit::Destroyed),
    ] {
        let mut m = manager();
        expect_info(&mut m, create("web"));
        expect_ok(&mut m, start("web"));
        expect_ok(&mut m, last.clone());
        assert_eq!(info(&mut m, "web"), None, "{last:?}");
        // Gone, and the answer says how it went.
        assert_eq!(m.handle(start("web")), ipc::vm::Response::Ended(how));
        assert_eq!(list_all(&mut m).len(), 2, "only the static VMs remain");
    }
}

#[test]
fn destroy_tears_down_a_running_vm_without_pausing_it() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    expect_ok(&mut m, destroy("web"));
    let calls = m.platform().calls_for(2);
    assert_eq!(
        &calls[calls.len() - 4..],
        &[
            CallKind::UnregisterDevices,
            CallKind::UnregisterIoreq,
            CallKind::DestroyVcpus,
            CallKind::FreeAddressSpace
        ]
    );
    assert_eq!(m.platform().count(CallKind::Pause), 0);
}

#[test]
fn shutdown_holds_a_running_vm_before_releasing_it() {
    let mut m = manager();
    expect_info(&mut m, create("rtvm"));
    expect_ok(&mut m, start("rtvm"));
    expect_ok(&mut m, shutdown("rtvm"));
    let calls = m.platform().calls_for(1);
    assert_eq!(
        &calls[calls.len() - 5..],
        &[
            CallKind::Pause,
            CallKind::UnregisterDevices,
            CallKind::UnregisterIoreq,
            CallKind::DestroyVcpus,
            CallKind::FreeAddressSpace
        ]
    );
    assert!(!m.platform().holds_anything(1));
}

#[test]
fn reset_reboots_in_place_and_a_paused_vm_runs_again() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    expect_ok(&mut m, pause("web"));
    let before = m.platform().calls.len();
    expect_ok(&mut m, reset("web", false));
    let kinds: Vec<CallKind> = m.platform().calls[before..]
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, [CallKind::Reset, CallKind::Start]);
    assert_eq!(state(&mut m, "web"), VmState::Started);
    assert!(m.platform().running.contains(&2));

    expect_info(&mut m, create("idle"));
    let before = m.platform().calls.len();
    expect_ok(&mut m, reset("idle", false));
    let kinds: Vec<CallKind> = m.platform().calls[before..]
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        kinds,
        [CallKind::Reset],
        "a created VM is not started by a reset"
    );
    assert_eq!(state(&mut m, "idle"), VmState::Created);
}
