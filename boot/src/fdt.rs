//! A bounded, non-panicking reader for flattened device trees (DTB).
//!
//! The firmware hands the kernel a DTB it built itself; the kernel still reads
//! it as untrusted bytes. [`Fdt::new`] checks the header and walks the whole
//! structure block once, so that a truncated or corrupted blob is an error up
//! front. [`Fdt::events`] then yields nodes and properties in order.
//!
//! The `fdt` crate was the first choice; its 0.1 release panics on malformed
//! structure blocks (asserts and `expect`s while walking nodes) and the 0.2
//! alpha still slices without bounds checks in places and has no access to
//! the memory-reservation block, so Mica reads the format itself.

use core::fmt;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
const TOKEN_END: u32 = 9;
/// Deeper nesting than this is treated as corruption (QEMU's trees are 4 deep).
pub const MAX_DEPTH: usize = 32;
/// A DTB larger than this is treated as corruption rather than mapped whole.
pub const MAX_TOTAL_SIZE: usize = 16 << 20;

/// Why a blob is not a usable device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtbError {
    /// Fewer bytes than the 40-byte header, or than the header's `totalsize`.
    Truncated,
    /// The first word is not the DTB magic 0xd00dfeed: not a device tree.
    BadMagic,
    /// A header field (version, block offset or size) is inconsistent.
    BadHeader,
    /// The structure block has an unknown token, an unterminated name, a
    /// property running past the block, unbalanced nodes or no END token.
    BadStructure,
    /// A property name offset points outside the strings block or at a
    /// string without a terminating NUL.
    BadString,
    /// Nodes nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The memory-reservation block runs past the blob or has no terminator.
    BadReservation,
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            DtbError::Truncated => "device tree is truncated",
            DtbError::BadMagic => "not a device tree (bad magic)",
            DtbError::BadHeader => "device tree header is inconsistent",
            DtbError::BadStructure => "device tree structure block is malformed",
            DtbError::BadString => "device tree property name is out of bounds",
            DtbError::TooDeep => "device tree nests too deeply",
            DtbError::BadReservation => "device tree memory reservation block is malformed",
        };
        f.write_str(what)
    }
}

/// One step of a depth-first walk over the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A node opens; `name` includes the unit address (`memory@80000000`).
    /// The root node's name is empty.
    BeginNode(&'a str),
    /// A property of the innermost open node.
    Property {
        /// Property name, e.g. `reg`.
        name: &'a str,
        /// Raw big-endian value bytes.
        value: &'a [u8],
    },
    /// The innermost open node closes.
    EndNode,
}

/// A validated device tree blob.
#[derive(Debug, Clone, Copy)]
pub struct Fdt<'a> {
    blob: &'a [u8],
    structs: &'a [u8],
    strings: &'a [u8],
    rsvmap_offset: usize,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    let hi = be32(bytes, at)?;
    let lo = be32(bytes, at.checked_add(4)?)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// The total size a DTB header announces, to size a slice over firmware memory
/// before the full parse. `header` needs only the first 8 bytes.
pub fn total_size(header: &[u8]) -> Result<usize, DtbError> {
    if be32(header, 0).ok_or(DtbError::Truncated)? != MAGIC {
        return Err(DtbError::BadMagic);
    }
    let size = be32(header, 4).ok_or(DtbError::Truncated)? as usize;
    if !(HEADER_LEN..=MAX_TOTAL_SIZE).contains(&size) {
        return Err(DtbError::BadHeader);
    }
    Ok(size)
}

impl<'a> Fdt<'a> {
    /// Checks `blob` completely; afterwards walking it cannot fail.
    pub fn new(blob: &'a [u8]) -> Result<Self, DtbError> {
        if blob.len() < HEADER_LEN {
            return Err(DtbError::Truncated);
        }
        let total = total_size(blob)?;
        let blob = blob.get(..total).ok_or(DtbError::Truncated)?;
        let field = |i: usize| {
            be32(blob, 4 * i)
                .map(|v| v as usize)
                .ok_or(DtbError::Truncated)
        };
        let (off_struct, off_strings, off_rsvmap) = (field(2)?, field(3)?, field(4)?);
        let (version, last_compatible) = (field(5)?, field(6)?);
        let (size_strings, size_struct) = (field(8)?, field(9)?);
        if version < 16 || last_compatible > 17 {
            return Err(DtbError::BadHeader);
        }
        let block = |off: usize, len: usize| {
            off.checked_add(len)
                .and_then(|end| blob.get(off..end))
                .filter(|_| off >= HEADER_LEN)
                .ok_or(DtbError::BadHeader)
        };
        let structs = block(off_struct, size_struct)?;
        let strings = block(off_strings, size_strings)?;
        if off_struct % 4 != 0 || off_rsvmap % 8 != 0 || off_rsvmap < HEADER_LEN {
            return Err(DtbError::BadHeader);
        }
        let fdt = Fdt {
            blob,
            structs,
            strings,
            rsvmap_offset: off_rsvmap,
        };
        fdt.validate()?;
        Ok(fdt)
    }

    /// The whole blob, `totalsize` bytes long.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }

    fn validate(&self) -> Result<(), DtbError> {
        for entry in self.raw_reservations() {
            entry?;
        }
        let mut depth = 0usize;
        let mut cursor = 0usize;
        let mut seen_root = false;
        loop {
            match self.next_event(&mut cursor)? {
                None => break,
                Some(Event::BeginNode(_)) => {
                    if depth == 0 && seen_root {
                        return Err(DtbError::BadStructure);
                    }
                    seen_root = true;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DtbError::TooDeep);
                    }
                }
                Some(Event::EndNode) => {
                    depth = depth.checked_sub(1).ok_or(DtbError::BadStructure)?;
                }
                Some(Event::Property { .. }) => {
                    if depth == 0 {
                        return Err(DtbError::BadStructure);
                    }
                }
            }
        }
        if depth != 0 || !seen_root {
            return Err(DtbError::BadStructure);
        }
        Ok(())
    }

    /// Decodes the event at `*cursor` and advances past it; `Ok(None)` at END.
    fn next_event(&self, cursor: &mut usize) -> Result<Option<Event<'a>>, DtbError> {
        loop {
            let token = be32(self.structs, *cursor).ok_or(DtbError::BadStructure)?;
            *cursor += 4;
            match token {
                TOKEN_NOP => continue,
                TOKEN_END => return Ok(None),
                TOKEN_END_NODE => return Ok(Some(Event::EndNode)),
                TOKEN_BEGIN_NODE => {
                    let rest = self.structs.get(*cursor..).ok_or(DtbError::BadStructure)?;
                    let name = c_str(rest).ok_or(DtbError::BadStructure)?;
                    *cursor = align4(*cursor + name.len() + 1).ok_or(DtbError::BadStructure)?;
                    return Ok(Some(Event::BeginNode(name)));
                }
                TOKEN_PROP => {
                    let len = be32(self.structs, *cursor).ok_or(DtbError::BadStructure)? as usize;
                    let name_off = be32(self.structs, *cursor + 4).ok_or(DtbError::BadStructure)?;
                    let start = *cursor + 8;
                    let end = start.checked_add(len).ok_or(DtbError::BadStructure)?;
                    let value = self.structs.get(start..end).ok_or(DtbError::BadStructure)?;
                    let name = self
                        .strings
                        .get(name_off as usize..)
                        .and_then(c_str)
                        .ok_or(DtbError::BadString)?;
                    *cursor = align4(end).ok_or(DtbError::BadStructure)?;
                    return Ok(Some(Event::Property { name, value }));
                }
                _ => return Err(DtbError::BadStructure),
            }
        }
    }

    /// Walks the tree depth-first. The blob was validated by [`Fdt::new`], so
    /// the walk ends at the END token without errors.
    pub fn events(&self) -> impl Iterator<Item = Event<'a>> + '_ {
        let mut cursor = 0usize;
        core::iter::from_fn(move || self.next_event(&mut cursor).ok().flatten())
    }

    fn raw_reservations(&self) -> impl Iterator<Item = Result<(u64, u64), DtbError>> + '_ {
        let mut at = self.rsvmap_offset;
        let mut done = false;
        core::iter::from_fn(move || {
            if done {
                return None;
            }
            let entry = be64(self.blob, at).zip(at.checked_add(8).and_then(|a| be64(self.blob, a)));
            at = at.saturating_add(16);
            match entry {
                None => {
                    done = true;
                    Some(Err(DtbError::BadReservation))
                }
                Some((_, 0)) => {
                    done = true;
                    None
                }
                Some(pair) => Some(Ok(pair)),
            }
        })
    }

    /// The memory-reservation block's (address, size) entries.
    pub fn reservations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.raw_reservations().map_while(Result::ok)
    }
}

/// The NUL-terminated UTF-8 string at the start of `bytes`, without the NUL.
fn c_str(bytes: &[u8]) -> Option<&str> {
    let len = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(bytes.get(..len)?).ok()
}

/// Reads a big-endian number of `cells` 32-bit cells (1 or 2) from `bytes`.
pub fn read_cells(bytes: &[u8], cells: u32) -> Option<u64> {
    match cells {
        1 => be32(bytes, 0).map(u64::from),
        2 => be64(bytes, 0),
        _ => None,
    }
}
