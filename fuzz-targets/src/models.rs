//! Device models driven by random guest register accesses (and the host
//! events each model takes: console input, interrupt lines, new IDs),
//! checking after every step what a guest driver relies on.

use std::collections::VecDeque;

use devices::bus::{AccessSize, BlockBackend, BusDevice, DeviceEnv, EntropySource, OutputSink};
use devices::memory::SliceGuestMemory;
use devices::plic::{PLIC_CONTEXTS, PLIC_SIZE, PLIC_SOURCES, Plic};
use devices::uart16550::{FIFO_DEPTH, UART_SIZE, Uart16550};
use devices::virtio::blk::VirtioBlk;
use devices::virtio::console::VirtioConsole;
use devices::virtio::mmio::{self, VirtioMmio, reg, status};
use devices::virtio::net;
use devices::virtio::queue::MAX_QUEUE_SIZE;
use devices::virtio::rng::VirtioRng;
use devices::virtio::{VIRTIO_F_VERSION_1, VirtioDevice};
use devices::vmgenid::{STATUS_OFFSET, VMGENID_SIZE, VmGenId};
use ipc::{Error, VmId, blk};

use crate::input::Input;

/// Where the fuzzed guest's RAM starts.
pub const RAM_BASE: u64 = 0x8000_0000;
/// How much RAM the fuzzed guest has: room for two small virtqueues and
/// their buffers.
pub const RAM_SIZE: usize = 0x4000;

/// Collects what a model transmits.
#[derive(Default)]
struct Sink(Vec<u8>);

impl OutputSink for Sink {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// Predictable "random" bytes (1, 2, 3 ... from the value held).
#[derive(Default)]
pub(crate) struct Counter(pub(crate) u8);

impl EntropySource for Counter {
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        for b in buf.iter_mut() {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        buf.len()
    }
}

/// The VM the fuzzed guest is.
const VM: VmId = VmId(1);
/// The disk number the fuzzed block device serves.
const DISK: u8 = 3;

/// A block service with one disk: it answers each transfer with the next
/// answer the input queued (`Ok` when none is), and checks every request
/// against what the model promises: whole sectors, at most
/// `MAX_TRANSFER`, inside the disk, inside the guest's RAM window as far
/// as the model can know (no wrap), never a write to a read-only disk.
struct Disk {
    info: blk::DiskInfo,
    answers: VecDeque<blk::Response>,
    requests: u64,
}

impl BlockBackend for Disk {
    fn request(&mut self, request: &blk::Request) -> blk::Response {
        let (disk, vm, sector, gpa, len, write) = match *request {
            blk::Request::Info { disk } => {
                assert_eq!(disk, DISK);
                return blk::Response::Info(self.info);
            }
            blk::Request::Flush { disk } => {
                assert_eq!(disk, DISK);
                return self.answers.pop_front().unwrap_or(blk::Response::Ok);
            }
            blk::Request::WriteZeroes {
                disk,
                sector,
                sectors,
            } => {
                assert_eq!(disk, DISK);
                assert!(
                    sectors > 0 && sectors <= blk::MAX_ZEROES_SECTORS,
                    "{sectors} sectors"
                );
                let end = sector.checked_add(u64::from(sectors));
                assert!(
                    end.is_some_and(|end| end <= self.info.sectors),
                    "sector {sector} + {sectors} sectors"
                );
                assert!(!self.info.read_only, "zeroes on a read-only disk");
                self.requests += 1;
                return self.answers.pop_front().unwrap_or(blk::Response::Ok);
            }
            blk::Request::Read {
                disk,
                vm,
                sector,
                gpa,
                len,
            } => (disk, vm, sector, gpa, len, false),
            blk::Request::Write {
                disk,
                vm,
                sector,
                gpa,
                len,
            } => (disk, vm, sector, gpa, len, true),
        };
        assert_eq!((disk, vm), (DISK, VM));
        assert!(len > 0 && len <= blk::MAX_TRANSFER, "length {len}");
        assert_eq!(u64::from(len) % blk::SECTOR_SIZE, 0, "length {len}");
        let end = sector.checked_add(u64::from(len) / blk::SECTOR_SIZE);
        assert!(
            end.is_some_and(|end| end <= self.info.sectors),
            "sector {sector} + {len} bytes"
        );
        assert!(
            gpa.checked_add(u64::from(len)).is_some(),
            "gpa {gpa:#x} wraps"
        );
        assert!(
            !(write && self.info.read_only),
            "a write to a read-only disk"
        );
        self.requests += 1;
        self.answers.pop_front().unwrap_or(blk::Response::Ok)
    }
}

/// A guest's RAM, entropy, output and disk for one fuzz run.
struct Guest {
    ram: Vec<u8>,
    entropy: Counter,
    output: Sink,
    disk: Disk,
}

impl Guest {
    fn new() -> Self {
        Self {
            ram: vec![0; RAM_SIZE],
            entropy: Counter::default(),
            output: Sink::default(),
            disk: Disk {
                info: blk::DiskInfo {
                    sectors: 64,
                    read_only: false,
                },
                answers: VecDeque::new(),
                requests: 0,
            },
        }
    }

    /// Runs `f` with a device environment over this guest.
    fn with_env<R>(&mut self, f: impl FnOnce(&mut DeviceEnv<'_>) -> R) -> R {
        let mut memory = SliceGuestMemory::new(RAM_BASE, &mut self.ram);
        let mut env = DeviceEnv {
            vm: VM,
            memory: &mut memory,
            entropy: &mut self.entropy,
            output: &mut self.output,
            block: &mut self.disk,
        };
        f(&mut env)
    }
}

/// An access width: mostly the one the device wants, sometimes any.
fn size_of(input: &mut Input<'_>, usual: AccessSize) -> AccessSize {
    match input.below(8) {
        0 => AccessSize::Byte,
        1 => AccessSize::Half,
        2 => AccessSize::Word,
        3 => AccessSize::Double,
        _ => usual,
    }
}

/// The UART's registers, plus one past them.
const UART_OFFSETS: u8 = UART_SIZE.to_le_bytes()[0] + 1;
/// The generation ID device's bytes, plus one access past them.
const VMGENID_OFFSETS: u8 = VMGENID_SIZE.to_le_bytes()[0] + 9;
/// PLIC sources, plus a few that do not exist.
const PLIC_LINES: u8 = PLIC_SOURCES.to_le_bytes()[0] + 4;
/// PLIC contexts, plus one that does not exist.
const PLIC_TARGETS: u8 = PLIC_CONTEXTS.to_le_bytes()[0] + 1;
const _: () = assert!(UART_SIZE < 0xff && VMGENID_SIZE < 0xf0);
const _: () = assert!(PLIC_SOURCES < 0xf0 && PLIC_CONTEXTS < 0xff);

const LSR_DATA_READY: u8 = 0x01;
const LSR_ERRORS: u8 = 0x1e;
const LSR_TX_IDLE: u8 = 0x60;

/// The 16550 as Linux's 8250 driver sees it: IIR and LSR agree, the
/// interrupt line is what IIR says, THR writes leave in order, and the
/// divisor latch holds what was written to it.
pub fn uart16550(data: &[u8]) {
    let mut input = Input::new(data);
    let mut uart = Uart16550::new();
    let mut guest = Guest::new();
    // What the guest has set, as a driver would remember it.
    let (mut lcr, mut mcr, mut ier) = (0x03u8, 0x08u8, 0u8);
    let mut sent = Vec::new();
    while !input.is_empty() {
        match input.below(4) {
            0 => {
                let offset = u64::from(input.below(UART_OFFSETS));
                let size = size_of(&mut input, AccessSize::Byte);
                let value = guest.with_env(|env| uart.read(offset, size, env));
                if size != AccessSize::Byte || offset >= UART_SIZE {
                    assert!(value.is_err());
                } else {
                    assert!(value.is_ok_and(|v| v <= 0xff));
                }
            }
            1 => {
                let offset = u64::from(input.below(UART_OFFSETS));
                let size = size_of(&mut input, AccessSize::Byte);
                let value = input.u8();
                let before = uart.divisor();
                let wrote = guest.with_env(|env| uart.write(offset, size, u64::from(value), env));
                if wrote.is_err() {
                    assert!(size != AccessSize::Byte || offset >= UART_SIZE);
                    continue;
                }
                let dlab = lcr & 0x80 != 0;
                match (offset, dlab) {
                    (0, false) if mcr & 0x10 == 0 => sent.push(value),
                    (0, true) => assert_eq!(uart.divisor(), (before & 0xff00) | u16::from(value)),
                    (1, false) => ier = value & 0x0f,
                    (1, true) => {
                        assert_eq!(uart.divisor(), (before & 0x00ff) | u16::from(value) << 8)
                    }
                    (3, _) => lcr = value,
                    (4, _) => mcr = value & 0x1f,
                    _ => {}
                }
            }
            2 => uart.receive(input.bytes(2 * FIFO_DEPTH)),
            _ => {
                // What an interrupt handler does: IIR, then LSR.
                let line = uart.irq_level();
                let iir = guest.with_env(|env| uart.read(2, AccessSize::Byte, env));
                let lsr = guest.with_env(|env| uart.read(5, AccessSize::Byte, env));
                let (Ok(iir), Ok(lsr)) = (iir, lsr) else {
                    panic!("IIR or LSR refused a byte read");
                };
                let (iir, lsr) = (iir.to_le_bytes()[0], lsr.to_le_bytes()[0]);
                assert_eq!(
                    lsr & LSR_TX_IDLE,
                    LSR_TX_IDLE,
                    "LSR {lsr:#x}: transmitter busy"
                );
                assert_eq!(iir & 0x30, 0, "IIR {iir:#x}");
                let id = iir & 0x0f;
                assert!(
                    matches!(id, 0x00 | 0x01 | 0x02 | 0x04 | 0x06 | 0x0c),
                    "IIR {iir:#x}"
                );
                assert_eq!(line, id & 1 == 0, "line {line} but IIR {iir:#x}");
                if matches!(id, 0x04 | 0x0c) {
                    assert_ne!(
                        lsr & LSR_DATA_READY,
                        0,
                        "IIR {iir:#x} without data, LSR {lsr:#x}"
                    );
                }
                if id == 0x06 {
                    assert_ne!(lsr & LSR_ERRORS, 0, "line status IIR, LSR {lsr:#x}");
                }
                if id == 0x01 && ier & 0x01 != 0 {
                    assert_eq!(lsr & LSR_DATA_READY, 0, "data unannounced, LSR {lsr:#x}");
                }
            }
        }
        assert!(uart.rx_room() <= FIFO_DEPTH);
    }
    assert_eq!(
        guest.output.0, sent,
        "the transmitted bytes differ from the THR writes"
    );
}

/// The transport's registers a driver touches.
const VIRTIO_REGISTERS: [u64; 22] = [
    reg::MAGIC,
    reg::VERSION,
    reg::DEVICE_ID,
    reg::VENDOR_ID,
    reg::DEVICE_FEATURES,
    reg::DEVICE_FEATURES_SEL,
    reg::DRIVER_FEATURES,
    reg::DRIVER_FEATURES_SEL,
    reg::QUEUE_SEL,
    reg::QUEUE_NUM_MAX,
    reg::QUEUE_NUM,
    reg::QUEUE_READY,
    reg::QUEUE_NOTIFY,
    reg::INTERRUPT_STATUS,
    reg::INTERRUPT_ACK,
    reg::STATUS,
    reg::QUEUE_DESC_LOW,
    reg::QUEUE_DESC_HIGH,
    reg::QUEUE_DRIVER_LOW,
    reg::QUEUE_DRIVER_HIGH,
    reg::QUEUE_DEVICE_LOW,
    reg::QUEUE_DEVICE_HIGH,
];

/// A register offset: mostly a real register, sometimes config space or
/// anything in (or just past) the window.
fn virtio_offset(input: &mut Input<'_>) -> u64 {
    let pick = input.u8();
    match pick {
        0..=199 => VIRTIO_REGISTERS[usize::from(pick) % VIRTIO_REGISTERS.len()],
        200..=239 => reg::CONFIG + u64::from(pick - 200),
        _ => u64::from(input.u16()) % (mmio::VIRTIO_MMIO_SIZE + 0x10),
    }
}

/// A value to write: raw, or a guest-physical address in RAM (so queues
/// can be placed where the device can reach them).
fn virtio_value(input: &mut Input<'_>) -> u64 {
    if input.bool() {
        RAM_BASE + u64::from(input.u16()) % RAM_SIZE as u64
    } else {
        u64::from(input.u32())
    }
}

/// Reads a 32-bit transport register.
fn read_reg<D: VirtioDevice>(dev: &mut VirtioMmio<D>, guest: &mut Guest, offset: u64) -> u32 {
    let value = guest
        .with_env(|env| dev.read(offset, AccessSize::Word, env))
        .expect("a word read of a register succeeds");
    u32::try_from(value).expect("registers are 32 bits")
}

/// Everything a driver may rely on about the transport at any time.
fn check_transport<D: VirtioDevice>(dev: &mut VirtioMmio<D>, guest: &mut Guest, id: u32) {
    assert_eq!(read_reg(dev, guest, reg::MAGIC), mmio::MAGIC_VALUE);
    assert_eq!(read_reg(dev, guest, reg::VERSION), 2);
    assert_eq!(read_reg(dev, guest, reg::DEVICE_ID), id);
    assert_eq!(read_reg(dev, guest, reg::VENDOR_ID), mmio::VENDOR_ID);
    // A queue is at most MAX_QUEUE_SIZE entries, but for the network
    // card's data queues (its own size: Linux keeps 256 receive buffers).
    let largest = dev.device().queue_max_sizes().iter().copied().max();
    let limit = largest.unwrap_or(0).max(MAX_QUEUE_SIZE);
    assert!(u16::try_from(read_reg(dev, guest, reg::QUEUE_NUM_MAX)).is_ok_and(|n| n <= limit));
    assert!(read_reg(dev, guest, reg::QUEUE_READY) <= 1);
    let interrupts = read_reg(dev, guest, reg::INTERRUPT_STATUS);
    assert_eq!(interrupts, dev.interrupt_status());
    assert_eq!(
        interrupts & !(mmio::INT_USED_BUFFER | mmio::INT_CONFIG_CHANGE),
        0
    );
    assert_eq!(dev.irq_level(), interrupts != 0);
    let device_status = read_reg(dev, guest, reg::STATUS);
    assert_eq!(device_status, dev.status());
    assert_eq!(device_status & !0xff, 0);
    if dev.failure().is_some() {
        assert_ne!(device_status & status::DEVICE_NEEDS_RESET, 0);
    }
    if device_status & status::FEATURES_OK != 0 {
        assert_eq!(dev.driver_features() & !dev.offered_features(), 0);
        assert_ne!(dev.driver_features() & VIRTIO_F_VERSION_1, 0);
    }
}

/// Drives one virtio-mmio device; `host` is the device's own host event
/// (console input), given the input to read its bytes from.
fn drive_virtio<D: VirtioDevice>(
    data: &[u8],
    dev: VirtioMmio<D>,
    id: u32,
    host: impl FnMut(&mut VirtioMmio<D>, &mut Input<'_>, &mut Guest),
) {
    let info = Guest::new().disk.info;
    drive_virtio_with(data, dev, id, info, host);
}

/// [`drive_virtio`] with the guest's disk as `disk` says; returns how many
/// transfers reached the disk.
fn drive_virtio_with<D: VirtioDevice>(
    data: &[u8],
    mut dev: VirtioMmio<D>,
    id: u32,
    disk: blk::DiskInfo,
    mut host: impl FnMut(&mut VirtioMmio<D>, &mut Input<'_>, &mut Guest),
) -> u64 {
    let mut input = Input::new(data);
    let mut guest = Guest::new();
    guest.disk.info = disk;
    while !input.is_empty() {
        match input.below(8) {
            0 | 1 => {
                let offset = virtio_offset(&mut input);
                let size = size_of(&mut input, AccessSize::Word);
                let _ = guest.with_env(|env| dev.read(offset, size, env));
            }
            2..=4 => {
                let offset = virtio_offset(&mut input);
                let size = size_of(&mut input, AccessSize::Word);
                let value = virtio_value(&mut input);
                let _ = guest.with_env(|env| dev.write(offset, size, value, env));
            }
            5 | 6 => {
                // The guest writes its RAM: descriptors, rings, buffers.
                let at = usize::from(input.u16()) % RAM_SIZE;
                let bytes = input.bytes(64);
                let end = (at + bytes.len()).min(RAM_SIZE);
                guest.ram[at..end].copy_from_slice(&bytes[..end - at]);
            }
            _ => host(&mut dev, &mut input, &mut guest),
        }
        check_transport(&mut dev, &mut guest, id);
    }
    guest.disk.requests
}

/// The virtio block device: random transport accesses, guest RAM writes
/// and block-service answers (the disk checks every request it gets); a
/// read-only disk of up to 64 KiB sectors, or a writable one.
pub fn virtio_blk(data: &[u8]) {
    virtio_blk_transfers(data);
}

/// [`virtio_blk`], returning how many transfers reached the disk.
pub fn virtio_blk_transfers(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    let info = blk::DiskInfo {
        sectors: u64::from(input.u16()),
        read_only: input.below(4) == 0,
    };
    let mut probe = Guest::new();
    probe.disk.info = info;
    let model = match VirtioBlk::attach(DISK, &mut probe.disk) {
        Ok(model) => model,
        Err(e) => panic!("attach refused: {e:?}"),
    };
    assert_eq!(model.info(), info);
    let dev = VirtioMmio::new(model);
    let rest = input.rest();
    drive_virtio_with(rest, dev, 2, info, |dev, input, guest| {
        let answer = match input.below(6) {
            0 => blk::Response::Err(Error::IoFailed),
            1 => blk::Response::Err(Error::InvalidRange),
            2 => blk::Response::Err(Error::PermissionDenied),
            3 => blk::Response::Info(info),
            _ => blk::Response::Ok,
        };
        guest.disk.answers.push_back(answer);
        let before = guest.disk.requests;
        let failed = dev.failure().is_some();
        guest.with_env(|env| dev.process_queue(0, env));
        if failed {
            assert_eq!(
                guest.disk.requests, before,
                "a failed device asked the disk"
            );
        }
    })
}

/// The virtio console: random transport accesses, guest RAM writes and
/// host console input.
pub fn virtio_console(data: &[u8]) {
    let dev = VirtioMmio::new(VirtioConsole::new());
    drive_virtio(data, dev, 3, |dev, input, guest| {
        let bytes = input.bytes(128);
        dev.device_mut().queue_input(bytes);
        // The service offers new input to the receive queue at once.
        guest.with_env(|env| dev.process_queue(0, env));
        assert!(dev.device().pending_input() <= 128 + bytes.len());
    });
}

/// The virtio entropy device: random transport accesses and guest RAM
/// writes.
pub fn virtio_rng(data: &[u8]) {
    let dev = VirtioMmio::new(VirtioRng::new());
    drive_virtio(data, dev, 4, |dev, input, guest| {
        let queue = usize::from(input.below(3));
        guest.with_env(|env| dev.process_queue(queue, env));
    });
}

/// The network card: random transport accesses (a notification of
/// controlq runs its commands), guest RAM writes, frames the switch
/// delivers (each the filter and, when negotiated, mergeable receive
/// buffers see) and transmissions the service takes. A frame delivered
/// is one the card's filter takes; a transmitted one has a frame's size.
pub fn virtio_net(data: &[u8]) {
    let mac = [0x02, 0x4d, 0x49, 0x43, 0x41, 0x01];
    let dev = VirtioMmio::new(net::VirtioNet::new(mac));
    let mut packet = net::Packet::new();
    drive_virtio(data, dev, 1, |dev, input, guest| {
        if input.below(2) == 0 {
            let len = usize::from(input.u16()) % (net::MAX_FRAME + 1);
            let mut frame = vec![0u8; len];
            let head = input.bytes(16);
            let n = head.len().min(len);
            frame[..n].copy_from_slice(&head[..n]);
            let takes = dev.device().accepts(&frame);
            let delivered = guest.with_env(|env| net::deliver(dev, &frame, env));
            assert!(
                takes || !delivered,
                "a frame the filter refuses was delivered"
            );
        } else if guest.with_env(|env| net::transmit(dev, &mut packet, env)) {
            let len = packet.frame().len();
            assert!((net::MIN_FRAME..=net::MAX_FRAME).contains(&len), "{len}");
        }
    });
}

/// The VM generation ID device: the ID registers always read the current
/// ID, STATUS says whether a change awaits acknowledgement, writes to the
/// read-only bytes are refused, and the line pulses once per change.
pub fn vmgenid(data: &[u8]) {
    let mut input = Input::new(data);
    let mut dev = VmGenId::new(u128::from(input.u64()));
    let mut guest = Guest::new();
    // Whether the host has given the device an ID yet.
    let mut given = false;
    // How many new IDs the guest was told of.
    let mut announced = 0u32;
    while !input.is_empty() {
        match input.below(5) {
            0 => {
                let offset = u64::from(input.below(VMGENID_OFFSETS));
                let size = size_of(&mut input, AccessSize::Double);
                let before = dev;
                if let Ok(value) = guest.with_env(|env| dev.read(offset, size, env)) {
                    let mut bytes = [0u8; 0x20];
                    bytes[..16].copy_from_slice(&before.id().to_le_bytes());
                    bytes[16] = u8::from(before.change_pending());
                    let at = usize::try_from(offset).expect("small offset");
                    let mut expected = [0u8; 8];
                    let width = size.byte_count();
                    expected[..width].copy_from_slice(&bytes[at..at + width]);
                    assert_eq!(value, u64::from_le_bytes(expected), "read at {offset:#x}");
                }
                assert_eq!(dev, before, "a read changed the device");
            }
            1 => {
                let offset = u64::from(input.below(VMGENID_OFFSETS));
                let size = size_of(&mut input, AccessSize::Byte);
                let value = input.u64();
                let before = dev;
                let wrote = guest.with_env(|env| dev.write(offset, size, value, env));
                if wrote.is_ok() {
                    assert_eq!(dev.id(), before.id(), "a guest write changed the ID");
                    if offset == STATUS_OFFSET && value & 1 == 1 {
                        assert!(!dev.change_pending(), "the acknowledgement was lost");
                    }
                } else if offset != STATUS_OFFSET {
                    assert_eq!(dev, before, "a refused write changed the device");
                }
            }
            2 => {
                let id = u128::from(input.u64()) << 64 | u128::from(input.u64());
                let before = dev;
                let first = !core::mem::replace(&mut given, true);
                dev.set_id(id);
                assert_eq!(dev.id(), id);
                if first || id == before.id() {
                    // The boot ID, or the same ID again: nothing to tell.
                    assert_eq!(dev.change_pending(), before.change_pending());
                    assert_eq!(dev.irq_level(), before.irq_level());
                } else {
                    assert!(dev.change_pending(), "a new ID without a change");
                    assert!(dev.irq_level(), "a new ID without an interrupt");
                    announced += 1;
                }
            }
            3 => {
                dev.irq_latched();
                assert!(!dev.irq_level(), "the pulse outlived its latch");
            }
            _ => {
                // The line never rises without a change to tell.
                assert!(!dev.irq_level() || announced > 0);
            }
        }
    }
}

/// A PLIC register offset: mostly one a driver uses, sometimes any.
fn plic_offset(input: &mut Input<'_>) -> u64 {
    let context = u64::from(input.below(PLIC_TARGETS));
    let word = u64::from(input.u8()) * 4;
    match input.below(6) {
        0 => word % (PLIC_SOURCES as u64 * 4 + 8),
        1 => 0x1000 + word % 16,
        2 => 0x2000 + context * 0x80 + word % 16,
        3 => 0x20_0000 + context * 0x1000,
        4 => 0x20_0000 + context * 0x1000 + 4,
        _ => u64::from(input.u32()) % (PLIC_SIZE + 8),
    }
}

/// The PLIC: random register accesses and device lines; a context's
/// external line is up exactly when a claim would return a source, and a
/// claimed source is no longer pending.
pub fn plic(data: &[u8]) {
    let mut input = Input::new(data);
    let mut dev = Plic::new();
    let mut guest = Guest::new();
    while !input.is_empty() {
        match input.below(6) {
            0 => {
                let offset = plic_offset(&mut input);
                let size = size_of(&mut input, AccessSize::Word);
                let _ = guest.with_env(|env| dev.read(offset, size, env));
            }
            1 => {
                let offset = plic_offset(&mut input);
                let size = size_of(&mut input, AccessSize::Word);
                let value = u64::from(input.u32());
                let _ = guest.with_env(|env| dev.write(offset, size, value, env));
            }
            2 => {
                let source = u32::from(input.below(PLIC_LINES));
                dev.set_line(source, input.bool());
            }
            3 => dev.disconnect(u32::from(input.below(PLIC_LINES))),
            4 => {
                let context = usize::from(input.below(PLIC_TARGETS));
                let raised = dev.external_level(context);
                assert_eq!(
                    dev.external_levels() & 1 << context != 0,
                    raised,
                    "context {context}'s bit"
                );
                let source = dev.claim(context);
                assert_eq!(raised, source != 0, "line {raised} but claim gave {source}");
                assert!((source as usize) < PLIC_SOURCES);
                if source != 0 {
                    assert!(
                        !dev.is_pending(source),
                        "source {source} pending after its claim"
                    );
                }
            }
            _ => {
                let context = usize::from(input.below(PLIC_TARGETS));
                dev.complete(context, u32::from(input.below(PLIC_LINES)));
            }
        }
        assert!(!dev.irq_level(), "the PLIC raises no line of its own");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_virtio_blk_seeds_reach_the_disk() {
        let seeds = crate::seeds::generated("virtio_blk");
        let transfers: Vec<u64> = seeds
            .iter()
            .map(|s| super::virtio_blk_transfers(s))
            .collect();
        // Writable: the read and the write; read-only: the read alone.
        assert_eq!(transfers, [2, 1]);
    }
}
