#![allow(
    clippy::cast_possible_truncation,
    reason = "test frames and register halves are built from small known values"
)]

use super::*;
use crate::bus::AccessSize;
use crate::testing::{GUEST_BUFFERS, VirtioGuest};
use crate::virtio::mmio::INT_USED_BUFFER;
use crate::virtio::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};

const MAC: [u8; 6] = [0x02, 0x4d, 0x49, 0x43, 0x41, 0x07];

fn card() -> VirtioGuest<VirtioNet> {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    guest.bring_up(2);
    guest
}

/// A frame of `len` bytes: broadcast destination, our source, ARP type,
/// then a counting payload.
fn frame(len: usize) -> std::vec::Vec<u8> {
    let mut bytes = std::vec![0xff; 6];
    bytes.extend_from_slice(&MAC);
    bytes.extend_from_slice(&[0x08, 0x06]);
    bytes.extend((0..len - 14).map(|i| (i % 251) as u8));
    bytes
}

/// Takes the next transmitted frame as the service does.
fn take_frame(guest: &mut VirtioGuest<VirtioNet>) -> Option<std::vec::Vec<u8>> {
    let mut packet = Packet::new();
    let got = guest.with_env(|dev, env| transmit(dev, &mut packet, env));
    assert_eq!(got, !packet.frame().is_empty());
    got.then(|| packet.frame().to_vec())
}

fn deliver_to(guest: &mut VirtioGuest<VirtioNet>, bytes: &[u8]) -> bool {
    guest.with_env(|dev, env| deliver(dev, bytes, env))
}

/// What QEMU's `virtio-net-device` on its user network negotiates with
/// Linux (bits 2, 5, 15-19, 21, 23, then the transport's 28, 29, 32), as
/// Linux's sysfs shows it, one character per bit from bit 0.
const QEMU_USER_NET_FEATURES: &str =
    "0010010000000001111101010000110010000000000000000000000000000000";

#[test]
fn the_card_offers_what_qemus_card_on_its_user_network_does() {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    guest.write(0x014, 0);
    let low = u64::from(guest.read(0x010));
    guest.write(0x014, 1);
    let offered = low | u64::from(guest.read(0x010)) << 32;
    let bits: std::string::String = (0..64)
        .map(|bit| if offered >> bit & 1 == 1 { '1' } else { '0' })
        .collect();
    assert_eq!(bits, QEMU_USER_NET_FEATURES);
}

#[test]
fn the_card_is_a_virtio_net_with_its_mac_and_link_up() {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    assert_eq!(guest.read(0x008), VIRTIO_ID_NET);
    guest.write(0x014, 0);
    assert_eq!(
        u64::from(guest.read(0x010)),
        NET_FEATURES | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    );
    guest.write(0x014, 1);
    assert_eq!(u64::from(guest.read(0x010)) << 32, VIRTIO_F_VERSION_1);
    let mac: std::vec::Vec<u8> = (0..6)
        .map(|i| guest.read_sized(0x100 + i, AccessSize::Byte) as u8)
        .collect();
    assert_eq!(mac, MAC);
    assert_eq!(guest.read_sized(0x106, AccessSize::Half), 1, "link up");
    for queue in [RECEIVEQ, TRANSMITQ] {
        guest.write(0x030, queue as u32);
        assert_eq!(guest.read(0x034), 256);
    }
    guest.write(0x030, CTRLQ as u32);
    assert_eq!(guest.read(0x034), 64, "the control queue");
    guest.write(0x030, 3);
    assert_eq!(guest.read(0x034), 0, "no multiqueue");
}

#[test]
fn every_vm_gets_its_own_locally_administered_unicast_mac() {
    assert_eq!(mac_for(VmId(7)), MAC);
    assert_ne!(mac_for(VmId(1)), mac_for(VmId(2)));
    assert_eq!(mac_for(VmId(1))[0] & 0b11, 0b10);
}

#[test]
fn a_transmitted_frame_waits_for_the_switch_however_the_chain_splits_it() {
    let sent = frame(60);
    let mut packet = std::vec![0u8; NET_HDR_LEN];
    packet.extend_from_slice(&sent);
    // Header alone, header and data together, and a split mid-header.
    let splits: [&[usize]; 3] = [&[NET_HDR_LEN], &[], &[5, 30]];
    for (n, cuts) in splits.iter().enumerate() {
        let mut guest = card();
        let mut bufs = std::vec::Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(core::iter::once(&packet.len())) {
            let addr = GUEST_BUFFERS + (n as u64) * 0x1000 + start as u64 * 2;
            guest.ram.write_bytes(addr, &packet[start..end]);
            bufs.push((addr, (end - start) as u32, false));
            start = end;
        }
        let head = guest.post_and_notify(TRANSMITQ, &bufs);
        assert!(guest.dev.device_mut().take_tx_notification());
        assert!(!guest.dev.device_mut().take_tx_notification());
        assert_eq!(guest.queues[TRANSMITQ].used_idx(&guest.ram), 0);
        assert_eq!(take_frame(&mut guest), Some(sent.clone()), "split {n}");
        let queue = &guest.queues[TRANSMITQ];
        assert_eq!(queue.used_entry(&guest.ram, 0), (u32::from(head), 0));
        assert_eq!(guest.read(0x060), INT_USED_BUFFER);
        assert_eq!(take_frame(&mut guest), None);
        assert_eq!(guest.dev.device().counters().sent, 1);
    }
}

#[test]
fn frames_are_taken_one_at_a_time_in_order() {
    let mut guest = card();
    let first = frame(60);
    let second = frame(100);
    let mut packet = std::vec![0u8; NET_HDR_LEN];
    packet.extend_from_slice(&first);
    guest.ram.write_bytes(GUEST_BUFFERS, &packet);
    let mut packet = std::vec![0u8; NET_HDR_LEN];
    packet.extend_from_slice(&second);
    guest.ram.write_bytes(GUEST_BUFFERS + 0x1000, &packet);
    guest.queues[TRANSMITQ].post(&mut guest.ram, &[(GUEST_BUFFERS, 72, false)]);
    guest.queues[TRANSMITQ].post(&mut guest.ram, &[(GUEST_BUFFERS + 0x1000, 112, false)]);
    guest.write(0x050, TRANSMITQ as u32);
    assert_eq!(take_frame(&mut guest), Some(first));
    assert_eq!(guest.queues[TRANSMITQ].used_idx(&guest.ram), 1);
    assert_eq!(take_frame(&mut guest), Some(second));
    assert_eq!(guest.queues[TRANSMITQ].used_idx(&guest.ram), 2);
    assert_eq!(take_frame(&mut guest), None);
}

#[test]
fn malformed_packets_are_returned_unsent_and_counted() {
    let mut guest = card();
    guest.ram.write_bytes(GUEST_BUFFERS, &[0; 4096]);
    let too_long = (NET_HDR_LEN + MAX_FRAME + 1) as u32;
    let too_short = (NET_HDR_LEN + MIN_FRAME - 1) as u32;
    guest.post_and_notify(TRANSMITQ, &[(GUEST_BUFFERS, too_long, false)]);
    guest.post_and_notify(TRANSMITQ, &[(GUEST_BUFFERS, too_short, false)]);
    guest.post_and_notify(
        TRANSMITQ,
        &[(GUEST_BUFFERS, 72, false), (GUEST_BUFFERS + 0x100, 8, true)],
    );
    // A header asking for a checksum offload that was never offered.
    guest.ram.write_bytes(GUEST_BUFFERS + 0x200, &[1]);
    guest.post_and_notify(TRANSMITQ, &[(GUEST_BUFFERS + 0x200, 72, false)]);
    assert_eq!(take_frame(&mut guest), None);
    let queue = &guest.queues[TRANSMITQ];
    assert_eq!(queue.used_idx(&guest.ram), 4);
    for i in 0..4 {
        assert_eq!(queue.used_entry(&guest.ram, i).1, 0);
    }
    assert_eq!(guest.dev.device().counters().tx_dropped, 4);
    assert_eq!(guest.dev.device().counters().sent, 0);
    assert_eq!(guest.dev.failure(), None);
    assert_eq!(guest.read(0x070) & 0x40, 0);
}

#[test]
fn a_transmit_buffer_outside_guest_ram_fails_the_device() {
    let mut guest = card();
    guest.post_and_notify(TRANSMITQ, &[(0x1000, 72, false)]);
    assert_eq!(take_frame(&mut guest), None);
    assert!(matches!(guest.dev.failure(), Some(QueueError::Memory(_))));
    assert_eq!(guest.read(0x070) & 0x40, 0x40, "DEVICE_NEEDS_RESET");
}

#[test]
fn a_delivered_frame_fills_one_receive_buffer_after_a_header() {
    let mut guest = card();
    let head = guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 1526, true)]);
    assert_eq!(guest.read(0x060), 0, "posting buffers uses none");
    let bytes = frame(MAX_FRAME);
    assert!(deliver_to(&mut guest, &bytes));
    let mut header = [0u8; NET_HDR_LEN];
    header[10] = 1;
    assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, NET_HDR_LEN), header);
    assert_eq!(
        guest
            .ram
            .bytes_at(GUEST_BUFFERS + NET_HDR_LEN as u64, MAX_FRAME),
        bytes
    );
    let queue = &guest.queues[RECEIVEQ];
    assert_eq!(
        queue.used_entry(&guest.ram, 0),
        (u32::from(head), (NET_HDR_LEN + MAX_FRAME) as u32)
    );
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    assert_eq!(guest.dev.device().counters().received, 1);
}

#[test]
fn a_receive_chain_may_split_the_header_from_the_frame() {
    let mut guest = card();
    guest.post_and_notify(
        RECEIVEQ,
        &[
            (GUEST_BUFFERS, 12, true),
            (GUEST_BUFFERS + 0x1000, 1514, true),
        ],
    );
    let bytes = frame(60);
    assert!(deliver_to(&mut guest, &bytes));
    assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 0x1000, 60), bytes);
    assert_eq!(guest.queues[RECEIVEQ].used_entry(&guest.ram, 0).1, 72);
}

#[test]
fn without_a_receive_buffer_the_frame_is_dropped_and_counted() {
    let mut guest = card();
    assert!(!deliver_to(&mut guest, &frame(60)));
    assert_eq!(guest.dev.device().counters().rx_dropped, 1);
    // A buffer posted later gets the next frame, not the lost one.
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 1526, true)]);
    assert_eq!(guest.queues[RECEIVEQ].used_idx(&guest.ram), 0);
    assert!(deliver_to(&mut guest, &frame(61)));
    assert_eq!(guest.queues[RECEIVEQ].used_entry(&guest.ram, 0).1, 73);
}

#[test]
fn a_card_whose_driver_is_not_ready_drops_frames() {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    assert!(!deliver_to(&mut guest, &frame(60)));
    assert_eq!(guest.dev.device().counters().rx_dropped, 1);
    assert_eq!(guest.dev.failure(), None);
}

#[test]
fn a_receive_buffer_too_small_is_returned_empty() {
    let mut guest = card();
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 40, true)]);
    assert!(!deliver_to(&mut guest, &frame(60)));
    assert_eq!(guest.queues[RECEIVEQ].used_entry(&guest.ram, 0).1, 0);
    assert_eq!(guest.dev.device().counters().rx_dropped, 1);
    assert_eq!(guest.dev.failure(), None);
}

#[test]
fn a_read_only_receive_buffer_fails_the_device() {
    let mut guest = card();
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 1526, false)]);
    assert!(!deliver_to(&mut guest, &frame(60)));
    assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
    assert_eq!(guest.read(0x070) & 0x40, 0x40);
}

#[test]
fn a_reset_forgets_a_notification_and_a_reset_card_sends_nothing() {
    let mut guest = card();
    let mut packet = std::vec![0u8; NET_HDR_LEN];
    packet.extend_from_slice(&frame(60));
    guest.ram.write_bytes(GUEST_BUFFERS, &packet);
    guest.post_and_notify(TRANSMITQ, &[(GUEST_BUFFERS, 72, false)]);
    guest.write(0x070, 0);
    assert!(!guest.dev.device_mut().take_tx_notification());
    assert_eq!(take_frame(&mut guest), None);
}

/// Guest RAM whose transmit queue always has one more packet, a bad one,
/// as if another vCPU kept posting them while the device works.
struct EndlessBadPackets {
    ram: crate::testing::FakeRam,
    avail_idx: u64,
    reads: core::cell::Cell<u16>,
}

impl crate::memory::GuestMemory for EndlessBadPackets {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), crate::memory::OutOfRange> {
        if addr == self.avail_idx && buf.len() == 2 {
            let idx = self.reads.get().wrapping_add(1);
            self.reads.set(idx);
            buf.copy_from_slice(&idx.to_le_bytes());
            return Ok(());
        }
        self.ram.read(addr, buf)
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), crate::memory::OutOfRange> {
        self.ram.write(addr, data)
    }
}

#[test]
fn a_guest_that_keeps_posting_bad_packets_cannot_hold_the_service() {
    let mut guest = card();
    // Descriptor 0: a packet too short to send, the head of every chain.
    let queue = &guest.queues[TRANSMITQ];
    queue.write_desc(&mut guest.ram, 0, GUEST_BUFFERS, 4, 0, 0);
    let avail_idx = queue.avail + 2;
    let ram = core::mem::replace(&mut guest.ram, crate::testing::FakeRam::new(0, 0));
    let mut memory = EndlessBadPackets {
        ram,
        avail_idx,
        reads: core::cell::Cell::new(0),
    };
    let mut env = crate::bus::DeviceEnv {
        vm: crate::testing::TEST_VM,
        memory: &mut memory,
        entropy: &mut guest.entropy,
        output: &mut guest.output,
        block: &mut guest.block,
    };
    let mut packet = Packet::new();
    assert!(!transmit(&mut guest.dev, &mut packet, &mut env));
    let counters = guest.dev.device().counters();
    assert_eq!(counters.tx_dropped, u64::from(QUEUE_SIZE));
    assert_eq!(guest.dev.failure(), None);
}

/// A card whose driver negotiated everything offered, with its three
/// queues (of 8 entries) ready.
pub(super) fn full_card() -> VirtioGuest<VirtioNet> {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    guest.bring_up_with(3, NET_FEATURES | VIRTIO_F_VERSION_1);
    guest
}

#[test]
fn with_mergeable_buffers_a_frame_spans_chains_and_says_how_many() {
    let mut guest = full_card();
    let heads: std::vec::Vec<u16> = (0..3)
        .map(|i| guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS + i * 0x1000, 512, true)]))
        .collect();
    let bytes = frame(MAX_FRAME);
    assert!(deliver_to(&mut guest, &bytes));
    let queue = &guest.queues[RECEIVEQ];
    assert_eq!(queue.used_idx(&guest.ram), 3);
    for (i, (&head, len)) in heads.iter().zip([512, 512, 502]).enumerate() {
        assert_eq!(
            queue.used_entry(&guest.ram, i as u16),
            (u32::from(head), len)
        );
    }
    let mut header = [0u8; NET_HDR_LEN];
    header[10] = 3;
    assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, NET_HDR_LEN), header);
    let mut got = guest.ram.bytes_at(GUEST_BUFFERS + NET_HDR_LEN as u64, 500);
    got.extend(guest.ram.bytes_at(GUEST_BUFFERS + 0x1000, 512));
    got.extend(guest.ram.bytes_at(GUEST_BUFFERS + 0x2000, 502));
    assert_eq!(got, bytes);
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    assert_eq!(guest.dev.device().counters().received, 1);
}

#[test]
fn with_mergeable_buffers_a_small_frame_takes_one_chain() {
    let mut guest = full_card();
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 1526, true)]);
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS + 0x1000, 1526, true)]);
    assert!(deliver_to(&mut guest, &frame(60)));
    let queue = &guest.queues[RECEIVEQ];
    assert_eq!(queue.used_idx(&guest.ram), 1);
    assert_eq!(queue.used_entry(&guest.ram, 0).1, 72);
    assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 10, 2), [1, 0]);
}

#[test]
fn with_mergeable_buffers_a_frame_too_big_for_the_posted_chains_takes_none() {
    let mut guest = full_card();
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 512, true)]);
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS + 0x1000, 512, true)]);
    assert!(!deliver_to(&mut guest, &frame(MAX_FRAME)));
    assert_eq!(guest.queues[RECEIVEQ].used_idx(&guest.ram), 0);
    assert_eq!(guest.read(0x060), 0, "nothing used, no interrupt");
    assert_eq!(guest.dev.device().counters().rx_dropped, 1);
    // The two chains are still the driver's to fill: with a third, the
    // next frame takes all three, from the first.
    let third = guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS + 0x2000, 512, true)]);
    assert!(deliver_to(&mut guest, &frame(MAX_FRAME)));
    let queue = &guest.queues[RECEIVEQ];
    assert_eq!(queue.used_idx(&guest.ram), 3);
    assert_eq!(queue.used_entry(&guest.ram, 0), (0, 512));
    assert_eq!(queue.used_entry(&guest.ram, 2), (u32::from(third), 502));
    assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 10, 2), [3, 0]);
}

#[test]
fn with_mergeable_buffers_a_read_only_receive_chain_fails_the_device() {
    let mut guest = full_card();
    guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 1526, false)]);
    assert!(!deliver_to(&mut guest, &frame(60)));
    assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
}

#[test]
fn the_transport_with_three_queues_is_kept_whole_in_one_record() {
    use crate::persist::{MAX_PAYLOAD, Persist};
    let mut guest = full_card();
    let mut saved = [0u8; MAX_PAYLOAD];
    let len = guest.dev.save(&mut saved);
    assert!(len > 0 && len <= MAX_PAYLOAD, "{len}");
    // A fresh card (a restarted service) takes it back: controlq too.
    let mut restored = VirtioGuest::new(VirtioNet::new(MAC));
    assert!(restored.dev.restore(&saved[..len]));
    restored.write(0x030, CTRLQ as u32);
    assert_eq!(restored.read(0x044), 1, "controlq ready");
    assert_eq!(restored.dev.driver_features(), guest.dev.driver_features());
    guest.write(0x030, CTRLQ as u32);
    assert_eq!(restored.read(0x080), guest.read(0x080));
}
