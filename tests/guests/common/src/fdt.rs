//! A minimal, bounded device-tree walk for test guests.
//!
//! The guest does not trust the DTB it is handed: [`blob_at`] refuses a
//! pointer that is not 8-byte aligned or below RAM and a header whose size is
//! implausible, and [`Dtb::property`] reads every field through bounds-checked
//! slices, so a corrupted tree yields `None`, never a panic or a wild read.

/// A larger `totalsize` is treated as corruption (QEMU's trees are ~6 KiB).
pub const MAX_DTB_SIZE: usize = 1 << 20;
/// Deeper nesting is treated as corruption.
const MAX_DEPTH: usize = 16;
const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// The NUL-terminated string at the start of `bytes`, without the NUL.
fn c_str(bytes: &[u8]) -> Option<&[u8]> {
    let len = bytes.iter().position(|&b| b == 0)?;
    bytes.get(..len)
}

/// The DTB at `addr`, sized by its header, or `None` when `addr` is not a
/// plausible DTB address or the header is not a device tree's.
///
/// # Safety
/// If `addr` is 8-byte aligned and at or above [`crate::RAM_BASE`], the
/// caller guarantees the header's 8 bytes there and the `totalsize` bytes it
/// announces (at most [`MAX_DTB_SIZE`]) are readable and not written while
/// the slice lives. Under the boot protocol a1 points into guest RAM.
pub unsafe fn blob_at<'a>(addr: usize) -> Option<&'a [u8]> {
    if addr < crate::RAM_BASE || !addr.is_multiple_of(8) {
        return None;
    }
    addr.checked_add(MAX_DTB_SIZE)?;
    // SAFETY: the caller guarantees the 8 header bytes at this aligned
    // address in RAM are readable.
    let header = unsafe { core::slice::from_raw_parts(addr as *const u8, 8) };
    if be32(header, 0)? != MAGIC {
        return None;
    }
    let size = be32(header, 4)? as usize;
    if !(HEADER_LEN..=MAX_DTB_SIZE).contains(&size) {
        return None;
    }
    // SAFETY: the caller guarantees the announced `size` bytes (checked to be
    // at most MAX_DTB_SIZE, and addr + MAX_DTB_SIZE does not wrap) are readable.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, size) })
}

/// The checked device tree at `addr`, the boot protocol's a1: [`blob_at`]
/// then [`Dtb::parse`]; `None` when either refuses it.
///
/// # Safety
/// As [`blob_at`].
pub unsafe fn boot_dtb<'a>(addr: usize) -> Option<Dtb<'a>> {
    // SAFETY: the caller gives `blob_at`'s guarantee.
    unsafe { blob_at(addr) }.and_then(Dtb::parse)
}

/// A device tree whose header was checked against the blob it came in.
#[derive(Debug, Clone, Copy)]
pub struct Dtb<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
}

impl<'a> Dtb<'a> {
    /// Checks the header (magic, version 17, blocks inside `blob`).
    pub fn parse(blob: &'a [u8]) -> Option<Self> {
        if be32(blob, 0)? != MAGIC {
            return None;
        }
        let field = |i: usize| be32(blob, 4 * i).map(|v| v as usize);
        let blob = blob.get(..field(1)?)?;
        let (off_struct, off_strings, version) = (field(2)?, field(3)?, field(5)?);
        let (size_strings, size_struct) = (field(8)?, field(9)?);
        if version < 17 || off_struct < HEADER_LEN || !off_struct.is_multiple_of(4) {
            return None;
        }
        let block = |off: usize, len: usize| blob.get(off..off.checked_add(len)?);
        Some(Dtb {
            structs: block(off_struct, size_struct)?,
            strings: block(off_strings, size_strings)?,
        })
    }

    /// The value of property `name` of the node at `path` (node names from
    /// the root's children down, e.g. `["chosen"]`; `[]` is the root).
    /// `None` when the node or property is missing or the tree is malformed
    /// before it is found.
    pub fn property(&self, path: &[&str], name: &str) -> Option<&'a [u8]> {
        let mut cursor = 0usize;
        let mut depth = 0usize;
        // How many levels of the open-node stack match `path` (root included).
        let mut matched = 0usize;
        loop {
            let token = be32(self.structs, cursor)?;
            cursor = cursor.checked_add(4)?;
            match token {
                TOKEN_BEGIN_NODE => {
                    let node = c_str(self.structs.get(cursor..)?)?;
                    cursor = align4(cursor.checked_add(node.len() + 1)?)?;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    let wanted = match depth {
                        1 => Some(""),
                        _ => path.get(depth - 2).copied(),
                    };
                    if matched + 1 == depth && wanted.is_some_and(|w| w.as_bytes() == node) {
                        matched = depth;
                    }
                }
                TOKEN_END_NODE => {
                    if matched == depth {
                        matched = matched.checked_sub(1)?;
                    }
                    depth = depth.checked_sub(1)?;
                }
                TOKEN_PROP => {
                    let len = be32(self.structs, cursor)? as usize;
                    let name_offset = be32(self.structs, cursor.checked_add(4)?)? as usize;
                    let start = cursor.checked_add(8)?;
                    let end = start.checked_add(len)?;
                    let value = self.structs.get(start..end)?;
                    cursor = align4(end)?;
                    if depth != 0 && matched == depth && depth == path.len() + 1 {
                        let prop = c_str(self.strings.get(name_offset..)?)?;
                        if prop == name.as_bytes() {
                            return Some(value);
                        }
                    }
                }
                TOKEN_NOP => {}
                // TOKEN_END (not found) or an unknown token (corrupt).
                _ => return None,
            }
        }
    }
}

/// A property value that is one string: NUL-terminated UTF-8 without an
/// inner NUL.
pub fn string(value: &[u8]) -> Option<&str> {
    let (&last, body) = value.split_last()?;
    if last != 0 || body.contains(&0) {
        return None;
    }
    core::str::from_utf8(body).ok()
}

/// A `mica,vm-name` value, accepted only if it is a valid Mica VM name:
/// 1-31 of `[A-Za-z0-9._-]`.
pub fn vm_name(value: &[u8]) -> Option<&str> {
    let name = string(value)?;
    let valid = (1..=31).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    valid.then_some(name)
}

/// The VM's name from `/chosen/mica,vm-name` of `dtb`, if there is a tree
/// and the name is valid ([`vm_name`]).
pub fn vm_name_in(dtb: Option<Dtb<'_>>) -> Option<&str> {
    dtb.and_then(|d| d.property(&["chosen"], "mica,vm-name"))
        .and_then(vm_name)
}

/// The timebase when the device tree gives none (Mica's and QEMU virt's).
pub const DEFAULT_TIMEBASE_HZ: u64 = 10_000_000;

/// The `time` CSR's ticks per second: `/cpus/timebase-frequency` of `dtb`,
/// or [`DEFAULT_TIMEBASE_HZ`] when there is no tree, no such property or
/// a zero one.
pub fn timebase_hz(dtb: Option<Dtb<'_>>) -> u64 {
    dtb.and_then(|d| d.property(&["cpus"], "timebase-frequency"))
        .and_then(number)
        .filter(|&hz| hz != 0)
        .unwrap_or(DEFAULT_TIMEBASE_HZ)
}

/// A one- or two-cell number (`timebase-frequency`).
pub fn number(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => be32(value, 0).map(u64::from),
        8 => Some((u64::from(be32(value, 0)?) << 32) | u64::from(be32(value, 4)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
