//! Fuzz target bodies for every decoder of untrusted bytes in Mica: the
//! `ipc` messages and hand-encoded wire formats, the shared ioreq page and
//! posted-write ring, the console text rule, the management channel's COBS
//! frames and shell lines, scenario files, the DTB reader, the boot image,
//! service ELFs, Linux Image headers, the MMIO instruction decoder, and
//! each device model driven by random register access sequences, and the
//! split virtqueue with its ring features.
//!
//! Each target is `fn(&[u8])` and panics only on a finding: a decoder that
//! panics, or a property a user would notice broken (a round trip that
//! changes a message, a UART whose IIR and LSR disagree). The same bodies
//! run three ways: `cargo test` replays the seed corpus plus a fixed number
//! of seeded pseudo-random and mutated inputs (stable, in CI); `fuzz/`
//! wraps each in a `cargo fuzz` target (nightly); `cargo xtask fuzz` runs
//! those for as long as asked.
//!
//! Layer: tool (`cargo xtask check-layers`): it may depend on any crate; no
//! crate but another tool depends on it.
#![forbid(unsafe_code)]

pub mod boot;
pub mod input;
pub mod mgmt;
pub mod models;
pub mod replay;
pub mod seeds;
pub mod service;
pub mod virtqueue;
pub mod wire;

/// One fuzz target: its name (as `cargo fuzz` knows it) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name of the target and of its corpus directory.
    pub name: &'static str,
    /// Feeds one input to the decoder under test.
    pub run: fn(&[u8]),
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ipc_messages",
        run: wire::ipc_messages,
    },
    Target {
        name: "devices_wire",
        run: wire::devices_wire,
    },
    Target {
        name: "ioreq_slot",
        run: wire::ioreq_slot,
    },
    Target {
        name: "posted_ring",
        run: wire::posted_ring,
    },
    Target {
        name: "console_text",
        run: wire::console_text,
    },
    Target {
        name: "cobs",
        run: mgmt::cobs,
    },
    Target {
        name: "mgmt_frames",
        run: mgmt::mgmt_frames,
    },
    Target {
        name: "shell_line",
        run: mgmt::shell_line,
    },
    Target {
        name: "scenario_file",
        run: boot::scenario_file,
    },
    Target {
        name: "dtb",
        run: boot::dtb,
    },
    Target {
        name: "multiboot",
        run: boot::multiboot,
    },
    Target {
        name: "boot_image",
        run: boot::boot_image,
    },
    Target {
        name: "elf",
        run: boot::elf,
    },
    Target {
        name: "linux_image",
        run: boot::linux_image,
    },
    Target {
        name: "mmio_decode",
        run: boot::mmio_decode,
    },
    Target {
        name: "x86_exit",
        run: boot::x86_exit,
    },
    Target {
        name: "uart16550",
        run: models::uart16550,
    },
    Target {
        name: "virtio_console",
        run: models::virtio_console,
    },
    Target {
        name: "virtio_rng",
        run: models::virtio_rng,
    },
    Target {
        name: "virtio_blk",
        run: models::virtio_blk,
    },
    Target {
        name: "virtio_net",
        run: models::virtio_net,
    },
    Target {
        name: "virtqueue",
        run: virtqueue::virtqueue,
    },
    Target {
        name: "vmgenid",
        run: models::vmgenid,
    },
    Target {
        name: "plic",
        run: models::plic,
    },
    Target {
        name: "devices_service",
        run: service::devices_service,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}
