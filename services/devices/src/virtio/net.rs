//! virtio-net (device ID 1, virtio 1.2 section 5.1): one Ethernet port on
//! the service's virtual switch ([`crate::switch`]). receiveq0 (index 0)
//! takes frames the switch delivers, transmitq0 (index 1) gives the
//! guest's frames to the switch.
//!
//! Offered: what QEMU's `virtio-net-device` on its user network
//! negotiates with Linux. `VIRTIO_NET_F_MAC` (the address is
//! `02:4d:49:43:41:NN`, a locally administered unicast address, "MICA" in
//! ASCII then NN, the low byte of the VM's id, so every VM's differs),
//! `VIRTIO_NET_F_STATUS` (the link is always up), `VIRTIO_NET_F_MRG_RXBUF`
//! (a received packet may span several receive chains), and the control
//! virtqueue (controlq, index 2) with `CTRL_RX`, `CTRL_VLAN`,
//! `CTRL_MAC_ADDR`, `GUEST_ANNOUNCE` and `CTRL_GUEST_OFFLOADS`
//! ([`super::net_ctrl`]: its commands, and the receive filter they set,
//! which [`deliver`] applies). No checksum or segmentation offloads, no
//! multiqueue: each packet is a 12-byte `virtio_net_hdr_v1` (VERSION_1)
//! followed by one whole Ethernet frame of at most [`MAX_FRAME`] bytes
//! (no FCS).
//!
//! Transmit: a notification of transmitq0 tells the service, which takes
//! the frames one at a time into its own buffer ([`transmit`]) and hands
//! each to the switch. A frame of the wrong size, with a header asking for an offload
//! never offered, or in a chain with a device-writable buffer, is
//! returned to the driver unsent (used length 0) and counted; a chain
//! that breaks the virtqueue rules (bad index, address outside RAM, a
//! loop) fails the device (DEVICE_NEEDS_RESET) as in the other models.
//! Chains are at most [`super::queue::MAX_QUEUE_SIZE`] descriptors long,
//! though the queues have [`QUEUE_SIZE`] entries: Linux's driver without
//! offloads uses one or two descriptors per packet.
//!
//! Receive: a frame the card's filter refuses is not delivered. Without
//! MRG_RXBUF a frame takes one posted receive chain (too small: returned
//! empty and the frame dropped). With it, the frame takes as many chains
//! as it needs, the header's `num_buffers` says how many, and their used
//! entries are published together; when the posted chains cannot hold
//! it all, none is taken and the frame is dropped. With no chain posted
//! (or the driver not ready) a frame is dropped and counted, as a real
//! card with a full ring drops it. There is no backlog: the sender's
//! protocols retry.
//!
//! Control: commands are served when the driver notifies controlq, before
//! the notification returns (Linux waits for the answer by polling).

use ipc::VmId;

use super::VirtioDevice;
use super::mmio::VirtioMmio;
use super::net_ctrl::{self, CommandTarget, RxFilter};
use super::queue::{QueueError, SplitQueue};
use crate::bus::DeviceEnv;
use crate::persist::{Reader, Writer};

/// The virtio device ID of a network card.
pub const VIRTIO_ID_NET: u32 = 1;
/// receiveq0's index.
pub const RECEIVEQ: usize = 0;
/// transmitq0's index.
pub const TRANSMITQ: usize = 1;
/// controlq's index (no multiqueue: right after the one queue pair).
pub const CTRLQ: usize = 2;
/// Entries in each data queue.
pub const QUEUE_SIZE: u16 = 256;
/// Entries in the control queue (QEMU's size).
pub const CTRL_QUEUE_SIZE: u16 = 64;
/// Feature: the device has a MAC address in its configuration space.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Feature: the configuration space has a link status.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// Feature: a received packet may span several receive buffers.
pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
/// The device features offered (the transport adds its own).
pub const NET_FEATURES: u64 = VIRTIO_NET_F_MAC
    | VIRTIO_NET_F_STATUS
    | VIRTIO_NET_F_MRG_RXBUF
    | net_ctrl::VIRTIO_NET_F_CTRL_VQ
    | net_ctrl::VIRTIO_NET_F_CTRL_RX
    | net_ctrl::VIRTIO_NET_F_CTRL_VLAN
    | net_ctrl::VIRTIO_NET_F_GUEST_ANNOUNCE
    | net_ctrl::VIRTIO_NET_F_CTRL_MAC_ADDR
    | net_ctrl::VIRTIO_NET_F_CTRL_GUEST_OFFLOADS;
/// Link status bit: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// `virtio_net_hdr_v1`: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset (u16 from hdr_len on), num_buffers.
pub const NET_HDR_LEN: usize = 12;
/// The largest Ethernet frame carried: 1500 bytes of payload and the
/// 14-byte header (no VLAN tag, no FCS).
pub const MAX_FRAME: usize = 1514;
/// The smallest frame carried: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Header flag `VIRTIO_NET_HDR_F_NEEDS_CSUM` (needs `VIRTIO_NET_F_CSUM`).
const HDR_F_NEEDS_CSUM: u8 = 1;
/// The first five bytes of every VM's MAC address.
pub const MAC_PREFIX: [u8; 5] = [0x02, 0x4d, 0x49, 0x43, 0x41];

/// The MAC address of `vm`'s network card: [`MAC_PREFIX`] then the low
/// byte of its id.
pub fn mac_for(vm: VmId) -> [u8; 6] {
    let [low, _] = vm.0.to_le_bytes();
    let [a, b, c, d, e] = MAC_PREFIX;
    [a, b, c, d, e, low]
}

pub use ipc::devices::NetCounters;

/// One transmitted packet (header and frame), copied out of the guest. The
/// service owns one and lends it to every card in turn, so a card carries
/// no frame buffer of its own.
#[derive(Debug)]
pub struct Packet {
    bytes: [u8; NET_HDR_LEN + MAX_FRAME],
    len: usize,
}

impl Default for Packet {
    fn default() -> Self {
        Self::new()
    }
}

impl Packet {
    /// An empty packet.
    pub const fn new() -> Self {
        Self {
            bytes: [0; NET_HDR_LEN + MAX_FRAME],
            len: 0,
        }
    }

    /// The Ethernet frame (empty when no packet was taken).
    pub fn frame(&self) -> &[u8] {
        self.bytes.get(NET_HDR_LEN..self.len).unwrap_or(&[])
    }
}

/// The network card's model.
#[derive(Debug)]
pub struct VirtioNet {
    /// mac[6], status (u16, little-endian).
    config: [u8; 8],
    /// The address it was made with, back after a reset.
    base_mac: [u8; 6],
    /// The features the driver negotiated (none after a reset).
    negotiated: u64,
    /// The guest offloads the driver turned on (GUEST_OFFLOADS_SET).
    guest_offloads: u64,
    /// The driver notified transmitq0 since the service last looked.
    tx_notified: bool,
    counters: NetCounters,
    filter: RxFilter,
    /// Moves with every command that succeeded: what the transport keeps
    /// across a restart may have changed.
    commands_done: u32,
}

fn config_of(mac: [u8; 6], status: u16) -> [u8; 8] {
    let [m0, m1, m2, m3, m4, m5] = mac;
    let [s0, s1] = status.to_le_bytes();
    [m0, m1, m2, m3, m4, m5, s0, s1]
}

impl VirtioNet {
    /// A card with address `mac`, link up.
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            config: config_of(mac, VIRTIO_NET_S_LINK_UP),
            base_mac: mac,
            negotiated: 0,
            guest_offloads: 0,
            tx_notified: false,
            counters: NetCounters::default(),
            filter: RxFilter::new(),
            commands_done: 0,
        }
    }

    /// Its MAC address (the driver may have set it: MAC_ADDR_SET).
    pub fn mac(&self) -> [u8; 6] {
        let [m0, m1, m2, m3, m4, m5, _, _] = self.config;
        [m0, m1, m2, m3, m4, m5]
    }

    /// The configuration space's status field.
    pub fn status(&self) -> u16 {
        let [.., s0, s1] = self.config;
        u16::from_le_bytes([s0, s1])
    }

    /// The receive filter the driver set.
    pub fn filter(&self) -> &RxFilter {
        &self.filter
    }

    /// Whether the card takes `frame` (its receive filter).
    pub fn accepts(&self, frame: &[u8]) -> bool {
        self.filter.accepts(&self.mac(), frame)
    }

    /// The guest offloads the driver turned on.
    pub fn guest_offloads(&self) -> u64 {
        self.guest_offloads
    }

    /// Its counters.
    pub fn counters(&self) -> NetCounters {
        self.counters
    }

    /// Whether the driver notified transmitq0 since the last call: the
    /// service then takes its packets ([`transmit`]).
    pub fn take_tx_notification(&mut self) -> bool {
        core::mem::take(&mut self.tx_notified)
    }

    fn count_rx_drop(&mut self) {
        self.counters.rx_dropped = self.counters.rx_dropped.saturating_add(1);
    }

    /// Takes transmit chains until one holds a frame to send (copied into
    /// `packet`) or none is left; malformed packets are returned unsent.
    /// At most [`QUEUE_SIZE`] chains a call: a guest that keeps posting bad
    /// packets from another vCPU cannot hold the service here.
    fn transmit_one(
        &mut self,
        packet: &mut Packet,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        packet.len = 0;
        for _ in 0..QUEUE_SIZE {
            if packet.len != 0 {
                break;
            }
            let Some(chain) = queue.pop(env.memory)? else {
                break;
            };
            let readable: u64 = chain
                .descriptors
                .iter()
                .filter(|d| !d.writable)
                .map(|d| u64::from(d.len))
                .sum();
            let has_writable = chain.descriptors.iter().any(|d| d.writable);
            let fits = (NET_HDR_LEN + MIN_FRAME..=NET_HDR_LEN + MAX_FRAME)
                .contains(&usize::try_from(readable).unwrap_or(usize::MAX));
            let mut sendable = fits && !has_writable;
            if sendable {
                let copied = chain.read_into(env.memory, &mut packet.bytes)?;
                let [flags, gso_type, ..] = packet.bytes;
                sendable = flags & HDR_F_NEEDS_CSUM == 0 && gso_type == 0;
                if sendable {
                    packet.len = copied;
                    self.counters.sent = self.counters.sent.saturating_add(1);
                }
            }
            if !sendable {
                self.counters.tx_dropped = self.counters.tx_dropped.saturating_add(1);
            }
            queue.push_used(env.memory, chain.head, 0)?;
            used = true;
        }
        Ok(used)
    }

    /// Puts `frame` into the next posted receive chain; `Ok(false)` (and a
    /// drop counted) when none is posted.
    fn receive(
        &mut self,
        frame: &[u8],
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        if self.negotiated & VIRTIO_NET_F_MRG_RXBUF != 0 {
            return self.receive_merged(frame, queue, env);
        }
        let Some(chain) = queue.pop(env.memory)? else {
            self.count_rx_drop();
            return Ok(false);
        };
        let room: u64 = chain
            .descriptors
            .iter()
            .filter(|d| d.writable)
            .map(|d| u64::from(d.len))
            .sum();
        let total = NET_HDR_LEN.saturating_add(frame.len());
        let total_u32 = u32::try_from(total).map_err(|_| QueueError::LengthOverflow)?;
        if room < u64::from(total_u32) {
            // Too small for the frame: given back empty (Linux counts a
            // length error and posts it again). A chain with no writable
            // buffer at all still fails the device.
            chain.fill_writable(env.memory, 0, |_| 0)?;
            queue.push_used(env.memory, chain.head, 0)?;
            self.count_rx_drop();
            return Ok(true);
        }
        // A zero header (no offload) saying the packet fills one buffer.
        let mut header = [0u8; NET_HDR_LEN];
        if let Some(num_buffers) = header.get_mut(10..12) {
            num_buffers.copy_from_slice(&1u16.to_le_bytes());
        }
        let mut bytes = header.iter().chain(frame.iter());
        let written = chain.fill_writable(env.memory, total_u32, |buf| {
            let mut n = 0;
            for (slot, byte) in buf.iter_mut().zip(&mut bytes) {
                *slot = *byte;
                n += 1;
            }
            n
        })?;
        queue.push_used(env.memory, chain.head, written)?;
        self.counters.received = self.counters.received.saturating_add(1);
        Ok(true)
    }

    /// MRG_RXBUF: puts the header and `frame` into as many posted chains
    /// as they need, says how many in the header's `num_buffers`, and
    /// publishes their used entries together. When the posted chains
    /// cannot hold it all, none is taken (`Ok(false)`, a drop counted).
    fn receive_merged(
        &mut self,
        frame: &[u8],
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        let total = NET_HDR_LEN.saturating_add(frame.len());
        let total_u32 = u32::try_from(total).map_err(|_| QueueError::LengthOverflow)?;
        // First count the chains it needs, then give the ring positions
        // back: nothing is taken until the whole frame fits.
        let start = *queue;
        let mut room = 0u64;
        let mut chains = 0u16;
        while room < u64::from(total_u32) {
            let Some(chain) = queue.pop(env.memory)? else {
                break;
            };
            let writable = chain.writable_len();
            if writable == 0 {
                return Err(QueueError::WritableRequired);
            }
            room = room.saturating_add(writable);
            chains = chains.saturating_add(1);
        }
        *queue = start;
        if room < u64::from(total_u32) {
            self.count_rx_drop();
            return Ok(false);
        }
        let mut header = [0u8; NET_HDR_LEN];
        if let Some(num_buffers) = header.get_mut(10..12) {
            num_buffers.copy_from_slice(&chains.to_le_bytes());
        }
        let mut bytes = header.iter().chain(frame.iter());
        let mut left = total_u32;
        for _ in 0..chains {
            let Some(chain) = queue.pop(env.memory)? else {
                break;
            };
            let written = chain.fill_writable(env.memory, left, |buf| {
                let mut n = 0;
                for (slot, byte) in buf.iter_mut().zip(&mut bytes) {
                    *slot = *byte;
                    n += 1;
                }
                n
            })?;
            left = left.saturating_sub(written);
            queue.add_used(env.memory, chain.head, written)?;
        }
        queue.publish_used(env.memory)?;
        self.counters.received = self.counters.received.saturating_add(1);
        Ok(true)
    }

    /// Serves controlq: each command chain is run and answered in its ack
    /// byte. A chain without a device-writable byte for the ack fails the
    /// device, as a request without room for its status does in the other
    /// models. At most [`CTRL_QUEUE_SIZE`] commands a notification.
    fn control(
        &mut self,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        for _ in 0..CTRL_QUEUE_SIZE {
            let Some(chain) = queue.pop(env.memory)? else {
                break;
            };
            if chain.writable_len() == 0 {
                return Err(QueueError::WritableRequired);
            }
            let mut mac = self.mac();
            let mut status = self.status();
            let ack = net_ctrl::execute(
                &chain,
                env.memory,
                CommandTarget {
                    negotiated: self.negotiated,
                    filter: &mut self.filter,
                    mac: &mut mac,
                    status: &mut status,
                    guest_offloads: &mut self.guest_offloads,
                },
            )?;
            self.config = config_of(mac, status);
            if ack == net_ctrl::VIRTIO_NET_OK {
                self.commands_done = self.commands_done.wrapping_add(1);
            }
            let written = chain.fill_writable(env.memory, 1, |buf| match buf.first_mut() {
                Some(slot) => {
                    *slot = ack;
                    1
                }
                None => 0,
            })?;
            queue.push_used(env.memory, chain.head, written)?;
            used = true;
        }
        Ok(used)
    }
}

/// Takes the next frame `card`'s guest transmitted into `packet`; returns
/// whether there was one (`packet.frame()` is then the frame). Malformed
/// packets on the way are returned unsent; a broken transmit queue fails
/// the device.
pub fn transmit(
    card: &mut VirtioMmio<VirtioNet>,
    packet: &mut Packet,
    env: &mut DeviceEnv<'_>,
) -> bool {
    packet.len = 0;
    card.serve_queue(TRANSMITQ, env, |net, queue, env| {
        net.transmit_one(packet, queue, env)
    });
    packet.len != 0
}

/// Delivers `frame` to `card`'s guest (receiveq0); returns whether it
/// got it. A frame its receive filter refuses is not delivered (nor
/// counted). A frame the driver cannot take now (not ready, no buffer) is
/// dropped and counted; a broken receive queue fails the device.
pub fn deliver(card: &mut VirtioMmio<VirtioNet>, frame: &[u8], env: &mut DeviceEnv<'_>) -> bool {
    if !card.device().accepts(frame) {
        return false;
    }
    let before = card.device().counters().received;
    let served = card.serve_queue(RECEIVEQ, env, |net, queue, env| {
        net.receive(frame, queue, env)
    });
    if served.is_none() {
        card.device_mut().count_rx_drop();
    }
    card.device().counters().received != before
}

impl VirtioDevice for VirtioNet {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        NET_FEATURES
    }

    fn features_negotiated(&mut self, features: u64) {
        self.negotiated = features;
        self.filter.features_negotiated(features);
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[QUEUE_SIZE, QUEUE_SIZE, CTRL_QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        // The service takes transmitted frames itself, one at a time into
        // its own buffer ([`transmit`]), so that it can deliver each to
        // other VMs' cards; posted receive buffers wait for frames.
        match index {
            TRANSMITQ => {
                self.tx_notified = true;
                Ok(false)
            }
            CTRLQ => self.control(queue, env),
            _ => Ok(false),
        }
    }

    /// The address and the receive filter the driver set.
    fn save_kept(&self, out: &mut Writer<'_>) {
        out.bytes(&self.mac());
        self.filter.save(out);
    }

    fn kept_decodes(saved: &mut Reader<'_>) -> bool {
        saved.take(6).is_some() && RxFilter::new().restored(saved).is_some()
    }

    fn restore_kept(&mut self, saved: &mut Reader<'_>) {
        let mac = saved.take(6).and_then(|m| <[u8; 6]>::try_from(m).ok());
        if let (Some(mac), Some(filter)) = (mac, self.filter.restored(saved)) {
            self.config = config_of(mac, self.status());
            self.filter = filter;
        }
    }

    fn kept_generation(&self) -> u32 {
        self.commands_done
    }

    fn reset(&mut self) {
        self.tx_notified = false;
        self.config = config_of(self.base_mac, VIRTIO_NET_S_LINK_UP);
        self.negotiated = 0;
        self.guest_offloads = 0;
        self.filter = RxFilter::new();
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
