//! The device side of a split virtqueue (virtio 1.2 section 2.7): take
//! descriptor chains from the available ring, move bytes to and from their
//! buffers, and return them on the used ring. Every guest value is checked;
//! a malformed queue gives a [`QueueError`], never a panic.
//!
//! Two ring features change what the device does once the driver has
//! negotiated them ([`RingFeatures`]): VIRTIO_F_INDIRECT_DESC (2.7.5.3), a
//! descriptor that points at a table of further descriptors, and
//! VIRTIO_F_EVENT_IDX (2.7.7, 2.7.10), where the driver says after which
//! used entry it wants an interrupt (`used_event`, the avail ring's last
//! field) and the device says after which available entry it wants a
//! notification (`avail_event`, the used ring's last field).

use heapless::Vec;

use crate::memory::{GuestMemory, OutOfRange};

/// The largest queue size any model here offers.
pub const MAX_QUEUE_SIZE: u16 = 64;

/// The most descriptors one chain may have, indirect tables included (a
/// chain is kept whole in a [`DescriptorChain`]).
pub const MAX_CHAIN: usize = MAX_QUEUE_SIZE as usize;

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
    /// A chain loops or is longer than the queue size (its direct part)
    /// or than [`MAX_CHAIN`] (with its indirect table).
    ChainTooLong,
    /// A descriptor has the INDIRECT flag and the driver did not negotiate
    /// VIRTIO_F_INDIRECT_DESC.
    IndirectNotNegotiated,
    /// A descriptor has both the INDIRECT and the NEXT flags (2.7.5.3.1:
    /// an indirect descriptor ends its chain).
    IndirectWithNext,
    /// A descriptor inside an indirect table has the INDIRECT flag (only
    /// one table per chain).
    NestedIndirect,
    /// An indirect table's length is zero, not a multiple of 16 bytes, or
    /// more than [`MAX_CHAIN`] descriptors.
    BadIndirectTable {
        /// The table's length in bytes.
        len: u32,
    },
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
    pub descriptors: Vec<Descriptor, MAX_CHAIN>,
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

    /// The number of device-readable bytes.
    pub fn readable_len(&self) -> u64 {
        self.descriptors
            .iter()
            .filter(|d| !d.writable)
            .map(|d| u64::from(d.len))
            .sum()
    }

    /// The number of device-writable bytes.
    pub fn writable_len(&self) -> u64 {
        self.descriptors
            .iter()
            .filter(|d| d.writable)
            .map(|d| u64::from(d.len))
            .sum()
    }

    /// Reads `out.len()` device-readable bytes starting `offset` bytes into
    /// them (across buffers); false, `out` unspecified, when the chain has
    /// fewer.
    pub fn read_at(
        &self,
        memory: &dyn GuestMemory,
        offset: u64,
        out: &mut [u8],
    ) -> Result<bool, QueueError> {
        let mut skip = offset;
        let mut filled = 0usize;
        for desc in self.descriptors.iter().filter(|d| !d.writable) {
            if filled == out.len() {
                break;
            }
            let len = u64::from(desc.len);
            if skip >= len {
                skip -= len;
                continue;
            }
            let avail = usize::try_from(len - skip).unwrap_or(usize::MAX);
            let take = avail.min(out.len() - filled);
            let dst = out
                .get_mut(filled..filled + take)
                .ok_or(QueueError::LengthOverflow)?;
            memory.read(Self::offset(desc.addr, skip)?, dst)?;
            filled += take;
            skip = 0;
        }
        Ok(filled == out.len())
    }

    fn offset(addr: u64, by: u64) -> Result<u64, QueueError> {
        addr.checked_add(by).ok_or(QueueError::LengthOverflow)
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

/// The ring features (virtio 1.2 section 6) the driver negotiated; the
/// device acts on one only when it is set here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFeatures {
    /// VIRTIO_F_INDIRECT_DESC: descriptors may point at indirect tables.
    pub indirect_desc: bool,
    /// VIRTIO_F_EVENT_IDX: interrupts follow `used_event`, and the device
    /// keeps `avail_event` up to date.
    pub event_idx: bool,
}

impl RingFeatures {
    /// The ring features among the negotiated `features`.
    pub const fn negotiated(features: u64) -> Self {
        Self {
            indirect_desc: features & super::VIRTIO_F_INDIRECT_DESC != 0,
            event_idx: features & super::VIRTIO_F_EVENT_IDX != 0,
        }
    }
}

/// Whether a driver (or device) that asked to hear about index `event`
/// must be told now that the index has moved from `old` to `new`: the
/// `vring_need_event` rule of virtio 1.2 section 2.7.10, in wrapping u16
/// arithmetic (`event` lies in `old..new`).
pub const fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// A descriptor as the table holds it.
#[derive(Clone, Copy)]
struct RawDescriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl RawDescriptor {
    fn read(memory: &dyn GuestMemory, addr: u64) -> Result<Self, QueueError> {
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
        Ok(Self {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        })
    }

    fn has(self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// A chain being collected: the buffers so far and what the rules about
/// the next one need to know.
struct ChainBuilder {
    chain: DescriptorChain,
    total: u32,
    seen_writable: bool,
}

impl ChainBuilder {
    /// Adds one buffer (not an indirect-table descriptor).
    fn add(&mut self, raw: RawDescriptor) -> Result<(), QueueError> {
        if raw.addr.checked_add(u64::from(raw.len)).is_none() {
            return Err(QueueError::LengthOverflow);
        }
        self.total = self
            .total
            .checked_add(raw.len)
            .ok_or(QueueError::LengthOverflow)?;
        let writable = raw.has(DESC_F_WRITE);
        if writable {
            self.seen_writable = true;
        } else if self.seen_writable {
            return Err(QueueError::ReadableAfterWritable);
        }
        self.chain
            .descriptors
            .push(Descriptor {
                addr: raw.addr,
                len: raw.len,
                writable,
            })
            .map_err(|_| QueueError::ChainTooLong)
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
    /// The ring features negotiated (none after a reset).
    pub features: RingFeatures,
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
            features: RingFeatures {
                indirect_desc: false,
                event_idx: false,
            },
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

    /// The used index the device has published (how many chains it has
    /// returned, wrapping).
    pub fn used_index(&self) -> u16 {
        self.next_used
    }

    fn read_u16(memory: &dyn GuestMemory, addr: u64) -> Result<u16, QueueError> {
        let mut buf = [0u8; 2];
        memory.read(addr, &mut buf)?;
        Ok(u16::from_le_bytes(buf))
    }

    /// `ring + offset`, checked.
    fn at(ring: u64, offset: u64) -> Result<u64, QueueError> {
        ring.checked_add(offset).ok_or(QueueError::LengthOverflow)
    }

    fn ring_slot(&self, ring: u64, header: u64, index: u16, entry: u64) -> Result<u64, QueueError> {
        let slot = u64::from(index % self.size.max(1));
        slot.checked_mul(entry)
            .and_then(|o| o.checked_add(header))
            .and_then(|o| ring.checked_add(o))
            .ok_or(QueueError::LengthOverflow)
    }

    /// The avail ring's `used_event` (after its `size` entries).
    fn used_event_addr(&self) -> Result<u64, QueueError> {
        Self::at(self.avail_ring, 4 + 2 * u64::from(self.size))
    }

    /// The used ring's `avail_event` (after its `size` entries).
    fn avail_event_addr(&self) -> Result<u64, QueueError> {
        Self::at(self.used_ring, 4 + 8 * u64::from(self.size))
    }

    fn read_descriptor(
        &self,
        memory: &dyn GuestMemory,
        index: u16,
    ) -> Result<RawDescriptor, QueueError> {
        if index >= self.size {
            return Err(QueueError::DescriptorIndex { index });
        }
        let addr = u64::from(index)
            .checked_mul(DESC_SIZE)
            .and_then(|o| self.desc_table.checked_add(o))
            .ok_or(QueueError::LengthOverflow)?;
        RawDescriptor::read(memory, addr)
    }

    fn avail_idx(&self, memory: &dyn GuestMemory) -> Result<u16, QueueError> {
        Self::read_u16(memory, Self::at(self.avail_ring, 2)?)
    }

    /// Takes the next chain from the available ring, or `None` when the
    /// driver has posted nothing new. The chain is validated in full.
    ///
    /// With EVENT_IDX, finding the ring empty writes `avail_event` (the
    /// driver is to notify once it makes the next entry available) and
    /// looks again, as the driver may have added one before it saw that.
    pub fn pop(
        &mut self,
        memory: &mut dyn GuestMemory,
    ) -> Result<Option<DescriptorChain>, QueueError> {
        let mut avail_idx = self.avail_idx(memory)?;
        if avail_idx == self.next_avail && self.features.event_idx {
            memory.write(self.avail_event_addr()?, &self.next_avail.to_le_bytes())?;
            avail_idx = self.avail_idx(memory)?;
        }
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
        let mut builder = ChainBuilder {
            chain: DescriptorChain {
                head,
                descriptors: Vec::new(),
            },
            total: 0,
            seen_writable: false,
        };
        let mut index = head;
        let mut direct = 0u16;
        loop {
            if direct >= self.size {
                return Err(QueueError::ChainTooLong);
            }
            direct += 1;
            let raw = self.read_descriptor(memory, index)?;
            if raw.has(DESC_F_INDIRECT) {
                // Zero or more direct descriptors, then one indirect one
                // (2.7.5.3.2); its WRITE flag means nothing.
                if !self.features.indirect_desc {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if raw.has(DESC_F_NEXT) {
                    return Err(QueueError::IndirectWithNext);
                }
                Self::walk_indirect(memory, raw, &mut builder)?;
                return Ok(builder.chain);
            }
            builder.add(raw)?;
            if !raw.has(DESC_F_NEXT) {
                return Ok(builder.chain);
            }
            index = raw.next;
        }
    }

    /// Adds the buffers of the indirect table `table` points at: entries
    /// chained by NEXT from entry 0, each inside the table, none itself
    /// indirect, at most one visit per entry (so a loop ends as
    /// [`QueueError::ChainTooLong`]).
    fn walk_indirect(
        memory: &dyn GuestMemory,
        table: RawDescriptor,
        builder: &mut ChainBuilder,
    ) -> Result<(), QueueError> {
        let bad = QueueError::BadIndirectTable { len: table.len };
        let entries = u64::from(table.len) / DESC_SIZE;
        if table.len == 0
            || !u64::from(table.len).is_multiple_of(DESC_SIZE)
            || entries > MAX_CHAIN as u64
        {
            return Err(bad);
        }
        if table.addr.checked_add(u64::from(table.len)).is_none() {
            return Err(QueueError::LengthOverflow);
        }
        let mut index = 0u16;
        for _ in 0..entries {
            if u64::from(index) >= entries {
                return Err(QueueError::DescriptorIndex { index });
            }
            let raw =
                RawDescriptor::read(memory, Self::at(table.addr, u64::from(index) * DESC_SIZE)?)?;
            if raw.has(DESC_F_INDIRECT) {
                return Err(QueueError::NestedIndirect);
            }
            builder.add(raw)?;
            if !raw.has(DESC_F_NEXT) {
                return Ok(());
            }
            index = raw.next;
        }
        Err(QueueError::ChainTooLong)
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
        self.add_used(memory, head, written)?;
        self.publish_used(memory)
    }

    /// Writes the used entry returning chain `head` with `written` bytes
    /// written into it, without publishing it: the driver sees it only at
    /// the next [`SplitQueue::publish_used`] (so several entries that make
    /// one packet appear together).
    pub fn add_used(
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
        Ok(())
    }

    /// Publishes the used index: every entry added so far is the driver's.
    pub fn publish_used(&mut self, memory: &mut dyn GuestMemory) -> Result<(), QueueError> {
        memory.write(Self::at(self.used_ring, 2)?, &self.next_used.to_le_bytes())?;
        Ok(())
    }

    /// Whether the driver wants an interrupt for the chains returned since
    /// the used index was `old`: whenever any was without EVENT_IDX, else
    /// when the used index passed the driver's `used_event` (2.7.10).
    pub fn needs_interrupt(&self, memory: &dyn GuestMemory, old: u16) -> Result<bool, QueueError> {
        if self.next_used == old {
            return Ok(false);
        }
        if !self.features.event_idx {
            return Ok(true);
        }
        let event = Self::read_u16(memory, self.used_event_addr()?)?;
        Ok(need_event(event, self.next_used, old))
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
