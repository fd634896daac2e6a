//! Tests of the slot state machine, of both sides' checks and of decoding.

extern crate std;

use crate::Space;
use proptest::prelude::*;

use super::*;
use crate::ioreq_abi::page::{IoreqPage, PciFields, STATE_FREE, TYPE_PCI_CONFIG};

const ALL_STATES: [SlotState; 4] = [
    SlotState::Pending,
    SlotState::Complete,
    SlotState::Processing,
    SlotState::Free,
];
const ALL_EVENTS: [SlotEvent; 6] = [
    SlotEvent::Fill,
    SlotEvent::Dispatch,
    SlotEvent::Complete,
    SlotEvent::Reclaim,
    SlotEvent::Withdraw,
    SlotEvent::HandBack,
];

fn mmio_read(vcpu: u8, addr: u64, size: u8) -> IoRequest {
    IoRequest {
        vcpu,
        space: Space::Mmio,
        addr,
        size,
        direction: Direction::Read,
        value: 0,
    }
}

fn pio_write(vcpu: u8, port: u64, size: u8, value: u64) -> IoRequest {
    IoRequest {
        vcpu,
        space: Space::Pio,
        addr: port,
        size,
        direction: Direction::Write,
        value,
    }
}

fn set_state(page: &mut IoreqPage, vcpu: u8, state: u32) {
    page.slot_mut(usize::from(vcpu))
        .unwrap()
        .set_state_word(state);
}

fn raw_state(page: &IoreqPage, vcpu: u8) -> u32 {
    page.slot(usize::from(vcpu)).unwrap().state_word()
}

#[test]
fn state_words_decode_to_acrn_states() {
    for state in ALL_STATES {
        assert_eq!(SlotState::from_raw(state.raw()), Ok(state));
    }
    assert_eq!(SlotState::from_raw(0), Ok(SlotState::Pending));
    assert_eq!(SlotState::from_raw(3), Ok(SlotState::Free));
    for raw in [4, 5, 0x8000_0000, u32::MAX] {
        assert_eq!(SlotState::from_raw(raw), Err(SlotError::UnknownState(raw)));
    }
}

#[test]
fn ownership_follows_the_seed() {
    assert_eq!(SlotState::Free.owner(), Owner::Kernel);
    assert_eq!(SlotState::Complete.owner(), Owner::Kernel);
    assert_eq!(SlotState::Pending.owner(), Owner::Service);
    assert_eq!(SlotState::Processing.owner(), Owner::Service);
}

#[test]
fn exactly_six_transitions_are_legal_and_only_withdraw_leaves_a_state_of_the_other_side() {
    let legal = [
        (SlotState::Free, SlotEvent::Fill, SlotState::Pending),
        (
            SlotState::Pending,
            SlotEvent::Dispatch,
            SlotState::Processing,
        ),
        (
            SlotState::Processing,
            SlotEvent::Complete,
            SlotState::Complete,
        ),
        (SlotState::Complete, SlotEvent::Reclaim, SlotState::Free),
        (SlotState::Pending, SlotEvent::Withdraw, SlotState::Free),
        (
            SlotState::Processing,
            SlotEvent::HandBack,
            SlotState::Pending,
        ),
    ];
    for from in ALL_STATES {
        for event in ALL_EVENTS {
            let result = next_state(from, event);
            match legal.iter().find(|(f, e, _)| *f == from && *e == event) {
                Some((_, _, to)) => {
                    assert_eq!(result, Ok(*to));
                    // The kernel's withdraw races the service's claim of a
                    // PENDING slot: both are compare-exchanges.
                    let by_owner = event.actor() == from.owner();
                    assert_eq!(by_owner, event != SlotEvent::Withdraw, "{from:?} {event:?}");
                }
                None => assert_eq!(
                    result,
                    Err(SlotError::IllegalTransition { found: from, event })
                ),
            }
        }
    }
}

#[test]
fn full_cycle_returns_the_read_value_and_frees_the_slot() {
    let mut page = IoreqPage::new();
    fill(&mut page, &mmio_read(2, 0x1000_0005, 1)).unwrap();
    assert_eq!(state(&page, 2), Ok(SlotState::Pending));
    let taken = begin_processing(&mut page, 2).unwrap();
    assert_eq!(taken, mmio_read(2, 0x1000_0005, 1));
    assert_eq!(state(&page, 2), Ok(SlotState::Processing));
    finish(&mut page, &taken, 0x1234_5641).unwrap();
    assert_eq!(state(&page, 2), Ok(SlotState::Complete));
    let done = take_completion(&mut page, 2).unwrap();
    assert_eq!(done.value, 0x41, "a 1-byte read keeps only its low byte");
    assert_eq!(state(&page, 2), Ok(SlotState::Free));
}

#[test]
fn a_restarted_service_adopts_only_processing_slots_and_can_finish_them() {
    let mut page = IoreqPage::new();
    fill(&mut page, &mmio_read(1, 0x1000_0005, 1)).unwrap();
    // PENDING is dispatched as usual, not adopted.
    assert!(matches!(
        adopt(&page, 1),
        Err(SlotError::IllegalTransition {
            found: SlotState::Pending,
            ..
        })
    ));
    let taken = begin_processing(&mut page, 1).unwrap();
    // The dead service took it; its successor decodes the same request.
    assert_eq!(adopt(&page, 1), Ok(taken));
    assert_eq!(state(&page, 1), Ok(SlotState::Processing));
    finish(&mut page, &taken, 0x60).unwrap();
    assert_eq!(take_completion(&mut page, 1).unwrap().value, 0x60);
    assert_eq!(adopt(&page, 16), Err(SlotError::NoSuchSlot(16)));
}

#[test]
fn a_carried_answer_completes_and_frees_a_processing_slot_only() {
    let mut page = IoreqPage::new();
    let read = mmio_read(2, 0x1000_0005, 1);
    fill(&mut page, &read).unwrap();
    assert!(
        finish_and_reclaim(&mut page, &read, 0x60).is_err(),
        "PENDING"
    );
    assert_eq!(state(&page, 2), Ok(SlotState::Pending));
    begin_processing(&mut page, 2).unwrap();
    assert_eq!(finish_and_reclaim(&mut page, &read, 0x1_60), Ok(0x60));
    assert_eq!(state(&page, 2), Ok(SlotState::Free));
    let write = pio_write(2, 0x3f8, 1, 0x41);
    fill(&mut page, &write).unwrap();
    begin_processing(&mut page, 2).unwrap();
    assert_eq!(finish_and_reclaim(&mut page, &write, 0), Ok(0x41));
    assert_eq!(state(&page, 2), Ok(SlotState::Free));
}

#[test]
fn a_handed_back_slot_is_pending_again_with_its_request() {
    let mut page = IoreqPage::new();
    let request = mmio_read(3, 0x1000_0005, 1);
    fill(&mut page, &request).unwrap();
    assert!(
        hand_back(&mut page, 3).is_err(),
        "PENDING is not handed back"
    );
    assert_eq!(state(&page, 3), Ok(SlotState::Pending));
    begin_processing(&mut page, 3).unwrap();
    hand_back(&mut page, 3).unwrap();
    assert_eq!(state(&page, 3), Ok(SlotState::Pending));
    // Dispatched again, it is the same request, and finishes as usual.
    let again = begin_processing(&mut page, 3).unwrap();
    assert_eq!(again, request);
    finish(&mut page, &again, 0x60).unwrap();
    assert!(hand_back(&mut page, 3).is_err(), "COMPLETE stays");
    assert_eq!(take_completion(&mut page, 3).unwrap().value, 0x60);
    assert_eq!(hand_back(&mut page, 16), Err(SlotError::NoSuchSlot(16)));
}

#[test]
fn giving_up_completes_a_processing_slot_untouched() {
    let mut page = IoreqPage::new();
    fill(&mut page, &pio_write(0, 0x3f8, 1, 0x41)).unwrap();
    assert!(give_up(&mut page, 0).is_err(), "PENDING cannot be given up");
    begin_processing(&mut page, 0).unwrap();
    let before = page.slot(0).unwrap().payload;
    give_up(&mut page, 0).unwrap();
    assert_eq!(state(&page, 0), Ok(SlotState::Complete));
    assert_eq!(page.slot(0).unwrap().payload, before);
}

#[test]
fn fill_encodes_each_kind_so_that_decode_gives_it_back() {
    let requests = [
        mmio_read(0, 0xffff_ffff_ffff_fff8, 8),
        pio_write(1, 0x3f8, 1, 0x41),
        IoRequest {
            vcpu: 2,
            space: Space::PciConfig,
            addr: 3 << 20 | 31 << 15 | 7 << 12 | 0xffc,
            size: 4,
            direction: Direction::Write,
            value: 0xdead_beef,
        },
    ];
    let mut page = IoreqPage::new();
    for request in requests {
        fill(&mut page, &request).unwrap();
        let slot = page.slot(usize::from(request.vcpu)).unwrap();
        assert_eq!(decode(slot, request.vcpu), Ok(request));
    }
    let pci = page.slot(2).unwrap();
    assert_eq!(pci.request_type, TYPE_PCI_CONFIG);
    let fields = pci.payload.pci();
    assert_eq!(
        (fields.bus, fields.dev, fields.func, fields.reg),
        (3, 31, 7, 0xffc)
    );
}

#[test]
fn fill_keeps_only_the_written_width() {
    let mut page = IoreqPage::new();
    fill(&mut page, &pio_write(0, 0x80, 1, 0xabcd)).unwrap();
    assert_eq!(page.slot(0).unwrap().payload.pio().value, 0xcd);
}

#[test]
fn fill_refuses_a_slot_that_is_not_free_and_leaves_it_alone() {
    for raw in [STATE_PENDING, STATE_PROCESSING, STATE_COMPLETE, 7] {
        let mut page = IoreqPage::new();
        set_state(&mut page, 0, raw);
        let before = page.clone();
        let error = fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap_err();
        match SlotState::from_raw(raw) {
            Ok(found) => assert_eq!(
                error,
                SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Fill
                }
            ),
            Err(_) => assert_eq!(error, SlotError::UnknownState(7)),
        }
        assert_eq!(page, before);
    }
}

#[test]
fn fill_refuses_invalid_accesses() {
    let cases = [
        (mmio_read(0, 0x1000, 3), SlotError::BadSize(3)),
        (mmio_read(0, 0x1000, 0), SlotError::BadSize(0)),
        (mmio_read(0, 0x1000, 16), SlotError::BadSize(16)),
        (pio_write(0, 0x80, 8, 0), SlotError::BadSize(8)),
        (mmio_read(0, u64::MAX - 2, 4), SlotError::BadAddress),
        (pio_write(0, 0xffff, 2, 0), SlotError::BadAddress),
        (pio_write(0, 0x1_0000, 1, 0), SlotError::BadAddress),
        (
            IoRequest {
                space: Space::PciConfig,
                addr: 0xffe,
                size: 4,
                ..mmio_read(0, 0, 4)
            },
            SlotError::BadAddress,
        ),
        (
            IoRequest {
                space: Space::PciConfig,
                addr: 0x1000_0000,
                size: 1,
                ..mmio_read(0, 0, 1)
            },
            SlotError::BadAddress,
        ),
        (mmio_read(16, 0x1000, 4), SlotError::NoSuchSlot(16)),
    ];
    for (request, expected) in cases {
        let mut page = IoreqPage::new();
        assert_eq!(fill(&mut page, &request), Err(expected), "{request:?}");
        assert_eq!(page, IoreqPage::new());
    }
}

#[test]
fn take_completion_refuses_any_state_but_complete() {
    for raw in [STATE_PENDING, STATE_PROCESSING, STATE_FREE, 42] {
        let mut page = IoreqPage::new();
        fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap();
        set_state(&mut page, 0, raw);
        let before = page.clone();
        let error = take_completion(&mut page, 0).unwrap_err();
        match SlotState::from_raw(raw) {
            Ok(found) => assert_eq!(
                error,
                SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Reclaim
                }
            ),
            Err(_) => assert_eq!(error, SlotError::UnknownState(42)),
        }
        assert_eq!(page, before);
    }
    assert_eq!(
        take_completion(&mut IoreqPage::new(), 16),
        Err(SlotError::NoSuchSlot(16))
    );
}

#[test]
fn take_completion_refuses_a_scribbled_request_and_keeps_it_complete() {
    let mut page = IoreqPage::new();
    fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap();
    let request = begin_processing(&mut page, 0).unwrap();
    finish(&mut page, &request, 1).unwrap();
    page.slot_mut(0).unwrap().request_type = 9;
    assert_eq!(
        take_completion(&mut page, 0),
        Err(SlotError::UnknownType(9))
    );
    assert_eq!(raw_state(&page, 0), STATE_COMPLETE);
}

#[test]
fn begin_processing_refuses_any_state_but_pending() {
    for raw in [STATE_FREE, STATE_PROCESSING, STATE_COMPLETE, 4] {
        let mut page = IoreqPage::new();
        set_state(&mut page, 1, raw);
        let before = page.clone();
        let error = begin_processing(&mut page, 1).unwrap_err();
        match SlotState::from_raw(raw) {
            Ok(found) => assert_eq!(
                error,
                SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Dispatch
                }
            ),
            Err(_) => assert_eq!(error, SlotError::UnknownState(4)),
        }
        assert_eq!(page, before);
    }
}

#[test]
fn begin_processing_refuses_malformed_requests_and_leaves_them_pending() {
    type Scribble = fn(&mut IoreqSlot);
    let scribbles: [(Scribble, SlotError); 6] = [
        (|s| s.request_type = 3, SlotError::UnknownType(3)),
        (
            |s| {
                s.payload.set_mmio(&MmioFields {
                    direction: 2,
                    size: 4,
                    ..Default::default()
                })
            },
            SlotError::BadDirection(2),
        ),
        (
            |s| {
                s.payload.set_mmio(&MmioFields {
                    size: 5,
                    ..Default::default()
                })
            },
            SlotError::BadSize(5),
        ),
        (
            |s| {
                s.request_type = TYPE_PIO;
                s.payload.set_pio(&PioFields {
                    address: 0x10_0000,
                    size: 1,
                    ..Default::default()
                });
            },
            SlotError::BadAddress,
        ),
        (
            |s| {
                s.request_type = TYPE_PCI_CONFIG;
                s.payload.set_pci(&PciFields {
                    dev: 32,
                    size: 4,
                    ..Default::default()
                });
            },
            SlotError::BadAddress,
        ),
        (
            |s| {
                s.request_type = TYPE_PCI_CONFIG;
                s.payload.set_pci(&PciFields {
                    reg: 0x1000,
                    size: 1,
                    ..Default::default()
                });
            },
            SlotError::BadAddress,
        ),
    ];
    for (scribble, expected) in scribbles {
        let mut page = IoreqPage::new();
        fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap();
        scribble(page.slot_mut(0).unwrap());
        let before = page.clone();
        assert_eq!(begin_processing(&mut page, 0), Err(expected));
        assert_eq!(page, before);
        assert_eq!(raw_state(&page, 0), STATE_PENDING);
    }
}

#[test]
fn finish_writes_the_value_only_for_reads() {
    let mut page = IoreqPage::new();
    fill(&mut page, &pio_write(0, 0x3f8, 1, 0x41)).unwrap();
    let write = begin_processing(&mut page, 0).unwrap();
    finish(&mut page, &write, 0xffff_ffff).unwrap();
    assert_eq!(page.slot(0).unwrap().payload.pio().value, 0x41);

    let read = IoRequest {
        vcpu: 1,
        direction: Direction::Read,
        ..pio_write(1, 0x3fd, 2, 0)
    };
    fill(&mut page, &read).unwrap();
    let read = begin_processing(&mut page, 1).unwrap();
    finish(&mut page, &read, 0xaaaa_bbbb_cccc_dddd).unwrap();
    assert_eq!(page.slot(1).unwrap().payload.pio().value, 0xdddd);
    assert_eq!(raw_state(&page, 1), STATE_COMPLETE);
}

#[test]
fn finish_refuses_any_state_but_processing() {
    for raw in [STATE_FREE, STATE_PENDING, STATE_COMPLETE, 99] {
        let mut page = IoreqPage::new();
        fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap();
        set_state(&mut page, 0, raw);
        let before = page.clone();
        let error = finish(&mut page, &mmio_read(0, 0x1000, 4), 5).unwrap_err();
        match SlotState::from_raw(raw) {
            Ok(found) => assert_eq!(
                error,
                SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Complete
                }
            ),
            Err(_) => assert_eq!(error, SlotError::UnknownState(99)),
        }
        assert_eq!(page, before);
    }
}

#[test]
fn abandon_completes_a_pending_slot_without_touching_its_payload() {
    let mut page = IoreqPage::new();
    fill(&mut page, &mmio_read(0, 0x1000, 4)).unwrap();
    page.slot_mut(0).unwrap().request_type = 77;
    let payload = page.slot(0).unwrap().payload;
    abandon(&mut page, 0).unwrap();
    assert_eq!(raw_state(&page, 0), STATE_COMPLETE);
    assert_eq!(page.slot(0).unwrap().payload, payload);
    assert_eq!(
        abandon(&mut page, 0),
        Err(SlotError::IllegalTransition {
            found: SlotState::Complete,
            event: SlotEvent::Dispatch
        })
    );
}

#[test]
fn slot_errors_map_to_protocol_errors() {
    assert_eq!(
        crate::Error::from(SlotError::NoSuchSlot(20)),
        crate::Error::InvalidArgument
    );
    assert_eq!(
        crate::Error::from(SlotError::UnknownState(8)),
        crate::Error::BadSlotState
    );
    assert_eq!(
        crate::Error::from(SlotError::IllegalTransition {
            found: SlotState::Free,
            event: SlotEvent::Complete
        }),
        crate::Error::BadSlotState
    );
    assert_eq!(
        crate::Error::from(SlotError::BadSize(3)),
        crate::Error::BadAccess
    );
    assert_eq!(
        crate::Error::from(SlotError::NotDispatched),
        crate::Error::BadSlotState
    );
    assert_eq!(
        crate::Error::from(SlotError::UnknownType(3)),
        crate::Error::BadAccess
    );
    assert_eq!(
        crate::Error::from(SlotError::BadDirection(3)),
        crate::Error::BadAccess
    );
    assert_eq!(
        crate::Error::from(SlotError::BadAddress),
        crate::Error::BadAccess
    );
}

fn arb_request() -> impl Strategy<Value = IoRequest> {
    (
        0u8..16,
        prop_oneof![Just(Space::Mmio), Just(Space::Pio), Just(Space::PciConfig)],
        any::<u64>(),
        prop_oneof![Just(1u8), Just(2), Just(4), Just(8)],
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(vcpu, space, addr, size, write, value)| IoRequest {
            vcpu,
            space,
            addr: match space {
                Space::Mmio => addr,
                Space::Pio => addr & 0xffff,
                Space::PciConfig => addr & PCI_CONFIG_MAX,
            },
            size,
            direction: if write {
                Direction::Write
            } else {
                Direction::Read
            },
            value,
        })
}

proptest! {
    #[test]
    fn decode_of_any_slot_bytes_never_panics_and_only_yields_valid_requests(
        bytes in proptest::collection::vec(any::<u8>(), 256),
        vcpu in any::<u8>(),
    ) {
        let slot = IoreqSlot::from_bytes(&bytes.try_into().unwrap());
        if let Ok(request) = decode(&slot, vcpu) {
            prop_assert!(validate(&request).is_ok());
            prop_assert_eq!(request.value, mask_to_size(request.value, request.size));
        }
    }

    #[test]
    fn a_valid_filled_request_decodes_to_itself(request in arb_request()) {
        let mut page = IoreqPage::new();
        match fill(&mut page, &request) {
            Ok(()) => {
                let slot = page.slot(usize::from(request.vcpu)).unwrap();
                let expected = IoRequest { value: mask_to_size(request.value, request.size), ..request };
                prop_assert_eq!(decode(slot, request.vcpu), Ok(expected));
            }
            Err(error) => {
                prop_assert_eq!(validate(&request), Err(error));
                prop_assert_eq!(page, IoreqPage::new());
            }
        }
    }

    /// The kernel's one-read completion agrees with the general path
    /// (decode, compare, free) on every completed request.
    #[test]
    fn take_matching_agrees_with_take_completion(request in arb_request(), value in any::<u64>()) {
        let mut page = IoreqPage::new();
        if fill(&mut page, &request).is_ok() {
            let taken = begin_processing(&mut page, request.vcpu).unwrap();
            finish(&mut page, &taken, value).unwrap();
            let mut general = page.clone();
            let submitted = IoRequest { value: mask_to_size(request.value, request.size), ..request };
            let expected = take_completion(&mut general, request.vcpu).unwrap();
            prop_assert_eq!(take_matching(&mut page, &submitted), Ok(Some(expected.value)));
            prop_assert_eq!(page, general);
        }
    }

    /// Whatever bytes a service leaves in the slot, the kernel's read never
    /// panics, and it only hands out a value for the very access submitted.
    #[test]
    fn take_matching_of_any_slot_bytes_is_safe(
        bytes in proptest::collection::vec(any::<u8>(), 256),
        request in arb_request(),
    ) {
        let mut page = IoreqPage::new();
        let slot = IoreqSlot::from_bytes(&bytes.try_into().unwrap());
        if let Some(target) = page.slots.get_mut(usize::from(request.vcpu)) {
            *target = slot;
            let before = page.clone();
            match take_matching(&mut page, &request) {
                Ok(Some(_)) => {
                    let found = decode(before.slot(usize::from(request.vcpu)).unwrap(), request.vcpu);
                    let found = found.map(|r| (r.space, r.addr, r.size, r.direction));
                    prop_assert_eq!(found, Ok((request.space, request.addr, request.size, request.direction)));
                }
                Ok(None) | Err(_) => prop_assert_eq!(page, before),
            }
        }
    }
}

#[test]
fn the_kernel_withdraws_a_pending_request_but_not_a_claimed_one() {
    let mut page = IoreqPage::new();
    fill(&mut page, &mmio_read(1, 0x1000, 4)).unwrap();
    withdraw(&mut page, 1).unwrap();
    assert_eq!(state(&page, 1), Ok(SlotState::Free));
    assert_eq!(
        begin_processing(&mut page, 1),
        Err(SlotError::IllegalTransition {
            found: SlotState::Free,
            event: SlotEvent::Dispatch
        }),
        "a withdrawn request is never served"
    );
    fill(&mut page, &mmio_read(1, 0x1000, 4)).unwrap();
    let taken = begin_processing(&mut page, 1).unwrap();
    let before = page.clone();
    assert_eq!(
        withdraw(&mut page, 1),
        Err(SlotError::IllegalTransition {
            found: SlotState::Processing,
            event: SlotEvent::Withdraw
        })
    );
    assert_eq!(page, before, "a refused withdraw changes nothing");
    finish(&mut page, &taken, 7).unwrap();
    assert_eq!(take_completion(&mut page, 1).unwrap().value, 7);
    set_state(&mut page, 1, 0x77);
    assert_eq!(withdraw(&mut page, 1), Err(SlotError::UnknownState(0x77)));
    assert_eq!(withdraw(&mut page, 16), Err(SlotError::NoSuchSlot(16)));
}

#[test]
fn reset_leaves_an_empty_free_slot() {
    let mut page = IoreqPage::new();
    fill(&mut page, &pio_write(3, 0x3f8, 1, 0x41)).unwrap();
    let taken = begin_processing(&mut page, 3).unwrap();
    finish(&mut page, &taken, 0).unwrap();
    page.slot_mut(3).unwrap().reserved2[7] = 9;
    reset(&mut page, 3).unwrap();
    assert_eq!(page, IoreqPage::new());
    assert_eq!(reset(&mut page, 16), Err(SlotError::NoSuchSlot(16)));
}
