//! `Complete`: results written back, vCPUs resumed, wrong states refused.

use super::*;
use std::vec::Vec;

use crate::dispatch::Action;
use crate::page::{STATE_COMPLETE, STATE_FREE, STATE_PENDING, STATE_PROCESSING};
use crate::slot::SlotState;

#[test]
fn complete_writes_the_value_for_reads_only_and_resumes_the_vcpu() {
    let mut service = attached(3);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    trap(
        &mut service,
        access(0, Space::Mmio, 0x1000, 8, Direction::Read, 0),
    );
    trap(
        &mut service,
        access(1, Space::Pio, 0x71, 1, Direction::Read, 0),
    );
    trap(
        &mut service,
        access(2, Space::Mmio, 0x2000, 4, Direction::Write, 0x55),
    );
    dispatch(&mut service);
    for (vcpu, value) in [(0, 0x0102_0304_0506_0708), (1, 0x1234), (2, 0xffff_ffff)] {
        let handled = service.handle(Request::Complete {
            vm: VM,
            vcpu,
            value,
        });
        assert_eq!(handled.response, Response::Ok);
        assert_eq!(
            handled.actions.iter().collect::<Vec<_>>(),
            [&Action::ResumeVcpu { vm: VM, vcpu }]
        );
        assert_eq!(raw_state(&service, vcpu), STATE_COMPLETE);
    }
    let page = service.vm_mut(VM).unwrap().page_mut();
    assert_eq!(
        slot::take_completion(page, 0).unwrap().value,
        0x0102_0304_0506_0708
    );
    assert_eq!(
        slot::take_completion(page, 1).unwrap().value,
        0x34,
        "cut to one byte"
    );
    assert_eq!(
        slot::take_completion(page, 2).unwrap().value,
        0x55,
        "a write keeps its value"
    );
    assert_eq!(slot::state(page, 0), Ok(SlotState::Free));
}

#[test]
fn complete_of_a_slot_that_is_not_processing_is_refused_and_counted() {
    let mut service = attached(2);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    assert_eq!(
        complete(&mut service, 0, 1),
        Response::Err(Error::BadSlotState),
        "FREE"
    );
    trap(
        &mut service,
        access(0, Space::Mmio, 0x1000, 4, Direction::Read, 0),
    );
    assert_eq!(
        complete(&mut service, 0, 1),
        Response::Err(Error::BadSlotState),
        "PENDING"
    );
    assert_eq!(raw_state(&service, 0), STATE_PENDING);
    dispatch(&mut service);
    assert_eq!(complete(&mut service, 0, 1), Response::Ok);
    assert_eq!(
        complete(&mut service, 0, 2),
        Response::Err(Error::BadSlotState),
        "COMPLETE"
    );
    assert_eq!(counters(&service).illegal_transition, 3);
    let page = service.vm_mut(VM).unwrap().page_mut();
    assert_eq!(
        slot::take_completion(page, 0).unwrap().value,
        1,
        "the first answer stands"
    );
}

#[test]
fn complete_of_a_slot_moved_to_processing_behind_the_services_back_is_refused() {
    let mut service = attached(1);
    let page = service.vm_mut(VM).unwrap().page_mut();
    slot::fill(page, &access(0, Space::Mmio, 0x1000, 4, Direction::Read, 0)).unwrap();
    page.slot_mut(0).unwrap().set_state_word(STATE_PROCESSING);
    assert_eq!(
        complete(&mut service, 0, 1),
        Response::Err(Error::BadSlotState)
    );
    assert_eq!(counters(&service).not_dispatched, 1);
    assert_eq!(raw_state(&service, 0), STATE_PROCESSING);
}

#[test]
fn complete_of_a_scribbled_slot_is_refused_and_counted() {
    let mut service = attached(1);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    trap(
        &mut service,
        access(0, Space::Mmio, 0x1000, 4, Direction::Read, 0),
    );
    dispatch(&mut service);
    service
        .vm_mut(VM)
        .unwrap()
        .page_mut()
        .slot_mut(0)
        .unwrap()
        .set_state_word(77);
    assert_eq!(
        complete(&mut service, 0, 1),
        Response::Err(Error::BadSlotState)
    );
    assert_eq!(counters(&service).unknown_state, 1);
    assert_eq!(raw_state(&service, 0), 77);
}

#[test]
fn complete_of_a_vcpu_the_vm_does_not_have_is_refused() {
    let mut service = attached(2);
    for vcpu in [2, 15, 16, 255] {
        assert_eq!(
            complete(&mut service, vcpu, 0),
            Response::Err(Error::InvalidArgument)
        );
    }
    assert_eq!(counters(&service).no_such_slot, 4);
}

#[test]
fn a_slot_cycles_through_every_state_and_can_be_reused() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Mmio, 0x1000_0000, 8);
    for round in 0..3u64 {
        trap(
            &mut service,
            access(0, Space::Mmio, 0x1000_0005, 1, Direction::Read, 0),
        );
        assert_eq!(raw_state(&service, 0), STATE_PENDING);
        dispatch(&mut service);
        assert_eq!(raw_state(&service, 0), STATE_PROCESSING);
        assert_eq!(complete(&mut service, 0, 0x60 + round), Response::Ok);
        let page = service.vm_mut(VM).unwrap().page_mut();
        assert_eq!(slot::take_completion(page, 0).unwrap().value, 0x60 + round);
        assert_eq!(raw_state(&service, 0), STATE_FREE);
    }
    assert_eq!(counters(&service), Default::default());
}
