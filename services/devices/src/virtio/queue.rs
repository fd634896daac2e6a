//! The device side of a split virtqueue (virtio 1.2 section 2.7): take
//! descriptor chains from the available ring, move bytes to and from their
//! buffers, and return them on the used ring. Every guest value is checked;
//! a malformed queue gives a [`QueueError`], never a panic.

use heapless::Vec;

use crate::memory::{GuestMemory, OutOfRange};

/// The largest queue size any model here offers.
pub const MAX_QUEUE_SIZE: u16 = 64;

const DESC_SIZE: u64 = 16;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// Why a virtqueue could not be used. Each one means the driver broke the
/// virtio rules; the transport then sets DEVICE_NEEDS_RESET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A ring, table or buffer address is outside guest memory.
    Memory(OutOfRange),
    /// The available index moved further than the queue size since the
    /// device last looked (`avail_idx - last_seen`).
    AvailIdxJump {
        /// How far it moved.
        distance: u16,
    },
    /// A descriptor index at or beyond the queue size.
    DescriptorIndex {
        /// The index the driver gave.
        index: u16,
    },
    /// A chain loops or is longer than the queue size.
    ChainTooLong,
    /// A descriptor has the INDIRECT flag, a feature never offered.
    IndirectNotOffered,
    /// A buffer's address plus its length wraps, or a chain's total length
    /// does not fit in 32 bits.
    LengthOverflow,
    /// A device-readable descriptor follows a device-writable one.
    ReadableAfterWritable,
    /// The request needs a device-writable buffer and the chain has none.
    WritableRequired,
}

impl From<OutOfRange> for QueueError {
    fn from(err: OutOfRange) -> Self {
        Self::Memory(err)
    }
}

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Whether the device may write it (else it may only read it).
    pub writable: bool,
}

/// A validated descriptor chain taken from the available ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorChain {
    /// The head index, returned on the used ring.
    pub head: u16,
    /// The buffers, readable ones first.
    pub descriptors: Vec<Descriptor, { MAX_QUEUE_SIZE as usize }>,
}

impl DescriptorChain {
    /// Copies the device-readable bytes of the chain, in order, into `out`
    /// until it is full; returns how many bytes were copied.
    pub fn read_into(&self, memory: &dyn GuestMemory, out: &mut [u8]) -> Result<usize, QueueError> {
        let mut copied = 0usize;
        for desc in self.descriptors.iter().filter(|d| !d.writable) {
            let room = out.len().saturating_sub(copied);
            let take = room.min(usize::try_from(desc.len).unwrap_or(usize::MAX));
            let dst = out
                .get_mut(copied..copied.saturating_add(take))
                .ok_or(QueueError::LengthOverflow)?;
            memory.read(desc.addr, dst)?;
            copied = copied.saturating_add(take);
        }
        Ok(copied)
    }

    /// Calls `sink` with each piece of the device-readable bytes, in order,
    /// in chunks of at most 64 bytes; returns the total length.
    pub fn for_each_readable(
        &self,
        memory: &dyn GuestMemory,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<u32, QueueError> {
        let mut total = 0u32;
        let mut chunk = [0u8; 64];
        for desc in self.descriptors.iter().filter(|d| !d.writable) {
            let mut done = 0u32;
            while done < desc.len {
                let take = (desc.len - done).min(64);
                let addr = desc
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(QueueError::LengthOverflow)?;
                let buf = chunk
                    .get_mut(..take as usize)
                    .ok_or(QueueError::LengthOverflow)?;
                memory.read(addr, buf)?;
                sink(buf);
                done += take;
            }
            total = total
                .checked_add(desc.len)
                .ok_or(QueueError::LengthOverflow)?;
        }
        Ok(total)
    }

    /// Fills the device-writable buffers, in order, with up to `limit` bytes
    /// produced 64 at a time by `source` (which is told how many bytes it
    /// must fill); returns the number written. Fails with
    /// [`QueueError::WritableRequired`] when the chain has no writable buffer.
    pub fn fill_writable(
        &self,
        memory: &mut dyn GuestMemory,
        limit: u32,
        mut source: impl FnMut(&mut [u8]) -> usize,
    ) -> Result<u32, QueueError> {
        if !self.descriptors.iter().any(|d| d.writable) {
            return Err(QueueError::WritableRequired);
        }
        let mut written = 0u32;
        let mut chunk = [0u8; 64];
        for desc in self.descriptors.iter().filter(|d| d.writable) {
            let mut done = 0u32;
            while done < desc.len && written < limit {
                let want = (desc.len - done).min(limit - written).min(64);
                let buf = chunk
                    .get_mut(..want as usize)
                    .ok_or(QueueError::LengthOverflow)?;
                let got = source(buf).min(buf.len());
                if got == 0 {
                    return Ok(written);
                }
                let addr = desc
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(QueueError::LengthOverflow)?;
                memory.write(addr, buf.get(..got).ok_or(QueueError::LengthOverflow)?)?;
                let got = u32::try_from(got).map_err(|_| QueueError::LengthOverflow)?;
                done += got;
                written += got;
            }
        }
        Ok(written)
    }
}

/// The device's view of one split virtqueue: the driver's configuration and
/// the device's ring positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitQueue {
    /// The most entries the device allows (QueueNumMax); 0 = no such queue.
    pub max_size: u16,
    /// The size the driver chose (QueueNum).
    pub size: u16,
    /// Whether the driver marked it ready (QueueReady).
    pub ready: bool,
    /// Guest-physical address of the descriptor table.
    pub desc_table: u64,
    /// Guest-physical address of the available (driver) ring.
    pub avail_ring: u64,
    /// Guest-physical address of the used (device) ring.
    pub used_ring: u64,
    next_avail: u16,
    next_used: u16,
}

impl SplitQueue {
    /// A queue of at most `max_size` entries, not yet configured.
    pub const fn new(max_size: u16) -> Self {
        Self {
            max_size,
            size: max_size,
            ready: false,
            desc_table: 0,
            avail_ring: 0,
            used_ring: 0,
            next_avail: 0,
            next_used: 0,
        }
    }

    /// Back to the state after a device reset.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// Whether the driver's configuration is usable: a power-of-two size
    /// within the maximum and rings aligned as section 2.7 requires.
    pub fn is_valid(&self) -> bool {
        self.size != 0
            && self.size <= self.max_size
            && self.size.is_power_of_two()
            && self.desc_table.is_multiple_of(16)
            && self.avail_ring.is_multiple_of(2)
            && self.used_ring.is_multiple_of(4)
    }

    fn read_u16(memory: &dyn GuestMemory, addr: u64) -> Result<u16, QueueError> {
        let mut buf = [0u8; 2];
        memory.read(addr, &mut buf)?;
        Ok(u16::from_le_bytes(buf))
    }

    fn ring_slot(&self, ring: u64, header: u64, index: u16, entry: u64) -> Result<u64, QueueError> {
        let slot = u64::from(index % self.size.max(1));
        slot.checked_mul(entry)
            .and_then(|o| o.checked_add(header))
            .and_then(|o| ring.checked_add(o))
            .ok_or(QueueError::LengthOverflow)
    }

    fn read_descriptor(
        &self,
        memory: &dyn GuestMemory,
        index: u16,
    ) -> Result<(Descriptor, u16, u16), QueueError> {
        if index >= self.size {
            return Err(QueueError::DescriptorIndex { index });
        }
        let addr = u64::from(index)
            .checked_mul(DESC_SIZE)
            .and_then(|o| self.desc_table.checked_add(o))
            .ok_or(QueueError::LengthOverflow)?;
        let mut raw = [0u8; 16];
        memory.read(addr, &mut raw)?;
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            l0,
            l1,
            l2,
            l3,
            f0,
            f1,
            n0,
            n1,
        ] = raw;
        let desc = Descriptor {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            writable: u16::from_le_bytes([f0, f1]) & DESC_F_WRITE != 0,
        };
        Ok((
            desc,
            u16::from_le_bytes([f0, f1]),
            u16::from_le_bytes([n0, n1]),
        ))
    }

    /// Takes the next chain from the available ring, or `None` when the
    /// driver has posted nothing new. The chain is validated in full.
    pub fn pop(&mut self, memory: &dyn GuestMemory) -> Result<Option<DescriptorChain>, QueueError> {
        let avail_idx = Self::read_u16(
            memory,
            self.avail_ring
                .checked_add(2)
                .ok_or(QueueError::LengthOverflow)?,
        )?;
        let distance = avail_idx.wrapping_sub(self.next_avail);
        if distance == 0 {
            return Ok(None);
        }
        if distance > self.size {
            return Err(QueueError::AvailIdxJump { distance });
        }
        let slot = self.ring_slot(self.avail_ring, 4, self.next_avail, 2)?;
        let head = Self::read_u16(memory, slot)?;
        let chain = self.walk(memory, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    fn walk(&self, memory: &dyn GuestMemory, head: u16) -> Result<DescriptorChain, QueueError> {
        let mut chain = DescriptorChain {
            head,
            descriptors: Vec::new(),
        };
        let mut index = head;
        let mut total = 0u32;
        let mut seen_writable = false;
        loop {
            let (desc, flags, next) = self.read_descriptor(memory, index)?;
            if flags & DESC_F_INDIRECT != 0 {
                return Err(QueueError::IndirectNotOffered);
            }
            if desc.addr.checked_add(u64::from(desc.len)).is_none() {
                return Err(QueueError::LengthOverflow);
            }
            total = total
                .checked_add(desc.len)
                .ok_or(QueueError::LengthOverflow)?;
            if desc.writable {
                seen_writable = true;
            } else if seen_writable {
                return Err(QueueError::ReadableAfterWritable);
            }
            if chain.descriptors.len() >= usize::from(self.size) {
                return Err(QueueError::ChainTooLong);
            }
            chain
                .descriptors
                .push(desc)
                .map_err(|_| QueueError::ChainTooLong)?;
            if flags & DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = next;
        }
    }

    /// Takes up a queue whose ring positions were lost (the device service
    /// restarted): the device resumes at the used index it last published,
    /// so a chain it had taken and not returned is taken again.
    pub fn resume_at_used(&mut self, memory: &dyn GuestMemory) -> Result<(), QueueError> {
        let idx_addr = self
            .used_ring
            .checked_add(2)
            .ok_or(QueueError::LengthOverflow)?;
        let used = Self::read_u16(memory, idx_addr)?;
        self.next_avail = used;
        self.next_used = used;
        Ok(())
    }

    /// Returns chain `head` to the driver with `written` bytes written into
    /// it, and publishes the new used index.
    pub fn push_used(
        &mut self,
        memory: &mut dyn GuestMemory,
        head: u16,
        written: u32,
    ) -> Result<(), QueueError> {
        let slot = self.ring_slot(self.used_ring, 4, self.next_used, 8)?;
        let mut entry = [0u8; 8];
        let (id, len) = entry.split_at_mut(4);
        id.copy_from_slice(&u32::from(head).to_le_bytes());
        len.copy_from_slice(&written.to_le_bytes());
        memory.write(slot, &entry)?;
        self.next_used = self.next_used.wrapping_add(1);
        let idx_addr = self
            .used_ring
            .checked_add(2)
            .ok_or(QueueError::LengthOverflow)?;
        memory.write(idx_addr, &self.next_used.to_le_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
