//! The device-service protocol: emulate guest accesses, attach and detach
//! device models, feed console input, read back console output, and the
//! interrupt events devices raise.

use serde::{Deserialize, Serialize};

use crate::{Error, Space, VmId, WireName};

pub mod wire;

/// Most console input bytes carried by one `Input` request.
pub const INPUT_CHUNK: usize = 64;

/// Most console output bytes carried by one `Console` response. Small on
/// purpose: every `Response` on the guest I/O path is as large as this
/// variant, and moving it costs instructions per UART access; a reader
/// asks for several chunks back to back.
pub const OUTPUT_CHUNK: usize = 64;

/// Which of a VM's consoles typed bytes go to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsolePort {
    /// Its serial console: the 16550 UART, or its virtio console when it
    /// has no UART.
    #[default]
    Serial,
    /// Its virtio console (Linux's `/dev/hvc0`).
    Virtio,
}

/// The device models the service can attach to a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// A 16550A UART (8 registers).
    Uart16550,
    /// A virtio-mmio console.
    VirtioConsole,
    /// A virtio-mmio entropy source.
    VirtioRng,
    /// The VM generation ID device.
    VmGenId,
    /// The platform-level interrupt controller (SiFive PLIC layout): the
    /// other devices' lines end here, and its context 0 drives the VM's
    /// external interrupt. Attached with `irq` 0 (it raises no line itself).
    Plic,
    /// A virtio-mmio block device backed by host disk `disk` of the block
    /// service (`crate::blk`); attaching it asks that service what the
    /// disk is, so it fails when there is no such disk (or no service).
    VirtioBlk {
        /// The host disk's number, as the block service counts them.
        disk: u8,
    },
    /// A virtio-mmio network card (virtio-net) on the service's virtual
    /// Ethernet switch, which connects every VM that has one. Its MAC
    /// address is `02:4d:49:43:41:NN`, NN the low byte of the VM's id.
    VirtioNet,
}

impl DeviceKind {
    /// The registers of this device whose guest writes may be posted
    /// (`ioreq::Request::PostWrites`), as (offset from its base, length):
    /// writes that answer nothing and whose effects a later access sees
    /// in order. A 16550's transmit holding register (offset 0; the
    /// divisor latch's low byte while DLAB is set, which is as safe).
    pub const fn posted_window(self) -> Option<(u64, u64)> {
        match self {
            DeviceKind::Uart16550 => Some((0, 1)),
            DeviceKind::VirtioConsole
            | DeviceKind::VirtioRng
            | DeviceKind::VmGenId
            | DeviceKind::Plic
            | DeviceKind::VirtioBlk { .. }
            | DeviceKind::VirtioNet => None,
        }
    }
}

/// A request to the device service.
#[allow(
    clippy::large_enum_variant,
    reason = "a request lives briefly on the stack; the hot path (reads, writes, write batches) never builds one but goes through `wire`"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Start serving a VM; `name` prefixes its console output (`vm0 | ...`).
    AddVm {
        /// The VM.
        vm: VmId,
        /// Its name.
        name: WireName,
    },
    /// Remove a VM and every device attached to it (VM teardown).
    RemoveVm {
        /// The VM.
        vm: VmId,
    },
    /// Emulate a guest read of `size` bytes (1, 2, 4 or 8).
    Read {
        /// The VM.
        vm: VmId,
        /// MMIO or PIO.
        space: Space,
        /// Guest address or port.
        addr: u64,
        /// Access width in bytes.
        size: u8,
    },
    /// Emulate a guest write.
    Write {
        /// The VM.
        vm: VmId,
        /// MMIO or PIO.
        space: Space,
        /// Guest address or port.
        addr: u64,
        /// Access width in bytes.
        size: u8,
        /// The value written (low `size` bytes).
        value: u64,
    },
    /// Attach a device model to a VM at `base` in `space`, wired to `irq`.
    Attach {
        /// The VM.
        vm: VmId,
        /// Which model.
        device: DeviceKind,
        /// MMIO or PIO.
        space: Space,
        /// Base address or port.
        base: u64,
        /// Interrupt line the device raises.
        irq: u32,
    },
    /// Remove the device at `base` in `space`.
    Detach {
        /// The VM.
        vm: VmId,
        /// MMIO or PIO.
        space: Space,
        /// Its base.
        base: u64,
    },
    /// Console input for the VM's console `port` (bytes typed at an
    /// attached console); `NoDevice` when the VM has no such console.
    Input {
        /// The VM.
        vm: VmId,
        /// Which console.
        port: ConsolePort,
        /// The bytes, in order.
        bytes: heapless::Vec<u8, INPUT_CHUNK>,
    },
    /// Give the VM's generation ID device a new ID; the device raises its
    /// interrupt so the guest re-reads it.
    SetGenerationId {
        /// The VM.
        vm: VmId,
        /// The 128-bit ID, little-endian.
        id: [u8; 16],
    },
    /// Up to [`OUTPUT_CHUNK`] bytes of the VM's console output (its UART,
    /// or its virtio console), raw as the guest wrote them, from byte
    /// number `from` of everything it wrote.
    ConsoleRead {
        /// The VM.
        vm: VmId,
        /// The sequence number of the first byte wanted (0 = the first
        /// byte the VM ever wrote; a reader passes the last `next`).
        from: u64,
    },
    /// Writes the guest made and the kernel completed at once (its posted
    /// writes, `ipc::ioreq_abi::posted`), in the order it made them, each
    /// emulated as a `Write` would be; then, if given, the access the guest
    /// waits for, emulated after them. The answer is that access's (`Value`
    /// for a read, `Ok` for a write), or `Ok` without one: the guest was
    /// told its posted writes were done, so their failures are the device
    /// service's to report, not the caller's to hear.
    WriteBatch {
        /// The VM.
        vm: VmId,
        /// The posted writes, oldest first.
        writes: heapless::Vec<BatchWrite, MAX_BATCH>,
        /// The access that came after them, if it goes to the same client.
        then: Option<WaitedAccess>,
    },
    /// Print only `vm`'s console lines; hold the other VMs' (in a bounded
    /// buffer) until the focus is taken away (`None`) or moves, then print
    /// them, saying how many did not fit. Their output rings (`ConsoleRead`)
    /// keep everything as before.
    ConsoleFocus {
        /// The VM whose lines alone are printed; `None`: every VM's again.
        vm: Option<VmId>,
    },
    /// What `vm`'s network card counted (`Response::Net`);
    /// `Error::NoDevice` for a VM without one.
    NetCounters {
        /// The VM.
        vm: VmId,
    },
}

/// Most writes one `WriteBatch` carries (a 16550's transmit FIFO).
pub const MAX_BATCH: usize = 16;

/// One write of a `WriteBatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchWrite {
    /// MMIO or PIO.
    pub space: Space,
    /// Guest address or port.
    pub addr: u64,
    /// Access width in bytes.
    pub size: u8,
    /// The value written (low `size` bytes).
    pub value: u64,
}

/// The access a `WriteBatch` ends with: the one the guest waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitedAccess {
    /// MMIO or PIO.
    pub space: Space,
    /// Guest address or port.
    pub addr: u64,
    /// Access width in bytes.
    pub size: u8,
    /// `None` for a read; the value written for a write.
    pub write: Option<u64>,
}

/// The device service's answer.
#[allow(
    clippy::large_enum_variant,
    reason = "a response lives briefly on the stack before it is encoded; boxing would need a heap in every task"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Ok,
    /// The result of a `Read`.
    Value(u64),
    /// Refused; nothing changed.
    Err(Error),
    /// The answer to `ConsoleRead`.
    Console(ConsoleChunk),
    /// The answer to `NetCounters`.
    Net(NetCounters),
}

/// What a VM's network card counted since it was attached
/// (`Request::NetCounters`; a device reset by the guest keeps them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounters {
    /// Frames the guest sent that went to the switch.
    pub sent: u64,
    /// Frames put into the guest's receive buffers.
    pub received: u64,
    /// Frames the guest sent that were malformed and not sent.
    pub tx_dropped: u64,
    /// Frames for the guest dropped: no receive buffer, the driver not
    /// ready, or a buffer too small.
    pub rx_dropped: u64,
}

/// A piece of a VM's console output: the bytes from the requested sequence
/// number on, as far as the service still holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleChunk {
    /// The sequence number to ask from next time: one past the last byte
    /// returned. When `from` was beyond what the VM has written, no bytes
    /// come and `next` is where its output continues.
    pub next: u64,
    /// Bytes between `from` and the first byte returned that are no longer
    /// held (the service keeps only the most recent output).
    pub lost: u64,
    /// The output, in order.
    pub bytes: heapless::Vec<u8, OUTPUT_CHUNK>,
}

/// An interrupt change a device raises, sent by the device service to the
/// owner of the VM's interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IrqEvent {
    /// Drive a level-triggered line.
    SetLevel {
        /// The VM.
        vm: VmId,
        /// The line.
        irq: u32,
        /// Asserted or not.
        asserted: bool,
    },
}
