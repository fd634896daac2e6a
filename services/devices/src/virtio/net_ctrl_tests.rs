#![allow(
    clippy::cast_possible_truncation,
    reason = "test commands are built from small known values"
)]

use super::*;
use crate::testing::{GUEST_BUFFERS, VirtioGuest};
use crate::virtio::VIRTIO_F_VERSION_1;
use crate::virtio::net::{CTRLQ, NET_FEATURES, VIRTIO_NET_S_LINK_UP, VirtioNet};

const MAC: [u8; 6] = [0x02, 0x4d, 0x49, 0x43, 0x41, 0x07];
const OTHER: [u8; 6] = [0x02, 0x4d, 0x49, 0x43, 0x41, 0x09];
const GROUP: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const BROADCAST: [u8; 6] = [0xff; 6];

fn card_with(features: u64) -> VirtioGuest<VirtioNet> {
    let mut guest = VirtioGuest::new(VirtioNet::new(MAC));
    guest.bring_up_with(3, features | VIRTIO_F_VERSION_1);
    guest
}

fn card() -> VirtioGuest<VirtioNet> {
    card_with(NET_FEATURES)
}

/// Sends one command as Linux does (header, data if any, a one-byte ack
/// buffer) and returns the ack, checking the device wrote one byte.
fn command(guest: &mut VirtioGuest<VirtioNet>, class: u8, cmd: u8, data: &[u8]) -> u8 {
    let header = GUEST_BUFFERS;
    let payload = GUEST_BUFFERS + 0x100;
    let ack = GUEST_BUFFERS + 0x800;
    guest.ram.write_bytes(header, &[class, cmd]);
    guest.ram.write_bytes(payload, data);
    guest.ram.write_bytes(ack, &[0xee]);
    let mut bufs = std::vec![(header, 2, false)];
    if !data.is_empty() {
        bufs.push((payload, data.len() as u32, false));
    }
    bufs.push((ack, 1, true));
    let used_before = guest.queues[CTRLQ].used_idx(&guest.ram);
    let head = guest.post_and_notify(CTRLQ, &bufs);
    let queue = &guest.queues[CTRLQ];
    assert_eq!(queue.used_idx(&guest.ram), used_before.wrapping_add(1));
    assert_eq!(
        queue.used_entry(&guest.ram, used_before),
        (u32::from(head), 1)
    );
    guest.ram.bytes_at(ack, 1)[0]
}

/// A frame to `dst` (an ARP frame, or an 802.1Q-tagged one with `vid`).
fn frame_to(dst: [u8; 6], vid: Option<u16>) -> std::vec::Vec<u8> {
    let mut bytes = dst.to_vec();
    bytes.extend_from_slice(&OTHER);
    if let Some(vid) = vid {
        bytes.extend_from_slice(&[0x81, 0x00]);
        bytes.extend_from_slice(&vid.to_be_bytes());
    }
    bytes.extend_from_slice(&[0x08, 0x06]);
    bytes.extend_from_slice(&[0; 46]);
    bytes
}

fn takes(guest: &VirtioGuest<VirtioNet>, dst: [u8; 6]) -> bool {
    guest.dev.device().accepts(&frame_to(dst, None))
}

fn mac_table(unicast: &[[u8; 6]], multicast: &[[u8; 6]]) -> std::vec::Vec<u8> {
    let mut data = (unicast.len() as u32).to_le_bytes().to_vec();
    unicast.iter().for_each(|m| data.extend_from_slice(m));
    data.extend_from_slice(&(multicast.len() as u32).to_le_bytes());
    multicast.iter().for_each(|m| data.extend_from_slice(m));
    data
}

#[test]
fn after_a_reset_the_card_takes_every_frame_until_the_driver_says_otherwise() {
    let guest = card();
    assert!(guest.dev.device().filter().promiscuous());
    for dst in [MAC, OTHER, GROUP, BROADCAST] {
        assert!(takes(&guest, dst));
    }
    assert!(guest.dev.device().accepts(&frame_to(MAC, Some(5))));
}

#[test]
fn promiscuous_off_the_card_takes_its_own_address_broadcast_and_its_groups() {
    let mut guest = card();
    assert_eq!(
        command(&mut guest, class::RX, class::RX_PROMISC, &[0]),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, MAC));
    assert!(takes(&guest, BROADCAST));
    assert!(!takes(&guest, OTHER));
    assert!(!takes(&guest, GROUP), "not in the (empty) table");
    assert_eq!(
        command(&mut guest, class::RX, class::RX_ALLMULTI, &[1]),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, GROUP));
    assert_eq!(
        command(&mut guest, class::RX, class::RX_PROMISC, &[1]),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, OTHER));
}

#[test]
fn the_extra_rx_modes_refuse_and_take_what_they_say() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    command(&mut guest, class::RX, class::RX_ALLMULTI, &[1]);
    assert_eq!(
        command(&mut guest, class::RX, class::RX_NOBCAST, &[1]),
        VIRTIO_NET_OK
    );
    assert!(!takes(&guest, BROADCAST));
    assert!(takes(&guest, GROUP));
    assert_eq!(
        command(&mut guest, class::RX, class::RX_NOMULTI, &[1]),
        VIRTIO_NET_OK
    );
    assert!(!takes(&guest, GROUP));
    assert_eq!(
        command(&mut guest, class::RX, class::RX_ALLUNI, &[1]),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, OTHER));
    assert_eq!(
        command(&mut guest, class::RX, class::RX_NOUNI, &[1]),
        VIRTIO_NET_OK
    );
    assert!(!takes(&guest, OTHER));
    assert!(!takes(&guest, MAC));
}

#[test]
fn a_malformed_rx_command_is_refused_and_changes_nothing() {
    let mut guest = card();
    assert_eq!(
        command(&mut guest, class::RX, class::RX_PROMISC, &[]),
        VIRTIO_NET_ERR
    );
    assert_eq!(
        command(&mut guest, class::RX, class::RX_PROMISC, &[0, 0]),
        VIRTIO_NET_ERR
    );
    assert_eq!(command(&mut guest, class::RX, 6, &[0]), VIRTIO_NET_ERR);
    assert!(guest.dev.device().filter().promiscuous());
    assert_eq!(
        command(&mut guest, 9, 0, &[0]),
        VIRTIO_NET_ERR,
        "no such class"
    );
    assert_eq!(guest.dev.failure(), None);
}

#[test]
fn a_command_of_a_feature_not_negotiated_is_refused() {
    let mut guest = card_with(VIRTIO_NET_F_CTRL_VQ);
    assert_eq!(
        command(&mut guest, class::RX, class::RX_PROMISC, &[0]),
        VIRTIO_NET_ERR
    );
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_ADDR_SET, &OTHER),
        VIRTIO_NET_ERR
    );
    assert_eq!(
        command(
            &mut guest,
            class::VLAN,
            class::VLAN_ADD,
            &5u16.to_le_bytes()
        ),
        VIRTIO_NET_ERR
    );
    assert_eq!(
        command(&mut guest, class::ANNOUNCE, class::ANNOUNCE_ACK, &[]),
        VIRTIO_NET_ERR
    );
    assert_eq!(
        command(
            &mut guest,
            class::GUEST_OFFLOADS,
            class::GUEST_OFFLOADS_SET,
            &[0; 8]
        ),
        VIRTIO_NET_ERR
    );
    assert!(guest.dev.device().filter().promiscuous());
    assert_eq!(guest.dev.device().mac(), MAC);
    // Without CTRL_VLAN every VLAN passes, promiscuous or not.
    let mut guest = card_with(VIRTIO_NET_F_CTRL_VQ | VIRTIO_NET_F_CTRL_RX);
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    assert!(guest.dev.device().accepts(&frame_to(MAC, Some(5))));
}

#[test]
fn the_mac_table_adds_unicast_and_multicast_addresses() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let data = mac_table(&[OTHER], &[GROUP]);
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_TABLE_SET, &data),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, OTHER));
    assert!(takes(&guest, GROUP));
    assert!(takes(&guest, MAC));
    assert!(!takes(&guest, [0x33, 0x33, 0, 0, 0, 2]));
    assert!(!takes(&guest, [0x02, 0, 0, 0, 0, 1]));
    // An empty table takes them away.
    let data = mac_table(&[], &[]);
    command(&mut guest, class::MAC, class::MAC_TABLE_SET, &data);
    assert!(!takes(&guest, OTHER));
    assert!(!takes(&guest, GROUP));
}

#[test]
fn a_mac_table_too_big_takes_every_address_of_its_kind() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let groups: std::vec::Vec<[u8; 6]> = (0..=MAC_TABLE_ENTRIES as u8)
        .map(|i| [0x33, 0x33, 0, 0, 1, i])
        .collect();
    let data = mac_table(&[], &groups);
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_TABLE_SET, &data),
        VIRTIO_NET_OK
    );
    assert!(takes(&guest, [0x01, 0, 0x5e, 0, 0, 1]));
    assert!(!takes(&guest, OTHER), "unicast unchanged");
}

#[test]
fn a_malformed_mac_table_is_refused_and_the_old_one_kept() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let good = mac_table(&[OTHER], &[GROUP]);
    command(&mut guest, class::MAC, class::MAC_TABLE_SET, &good);
    let mut long = good.clone();
    long.push(0);
    let mut lying = mac_table(&[], &[GROUP]);
    lying[0] = 200; // 200 unicast addresses, in 16 bytes
    for data in [&good[..3], &good[..good.len() - 1], &long[..], &lying[..]] {
        assert_eq!(
            command(&mut guest, class::MAC, class::MAC_TABLE_SET, data),
            VIRTIO_NET_ERR,
            "{data:?}"
        );
    }
    assert!(takes(&guest, OTHER));
    assert!(takes(&guest, GROUP));
}

#[test]
fn setting_the_address_changes_the_config_space_and_what_the_card_takes() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_ADDR_SET, &OTHER),
        VIRTIO_NET_OK
    );
    let config: std::vec::Vec<u8> = (0..6)
        .map(|i| guest.read_sized(0x100 + i, crate::bus::AccessSize::Byte) as u8)
        .collect();
    assert_eq!(config, OTHER);
    assert_eq!(
        guest.read_sized(0x106, crate::bus::AccessSize::Half),
        u64::from(VIRTIO_NET_S_LINK_UP)
    );
    assert!(takes(&guest, OTHER));
    assert!(!takes(&guest, MAC));
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_ADDR_SET, &MAC[..5]),
        VIRTIO_NET_ERR
    );
    assert_eq!(guest.dev.device().mac(), OTHER);
    // A device reset gives the card its own address back, promiscuous.
    guest.write(0x070, 0);
    assert_eq!(guest.dev.device().mac(), MAC);
    assert!(guest.dev.device().filter().promiscuous());
}

#[test]
fn tagged_frames_pass_only_for_vlans_the_driver_added() {
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let tagged =
        |guest: &VirtioGuest<VirtioNet>, vid| guest.dev.device().accepts(&frame_to(MAC, Some(vid)));
    assert!(!tagged(&guest, 5));
    assert!(takes(&guest, MAC), "untagged frames always pass");
    let add = |guest: &mut VirtioGuest<VirtioNet>, cmd, vid: u16| {
        command(guest, class::VLAN, cmd, &vid.to_le_bytes())
    };
    assert_eq!(add(&mut guest, class::VLAN_ADD, 5), VIRTIO_NET_OK);
    assert!(tagged(&guest, 5));
    assert!(
        tagged(&guest, 5 | 0x2000),
        "the priority bits are not the ID"
    );
    assert!(!tagged(&guest, 6));
    assert_eq!(add(&mut guest, class::VLAN_DEL, 5), VIRTIO_NET_OK);
    assert!(!tagged(&guest, 5));
    assert_eq!(add(&mut guest, class::VLAN_ADD, 4096), VIRTIO_NET_ERR);
    assert_eq!(add(&mut guest, 2, 5), VIRTIO_NET_ERR, "no such command");
    assert_eq!(
        command(&mut guest, class::VLAN, class::VLAN_ADD, &[5]),
        VIRTIO_NET_ERR
    );
    assert!(!tagged(&guest, 5));
    // More VLANs than the list holds: every VLAN passes.
    for vid in 0..=VLAN_ENTRIES as u16 {
        assert_eq!(add(&mut guest, class::VLAN_ADD, 100 + vid), VIRTIO_NET_OK);
    }
    assert!(tagged(&guest, 7));
}

#[test]
fn announce_ack_and_guest_offloads_answer_as_the_spec_says() {
    let mut guest = card();
    assert_eq!(
        command(&mut guest, class::ANNOUNCE, class::ANNOUNCE_ACK, &[]),
        VIRTIO_NET_OK
    );
    assert_eq!(guest.dev.device().status(), VIRTIO_NET_S_LINK_UP);
    assert_eq!(
        command(&mut guest, class::ANNOUNCE, class::ANNOUNCE_ACK, &[0]),
        VIRTIO_NET_ERR
    );
    assert_eq!(command(&mut guest, class::ANNOUNCE, 1, &[]), VIRTIO_NET_ERR);
    let set = |guest: &mut VirtioGuest<VirtioNet>, data: &[u8]| {
        command(
            guest,
            class::GUEST_OFFLOADS,
            class::GUEST_OFFLOADS_SET,
            data,
        )
    };
    assert_eq!(set(&mut guest, &0u64.to_le_bytes()), VIRTIO_NET_OK);
    // GUEST_CSUM was not negotiated (nor offered): it cannot be turned on.
    assert_eq!(set(&mut guest, &2u64.to_le_bytes()), VIRTIO_NET_ERR);
    assert_eq!(set(&mut guest, &[0; 4]), VIRTIO_NET_ERR);
    assert_eq!(guest.dev.device().guest_offloads(), 0);
}

#[test]
fn a_command_without_its_class_is_refused_and_one_without_an_ack_fails_the_device() {
    let mut guest = card();
    let ack = GUEST_BUFFERS + 0x800;
    guest.ram.write_bytes(GUEST_BUFFERS, &[class::RX]);
    guest.post_and_notify(CTRLQ, &[(GUEST_BUFFERS, 1, false), (ack, 1, true)]);
    assert_eq!(guest.ram.bytes_at(ack, 1)[0], VIRTIO_NET_ERR);
    guest
        .ram
        .write_bytes(GUEST_BUFFERS, &[class::RX, class::RX_PROMISC, 0]);
    guest.post_and_notify(CTRLQ, &[(GUEST_BUFFERS, 3, false)]);
    assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
    assert_eq!(guest.read(0x070) & 0x40, 0x40, "DEVICE_NEEDS_RESET");
    assert!(guest.dev.device().filter().promiscuous(), "not run");
}

#[test]
fn commands_posted_together_are_all_answered_in_order() {
    let mut guest = card();
    let bufs = |n: u64| {
        let at = GUEST_BUFFERS + n * 0x100;
        [(at, 3, false), (at + 0x80, 1, true)]
    };
    for (n, cmd) in [(0u64, class::RX_PROMISC), (1, class::RX_ALLMULTI)] {
        guest
            .ram
            .write_bytes(GUEST_BUFFERS + n * 0x100, &[class::RX, cmd, 0]);
    }
    guest.ram.write_bytes(GUEST_BUFFERS + 0x200, &[7, 0, 0]);
    for n in 0..3 {
        guest.queues[CTRLQ].post(&mut guest.ram, &bufs(n));
    }
    guest.write(0x050, CTRLQ as u32);
    assert_eq!(guest.queues[CTRLQ].used_idx(&guest.ram), 3);
    let acks: std::vec::Vec<u8> = (0..3)
        .map(|n| guest.ram.bytes_at(GUEST_BUFFERS + n * 0x100 + 0x80, 1)[0])
        .collect();
    assert_eq!(acks, [VIRTIO_NET_OK, VIRTIO_NET_OK, VIRTIO_NET_ERR]);
    assert!(!guest.dev.device().filter().promiscuous());
}

#[test]
fn the_address_and_filter_outlive_a_restart_in_one_record() {
    use crate::persist::{MAX_PAYLOAD, Persist};
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    command(&mut guest, class::RX, class::RX_NOBCAST, &[1]);
    command(&mut guest, class::MAC, class::MAC_ADDR_SET, &OTHER);
    command(
        &mut guest,
        class::VLAN,
        class::VLAN_ADD,
        &5u16.to_le_bytes(),
    );
    // A full table: the biggest record.
    let groups: std::vec::Vec<[u8; 6]> = (0..MAC_TABLE_ENTRIES as u8)
        .map(|i| [0x33, 0x33, 0, 0, 1, i])
        .collect();
    let data = mac_table(&[], &groups);
    assert_eq!(
        command(&mut guest, class::MAC, class::MAC_TABLE_SET, &data),
        VIRTIO_NET_OK
    );
    let mut saved = [0u8; MAX_PAYLOAD];
    let len = guest.dev.save(&mut saved);
    assert!(len > 0 && len <= MAX_PAYLOAD, "{len}");

    let mut restored = VirtioGuest::new(VirtioNet::new(MAC));
    assert!(restored.dev.restore(&saved[..len]));
    assert_eq!(restored.dev.device().mac(), OTHER);
    let config: std::vec::Vec<u8> = (0..6)
        .map(|i| restored.read_sized(0x100 + i, crate::bus::AccessSize::Byte) as u8)
        .collect();
    assert_eq!(config, OTHER);
    assert!(!restored.dev.device().filter().promiscuous());
    assert!(takes(&restored, OTHER));
    assert!(!takes(&restored, MAC));
    assert!(!takes(&restored, BROADCAST), "NOBCAST kept");
    assert!(takes(&restored, groups[15]));
    assert!(!takes(&restored, GROUP));
    // The VLAN list is not kept: every VLAN passes rather than none.
    assert!(restored.dev.device().accepts(&frame_to(OTHER, Some(5))));
    assert!(restored.dev.device().accepts(&frame_to(OTHER, Some(6))));
}

#[test]
fn a_restored_card_without_vlans_still_filters_tagged_frames() {
    use crate::persist::{MAX_PAYLOAD, Persist};
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let mut saved = [0u8; MAX_PAYLOAD];
    let len = guest.dev.save(&mut saved);
    let mut restored = VirtioGuest::new(VirtioNet::new(MAC));
    assert!(restored.dev.restore(&saved[..len]));
    assert!(!restored.dev.device().accepts(&frame_to(MAC, Some(5))));
    assert!(takes(&restored, MAC));
}

#[test]
fn a_record_whose_filter_does_not_decode_is_refused_whole() {
    use crate::persist::{MAX_PAYLOAD, Persist};
    let mut guest = card();
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    let mut saved = [0u8; MAX_PAYLOAD];
    let len = guest.dev.save(&mut saved);
    for bad in [&saved[..len - 1], &saved[..len + 1]] {
        let mut restored = VirtioGuest::new(VirtioNet::new(MAC));
        assert!(!restored.dev.restore(bad));
        assert_eq!(restored.dev.status(), 0, "nothing taken");
    }
    // A MAC table longer than the card's.
    let mut lying = saved;
    lying[len - 2] = MAC_TABLE_ENTRIES as u8 + 1;
    let mut restored = VirtioGuest::new(VirtioNet::new(MAC));
    assert!(!restored.dev.restore(&lying[..len]));
    assert_eq!(restored.dev.status(), 0);
}

#[test]
fn only_a_notification_that_ran_a_command_keeps_the_record_again() {
    use crate::persist::Persist;
    let mut guest = card();
    assert!(!guest.dev.write_persists(0x050), "nothing yet");
    command(&mut guest, class::RX, class::RX_PROMISC, &[0]);
    assert!(guest.dev.write_persists(0x050));
    command(&mut guest, class::RX, 9, &[0]);
    assert!(
        !guest.dev.write_persists(0x050),
        "a refused command changes nothing"
    );
    guest.write(0x050, crate::virtio::net::TRANSMITQ as u32);
    assert!(!guest.dev.write_persists(0x050));
    assert!(guest.dev.write_persists(0x070));
    assert!(!guest.dev.write_persists(0x064));
}
