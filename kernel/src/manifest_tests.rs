//! The manifest as tasks see it: which slots hold which rights, and that a
//! call through `call(n)` reaches the server of `n` with the caller's badge.

use super::*;
use crate::obj::cap::ObjectKind;
use crate::obj::endpoint::Transfer;
use crate::obj::sched::Priority;
use ipc::syscall::endpoints::VM_MANAGER;

fn spec(serves: Option<u8>, may_call: u64, rights: KernelRights) -> ServiceSpec {
    ServiceSpec {
        serves,
        may_call,
        rights,
        device_classes: 0,
    }
}

fn boot(specs: &[ServiceSpec]) -> (KernelObjects, Wiring, Vec<TaskId>) {
    let mut objects = KernelObjects::new();
    let wiring = Wiring::create(&mut objects, specs).unwrap();
    let mut ids = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let id = objects
            .spawn(&format!("t{i}"), Priority::new(5).unwrap())
            .unwrap();
        wiring.wire_task(&mut objects, id, s).unwrap();
        ids.push(id);
    }
    (objects, wiring, ids)
}

fn init_hello_crasher() -> [ServiceSpec; 3] {
    [
        spec(None, 1 << VM_MANAGER, KernelRights::SUPERVISOR),
        spec(Some(1), 0, KernelRights::VM_CONTROL),
        spec(None, 0, KernelRights::default()),
    ]
}

#[test]
fn slots_follow_the_convention() {
    let (objects, _, ids) = boot(&init_hello_crasher());
    let caps = |t: TaskId| objects.tasks.get(t).unwrap().caps().clone();
    let init = caps(ids[0]);
    let call = init
        .lookup(slots::call(VM_MANAGER), ObjectKind::Endpoint, Rights::CALL)
        .unwrap();
    let badge = Badge(ipc::syscall::SUPERVISOR_BADGE);
    assert!(
        matches!(call.object, Object::Endpoint { badge: b, .. } if b == badge),
        "{call:?}"
    );
    init.lookup(slots::DEATHS, ObjectKind::Notification, Rights::RECV)
        .unwrap();
    assert!(init.get(slots::SERVE).is_err(), "init serves nothing");
    assert_eq!(init.occupied(), 2);

    let hello = caps(ids[1]);
    hello
        .lookup(slots::SERVE, ObjectKind::Endpoint, Rights::RECV)
        .unwrap();
    assert!(
        hello.get(slots::DEATHS).is_err(),
        "only the supervisor hears deaths"
    );
    assert_eq!(hello.occupied(), 1);
    assert_eq!(caps(ids[2]).occupied(), 0, "crasher gets nothing");
}

#[test]
fn kernel_rights_are_recorded_per_task() {
    let (objects, _, ids) = boot(&init_hello_crasher());
    let rights = |t: TaskId| objects.tasks.get(t).unwrap().kernel_rights();
    assert_eq!(rights(ids[0]), KernelRights::SUPERVISOR);
    assert_eq!(rights(ids[1]), KernelRights::VM_CONTROL);
    assert_eq!(rights(ids[2]), KernelRights::default());
}

#[test]
fn a_call_through_the_manifest_slot_reaches_the_server_with_the_callers_badge() {
    let (mut objects, _, ids) = boot(&init_hello_crasher());
    let (init, hello) = (ids[0], ids[1]);
    // Scheduling order does not matter here: the server waits first.
    objects.sched.schedule();
    objects.recv(hello, slots::SERVE).ok();
    let step = objects.call(init, slots::call(VM_MANAGER), 7).unwrap();
    let transfers: Vec<Transfer> = step.outcome.transfers().collect();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].to, hello);
    // The supervisor's calls carry a badge of their own, so a server can
    // take requests only the supervisor may make.
    assert_eq!(transfers[0].badge, Badge(ipc::syscall::SUPERVISOR_BADGE));
    assert_eq!(transfers[0].len, 7);
}

#[test]
fn any_other_callers_badge_is_its_task_slot() {
    let specs = [
        spec(Some(1), 0, KernelRights::VM_CONTROL),
        spec(None, 1 << VM_MANAGER, KernelRights::CONSOLE),
    ];
    let (objects, _, ids) = boot(&specs);
    let caps = objects.tasks.get(ids[1]).unwrap().caps().clone();
    let call = caps
        .lookup(slots::call(VM_MANAGER), ObjectKind::Endpoint, Rights::CALL)
        .unwrap();
    let badge = Badge(ids[1].slot() as u64);
    assert!(
        matches!(call.object, Object::Endpoint { badge: b, .. } if b == badge),
        "{call:?}"
    );
}

#[test]
fn a_call_to_an_endpoint_nobody_serves_leaves_the_slot_empty() {
    let specs = [spec(None, 1 << 5, KernelRights::default())];
    let (objects, wiring, ids) = boot(&specs);
    assert!(wiring.endpoint(5).is_none());
    let caps = objects.tasks.get(ids[0]).unwrap().caps().clone();
    assert!(caps.get(slots::call(5)).is_err());
}

#[test]
fn bad_manifests_are_refused_with_a_reason() {
    let mut objects = KernelObjects::new();
    let far = [spec(None, 1 << 60, KernelRights::default())];
    let e = Wiring::create(&mut objects, &far).unwrap_err();
    assert_eq!(e, ManifestError::EndpointOutOfRange(60));
    assert!(e.to_string().contains("endpoint 60"), "{e}");
    let two = [
        spec(None, 0, KernelRights::SUPERVISOR),
        spec(None, 0, KernelRights::SUPERVISOR),
    ];
    assert_eq!(
        Wiring::create(&mut objects, &two).unwrap_err(),
        ManifestError::TwoSupervisors
    );
}
