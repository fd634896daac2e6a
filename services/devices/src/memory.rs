//! Guest-physical memory as device models see it: byte reads and writes at a
//! guest address that fail, never panic, when the address is not RAM.

/// A guest memory access outside the memory a model can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// The first guest-physical address of the refused access.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// A VM's guest-physical memory.
pub trait GuestMemory {
    /// Reads `buf.len()` bytes starting at guest-physical `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange>;
    /// Writes `data` starting at guest-physical `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange>;
}

/// Guest memory backed by one byte slice that holds guest-physical
/// `base..base + bytes.len()` (a mapped grant of guest RAM, or a test's
/// array).
#[derive(Debug)]
pub struct SliceGuestMemory<'a> {
    base: u64,
    bytes: &'a mut [u8],
}

impl<'a> SliceGuestMemory<'a> {
    /// Memory at guest-physical `base` backed by `bytes`.
    pub fn new(base: u64, bytes: &'a mut [u8]) -> Self {
        Self { base, bytes }
    }

    fn window(&self, addr: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }
}

impl OutOfRange {
    /// The refusal of an access of `len` bytes at `addr`.
    pub fn of(addr: u64, len: usize) -> Self {
        OutOfRange {
            addr,
            len: u64::try_from(len).unwrap_or(u64::MAX),
        }
    }
}

impl GuestMemory for SliceGuestMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let src = self
            .window(addr, buf.len())
            .and_then(|range| self.bytes.get(range))
            .ok_or_else(|| OutOfRange::of(addr, buf.len()))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let range = self
            .window(addr, data.len())
            .ok_or_else(|| OutOfRange::of(addr, data.len()))?;
        let dst = self
            .bytes
            .get_mut(range)
            .ok_or_else(|| OutOfRange::of(addr, data.len()))?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

/// No memory at all: every access is refused. Used for a VM whose RAM has
/// not been granted to the device service.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGuestMemory;

impl GuestMemory for NoGuestMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        Err(OutOfRange::of(addr, buf.len()))
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        Err(OutOfRange::of(addr, data.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_memory_reads_and_writes_inside_and_refuses_outside() {
        let mut backing = [0u8; 16];
        let mut mem = SliceGuestMemory::new(0x1000, &mut backing);
        mem.write(0x1004, &[1, 2, 3]).unwrap();
        let mut buf = [0u8; 4];
        mem.read(0x1003, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 3]);
        mem.read(0x100c, &mut buf).unwrap();
        let past = OutOfRange {
            addr: 0x100d,
            len: 4,
        };
        assert_eq!(mem.read(0x100d, &mut buf), Err(past));
        assert_eq!(mem.write(0x100d, &buf), Err(past));
        assert!(mem.read(0xfff, &mut buf).is_err());
        assert!(mem.read(u64::MAX, &mut buf).is_err());
        assert!(mem.write(u64::MAX - 1, &buf).is_err());
    }

    #[test]
    fn no_memory_refuses_everything() {
        let mut mem = NoGuestMemory;
        let mut buf = [0u8; 1];
        assert!(mem.read(0, &mut buf).is_err());
        assert!(mem.write(0, &buf).is_err());
    }
}
