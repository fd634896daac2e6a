//! Attaching and detaching VMs, and client registration through `handle`.

use super::*;
use std::vec::Vec;

use crate::page::STATE_FREE;
use crate::posted::PostedPage;

#[test]
fn attach_checks_the_vcpu_count() {
    let mut service = Service::new(OwnedPages);
    for vcpus in [0, 17, 255] {
        assert_eq!(
            err(&mut service, Request::AttachVm { vm: VM, vcpus }),
            Error::InvalidArgument
        );
    }
    assert!(service.vm(VM).is_none());
    ok(
        &mut service,
        Request::AttachVm {
            vm: VmId(1),
            vcpus: 1,
        },
    );
    ok(
        &mut service,
        Request::AttachVm {
            vm: VmId(2),
            vcpus: 16,
        },
    );
    assert_eq!(service.vm(VmId(2)).unwrap().vcpus(), 16);
}

#[test]
fn a_fresh_vm_has_every_slot_free() {
    let service = attached(4);
    for vcpu in 0..16 {
        assert_eq!(raw_state(&service, vcpu), STATE_FREE);
    }
}

#[test]
fn attaching_a_vm_twice_is_refused() {
    let mut service = attached(2);
    register(&mut service, UART, Space::Mmio, 0x1000, 8);
    assert_eq!(
        err(&mut service, Request::AttachVm { vm: VM, vcpus: 2 }),
        Error::VmExists
    );
    assert_eq!(
        service.vm(VM).unwrap().clients().ranges().len(),
        1,
        "first VM kept"
    );
}

#[test]
fn attach_beyond_capacity_is_refused() {
    let mut service: IoreqService<OwnedPages, 2> = IoreqService::new(OwnedPages);
    for vm in 0..2 {
        assert_eq!(
            service
                .handle(Request::AttachVm {
                    vm: VmId(vm),
                    vcpus: 1
                })
                .response,
            Response::Ok
        );
    }
    assert_eq!(
        service
            .handle(Request::AttachVm {
                vm: VmId(2),
                vcpus: 1
            })
            .response,
        Response::Err(Error::NoFreeSlot { max: 2 })
    );
    service.handle(Request::DetachVm { vm: VmId(0) });
    assert_eq!(
        service
            .handle(Request::AttachVm {
                vm: VmId(2),
                vcpus: 1
            })
            .response,
        Response::Ok
    );
}

#[test]
fn every_per_vm_request_for_an_unknown_vm_is_refused() {
    let mut service = attached(1);
    let other = VmId(99);
    let requests = [
        Request::DetachVm { vm: other },
        Request::RegisterRange {
            vm: other,
            client: UART,
            space: Space::Mmio,
            start: 0,
            len: 1,
        },
        Request::UnregisterClient {
            vm: other,
            client: UART,
        },
        Request::SetDefaultClient {
            vm: other,
            client: DM,
        },
        Request::Dispatch { vm: other },
        Request::Complete {
            vm: other,
            vcpu: 0,
            value: 0,
        },
    ];
    for request in requests {
        assert_eq!(err(&mut service, request), Error::UnknownVm);
    }
}

/// A page source that counts what it hands out and gets back.
#[derive(Default)]
struct CountingPages {
    given: Vec<VmId>,
    released: Vec<VmId>,
    refuse: bool,
}

impl PageSource for &mut CountingPages {
    type Page = IoreqPage;
    type Ring = PostedPage;

    fn ring_for(&mut self, _vm: VmId) -> Result<PostedPage, Error> {
        Ok(PostedPage::new())
    }

    fn page_for(&mut self, vm: VmId) -> Result<IoreqPage, Error> {
        if self.refuse {
            return Err(Error::OutOfMemory);
        }
        self.given.push(vm);
        Ok(IoreqPage::new())
    }

    fn release(&mut self, vm: VmId, _page: IoreqPage) {
        self.released.push(vm);
    }
}

#[test]
fn detach_gives_the_page_back_and_a_source_error_refuses_attach() {
    let mut pages = CountingPages::default();
    {
        let mut service: IoreqService<&mut CountingPages> = IoreqService::new(&mut pages);
        service.handle(Request::AttachVm { vm: VM, vcpus: 1 });
        assert_eq!(
            service.handle(Request::DetachVm { vm: VM }).response,
            Response::Ok
        );
    }
    assert_eq!(pages.given, [VM]);
    assert_eq!(pages.released, [VM]);
    pages.refuse = true;
    let mut service: IoreqService<&mut CountingPages> = IoreqService::new(&mut pages);
    assert_eq!(
        service
            .handle(Request::AttachVm { vm: VM, vcpus: 1 })
            .response,
        Response::Err(Error::OutOfMemory)
    );
    assert!(service.vm(VM).is_none());
}

#[test]
fn register_errors_come_back_as_replies() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Pio, 0x3f8, 8);
    let overlap = Request::RegisterRange {
        vm: VM,
        client: RTC,
        space: Space::Pio,
        start: 0x3fc,
        len: 8,
    };
    assert_eq!(err(&mut service, overlap), Error::RangeOverlap);
    let empty = Request::RegisterRange {
        vm: VM,
        client: RTC,
        space: Space::Pio,
        start: 0x70,
        len: 0,
    };
    assert_eq!(err(&mut service, empty), Error::InvalidRange);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    assert_eq!(
        err(
            &mut service,
            Request::SetDefaultClient {
                vm: VM,
                client: UART
            }
        ),
        Error::ClientExists
    );
    assert_eq!(
        err(
            &mut service,
            Request::UnregisterClient {
                vm: VM,
                client: RTC
            }
        ),
        Error::UnknownClient
    );
}

#[test]
fn after_unregister_the_clients_accesses_go_to_the_default() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Pio, 0x3f8, 8);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    ok(
        &mut service,
        Request::UnregisterClient {
            vm: VM,
            client: UART,
        },
    );
    trap(
        &mut service,
        access(0, Space::Pio, 0x3f8, 1, Direction::Write, 0x41),
    );
    let handled = dispatch(&mut service);
    assert_eq!(handled.actions.forwards().next().unwrap().client, DM);
}

#[test]
fn detach_forgets_the_vms_clients_slots_and_requests_in_flight() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Pio, 0x3f8, 8);
    ok(
        &mut service,
        Request::SetDefaultClient { vm: VM, client: DM },
    );
    trap(
        &mut service,
        access(0, Space::Pio, 0x3f8, 1, Direction::Read, 0),
    );
    dispatch(&mut service);
    ok(&mut service, Request::DetachVm { vm: VM });
    assert!(service.vm(VM).is_none());
    assert_eq!(
        complete(&mut service, 0, 0),
        Response::Err(Error::UnknownVm)
    );
    ok(&mut service, Request::AttachVm { vm: VM, vcpus: 1 });
    let fresh = service.vm(VM).unwrap();
    assert!(fresh.clients().ranges().is_empty());
    assert_eq!(fresh.clients().default_client(), None);
    assert!(fresh.in_flight(0).is_none());
    assert_eq!(raw_state(&service, 0), STATE_FREE);
    assert_eq!(counters(&service), Default::default());
}

fn post_writes(space: Space, start: u64, len: u64) -> Request {
    Request::PostWrites {
        vm: VM,
        space,
        start,
        len,
    }
}

/// Writes may be posted only where a client will receive them: inside one
/// registered range, never PCI configuration space, never an empty or
/// wrapping range, never for a VM that is not attached.
#[test]
fn posted_ranges_must_lie_inside_one_client_range() {
    let mut service = attached(1);
    register(&mut service, UART, Space::Mmio, 0x1000_0000, 8);
    register(&mut service, RTC, Space::Mmio, 0x1000_0008, 8);
    ok(&mut service, post_writes(Space::Mmio, 0x1000_0000, 1));
    ok(&mut service, post_writes(Space::Mmio, 0x1000_0008, 8));
    for (space, start, len) in [
        (Space::Mmio, 0x1000_0004, 8),
        (Space::Mmio, 0x0fff_ffff, 2),
        (Space::Pio, 0x1000_0000, 1),
        (Space::PciConfig, 0x1000_0000, 1),
        (Space::Mmio, 0x1000_0000, 0),
        (Space::Mmio, u64::MAX, 2),
    ] {
        assert_eq!(
            err(&mut service, post_writes(space, start, len)),
            Error::InvalidRange,
            "{space:?} {start:#x}+{len}"
        );
    }
    let unknown = Request::PostWrites {
        vm: VmId(9),
        space: Space::Mmio,
        start: 0x1000_0000,
        len: 1,
    };
    assert_eq!(err(&mut service, unknown), Error::UnknownVm);
}
