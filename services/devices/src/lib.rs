//! Device models (16550 UART, virtio-mmio console and rng, VM generation ID) and their bus.
#![no_std]
#![forbid(unsafe_code)]
