//! The device trait every model implements, the environment a model may use
//! while it handles an access (guest memory, entropy, output, block
//! storage), and the [`Bus`] of disjoint address ranges that routes a guest
//! access to the model that owns it.
//!
//! Models are written against [`BusDevice`] only: they do not know whether
//! they sit on an MMIO or a port-I/O bus, nor in which task they run.

use heapless::Vec;
use ipc::{Error, VmId, blk};

use crate::memory::GuestMemory;

/// The width of one guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    /// One byte.
    Byte = 0,
    /// Two bytes.
    Half = 1,
    /// Four bytes.
    Word = 2,
    /// Eight bytes.
    Double = 3,
}

impl AccessSize {
    /// The width for a size in bytes, or `None` for anything but 1, 2, 4, 8.
    pub const fn from_bytes(bytes: u8) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Half),
            4 => Some(Self::Word),
            8 => Some(Self::Double),
            _ => None,
        }
    }

    /// The width in bytes: 2 to the power of the discriminant (computed,
    /// not looked up: every access asks).
    pub const fn bytes(self) -> u64 {
        1 << self as u32
    }

    /// The width in bytes, as a buffer length.
    pub const fn byte_count(self) -> usize {
        match self {
            Self::Byte => 1,
            Self::Half => 2,
            Self::Word => 4,
            Self::Double => 8,
        }
    }

    /// A mask of the low `bytes()` bytes of a value.
    pub const fn mask(self) -> u64 {
        u64::MAX >> (64 - 8 * self.bytes())
    }

    /// Whether `offset` is a multiple of this width.
    pub const fn is_aligned(self, offset: u64) -> bool {
        offset.is_multiple_of(self.bytes())
    }
}

/// Why a device model refused a guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The offset is beyond the device's registers.
    OutOfRange,
    /// The device does not support this width at this register.
    BadWidth,
    /// The access is not naturally aligned where the device requires it.
    Unaligned,
    /// The register is read-only and the guest wrote it.
    ReadOnly,
}

/// Where a model sends the bytes it transmits (a UART's or a virtio
/// console's output).
pub trait OutputSink {
    /// One transmitted byte of the serial port (the UART), in order.
    fn write_byte(&mut self, byte: u8);
    /// One transmitted byte of the virtio console (hvc0), in order: its
    /// lines are assembled apart from the serial port's.
    fn write_virtio_byte(&mut self, byte: u8) {
        self.write_byte(byte);
    }
}

/// Where a model gets random bytes (virtio-rng).
pub trait EntropySource {
    /// Fills the start of `buf` with random bytes and returns how many: all
    /// of `buf`, or fewer (0 on a machine without a hardware source; the
    /// rest of `buf` is left as it was, never made up).
    fn fill(&mut self, buf: &mut [u8]) -> usize;
}

/// Where a model moves disk sectors (virtio-blk): the block service's
/// protocol, which moves them straight between a host disk and a VM's RAM
/// by guest-physical address.
pub trait BlockBackend {
    /// Serves one request: its answer, or `Response::Err` when it was
    /// refused or could not be delivered.
    fn request(&mut self, request: &blk::Request) -> blk::Response;
}

/// No block service: every request is refused with [`Error::NoDevice`]
/// (so a virtio-blk device cannot be attached).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBlock;

impl BlockBackend for NoBlock {
    fn request(&mut self, _request: &blk::Request) -> blk::Response {
        blk::Response::Err(Error::NoDevice)
    }
}

/// What a model may use while it handles one access: which VM it serves,
/// the VM's memory (for virtqueues), an entropy source, the output sink
/// and block storage.
pub struct DeviceEnv<'a> {
    /// The VM the access comes from.
    pub vm: VmId,
    /// The VM's guest-physical memory.
    pub memory: &'a mut dyn GuestMemory,
    /// Random bytes.
    pub entropy: &'a mut dyn EntropySource,
    /// Transmitted bytes.
    pub output: &'a mut dyn OutputSink,
    /// Disk sectors.
    pub block: &'a mut dyn BlockBackend,
}

/// A device model as a bus sees it.
pub trait BusDevice {
    /// The number of bytes (or ports) the device occupies.
    fn size(&self) -> u64;
    /// A guest read of `size` bytes at `offset` from the device's base.
    /// The caller guarantees `offset + size <= self.size()`.
    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError>;
    /// A guest write of the low `size` bytes of `value` at `offset`.
    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError>;
    /// The level of the device's interrupt line now (true = asserted).
    fn irq_level(&self) -> bool;
    /// The interrupt controller has latched the line's level: a device
    /// that signals by a pulse (an edge, one request per event) drops it
    /// here. Level-signalling devices keep their line as it is.
    fn irq_latched(&mut self) {}
}

/// Why a range could not be inserted into a [`Bus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The range has length zero.
    Empty,
    /// The range runs past the end of the 64-bit address space.
    Wraps,
    /// The range overlaps one already on the bus.
    Overlap,
    /// The bus holds as many devices as it can.
    Full,
}

/// One device on a bus with the range it occupies.
#[derive(Debug)]
pub struct BusEntry<T> {
    base: u64,
    len: u64,
    device: T,
}

impl<T> BusEntry<T> {
    /// The first address of the range.
    pub fn base(&self) -> u64 {
        self.base
    }
    /// The length of the range.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Always false: a bus never holds an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The device.
    pub fn device(&self) -> &T {
        &self.device
    }
    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut T {
        &mut self.device
    }
    fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }
}

/// Up to this many devices a lookup walks them instead of searching: a
/// VM has a few per bus, and the search's steps (each a multiply by the
/// size of an entry, which holds the device) cost more than the walk.
const LINEAR_LOOKUP_MAX: usize = 8;

/// Up to `N` devices at disjoint address ranges, kept sorted by base so a
/// lookup is a binary search (a walk while there are few).
#[derive(Debug)]
pub struct Bus<T, const N: usize> {
    entries: Vec<BusEntry<T>, N>,
}

impl<T, const N: usize> Default for Bus<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Bus<T, N> {
    /// An empty bus.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Puts `device` at `base..base + len`. Refuses empty, wrapping and
    /// overlapping ranges and a full bus; on refusal the device is handed
    /// back untouched.
    pub fn insert(&mut self, base: u64, len: u64, device: T) -> Result<(), (BusError, T)> {
        if len == 0 {
            return Err((BusError::Empty, device));
        }
        let Some(last) = base.checked_add(len - 1) else {
            return Err((BusError::Wraps, device));
        };
        let at = self.entries.partition_point(|e| e.base < base);
        let overlaps_prev = at
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .is_some_and(|prev| prev.contains(base));
        let overlaps_next = self.entries.get(at).is_some_and(|next| next.base <= last);
        if overlaps_prev || overlaps_next {
            return Err((BusError::Overlap, device));
        }
        self.entries
            .insert(at, BusEntry { base, len, device })
            .map_err(|entry| (BusError::Full, entry.device))
    }

    /// Removes and returns the device whose range starts at `base`.
    pub fn remove(&mut self, base: u64) -> Option<T> {
        let at = self.entries.binary_search_by_key(&base, |e| e.base).ok()?;
        Some(self.entries.remove(at).device)
    }

    /// The entry whose range contains `addr`. The ranges are disjoint, so
    /// at most one does: a few entries are walked, more are searched, with
    /// the same answer.
    pub fn find(&self, addr: u64) -> Option<&BusEntry<T>> {
        if self.entries.len() <= LINEAR_LOOKUP_MAX {
            return self.entries.iter().find(|e| e.contains(addr));
        }
        self.entries.get(self.search(addr)?)
    }

    /// The entry whose range contains `addr`, mutably (as [`find`](Self::find)).
    pub fn find_mut(&mut self, addr: u64) -> Option<&mut BusEntry<T>> {
        if self.entries.len() <= LINEAR_LOOKUP_MAX {
            return self.entries.iter_mut().find(|e| e.contains(addr));
        }
        let at = self.search(addr)?;
        self.entries.get_mut(at)
    }

    /// Where the entry whose range contains `addr` is, by binary search.
    fn search(&self, addr: u64) -> Option<usize> {
        let at = self
            .entries
            .partition_point(|e| e.base <= addr)
            .checked_sub(1)?;
        self.entries.get(at)?.contains(addr).then_some(at)
    }

    /// Every entry, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &BusEntry<T>> {
        self.entries.iter()
    }

    /// Every entry, mutably, in address order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut BusEntry<T>> {
        self.entries.iter_mut()
    }

    /// The number of devices on the bus.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bus has no devices.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn access_sizes_are_1_2_4_8_only() {
        for (bytes, size) in [(1, 1), (2, 2), (4, 4), (8, 8)] {
            assert_eq!(
                AccessSize::from_bytes(bytes).map(AccessSize::bytes),
                Some(size)
            );
        }
        for bytes in [0u8, 3, 5, 6, 7, 9, 16, 255] {
            assert_eq!(AccessSize::from_bytes(bytes), None);
        }
        let masks = [0xff, 0xffff, 0xffff_ffff, u64::MAX];
        for (size, mask) in [
            AccessSize::Byte,
            AccessSize::Half,
            AccessSize::Word,
            AccessSize::Double,
        ]
        .into_iter()
        .zip(masks)
        {
            assert_eq!(size.mask(), mask);
            assert_eq!(size.bytes(), u64::from(mask.count_ones()) / 8);
            assert_eq!(size.byte_count(), usize::try_from(size.bytes()).unwrap());
        }
        assert!(AccessSize::Word.is_aligned(8));
        assert!(!AccessSize::Word.is_aligned(6));
    }

    #[test]
    fn lookup_finds_the_owner_and_its_range() {
        let mut bus: Bus<char, 4> = Bus::new();
        bus.insert(0x300, 0x10, 'c').unwrap();
        bus.insert(0x100, 0x10, 'a').unwrap();
        bus.insert(0x200, 0x10, 'b').unwrap();
        assert_eq!(bus.find(0x100).map(|e| *e.device()), Some('a'));
        assert_eq!(bus.find(0x10f).map(|e| *e.device()), Some('a'));
        assert!(bus.find(0x110).is_none());
        assert!(bus.find(0xff).is_none());
        assert_eq!(
            bus.find(0x205).map(|e| (e.base(), e.len())),
            Some((0x200, 0x10))
        );
        assert_eq!(bus.find(0x30f).map(|e| *e.device()), Some('c'));
        assert!(bus.find(0x310).is_none());
        let bases: std::vec::Vec<u64> = bus.iter().map(|e| e.base()).collect();
        assert_eq!(bases, [0x100, 0x200, 0x300]);
    }

    #[test]
    fn insert_refuses_empty_wrapping_overlapping_and_full() {
        let mut bus: Bus<u8, 2> = Bus::new();
        assert_eq!(bus.insert(0x10, 0, 1), Err((BusError::Empty, 1)));
        assert_eq!(bus.insert(u64::MAX, 2, 1), Err((BusError::Wraps, 1)));
        bus.insert(u64::MAX, 1, 9).unwrap();
        bus.insert(0x100, 0x10, 1).unwrap();
        // Overlaps at the start, the end, inside and around.
        let mut full: Bus<u8, 8> = Bus::new();
        full.insert(0x100, 0x10, 1).unwrap();
        for (base, len) in [
            (0xf8, 0x10),
            (0x10f, 1),
            (0x104, 2),
            (0x0, 0x1000),
            (0x100, 0x10),
        ] {
            assert_eq!(full.insert(base, len, 2), Err((BusError::Overlap, 2)));
        }
        // Adjacent ranges are fine.
        full.insert(0xf0, 0x10, 3).unwrap();
        full.insert(0x110, 0x10, 4).unwrap();
        assert_eq!(bus.insert(0x0, 1, 5), Err((BusError::Full, 5)));
        assert_eq!(bus.len(), 2);
    }

    #[test]
    fn remove_is_by_base() {
        let mut bus: Bus<u8, 4> = Bus::new();
        bus.insert(0x100, 0x10, 1).unwrap();
        assert_eq!(bus.remove(0x104), None);
        assert_eq!(bus.remove(0x100), Some(1));
        assert!(bus.is_empty());
        assert!(bus.find(0x100).is_none());
        assert_eq!(bus.remove(0x100), None);
    }

    proptest! {
        /// Up to LINEAR_LOOKUP_MAX entries a lookup walks them, beyond
        /// it searches: both find what a binary search finds.
        #[test]
        fn a_walk_and_a_search_find_the_same_entry(ranges in proptest::collection::vec((0u64..256, 1u64..12), 0..24), probes in proptest::collection::vec(0u64..300, 1..48)) {
            let mut bus: Bus<u64, 24> = Bus::new();
            for (base, len) in ranges {
                let _ = bus.insert(base, len, base);
            }
            for addr in probes {
                let walked = bus.entries.iter().position(|e| e.contains(addr));
                prop_assert_eq!(bus.search(addr), walked);
                let base = walked.map(|i| bus.entries[i].base);
                prop_assert_eq!(bus.find(addr).map(|e| *e.device()), base);
                prop_assert_eq!(bus.find_mut(addr).map(|e| *e.device()), base);
            }
        }

        #[test]
        fn bus_agrees_with_a_linear_model(ops in proptest::collection::vec((0u64..64, 0u64..16, any::<bool>()), 0..64), probes in proptest::collection::vec(0u64..96, 0..32)) {
            let mut bus: Bus<u64, 8> = Bus::new();
            let mut model: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();
            for (base, len, remove) in ops {
                if remove {
                    let expected = model.iter().position(|&(b, _)| b == base).map(|i| model.remove(i).0);
                    prop_assert_eq!(bus.remove(base), expected);
                } else {
                    let overlap = model.iter().any(|&(b, l)| base < b + l && b < base + len);
                    let result = bus.insert(base, len, base);
                    if len == 0 || overlap || model.len() == 8 {
                        prop_assert!(result.is_err());
                    } else {
                        prop_assert!(result.is_ok());
                        model.push((base, len));
                    }
                }
            }
            for addr in probes {
                let expected = model.iter().find(|&&(b, l)| addr >= b && addr < b + l).map(|&(b, _)| b);
                prop_assert_eq!(bus.find(addr).map(|e| *e.device()), expected);
            }
        }
    }
}
