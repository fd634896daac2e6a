//! Mica's IPC messages: one `Request`/`Response` pair per service protocol,
//! the shared [`Error`] codes, and the bounded postcard encoding every task
//! uses to put them into (and take them out of) its IPC buffer.
//!
//! The kernel never parses these payloads; it only copies at most
//! [`MAX_MESSAGE_SIZE`] bytes between the IPC buffers of two tasks. Every
//! decoder here is fallible: bytes from another task are untrusted.
//!
//! Besides the messages, one shared-memory ABI lives here so the kernel and
//! the services agree on it without the kernel depending on a service:
//! [`ioreq_abi`], the per-VM ioreq page ([`ioreq_abi::page`], ACRN's 16 x
//! 256-byte slots) and its slot state machine ([`ioreq_abi::slot`]). Do not
//! confuse it with [`ioreq`], the IPC protocol of the ioreq service.
//!
//! [`console_text`] is the one rule for showing text the hypervisor
//! console did not write (guest output, task debug lines): controls and
//! invalid UTF-8 escaped, for the kernel and the devices service alike.
#![no_std]
#![forbid(unsafe_code)]

pub mod blk;
mod codec;
pub mod console_text;
pub mod devices;
mod error;
pub mod ioreq;
pub mod ioreq_abi;
pub mod rng;
pub mod server;
pub mod syscall;
pub mod vm;

pub use codec::{MAX_MESSAGE_SIZE, decode, encode};
pub use error::Error;

/// A VM's slot number: its index in the vm-manager's table of configurations,
/// and the key every other service uses for it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct VmId(pub u16);

/// A VM name as it travels on the wire. Its capacity (32 bytes) is one more
/// than the longest valid name, so an over-long name still reaches the
/// vm-manager and is refused there with the naming rule; the rule itself
/// is checked by `vm_manager::VmName`.
pub type WireName = heapless::String<32>;

/// Builds a [`WireName`] from text, or [`Error::InvalidName`] when it does
/// not even fit on the wire.
pub fn wire_name(text: &str) -> Result<WireName, Error> {
    WireName::try_from(text).map_err(|_| Error::InvalidName)
}

/// Which address space a guest access or a registered range lives in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Space {
    /// Memory-mapped I/O, by guest-physical address.
    Mmio,
    /// x86 port I/O, by port number.
    Pio,
    /// PCI configuration space, by bus/device/function/register address.
    PciConfig,
}
