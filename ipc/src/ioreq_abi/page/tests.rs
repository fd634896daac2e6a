//! Layout tests: the page must match ACRN's `struct acrn_io_request` byte for
//! byte, or the kernel and the service would disagree about every field.

extern crate std;

use core::mem::{align_of, offset_of, size_of};

use proptest::prelude::*;

use super::*;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn sizes_and_alignment_match_acrn() {
    assert_eq!(size_of::<IoreqSlot>(), 256);
    assert_eq!(align_of::<IoreqSlot>(), 256);
    assert_eq!(size_of::<IoreqPage>(), 4096);
    assert_eq!(align_of::<IoreqPage>(), 4096);
    assert_eq!(size_of::<RequestPayload>(), 64);
    assert_eq!(offset_of!(IoreqSlot, request_type), 0);
    assert_eq!(offset_of!(IoreqSlot, completion_polling), 4);
    assert_eq!(offset_of!(IoreqSlot, payload), 64);
    assert_eq!(offset_of!(IoreqSlot, reserved1), 128);
    assert_eq!(offset_of!(IoreqSlot, kernel_handled), 132);
    assert_eq!(offset_of!(IoreqSlot, processed), 136);
}

#[test]
fn acrn_constant_values() {
    assert_eq!(
        (STATE_PENDING, STATE_COMPLETE, STATE_PROCESSING, STATE_FREE),
        (0, 1, 2, 3)
    );
    assert_eq!((TYPE_PIO, TYPE_MMIO, TYPE_PCI_CONFIG), (0, 1, 2));
    assert_eq!((DIRECTION_READ, DIRECTION_WRITE), (0, 1));
}

#[test]
fn new_page_has_every_slot_free_and_zeroed() {
    let page = IoreqPage::new();
    for vcpu in 0..SLOT_COUNT {
        let slot = page.slot(vcpu).unwrap();
        assert_eq!(slot.state_word(), STATE_FREE);
        let mut expected = [0u8; SLOT_SIZE];
        expected[136..140].copy_from_slice(&STATE_FREE.to_ne_bytes());
        assert_eq!(slot.to_bytes(), expected);
    }
    assert!(page.slot(SLOT_COUNT).is_none());
}

#[test]
fn header_fields_land_at_their_c_offsets() {
    let mut slot = IoreqSlot::free();
    slot.request_type = 0x1111_1111;
    slot.completion_polling = 0x2222_2222;
    slot.reserved1 = 0x3333_3333;
    slot.kernel_handled = 0x4444_4444;
    slot.set_state_word(0x5555_5555);
    let bytes = slot.to_bytes();
    assert_eq!(u32_at(&bytes, 0), 0x1111_1111);
    assert_eq!(u32_at(&bytes, 4), 0x2222_2222);
    assert_eq!(u32_at(&bytes, 128), 0x3333_3333);
    assert_eq!(u32_at(&bytes, 132), 0x4444_4444);
    assert_eq!(u32_at(&bytes, 136), 0x5555_5555);
    assert_eq!(IoreqSlot::from_bytes(&bytes).state_word(), 0x5555_5555);
    assert_eq!(slot.state_hint(), 0x5555_5555);
}

#[test]
fn mmio_member_layout() {
    let mut slot = IoreqSlot::free();
    let fields = MmioFields {
        direction: DIRECTION_WRITE,
        address: 0x1000_0005,
        size: 8,
        value: 0x0102_0304_0506_0708,
    };
    slot.payload.set_mmio(&fields);
    let bytes = slot.to_bytes();
    assert_eq!(u32_at(&bytes, 64), DIRECTION_WRITE);
    assert_eq!(u64_at(&bytes, 72), 0x1000_0005);
    assert_eq!(u64_at(&bytes, 80), 8);
    assert_eq!(u64_at(&bytes, 88), 0x0102_0304_0506_0708);
    assert_eq!(slot.payload.mmio(), fields);
}

#[test]
fn pio_member_layout() {
    let mut slot = IoreqSlot::free();
    let fields = PioFields {
        direction: DIRECTION_READ,
        address: 0x3f8,
        size: 1,
        value: 0xdead_beef,
    };
    slot.payload.set_pio(&fields);
    let bytes = slot.to_bytes();
    assert_eq!(u32_at(&bytes, 64), DIRECTION_READ);
    assert_eq!(u64_at(&bytes, 72), 0x3f8);
    assert_eq!(u64_at(&bytes, 80), 1);
    assert_eq!(u32_at(&bytes, 88), 0xdead_beef);
    assert_eq!(u32_at(&bytes, 92), 0, "PIO value is only 32 bits wide");
    assert_eq!(slot.payload.pio(), fields);
}

#[test]
fn pci_member_layout() {
    let mut slot = IoreqSlot::free();
    let fields = PciFields {
        direction: DIRECTION_WRITE,
        size: 4,
        value: 0xaabb_ccdd,
        bus: 3,
        dev: 31,
        func: 7,
        reg: 0xffc,
    };
    slot.payload.set_pci(&fields);
    let bytes = slot.to_bytes();
    assert_eq!(u32_at(&bytes, 64), DIRECTION_WRITE);
    assert_eq!(u64_at(&bytes, 80), 4);
    assert_eq!(u32_at(&bytes, 88), 0xaabb_ccdd);
    assert_eq!(u32_at(&bytes, 92), 3);
    assert_eq!(u32_at(&bytes, 96), 31);
    assert_eq!(u32_at(&bytes, 100), 7);
    assert_eq!(u32_at(&bytes, 104), 0xffc);
    assert_eq!(slot.payload.pci(), fields);
}

#[test]
fn set_value_u32_keeps_the_pci_bus_number() {
    let mut payload = RequestPayload::default();
    payload.set_pci(&PciFields {
        bus: 9,
        ..PciFields::default()
    });
    payload.set_value_u32(0x1234_5678);
    assert_eq!(payload.pci().bus, 9);
    assert_eq!(payload.pci().value, 0x1234_5678);
    payload.set_value_u64(u64::MAX);
    assert_eq!(payload.mmio().value, u64::MAX);
}

#[test]
fn page_bytes_place_slot_n_at_n_times_256() {
    let mut page = IoreqPage::new();
    page.slot_mut(5).unwrap().request_type = 0xabcd;
    let bytes = page.to_bytes();
    assert_eq!(u32_at(&bytes, 5 * 256), 0xabcd);
    assert_eq!(u32_at(&bytes, 4 * 256), 0);
    assert!(page.slot_mut(16).is_none());
}

proptest! {
    #[test]
    fn page_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), PAGE_SIZE)) {
        let image: [u8; PAGE_SIZE] = bytes.try_into().unwrap();
        let page = IoreqPage::from_bytes(&image);
        prop_assert_eq!(page.to_bytes(), image);
    }
}
