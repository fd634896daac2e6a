//! Guests that end on their own (SBI SRST power-off or reboot, or stopped
//! by the kernel): the vm-manager, woken with their bits, releases them or
//! reboots them, and `vm start` boots a powered-off static VM again. How
//! each ended is kept: a static VM's `last_exit` until it starts again, a
//! dynamic VM's in the history of ended VMs (`Response::Ended`).

mod common;

use common::*;
use ipc::vm::{GuestAccess, LastExit, Response, StopCause, VmState};
use vm_manager::{GuestExit, GuestStatus, VmName};

fn name(text: &str) -> VmName {
    VmName::parse(text).expect("a valid test name")
}

const POWER_OFF: LastExit = LastExit::PoweredOff { reason: 0 };

fn fault() -> LastExit {
    LastExit::Stopped {
        cause: StopCause::GuestPageFault {
            access: GuestAccess::Store,
            gpa: 0x2800_0000,
        },
        pc: 0x8020_0040,
    }
}

#[test]
fn a_guest_power_off_releases_everything_and_start_boots_it_again() {
    let mut m = manager();
    m.launch_pre_launched();
    assert_eq!(state(&mut m, "sos"), VmState::Started);
    assert_eq!(info(&mut m, "sos").unwrap().last_exit, None);
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::Ended(POWER_OFF, Some(1_500)));
    assert_eq!(
        m.guests_ended(1 << 0)[..],
        [GuestExit::PoweredOff(name("sos"), POWER_OFF)]
    );
    let off = info(&mut m, "sos").unwrap();
    assert_eq!(off.state, VmState::PoweredOff);
    assert_eq!(off.last_exit, Some(POWER_OFF), "it says why");
    assert_eq!(off.last_exit_uptime_ms, Some(1_500), "and when");
    assert!(!m.platform().holds_anything(0), "nothing left behind");
    // A static VM keeps its configuration: `vm start` launches it again,
    // and how it last ended is history.
    expect_ok(&mut m, start("sos"));
    let again = info(&mut m, "sos").unwrap();
    assert_eq!(again.state, VmState::Started);
    assert_eq!((again.last_exit, again.last_exit_uptime_ms), (None, None));
    assert!(m.platform().running.contains(&0));
}

#[test]
fn a_static_guest_stopped_by_a_fault_shows_the_fault_until_it_starts() {
    let mut m = manager();
    m.launch_pre_launched();
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::Ended(fault(), Some(2_340)));
    assert_eq!(
        m.guests_ended(1 << 0)[..],
        [GuestExit::Stopped(name("sos"), fault())]
    );
    let stopped = info(&mut m, "sos").unwrap();
    assert_eq!(stopped.state, VmState::PoweredOff);
    assert_eq!(stopped.last_exit, Some(fault()));
    // Listed with it too, and kept through a create.
    let listed = list_all(&mut m);
    assert_eq!(listed[0].last_exit, Some(fault()));
    expect_info(&mut m, create("sos"));
    assert_eq!(info(&mut m, "sos").unwrap().last_exit, Some(fault()));
    expect_ok(&mut m, start("sos"));
    assert_eq!(info(&mut m, "sos").unwrap().last_exit, None);
}

#[test]
fn a_dynamic_guest_that_ends_gives_its_slot_back_and_is_remembered() {
    let mut m = manager();
    let vm = expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    m.platform_mut()
        .guest_status
        .insert(vm.id.0, GuestStatus::Ended(fault(), Some(2_340)));
    assert_eq!(
        m.guests_ended(1 << vm.id.0)[..],
        [GuestExit::Stopped(name("web"), fault())]
    );
    assert!(!m.platform().holds_anything(vm.id.0));
    assert!(
        list_all(&mut m).iter().all(|listed| listed.name != "web"),
        "the slot is free"
    );
    // Every request about the name says how it ended; nothing is done.
    assert_eq!(m.handle(info_req("web")), Response::Ended(fault()));
    assert_eq!(m.handle(start("web")), Response::Ended(fault()));
    assert_eq!(m.handle(stats("web")), Response::Ended(fault()));
    assert_eq!(m.handle(clone_vm("web", "copy")), Response::Ended(fault()));
    assert_eq!(m.ended(&name("web")), Some(fault()));
    // A name nobody had is still unknown.
    expect_err(&mut m, info_req("nobody"), ipc::Error::UnknownVm);
    // A new VM of that name is the one answered for.
    let again = expect_info(&mut m, create("web"));
    assert_eq!(again.last_exit, None);
    assert_eq!(m.ended(&name("web")), None);
}

#[test]
fn the_operator_ending_a_vm_is_recorded_too() {
    let mut m = manager();
    m.launch_pre_launched();
    expect_ok(&mut m, shutdown("sos"));
    let off = info(&mut m, "sos").unwrap();
    assert_eq!(off.last_exit, Some(LastExit::ShutDown));
    assert_eq!(off.last_exit_uptime_ms, None, "the vm-manager has no clock");
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, destroy("web"));
    assert_eq!(
        m.handle(info_req("web")),
        Response::Ended(LastExit::Destroyed)
    );
    expect_info(&mut m, create("db"));
    expect_ok(&mut m, shutdown("db"));
    assert_eq!(m.handle(pause("db")), Response::Ended(LastExit::ShutDown));
}

#[test]
fn the_history_of_ended_vms_is_bounded() {
    let mut m = manager();
    let count = ipc::vm::ENDED_HISTORY + 2;
    for n in 0..count {
        let vm = format!("d{n}");
        expect_info(&mut m, create(&vm));
        expect_ok(&mut m, destroy(&vm));
    }
    expect_err(&mut m, info_req("d0"), ipc::Error::UnknownVm);
    expect_err(&mut m, info_req("d1"), ipc::Error::UnknownVm);
    for n in 2..count {
        let vm = format!("d{n}");
        assert_eq!(
            m.handle(info_req(&vm)),
            Response::Ended(LastExit::Destroyed)
        );
    }
}

#[test]
fn a_guest_reboot_resets_and_starts_it_in_place() {
    let mut m = manager();
    m.launch_pre_launched();
    let before = info(&mut m, "sos").unwrap();
    let reboot = LastExit::Rebooted {
        warm: false,
        reason: 0,
    };
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::Ended(reboot, Some(700)));
    assert_eq!(
        m.guests_ended(1 << 0)[..],
        [GuestExit::Rebooted(name("sos"), Ok(()))]
    );
    let after = info(&mut m, "sos").unwrap();
    assert_eq!(after.state, VmState::Started);
    assert_eq!(after.last_exit, Some(reboot), "it runs on, rebooted");
    assert_eq!(after.last_exit_uptime_ms, Some(700));
    assert_eq!(after.generation_id, before.generation_id, "same machine");
    assert!(m.platform().running.contains(&0));
}

#[test]
fn stale_or_unknown_bits_change_nothing() {
    let mut m = manager();
    m.launch_pre_launched();
    // sos still runs (the platform says so); rtvm and free slots hold nothing.
    let calls = m.platform().calls.len();
    assert!(m.guests_ended(u64::MAX).is_empty());
    assert_eq!(m.platform().calls.len(), calls);
    assert_eq!(state(&mut m, "sos"), VmState::Started);
    assert_eq!(state(&mut m, "rtvm"), VmState::PoweredOff);
}
