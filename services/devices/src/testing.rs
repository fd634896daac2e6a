//! Test doubles for the device environment: a recording output sink, a
//! counting entropy source and guest memory backed by a heap buffer.

use std::vec::Vec;

use crate::bus::{DeviceEnv, EntropySource, OutputSink};
use crate::memory::{GuestMemory, NoGuestMemory, OutOfRange, SliceGuestMemory};

/// Records every transmitted byte.
#[derive(Debug, Default)]
pub struct RecordingOutput(pub Vec<u8>);

impl OutputSink for RecordingOutput {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// Produces 1, 2, 3, ... (wrapping), so tests can tell which bytes it gave.
#[derive(Debug, Default)]
pub struct CountingEntropy(pub u8);

impl EntropySource for CountingEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            self.0 = self.0.wrapping_add(1);
            *byte = self.0;
        }
    }
}

/// Owns everything a [`DeviceEnv`] borrows.
#[derive(Debug, Default)]
pub struct TestEnv {
    pub output: RecordingOutput,
    pub entropy: CountingEntropy,
    pub memory: NoGuestMemory,
}

impl TestEnv {
    pub fn env(&mut self) -> DeviceEnv<'_> {
        DeviceEnv {
            memory: &mut self.memory,
            entropy: &mut self.entropy,
            output: &mut self.output,
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
