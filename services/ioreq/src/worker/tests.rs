//! The work loop's decisions: which VMs are drained, forward -> complete ->
//! resume per slot, and what a failing client or kernel leads to.

extern crate std;

use std::vec::Vec;

use ipc::devices::wire::Access;
use ipc::devices::{BatchWrite, MAX_BATCH, WaitedAccess};
use ipc::ioreq::{ClientId, Request, Response};
use ipc::ioreq_abi::posted::{PostedPage, PostedWrite};
use ipc::{Error, Space, VmId, devices};

use super::{IoreqEffects, Problem};
use crate::service::{IoreqService, OwnedPages};
use crate::slot::{self, Direction, IoRequest};

const DEVICES: ClientId = ClientId(3);
const RTC: ClientId = ClientId(7);
const UART: u64 = 0x1000_0000;

#[allow(
    clippy::large_enum_variant,
    reason = "a test log; a devices request is as large as its largest variant"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Effect {
    Forward(ClientId, devices::Request),
    Post(ClientId, VmId, Vec<BatchWrite>, Option<WaitedAccess>),
    Resume(VmId, u8),
    /// An access handed to a client for the kernel to complete.
    HandOver(ClientId, devices::Request, VmId, u8),
    Problem(Problem),
}

/// Records every effect; answers reads with `read_value` unless `device`
/// says otherwise, and refuses resumes when `refuse_resume` is set.
struct Recorder {
    log: Vec<Effect>,
    device: Option<Result<devices::Response, Error>>,
    read_value: u64,
    refuse_resume: Option<Error>,
    post_answer: Option<Result<devices::Response, Error>>,
    /// Whether the kernel takes hand-overs (by default it refuses them,
    /// as for a busy client: the worker calls).
    take_hand_overs: bool,
    /// The kernel's refusal of a hand-over it does not take.
    hand_over_refusal: Error,
}

impl Recorder {
    fn new() -> Self {
        Self {
            log: Vec::new(),
            device: None,
            read_value: 0x41,
            refuse_resume: None,
            post_answer: None,
            take_hand_overs: false,
            hand_over_refusal: Error::KernelRefused,
        }
    }
}

impl IoreqEffects for Recorder {
    fn forward(&mut self, client: ClientId, access: &Access) -> Result<devices::Response, Error> {
        self.log.push(Effect::Forward(client, access.request()));
        if let Some(answer) = self.device.clone() {
            return answer;
        }
        Ok(match access.write {
            None => devices::Response::Value(self.read_value),
            Some(_) => devices::Response::Ok,
        })
    }
    fn post(
        &mut self,
        client: ClientId,
        vm: VmId,
        writes: &[BatchWrite],
        then: Option<&WaitedAccess>,
    ) -> Result<devices::Response, Error> {
        self.log
            .push(Effect::Post(client, vm, writes.to_vec(), then.copied()));
        if let Some(answer) = self.post_answer.clone() {
            return answer;
        }
        Ok(match then {
            Some(WaitedAccess { write: None, .. }) => devices::Response::Value(self.read_value),
            _ => devices::Response::Ok,
        })
    }
    fn hand_over(&mut self, client: ClientId, vm: VmId, request: &IoRequest) -> Result<(), Error> {
        if !self.take_hand_overs {
            return Err(self.hand_over_refusal);
        }
        let access = crate::dispatch::device_access(vm, request).request();
        let effect = Effect::HandOver(client, access, vm, request.vcpu);
        self.log.push(effect);
        Ok(())
    }
    fn resume(&mut self, vm: VmId, vcpu: u8) -> Result<(), Error> {
        self.log.push(Effect::Resume(vm, vcpu));
        self.refuse_resume.map_or(Ok(()), Err)
    }
    fn problem(&mut self, problem: Problem) {
        self.log.push(Effect::Problem(problem));
    }
}

type Service = IoreqService<OwnedPages>;

/// A service with `vms` attached (2 vCPUs each), devices as default client.
fn service(vms: &[u16]) -> Service {
    let mut service = Service::new(OwnedPages);
    for &n in vms {
        let vm = VmId(n);
        for request in [
            Request::AttachVm { vm, vcpus: 2 },
            Request::SetDefaultClient {
                vm,
                client: DEVICES,
            },
        ] {
            assert_eq!(service.handle(request).response, Response::Ok);
        }
    }
    service
}

fn access(vcpu: u8, direction: Direction, addr: u64, value: u64) -> IoRequest {
    IoRequest {
        vcpu,
        space: Space::Mmio,
        addr,
        size: 1,
        direction,
        value,
    }
}

/// The kernel's side: a trapped access becomes a PENDING slot.
fn trap(service: &mut Service, vm: u16, request: IoRequest) {
    let state = service.vm_mut(VmId(vm)).expect("attached");
    slot::fill(state.page_mut(), &request).expect("slot was FREE");
}

/// The kernel's side of a resume: the value the guest gets.
fn guest_sees(service: &mut Service, vm: u16, vcpu: u8) -> u64 {
    let state = service.vm_mut(VmId(vm)).expect("attached");
    slot::take_completion(state.page_mut(), vcpu)
        .expect("slot COMPLETE")
        .value
}

fn read_request(vm: u16, addr: u64) -> devices::Request {
    devices::Request::Read {
        vm: VmId(vm),
        space: Space::Mmio,
        addr,
        size: 1,
    }
}

#[test]
fn a_pending_read_is_forwarded_completed_with_the_answer_and_resumed() {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    let mut effects = Recorder::new();
    service.drain(1 << 0, &mut effects);
    assert_eq!(
        effects.log,
        [
            Effect::Forward(DEVICES, read_request(0, UART + 5)),
            Effect::Resume(VmId(0), 0),
        ]
    );
    assert_eq!(guest_sees(&mut service, 0, 0), 0x41);
}

#[test]
fn each_slot_is_resumed_before_the_next_is_forwarded() {
    let mut service = service(&[0]);
    trap(
        &mut service,
        0,
        access(0, Direction::Write, UART, u64::from(b'h')),
    );
    trap(&mut service, 0, access(1, Direction::Read, UART + 5, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    let write = devices::Request::Write {
        vm: VmId(0),
        space: Space::Mmio,
        addr: UART,
        size: 1,
        value: u64::from(b'h'),
    };
    assert_eq!(
        effects.log,
        [
            Effect::Forward(DEVICES, write),
            Effect::Resume(VmId(0), 0),
            Effect::Forward(DEVICES, read_request(0, UART + 5)),
            Effect::Resume(VmId(0), 1),
        ]
    );
}

#[test]
fn only_the_vms_named_by_the_bits_are_drained_in_number_order() {
    let mut service = service(&[1, 2, 5]);
    for vm in [1, 2, 5] {
        trap(&mut service, vm, access(0, Direction::Read, UART, 0));
    }
    let mut effects = Recorder::new();
    service.drain((1 << 5) | (1 << 1), &mut effects);
    let resumed: Vec<VmId> = effects
        .log
        .iter()
        .filter_map(|effect| match effect {
            Effect::Resume(vm, _) => Some(*vm),
            _ => None,
        })
        .collect();
    assert_eq!(resumed, [VmId(1), VmId(5)]);
    // VM 2's request still waits for its own wake-up.
    let mut later = Recorder::new();
    service.drain(1 << 2, &mut later);
    assert_eq!(later.log.last(), Some(&Effect::Resume(VmId(2), 0)));
}

#[test]
fn a_failing_device_completes_a_read_with_all_ones_and_says_so() {
    for answer in [
        Ok(devices::Response::Err(Error::NoDevice)),
        Err(Error::ServerDied),
        Ok(devices::Response::Ok),
    ] {
        let mut service = service(&[0]);
        trap(&mut service, 0, access(1, Direction::Read, UART + 2, 0));
        let mut effects = Recorder::new();
        effects.device = Some(answer.clone());
        service.drain(1, &mut effects);
        let error = match answer {
            Ok(devices::Response::Err(error)) | Err(error) => error,
            _ => Error::Malformed,
        };
        assert_eq!(
            effects.log[1..],
            [
                Effect::Problem(Problem::DeviceFailed {
                    vm: VmId(0),
                    vcpu: 1,
                    error
                }),
                Effect::Resume(VmId(0), 1),
            ],
            "{answer:?}"
        );
        assert_eq!(guest_sees(&mut service, 0, 1), 0xff, "all-ones, 1 byte");
    }
}

#[test]
fn a_refused_write_is_reported_and_the_vcpu_still_runs_on() {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Write, UART, 1));
    let mut effects = Recorder::new();
    effects.device = Some(Ok(devices::Response::Err(Error::BadAccess)));
    service.drain(1, &mut effects);
    assert!(matches!(
        effects.log[1],
        Effect::Problem(Problem::DeviceFailed {
            error: Error::BadAccess,
            ..
        })
    ));
    assert_eq!(effects.log[2], Effect::Resume(VmId(0), 0));
}

#[test]
fn accesses_go_to_the_client_whose_range_holds_them() {
    let mut service = service(&[0]);
    let register = Request::RegisterRange {
        vm: VmId(0),
        client: RTC,
        space: Space::Mmio,
        start: 0x10_1000,
        len: 0x1000,
    };
    assert_eq!(service.handle(register).response, Response::Ok);
    trap(&mut service, 0, access(0, Direction::Read, 0x10_1008, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert_eq!(
        effects.log[0],
        Effect::Forward(RTC, read_request(0, 0x10_1008))
    );
}

#[test]
fn an_unclaimed_access_is_resumed_without_any_forward() {
    let mut service = Service::new(OwnedPages);
    let attach = Request::AttachVm {
        vm: VmId(0),
        vcpus: 1,
    };
    assert_eq!(service.handle(attach).response, Response::Ok);
    trap(&mut service, 0, access(0, Direction::Read, UART, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert_eq!(effects.log, [Effect::Resume(VmId(0), 0)]);
    assert_eq!(guest_sees(&mut service, 0, 0), 0xff);
}

#[test]
fn a_vm_the_service_does_not_serve_is_reported_and_the_rest_drained() {
    let mut service = service(&[1]);
    trap(&mut service, 1, access(0, Direction::Read, UART, 0));
    let mut effects = Recorder::new();
    service.drain(0b11, &mut effects);
    assert_eq!(
        effects.log[0],
        Effect::Problem(Problem::DispatchRefused {
            vm: VmId(0),
            error: Error::UnknownVm
        })
    );
    assert_eq!(effects.log.last(), Some(&Effect::Resume(VmId(1), 0)));
}

#[test]
fn a_refused_resume_is_reported() {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART, 0));
    let mut effects = Recorder::new();
    effects.refuse_resume = Some(Error::BadSlotState);
    service.drain(1, &mut effects);
    assert_eq!(
        effects.log.last(),
        Some(&Effect::Problem(Problem::ResumeRefused {
            vm: VmId(0),
            vcpu: 0,
            error: Error::BadSlotState
        }))
    );
}

#[test]
fn no_bits_no_work() {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART, 0));
    let mut effects = Recorder::new();
    service.drain(0, &mut effects);
    assert!(effects.log.is_empty());
}

#[test]
fn actions_of_a_message_are_carried_out_too() {
    // A `Dispatch` arriving as a message yields the same forwards.
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART, 0));
    let handled = service.handle(Request::Dispatch { vm: VmId(0) });
    assert_eq!(handled.response, Response::Dispatched { count: 1 });
    let mut effects = Recorder::new();
    service.carry_out(&handled.actions, &mut effects);
    assert_eq!(effects.log.last(), Some(&Effect::Resume(VmId(0), 0)));
    assert_eq!(guest_sees(&mut service, 0, 0), 0x41);
}

/// The kernel's side of a posted write: into the VM's ring, after the
/// kernel's write index `next`.
fn post(service: &Service, vm: u16, next: &mut u32, addr: u64, value: u64) {
    let index = service.index_of(VmId(vm)).expect("attached");
    let write = PostedWrite {
        space: Space::Mmio,
        addr,
        size: 1,
        value,
    };
    assert!(service.rings[index].push(next, &write), "the ring has room");
}

/// The guest's LSR read, as it goes with the writes posted before it.
fn lsr_read() -> WaitedAccess {
    WaitedAccess {
        space: Space::Mmio,
        addr: UART + 5,
        size: 1,
        write: None,
    }
}

fn batch_write(addr: u64, value: u64) -> BatchWrite {
    BatchWrite {
        space: Space::Mmio,
        addr,
        size: 1,
        value,
    }
}

/// [`service`] of VM 0, with `RTC` at 0x10_1000 beside the devices.
fn service_with_rtc() -> Service {
    let mut service = service(&[0]);
    let rtc = Request::RegisterRange {
        vm: VmId(0),
        client: RTC,
        space: Space::Mmio,
        start: 0x10_1000,
        len: 0x1000,
    };
    assert_eq!(service.handle(rtc).response, Response::Ok);
    service
}

/// Writes the guest posted reach the client in one batch, in order, in the
/// same message as (and before) the slot that came after them.
#[test]
fn posted_writes_go_first_in_one_batch() {
    let mut service = service(&[0]);
    let mut next = 0;
    for byte in *b"hi!" {
        post(&service, 0, &mut next, UART, u64::from(byte));
    }
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    let writes = b"hi!".map(|b| batch_write(UART, u64::from(b))).to_vec();
    let lsr = lsr_read();
    assert_eq!(
        effects.log,
        [
            Effect::Post(DEVICES, VmId(0), writes, Some(lsr)),
            Effect::Resume(VmId(0), 0),
        ]
    );
    assert_eq!(guest_sees(&mut service, 0, 0), 0x41, "the read's answer");
    let mut again = Recorder::new();
    service.drain(1, &mut again);
    assert!(again.log.is_empty(), "nothing is sent twice");
}

/// A wake-up with nothing but posted writes drains them; more than a batch
/// holds go in several, and a change of client starts a new one.
#[test]
fn posted_writes_are_batched_per_client_in_order() {
    let mut service = service_with_rtc();
    let mut next = 0;
    let total = MAX_BATCH as u64 + 3;
    for n in 0..total {
        post(&service, 0, &mut next, UART, n);
    }
    post(&service, 0, &mut next, 0x10_1000, 7);
    post(&service, 0, &mut next, UART, 8);
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    let uart = |range: core::ops::Range<u64>| range.map(|n| batch_write(UART, n)).collect();
    assert_eq!(
        effects.log,
        [
            Effect::Post(DEVICES, VmId(0), uart(0..MAX_BATCH as u64), None),
            Effect::Post(DEVICES, VmId(0), uart(MAX_BATCH as u64..total), None),
            Effect::Post(RTC, VmId(0), [batch_write(0x10_1000, 7)].to_vec(), None),
            Effect::Post(DEVICES, VmId(0), uart(8..9), None),
        ]
    );
}

/// A client that fails a batch sent alone is reported; the work goes on.
/// One that fails the batch carrying a read completes the read with
/// all-ones, as a failed forward does.
#[test]
fn a_failed_batch_is_reported_and_the_work_goes_on() {
    for answer in [
        Err(Error::ServerDied),
        Ok(devices::Response::Err(Error::NoDevice)),
        Ok(devices::Response::Value(1)),
    ] {
        let error = match answer {
            Err(e) | Ok(devices::Response::Err(e)) => e,
            Ok(_) => Error::Malformed,
        };
        // Alone: a wake-up with posted writes only.
        let mut service = service(&[0]);
        let mut next = 0;
        post(&service, 0, &mut next, UART, 1);
        let mut effects = Recorder::new();
        effects.post_answer = Some(answer.clone());
        service.drain(1, &mut effects);
        assert_eq!(
            effects.log[1],
            Effect::Problem(Problem::PostedFailed { vm: VmId(0), error })
        );
        // With a read: all-ones, reported, resumed.
        post(&service, 0, &mut next, UART, 2);
        trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
        let mut effects = Recorder::new();
        effects.post_answer = Some(answer.clone());
        service.drain(1, &mut effects);
        if answer != Ok(devices::Response::Value(1)) {
            assert_eq!(
                effects.log[1],
                Effect::Problem(Problem::DeviceFailed {
                    vm: VmId(0),
                    vcpu: 0,
                    error
                })
            );
            assert_eq!(guest_sees(&mut service, 0, 0), 0xff, "all-ones, one byte");
        } else {
            assert_eq!(guest_sees(&mut service, 0, 0), 1);
        }
        assert_eq!(effects.log.last(), Some(&Effect::Resume(VmId(0), 0)));
    }
}

/// Writes posted before a slot for another client go out alone, first.
#[test]
fn posted_writes_for_another_client_go_before_the_slot() {
    let mut service = service_with_rtc();
    let mut next = 0;
    post(&service, 0, &mut next, UART, b'x'.into());
    trap(&mut service, 0, access(0, Direction::Read, 0x10_1000, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert_eq!(
        effects.log,
        [
            Effect::Post(
                DEVICES,
                VmId(0),
                [batch_write(UART, b'x'.into())].to_vec(),
                None
            ),
            Effect::Forward(RTC, read_request(0, 0x10_1000)),
            Effect::Resume(VmId(0), 0),
        ]
    );
}

/// The effects of draining VM 0 of `service` with the kernel taking
/// hand-overs.
fn drained_handing_over(service: &mut Service) -> Vec<Effect> {
    let mut effects = Recorder::new();
    effects.take_hand_overs = true;
    service.drain(1, &mut effects);
    effects.log
}

/// With the kernel taking hand-overs, a slot goes to its client for the
/// kernel to complete: no call, no completion, no resume here, and the
/// slot stays PROCESSING (the kernel's, until the client answers). Writes
/// held for that client go with the access in one call instead; those for
/// another client go first, alone.
#[test]
fn a_slot_is_handed_to_its_client_unless_writes_for_it_go_first() {
    let mut service = service_with_rtc();
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    assert_eq!(
        drained_handing_over(&mut service),
        [Effect::HandOver(
            DEVICES,
            read_request(0, UART + 5),
            VmId(0),
            0
        )]
    );
    let page = service.vm_mut(VmId(0)).expect("attached").page_mut();
    assert_eq!(slot::state(page, 0), Ok(slot::SlotState::Processing));

    let mut service = service_with_rtc();
    let mut next = 0;
    post(&service, 0, &mut next, UART, b'x'.into());
    trap(&mut service, 0, access(0, Direction::Read, 0x10_1000, 0));
    post(&service, 0, &mut next, UART, b'y'.into());
    trap(&mut service, 0, access(1, Direction::Read, UART + 5, 0));
    assert_eq!(
        drained_handing_over(&mut service),
        [
            Effect::Post(
                DEVICES,
                VmId(0),
                [
                    batch_write(UART, b'x'.into()),
                    batch_write(UART, b'y'.into())
                ]
                .to_vec(),
                None
            ),
            Effect::HandOver(RTC, read_request(0, 0x10_1000), VmId(0), 0),
            Effect::HandOver(DEVICES, read_request(0, UART + 5), VmId(0), 1),
        ]
    );

    let mut service = service_with_rtc();
    let mut next = 0;
    post(&service, 0, &mut next, UART, b'x'.into());
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    assert_eq!(
        drained_handing_over(&mut service),
        [
            Effect::Post(
                DEVICES,
                VmId(0),
                [batch_write(UART, b'x'.into())].to_vec(),
                Some(lsr_read())
            ),
            Effect::Resume(VmId(0), 0),
        ]
    );
}

/// A hand-over the kernel refused when the task made it (after the
/// drain) is served as a drain would have: a call, the completion, the
/// resume.
#[test]
fn a_refused_hand_over_is_served_with_a_call() {
    let mut service = service(&[0]);
    let request = access(0, Direction::Read, UART + 5, 0);
    trap(&mut service, 0, request);
    let mut effects = Recorder::new();
    effects.take_hand_overs = true;
    service.drain(1, &mut effects);
    effects.log.clear();
    service.serve_refused(VmId(0), DEVICES, &request, &mut effects);
    assert_eq!(
        effects.log,
        [
            Effect::Forward(DEVICES, read_request(0, UART + 5)),
            Effect::Resume(VmId(0), 0),
        ]
    );
    assert_eq!(guest_sees(&mut service, 0, 0), 0x41);
}

/// An entry that does not decode (a corrupted page) is reported and
/// skipped; a write no client claims is dropped.
#[test]
fn bad_and_unclaimed_posted_writes_are_not_sent() {
    let mut service = Service::new(OwnedPages);
    let vm = VmId(0);
    assert_eq!(
        service.handle(Request::AttachVm { vm, vcpus: 1 }).response,
        Response::Ok
    );
    let uart = Request::RegisterRange {
        vm,
        client: DEVICES,
        space: Space::Mmio,
        start: UART,
        len: 8,
    };
    assert_eq!(service.handle(uart).response, Response::Ok);
    let mut next = 0;
    post(&service, 0, &mut next, UART, 1);
    post(&service, 0, &mut next, 0x4000, 2);
    post(&service, 0, &mut next, UART, 3);
    service.rings[0].scribble_entry(0, 0x7f, next);
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert_eq!(
        effects.log,
        [
            Effect::Problem(Problem::PostedFailed {
                vm,
                error: Error::Malformed
            }),
            Effect::Post(DEVICES, vm, [batch_write(UART, 3)].to_vec(), None),
        ]
    );
}

/// Each posted write goes where routing sends it, also when the one
/// before it went to the same place: a write of another width can belong
/// to another client (one that straddles the end of a range is the
/// default client's), and a repeated write nobody claims is dropped each
/// time.
#[test]
fn a_posted_write_is_routed_by_its_place_and_width() {
    let mut service = Service::new(OwnedPages);
    let vm = VmId(0);
    let attach = Request::AttachVm { vm, vcpus: 1 };
    assert_eq!(service.handle(attach).response, Response::Ok);
    let rtc = Request::RegisterRange {
        vm,
        client: RTC,
        space: Space::Mmio,
        start: 0x10_1000,
        len: 0x1000,
    };
    assert_eq!(service.handle(rtc).response, Response::Ok);
    let end = 0x10_1fff;
    let writes = [
        (end, 1),
        (end, 2),
        (end, 2),
        (end, 1),
        (0x4000, 1),
        (0x4000, 1),
    ];
    let mut next = 0;
    let mut ring_write = |service: &Service, (addr, size): (u64, u8)| {
        let write = PostedWrite {
            space: Space::Mmio,
            addr,
            size,
            value: 0,
        };
        assert!(
            service.rings[0].push(&mut next, &write),
            "the ring has room"
        );
    };
    for write in writes {
        ring_write(&service, write);
    }
    let sized = |size| BatchWrite {
        space: Space::Mmio,
        addr: end,
        size,
        value: 0,
    };
    // Nobody claims the straddling writes either (no default client):
    // dropped, they do not cut the range's batch.
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert_eq!(
        effects.log,
        [Effect::Post(RTC, vm, [sized(1), sized(1)].to_vec(), None)]
    );
    // With one, they are its; the rest stay the range's.
    let default = Request::SetDefaultClient {
        vm,
        client: DEVICES,
    };
    assert_eq!(service.handle(default).response, Response::Ok);
    for write in writes {
        ring_write(&service, write);
    }
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    let hole = BatchWrite {
        space: Space::Mmio,
        addr: 0x4000,
        size: 1,
        value: 0,
    };
    assert_eq!(
        effects.log,
        [
            Effect::Post(RTC, vm, [sized(1)].to_vec(), None),
            Effect::Post(DEVICES, vm, [sized(2), sized(2)].to_vec(), None),
            Effect::Post(RTC, vm, [sized(1)].to_vec(), None),
            Effect::Post(DEVICES, vm, [hole, hole].to_vec(), None),
        ]
    );
}

/// A VM reattached after a restart is held: a wake-up drains neither its
/// posted writes nor its slots until `Activate`, which asks for the drain
/// that then sends both, in order.
#[test]
fn a_held_vm_is_drained_only_once_activated() {
    let mut service = service(&[0]);
    let reattach = Request::Reattach {
        vm: VmId(0),
        vcpus: 2,
    };
    assert_eq!(service.handle(reattach).response, Response::Ok);
    let mut next = 0;
    post(&service, 0, &mut next, UART, u64::from(b'k'));
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    let mut effects = Recorder::new();
    service.drain(1, &mut effects);
    assert!(effects.log.is_empty(), "held: {:?}", effects.log);
    let default = Request::SetDefaultClient {
        vm: VmId(0),
        client: DEVICES,
    };
    assert_eq!(service.handle(default).response, Response::Ok);
    let activated = service.handle(Request::Activate { vm: VmId(0) });
    assert_eq!(activated.drain, 1);
    service.drain(activated.drain, &mut effects);
    let lsr = lsr_read();
    assert_eq!(
        effects.log,
        [
            Effect::Post(
                DEVICES,
                VmId(0),
                [batch_write(UART, u64::from(b'k'))].to_vec(),
                Some(lsr)
            ),
            Effect::Resume(VmId(0), 0),
        ]
    );
}

/// Rings shared with the test (the kernel's view of the page).
#[derive(Default)]
struct SharedRings(Vec<std::rc::Rc<PostedPage>>);

impl crate::service::PageSource for SharedRings {
    type Page = crate::page::IoreqPage;
    type Ring = std::rc::Rc<PostedPage>;

    fn page_for(&mut self, _vm: VmId) -> Result<Self::Page, Error> {
        Ok(crate::page::IoreqPage::new())
    }

    fn ring_for(&mut self, _vm: VmId) -> Result<Self::Ring, Error> {
        let ring = std::rc::Rc::new(PostedPage::new());
        self.0.push(ring.clone());
        Ok(ring)
    }
}

/// Answers every batch, noting whether the kernel still saw the ring
/// unread when the batch reached the client.
struct Watcher {
    ring: std::rc::Rc<PostedPage>,
    next: u32,
    unread_at_post: Vec<bool>,
}

impl IoreqEffects for Watcher {
    fn forward(&mut self, _: ClientId, _: &Access) -> Result<devices::Response, Error> {
        Ok(devices::Response::Value(0x60))
    }
    fn post(
        &mut self,
        _: ClientId,
        _: VmId,
        _: &[BatchWrite],
        _: Option<&WaitedAccess>,
    ) -> Result<devices::Response, Error> {
        self.unread_at_post.push(self.ring.unread(self.next));
        Ok(devices::Response::Ok)
    }
    fn hand_over(&mut self, _: ClientId, _: VmId, _: &IoRequest) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    fn resume(&mut self, _: VmId, _: u8) -> Result<(), Error> {
        Ok(())
    }
    fn problem(&mut self, problem: Problem) {
        panic!("{problem:?}");
    }
}

/// The ring's read index comes back to the kernel only once the client
/// answered every write taken from it: until then the kernel sees the
/// ring unread, so an exit it reports waits for the guest's output.
#[test]
fn posted_writes_are_handed_back_only_once_the_client_has_them() {
    let mut service = IoreqService::<SharedRings>::new(SharedRings::default());
    let vm = VmId(0);
    for request in [
        Request::AttachVm { vm, vcpus: 1 },
        Request::SetDefaultClient {
            vm,
            client: DEVICES,
        },
    ] {
        assert_eq!(service.handle(request).response, Response::Ok);
    }
    let ring = service.rings[0].clone();
    let mut next = 0;
    // More than a batch holds: the first batches go out mid-drain.
    let count = u32::try_from(MAX_BATCH).unwrap() + 3;
    for n in 0..count {
        let write = PostedWrite {
            space: Space::Mmio,
            addr: UART,
            size: 1,
            value: u64::from(n),
        };
        assert!(ring.push(&mut next, &write));
    }
    let mut watcher = Watcher {
        ring: ring.clone(),
        next,
        unread_at_post: Vec::new(),
    };
    service.drain(1, &mut watcher);
    assert_eq!(
        watcher.unread_at_post,
        [true, true],
        "two batches, ring held"
    );
    assert!(!ring.unread(next), "handed back after the last batch");
}

/// A client that restarted answers `UnknownVm` until the vm-manager hands
/// it the VM again: the access waits (no all-ones to the guest, no
/// resume), the VM's other requests wait with it, and once the vm-manager
/// reattaches and activates the VM the access goes to the client again
/// and completes with its answer.
#[test]
fn an_access_the_client_does_not_know_waits_for_the_vms_activation() {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART + 5, 0));
    trap(&mut service, 0, access(1, Direction::Read, UART + 5, 0));
    let mut effects = Recorder::new();
    effects.device = Some(Err(Error::UnknownVm));
    service.drain(1, &mut effects);
    // One forward (vCPU 1's request waits behind it), reported, no resume.
    let forwards = effects
        .log
        .iter()
        .filter(|e| matches!(e, Effect::Forward(..)))
        .count();
    assert_eq!(forwards, 1, "{:?}", effects.log);
    assert!(
        !effects.log.iter().any(|e| matches!(e, Effect::Resume(..))),
        "{:?}",
        effects.log
    );
    // Later wake-ups leave the held VM alone.
    let mut again = Recorder::new();
    service.drain(1, &mut again);
    assert!(again.log.is_empty(), "{:?}", again.log);
    // The vm-manager hands the restarted client the VM, then reattaches
    // and activates it here.
    let vm = VmId(0);
    let handled = reactivate(&mut service, vm);
    let mut served = Recorder::new();
    service.carry_out(&handled.actions, &mut served);
    service.drain(handled.drain, &mut served);
    assert_eq!(
        served.log,
        [
            Effect::Forward(DEVICES, read_request(0, UART + 5)),
            Effect::Resume(vm, 0),
            Effect::Forward(DEVICES, read_request(0, UART + 5)),
            Effect::Resume(vm, 1),
        ]
    );
    assert_eq!(guest_sees(&mut service, 0, 0), 0x41);
    assert_eq!(guest_sees(&mut service, 0, 1), 0x41);
}

/// A VM whose vCPU 0 access is PROCESSING and in flight with no one here
/// (the device service failed it: the VM waits for its restart), then
/// reattached and activated: the `Activate`'s actions, carried out with
/// `effects`, adopt it.
fn adopt_with(effects: &mut Recorder) -> Service {
    let mut service = service(&[0]);
    trap(&mut service, 0, access(0, Direction::Read, UART, 0));
    let mut failing = Recorder::new();
    failing.device = Some(Err(Error::UnknownVm));
    service.drain(1, &mut failing);
    let handled = reactivate(&mut service, VmId(0));
    service.carry_out(&handled.actions, effects);
    service
}

/// What the vm-manager does for `vm` once its restarted client serves it:
/// reattach (2 vCPUs), the default client again, activate. The
/// `Activate`'s outcome.
fn reactivate(service: &mut Service, vm: VmId) -> crate::service::Handled {
    for request in [
        Request::Reattach { vm, vcpus: 2 },
        Request::SetDefaultClient {
            vm,
            client: DEVICES,
        },
    ] {
        assert_eq!(service.handle(request).response, Response::Ok);
    }
    let handled = service.handle(Request::Activate { vm });
    assert_eq!(handled.response, Response::Ok);
    handled
}

/// An adopted access goes to its client by hand-over when the kernel
/// takes it: the client's answer completes it, nothing is called.
#[test]
fn an_adopted_access_is_handed_over_when_the_kernel_takes_it() {
    let mut effects = Recorder::new();
    effects.take_hand_overs = true;
    let mut service = adopt_with(&mut effects);
    assert_eq!(
        effects.log,
        [Effect::HandOver(DEVICES, read_request(0, UART), VmId(0), 0)]
    );
    let page = service.vm_mut(VmId(0)).expect("attached").page_mut();
    assert_eq!(slot::state(page, 0), Ok(slot::SlotState::Processing));
}

/// A restarted ioreq service adopts an access its dead predecessor had
/// handed over: the kernel refuses to hand it over again (a client holds
/// it), and the service does not call the client with it either (a second
/// LSR or RBR read would be a second device access); the slot is left to
/// the client's answer.
#[test]
fn an_adopted_access_a_client_holds_already_is_not_sent_again() {
    let mut effects = Recorder::new();
    effects.hand_over_refusal = Error::Forwarded;
    let mut service = adopt_with(&mut effects);
    assert!(effects.log.is_empty(), "{:?}", effects.log);
    let page = service.vm_mut(VmId(0)).expect("attached").page_mut();
    assert_eq!(slot::state(page, 0), Ok(slot::SlotState::Processing));
}
