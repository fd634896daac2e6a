//! VMs with network cards on the service's switch: a frame one guest
//! transmits lands in the receive buffers of the VMs the switch sends it
//! to, with their interrupts raised, and nowhere else.
#![allow(
    clippy::cast_possible_truncation,
    reason = "the test driver splits 64-bit guest addresses into 32-bit register halves"
)]

use std::vec::Vec;

use ipc::devices::{DeviceKind, IrqEvent, Request, Response};
use ipc::{Error, Space, VmId, wire_name};

use super::*;
use crate::testing::{CountingEntropy, FakeRam, GuestQueue, Irqs, Lines, Rams};
use crate::virtio::VIRTIO_F_VERSION_1;
use crate::virtio::net::{
    CTRLQ, NET_FEATURES, NET_HDR_LEN, RECEIVEQ, TRANSMITQ, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
    mac_for,
};
use crate::virtio::net_ctrl::{VIRTIO_NET_OK, class};

const A: VmId = VmId(1);
const B: VmId = VmId(2);
const C: VmId = VmId(3);
const RAM: u64 = 0x8000_0000;
const NIC: u64 = 0x1000_4000;
const NIC_IRQ: u32 = 4;
/// Where each guest's transmit packets and receive buffers are.
const TX_BUF: u64 = RAM + 0x8000;
const RX_BUF: u64 = RAM + 0xc000;
const RX_BUF_LEN: u32 = 0x800;

impl Irqs {
    /// The level last reported for `vm`'s card.
    fn nic_level(&self, vm: VmId) -> bool {
        self.0.iter().rev().find_map(|event| match *event {
            IrqEvent::SetLevel {
                vm: v,
                irq: NIC_IRQ,
                asserted,
            } if v == vm => Some(asserted),
            _ => None,
        }) == Some(true)
    }
}

type Service = DeviceService<Lines, Irqs, Rams, CountingEntropy>;

/// A guest's virtio-net driver: its queues in its RAM, driven through
/// the service.
struct Driver {
    vm: VmId,
    rx: GuestQueue,
    tx: GuestQueue,
    /// controlq, when negotiated.
    ctrl: Option<GuestQueue>,
}

/// Where a driver's control queue and its command buffers are.
const CTRL_RING: u64 = RAM + 0x7000;
const CTRL_BUF: u64 = RAM + 0x7400;

fn ram(service: &mut Service, vm: VmId) -> &mut FakeRam {
    let rams = &mut service.memory_provider().0;
    &mut rams.iter_mut().find(|(id, _)| *id == vm).unwrap().1
}

fn write(service: &mut Service, vm: VmId, offset: u64, value: u32) {
    let response = service.handle(Request::Write {
        vm,
        space: Space::Mmio,
        addr: NIC + offset,
        size: 4,
        value: u64::from(value),
    });
    assert_eq!(response, Response::Ok);
}

fn read(service: &mut Service, vm: VmId, offset: u64) -> u32 {
    match service.handle(Request::Read {
        vm,
        space: Space::Mmio,
        addr: NIC + offset,
        size: 4,
    }) {
        Response::Value(v) => v as u32,
        other => panic!("{other:?}"),
    }
}

impl Driver {
    /// Adds `vm` with a card and brings the card up with MAC and STATUS.
    fn attach(service: &mut Service, vm: VmId, name: &str) -> Self {
        let features = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
        Self::attach_with(service, vm, name, features)
    }

    /// Adds `vm` with a card and brings the card up as Linux does, with
    /// `features` (and controlq when they have CTRL_VQ).
    fn attach_with(service: &mut Service, vm: VmId, name: &str, features: u64) -> Self {
        service
            .memory_provider()
            .0
            .push((vm, FakeRam::new(RAM, 0x1_0000)));
        let add = service.handle(Request::AddVm {
            vm,
            name: wire_name(name).unwrap(),
        });
        assert_eq!(add, Response::Ok);
        let attach = service.handle(Request::Attach {
            vm,
            device: DeviceKind::VirtioNet,
            space: Space::Mmio,
            base: NIC,
            irq: NIC_IRQ,
        });
        assert_eq!(attach, Response::Ok);
        write(service, vm, 0x70, 1 | 2);
        write(service, vm, 0x24, 0);
        write(service, vm, 0x20, features as u32);
        write(service, vm, 0x24, 1);
        write(service, vm, 0x20, (features >> 32) as u32);
        write(service, vm, 0x70, 1 | 2 | 8);
        assert_eq!(read(service, vm, 0x70) & 8, 8, "FEATURES_OK kept");
        let mut queues = [RECEIVEQ, TRANSMITQ].map(|index| {
            let queue = GuestQueue::new(RAM + index as u64 * 0x4000, 8);
            write(service, vm, 0x30, index as u32);
            write(service, vm, 0x38, 8);
            write(service, vm, 0x80, queue.desc as u32);
            write(service, vm, 0x90, queue.avail as u32);
            write(service, vm, 0xa0, queue.used as u32);
            write(service, vm, 0x44, 1);
            Some(queue)
        });
        let ctrl = (features & crate::virtio::net_ctrl::VIRTIO_NET_F_CTRL_VQ != 0).then(|| {
            let queue = GuestQueue {
                size: 8,
                desc: CTRL_RING,
                avail: CTRL_RING + 0x100,
                used: CTRL_RING + 0x200,
                next_desc: 0,
                avail_idx: 0,
            };
            write(service, vm, 0x30, CTRLQ as u32);
            write(service, vm, 0x38, 8);
            write(service, vm, 0x80, queue.desc as u32);
            write(service, vm, 0x90, queue.avail as u32);
            write(service, vm, 0xa0, queue.used as u32);
            write(service, vm, 0x44, 1);
            queue
        });
        write(service, vm, 0x70, 1 | 2 | 8 | 4);
        Self {
            vm,
            rx: queues[RECEIVEQ].take().unwrap(),
            tx: queues[TRANSMITQ].take().unwrap(),
            ctrl,
        }
    }

    /// Sends a control command; returns the card's ack.
    fn command(&mut self, service: &mut Service, class: u8, cmd: u8, data: &[u8]) -> u8 {
        let memory = ram(service, self.vm);
        let mut bytes = std::vec![class, cmd];
        bytes.extend_from_slice(data);
        memory.write_bytes(CTRL_BUF, &bytes);
        memory.write_bytes(CTRL_BUF + 0x200, &[0xee]);
        let queue = self.ctrl.as_mut().expect("controlq negotiated");
        let len = bytes.len() as u32;
        queue.post(
            memory,
            &[(CTRL_BUF, len, false), (CTRL_BUF + 0x200, 1, true)],
        );
        write(service, self.vm, 0x50, CTRLQ as u32);
        // The answer is there when the notification returns (Linux polls
        // for it); the used-buffer interrupt it raised is acknowledged.
        write(service, self.vm, 0x64, 1);
        ram(service, self.vm).bytes_at(CTRL_BUF + 0x200, 1)[0]
    }

    /// Posts `count` receive buffers and notifies receiveq0.
    fn post_rx(&mut self, service: &mut Service, count: u16) {
        for _ in 0..count {
            let addr = RX_BUF + u64::from(self.rx.avail_idx % 8) * u64::from(RX_BUF_LEN);
            self.rx
                .post(ram(service, self.vm), &[(addr, RX_BUF_LEN, true)]);
        }
        write(service, self.vm, 0x50, RECEIVEQ as u32);
    }

    /// Queues `frames` (each after a zero header, in one buffer) and
    /// notifies transmitq0.
    fn send(&mut self, service: &mut Service, frames: &[Vec<u8>]) {
        for frame in frames {
            let addr = TX_BUF + u64::from(self.tx.avail_idx % 8) * 0x800;
            let ram = ram(service, self.vm);
            ram.write_bytes(addr, &[0; NET_HDR_LEN]);
            ram.write_bytes(addr + NET_HDR_LEN as u64, frame);
            let len = (NET_HDR_LEN + frame.len()) as u32;
            self.tx.post(ram, &[(addr, len, false)]);
        }
        write(service, self.vm, 0x50, TRANSMITQ as u32);
    }

    /// The frames the card received so far, in order.
    fn received(&self, service: &mut Service) -> Vec<Vec<u8>> {
        let ram = ram(service, self.vm);
        (0..self.rx.used_idx(ram))
            .map(|i| {
                let (head, len) = self.rx.used_entry(ram, i);
                // Each chain is one descriptor; its address says where.
                let desc = self.rx.desc + u64::from(head) * 16;
                let mut addr = [0u8; 8];
                ram.read(desc, &mut addr).unwrap();
                let addr = u64::from_le_bytes(addr);
                let packet = ram.bytes_at(addr, len as usize);
                assert_eq!(packet[..NET_HDR_LEN], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
                packet[NET_HDR_LEN..].to_vec()
            })
            .collect()
    }
}

/// An ARP request from `from` (who has 10.0.0.2?).
fn arp_request(from: VmId) -> Vec<u8> {
    let mut frame = std::vec![0xff; 6];
    frame.extend_from_slice(&mac_for(from));
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac_for(from));
    frame.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    frame
}

/// A unicast IPv4 frame from `from` to `to`, `tag` in its payload.
fn unicast(from: VmId, to: VmId, tag: u8) -> Vec<u8> {
    let mut frame = mac_for(to).to_vec();
    frame.extend_from_slice(&mac_for(from));
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend(std::iter::repeat_n(tag, 46));
    frame
}

fn three_vms() -> (Service, [Driver; 3]) {
    let mut service = Service::new(
        Lines::default(),
        Irqs::default(),
        Rams::default(),
        CountingEntropy::default(),
    );
    let mut drivers =
        [(A, "a"), (B, "b"), (C, "c")].map(|(vm, name)| Driver::attach(&mut service, vm, name));
    for driver in &mut drivers {
        driver.post_rx(&mut service, 4);
    }
    (service, drivers)
}

#[test]
fn an_arp_broadcast_reaches_every_other_vm_and_the_reply_only_the_asker() {
    let (mut service, [mut a, mut b, c]) = three_vms();
    let request = arp_request(A);
    a.send(&mut service, core::slice::from_ref(&request));
    assert_eq!(b.received(&mut service), core::slice::from_ref(&request));
    assert_eq!(c.received(&mut service), [request]);
    assert!(
        a.received(&mut service).is_empty(),
        "not back to the sender"
    );
    assert_eq!(a.tx.used_idx(ram(&mut service, A)), 1);
    assert!(service.irq_sink().nic_level(B));
    assert!(service.irq_sink().nic_level(C));

    let reply = unicast(B, A, 0x42);
    b.send(&mut service, core::slice::from_ref(&reply));
    assert_eq!(a.received(&mut service), [reply]);
    assert!(service.irq_sink().nic_level(A));
    assert_eq!(
        c.received(&mut service).len(),
        1,
        "C saw only the broadcast"
    );

    let counters = service.net_counters(A).unwrap();
    assert_eq!((counters.sent, counters.received), (1, 1));
    // The same figures as the vm-manager asks for them.
    assert_eq!(
        service.handle(Request::NetCounters { vm: A }),
        Response::Net(counters)
    );
    assert_eq!(
        service.handle(Request::NetCounters { vm: VmId(9) }),
        Response::Err(Error::UnknownVm)
    );
}

#[test]
fn every_frame_of_one_notification_is_switched_in_order() {
    let (mut service, [mut a, b, c]) = three_vms();
    a.send(&mut service, &[arp_request(A)]);
    let frames: Vec<Vec<u8>> = (1..=3).map(|tag| unicast(A, B, tag)).collect();
    a.send(&mut service, &frames);
    // B's address is unknown until B sends: these flood too.
    assert_eq!(b.received(&mut service)[1..], frames[..]);
    assert_eq!(c.received(&mut service).len(), 4);
    assert_eq!(service.net_counters(A).unwrap().sent, 4);
}

#[test]
fn frames_for_a_vm_without_receive_buffers_are_dropped_and_counted() {
    let (mut service, [mut a, mut b, _c]) = three_vms();
    b.send(&mut service, &[arp_request(B)]);
    // A's four buffers take four frames; the fifth and sixth are lost.
    let frames: Vec<Vec<u8>> = (1..=6).map(|tag| unicast(B, A, tag)).collect();
    b.send(&mut service, &frames);
    let got = a.received(&mut service);
    assert_eq!(got.len(), 4);
    assert_eq!(got[1..], frames[..3]);
    assert_eq!(service.net_counters(A).unwrap().rx_dropped, 3);
    // Once the guest posts buffers again, frames arrive again.
    a.post_rx(&mut service, 1);
    b.send(&mut service, &[unicast(B, A, 9)]);
    assert_eq!(a.received(&mut service).last(), Some(&unicast(B, A, 9)));
}

#[test]
fn a_malformed_transmit_chain_fails_only_the_senders_card() {
    let (mut service, [mut a, b, c]) = three_vms();
    // A descriptor whose buffer lies outside A's RAM.
    let ram_a = ram(&mut service, A);
    a.tx.post(ram_a, &[(0x1000, 72, false)]);
    write(&mut service, A, 0x50, TRANSMITQ as u32);
    assert_eq!(read(&mut service, A, 0x70) & 0x40, 0x40, "NEEDS_RESET");
    // A descriptor index beyond the queue.
    let ram_b = ram(&mut service, B);
    let mut tx = GuestQueue::new(b.tx.desc, 8);
    tx.avail_idx = 0;
    tx.publish(ram_b, 200);
    write(&mut service, B, 0x50, TRANSMITQ as u32);
    assert_eq!(read(&mut service, B, 0x70) & 0x40, 0x40, "NEEDS_RESET");
    assert!(c.received(&mut service).is_empty());
    // C's card still works, and a failed card drops what is sent to it.
    let mut c = c;
    c.send(&mut service, &[arp_request(C)]);
    assert_eq!(read(&mut service, C, 0x70) & 0x40, 0);
    assert_eq!(service.net_counters(C).unwrap().sent, 1);
    assert_eq!(service.net_counters(A).unwrap().rx_dropped, 1);
    assert!(a.received(&mut service).is_empty());
}

#[test]
fn a_removed_vm_is_forgotten_by_the_switch() {
    let (mut service, [mut a, mut b, c]) = three_vms();
    b.send(&mut service, &[arp_request(B)]);
    assert_eq!(c.received(&mut service).len(), 1);
    a.send(&mut service, &[unicast(A, B, 1)]);
    assert_eq!(c.received(&mut service).len(), 1, "B was known");
    assert_eq!(service.handle(Request::RemoveVm { vm: B }), Response::Ok);
    a.send(&mut service, &[unicast(A, B, 2)]);
    assert_eq!(
        c.received(&mut service).last(),
        Some(&unicast(A, B, 2)),
        "flooded again"
    );
}

#[test]
fn a_vm_without_a_card_is_no_port_and_a_detached_card_is_forgotten() {
    let (mut service, [mut a, mut b, c]) = three_vms();
    // A fourth VM with no card is no port: a flood passes it by.
    let add = service.handle(Request::AddVm {
        vm: VmId(4),
        name: wire_name("d").unwrap(),
    });
    assert_eq!(add, Response::Ok);
    b.send(&mut service, &[arp_request(B)]);
    assert_eq!(service.net_counters(VmId(4)), Err(Error::NoDevice));
    // B's card goes: its address is forgotten, so A's frames for it flood.
    let detach = service.handle(Request::Detach {
        vm: B,
        space: Space::Mmio,
        base: NIC,
    });
    assert_eq!(detach, Response::Ok);
    a.send(&mut service, &[unicast(A, B, 3)]);
    assert_eq!(c.received(&mut service).last(), Some(&unicast(A, B, 3)));
}

#[test]
fn a_vm_reset_comes_back_on_the_switch_with_a_fresh_card() {
    let (mut service, [mut a, _, _]) = three_vms();
    // A reset: the vm-manager removes the VM's devices and adds them again.
    assert_eq!(service.handle(Request::RemoveVm { vm: B }), Response::Ok);
    service.memory_provider().0.retain(|(vm, _)| *vm != B);
    let mut b = Driver::attach(&mut service, B, "b");
    b.post_rx(&mut service, 2);
    a.send(&mut service, &[arp_request(A)]);
    assert_eq!(b.received(&mut service), [arp_request(A)]);
    b.send(&mut service, &[unicast(B, A, 7)]);
    assert_eq!(a.received(&mut service).last(), Some(&unicast(B, A, 7)));
    assert_eq!(service.net_counters(B).unwrap().sent, 1);
}

/// Three VMs whose cards negotiated everything offered (as Linux does),
/// each with receive buffers posted.
fn three_full_vms() -> (Service, [Driver; 3]) {
    let mut service = Service::new(
        Lines::default(),
        Irqs::default(),
        Rams::default(),
        CountingEntropy::default(),
    );
    let features = VIRTIO_F_VERSION_1 | NET_FEATURES;
    let mut drivers = [(A, "a"), (B, "b"), (C, "c")]
        .map(|(vm, name)| Driver::attach_with(&mut service, vm, name, features));
    for driver in &mut drivers {
        driver.post_rx(&mut service, 4);
    }
    (service, drivers)
}

/// A frame from `from` to `dst`, `tag` in its payload, 802.1Q-tagged
/// with `vid` when given.
fn frame_to(from: VmId, dst: [u8; 6], vid: Option<u16>, tag: u8) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&mac_for(from));
    if let Some(vid) = vid {
        frame.extend_from_slice(&[0x81, 0x00]);
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend(std::iter::repeat_n(tag, 46));
    frame
}

#[test]
fn a_card_out_of_promiscuous_mode_gets_only_its_own_frames_from_the_switch() {
    let (mut service, [mut a, b, mut c]) = three_full_vms();
    assert_eq!(
        c.command(&mut service, class::RX, class::RX_PROMISC, &[0]),
        VIRTIO_NET_OK
    );
    // For B, whom the switch has not seen: flooded, and C refuses it.
    let for_b = frame_to(A, mac_for(B), None, 1);
    a.send(&mut service, core::slice::from_ref(&for_b));
    assert_eq!(b.received(&mut service), core::slice::from_ref(&for_b));
    assert!(c.received(&mut service).is_empty());
    assert!(
        !service.irq_sink().nic_level(C),
        "nothing for C, no interrupt"
    );
    // Broadcast and C's own address still reach it.
    let broadcast = frame_to(A, [0xff; 6], None, 2);
    let for_c = frame_to(A, mac_for(C), None, 3);
    a.send(&mut service, &[broadcast.clone(), for_c.clone()]);
    assert_eq!(c.received(&mut service), [broadcast, for_c]);
}

#[test]
fn a_card_given_a_new_address_takes_frames_for_it_and_the_switch_learns_it() {
    let (mut service, [mut a, b, mut c]) = three_full_vms();
    c.command(&mut service, class::RX, class::RX_PROMISC, &[0]);
    let new = [0x02, 0, 0, 0, 0, 0x42];
    assert_eq!(
        c.command(&mut service, class::MAC, class::MAC_ADDR_SET, &new),
        VIRTIO_NET_OK
    );
    let old_mac = frame_to(A, mac_for(C), None, 1);
    let new_mac = frame_to(A, new, None, 2);
    a.send(&mut service, &[old_mac.clone(), new_mac.clone()]);
    assert_eq!(c.received(&mut service), core::slice::from_ref(&new_mac));
    // C speaks from its new address: the switch sends it only to C.
    let mut from_c = frame_to(C, mac_for(A), None, 3);
    from_c[6..12].copy_from_slice(&new);
    c.send(&mut service, &[from_c]);
    let again = frame_to(A, new, None, 4);
    a.send(&mut service, core::slice::from_ref(&again));
    assert_eq!(c.received(&mut service), [new_mac, again]);
    let b_got = b.received(&mut service);
    assert_eq!(b_got, [old_mac, frame_to(A, new, None, 2)], "B promiscuous");
}

#[test]
fn a_card_with_a_vlan_filter_gets_tagged_frames_only_of_its_vlans() {
    let (mut service, [mut a, b, mut c]) = three_full_vms();
    c.command(&mut service, class::RX, class::RX_PROMISC, &[0]);
    let vlan7 = frame_to(A, [0xff; 6], Some(7), 1);
    let untagged = frame_to(A, [0xff; 6], None, 2);
    a.send(&mut service, &[vlan7.clone(), untagged.clone()]);
    assert_eq!(c.received(&mut service), core::slice::from_ref(&untagged));
    assert_eq!(b.received(&mut service).len(), 2, "B promiscuous");
    assert_eq!(
        c.command(
            &mut service,
            class::VLAN,
            class::VLAN_ADD,
            &7u16.to_le_bytes()
        ),
        VIRTIO_NET_OK
    );
    a.send(&mut service, core::slice::from_ref(&vlan7));
    assert_eq!(c.received(&mut service), [untagged, vlan7]);
}

#[test]
fn a_card_with_a_multicast_table_gets_only_its_groups() {
    let (mut service, [mut a, _b, mut c]) = three_full_vms();
    c.command(&mut service, class::RX, class::RX_PROMISC, &[0]);
    let group = [0x33, 0x33, 0, 0, 0, 1];
    let mut table = 0u32.to_le_bytes().to_vec();
    table.extend_from_slice(&1u32.to_le_bytes());
    table.extend_from_slice(&group);
    assert_eq!(
        c.command(&mut service, class::MAC, class::MAC_TABLE_SET, &table),
        VIRTIO_NET_OK
    );
    let joined = frame_to(A, group, None, 1);
    let other = frame_to(A, [0x33, 0x33, 0, 0, 0, 2], None, 2);
    a.send(&mut service, &[joined.clone(), other]);
    assert_eq!(c.received(&mut service), [joined]);
}
