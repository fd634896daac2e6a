//! Device models (16550 UART, virtio-mmio console, rng, block and network,
//! VM generation ID, the PLIC), the virtual Ethernet switch between the VMs'
//! network cards, the bus that routes guest accesses to them,
//! and the device service's request handler.
//!
//! Layer: service library (`cargo xtask check-layers`): it owns this service's
//! state machine and depends only on `ipc`; other services are reached over
//! IPC, never linked (only tests may link another service library).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod bus;
pub mod console_focus;
pub mod console_lines;
pub mod console_ring;
pub mod memory;
pub mod model;
pub mod persist;
pub mod plic;
pub mod service;
pub mod switch;
pub mod uart16550;
pub mod virtio;
pub mod vmgenid;

#[cfg(test)]
mod testing;
