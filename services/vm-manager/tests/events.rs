//! Every state change the vm-manager makes is recorded for `Events`, in
//! order, with the VM's state after it: what operators ask for, the
//! pre-launched VMs at boot and guests that end on their own; refused
//! requests record nothing.

mod common;

use common::*;
use ipc::vm::{
    EventPage, GuestAccess, LastExit, Request, Response, StopCause, VmChange, VmEvent, VmState,
};
use vm_manager::GuestStatus;

/// Every event from `from` on, page by page; and where the next will be.
fn events(m: &mut Manager, mut from: u64) -> (Vec<VmEvent>, u64) {
    let mut all = Vec::new();
    loop {
        let page = match m.handle(Request::Events { from }) {
            Response::Events(page) => page,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(page.lost, 0);
        if page.events.is_empty() {
            return (all, page.next);
        }
        all.extend(page.events);
        from = page.next;
    }
}

/// (name, change, state) of each event.
fn changes(events: &[VmEvent]) -> Vec<(String, VmChange, VmState)> {
    events
        .iter()
        .map(|e| (e.name.to_string(), e.change, e.state))
        .collect()
}

fn c(name: &str, change: VmChange, state: VmState) -> (String, VmChange, VmState) {
    (name.to_string(), change, state)
}

#[test]
fn an_operators_changes_are_recorded_in_order_with_the_state_after() {
    let mut m = manager();
    assert_eq!(
        m.handle(Request::Events { from: u64::MAX }),
        Response::Events(EventPage::default()),
        "nothing happened yet"
    );
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    expect_ok(&mut m, pause("web"));
    expect_ok(&mut m, resume("web"));
    expect_ok(&mut m, reset("web", true));
    expect_ok(&mut m, pause("web"));
    expect_info(&mut m, clone_vm("web", "copy"));
    expect_ok(&mut m, shutdown("copy"));
    expect_ok(&mut m, destroy("web"));
    // Refused: nothing recorded.
    expect_err(&mut m, start("rtvm2"), ipc::Error::UnknownVm);
    expect_err(&mut m, pause("sos"), illegal(VmState::PoweredOff));
    let (seen, next) = events(&mut m, 0);
    let exited = |exit| VmChange::Exited {
        exit,
        uptime_ms: None,
    };
    assert_eq!(
        changes(&seen),
        [
            c("web", VmChange::Created, VmState::Created),
            c("web", VmChange::Started, VmState::Started),
            c("web", VmChange::Paused, VmState::Paused),
            c("web", VmChange::Resumed, VmState::Started),
            c(
                "web",
                VmChange::Reset {
                    new_generation_id: true
                },
                VmState::Started
            ),
            c("web", VmChange::Paused, VmState::Paused),
            c("copy", VmChange::Created, VmState::Created),
            c("copy", exited(LastExit::ShutDown), VmState::PoweredOff),
            c("web", exited(LastExit::Destroyed), VmState::PoweredOff),
        ]
    );
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..9).collect::<Vec<_>>());
    assert_eq!(next, 9);
}

fn illegal(state: VmState) -> ipc::Error {
    ipc::Error::IllegalTransition { state }
}

#[test]
fn boot_and_guests_that_end_on_their_own_are_recorded_with_why_and_when() {
    let mut m = manager();
    m.launch_pre_launched();
    let (boot, next) = events(&mut m, 0);
    let boot: Vec<_> = changes(&boot)
        .into_iter()
        .filter(|(name, ..)| name == "sos")
        .collect();
    assert_eq!(
        boot,
        [
            c("sos", VmChange::Created, VmState::Created),
            c("sos", VmChange::Started, VmState::Started),
        ]
    );
    let fault = LastExit::Stopped {
        cause: StopCause::GuestPageFault {
            access: GuestAccess::Load,
            gpa: 0x1000,
        },
        pc: 0x8020_0000,
    };
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::Ended(fault, Some(2_500)));
    m.guests_ended(1 << 0);
    let reboot = LastExit::Rebooted {
        warm: false,
        reason: 0,
    };
    expect_ok(&mut m, start("sos"));
    m.platform_mut()
        .guest_status
        .insert(0, GuestStatus::Ended(reboot, Some(3_000)));
    m.guests_ended(1 << 0);
    let (ended, _) = events(&mut m, next);
    assert_eq!(
        changes(&ended),
        [
            c(
                "sos",
                VmChange::Exited {
                    exit: fault,
                    uptime_ms: Some(2_500)
                },
                VmState::PoweredOff
            ),
            c("sos", VmChange::Created, VmState::Created),
            c("sos", VmChange::Started, VmState::Started),
            c(
                "sos",
                VmChange::Exited {
                    exit: reboot,
                    uptime_ms: Some(3_000)
                },
                VmState::Started
            ),
        ]
    );
}
