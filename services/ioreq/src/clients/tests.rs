//! Tests of range registration, routing, the default client and removal.

extern crate std;

use std::vec::Vec;

use ipc::ioreq::ClientId;
use ipc::{Error, Space};
use proptest::prelude::*;

use super::*;

const UART: ClientId = ClientId(1);
const VIRTIO: ClientId = ClientId(2);
const DM: ClientId = ClientId(9);

#[test]
fn a_registered_range_routes_its_accesses_to_its_client() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000_0000, 8).unwrap();
    reg.register(VIRTIO, Space::Mmio, 0x1000_1000, 0x1000)
        .unwrap();
    assert_eq!(reg.route(Space::Mmio, 0x1000_0000, 1), Some(UART));
    assert_eq!(reg.route(Space::Mmio, 0x1000_0007, 1), Some(UART));
    assert_eq!(reg.route(Space::Mmio, 0x1000_0004, 4), Some(UART));
    assert_eq!(reg.route(Space::Mmio, 0x1000_1ffc, 4), Some(VIRTIO));
    assert_eq!(reg.route(Space::Mmio, 0x1000_0008, 1), None);
    assert_eq!(reg.route(Space::Mmio, 0x0fff_ffff, 1), None);
}

#[test]
fn an_access_straddling_the_end_of_a_range_is_not_its() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 8).unwrap();
    assert_eq!(reg.range_client(Space::Mmio, 0x1006, 4), None);
    assert_eq!(reg.range_client(Space::Mmio, u64::MAX, 8), None);
}

#[test]
fn spaces_are_separate() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Pio, 0x3f8, 8).unwrap();
    reg.register(VIRTIO, Space::Mmio, 0x3f8, 8).unwrap();
    reg.register(DM, Space::PciConfig, 0x3f8, 8).unwrap();
    assert_eq!(reg.route(Space::Pio, 0x3f8, 1), Some(UART));
    assert_eq!(reg.route(Space::Mmio, 0x3f8, 1), Some(VIRTIO));
    assert_eq!(reg.route(Space::PciConfig, 0x3f8, 1), Some(DM));
}

#[test]
fn overlapping_ranges_are_refused() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 0x100).unwrap();
    for (start, len) in [
        (0x1000, 0x100),
        (0x10ff, 1),
        (0xfff, 2),
        (0x0, 0x2000),
        (0x1080, 0x10),
    ] {
        assert_eq!(
            reg.register(VIRTIO, Space::Mmio, start, len),
            Err(Error::RangeOverlap),
            "{start:#x}+{len:#x}"
        );
        assert_eq!(
            reg.register(UART, Space::Mmio, start, len),
            Err(Error::RangeOverlap),
            "same client, {start:#x}+{len:#x}"
        );
    }
    assert_eq!(reg.ranges().len(), 1);
    reg.register(VIRTIO, Space::Mmio, 0x1100, 1).unwrap();
    reg.register(VIRTIO, Space::Mmio, 0xfff, 1).unwrap();
}

#[test]
fn empty_wrapping_or_out_of_space_ranges_are_refused() {
    let mut reg = ClientRegistry::new();
    assert_eq!(
        reg.register(UART, Space::Mmio, 0x1000, 0),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        reg.register(UART, Space::Mmio, u64::MAX, 2),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        reg.register(UART, Space::Mmio, 2, u64::MAX),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        reg.register(UART, Space::Pio, 0xfff0, 0x11),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        reg.register(UART, Space::PciConfig, 0x0fff_f000, 0x1001),
        Err(Error::InvalidRange)
    );
    assert!(reg.ranges().is_empty());
    // Ranges that end exactly at the top of their space are fine.
    reg.register(UART, Space::Mmio, u64::MAX, 1).unwrap();
    reg.register(UART, Space::Pio, 0xfff0, 0x10).unwrap();
    reg.register(UART, Space::PciConfig, 0, 0x1000_0000)
        .unwrap();
    assert_eq!(reg.route(Space::Mmio, u64::MAX, 1), Some(UART));
}

#[test]
fn a_full_table_refuses_more_ranges() {
    let mut reg = ClientRegistry::new();
    for i in 0..MAX_RANGES as u64 {
        reg.register(UART, Space::Mmio, i * 0x10, 0x10).unwrap();
    }
    assert_eq!(
        reg.register(UART, Space::Mmio, 0x10_0000, 1),
        Err(Error::TableFull)
    );
    assert_eq!(reg.ranges().len(), MAX_RANGES);
    assert_eq!(reg.route(Space::Mmio, 0x3f5, 1), Some(UART));
    reg.unregister(UART).unwrap();
    reg.register(VIRTIO, Space::Mmio, 0x10_0000, 1).unwrap();
}

#[test]
fn the_default_client_takes_what_no_range_claims() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 8).unwrap();
    reg.set_default(DM).unwrap();
    assert_eq!(reg.default_client(), Some(DM));
    assert_eq!(reg.route(Space::Mmio, 0x1000, 1), Some(UART));
    assert_eq!(reg.route(Space::Mmio, 0x2000, 1), Some(DM));
    assert_eq!(reg.route(Space::Pio, 0x1000, 1), Some(DM));
    assert_eq!(reg.range_client(Space::Pio, 0x1000, 1), None);
}

#[test]
fn a_second_different_default_is_refused_the_same_one_is_idempotent() {
    let mut reg = ClientRegistry::new();
    reg.set_default(DM).unwrap();
    reg.set_default(DM).unwrap();
    assert_eq!(reg.set_default(UART), Err(Error::ClientExists));
    assert_eq!(reg.default_client(), Some(DM));
}

#[test]
fn unregister_removes_every_range_and_the_default_role() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 8).unwrap();
    reg.register(UART, Space::Pio, 0x3f8, 8).unwrap();
    reg.register(VIRTIO, Space::Mmio, 0x2000, 8).unwrap();
    reg.set_default(UART).unwrap();
    reg.unregister(UART).unwrap();
    assert_eq!(reg.route(Space::Mmio, 0x1000, 1), None);
    assert_eq!(reg.route(Space::Pio, 0x3f8, 1), None);
    assert_eq!(reg.route(Space::Mmio, 0x2000, 1), Some(VIRTIO));
    assert_eq!(reg.default_client(), None);
    assert_eq!(reg.unregister(UART), Err(Error::UnknownClient));
    // Its range is free to be taken again, and a new default can be set.
    reg.register(DM, Space::Mmio, 0x1000, 8).unwrap();
    reg.set_default(DM).unwrap();
}

#[test]
fn unregister_of_a_default_only_client_succeeds() {
    let mut reg = ClientRegistry::new();
    reg.set_default(DM).unwrap();
    reg.unregister(DM).unwrap();
    assert_eq!(reg.default_client(), None);
}

#[test]
fn unregister_of_an_unknown_client_is_refused() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 8).unwrap();
    assert_eq!(reg.unregister(VIRTIO), Err(Error::UnknownClient));
    assert_eq!(reg.ranges().len(), 1);
}

#[test]
fn clear_forgets_everything() {
    let mut reg = ClientRegistry::new();
    reg.register(UART, Space::Mmio, 0x1000, 8).unwrap();
    reg.set_default(DM).unwrap();
    reg.clear();
    assert!(reg.ranges().is_empty());
    assert_eq!(reg.route(Space::Mmio, 0x1000, 1), None);
    assert_eq!(reg.unregister(UART), Err(Error::UnknownClient));
}

fn arb_space() -> impl Strategy<Value = Space> {
    prop_oneof![Just(Space::Mmio), Just(Space::Pio), Just(Space::PciConfig)]
}

proptest! {
    /// The sorted table answers exactly like a naive list of ranges, and
    /// never holds two overlapping ranges.
    #[test]
    fn matches_a_linear_model(
        ops in proptest::collection::vec(
            (0u16..4, arb_space(), 0u64..0x200, 0u64..0x40), 1..120),
        probes in proptest::collection::vec((arb_space(), 0u64..0x260, 1u8..9), 1..60),
    ) {
        let mut reg = ClientRegistry::new();
        let mut model: Vec<(Space, u64, u64, ClientId)> = Vec::new();
        for (client, space, start, len) in ops {
            let client = ClientId(client);
            let result = reg.register(client, space, start, len);
            let expected = if len == 0 {
                Err(Error::InvalidRange)
            } else if model.iter().any(|&(s, a, l, _)| s == space && a < start + len && start <= l) {
                Err(Error::RangeOverlap)
            } else if model.len() == MAX_RANGES {
                Err(Error::TableFull)
            } else {
                model.push((space, start, start + len - 1, client));
                Ok(())
            };
            prop_assert_eq!(result, expected);
        }
        for pair in reg.ranges().windows(2) {
            prop_assert!((pair[0].space, pair[0].last) < (pair[1].space, pair[1].start));
        }
        for (space, addr, size) in probes {
            let last = addr + u64::from(size) - 1;
            let expected = model
                .iter()
                .find(|&&(s, a, l, _)| s == space && a <= addr && last <= l)
                .map(|&(_, _, _, c)| c);
            prop_assert_eq!(reg.range_client(space, addr, size), expected);
        }
    }
}
