//! A restarted service: `Reattach` holds a VM that may have requests in
//! flight until its ranges are back, and `Activate` takes over what the
//! dead predecessor left in the page.

use super::*;
use std::vec::Vec;

use crate::dispatch::{Action, Forward};
use crate::page::{STATE_COMPLETE, STATE_PENDING};

const UART_BASE: u64 = 0x1000_0000;

fn lsr_read(vcpu: u8) -> IoRequest {
    access(vcpu, Space::Mmio, UART_BASE + 5, 1, Direction::Read, 0)
}

/// A fresh service (its predecessor died) serving `VM` again, held.
fn reattached(vcpus: u8) -> Service {
    let mut service = Service::new(OwnedPages);
    ok(&mut service, Request::Reattach { vm: VM, vcpus });
    service
}

fn activate(service: &mut Service) -> Handled {
    ok(service, Request::Activate { vm: VM })
}

#[test]
fn a_held_vm_dispatches_nothing_until_activated_then_drains() {
    let mut service = reattached(1);
    trap(&mut service, lsr_read(0));
    assert_eq!(
        dispatch(&mut service).response,
        Response::Dispatched { count: 0 },
        "its ranges are not back yet"
    );
    assert_eq!(raw_state(&service, 0), STATE_PENDING);
    register(&mut service, UART, Space::Mmio, UART_BASE, 8);
    let handled = activate(&mut service);
    assert!(handled.actions.is_empty(), "a PENDING slot is not adopted");
    assert_eq!(handled.drain, 1 << VM.0, "but drained, as on a wake-up");
    assert_eq!(
        dispatch(&mut service).response,
        Response::Dispatched { count: 1 }
    );
}

#[test]
fn a_slot_left_processing_goes_to_its_client_again() {
    let mut service = reattached(2);
    trap(&mut service, lsr_read(1));
    // The dead predecessor had taken it.
    let state = service.vm_mut(VM).unwrap();
    slot::begin_processing(state.page_mut(), 1).unwrap();
    register(&mut service, UART, Space::Mmio, UART_BASE, 8);
    let handled = activate(&mut service);
    assert_eq!(
        handled.actions.iter().collect::<Vec<_>>(),
        [&Action::Forward(Forward {
            client: UART,
            vcpu: 1,
            request: crate::dispatch::device_access(VM, &lsr_read(1)),
        })]
    );
    assert_eq!(complete(&mut service, 1, 0x60), Response::Ok);
    let page = service.vm_mut(VM).unwrap().page_mut();
    assert_eq!(slot::take_completion(page, 1).unwrap().value, 0x60);
}

#[test]
fn a_slot_left_complete_has_its_vcpu_resumed() {
    let mut service = reattached(1);
    trap(&mut service, lsr_read(0));
    let state = service.vm_mut(VM).unwrap();
    let taken = slot::begin_processing(state.page_mut(), 0).unwrap();
    slot::finish(state.page_mut(), &taken, 0x20).unwrap();
    let handled = activate(&mut service);
    assert_eq!(
        handled.actions.iter().collect::<Vec<_>>(),
        [&Action::ResumeVcpu { vm: VM, vcpu: 0 }]
    );
    assert_eq!(raw_state(&service, 0), STATE_COMPLETE);
}

#[test]
fn an_orphan_nobody_claims_or_that_no_longer_decodes_is_finished() {
    let mut service = reattached(2);
    trap(&mut service, lsr_read(0));
    trap(&mut service, lsr_read(1));
    let state = service.vm_mut(VM).unwrap();
    slot::begin_processing(state.page_mut(), 0).unwrap();
    slot::begin_processing(state.page_mut(), 1).unwrap();
    // Slot 1's request was scribbled on (an unknown type).
    state.page_mut().slots[1].request_type = 0x77;
    let handled = activate(&mut service);
    assert_eq!(
        handled.actions.iter().collect::<Vec<_>>(),
        [
            &Action::ResumeVcpu { vm: VM, vcpu: 0 },
            &Action::ResumeVcpu { vm: VM, vcpu: 1 }
        ]
    );
    let page = service.vm_mut(VM).unwrap().page_mut();
    assert_eq!(
        slot::take_completion(page, 0).unwrap().value,
        0xff,
        "unclaimed: all-ones"
    );
    assert_eq!(raw_state(&service, 1), STATE_COMPLETE);
}

#[test]
fn reattaching_an_attached_vm_forgets_its_ranges_and_holds_it() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Mmio, UART_BASE, 8);
    ok(&mut service, Request::Reattach { vm: VM, vcpus: 1 });
    assert!(service.vm(VM).unwrap().clients().ranges().is_empty());
    trap(&mut service, lsr_read(0));
    assert_eq!(
        dispatch(&mut service).response,
        Response::Dispatched { count: 0 }
    );
    // Sent again, the range is accepted (no overlap with a stale copy).
    register(&mut service, UART, Space::Mmio, UART_BASE, 8);
    activate(&mut service);
    assert_eq!(
        dispatch(&mut service).response,
        Response::Dispatched { count: 1 }
    );
}

#[test]
fn bad_reattach_and_activate_requests_are_refused() {
    let mut service = attached(1);
    assert_eq!(
        err(&mut service, Request::Reattach { vm: VM, vcpus: 2 }),
        Error::InvalidArgument,
        "another vCPU count is another VM"
    );
    assert_eq!(
        err(&mut service, Request::Activate { vm: VmId(7) }),
        Error::UnknownVm
    );
    assert_eq!(
        err(
            &mut Service::new(OwnedPages),
            Request::Reattach { vm: VM, vcpus: 0 }
        ),
        Error::InvalidArgument
    );
}
