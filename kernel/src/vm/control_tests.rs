//! VM lifecycle and the ioreq upcall as the scheduler and the ioreq task
//! see them.

use super::*;
use crate::obj::cap::{Capability, Object};
use crate::obj::ids::Badge;
use crate::obj::rights::Rights;
use crate::obj::sched::Decision;

fn objects_with_service() -> (KernelObjects, TaskId) {
    let mut objects = KernelObjects::new();
    let ioreq = objects.spawn("ioreq", Priority::new(6).unwrap()).unwrap();
    let ep = objects.endpoints.create().unwrap();
    let cap = Capability {
        object: Object::Endpoint {
            id: ep,
            badge: Badge::NONE,
        },
        rights: Rights::RECV,
    };
    objects
        .tasks
        .get_mut(ioreq)
        .unwrap()
        .caps_mut()
        .insert_at(0, cap)
        .unwrap();
    (objects, ioreq)
}

fn vcpu_state(objects: &KernelObjects, vm: usize) -> Option<TaskState> {
    objects
        .sched
        .state(objects.vms.get(vm).unwrap().vcpus()[0].task)
}

#[test]
fn a_vcpu_runs_only_while_its_vm_runs() {
    let (mut o, _) = objects_with_service();
    let vcpu = create(&mut o, 3, 1).unwrap();
    assert_eq!(o.tasks.get(vcpu).unwrap().name().as_str(), "vm3");
    assert_eq!(
        vcpu_state(&o, 3),
        Some(TaskState::Held),
        "created, not started"
    );
    start(&mut o, 3).unwrap();
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Ready));
    pause(&mut o, 3).unwrap();
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Held));
    resume(&mut o, 3).unwrap();
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Ready));
    reset(&mut o, 3).unwrap();
    assert_eq!(o.vms.get(3).unwrap().phase, Phase::Created);
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Held));
    start(&mut o, 3).unwrap();
    ended(&mut o, 3);
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Held));
    o.sched.check_invariants().unwrap();
}

#[test]
fn illegal_lifecycle_steps_are_refused_and_change_nothing() {
    let (mut o, _) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    assert_eq!(create(&mut o, 0, 1), Err(Error::VmExists));
    assert_eq!(create(&mut o, MAX_VMS, 1), Err(Error::InvalidArgument));
    assert_eq!(pause(&mut o, 0), Err(Error::InvalidArgument));
    assert_eq!(resume(&mut o, 0), Err(Error::InvalidArgument));
    start(&mut o, 0).unwrap();
    assert_eq!(start(&mut o, 0), Err(Error::InvalidArgument));
    assert_eq!(check_start(&o, 0), Err(Error::InvalidArgument));
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Ready));
    ended(&mut o, 0);
    assert_eq!(start(&mut o, 0), Err(Error::InvalidArgument), "reset first");
    assert_eq!(pause(&mut o, 7), Err(Error::UnknownVm));
    assert_eq!(destroy(&mut o, 7), Err(Error::UnknownVm));
}

#[test]
fn services_run_before_vcpus() {
    let (mut o, ioreq) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    assert_eq!(o.sched.schedule(), Decision::SwitchTo(ioreq));
    // The service blocks in recv: now the vCPU gets the CPU.
    let step = o.recv(ioreq, 0).unwrap();
    let vcpu = o.vms.get(0).unwrap().vcpus()[0].task;
    assert_eq!(step.decision, Decision::SwitchTo(vcpu));
}

#[test]
fn an_io_exit_wakes_the_ioreq_task_blocked_in_recv_with_the_vm_bit() {
    let (mut o, ioreq) = objects_with_service();
    create(&mut o, 2, 1).unwrap();
    start(&mut o, 2).unwrap();
    assert_eq!(attach(&mut o, 2, ioreq), Ok(None));
    o.sched.schedule();
    o.recv(ioreq, 0).unwrap();
    assert_eq!(o.sched.state(ioreq), Some(TaskState::BlockedRecv));
    assert_eq!(
        o.sched.current(),
        Some(o.vms.get(2).unwrap().vcpus()[0].task)
    );

    assert_eq!(io_exit(&mut o, 2, 0), Some((ioreq, 1 << 2)));
    assert_eq!(vcpu_state(&o, 2), Some(TaskState::Held), "waits for I/O");
    assert_eq!(o.sched.state(ioreq), Some(TaskState::Ready));
    assert_eq!(
        o.endpoints.waiting(ioreq),
        None,
        "no longer on the endpoint"
    );
    assert_eq!(take_pending(&mut o, ioreq), None, "the bits were taken");
    assert_eq!(o.sched.schedule(), Decision::SwitchTo(ioreq));
    o.sched.check_invariants().unwrap();
}

#[test]
fn bits_stay_pending_until_the_ioreq_task_next_receives() {
    let (mut o, ioreq) = objects_with_service();
    for vm in [1, 4] {
        create(&mut o, vm, 1).unwrap();
        start(&mut o, vm).unwrap();
        attach(&mut o, vm, ioreq).unwrap();
    }
    // The ioreq task is busy (ready, not in recv): nothing to wake.
    assert_eq!(io_exit(&mut o, 1, 0), None);
    assert_eq!(io_exit(&mut o, 4, 0), None);
    assert_eq!(take_pending(&mut o, ioreq), Some((1 << 1) | (1 << 4)));
    assert_eq!(take_pending(&mut o, ioreq), None, "cleared once taken");
}

#[test]
fn a_request_waiting_before_attach_is_pending_for_the_new_task() {
    let (mut o, ioreq) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    assert_eq!(io_exit(&mut o, 0, 0), None, "nobody serves vm0 yet");
    attach(&mut o, 0, ioreq).unwrap();
    assert_eq!(take_pending(&mut o, ioreq), Some(1));
}

#[test]
fn resume_is_checked_then_lets_the_vcpu_run() {
    let (mut o, ioreq) = objects_with_service();
    let other = o.spawn("devices", Priority::new(6).unwrap()).unwrap();
    create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    attach(&mut o, 0, ioreq).unwrap();
    assert_eq!(check_resume(&o, 0, 0, ioreq), Err(Error::BadSlotState));
    io_exit(&mut o, 0, 0);
    assert_eq!(check_resume(&o, 0, 0, other), Err(Error::PermissionDenied));
    assert_eq!(check_resume(&o, 0, 1, ioreq), Err(Error::InvalidArgument));
    assert_eq!(check_resume(&o, 5, 0, ioreq), Err(Error::UnknownVm));
    assert_eq!(check_resume(&o, 0, 0, ioreq), Ok(()));
    io_resumed(&mut o, 0, 0);
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Ready));
}

#[test]
fn a_paused_vm_stays_held_after_its_io_completes() {
    let (mut o, ioreq) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    attach(&mut o, 0, ioreq).unwrap();
    io_exit(&mut o, 0, 0);
    pause(&mut o, 0).unwrap();
    io_resumed(&mut o, 0, 0);
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Held));
    resume(&mut o, 0).unwrap();
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Ready));
}

#[test]
fn destroy_works_while_the_vcpu_waits_for_io_and_frees_the_number() {
    let (mut o, ioreq) = objects_with_service();
    let vcpu = create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    attach(&mut o, 0, ioreq).unwrap();
    io_exit(&mut o, 0, 0);
    assert_eq!(destroy(&mut o, 0), Ok(Some(ioreq)), "unmap from ioreq");
    assert_eq!(o.sched.state(vcpu), None, "the vCPU left the scheduler");
    assert!(o.tasks.get(vcpu).is_err());
    assert_eq!(take_pending(&mut o, ioreq), None, "its request is gone");
    assert_eq!(o.vms.get(0), Err(Error::UnknownVm));
    create(&mut o, 0, 1).unwrap();
    o.sched.check_invariants().unwrap();
}

/// The scheduler states of `vm`'s vCPUs.
fn vcpu_states(objects: &KernelObjects, vm: usize) -> Vec<Option<TaskState>> {
    objects
        .vms
        .get(vm)
        .unwrap()
        .vcpus()
        .iter()
        .map(|v| objects.sched.state(v.task))
        .collect()
}

#[test]
fn only_started_vcpus_run_and_each_waits_for_its_own_io() {
    use TaskState::{Held, Ready};
    let (mut o, ioreq) = objects_with_service();
    create(&mut o, 1, 4).unwrap();
    let names: Vec<_> = o
        .vms
        .get(1)
        .unwrap()
        .vcpus()
        .iter()
        .map(|v| o.tasks.get(v.task).unwrap().name().as_str().to_string())
        .collect();
    assert_eq!(names, ["vm1", "vm1.1", "vm1.2", "vm1.3"]);
    attach(&mut o, 1, ioreq).unwrap();
    start(&mut o, 1).unwrap();
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Ready), Some(Held), Some(Held), Some(Held)],
        "vCPU 0 boots"
    );
    wake(&mut o, 1, 0b0110);
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Ready), Some(Ready), Some(Ready), Some(Held)]
    );
    io_exit(&mut o, 1, 2);
    sleep(&mut o, 1, 1, 700);
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Ready), Some(Held), Some(Held), Some(Held)]
    );
    assert_eq!(
        check_resume(&o, 1, 0, ioreq),
        Err(Error::BadSlotState),
        "vCPU 0 waits for nothing"
    );
    assert_eq!(
        check_resume(&o, 1, 4, ioreq),
        Err(Error::InvalidArgument),
        "no vCPU 4"
    );
    assert_eq!(check_resume(&o, 1, 2, ioreq), Ok(()));
    io_resumed(&mut o, 1, 2);
    interrupt(&mut o, 1, 1);
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Ready), Some(Ready), Some(Ready), Some(Held)]
    );
    hart_stopped(&mut o, 1, 0);
    assert_eq!(vcpu_states(&o, 1)[0], Some(Held), "stopped itself");
    pause(&mut o, 1).unwrap();
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Held); 4],
        "a pause holds every vCPU"
    );
    resume(&mut o, 1).unwrap();
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Held), Some(Ready), Some(Ready), Some(Held)]
    );
    reset(&mut o, 1).unwrap();
    start(&mut o, 1).unwrap();
    assert_eq!(
        vcpu_states(&o, 1),
        [Some(Ready), Some(Held), Some(Held), Some(Held)],
        "as new"
    );
    let tasks: Vec<_> = o
        .vms
        .get(1)
        .unwrap()
        .vcpus()
        .iter()
        .map(|v| v.task)
        .collect();
    destroy(&mut o, 1).unwrap();
    assert!(
        tasks.iter().all(|&t| o.sched.state(t).is_none()),
        "every vCPU left"
    );
    o.sched.check_invariants().unwrap();
}

#[test]
fn a_vm_whose_vcpus_do_not_all_fit_is_not_made() {
    let (mut o, _) = objects_with_service();
    let mut made = 0;
    while create(&mut o, made, 8).is_ok() {
        made += 1;
    }
    let live = |o: &KernelObjects| {
        o.sched.check_invariants().map(|()| {
            o.vms
                .numbers()
                .map(|vm| o.vms.get(vm).unwrap().vcpus().len())
                .sum::<usize>()
        })
    };
    let before = live(&o).unwrap();
    assert!(made > 0 && made < MAX_VMS, "the task table fills first");
    assert_eq!(create(&mut o, made, 8), Err(Error::OutOfMemory));
    assert_eq!(o.vms.get(made), Err(Error::UnknownVm));
    assert_eq!(live(&o).unwrap(), before);
    // The vCPU tasks spawned before the table filled were given back: a
    // VM that needs as many as were free fits.
    let free = (1..=8).rev().find(|&n| {
        let mut probe = o.clone();
        create(&mut probe, made, n).is_ok()
    });
    assert!(free.is_some(), "the failed create leaked its vCPU tasks");
}

#[test]
fn a_sleeping_vcpu_wakes_at_its_deadline() {
    let (mut o, _) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    start(&mut o, 0).unwrap();
    sleep(&mut o, 0, 0, 500);
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Held));
    assert_eq!(next_wakeup(&o), Some(500));
    wake_sleepers(&mut o, 499);
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Held));
    wake_sleepers(&mut o, 500);
    assert_eq!(vcpu_state(&o, 0), Some(TaskState::Ready));
    assert_eq!(next_wakeup(&o), None);
}

#[test]
fn an_external_interrupt_wakes_a_vcpu_asleep_in_wfi() {
    let (mut o, _) = objects_with_service();
    create(&mut o, 2, 1).unwrap();
    start(&mut o, 2).unwrap();
    sleep(&mut o, 2, 0, 1_000);
    assert_eq!(vcpu_state(&o, 2), Some(TaskState::Held));
    interrupt(&mut o, 2, 0);
    assert_eq!(vcpu_state(&o, 2), Some(TaskState::Ready));
    assert_eq!(next_wakeup(&o), None);
    // A paused VM stays held; an interrupt for no VM changes nothing.
    pause(&mut o, 2).unwrap();
    interrupt(&mut o, 2, 0);
    interrupt(&mut o, 9, 0);
    assert_eq!(vcpu_state(&o, 2), Some(TaskState::Held));
    o.sched.check_invariants().unwrap();
}

#[test]
fn ram_is_copied_only_between_two_vms_that_do_not_run() {
    let (mut o, _) = objects_with_service();
    create(&mut o, 0, 1).unwrap();
    create(&mut o, 1, 1).unwrap();
    start(&mut o, 0).unwrap();
    assert_eq!(
        check_clone(&o, 0, 1),
        Err(Error::InvalidArgument),
        "running"
    );
    pause(&mut o, 0).unwrap();
    assert_eq!(check_clone(&o, 0, 1), Ok(()));
    assert_eq!(check_clone(&o, 0, 0), Err(Error::InvalidArgument));
    assert_eq!(check_clone(&o, 0, 5), Err(Error::UnknownVm));
    assert_eq!(check_clone(&o, 5, 0), Err(Error::UnknownVm));
    start(&mut o, 1).unwrap();
    assert_eq!(
        check_clone(&o, 0, 1),
        Err(Error::InvalidArgument),
        "dst runs"
    );
}

/// A guest that powers itself off (or is stopped) wakes the task that
/// created it with the VM's bit, as an ioreq wake-up; a busy controller
/// finds the bit at its next `recv`; a VM without one tells nobody.
#[test]
fn a_vm_that_ends_tells_its_controller() {
    let (mut o, manager) = objects_with_service();
    for vm in [3, 5, 6] {
        create(&mut o, vm, 1).unwrap();
        start(&mut o, vm).unwrap();
    }
    set_controller(&mut o, 3, manager).unwrap();
    set_controller(&mut o, 5, manager).unwrap();
    assert_eq!(set_controller(&mut o, 9, manager), Err(Error::UnknownVm));
    o.sched.schedule();
    o.recv(manager, 0).unwrap();
    assert_eq!(ended(&mut o, 3), Some((manager, 1 << 3)));
    assert_eq!(vcpu_state(&o, 3), Some(TaskState::Held));
    assert_eq!(o.sched.state(manager), Some(TaskState::Ready));
    // Now busy: the next one waits for its recv.
    assert_eq!(ended(&mut o, 5), None);
    assert_eq!(take_pending(&mut o, manager), Some(1 << 5));
    assert_eq!(ended(&mut o, 6), None, "no controller");
    assert_eq!(take_pending(&mut o, manager), None);
    o.sched.check_invariants().unwrap();
}
