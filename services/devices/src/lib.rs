//! Device models (16550 UART, virtio-mmio console, rng and block, VM
//! generation ID, the PLIC), the bus that routes guest accesses to them,
//! and the device service's request handler.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod bus;
pub mod console_lines;
pub mod console_ring;
pub mod memory;
pub mod model;
pub mod plic;
pub mod service;
pub mod uart16550;
pub mod virtio;
pub mod vmgenid;

#[cfg(test)]
mod testing;
