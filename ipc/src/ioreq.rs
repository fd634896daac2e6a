//! The ioreq protocol: clients register the address ranges they emulate,
//! the dispatcher is kicked, and clients complete the requests forwarded to
//! them.

use serde::{Deserialize, Serialize};

use crate::{Error, Space, VmId};

/// Identifies an I/O client (a device-model task) of the ioreq service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u16);

/// A request to the ioreq service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Start serving a VM with `vcpus` vCPUs (one ioreq slot each).
    AttachVm {
        /// The VM.
        vm: VmId,
        /// Its vCPU count, at most 16 (one slot per vCPU).
        vcpus: u8,
    },
    /// Forget a VM: its slots and every client range go away.
    DetachVm {
        /// The VM.
        vm: VmId,
    },
    /// Route `[start, start + len)` of `space` in `vm` to `client`.
    RegisterRange {
        /// The VM.
        vm: VmId,
        /// The client that emulates the range.
        client: ClientId,
        /// MMIO, PIO or PCI config.
        space: Space,
        /// First address.
        start: u64,
        /// Length in bytes (or ports); non-zero, must not wrap.
        len: u64,
    },
    /// Remove all of `client`'s ranges in `vm` (and its default role).
    UnregisterClient {
        /// The VM.
        vm: VmId,
        /// The client.
        client: ClientId,
    },
    /// Make `client` take every access of `vm` that no range claims.
    SetDefaultClient {
        /// The VM.
        vm: VmId,
        /// The client.
        client: ClientId,
    },
    /// Scan `vm`'s PENDING slots and forward them (the kernel's upcall).
    Dispatch {
        /// The VM.
        vm: VmId,
    },
    /// A client finished the request in `vcpu`'s slot; `value` is the result
    /// of a read (ignored for writes).
    Complete {
        /// The VM.
        vm: VmId,
        /// The slot (vCPU index).
        vcpu: u8,
        /// Read result.
        value: u64,
    },
    /// Let the kernel post `vm`'s writes to `[start, start + len)` of
    /// `space` (complete them at once and queue them for the range's
    /// client, which sees them in order before any later access of the
    /// VM): for device registers whose writes answer nothing, such as a
    /// UART's transmit register. The range must lie inside one client's
    /// registered range; PCI configuration space is never posted.
    PostWrites {
        /// The VM.
        vm: VmId,
        /// MMIO or PIO.
        space: Space,
        /// First address.
        start: u64,
        /// Length in bytes (or ports); non-zero, must not wrap.
        len: u64,
    },
    /// Serve `vm` again after this service restarted (the vm-manager
    /// re-sends each live VM's configuration): as `AttachVm`, but the VM
    /// may have requests in flight, so none is dispatched until
    /// `Activate`, when its client ranges are in place. If the VM is
    /// attached already, its client ranges are forgotten (they are about
    /// to be sent again).
    Reattach {
        /// The VM.
        vm: VmId,
        /// Its vCPU count, at most 16 (one slot each).
        vcpus: u8,
    },
    /// Dispatch a reattached VM's requests: a slot a dead predecessor left
    /// PROCESSING goes to its client again, a COMPLETE one has its vCPU
    /// resumed, and posted writes and PENDING slots are drained as on a
    /// kernel wake-up.
    Activate {
        /// The VM.
        vm: VmId,
    },
}

/// The ioreq service's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Ok,
    /// `Dispatch` moved this many PENDING slots to PROCESSING.
    Dispatched {
        /// How many requests were forwarded.
        count: u8,
    },
    /// Refused; nothing changed.
    Err(Error),
}
