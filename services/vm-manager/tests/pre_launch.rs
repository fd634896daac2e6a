//! The boot-time entry: every static VM flagged pre-launched is created and
//! started; each gets its own result.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::VmState;
use vm_manager::{StaticVmConfig, VmFlags};

const THREE: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "first",
        image: "a",
        mem_mib: 16,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "later",
        image: "b",
        mem_mib: 16,
        vcpus: 1,
        flags: VmFlags::STATIC,
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "second",
        image: "c",
        mem_mib: 16,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
];

fn three() -> Manager {
    Manager::new(THREE, FakePlatform::default(), CountingEntropy::default())
        .expect("the test scenario is valid")
}

#[test]
fn pre_launched_vms_start_at_boot_and_the_others_stay_off() {
    let mut m = three();
    let outcomes = m.launch_pre_launched();
    let summary: Vec<(u16, &str, Result<(), Error>)> = outcomes
        .iter()
        .map(|o| (o.id.0, o.name.as_str(), o.result))
        .collect();
    assert_eq!(summary, [(0, "first", Ok(())), (2, "second", Ok(()))]);
    assert_eq!(state(&mut m, "first"), VmState::Started);
    assert_eq!(state(&mut m, "second"), VmState::Started);
    assert_eq!(state(&mut m, "later"), VmState::PoweredOff);
}

#[test]
fn one_failing_vm_does_not_stop_the_others_and_is_left_off() {
    let mut m = three();
    m.platform_mut()
        .fail_next(CallKind::CreateAddressSpace, Error::OutOfMemory);
    let outcomes = m.launch_pre_launched();
    assert_eq!(outcomes[0].result, Err(Error::OutOfMemory));
    assert_eq!(outcomes[1].result, Ok(()));
    assert_eq!(state(&mut m, "first"), VmState::PoweredOff);
    assert!(!m.platform().holds_anything(0));
}

#[test]
fn a_vm_that_cannot_start_is_torn_down_again() {
    let mut m = three();
    m.platform_mut()
        .fail_next(CallKind::Start, Error::KernelRefused);
    let outcomes = m.launch_pre_launched();
    assert_eq!(outcomes[0].result, Err(Error::KernelRefused));
    assert_eq!(state(&mut m, "first"), VmState::PoweredOff);
    assert!(!m.platform().holds_anything(0));
    assert_eq!(state(&mut m, "second"), VmState::Started);
}

#[test]
fn launching_twice_reports_the_running_vms_as_duplicates() {
    let mut m = three();
    m.launch_pre_launched();
    let again = m.launch_pre_launched();
    assert!(again.iter().all(|o| o.result == Err(Error::DuplicateName)));
    assert_eq!(state(&mut m, "first"), VmState::Started);
}

#[test]
fn a_scenario_without_pre_launched_vms_launches_nothing() {
    let mut m: Manager = Manager::new(
        &SCENARIO[1..],
        FakePlatform::default(),
        CountingEntropy::default(),
    )
    .unwrap();
    assert!(m.launch_pre_launched().is_empty());
    assert!(m.platform().calls.is_empty());
}

#[test]
fn a_broken_scenario_is_refused_at_construction() {
    const BAD: &[StaticVmConfig] = &[StaticVmConfig {
        name: "nope",
        image: "a",
        mem_mib: 16,
        vcpus: 1,
        flags: VmFlags::PRE_LAUNCHED,
        linux: None,
        disk: None,
    }];
    let err = Manager::<16>::new(BAD, FakePlatform::default(), CountingEntropy::default()).err();
    assert_eq!(err, Some(vm_manager::ScenarioError::NotStatic { index: 0 }));
    let too_many = Manager::<1>::new(
        SCENARIO,
        FakePlatform::default(),
        CountingEntropy::default(),
    )
    .err();
    assert_eq!(
        too_many,
        Some(vm_manager::ScenarioError::TooManyVms { count: 2, max: 1 })
    );
}
