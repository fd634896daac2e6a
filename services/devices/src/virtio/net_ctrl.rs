//! virtio-net's control virtqueue (virtio 1.2 section 5.1.6.5) and the
//! receive filter its commands set, which [`super::net::deliver`] applies
//! to every frame the switch sends a card.
//!
//! A command is one chain: device-readable `class` (u8), `command` (u8)
//! and the command's data, then a device-writable `ack` byte
//! ([`VIRTIO_NET_OK`] or [`VIRTIO_NET_ERR`]). Served, as QEMU's card does:
//!
//! - `VIRTIO_NET_CTRL_RX` (with `CTRL_RX`): PROMISC, ALLMULTI, ALLUNI,
//!   NOMULTI, NOUNI, NOBCAST, each one byte, on when not zero. The last
//!   four belong to `CTRL_RX_EXTRA`, which is not offered; they are
//!   honoured anyway, as QEMU does.
//! - `VIRTIO_NET_CTRL_MAC`: MAC_TABLE_SET (with `CTRL_RX`): a unicast then
//!   a multicast table, each a little-endian u32 count then that many
//!   addresses, at most [`MAC_TABLE_ENTRIES`] together; a table that does
//!   not fit makes the card take every unicast (or multicast) frame, as
//!   QEMU's overflow does. MAC_ADDR_SET (with `CTRL_MAC_ADDR`): the card's
//!   own address, which the configuration space then shows.
//! - `VIRTIO_NET_CTRL_VLAN` (with `CTRL_VLAN`): ADD and DEL of a
//!   little-endian u16 VLAN ID below 4096. The card keeps at most
//!   [`VLAN_ENTRIES`] IDs, not QEMU's 4096-bit map: an ADD beyond them
//!   lets every VLAN through until the next reset (as a full MAC table
//!   does), so a VLAN the guest asked for is never lost.
//! - `VIRTIO_NET_CTRL_ANNOUNCE` (with `GUEST_ANNOUNCE`): ACK, no data;
//!   clears `VIRTIO_NET_S_ANNOUNCE` (the card never sets it: it never asks
//!   the guest to announce itself). Answered OK even unasked, where QEMU
//!   says ERR; Linux only ACKs what it was asked.
//! - `VIRTIO_NET_CTRL_GUEST_OFFLOADS` (with `CTRL_GUEST_OFFLOADS`): SET of a
//!   little-endian u64 that must hold only negotiated guest offloads (none
//!   are offered, so only 0).
//!
//! Anything else, a class whose feature was not negotiated, or data of the
//! wrong length is answered [`VIRTIO_NET_ERR`] and changes nothing.
//!
//! The filter (QEMU's `receive_filter`): in promiscuous mode every frame
//! passes; else a frame with an 802.1Q tag whose VLAN ID is not in the
//! filter does not; broadcast passes unless NOBCAST; other multicast passes
//! unless NOMULTI, when ALLMULTI or in the table; unicast passes unless
//! NOUNI, when ALLUNI, to the card's address, or in the table. After a
//! reset the card is promiscuous with empty tables until the driver says
//! otherwise (Linux does when it opens the interface).
//!
//! Across a device-service restart the card keeps its address, the RX
//! modes and the MAC table (in the transport's record, written again
//! after every command that succeeded); the VLAN list does not fit, so a
//! card that let some VLAN through comes back letting every VLAN through
//! (more frames than asked for, never fewer; the guest's stack drops
//! what is not for it).

use super::queue::{DescriptorChain, QueueError};
use crate::memory::GuestMemory;
use crate::persist::{Reader, Writer};

/// Command answer: done.
pub const VIRTIO_NET_OK: u8 = 0;
/// Command answer: refused (unknown, malformed, or not negotiated).
pub const VIRTIO_NET_ERR: u8 = 1;

/// Command classes and their commands.
pub mod class {
    pub const RX: u8 = 0;
    pub const RX_PROMISC: u8 = 0;
    pub const RX_ALLMULTI: u8 = 1;
    pub const RX_ALLUNI: u8 = 2;
    pub const RX_NOMULTI: u8 = 3;
    pub const RX_NOUNI: u8 = 4;
    pub const RX_NOBCAST: u8 = 5;
    pub const MAC: u8 = 1;
    pub const MAC_TABLE_SET: u8 = 0;
    pub const MAC_ADDR_SET: u8 = 1;
    pub const VLAN: u8 = 2;
    pub const VLAN_ADD: u8 = 0;
    pub const VLAN_DEL: u8 = 1;
    pub const ANNOUNCE: u8 = 3;
    pub const ANNOUNCE_ACK: u8 = 0;
    pub const GUEST_OFFLOADS: u8 = 5;
    pub const GUEST_OFFLOADS_SET: u8 = 0;
}

/// Feature: control channel for guest offloads.
pub const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: u64 = 1 << 2;
/// Feature: a control virtqueue.
pub const VIRTIO_NET_F_CTRL_VQ: u64 = 1 << 17;
/// Feature: receive-mode commands and the MAC table.
pub const VIRTIO_NET_F_CTRL_RX: u64 = 1 << 18;
/// Feature: VLAN filtering.
pub const VIRTIO_NET_F_CTRL_VLAN: u64 = 1 << 19;
/// Feature: the guest can announce itself (and ACK a request to).
pub const VIRTIO_NET_F_GUEST_ANNOUNCE: u64 = 1 << 21;
/// Feature: the MAC address can be set through the control queue.
pub const VIRTIO_NET_F_CTRL_MAC_ADDR: u64 = 1 << 23;
/// The guest offloads (features the driver may turn on and off with
/// GUEST_OFFLOADS_SET): GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO,
/// GUEST_USO4/6.
pub const GUEST_OFFLOAD_FEATURES: u64 =
    (1 << 1) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 54) | (1 << 55);

/// The most addresses in the MAC table, unicast and multicast together
/// (QEMU keeps 64; Linux puts its secondary unicast addresses and its
/// multicast groups there, a handful on a host with IPv4 and IPv6). Kept
/// small, with the VLAN list, so that a card is no bigger than the other
/// device models (every device slot of every VM is as big as the
/// biggest model).
pub const MAC_TABLE_ENTRIES: usize = 16;
/// The most VLAN IDs the filter lists.
pub const VLAN_ENTRIES: usize = 32;
/// VLAN IDs are below this.
pub const MAX_VLAN: u16 = 4096;

/// The MAC filtering table: unicast addresses, then multicast ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MacTable {
    macs: [[u8; 6]; MAC_TABLE_ENTRIES],
    in_use: usize,
    first_multi: usize,
    uni_overflow: bool,
    multi_overflow: bool,
}

impl MacTable {
    const EMPTY: Self = Self {
        macs: [[0; 6]; MAC_TABLE_ENTRIES],
        in_use: 0,
        first_multi: 0,
        uni_overflow: false,
        multi_overflow: false,
    };

    fn unicast(&self) -> &[[u8; 6]] {
        self.macs.get(..self.first_multi).unwrap_or(&[])
    }

    fn multicast(&self) -> &[[u8; 6]] {
        self.macs.get(self.first_multi..self.in_use).unwrap_or(&[])
    }
}

/// What the driver set about which frames its card receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxFilter {
    promisc: bool,
    allmulti: bool,
    alluni: bool,
    nomulti: bool,
    nouni: bool,
    nobcast: bool,
    table: MacTable,
    /// The VLAN IDs allowed, the first `vlan_count`.
    vlans: [u16; VLAN_ENTRIES],
    vlan_count: usize,
    /// Every VLAN passes: `CTRL_VLAN` not negotiated, or more IDs added
    /// than the list holds.
    all_vlans: bool,
}

impl Default for RxFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl RxFilter {
    /// After a reset: promiscuous, empty tables, no VLAN allowed (until
    /// features are negotiated: see [`RxFilter::features_negotiated`]).
    pub const fn new() -> Self {
        Self {
            promisc: true,
            allmulti: false,
            alluni: false,
            nomulti: false,
            nouni: false,
            nobcast: false,
            table: MacTable::EMPTY,
            vlans: [0; VLAN_ENTRIES],
            vlan_count: 0,
            all_vlans: false,
        }
    }

    /// Without `CTRL_VLAN` every VLAN passes; with it, none until the
    /// driver adds it.
    pub fn features_negotiated(&mut self, features: u64) {
        self.all_vlans = features & VIRTIO_NET_F_CTRL_VLAN == 0;
        self.vlan_count = 0;
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        self.promisc
    }

    fn listed_vlans(&self) -> &[u16] {
        self.vlans.get(..self.vlan_count).unwrap_or(&[])
    }

    fn vlan_allowed(&self, vid: u16) -> bool {
        self.all_vlans || self.listed_vlans().contains(&(vid & 0xfff))
    }

    fn add_vlan(&mut self, vid: u16) {
        if self.listed_vlans().contains(&vid) {
            return;
        }
        match self.vlans.get_mut(self.vlan_count) {
            Some(slot) => {
                *slot = vid;
                self.vlan_count += 1;
            }
            None => self.all_vlans = true,
        }
    }

    fn remove_vlan(&mut self, vid: u16) {
        if let Some(at) = self.listed_vlans().iter().position(|&v| v == vid) {
            let last = self.vlan_count - 1;
            self.vlans.swap(at, last);
            self.vlan_count = last;
        }
    }

    /// Keeps the modes and the MAC table; of the VLAN filter only whether
    /// it lets some VLAN through (the list does not fit in the record).
    pub fn save(&self, out: &mut Writer<'_>) {
        let bits = [
            self.promisc,
            self.allmulti,
            self.alluni,
            self.nomulti,
            self.nouni,
            self.nobcast,
            self.table.uni_overflow,
            self.table.multi_overflow,
            self.all_vlans || self.vlan_count != 0,
        ];
        let flags = bits
            .iter()
            .enumerate()
            .fold(0u16, |flags, (bit, &on)| flags | (u16::from(on) << bit));
        let [in_use, first_multi] =
            [self.table.in_use, self.table.first_multi].map(|n| u8::try_from(n).unwrap_or(0));
        out.u16(flags).u8(in_use).u8(first_multi);
        for mac in self.table.macs.get(..self.table.in_use).unwrap_or(&[]) {
            out.bytes(mac);
        }
    }

    /// Decodes what [`RxFilter::save`] wrote onto a filter whose VLANs
    /// are as negotiated: a filter that let some VLAN through comes back
    /// letting every VLAN through (more frames than asked for, never
    /// fewer). `None` when it does not decode.
    pub fn restored(&self, saved: &mut Reader<'_>) -> Option<Self> {
        let flags = saved.u16()?;
        let in_use = usize::from(saved.u8()?);
        let first_multi = usize::from(saved.u8()?);
        if in_use > MAC_TABLE_ENTRIES || first_multi > in_use || flags >> 9 != 0 {
            return None;
        }
        let on = |bit: u16| flags & (1 << bit) != 0;
        let mut table = MacTable::EMPTY;
        for slot in table.macs.iter_mut().take(in_use) {
            *slot = saved.take(6)?.try_into().ok()?;
        }
        (table.in_use, table.first_multi) = (in_use, first_multi);
        (table.uni_overflow, table.multi_overflow) = (on(6), on(7));
        let mut filter = self.clone();
        (filter.promisc, filter.allmulti, filter.alluni) = (on(0), on(1), on(2));
        (filter.nomulti, filter.nouni, filter.nobcast) = (on(3), on(4), on(5));
        filter.table = table;
        filter.all_vlans |= on(8);
        Some(filter)
    }

    /// Whether a card with address `mac` takes `frame`.
    pub fn accepts(&self, mac: &[u8; 6], frame: &[u8]) -> bool {
        if self.promisc {
            return true;
        }
        if let Some([0x81, 0x00, hi, lo]) = frame.get(12..16).map(|t| [t[0], t[1], t[2], t[3]])
            && !self.vlan_allowed(u16::from_be_bytes([hi, lo]))
        {
            return false;
        }
        let Some(dst) = frame.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) else {
            return false;
        };
        if dst[0] & 1 == 1 {
            if dst == [0xff; 6] {
                return !self.nobcast;
            }
            if self.nomulti {
                return false;
            }
            return self.allmulti
                || self.table.multi_overflow
                || self.table.multicast().contains(&dst);
        }
        if self.nouni {
            return false;
        }
        self.alluni || self.table.uni_overflow || dst == *mac || self.table.unicast().contains(&dst)
    }
}

/// What a command may change beyond the filter: the card's address and
/// status, and the negotiated features it checks.
pub struct CommandTarget<'a> {
    /// The features the driver negotiated.
    pub negotiated: u64,
    /// The receive filter.
    pub filter: &'a mut RxFilter,
    /// The card's MAC address.
    pub mac: &'a mut [u8; 6],
    /// The configuration space's status field.
    pub status: &'a mut u16,
    /// The guest offloads the driver turned on.
    pub guest_offloads: &'a mut u64,
}

/// Link status bit: the device asks the guest to announce itself.
pub const VIRTIO_NET_S_ANNOUNCE: u16 = 2;

/// Runs the command in `chain` on `target`; returns the ack byte. Only
/// guest memory the chain names is read; an unreadable buffer is the
/// queue's error (the device fails), a malformed command is
/// [`VIRTIO_NET_ERR`].
pub fn execute(
    chain: &DescriptorChain,
    memory: &dyn GuestMemory,
    target: CommandTarget<'_>,
) -> Result<u8, QueueError> {
    let mut head = [0u8; 2];
    if !chain.read_at(memory, 0, &mut head)? {
        return Ok(VIRTIO_NET_ERR);
    }
    let [class, command] = head;
    let cmd = Command {
        chain,
        memory,
        command,
        data_len: chain.readable_len().saturating_sub(2),
    };
    let done = match class {
        class::RX => rx_mode(&cmd, target)?,
        class::MAC => mac(&cmd, target)?,
        class::VLAN => vlan(&cmd, target)?,
        class::ANNOUNCE => {
            let ok = target.negotiated & VIRTIO_NET_F_GUEST_ANNOUNCE != 0
                && command == class::ANNOUNCE_ACK
                && cmd.data_len == 0;
            if ok {
                *target.status &= !VIRTIO_NET_S_ANNOUNCE;
            }
            ok
        }
        class::GUEST_OFFLOADS => guest_offloads(&cmd, target)?,
        _ => false,
    };
    Ok(if done { VIRTIO_NET_OK } else { VIRTIO_NET_ERR })
}

/// One control command as the guest posted it: its chain (the class and
/// command bytes, then `data_len` bytes of data) in guest memory.
struct Command<'a> {
    chain: &'a DescriptorChain,
    memory: &'a dyn GuestMemory,
    /// The command within its class.
    command: u8,
    data_len: u64,
}

impl Command<'_> {
    /// The data of a command that must be exactly `N` bytes; `None`
    /// otherwise.
    fn exact<const N: usize>(&self) -> Result<Option<[u8; N]>, QueueError> {
        let mut data = [0u8; N];
        if self.data_len != N as u64 || !self.chain.read_at(self.memory, 2, &mut data)? {
            return Ok(None);
        }
        Ok(Some(data))
    }
}

type FilterChange = fn(&mut RxFilter, bool);

fn rx_mode(cmd: &Command<'_>, target: CommandTarget<'_>) -> Result<bool, QueueError> {
    if target.negotiated & VIRTIO_NET_F_CTRL_RX == 0 {
        return Ok(false);
    }
    let set: FilterChange = match cmd.command {
        class::RX_PROMISC => |f, on| f.promisc = on,
        class::RX_ALLMULTI => |f, on| f.allmulti = on,
        class::RX_ALLUNI => |f, on| f.alluni = on,
        class::RX_NOMULTI => |f, on| f.nomulti = on,
        class::RX_NOUNI => |f, on| f.nouni = on,
        class::RX_NOBCAST => |f, on| f.nobcast = on,
        _ => return Ok(false),
    };
    let Some([on]) = cmd.exact::<1>()? else {
        return Ok(false);
    };
    set(target.filter, on != 0);
    Ok(true)
}

fn mac(cmd: &Command<'_>, target: CommandTarget<'_>) -> Result<bool, QueueError> {
    match cmd.command {
        class::MAC_ADDR_SET if target.negotiated & VIRTIO_NET_F_CTRL_MAC_ADDR != 0 => {
            let Some(mac) = cmd.exact::<6>()? else {
                return Ok(false);
            };
            *target.mac = mac;
            Ok(true)
        }
        class::MAC_TABLE_SET if target.negotiated & VIRTIO_NET_F_CTRL_RX != 0 => {
            let Some(table) = read_mac_table(cmd.chain, cmd.memory, cmd.data_len)? else {
                return Ok(false);
            };
            target.filter.table = table;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Reads one table's u32 count at `at`; returns it and where its
/// addresses start, or `None` when the data ends before them.
fn table_count(
    chain: &DescriptorChain,
    memory: &dyn GuestMemory,
    at: u64,
    end: u64,
) -> Result<Option<(u64, u64)>, QueueError> {
    let mut count = [0u8; 4];
    if at.saturating_add(4) > end || !chain.read_at(memory, at, &mut count)? {
        return Ok(None);
    }
    let entries = u64::from(u32::from_le_bytes(count));
    let start = at + 4;
    if start.saturating_add(entries.saturating_mul(6)) > end {
        return Ok(None);
    }
    Ok(Some((entries, start)))
}

/// MAC_TABLE_SET's data, as QEMU reads it: the unicast table, then the
/// multicast one, filling exactly `data_len` bytes.
fn read_mac_table(
    chain: &DescriptorChain,
    memory: &dyn GuestMemory,
    data_len: u64,
) -> Result<Option<MacTable>, QueueError> {
    let end = data_len.saturating_add(2);
    let mut table = MacTable::EMPTY;
    let Some((uni, at)) = table_count(chain, memory, 2, end)? else {
        return Ok(None);
    };
    if uni <= MAC_TABLE_ENTRIES as u64 {
        add_macs(chain, memory, at, uni, &mut table)?;
    } else {
        table.uni_overflow = true;
    }
    table.first_multi = table.in_use;
    let Some((multi, at)) = table_count(chain, memory, at + uni * 6, end)? else {
        return Ok(None);
    };
    if at + multi * 6 != end {
        return Ok(None);
    }
    if table.in_use as u64 + multi <= MAC_TABLE_ENTRIES as u64 {
        add_macs(chain, memory, at, multi, &mut table)?;
    } else {
        table.multi_overflow = true;
    }
    Ok(Some(table))
}

/// Appends `count` addresses read from `at` (the caller checked they fit
/// in the table and in the data).
fn add_macs(
    chain: &DescriptorChain,
    memory: &dyn GuestMemory,
    at: u64,
    count: u64,
    table: &mut MacTable,
) -> Result<(), QueueError> {
    for i in 0..count {
        let mut mac = [0u8; 6];
        if !chain.read_at(memory, at + i * 6, &mut mac)? {
            return Ok(());
        }
        if let Some(slot) = table.macs.get_mut(table.in_use) {
            *slot = mac;
            table.in_use += 1;
        }
    }
    Ok(())
}

fn vlan(cmd: &Command<'_>, target: CommandTarget<'_>) -> Result<bool, QueueError> {
    if target.negotiated & VIRTIO_NET_F_CTRL_VLAN == 0
        || !matches!(cmd.command, class::VLAN_ADD | class::VLAN_DEL)
    {
        return Ok(false);
    }
    let Some(vid) = cmd.exact::<2>()? else {
        return Ok(false);
    };
    let vid = u16::from_le_bytes(vid);
    if vid >= MAX_VLAN {
        return Ok(false);
    }
    if cmd.command == class::VLAN_ADD {
        target.filter.add_vlan(vid);
    } else {
        target.filter.remove_vlan(vid);
    }
    Ok(true)
}

fn guest_offloads(cmd: &Command<'_>, target: CommandTarget<'_>) -> Result<bool, QueueError> {
    if target.negotiated & VIRTIO_NET_F_CTRL_GUEST_OFFLOADS == 0
        || cmd.command != class::GUEST_OFFLOADS_SET
    {
        return Ok(false);
    }
    let Some(value) = cmd.exact::<8>()? else {
        return Ok(false);
    };
    let offloads = u64::from_le_bytes(value);
    let allowed = target.negotiated & GUEST_OFFLOAD_FEATURES;
    if offloads & !allowed != 0 {
        return Ok(false);
    }
    *target.guest_offloads = offloads;
    Ok(true)
}

#[cfg(test)]
#[path = "net_ctrl_tests.rs"]
mod tests;
