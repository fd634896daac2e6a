//! `Dispatch`: draining PENDING slots into forwards, the default client,
//! unclaimed and malformed requests.

use super::*;
use std::vec::Vec;

use ipc::devices;

use crate::dispatch::{Action, Forward};
use crate::page::{STATE_COMPLETE, STATE_FREE, STATE_PENDING, STATE_PROCESSING};

#[test]
fn dispatch_forwards_many_mixed_slots_in_one_call() {
    let mut service = attached(8);
    register(&mut service, UART, Space::Pio, 0x3f8, 8);
    register(&mut service, UART, Space::Mmio, 0x1000_0000, 8);
    register(&mut service, RTC, Space::Pio, 0x70, 2);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    let traps = [
        access(0, Space::Pio, 0x3f8, 1, Direction::Write, 0x41),
        access(1, Space::Mmio, 0x1000_0005, 1, Direction::Read, 0),
        access(2, Space::Pio, 0x71, 1, Direction::Read, 0),
        access(
            4,
            Space::Mmio,
            0x8000_0000,
            4,
            Direction::Write,
            0xdead_beef,
        ),
        access(5, Space::PciConfig, 0x0800, 4, Direction::Read, 0),
        access(7, Space::Mmio, 0x1000_0000, 8, Direction::Read, 0),
    ];
    for request in traps {
        trap(&mut service, request);
    }
    let handled = dispatch(&mut service);
    assert_eq!(handled.response, Response::Dispatched { count: 6 });
    let forwards: Vec<Forward> = handled.actions.forwards().cloned().collect();
    assert_eq!(forwards.len(), 6);
    assert_eq!(handled.actions.len(), 6, "nothing but forwards");
    let expected = [
        (
            UART,
            0,
            devices::Request::Write {
                vm: VM,
                space: Space::Pio,
                addr: 0x3f8,
                size: 1,
                value: 0x41,
            },
        ),
        (
            UART,
            1,
            devices::Request::Read {
                vm: VM,
                space: Space::Mmio,
                addr: 0x1000_0005,
                size: 1,
            },
        ),
        (
            RTC,
            2,
            devices::Request::Read {
                vm: VM,
                space: Space::Pio,
                addr: 0x71,
                size: 1,
            },
        ),
        (
            DM,
            4,
            devices::Request::Write {
                vm: VM,
                space: Space::Mmio,
                addr: 0x8000_0000,
                size: 4,
                value: 0xdead_beef,
            },
        ),
        (
            DM,
            5,
            devices::Request::Read {
                vm: VM,
                space: Space::PciConfig,
                addr: 0x0800,
                size: 4,
            },
        ),
        (
            UART,
            7,
            devices::Request::Read {
                vm: VM,
                space: Space::Mmio,
                addr: 0x1000_0000,
                size: 8,
            },
        ),
    ];
    for (forward, (client, vcpu, request)) in forwards.iter().zip(expected) {
        assert_eq!((forward.client, forward.vcpu), (client, vcpu));
        assert_eq!(forward.request.request(), request);
    }
    for vcpu in [0, 1, 2, 4, 5, 7] {
        assert_eq!(raw_state(&service, vcpu), STATE_PROCESSING);
        assert!(service.vm(VM).unwrap().in_flight(vcpu).is_some());
    }
    for vcpu in [3, 6] {
        assert_eq!(raw_state(&service, vcpu), STATE_FREE);
    }
    assert_eq!(counters(&service), Default::default());
    let again = dispatch(&mut service);
    assert_eq!(again.response, Response::Dispatched { count: 0 });
    assert!(
        again.actions.is_empty(),
        "PROCESSING slots are not forwarded twice"
    );
}

#[test]
fn a_straddling_access_goes_to_the_default_client() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Mmio, 0x1000, 8);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    trap(
        &mut service,
        access(0, Space::Mmio, 0x1006, 4, Direction::Read, 0),
    );
    let handled = dispatch(&mut service);
    assert_eq!(handled.actions.forwards().next().unwrap().client, DM);
}

#[test]
fn an_unclaimed_read_completes_at_once_with_all_ones() {
    let mut service = attached(2);
    trap(
        &mut service,
        access(1, Space::Pio, 0x60, 2, Direction::Read, 0),
    );
    let handled = dispatch(&mut service);
    assert_eq!(handled.response, Response::Dispatched { count: 0 });
    assert_eq!(
        handled.actions.iter().collect::<Vec<_>>(),
        [&Action::ResumeVcpu { vm: VM, vcpu: 1 }]
    );
    assert_eq!(raw_state(&service, 1), STATE_COMPLETE);
    assert_eq!(counters(&service).unclaimed, 1);
    assert_eq!(counters(&service).rejected(), 0);
    let done = slot::take_completion(service.vm_mut(VM).unwrap().page_mut(), 1).unwrap();
    assert_eq!(done.value, 0xffff, "all-ones, cut to the 2-byte width");
}

#[test]
fn an_unclaimed_write_is_dropped_and_the_vcpu_resumed() {
    let mut service = attached(1);
    trap(
        &mut service,
        access(0, Space::Mmio, 0x9000, 4, Direction::Write, 0x1234),
    );
    let handled = dispatch(&mut service);
    assert_eq!(
        handled.actions.iter().collect::<Vec<_>>(),
        [&Action::ResumeVcpu { vm: VM, vcpu: 0 }]
    );
    assert_eq!(counters(&service).unclaimed, 1);
    let done = slot::take_completion(service.vm_mut(VM).unwrap().page_mut(), 0).unwrap();
    assert_eq!(done.value, 0x1234, "the written value is left as it was");
}

#[test]
fn a_malformed_pending_request_is_counted_and_completed() {
    let mut service = attached(2);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    trap(
        &mut service,
        access(0, Space::Mmio, 0x1000, 4, Direction::Read, 0),
    );
    service
        .vm_mut(VM)
        .unwrap()
        .page_mut()
        .slot_mut(0)
        .unwrap()
        .request_type = 5;
    trap(
        &mut service,
        access(1, Space::Mmio, 0x1000, 4, Direction::Read, 0),
    );
    let handled = dispatch(&mut service);
    assert_eq!(handled.response, Response::Dispatched { count: 1 });
    let actions: Vec<&Action> = handled.actions.iter().collect();
    assert_eq!(actions[0], &Action::ResumeVcpu { vm: VM, vcpu: 0 });
    assert!(matches!(
        actions[1],
        Action::Forward(Forward {
            vcpu: 1,
            client: DM,
            ..
        })
    ));
    assert_eq!(raw_state(&service, 0), STATE_COMPLETE);
    assert_eq!(counters(&service).unknown_type, 1);
    assert!(service.vm(VM).unwrap().in_flight(0).is_none());
}

#[test]
fn unknown_state_words_and_slots_past_the_vcpu_count_are_counted_and_left_alone() {
    let mut service = attached(2);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    let page = service.vm_mut(VM).unwrap().page_mut();
    page.slot_mut(0).unwrap().set_state_word(0xbad);
    page.slot_mut(9).unwrap().set_state_word(STATE_PENDING);
    let before = page.clone();
    let handled = dispatch(&mut service);
    assert_eq!(handled.response, Response::Dispatched { count: 0 });
    assert!(handled.actions.is_empty());
    assert_eq!(service.vm(VM).unwrap().page(), &before);
    let seen = counters(&service);
    assert_eq!(
        (seen.unknown_state, seen.no_such_slot, seen.rejected()),
        (1, 1, 2)
    );
}
