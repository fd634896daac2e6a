//! The guest I/O hot path's messages, encoded and decoded by hand: a
//! `Request::Read` / `Request::Write`, a `Request::WriteBatch` of posted
//! writes, and the `Response::Ok` / `Response::Value` that answer them, byte for byte what postcard makes of
//! them, written straight into (and read straight from) a task's IPC buffer.
//!
//! Every guest access that leaves the kernel goes through these four
//! messages twice, so the generic serde path (building a whole `Request`,
//! moving the large `Response` enum around) costs more than the device
//! model itself. The format is still postcard's: enum variants as varint
//! indices, `VmId` and `u64` as varints, `u8` as one raw byte. Everything
//! else (other variants, `Response::Err`) goes through [`crate::encode`] /
//! [`crate::decode`], so both ends may mix the two freely.
//!
//! [`decode_access`] accepts exactly the bytes postcard would decode as a
//! `Read` or `Write` (overlong varints included) and nothing else; the
//! tests check it against postcard on random and mutated bytes.

use super::{BatchWrite, MAX_BATCH, Request, Response, WaitedAccess};
use crate::{Error, MAX_MESSAGE_SIZE, Space, VmId};

/// The postcard variant index of `Request::Read`.
const REQUEST_READ: u8 = 2;
/// The postcard variant index of `Request::Write`.
const REQUEST_WRITE: u8 = 3;
/// [`REQUEST_READ`] as the varint it is decoded from.
const REQUEST_READ_INDEX: u64 = REQUEST_READ as u64;
/// [`REQUEST_WRITE`] as the varint it is decoded from.
const REQUEST_WRITE_INDEX: u64 = REQUEST_WRITE as u64;
/// The postcard variant index of `Request::WriteBatch`.
const REQUEST_WRITE_BATCH: u8 = 9;
/// [`REQUEST_WRITE_BATCH`] as the varint it is decoded from.
const REQUEST_WRITE_BATCH_INDEX: u64 = REQUEST_WRITE_BATCH as u64;
/// The postcard variant index of `Response::Ok`.
const RESPONSE_OK: u8 = 0;
/// The postcard variant index of `Response::Value`.
const RESPONSE_VALUE: u8 = 1;

/// The longest encoded access: tag, `VmId` (3), space, address (10), size,
/// value (10).
pub const MAX_ACCESS_LEN: usize = 1 + 3 + 1 + 10 + 1 + 10;

/// A guest access as `Request::Read` and `Request::Write` carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The VM.
    pub vm: VmId,
    /// MMIO or PIO.
    pub space: Space,
    /// Guest address or port.
    pub addr: u64,
    /// Access width in bytes.
    pub size: u8,
    /// `None` for a read; the value written for a write.
    pub write: Option<u64>,
}

impl Access {
    /// The access a `Read` or `Write` request carries; `None` for any other
    /// request.
    #[inline]
    pub fn of(request: &Request) -> Option<Self> {
        match *request {
            Request::Read {
                vm,
                space,
                addr,
                size,
            } => Some(Self {
                vm,
                space,
                addr,
                size,
                write: None,
            }),
            Request::Write {
                vm,
                space,
                addr,
                size,
                value,
            } => Some(Self {
                vm,
                space,
                addr,
                size,
                write: Some(value),
            }),
            _ => None,
        }
    }

    /// The `Read` or `Write` request of this access.
    pub fn request(&self) -> Request {
        let Self {
            vm,
            space,
            addr,
            size,
            write,
        } = *self;
        match write {
            None => Request::Read {
                vm,
                space,
                addr,
                size,
            },
            Some(value) => Request::Write {
                vm,
                space,
                addr,
                size,
                value,
            },
        }
    }
}

/// Writes `value` as a postcard varint at `buf[at..]`; returns the index
/// after it, or `None` if it does not fit. The room is checked once when
/// the longest varint (ten bytes) fits, each byte only nearer the end.
#[inline(always)]
fn put_varint(buf: &mut [u8], at: usize, value: u64) -> Option<usize> {
    let room = buf.get_mut(at..)?;
    if room.len() >= 10 {
        return Some(at + put_varint_in(room, value));
    }
    put_varint_near_end(buf, at, value)
}

/// [`put_varint`] within ten bytes of the end of `buf`: each byte checked.
#[inline(never)]
fn put_varint_near_end(buf: &mut [u8], mut at: usize, mut value: u64) -> Option<usize> {
    while value >= 0x80 {
        *buf.get_mut(at)? = value.to_le_bytes()[0] | 0x80;
        value >>= 7;
        at += 1;
    }
    *buf.get_mut(at)? = value.to_le_bytes()[0];
    Some(at + 1)
}

#[inline]
fn put_byte(buf: &mut [u8], at: usize, byte: u8) -> Option<usize> {
    *buf.get_mut(at)? = byte;
    Some(at + 1)
}

/// Reads a postcard varint of a type `BITS` wide at `bytes[at..]`, as
/// postcard does: at most `ceil(BITS / 7)` bytes, the last one may not
/// carry bits beyond `BITS` (overlong encodings of small values are
/// accepted). Returns the value and the index after it.
#[inline(always)]
fn take_varint<const BITS: usize>(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *bytes.get(at)?;
    if first < 0x80 {
        return Some((u64::from(first), at + 1));
    }
    take_long_varint::<BITS>(bytes, at)
}

/// [`take_varint`] of a varint longer than one byte.
#[inline(always)]
fn take_long_varint<const BITS: usize>(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let max_bytes = BITS.div_ceil(7);
    let last_byte_max = (1u8 << (BITS - 7 * (max_bytes - 1))) - 1;
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = *bytes.get(at + i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == max_bytes - 1 && byte > last_byte_max {
                return None;
            }
            return Some((value, at + i + 1));
        }
    }
    None
}

#[inline]
fn space_index(space: Space) -> u8 {
    match space {
        Space::Mmio => 0,
        Space::Pio => 1,
        Space::PciConfig => 2,
    }
}

/// Encodes `access` as its `Read` or `Write` request into `buf`; returns
/// the length. [`Error::MessageTooLarge`] if `buf` is too short.
#[inline]
pub fn encode_access(access: &Access, buf: &mut [u8]) -> Result<usize, Error> {
    if let Some(out) = buf.first_chunk_mut::<MAX_ACCESS_LEN>() {
        return Ok(encode_access_into(access, out));
    }
    let mut whole = [0u8; MAX_ACCESS_LEN];
    let len = encode_access_into(access, &mut whole);
    buf.get_mut(..len)
        .ok_or(Error::MessageTooLarge)?
        .copy_from_slice(whole.get(..len).ok_or(Error::MessageTooLarge)?);
    Ok(len)
}

/// [`encode_access`] into room for the longest access: each field's room
/// is checked once, not each byte's.
#[inline(always)]
fn encode_access_into(access: &Access, out: &mut [u8; MAX_ACCESS_LEN]) -> usize {
    let (tag, value) = match access.write {
        None => (REQUEST_READ, None),
        Some(value) => (REQUEST_WRITE, Some(value)),
    };
    let [first, rest @ ..] = out;
    *first = tag;
    // The fields in order, each written at the start of what is left; a
    // varint takes at most ten bytes, and MAX_ACCESS_LEN leaves room for
    // every field at its longest.
    let mut at = 1 + put_varint_in(rest, u64::from(access.vm.0));
    at += put_byte_in(out, at, space_index(access.space));
    at += out
        .get_mut(at..)
        .map_or(0, |room| put_varint_in(room, access.addr));
    at += put_byte_in(out, at, access.size);
    if let Some(value) = value {
        at += out
            .get_mut(at..)
            .map_or(0, |room| put_varint_in(room, value));
    }
    at
}

/// Writes `value` as a varint at the start of `room` (at least ten bytes
/// long, else nothing is written); returns its length.
#[inline(always)]
fn put_varint_in(room: &mut [u8], mut value: u64) -> usize {
    let Some(room) = room.first_chunk_mut::<10>() else {
        return 0;
    };
    for (i, byte) in room.iter_mut().enumerate() {
        let low = value.to_le_bytes()[0];
        if value < 0x80 {
            *byte = low;
            return i + 1;
        }
        *byte = low | 0x80;
        value >>= 7;
    }
    room.len()
}

#[inline(always)]
fn put_byte_in(out: &mut [u8], at: usize, byte: u8) -> usize {
    match out.get_mut(at) {
        Some(slot) => {
            *slot = byte;
            1
        }
        None => 0,
    }
}

/// The access in `bytes` if they are exactly one `Request::Read` or
/// `Request::Write` as postcard decodes it; `None` for anything else (any
/// other request, or bytes that are no request at all: decode those with
/// [`crate::decode`] to learn which).
#[inline]
pub fn decode_access(bytes: &[u8]) -> Option<Access> {
    // Variant indices are u32 varints, almost always one byte.
    let (tag, at) = take_varint::<32>(bytes, 0)?;
    let write = match tag {
        REQUEST_READ_INDEX => false,
        REQUEST_WRITE_INDEX => true,
        _ => return None,
    };
    let (vm, at) = take_varint::<16>(bytes, at)?;
    let (space, at) = take_space(bytes, at)?;
    let (addr, at) = take_varint::<64>(bytes, at)?;
    let size = *bytes.get(at)?;
    let (write, end) = take_value_if(write, bytes, at + 1)?;
    if end != bytes.len() {
        return None;
    }
    Some(Access {
        vm: VmId(u16::try_from(vm).ok()?),
        space,
        addr,
        size,
        write,
    })
}

impl From<&Access> for WaitedAccess {
    fn from(access: &Access) -> Self {
        Self {
            space: access.space,
            addr: access.addr,
            size: access.size,
            write: access.write,
        }
    }
}

/// Encodes `Request::WriteBatch { vm, writes, then }` into `buf` exactly
/// as [`crate::encode`] would, straight from `writes` (no request is
/// built); returns the length. [`Error::MessageTooLarge`] for more than
/// [`MAX_BATCH`] writes or a `buf` too short.
pub fn encode_write_batch(
    vm: VmId,
    writes: &[BatchWrite],
    then: Option<&WaitedAccess>,
    buf: &mut [u8],
) -> Result<usize, Error> {
    if writes.len() > MAX_BATCH {
        return Err(Error::MessageTooLarge);
    }
    let buf = buf
        .get_mut(..buf.len().min(MAX_MESSAGE_SIZE))
        .ok_or(Error::MessageTooLarge)?;
    let mut at = put_byte(buf, 0, REQUEST_WRITE_BATCH);
    at = at.and_then(|at| put_varint(buf, at, u64::from(vm.0)));
    at = at.and_then(|at| put_varint(buf, at, writes.len() as u64));
    for write in writes {
        at = at
            .and_then(|at| put_byte(buf, at, space_index(write.space)))
            .and_then(|at| put_varint(buf, at, write.addr))
            .and_then(|at| put_byte(buf, at, write.size))
            .and_then(|at| put_varint(buf, at, write.value));
    }
    at = match then {
        None => at.and_then(|at| put_byte(buf, at, 0)),
        Some(access) => {
            let at = at
                .and_then(|at| put_byte(buf, at, 1))
                .and_then(|at| put_byte(buf, at, space_index(access.space)))
                .and_then(|at| put_varint(buf, at, access.addr))
                .and_then(|at| put_byte(buf, at, access.size));
            match access.write {
                None => at.and_then(|at| put_byte(buf, at, 0)),
                Some(value) => at
                    .and_then(|at| put_byte(buf, at, 1))
                    .and_then(|at| put_varint(buf, at, value)),
            }
        }
    };
    at.ok_or(Error::MessageTooLarge)
}

/// A `Request::WriteBatch` decoded in place: checked whole, so its writes
/// can be walked without failing.
#[derive(Clone, Copy, Debug)]
pub struct WriteBatchView<'a> {
    /// The VM.
    pub vm: VmId,
    /// The access after the writes, if any.
    pub then: Option<WaitedAccess>,
    entries: &'a [u8],
    count: usize,
}

impl WriteBatchView<'_> {
    /// The writes, oldest first.
    pub fn writes(&self) -> impl Iterator<Item = BatchWrite> + '_ {
        let mut at = 0;
        (0..self.count).map_while(move |_| {
            let (write, next) = take_batch_write(self.entries, at)?;
            at = next;
            Some(write)
        })
    }
}

/// One write at `bytes[at..]` and the index after it.
#[inline]
fn take_batch_write(bytes: &[u8], at: usize) -> Option<(BatchWrite, usize)> {
    let (space, at) = take_space(bytes, at)?;
    let (addr, at) = take_varint::<64>(bytes, at)?;
    let size = *bytes.get(at)?;
    let (value, at) = take_varint::<64>(bytes, at + 1)?;
    let write = BatchWrite {
        space,
        addr,
        size,
        value,
    };
    Some((write, at))
}

#[inline]
fn take_space(bytes: &[u8], at: usize) -> Option<(Space, usize)> {
    let (space, at) = take_varint::<32>(bytes, at)?;
    let space = match space {
        0 => Space::Mmio,
        1 => Space::Pio,
        2 => Space::PciConfig,
        _ => return None,
    };
    Some((space, at))
}

/// A postcard `Option` tag at `bytes[at..]`: whether it is `Some`.
/// The u64 varint at `at` if `present` (a write's value), nothing
/// otherwise; with where the rest starts.
#[inline]
fn take_value_if(present: bool, bytes: &[u8], at: usize) -> Option<(Option<u64>, usize)> {
    if !present {
        return Some((None, at));
    }
    let (value, end) = take_varint::<64>(bytes, at)?;
    Some((Some(value), end))
}

#[inline]
fn take_option(bytes: &[u8], at: usize) -> Option<(bool, usize)> {
    match *bytes.get(at)? {
        0 => Some((false, at + 1)),
        1 => Some((true, at + 1)),
        _ => None,
    }
}

/// `bytes` as a `Request::WriteBatch` if they are exactly one as postcard
/// decodes it; `None` for anything else.
pub fn decode_write_batch(bytes: &[u8]) -> Option<WriteBatchView<'_>> {
    let parsed = parse_write_batch(bytes, |_| {})?;
    Some(WriteBatchView {
        vm: parsed.vm,
        then: parsed.then,
        entries: bytes.get(parsed.entries.0..parsed.entries.1)?,
        count: parsed.count,
    })
}

/// [`decode_write_batch`] in one pass: the writes go into `writes` (emptied
/// first) as they are checked, and the VM and the access after them are
/// returned. `None` for anything [`decode_write_batch`] refuses, with
/// `writes` holding no more than the batch's first writes: a caller does
/// nothing with them then.
pub fn decode_write_batch_into(
    bytes: &[u8],
    writes: &mut heapless::Vec<BatchWrite, MAX_BATCH>,
) -> Option<(VmId, Option<WaitedAccess>)> {
    writes.clear();
    // The count is checked against MAX_BATCH before any write is taken,
    // so there is always room.
    let parsed = parse_write_batch(bytes, |write| {
        let _ = writes.push(write);
    })?;
    Some((parsed.vm, parsed.then))
}

/// A `Request::WriteBatch` as [`parse_write_batch`] checked it.
struct ParsedBatch {
    vm: VmId,
    then: Option<WaitedAccess>,
    /// Where the writes lie in the bytes (start, end).
    entries: (usize, usize),
    count: usize,
}

/// Checks that `bytes` are exactly one `Request::WriteBatch` as postcard
/// decodes it, giving each write to `each` as it is read (at most
/// [`MAX_BATCH`], all before the rest is checked).
#[inline(always)]
fn parse_write_batch(bytes: &[u8], mut each: impl FnMut(BatchWrite)) -> Option<ParsedBatch> {
    let (tag, at) = take_varint::<32>(bytes, 0)?;
    if tag != REQUEST_WRITE_BATCH_INDEX {
        return None;
    }
    let (vm, at) = take_varint::<16>(bytes, at)?;
    let (count, first) = take_varint::<64>(bytes, at)?;
    let count = usize::try_from(count).ok().filter(|&n| n <= MAX_BATCH)?;
    let mut at = first;
    for _ in 0..count {
        let (write, next) = take_batch_write(bytes, at)?;
        each(write);
        at = next;
    }
    let entries = (first, at);
    let (some, at) = take_option(bytes, at)?;
    let (then, end) = if some {
        let (space, at) = take_space(bytes, at)?;
        let (addr, at) = take_varint::<64>(bytes, at)?;
        let size = *bytes.get(at)?;
        let (is_write, at) = take_option(bytes, at + 1)?;
        let (write, at) = take_value_if(is_write, bytes, at)?;
        let access = WaitedAccess {
            space,
            addr,
            size,
            write,
        };
        (Some(access), at)
    } else {
        (None, at)
    };
    if end != bytes.len() {
        return None;
    }
    Some(ParsedBatch {
        vm: VmId(u16::try_from(vm).ok()?),
        then,
        entries,
        count,
    })
}

/// Encodes `request` into `buf` (at most [`MAX_MESSAGE_SIZE`] bytes of it)
/// exactly as [`crate::encode`] does; a `Read` or `Write` without serde.
#[inline]
pub fn encode_request(request: &Request, buf: &mut [u8]) -> Result<usize, Error> {
    match Access::of(request) {
        Some(access) => {
            let window = buf.len().min(MAX_MESSAGE_SIZE);
            encode_access(
                &access,
                buf.get_mut(..window).ok_or(Error::MessageTooLarge)?,
            )
        }
        None => crate::encode(request, buf).map(|bytes| bytes.len()),
    }
}

/// Encodes `response` into `buf` exactly as [`crate::encode`] does; `Ok`
/// and `Value` without serde.
#[inline]
pub fn encode_response(response: &Response, buf: &mut [u8]) -> Result<usize, Error> {
    let encoded = match *response {
        Response::Ok => put_byte(buf, 0, RESPONSE_OK),
        Response::Value(value) => {
            put_byte(buf, 0, RESPONSE_VALUE).and_then(|at| put_varint(buf, at, value))
        }
        Response::Err(_) | Response::Console(_) | Response::Net(_) => {
            return crate::encode(response, buf).map(|bytes| bytes.len());
        }
    };
    encoded.ok_or(Error::MessageTooLarge)
}

/// Decodes a response exactly as [`crate::decode`] does; `Ok` and `Value`
/// with one-byte variant indices (as every encoder writes them) without
/// serde.
#[inline]
pub fn decode_response(bytes: &[u8]) -> Result<Response, Error> {
    match bytes {
        [RESPONSE_OK] => return Ok(Response::Ok),
        [RESPONSE_VALUE, ..] => {
            if let Some((value, end)) = take_varint::<64>(bytes, 1)
                && end == bytes.len()
            {
                return Ok(Response::Value(value));
            }
        }
        _ => {}
    }
    crate::decode(bytes)
}

/// The most bytes a plain answer takes ([`plain_response`]): `Value`'s
/// tag and a 64-bit varint.
pub const PLAIN_RESPONSE_MAX: usize = 1 + 10;

/// The answer `bytes` holds if it is one of the two plain ones, as every
/// encoder writes them: `Ok` (a write done) or `Value` (a read's value).
/// `None` for anything else (an error, another response, bytes that do
/// not decode): the kernel carries only plain answers of a forwarded
/// access into its slot, and hands every other back to the ioreq service.
#[inline]
pub fn plain_response(bytes: &[u8]) -> Option<Response> {
    match bytes {
        [RESPONSE_OK] => Some(Response::Ok),
        [RESPONSE_VALUE, ..] => match take_varint::<64>(bytes, 1) {
            Some((value, end)) if end == bytes.len() => Some(Response::Value(value)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;
