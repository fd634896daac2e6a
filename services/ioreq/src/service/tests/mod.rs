//! End-to-end tests of the service: attach/detach, routing through
//! `Dispatch`, `Complete`, and the kernel side taking the results back.
//! This module holds the shared helpers; each submodule one topic.

extern crate std;

mod completion;
mod dispatching;
mod fuzz;
mod lifecycle;
mod restart;

use ipc::ioreq::{ClientId, Request, Response};
use ipc::{Error, Space, VmId};

use super::*;
use crate::slot::{self, Direction, IoRequest};

pub(super) const VM: VmId = VmId(3);
pub(super) const UART: ClientId = ClientId(1);
pub(super) const RTC: ClientId = ClientId(2);
pub(super) const DM: ClientId = ClientId(9);

pub(super) type Service = IoreqService<OwnedPages>;

pub(super) fn ok(service: &mut Service, request: Request) -> Handled {
    let handled = service.handle(request.clone());
    assert!(
        !matches!(handled.response, Response::Err(_)),
        "{request:?} -> {:?}",
        handled.response
    );
    handled
}

pub(super) fn err(service: &mut Service, request: Request) -> Error {
    match service.handle(request.clone()) {
        Handled {
            response: Response::Err(error),
            actions,
            drain,
        } => {
            assert!(actions.is_empty(), "a refused request has no actions");
            assert_eq!(drain, 0, "a refused request drains nothing");
            error
        }
        other => panic!("{request:?} should fail, got {other:?}"),
    }
}

pub(super) fn attached(vcpus: u8) -> Service {
    let mut service = Service::new(OwnedPages);
    ok(&mut service, Request::AttachVm { vm: VM, vcpus });
    service
}

pub(super) fn register(
    service: &mut Service,
    client: ClientId,
    space: Space,
    start: u64,
    len: u64,
) {
    ok(
        service,
        Request::RegisterRange {
            vm: VM,
            client,
            space,
            start,
            len,
        },
    );
}

pub(super) fn access(
    vcpu: u8,
    space: Space,
    addr: u64,
    size: u8,
    direction: Direction,
    value: u64,
) -> IoRequest {
    IoRequest {
        vcpu,
        space,
        addr,
        size,
        direction,
        value,
    }
}

/// The kernel's side: a guest access traps into `vcpu`'s slot.
pub(super) fn trap(service: &mut Service, request: IoRequest) {
    let state = service.vm_mut(VM).unwrap();
    slot::fill(state.page_mut(), &request).unwrap();
}

pub(super) fn raw_state(service: &Service, vcpu: u8) -> u32 {
    service
        .vm(VM)
        .unwrap()
        .page()
        .slot(usize::from(vcpu))
        .unwrap()
        .state_word()
}

pub(super) fn counters(service: &Service) -> crate::counters::IoreqCounters {
    *service.vm(VM).unwrap().counters()
}

pub(super) fn dispatch(service: &mut Service) -> Handled {
    ok(service, Request::Dispatch { vm: VM })
}

pub(super) fn complete(service: &mut Service, vcpu: u8, value: u64) -> Response {
    service
        .handle(Request::Complete {
            vm: VM,
            vcpu,
            value,
        })
        .response
}
