//! virtio-blk (device ID 2, virtio 1.2 section 5.2): one request queue
//! whose reads and writes become block-service requests (`ipc::blk`) that
//! move sectors between a host disk and the guest's buffers by
//! guest-physical address; the model never holds the data itself.
//!
//! A request is a header (type, reserved, sector: 16 bytes) in the first
//! device-readable bytes, then data, then a status byte in the last
//! device-writable byte, split across descriptors in any way. The model
//! owns the checks between the guest and the block service: sector range
//! against the capacity, whole sectors per buffer, data buffers the right
//! way for the request, the read-only flag, transfers split at
//! [`blk::MAX_TRANSFER`]. A request it can answer gets a
//! status; a chain with no writable byte (nowhere to put a status) or a
//! buffer the kernel refuses (outside the VM's RAM) fails the device
//! (DEVICE_NEEDS_RESET).

use heapless::Vec;
use ipc::blk::{self, DiskInfo, SECTOR_SIZE};
use ipc::{Error, VmId};

use super::VirtioDevice;
use super::queue::{DescriptorChain, MAX_QUEUE_SIZE, QueueError, SplitQueue};
use crate::bus::{BlockBackend, DeviceEnv};
use crate::memory::{GuestMemory, OutOfRange};

/// The virtio device ID of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// The request queue's index (the only queue: no multiqueue feature).
pub const REQUESTQ: usize = 0;
/// The most data buffers one request may have (`seg_max`): a chain holds
/// at most a queue's worth of descriptors, two of them header and status.
pub const SEG_MAX: u32 = MAX_QUEUE_SIZE as u32 - 2;
/// Bytes of the device ID string a GET_ID request returns (NUL-padded).
pub const ID_BYTES: usize = 20;

/// Device feature bits (section 5.2.3).
pub mod feature {
    /// `seg_max` holds the most data buffers per request.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The disk is read-only: writes fail.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` holds the disk's block size.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are served.
    pub const FLUSH: u64 = 1 << 9;
}

/// Request types (section 5.2.6).
pub mod request_type {
    /// Read sectors into the guest's buffers.
    pub const IN: u32 = 0;
    /// Write the guest's buffers to sectors.
    pub const OUT: u32 = 1;
    /// Make written sectors durable.
    pub const FLUSH: u32 = 4;
    /// The device ID string.
    pub const GET_ID: u32 = 8;
}

/// Request status bytes (section 5.2.6).
pub mod status {
    /// Done.
    pub const OK: u8 = 0;
    /// Failed (or refused: past the capacity, read-only, not whole sectors).
    pub const IOERR: u8 = 1;
    /// A request type the device does not serve.
    pub const UNSUPP: u8 = 2;
}

/// The header's length.
const HEADER_LEN: u32 = 16;
/// `struct virtio_blk_config` up to `blk_size`, the last field offered.
const CONFIG_LEN: usize = 24;

/// A block device's model, serving host disk `disk`.
#[derive(Clone, Debug)]
pub struct VirtioBlk {
    disk: u8,
    info: DiskInfo,
    config: [u8; CONFIG_LEN],
    requests: u64,
}

/// A stretch of guest buffer: guest-physical address and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    addr: u64,
    len: u32,
}

/// A chain's worth of pieces (each descriptor gives at most one).
type Pieces = Vec<Piece, { MAX_QUEUE_SIZE as usize }>;

/// Bytes `skip..skip + take` of the chain's readable (or writable) bytes,
/// taken in order, as pieces of its descriptors.
fn pieces(chain: &DescriptorChain, writable: bool, skip: u64, take: u64) -> Pieces {
    let end = skip.saturating_add(take);
    let mut out = Pieces::new();
    let mut at = 0u64;
    for desc in chain.descriptors.iter().filter(|d| d.writable == writable) {
        let desc_end = at.saturating_add(u64::from(desc.len));
        let (from, to) = (at.max(skip), desc_end.min(end));
        if from < to {
            let piece = Piece {
                // The queue checked that a buffer does not wrap.
                addr: desc.addr.saturating_add(from - at),
                len: u32::try_from(to - from).unwrap_or(u32::MAX),
            };
            // At most one piece per descriptor: always room.
            let _ = out.push(piece);
        }
        at = desc_end;
    }
    out
}

/// `pieces` with each run of pieces that follow one another in guest
/// memory joined into one (the sectors follow one another anyway), so a
/// guest's physically contiguous buffers take one request, not one each.
fn joined(pieces: &[Piece]) -> Pieces {
    let mut out = Pieces::new();
    for &piece in pieces {
        if let Some(last) = out.last_mut() {
            let follows = last.addr.checked_add(u64::from(last.len)) == Some(piece.addr);
            if let (true, Some(len)) = (follows, last.len.checked_add(piece.len)) {
                last.len = len;
                continue;
            }
        }
        // No more pieces out than in: always room.
        let _ = out.push(piece);
    }
    out
}

/// The chain's readable (or writable) bytes in all.
fn total(chain: &DescriptorChain, writable: bool) -> u64 {
    chain
        .descriptors
        .iter()
        .filter(|d| d.writable == writable)
        .map(|d| u64::from(d.len))
        .sum()
}

/// Writes `bytes` across `pieces` as far as they reach; returns how many
/// bytes were written.
fn write_pieces(
    memory: &mut dyn GuestMemory,
    pieces: &[Piece],
    mut bytes: &[u8],
) -> Result<u32, QueueError> {
    let mut written = 0u32;
    for piece in pieces {
        if bytes.is_empty() {
            break;
        }
        let take = bytes
            .len()
            .min(usize::try_from(piece.len).unwrap_or(usize::MAX));
        let (now, rest) = bytes.split_at(take);
        memory.write(piece.addr, now)?;
        written = written.saturating_add(u32::try_from(take).unwrap_or(u32::MAX));
        bytes = rest;
    }
    Ok(written)
}

/// A request's outcome: its status byte and the data bytes written into
/// the guest's buffers before it.
struct Outcome {
    status: u8,
    written: u32,
}

impl Outcome {
    const fn status(status: u8) -> Self {
        Self { status, written: 0 }
    }
}

/// Which way a transfer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Disk to guest (IN).
    Read,
    /// Guest to disk (OUT).
    Write,
}

impl VirtioBlk {
    /// A device serving disk `disk`, which is as `info` says.
    pub fn new(disk: u8, info: DiskInfo) -> Self {
        let mut config = [0u8; CONFIG_LEN];
        // capacity (le64) at 0, seg_max (le32) at 12, blk_size (le32) at
        // 20; size_max and geometry stay 0, their features not offered.
        let fields: [(usize, &[u8]); 3] = [
            (0, &info.sectors.to_le_bytes()),
            (12, &SEG_MAX.to_le_bytes()),
            (20, &512u32.to_le_bytes()),
        ];
        for (at, bytes) in fields {
            if let Some(field) = config.get_mut(at..at + bytes.len()) {
                field.copy_from_slice(bytes);
            }
        }
        Self {
            disk,
            info,
            config,
            requests: 0,
        }
    }

    /// A device for disk `disk`, as the block service describes it; the
    /// service's refusal (no such disk: `Error::NoDevice`) otherwise.
    pub fn attach(disk: u8, backend: &mut dyn BlockBackend) -> Result<Self, Error> {
        match backend.request(&blk::Request::Info { disk }) {
            blk::Response::Info(info) => Ok(Self::new(disk, info)),
            blk::Response::Err(err) => Err(err),
            blk::Response::Ok => Err(Error::Malformed),
        }
    }

    /// The host disk it serves.
    pub fn disk(&self) -> u8 {
        self.disk
    }

    /// What that disk is.
    pub fn info(&self) -> DiskInfo {
        self.info
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The device ID string: `mica-disk<N>`, NUL-padded.
    pub fn serial(&self) -> [u8; ID_BYTES] {
        let mut id = [0u8; ID_BYTES];
        let prefix = b"mica-disk";
        let digits = [self.disk / 100, self.disk / 10 % 10, self.disk % 10];
        let first = digits.iter().position(|&d| d != 0).unwrap_or(2);
        let text = prefix
            .iter()
            .copied()
            .chain(digits.iter().skip(first).map(|d| b'0' + d));
        for (slot, byte) in id.iter_mut().zip(text) {
            *slot = byte;
        }
        id
    }

    /// Serves one chain; returns the used length (data written + status).
    fn serve(
        &mut self,
        chain: &DescriptorChain,
        env: &mut DeviceEnv<'_>,
    ) -> Result<u32, QueueError> {
        let writable = total(chain, true);
        let Some(status_at) = writable
            .checked_sub(1)
            .and_then(|last| pieces(chain, true, last, 1).first().copied())
        else {
            return Err(QueueError::WritableRequired);
        };
        let data_in = pieces(chain, true, 0, writable - 1);
        let mut header = [0u8; HEADER_LEN as usize];
        let outcome = if chain.read_into(env.memory, &mut header)? < header.len() {
            Outcome::status(status::IOERR)
        } else {
            let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = header;
            let kind = u32::from_le_bytes([t0, t1, t2, t3]);
            let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
            let readable = total(chain, false);
            let data_out = pieces(chain, false, HEADER_LEN.into(), readable);
            match kind {
                // Data the wrong way (to be read from a buffer the device
                // may only write, or the other way round) is a driver bug.
                request_type::IN if !data_out.is_empty() => Outcome::status(status::IOERR),
                request_type::OUT if !data_in.is_empty() => Outcome::status(status::IOERR),
                request_type::IN => self.transfer(Direction::Read, sector, &data_in, env)?,
                request_type::OUT => self.transfer(Direction::Write, sector, &data_out, env)?,
                request_type::FLUSH => {
                    let answer = env.block.request(&blk::Request::Flush { disk: self.disk });
                    Outcome::status(match answer {
                        blk::Response::Ok => status::OK,
                        _ => status::IOERR,
                    })
                }
                request_type::GET_ID => Outcome {
                    status: status::OK,
                    written: write_pieces(env.memory, &data_in, &self.serial())?,
                },
                _ => Outcome::status(status::UNSUPP),
            }
        };
        env.memory.write(status_at.addr, &[outcome.status])?;
        Ok(outcome.written.saturating_add(1))
    }

    /// Moves the sectors from `sector` on between the disk and `pieces`,
    /// one block-service request per stretch of contiguous guest memory
    /// (or per [`blk::MAX_TRANSFER`] of it). Refused without asking the
    /// service: a stretch that is not whole sectors, a range past the
    /// capacity, a write to a read-only disk. A guest range the kernel
    /// refuses fails the device.
    fn transfer(
        &self,
        direction: Direction,
        sector: u64,
        pieces: &[Piece],
        env: &mut DeviceEnv<'_>,
    ) -> Result<Outcome, QueueError> {
        let pieces = joined(pieces);
        let whole = pieces
            .iter()
            .all(|p| u64::from(p.len).is_multiple_of(SECTOR_SIZE));
        let bytes: u64 = pieces.iter().map(|p| u64::from(p.len)).sum();
        let fits = sector
            .checked_add(bytes / SECTOR_SIZE)
            .is_some_and(|end| end <= self.info.sectors);
        let refused = direction == Direction::Write && self.info.read_only;
        if !whole || !fits || refused {
            return Ok(Outcome::status(status::IOERR));
        }
        let mut sector = sector;
        let mut moved = 0u32;
        for piece in &pieces {
            let mut done = 0u32;
            while done < piece.len {
                let len = (piece.len - done).min(blk::MAX_TRANSFER);
                let gpa = piece.addr.saturating_add(u64::from(done));
                let request = self.request(direction, env.vm, sector, gpa, len);
                match env.block.request(&request) {
                    blk::Response::Ok => {}
                    blk::Response::Err(Error::InvalidRange) => {
                        return Err(QueueError::Memory(OutOfRange {
                            addr: gpa,
                            len: u64::from(len),
                        }));
                    }
                    _ => {
                        let written = if direction == Direction::Read {
                            moved
                        } else {
                            0
                        };
                        return Ok(Outcome {
                            status: status::IOERR,
                            written,
                        });
                    }
                }
                sector = sector.saturating_add(u64::from(len) / SECTOR_SIZE);
                done += len;
                moved = moved.saturating_add(len);
            }
        }
        Ok(Outcome {
            status: status::OK,
            written: if direction == Direction::Read {
                moved
            } else {
                0
            },
        })
    }

    fn request(
        &self,
        direction: Direction,
        vm: VmId,
        sector: u64,
        gpa: u64,
        len: u32,
    ) -> blk::Request {
        let disk = self.disk;
        match direction {
            Direction::Read => blk::Request::Read {
                disk,
                vm,
                sector,
                gpa,
                len,
            },
            Direction::Write => blk::Request::Write {
                disk,
                vm,
                sector,
                gpa,
                len,
            },
        }
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let read_only = if self.info.read_only { feature::RO } else { 0 };
        feature::SEG_MAX | feature::BLK_SIZE | feature::FLUSH | read_only
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[MAX_QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        if index != REQUESTQ {
            return Ok(false);
        }
        let mut used = false;
        while let Some(chain) = queue.pop(env.memory)? {
            let written = self.serve(&chain, env)?;
            queue.push_used(env.memory, chain.head, written)?;
            self.requests = self.requests.saturating_add(1);
            used = true;
        }
        Ok(used)
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
#[path = "blk_tests.rs"]
mod tests;
