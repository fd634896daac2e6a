//! Guests that end on their own (SBI SRST power-off or reboot, or stopped
//! by the kernel): the vm-manager, woken with their bits, releases them or
//! reboots them, and `vm start` boots a powered-off static VM again.

mod common;

use common::*;
use ipc::vm::VmState;
use vm_manager::{GuestExit, GuestStatus, VmName};

fn name(text: &str) -> VmName {
    VmName::parse(text).expect("a valid test name")
}

#[test]
fn a_guest_power_off_releases_everything_and_start_boots_it_again() {
    let mut m = manager();
    m.launch_pre_launched();
    assert_eq!(state(&mut m, "sos"), VmState::Started);
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::PoweredOff);
    assert_eq!(
        m.guests_ended(1 << 0)[..],
        [GuestExit::PoweredOff(name("sos"))]
    );
    assert_eq!(state(&mut m, "sos"), VmState::PoweredOff);
    assert!(!m.platform().holds_anything(0), "nothing left behind");
    // A static VM keeps its configuration: `vm start` launches it again.
    expect_ok(&mut m, start("sos"));
    assert_eq!(state(&mut m, "sos"), VmState::Started);
    assert!(m.platform().running.contains(&0));
}

#[test]
fn a_dynamic_guest_that_powers_off_gives_its_slot_back() {
    let mut m = manager();
    let vm = expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    m.platform_mut()
        .guest_status
        .insert(vm.id.0, GuestStatus::Stopped);
    assert_eq!(
        m.guests_ended(1 << vm.id.0)[..],
        [GuestExit::Stopped(name("web"))]
    );
    assert_eq!(info(&mut m, "web"), None, "the slot is free");
    assert!(!m.platform().holds_anything(vm.id.0));
}

#[test]
fn a_guest_reboot_resets_and_starts_it_in_place() {
    let mut m = manager();
    m.launch_pre_launched();
    let before = info(&mut m, "sos").unwrap();
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::RebootRequested);
    assert_eq!(
        m.guests_ended(1 << 0)[..],
        [GuestExit::Rebooted(name("sos"), Ok(()))]
    );
    let after = info(&mut m, "sos").unwrap();
    assert_eq!(after.state, VmState::Started);
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
