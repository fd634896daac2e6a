//! Test doubles for the device environment: a recording output sink, a
//! counting entropy source, guest memory backed by a heap buffer, a block
//! service that records what it is asked, a guest-side virtio driver, and
//! the interrupt sink and per-VM RAM the service tests give a service.
#![allow(
    clippy::cast_possible_truncation,
    reason = "the test driver splits 64-bit guest addresses into 32-bit register halves"
)]

use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;

use ipc::devices::IrqEvent;
use ipc::{VmId, blk};

use crate::bus::{BlockBackend, DeviceEnv, EntropySource, NoBlock, OutputSink};
use crate::console_lines::ConsoleSink;
use crate::memory::{GuestMemory, NoGuestMemory, OutOfRange, SliceGuestMemory};
use crate::service::{GuestMemoryProvider, IrqSink};

/// Records every interrupt line change a service reports.
#[derive(Debug, Default)]
pub struct Irqs(pub Vec<IrqEvent>);

impl IrqSink for Irqs {
    fn irq_event(&mut self, event: IrqEvent) {
        self.0.push(event);
    }
}

/// Each VM's RAM, as the service reaches it.
#[derive(Default)]
pub struct Rams(pub Vec<(VmId, FakeRam)>);

impl GuestMemoryProvider for Rams {
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
        self.0
            .iter_mut()
            .find(|(id, _)| *id == vm)
            .map(|(_, ram)| ram as &mut dyn GuestMemory)
    }
}

/// Records every transmitted byte.
#[derive(Debug, Default)]
pub struct RecordingOutput(pub Vec<u8>);

impl OutputSink for RecordingOutput {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// Records every console line a service delivers (invalid UTF-8 shown
/// lossily).
#[derive(Debug, Default)]
pub struct Lines(pub Vec<String>);

impl ConsoleSink for Lines {
    fn write_line(&mut self, line: &[u8]) {
        self.0.push(String::from_utf8_lossy(line).into_owned());
    }
}

/// Produces 1, 2, 3, ... (wrapping), so tests can tell which bytes it
/// gave; with `dry` set, a machine without a hardware source (no bytes).
#[derive(Debug, Default)]
pub struct CountingEntropy {
    pub last: u8,
    pub dry: bool,
}

impl EntropySource for CountingEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        if self.dry {
            return 0;
        }
        for byte in buf.iter_mut() {
            self.last = self.last.wrapping_add(1);
            *byte = self.last;
        }
        buf.len()
    }
}

/// A block service with one disk of any number: answers `Info` with
/// `info`, records every other request and answers it with the next of
/// `answers` (`Ok` once they run out). It moves no bytes: tests check the
/// sectors and guest addresses it was given.
#[derive(Debug)]
pub struct FakeDisk {
    pub info: blk::DiskInfo,
    pub requests: Vec<blk::Request>,
    pub answers: VecDeque<blk::Response>,
}

impl Default for FakeDisk {
    fn default() -> Self {
        Self {
            info: blk::DiskInfo {
                sectors: 0x1000,
                read_only: false,
            },
            requests: Vec::new(),
            answers: VecDeque::new(),
        }
    }
}

impl BlockBackend for FakeDisk {
    fn request(&mut self, request: &blk::Request) -> blk::Response {
        if let blk::Request::Info { .. } = request {
            return blk::Response::Info(self.info);
        }
        self.requests.push(*request);
        self.answers.pop_front().unwrap_or(blk::Response::Ok)
    }
}

/// The VM every test guest is.
pub const TEST_VM: VmId = VmId(3);

/// Owns everything a [`DeviceEnv`] borrows.
#[derive(Debug, Default)]
pub struct TestEnv {
    pub output: RecordingOutput,
    pub entropy: CountingEntropy,
    pub memory: NoGuestMemory,
    pub block: NoBlock,
}

impl TestEnv {
    pub fn env(&mut self) -> DeviceEnv<'_> {
        DeviceEnv {
            vm: TEST_VM,
            memory: &mut self.memory,
            entropy: &mut self.entropy,
            output: &mut self.output,
            block: &mut self.block,
        }
    }
}

/// Guest RAM for virtio tests: `size` bytes at guest-physical `base`.
#[derive(Debug)]
pub struct FakeRam {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl FakeRam {
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: std::vec![0; size],
        }
    }

    pub fn write_u16(&mut self, addr: u64, value: u16) {
        self.write(addr, &value.to_le_bytes()).unwrap();
    }

    pub fn write_u32(&mut self, addr: u64, value: u32) {
        self.write(addr, &value.to_le_bytes()).unwrap();
    }

    pub fn write_u64(&mut self, addr: u64, value: u64) {
        self.write(addr, &value.to_le_bytes()).unwrap();
    }

    pub fn read_u16(&self, addr: u64) -> u16 {
        let mut buf = [0; 2];
        self.read(addr, &mut buf).unwrap();
        u16::from_le_bytes(buf)
    }

    pub fn read_u32(&self, addr: u64) -> u32 {
        let mut buf = [0; 4];
        self.read(addr, &mut buf).unwrap();
        u32::from_le_bytes(buf)
    }

    pub fn bytes_at(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = std::vec![0; len];
        self.read(addr, &mut buf).unwrap();
        buf
    }
}

impl GuestMemory for FakeRam {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let start = addr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok());
        let src = start
            .and_then(|s| Some(s..s.checked_add(buf.len())?))
            .and_then(|r| self.bytes.get(r));
        let src = src.ok_or(OutOfRange {
            addr,
            len: buf.len() as u64,
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        SliceGuestMemory::new(self.base, &mut self.bytes).write(addr, data)
    }
}

/// The guest driver's side of one split virtqueue, laid out in [`FakeRam`].
#[derive(Debug)]
pub struct GuestQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub next_desc: u16,
    pub avail_idx: u16,
}

impl GuestQueue {
    /// A queue of `size` entries whose rings start at `base` (needs 0x3000
    /// bytes).
    pub fn new(base: u64, size: u16) -> Self {
        Self {
            size,
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// Writes descriptor `index` raw.
    pub fn write_desc(
        &self,
        ram: &mut FakeRam,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = self.desc + u64::from(index) * 16;
        ram.write_u64(at, addr);
        ram.write_u32(at + 8, len);
        ram.write_u16(at + 12, flags);
        ram.write_u16(at + 14, next);
    }

    /// Publishes `head` on the available ring.
    pub fn publish(&mut self, ram: &mut FakeRam, head: u16) {
        let slot = self.avail + 4 + u64::from(self.avail_idx % self.size) * 2;
        ram.write_u16(slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.write_u16(self.avail + 2, self.avail_idx);
    }

    /// Posts a chain of `(addr, len, writable)` buffers; returns its head.
    pub fn post(&mut self, ram: &mut FakeRam, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let index = (self.next_desc + i as u16) % self.size;
            let last = i + 1 == bufs.len();
            let flags = if writable { 2 } else { 0 } | if last { 0 } else { 1 };
            self.write_desc(ram, index, addr, len, flags, (index + 1) % self.size);
        }
        self.next_desc = (self.next_desc + bufs.len() as u16) % self.size;
        self.publish(ram, head);
        head
    }

    /// Posts one descriptor pointing at an indirect table at `table`
    /// holding `bufs` (chained in order); returns its head.
    pub fn post_indirect(
        &mut self,
        ram: &mut FakeRam,
        table: u64,
        bufs: &[(u64, u32, bool)],
    ) -> u16 {
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let at = table + i as u64 * 16;
            let last = i + 1 == bufs.len();
            ram.write_u64(at, addr);
            ram.write_u32(at + 8, len);
            ram.write_u16(
                at + 12,
                if writable { 2 } else { 0 } | if last { 0 } else { 1 },
            );
            ram.write_u16(at + 14, i as u16 + 1);
        }
        let head = self.next_desc;
        self.write_desc(ram, head, table, bufs.len() as u32 * 16, 4, 0);
        self.next_desc = (self.next_desc + 1) % self.size;
        self.publish(ram, head);
        head
    }

    /// Sets the driver's `used_event` (EVENT_IDX): interrupt me once the
    /// used index passes `event`.
    pub fn set_used_event(&self, ram: &mut FakeRam, event: u16) {
        ram.write_u16(self.avail + 4 + u64::from(self.size) * 2, event);
    }

    /// The device's `avail_event` (EVENT_IDX).
    pub fn avail_event(&self, ram: &FakeRam) -> u16 {
        ram.read_u16(self.used + 4 + u64::from(self.size) * 8)
    }

    /// The device's used index.
    pub fn used_idx(&self, ram: &FakeRam) -> u16 {
        ram.read_u16(self.used + 2)
    }

    /// Used ring entry `i`: (head id, bytes written).
    pub fn used_entry(&self, ram: &FakeRam, i: u16) -> (u32, u32) {
        let at = self.used + 4 + u64::from(i % self.size) * 8;
        (ram.read_u32(at), ram.read_u32(at + 4))
    }
}

/// A guest virtio driver talking to a device through its MMIO registers,
/// with its own RAM (1 MiB at 0x8000_0000; queue `i` rings at
/// `0x8000_0000 + i * 0x4000`, buffers from 0x8008_0000).
pub struct VirtioGuest<D> {
    pub dev: crate::virtio::mmio::VirtioMmio<D>,
    pub ram: FakeRam,
    pub output: RecordingOutput,
    pub entropy: CountingEntropy,
    pub block: FakeDisk,
    pub queues: Vec<GuestQueue>,
}

pub const GUEST_RAM: u64 = 0x8000_0000;
pub const GUEST_BUFFERS: u64 = GUEST_RAM + 0x8_0000;

impl<D: crate::virtio::VirtioDevice> VirtioGuest<D> {
    pub fn new(device: D) -> Self {
        Self {
            dev: crate::virtio::mmio::VirtioMmio::new(device),
            ram: FakeRam::new(GUEST_RAM, 0x10_0000),
            output: RecordingOutput::default(),
            entropy: CountingEntropy::default(),
            block: FakeDisk::default(),
            queues: Vec::new(),
        }
    }

    /// Runs `f` on the device with an environment over this guest.
    pub fn with_env<R>(
        &mut self,
        f: impl FnOnce(&mut crate::virtio::mmio::VirtioMmio<D>, &mut DeviceEnv<'_>) -> R,
    ) -> R {
        let env = &mut DeviceEnv {
            vm: TEST_VM,
            memory: &mut self.ram,
            entropy: &mut self.entropy,
            output: &mut self.output,
            block: &mut self.block,
        };
        f(&mut self.dev, env)
    }

    /// Serves queue `index` as the service does when the device has news.
    pub fn process_queue(&mut self, index: usize) {
        self.with_env(|dev, env| dev.process_queue(index, env));
    }

    pub fn read(&mut self, offset: u64) -> u32 {
        use crate::bus::{AccessSize, BusDevice};
        let value = self
            .with_env(|dev, env| dev.read(offset, AccessSize::Word, env))
            .unwrap();
        u32::try_from(value).unwrap()
    }

    /// A read of `size` bytes at `offset` (config space).
    pub fn read_sized(&mut self, offset: u64, size: crate::bus::AccessSize) -> u64 {
        use crate::bus::BusDevice;
        self.with_env(|dev, env| dev.read(offset, size, env))
            .unwrap()
    }

    pub fn write(&mut self, offset: u64, value: u32) {
        use crate::bus::{AccessSize, BusDevice};
        self.with_env(|dev, env| dev.write(offset, AccessSize::Word, u64::from(value), env))
            .unwrap();
    }

    /// A write of the low `size` bytes of `value` at `offset` (config
    /// space).
    pub fn write_sized(&mut self, offset: u64, size: crate::bus::AccessSize, value: u64) {
        use crate::bus::BusDevice;
        self.with_env(|dev, env| dev.write(offset, size, value, env))
            .unwrap();
    }

    /// Negotiates `features`; returns the Status read back after setting
    /// FEATURES_OK.
    pub fn negotiate(&mut self, features: u64) -> u32 {
        self.write(0x70, 0);
        self.write(0x70, 1);
        self.write(0x70, 1 | 2);
        self.write(0x24, 0);
        self.write(0x20, features as u32);
        self.write(0x24, 1);
        self.write(0x20, (features >> 32) as u32);
        self.write(0x70, 1 | 2 | 8);
        self.read(0x70)
    }

    /// Sets up queue `index` with `size` entries and marks it ready.
    pub fn setup_queue(&mut self, index: u32, size: u16) {
        let queue = GuestQueue::new(GUEST_RAM + u64::from(index) * 0x4000, size);
        self.write(0x30, index);
        self.write(0x38, u32::from(size));
        self.write(0x80, queue.desc as u32);
        self.write(0x84, (queue.desc >> 32) as u32);
        self.write(0x90, queue.avail as u32);
        self.write(0x94, (queue.avail >> 32) as u32);
        self.write(0xa0, queue.used as u32);
        self.write(0xa4, (queue.used >> 32) as u32);
        self.write(0x44, 1);
        self.queues.push(queue);
    }

    /// Full bring-up: VERSION_1 only, `queues` queues of 8, DRIVER_OK.
    pub fn bring_up(&mut self, queues: u32) {
        self.bring_up_with(queues, crate::virtio::VIRTIO_F_VERSION_1);
    }

    /// Full bring-up with `features` negotiated.
    pub fn bring_up_with(&mut self, queues: u32, features: u64) {
        assert_eq!(self.negotiate(features) & 8, 8);
        for index in 0..queues {
            self.setup_queue(index, 8);
        }
        self.write(0x70, 1 | 2 | 8 | 4);
    }

    /// Posts buffers on queue `index` and notifies the device.
    pub fn post_and_notify(&mut self, index: usize, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.queues[index].post(&mut self.ram, bufs);
        self.write(0x50, index as u32);
        head
    }
}

impl FakeRam {
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) {
        self.write(addr, data).unwrap();
    }
}
