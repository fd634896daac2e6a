//! Property test: any bytes in the shared page, any client answers.

use super::*;
use proptest::prelude::*;

use crate::page::PAGE_SIZE;
use crate::slot::SlotState;

/// Per-slot overrides that steer random bytes towards plausible requests,
/// so that every dispatch path is reached, not just "unknown state".
fn arb_slot_bias() -> impl Strategy<Value = (u32, u32, u32, u64, Option<u64>)> {
    (
        prop_oneof![4 => 0u32..4, 1 => any::<u32>()],
        prop_oneof![4 => 0u32..3, 1 => any::<u32>()],
        prop_oneof![4 => 0u32..2, 1 => any::<u32>()],
        prop_oneof![4 => prop::sample::select(&[1u64, 2, 4, 8][..]), 1 => any::<u64>()],
        prop_oneof![1 => Just(None), 2 => (0u64..0x2_0100).prop_map(Some)],
    )
}

/// Writes a bias into the image of one slot at the ACRN offsets.
fn apply_bias(
    slot: &mut [u8],
    (state, kind, direction, size, addr): (u32, u32, u32, u64, Option<u64>),
) {
    slot[0..4].copy_from_slice(&kind.to_ne_bytes());
    slot[64..68].copy_from_slice(&direction.to_ne_bytes());
    slot[80..88].copy_from_slice(&size.to_ne_bytes());
    slot[136..140].copy_from_slice(&state.to_ne_bytes());
    if let Some(addr) = addr {
        slot[72..80].copy_from_slice(&addr.to_ne_bytes());
        // A plausible PCI function too: bus, dev, func, reg.
        for (at, word) in [
            (92, 0u32),
            (96, (addr & 0x1f) as u32),
            (100, 0),
            (104, (addr & 0xffc) as u32),
        ] {
            slot[at..at + 4].copy_from_slice(&word.to_ne_bytes());
        }
    }
}

proptest! {
    /// Whatever the bytes of the shared page, dispatch never panics, leaves
    /// no PENDING slot of an existing vCPU behind, touches nothing it counted
    /// as rejected, and forwards exactly the slots it moved to PROCESSING.
    #[test]
    fn dispatch_survives_any_page_contents(
        bytes in proptest::collection::vec(any::<u8>(), PAGE_SIZE),
        vcpus in 1u8..=16,
        with_default in any::<bool>(),
        ranges in proptest::collection::vec((0u64..0x2_0000, 1u64..0x100), 0..8),
        completes in proptest::collection::vec((0u8..20, any::<u64>()), 0..20),
        biases in proptest::collection::vec(proptest::option::weighted(0.9, arb_slot_bias()), 16),
    ) {
        let mut service = attached(vcpus);
        if with_default {
            ok(&mut service, Request::SetDefaultClient { vm: VM, client: DM });
        }
        for (i, (start, len)) in ranges.into_iter().enumerate() {
            for space in [Space::Mmio, Space::Pio] {
                let _ = service.handle(Request::RegisterRange {
                    vm: VM, client: ClientId(u16::try_from(i).unwrap()), space, start, len,
                });
            }
        }
        let mut image: [u8; PAGE_SIZE] = bytes.try_into().unwrap();
        for (slot, bias) in image.chunks_exact_mut(256).zip(biases) {
            if let Some(bias) = bias {
                apply_bias(slot, bias);
            }
        }
        *service.vm_mut(VM).unwrap().page_mut() = IoreqPage::from_bytes(&image);
        let before = IoreqPage::from_bytes(&image);

        let handled = service.handle(Request::Dispatch { vm: VM });
        let Response::Dispatched { count } = handled.response else {
            panic!("dispatch of an attached VM must succeed: {:?}", handled.response);
        };
        let state = service.vm(VM).unwrap();
        let seen = *state.counters();
        let mut unknown = 0;
        let mut beyond = 0;
        let mut processing_now = 0;
        for vcpu in 0..16u8 {
            let old = before.slot(usize::from(vcpu)).unwrap();
            let new = state.page().slot(usize::from(vcpu)).unwrap();
            match SlotState::from_raw(old.state_word()) {
                Err(_) => {
                    unknown += 1;
                    prop_assert_eq!(new, old, "unknown state word is not touched");
                }
                Ok(SlotState::Pending) if vcpu >= vcpus => {
                    beyond += 1;
                    prop_assert_eq!(new, old, "no such vCPU: not touched");
                }
                Ok(SlotState::Pending) => {
                    let now = SlotState::from_raw(new.state_word());
                    prop_assert!(
                        now == Ok(SlotState::Processing) || now == Ok(SlotState::Complete),
                        "vCPU {} left {:?}", vcpu, now
                    );
                    if now == Ok(SlotState::Processing) {
                        processing_now += 1;
                        prop_assert!(state.in_flight(vcpu).is_some());
                    }
                }
                Ok(_) => prop_assert_eq!(new, old, "not ours to touch"),
            }
        }
        prop_assert_eq!(u32::from(count), processing_now);
        prop_assert_eq!(handled.actions.forwards().count(), usize::from(count));
        prop_assert_eq!(seen.unknown_state, unknown);
        prop_assert_eq!(seen.no_such_slot, beyond);
        if with_default {
            prop_assert_eq!(seen.unclaimed, 0, "the default client claims everything");
        }

        // Whatever clients answer, nothing panics and every refusal is counted.
        for (vcpu, value) in completes {
            let rejected = service.vm(VM).unwrap().counters().rejected();
            let response = service.handle(Request::Complete { vm: VM, vcpu, value }).response;
            let after = service.vm(VM).unwrap().counters().rejected();
            match response {
                Response::Ok => prop_assert_eq!(after, rejected),
                Response::Err(_) => prop_assert_eq!(after, rejected + 1),
                Response::Dispatched { .. } => prop_assert!(false, "Complete never says Dispatched"),
            }
        }
    }
}
