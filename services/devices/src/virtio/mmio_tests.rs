//! Tests of the virtio-mmio transport, acting as the guest driver.

use super::*;
use crate::testing::{GUEST_BUFFERS, TestEnv, VirtioGuest};
use crate::virtio::console::VirtioConsole;
use crate::virtio::rng::VirtioRng;
use crate::virtio::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};

const ALL_UP: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

#[test]
fn identification_registers() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    assert_eq!(guest.read(0x000), 0x7472_6976);
    assert_eq!(guest.read(0x004), 2);
    assert_eq!(guest.read(0x008), 4);
    assert_eq!(guest.read(0x00c), VENDOR_ID);
    let mut console = VirtioGuest::new(VirtioConsole::new());
    assert_eq!(console.read(0x008), 3);
}

#[test]
fn device_features_are_selected_by_halves_and_offer_version_1() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.write(0x014, 0);
    assert_eq!(
        guest.read(0x010),
        1 << 28 | 1 << 29,
        "VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX, as QEMU's devices offer"
    );
    guest.write(0x014, 1);
    assert_eq!(guest.read(0x010), 1, "bit 32: VIRTIO_F_VERSION_1");
    guest.write(0x014, 2);
    assert_eq!(guest.read(0x010), 0);
}

#[test]
fn features_ok_is_granted_for_a_subset_with_version_1() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    assert_eq!(guest.negotiate(VIRTIO_F_VERSION_1), 1 | 2 | 8);
    assert_eq!(guest.dev.driver_features(), VIRTIO_F_VERSION_1);
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    assert_eq!(guest.negotiate(0), 1 | 2, "legacy drivers are refused");
}

#[test]
fn features_ok_is_refused_for_features_not_offered() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    // VIRTIO_F_RING_PACKED (34) is never offered.
    assert_eq!(guest.negotiate(VIRTIO_F_VERSION_1 | 1 << 34), 1 | 2);
}

#[test]
fn driver_features_are_frozen_after_features_ok() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.negotiate(VIRTIO_F_VERSION_1);
    guest.write(0x024, 1);
    guest.write(0x020, 0);
    assert_eq!(guest.dev.driver_features(), VIRTIO_F_VERSION_1);
}

#[test]
fn queue_registers_report_max_and_ready() {
    let mut guest = VirtioGuest::new(VirtioConsole::new());
    guest.negotiate(VIRTIO_F_VERSION_1);
    guest.write(0x030, 1);
    assert_eq!(guest.read(0x034), 64);
    assert_eq!(guest.read(0x044), 0);
    guest.write(0x030, 2);
    assert_eq!(guest.read(0x034), 0, "no third queue");
    guest.setup_queue(1, 8);
    assert_eq!(guest.read(0x044), 1);
    guest.write(0x044, 0);
    assert_eq!(guest.read(0x044), 0);
}

#[test]
fn an_unusable_queue_configuration_stays_not_ready() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.negotiate(VIRTIO_F_VERSION_1);
    guest.write(0x030, 0);
    for size in [0u32, 3, 128, 0x1_0004] {
        guest.write(0x038, size);
        guest.write(0x044, 1);
        assert_eq!(guest.read(0x044), 0, "size {size}");
    }
    guest.write(0x038, 8);
    guest.write(0x080, 0x8000_0008); // descriptor table not 16-aligned
    guest.write(0x044, 1);
    assert_eq!(guest.read(0x044), 0);
}

#[test]
fn a_ready_queue_ignores_reconfiguration() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.bring_up(1);
    guest.write(0x038, 2);
    guest.write(0x080, 0);
    let head = guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(
        guest.queues[0].used_entry(&guest.ram, 0),
        (u32::from(head), 4)
    );
}

#[test]
fn used_buffers_raise_the_interrupt_until_acknowledged() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.bring_up(1);
    assert!(!guest.dev.irq_level());
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    assert!(guest.dev.irq_level());
    guest.write(0x064, INT_USED_BUFFER);
    assert_eq!(guest.read(0x060), 0);
    assert!(!guest.dev.irq_level());
}

#[test]
fn with_event_idx_the_interrupt_waits_for_used_event() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.bring_up_with(1, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX);
    // Interrupt me once the used index passes 1 (the second buffer).
    guest.queues[0].set_used_event(&mut guest.ram, 1);
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 1);
    assert_eq!(guest.read(0x060), 0, "used_event not reached");
    assert_eq!(guest.queues[0].avail_event(&guest.ram), 1, "notify me at 1");
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    guest.write(0x064, INT_USED_BUFFER);
    // used_event left behind: no interrupt until the driver moves it.
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.read(0x060), 0);
    assert_eq!(guest.queues[0].avail_event(&guest.ram), 3);
}

#[test]
fn the_ring_features_act_only_when_negotiated() {
    // Offered but not taken: used_event is ignored, an indirect
    // descriptor is a driver error.
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.bring_up(1);
    guest.queues[0].set_used_event(&mut guest.ram, 7);
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    let table = GUEST_BUFFERS + 0x1000;
    guest.queues[0].post_indirect(&mut guest.ram, table, &[(GUEST_BUFFERS, 4, true)]);
    guest.write(0x050, 0);
    assert_eq!(
        guest.dev.failure(),
        Some(crate::virtio::queue::QueueError::IndirectNotNegotiated)
    );
    assert_ne!(guest.read(0x070) & status::DEVICE_NEEDS_RESET, 0);
    // Negotiated after a reset: the same table is served.
    guest.write(0x070, 0);
    guest.queues.clear();
    guest.bring_up_with(1, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);
    guest.queues[0].post_indirect(
        &mut guest.ram,
        table,
        &[(GUEST_BUFFERS, 4, true), (GUEST_BUFFERS + 0x100, 6, true)],
    );
    guest.write(0x050, 0);
    assert_eq!(guest.dev.failure(), None);
    assert_eq!(guest.queues[0].used_entry(&guest.ram, 0), (0, 10));
    // Ten bytes from the counting source, the second buffer after the first.
    let first = guest.ram.bytes_at(GUEST_BUFFERS, 4);
    let second = guest.ram.bytes_at(GUEST_BUFFERS + 0x100, 6);
    let expected: std::vec::Vec<u8> = (1..=6).map(|i| first[3].wrapping_add(i)).collect();
    assert_eq!(second, expected);
}

#[test]
fn notifications_before_driver_ok_are_ignored() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.negotiate(VIRTIO_F_VERSION_1);
    guest.setup_queue(0, 8);
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 0);
    guest.write(0x070, ALL_UP);
    guest.write(0x050, 0);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 1, "served once live");
}

#[test]
fn a_malformed_chain_fails_the_device_until_reset() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.bring_up(1);
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, false)]);
    assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
    assert_eq!(guest.read(0x070), ALL_UP | status::DEVICE_NEEDS_RESET);
    assert_eq!(guest.read(0x060) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
    // The driver cannot clear DEVICE_NEEDS_RESET by writing Status...
    guest.write(0x070, ALL_UP);
    assert_eq!(
        guest.read(0x070) & status::DEVICE_NEEDS_RESET,
        status::DEVICE_NEEDS_RESET
    );
    // ...and no queue is served meanwhile.
    guest.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 0);
    // A reset clears everything; the device works again after bring-up.
    guest.write(0x070, 0);
    assert_eq!(guest.read(0x070), 0);
    assert_eq!(guest.read(0x060), 0);
    assert_eq!(guest.dev.failure(), None);
    guest.write(0x030, 0);
    assert_eq!(guest.read(0x044), 0, "reset un-readies queues");
    guest.queues.clear();
    let mut fresh = VirtioGuest::new(VirtioRng::new());
    core::mem::swap(&mut fresh.dev, &mut guest.dev);
    fresh.bring_up(1);
    fresh.post_and_notify(0, &[(GUEST_BUFFERS, 4, true)]);
    assert_eq!(fresh.queues[0].used_idx(&fresh.ram), 1);
}

#[test]
fn config_space_reads_at_any_width_and_ignores_writes() {
    let mut dev = VirtioMmio::new(VirtioConsole::new());
    let mut env = TestEnv::default();
    assert_eq!(dev.read(0x100, AccessSize::Half, &mut env.env()), Ok(0));
    assert_eq!(dev.read(0x108, AccessSize::Word, &mut env.env()), Ok(0));
    assert_eq!(dev.read(0x1f8, AccessSize::Double, &mut env.env()), Ok(0));
    assert_eq!(
        dev.write(0x100, AccessSize::Byte, 7, &mut env.env()),
        Ok(())
    );
}

#[test]
fn control_registers_need_aligned_32_bit_accesses() {
    let mut dev = VirtioMmio::new(VirtioRng::new());
    let mut env = TestEnv::default();
    assert_eq!(
        dev.read(0x000, AccessSize::Byte, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        dev.read(0x000, AccessSize::Double, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        dev.write(0x070, AccessSize::Half, 1, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        dev.read(0x002, AccessSize::Word, &mut env.env()),
        Err(DeviceError::Unaligned)
    );
    assert_eq!(
        dev.read(0x200, AccessSize::Word, &mut env.env()),
        Err(DeviceError::OutOfRange)
    );
    assert_eq!(
        dev.write(0x200, AccessSize::Word, 0, &mut env.env()),
        Err(DeviceError::OutOfRange)
    );
    assert_eq!(dev.status(), 0);
}

#[test]
fn read_only_registers_ignore_writes_and_write_only_ones_read_zero() {
    let mut guest = VirtioGuest::new(VirtioRng::new());
    guest.write(0x000, 0);
    guest.write(0x008, 9);
    assert_eq!(guest.read(0x000), MAGIC_VALUE);
    assert_eq!(guest.read(0x008), 4);
    guest.write(0x038, 8);
    assert_eq!(guest.read(0x038), 0);
    assert_eq!(guest.read(0x0fc), 0, "config generation");
}

proptest::proptest! {
    #[test]
    fn random_register_writes_never_panic(ops in proptest::collection::vec((0u64..0x80, proptest::prelude::any::<u32>()), 0..64)) {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up(2);
        for (word, value) in ops {
            guest.write(word * 4, value);
            let _ = guest.read(word * 4);
        }
        guest.dev.device_mut().queue_input(b"abc");
        guest.process_queue(0);
    }
}
