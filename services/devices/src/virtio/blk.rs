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
//!
//! It offers what QEMU's `virtio-blk-device` offers for a raw image
//! (section 5.2.3): SEG_MAX, GEOMETRY, BLK_SIZE, FLUSH, TOPOLOGY,
//! CONFIG_WCE, DISCARD, WRITE_ZEROES (and RO for a read-only disk).
//! - CONFIG_WCE: the driver picks the cache mode in `writeback`. In
//!   writethrough mode (writeback 0, or neither CONFIG_WCE nor FLUSH
//!   negotiated: 5.2.6.2's cases 1 and 2) every write and write-zeroes is
//!   followed by the block service's flush before its status says OK.
//! - WRITE_ZEROES really zeroes the sectors on the host disk (the block
//!   service's `WriteZeroes`); the unmap flag is allowed and changes
//!   nothing (`write_zeroes_may_unmap` is 0: nothing is deallocated).
//! - DISCARD is checked (flags, range, read-only) and then does nothing
//!   to the disk: 5.2.6.2 lets a device deallocate discarded sectors
//!   ("MAY"), and leaves what a later read returns open, so keeping the
//!   old bytes is allowed; the disk's host file is not thinned.

use heapless::Vec;
use ipc::blk::{self, DiskInfo, SECTOR_SIZE};
use ipc::{Error, VmId};

use super::VirtioDevice;
use super::queue::{DescriptorChain, MAX_QUEUE_SIZE, QueueError, SplitQueue};
use crate::bus::{BlockBackend, DeviceEnv};
use crate::memory::{GuestMemory, OutOfRange};
use crate::persist::{Reader, Writer};

/// The virtio device ID of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// The request queue's index (the only queue: no multiqueue feature).
pub const REQUESTQ: usize = 0;
/// The most data buffers one request may have (`seg_max`): a chain holds
/// at most a queue's worth of descriptors, two of them header and status.
pub const SEG_MAX: u32 = MAX_QUEUE_SIZE as u32 - 2;
/// Bytes of the device ID string a GET_ID request returns (NUL-padded).
pub const ID_BYTES: usize = 20;

/// The most sectors one DISCARD segment may name (`max_discard_sectors`,
/// QEMU's default: discarding costs nothing here).
pub const MAX_DISCARD_SECTORS: u32 = 0x3f_ffff;
/// The most sectors one WRITE_ZEROES segment may name
/// (`max_write_zeroes_sectors`, 8 MiB): the device service waits for the
/// zeroes, so one request's wait stays short.
pub const MAX_WRITE_ZEROES_SECTORS: u32 = 16 * 1024;
/// The most segments one DISCARD or WRITE_ZEROES request may have
/// (`max_discard_seg`, `max_write_zeroes_seg`; QEMU's too).
pub const MAX_RANGE_SEGMENTS: u32 = 1;

/// Device feature bits (section 5.2.3).
pub mod feature {
    /// `seg_max` holds the most data buffers per request.
    pub const SEG_MAX: u64 = 1 << 2;
    /// `geometry` holds a disk geometry.
    pub const GEOMETRY: u64 = 1 << 4;
    /// The disk is read-only: writes fail.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` holds the disk's block size.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are served.
    pub const FLUSH: u64 = 1 << 9;
    /// `topology` holds the block layout.
    pub const TOPOLOGY: u64 = 1 << 10;
    /// The driver may pick the cache mode in `writeback`.
    pub const CONFIG_WCE: u64 = 1 << 11;
    /// DISCARD requests are served.
    pub const DISCARD: u64 = 1 << 13;
    /// WRITE_ZEROES requests are served.
    pub const WRITE_ZEROES: u64 = 1 << 14;
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
    /// Let sectors go (segments in the data).
    pub const DISCARD: u32 = 11;
    /// Zero sectors (segments in the data).
    pub const WRITE_ZEROES: u32 = 13;
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
/// A DISCARD or WRITE_ZEROES segment's length (sector, num_sectors,
/// flags).
const SEGMENT_LEN: u64 = 16;
/// A segment's flag: the device may deallocate the sectors.
const SEGMENT_UNMAP: u32 = 1;
/// `struct virtio_blk_config` up to `write_zeroes_may_unmap` and its
/// padding, the last field offered.
const CONFIG_LEN: usize = 60;
/// Where `writeback` is in the configuration space.
const WRITEBACK_AT: usize = 32;

/// A block device's model, serving host disk `disk`.
#[derive(Clone, Debug)]
pub struct VirtioBlk {
    disk: u8,
    info: DiskInfo,
    config: [u8; CONFIG_LEN],
    negotiated: u64,
    requests: u64,
}

/// The configuration space of a disk as `info` says (section 5.2.4).
fn config_for(info: DiskInfo) -> [u8; CONFIG_LEN] {
    let mut config = [0u8; CONFIG_LEN];
    // The geometry QEMU gives a disk without a partition table: 16
    // heads, 63 sectors a track, as many cylinders as fit (2..=16383).
    // Linux only hands it to HDIO_GETGEO.
    let cylinders = u16::try_from((info.sectors / (16 * 63)).clamp(2, 16383)).unwrap_or(16383);
    let fields: [(usize, &[u8]); 15] = [
        (0, &info.sectors.to_le_bytes()),
        (12, &SEG_MAX.to_le_bytes()),
        (16, &cylinders.to_le_bytes()),
        (18, &[16, 63]),
        (20, &512u32.to_le_bytes()),
        // topology: physical_block_exp 0 and alignment_offset 0 (one
        // 512-byte logical block per physical block), min_io_size and
        // opt_io_size 0 (no preference), as QEMU gives a raw image.
        (24, &[0, 0]),
        (26, &0u16.to_le_bytes()),
        (28, &0u32.to_le_bytes()),
        // writeback: a writeback cache after reset.
        (WRITEBACK_AT, &[1]),
        // num_queues: one (MQ not offered).
        (34, &1u16.to_le_bytes()),
        (36, &MAX_DISCARD_SECTORS.to_le_bytes()),
        (40, &MAX_RANGE_SEGMENTS.to_le_bytes()),
        // discard_sector_alignment: one sector; then the write-zeroes
        // limits. write_zeroes_may_unmap (56) stays 0.
        (44, &1u32.to_le_bytes()),
        (48, &MAX_WRITE_ZEROES_SECTORS.to_le_bytes()),
        (52, &MAX_RANGE_SEGMENTS.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(field) = config.get_mut(at..at + bytes.len()) {
            field.copy_from_slice(bytes);
        }
    }
    config
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

/// Fills `out` with bytes `skip..` of the stretches `pieces` (read in
/// order, as one run of bytes).
fn read_pieces(
    memory: &dyn GuestMemory,
    pieces: &[Piece],
    skip: u64,
    out: &mut [u8],
) -> Result<(), QueueError> {
    let mut at = 0u64;
    let mut filled = 0usize;
    for piece in pieces {
        let end = at.saturating_add(u64::from(piece.len));
        let from = at.max(skip.saturating_add(filled as u64));
        if from < end && filled < out.len() {
            let take = usize::try_from(end - from)
                .unwrap_or(usize::MAX)
                .min(out.len() - filled);
            let dst = out
                .get_mut(filled..filled + take)
                .ok_or(QueueError::LengthOverflow)?;
            memory.read(piece.addr.saturating_add(from - at), dst)?;
            filled += take;
        }
        at = end;
    }
    if filled == out.len() {
        Ok(())
    } else {
        Err(QueueError::LengthOverflow)
    }
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
        Self {
            disk,
            info,
            config: config_for(info),
            negotiated: 0,
            requests: 0,
        }
    }

    /// Whether the cache is writethrough: every write is made durable
    /// before it is answered (section 5.2.6.2: CONFIG_WCE negotiated and
    /// `writeback` 0, or neither CONFIG_WCE nor FLUSH negotiated).
    pub fn writethrough(&self) -> bool {
        if self.negotiated & feature::CONFIG_WCE != 0 {
            self.config.get(WRITEBACK_AT) == Some(&0)
        } else {
            self.negotiated & feature::FLUSH == 0
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
                request_type::OUT => {
                    let outcome = self.transfer(Direction::Write, sector, &data_out, env)?;
                    self.written(outcome, env)
                }
                // Served only when negotiated (the driver may not send them
                // otherwise).
                request_type::DISCARD if self.negotiated & feature::DISCARD == 0 => {
                    Outcome::status(status::UNSUPP)
                }
                request_type::WRITE_ZEROES if self.negotiated & feature::WRITE_ZEROES == 0 => {
                    Outcome::status(status::UNSUPP)
                }
                request_type::DISCARD | request_type::WRITE_ZEROES if !data_in.is_empty() => {
                    Outcome::status(status::IOERR)
                }
                request_type::DISCARD | request_type::WRITE_ZEROES => {
                    let outcome = self.ranges(kind, &data_out, env)?;
                    self.written(outcome, env)
                }
                request_type::FLUSH => Outcome::status(self.flush(env)),
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

    /// The block service's flush: the status it gives.
    fn flush(&self, env: &mut DeviceEnv<'_>) -> u8 {
        match env.block.request(&blk::Request::Flush { disk: self.disk }) {
            blk::Response::Ok => status::OK,
            _ => status::IOERR,
        }
    }

    /// A write's outcome, made durable first in writethrough mode.
    fn written(&self, outcome: Outcome, env: &mut DeviceEnv<'_>) -> Outcome {
        if outcome.status == status::OK && self.writethrough() {
            Outcome::status(self.flush(env))
        } else {
            outcome
        }
    }

    /// Serves a DISCARD or WRITE_ZEROES request whose segments are the
    /// readable bytes `data` (after the header). Every segment is checked
    /// before the disk is touched: a length that is not whole segments or
    /// a range past the capacity or beyond the per-segment limit is
    /// IOERR, as is a read-only disk; more segments than offered, an
    /// unknown flag or `unmap` on a discard is UNSUPP (5.2.6.2).
    fn ranges(
        &self,
        kind: u32,
        data: &[Piece],
        env: &mut DeviceEnv<'_>,
    ) -> Result<Outcome, QueueError> {
        let len: u64 = data.iter().map(|p| u64::from(p.len)).sum();
        if len == 0 || !len.is_multiple_of(SEGMENT_LEN) {
            return Ok(Outcome::status(status::IOERR));
        }
        if len / SEGMENT_LEN > u64::from(MAX_RANGE_SEGMENTS) {
            return Ok(Outcome::status(status::UNSUPP));
        }
        let zeroes = kind == request_type::WRITE_ZEROES;
        let most = if zeroes {
            MAX_WRITE_ZEROES_SECTORS
        } else {
            MAX_DISCARD_SECTORS
        };
        let mut segments: Vec<(u64, u32), { MAX_RANGE_SEGMENTS as usize }> = Vec::new();
        let mut at = 0u64;
        while at < len {
            let mut raw = [0u8; 16];
            read_pieces(env.memory, data, at, &mut raw)?;
            at += SEGMENT_LEN;
            let [
                s0,
                s1,
                s2,
                s3,
                s4,
                s5,
                s6,
                s7,
                n0,
                n1,
                n2,
                n3,
                f0,
                f1,
                f2,
                f3,
            ] = raw;
            let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
            let sectors = u32::from_le_bytes([n0, n1, n2, n3]);
            let flags = u32::from_le_bytes([f0, f1, f2, f3]);
            if flags & !SEGMENT_UNMAP != 0 || (!zeroes && flags & SEGMENT_UNMAP != 0) {
                return Ok(Outcome::status(status::UNSUPP));
            }
            let fits = sector
                .checked_add(u64::from(sectors))
                .is_some_and(|end| end <= self.info.sectors);
            if sectors > most || !fits {
                return Ok(Outcome::status(status::IOERR));
            }
            if segments.push((sector, sectors)).is_err() {
                return Ok(Outcome::status(status::UNSUPP));
            }
        }
        if self.info.read_only {
            return Ok(Outcome::status(status::IOERR));
        }
        if !zeroes {
            // Discarded sectors keep their bytes (see the module's notes).
            return Ok(Outcome::status(status::OK));
        }
        for (mut sector, mut left) in segments {
            while left > 0 {
                let sectors = left.min(blk::MAX_ZEROES_SECTORS);
                let request = blk::Request::WriteZeroes {
                    disk: self.disk,
                    sector,
                    sectors,
                };
                if env.block.request(&request) != blk::Response::Ok {
                    return Ok(Outcome::status(status::IOERR));
                }
                sector = sector.saturating_add(u64::from(sectors));
                left -= sectors;
            }
        }
        Ok(Outcome::status(status::OK))
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
        feature::SEG_MAX
            | feature::GEOMETRY
            | feature::BLK_SIZE
            | feature::FLUSH
            | feature::TOPOLOGY
            | feature::CONFIG_WCE
            | feature::DISCARD
            | feature::WRITE_ZEROES
            | read_only
    }

    fn features_negotiated(&mut self, features: u64) {
        self.negotiated = features;
    }

    fn write_config(&mut self, offset: u64, bytes: &[u8], _env: &mut DeviceEnv<'_>) {
        // Only `writeback` is writable: 0 writethrough, 1 writeback.
        let at = u64::try_from(WRITEBACK_AT)
            .ok()
            .and_then(|w| w.checked_sub(offset))
            .and_then(|i| usize::try_from(i).ok());
        if let (Some(&byte), Some(slot)) = (
            at.and_then(|i| bytes.get(i)),
            self.config.get_mut(WRITEBACK_AT),
        ) {
            *slot = u8::from(byte != 0);
        }
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

    fn reset(&mut self) {
        self.config = config_for(self.info);
        self.negotiated = 0;
    }

    fn save_kept(&self, out: &mut Writer<'_>) {
        out.u8(self.config.get(WRITEBACK_AT).copied().unwrap_or(1));
    }

    fn restore_kept(&mut self, saved: &mut Reader<'_>) {
        let kept = saved.u8().unwrap_or(1);
        if let Some(slot) = self.config.get_mut(WRITEBACK_AT) {
            *slot = u8::from(kept != 0);
        }
    }
}

#[cfg(test)]
#[path = "blk_tests.rs"]
mod tests;
