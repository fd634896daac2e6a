//! A learning Ethernet switch whose ports are the VMs with a virtio-net
//! card: it learns which port each source MAC address sent from, sends a
//! frame for a known unicast address to that port only, floods broadcast,
//! multicast and unknown unicast frames to every other port, and never
//! sends a frame back out of the port it came in on.
//!
//! It lives in the device service, not in a task of its own: the service
//! already holds every VM's virtio-net queues and the grant of its RAM, so
//! a frame goes from the sender's transmit buffer to the receiver's receive
//! buffer with one copy through the service. A switch task would add two
//! IPC copies per frame (and per destination) and a round trip while the
//! sender's notification waits.
//!
//! The table is bounded ([`TABLE_SIZE`] addresses): when it is full, the
//! entry learned or refreshed longest ago is replaced. A port that goes (its
//! VM removed or reset, its card detached) is forgotten with
//! [`Switch::forget_port`].

use heapless::Vec;
use ipc::VmId;

/// The most MAC addresses the switch remembers.
pub const TABLE_SIZE: usize = 64;

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To this port only.
    Port(VmId),
    /// To every port but the one it came from.
    Flood,
    /// Nowhere: too short to be a frame, or for an address on the port it
    /// came from.
    Drop,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: [u8; 6],
    port: VmId,
    /// When it was last learned (the switch's frame count then).
    stamp: u64,
}

/// The switch's forwarding table.
#[derive(Debug, Default)]
pub struct Switch {
    table: Vec<Entry, TABLE_SIZE>,
    clock: u64,
}

fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

fn mac_at(frame: &[u8], at: usize) -> Option<[u8; 6]> {
    frame.get(at..at.checked_add(6)?)?.try_into().ok()
}

impl Switch {
    /// A switch that knows no address.
    pub const fn new() -> Self {
        Self {
            table: Vec::new(),
            clock: 0,
        }
    }

    /// Learns `frame`'s source address on `ingress` and says where the
    /// frame goes.
    pub fn forward(&mut self, ingress: VmId, frame: &[u8]) -> Forward {
        let (Some(dst), Some(src)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            return Forward::Drop;
        };
        if frame.len() < 14 {
            return Forward::Drop;
        }
        self.learn(ingress, src);
        if is_multicast(&dst) {
            return Forward::Flood;
        }
        match self.port_of(&dst) {
            Some(port) if port == ingress => Forward::Drop,
            Some(port) => Forward::Port(port),
            None => Forward::Flood,
        }
    }

    /// The port `mac` was last seen on.
    pub fn port_of(&self, mac: &[u8; 6]) -> Option<VmId> {
        self.table.iter().find(|e| e.mac == *mac).map(|e| e.port)
    }

    /// How many addresses the switch knows.
    pub fn known(&self) -> usize {
        self.table.len()
    }

    /// Forgets every address learned on `port`.
    pub fn forget_port(&mut self, port: VmId) {
        self.table.retain(|e| e.port != port);
    }

    fn learn(&mut self, port: VmId, mac: [u8; 6]) {
        // A multicast source is bogus; the all-zero one is no address.
        if is_multicast(&mac) || mac == [0; 6] {
            return;
        }
        self.clock = self.clock.wrapping_add(1);
        let stamp = self.clock;
        if let Some(entry) = self.table.iter_mut().find(|e| e.mac == mac) {
            entry.port = port;
            entry.stamp = stamp;
            return;
        }
        let entry = Entry { mac, port, stamp };
        if let Err(entry) = self.table.push(entry)
            && let Some(oldest) = self.table.iter_mut().min_by_key(|e| e.stamp)
        {
            *oldest = entry;
        }
    }
}

#[cfg(test)]
#[path = "switch_tests.rs"]
mod tests;
