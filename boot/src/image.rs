//! The Mica boot image: one blob, handed to the kernel as the initrd, that
//! holds the service task ELFs and guest images with a manifest saying what
//! each is, its priority, which endpoint it serves and which it may call.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MICAIMG\0` |
//! | 8 | 4 | format version ([`VERSION`]) |
//! | 12 | 4 | entry count (at most [`MAX_ENTRIES`]) |
//! | 16 | 8 | total image length in bytes |
//! | 24 | 64 x count | entry table |
//!
//! Each 64-byte entry: name (32 bytes, `[A-Za-z0-9._-]`, NUL-padded), kind
//! (1 = service, 2 = guest), priority, served endpoint (0xff = none), the
//! kernel rights byte ([`KernelRights`]; zero for guests), the device
//! classes it may map (u32: bit `n` for virtio-mmio windows whose virtio
//! device ID is `n`; only with the DEVICES right, zero otherwise), the
//! may-call endpoint bitmask (u64), then the blob's offset and size (u64
//! each). Blobs start on
//! 8-byte boundaries after the entry table and do not overlap.
//!
//! [`BootImage::parse`] checks all of it before anything is read: a
//! truncated, overlapping or otherwise malformed image is an error, never a
//! panic.

use core::fmt;

/// The first eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"MICAIMG\0";
/// The format version this parser reads.
pub const VERSION: u32 = 2;
/// The most entries an image may hold.
pub const MAX_ENTRIES: usize = 32;
/// The size of the fixed header.
pub const HEADER_LEN: usize = 24;
/// The size of one entry in the table.
pub const ENTRY_LEN: usize = 64;
/// The longest entry name.
pub const NAME_LEN: usize = 32;
/// The number of endpoints the manifest can name (bits of `may_call`).
pub const MAX_ENDPOINTS: u8 = 64;
/// The `serves` value of an entry that serves no endpoint.
pub const SERVES_NONE: u8 = 0xff;

/// The kernel rights a service is granted beyond its endpoints, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelRights(pub u8);

impl KernelRights {
    /// May restart dead tasks and receives their death notices (init).
    pub const SUPERVISOR: KernelRights = KernelRights(1);
    /// May create, load, run and destroy VMs (vm-manager).
    pub const VM_CONTROL: KernelRights = KernelRights(2);
    /// Receives the VMs' ioreq pages and completes their requests (ioreq).
    pub const IOREQ: KernelRights = KernelRights(4);
    /// May write raw lines to the hypervisor console (devices, shell).
    pub const CONSOLE: KernelRights = KernelRights(8);
    /// May power the machine off with `halt` (the shell).
    pub const HALT: KernelRights = KernelRights(16);
    /// May map the machine's virtio-mmio register windows (`device_map`)
    /// and take physically contiguous DMA frames (`dma_alloc`), within a
    /// per-task limit (the management channel's `mgmt` task).
    pub const DEVICES: KernelRights = KernelRights(32);
    /// May raise and lower a VM's external interrupt (`vm_set_external_irq`):
    /// the device service, whose PLIC model decides the level. Neither
    /// IOREQ (which also completes guest I/O) nor DEVICES (host devices and
    /// DMA) nor VM_CONTROL (the whole lifecycle) is that narrow.
    pub const GUEST_IRQ: KernelRights = KernelRights(64);
    /// May draw hardware entropy (`entropy`): the vm-manager (generation
    /// IDs) and the device service (virtio-rng).
    pub const ENTROPY: KernelRights = KernelRights(128);
    /// Every defined bit: the byte is full, so the next right needs a
    /// wider field (and a new image format version).
    pub const ALL: KernelRights = KernelRights(255);

    /// Whether every right of `other` is in `self`.
    pub const fn contains(self, other: KernelRights) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets.
    pub const fn union(self, other: KernelRights) -> KernelRights {
        KernelRights(self.0 | other.0)
    }
}

/// What an image entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A user-mode service task (an ELF).
    Service,
    /// A guest image (Linux boot protocol raw image).
    Guest,
}

impl EntryKind {
    /// The kind's byte in the entry table.
    pub const fn byte(self) -> u8 {
        match self {
            EntryKind::Service => 1,
            EntryKind::Guest => 2,
        }
    }
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than its header or entry table, or than the length it states.
    Truncated,
    /// The first eight bytes are not [`MAGIC`].
    BadMagic,
    /// A format version this kernel does not read.
    UnsupportedVersion(u32),
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries(u32),
    /// Entry `index` has an empty, over-long or non-`[A-Za-z0-9._-]` name.
    BadName {
        /// Which entry.
        index: usize,
    },
    /// Two entries share a name.
    DuplicateName {
        /// The second of the two.
        index: usize,
    },
    /// Entry `index` has an unknown kind byte.
    BadKind {
        /// Which entry.
        index: usize,
    },
    /// Entry `index` serves an endpoint beyond [`MAX_ENDPOINTS`], or one
    /// another entry already serves, or is a guest that serves one.
    BadEndpoint {
        /// Which entry.
        index: usize,
    },
    /// Entry `index` has unknown kernel-rights bits, or is a guest with any.
    BadRights {
        /// Which entry.
        index: usize,
    },
    /// Entry `index` names device classes without the DEVICES right (or
    /// is a guest that names any).
    BadDeviceClasses {
        /// Which entry.
        index: usize,
    },
    /// Entry `index`'s blob lies outside the image, inside the table, is
    /// misaligned, or overlaps another blob.
    BadBlob {
        /// Which entry.
        index: usize,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Truncated => f.write_str("boot image is truncated"),
            ImageError::BadMagic => f.write_str("not a Mica boot image (bad magic)"),
            ImageError::UnsupportedVersion(v) => {
                write!(f, "boot image version {v} is not supported")
            }
            ImageError::TooManyEntries(n) => {
                write!(f, "boot image has {n} entries (at most {MAX_ENTRIES})")
            }
            ImageError::BadName { index } => write!(f, "boot image entry {index} has a bad name"),
            ImageError::DuplicateName { index } => {
                write!(f, "boot image entry {index} repeats another entry's name")
            }
            ImageError::BadKind { index } => {
                write!(f, "boot image entry {index} has an unknown kind")
            }
            ImageError::BadEndpoint { index } => {
                write!(
                    f,
                    "boot image entry {index} serves an invalid or taken endpoint"
                )
            }
            ImageError::BadRights { index } => {
                write!(f, "boot image entry {index} has invalid kernel rights")
            }
            ImageError::BadDeviceClasses { index } => {
                write!(
                    f,
                    "boot image entry {index} names device classes without the DEVICES right"
                )
            }
            ImageError::BadBlob { index } => {
                write!(
                    f,
                    "boot image entry {index} points outside the image or overlaps"
                )
            }
        }
    }
}

/// One entry of a parsed image: what its writer gave, and where the blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageEntry<'a> {
    /// Name, kind, priority, endpoints, rights and blob.
    pub spec: EntrySpec<'a>,
    /// Where the blob starts in the image.
    pub offset: usize,
}

impl ImageEntry<'_> {
    /// Whether the manifest lets this entry call `endpoint`.
    pub fn may_call(&self, endpoint: u8) -> bool {
        endpoint < MAX_ENDPOINTS && self.spec.may_call & (1u64 << endpoint) != 0
    }
}

/// A checked boot image.
#[derive(Clone, Copy, Debug)]
pub struct BootImage<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> BootImage<'a> {
    /// Checks `bytes` completely and returns the image.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ImageError::Truncated)?;
        if header.get(..8) != Some(&MAGIC[..]) {
            return Err(ImageError::BadMagic);
        }
        let version = read_u32(header, 8).ok_or(ImageError::Truncated)?;
        if version != VERSION {
            return Err(ImageError::UnsupportedVersion(version));
        }
        let count = read_u32(header, 12).ok_or(ImageError::Truncated)?;
        let total = read_u64(header, 16).ok_or(ImageError::Truncated)?;
        let count_usize = usize::try_from(count).map_err(|_| ImageError::TooManyEntries(count))?;
        if count_usize > MAX_ENTRIES {
            return Err(ImageError::TooManyEntries(count));
        }
        let total = usize::try_from(total).map_err(|_| ImageError::Truncated)?;
        let bytes = bytes.get(..total).ok_or(ImageError::Truncated)?;
        let table_end = HEADER_LEN + ENTRY_LEN * count_usize;
        if bytes.len() < table_end {
            return Err(ImageError::Truncated);
        }
        let image = BootImage {
            bytes,
            count: count_usize,
        };
        image.check(table_end)?;
        Ok(image)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the image has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `index` (already checked by `parse`).
    pub fn entry(&self, index: usize) -> Option<ImageEntry<'a>> {
        if index >= self.count {
            return None;
        }
        decode_entry(self.bytes, index).ok()
    }

    /// All entries, in table order.
    pub fn entries(&self) -> impl Iterator<Item = ImageEntry<'a>> + '_ {
        (0..self.count).filter_map(|index| self.entry(index))
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Option<ImageEntry<'a>> {
        self.entries().find(|entry| entry.spec.name == name)
    }

    fn check(&self, table_end: usize) -> Result<(), ImageError> {
        let mut served: u64 = 0;
        for index in 0..self.count {
            let entry = decode_entry(self.bytes, index)?;
            if entry.offset < table_end || entry.offset % 8 != 0 {
                return Err(ImageError::BadBlob { index });
            }
            if let Some(endpoint) = entry.spec.serves {
                let bit = 1u64 << endpoint;
                if entry.spec.kind == EntryKind::Guest || served & bit != 0 {
                    return Err(ImageError::BadEndpoint { index });
                }
                served |= bit;
            }
            for earlier in 0..index {
                let other = decode_entry(self.bytes, earlier)?;
                if other.spec.name == entry.spec.name {
                    return Err(ImageError::DuplicateName { index });
                }
                if overlaps(&other, &entry) {
                    return Err(ImageError::BadBlob { index });
                }
            }
        }
        Ok(())
    }
}

/// Whether two non-empty blobs share a byte.
fn overlaps(a: &ImageEntry<'_>, b: &ImageEntry<'_>) -> bool {
    let (a_end, b_end) = (a.offset + a.spec.data.len(), b.offset + b.spec.data.len());
    !a.spec.data.is_empty() && !b.spec.data.is_empty() && a.offset < b_end && b.offset < a_end
}

/// Decodes and checks entry `index` of the table (the table is known to be
/// inside `bytes`).
fn decode_entry(bytes: &[u8], index: usize) -> Result<ImageEntry<'_>, ImageError> {
    let at = HEADER_LEN + ENTRY_LEN * index;
    let raw = bytes.get(at..at + ENTRY_LEN).ok_or(ImageError::Truncated)?;
    let name_bytes = raw.get(..NAME_LEN).ok_or(ImageError::Truncated)?;
    let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    let (name, padding) = name_bytes.split_at(name_len);
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || !name.iter().all(valid) || padding.iter().any(|&b| b != 0) {
        return Err(ImageError::BadName { index });
    }
    let name = core::str::from_utf8(name).map_err(|_| ImageError::BadName { index })?;
    let field = |offset: usize| raw.get(offset).copied().ok_or(ImageError::Truncated);
    let kind = match field(32)? {
        1 => EntryKind::Service,
        2 => EntryKind::Guest,
        _ => return Err(ImageError::BadKind { index }),
    };
    let priority = field(33)?;
    let serves = match field(34)? {
        SERVES_NONE => None,
        endpoint if endpoint < MAX_ENDPOINTS => Some(endpoint),
        _ => return Err(ImageError::BadEndpoint { index }),
    };
    let rights = KernelRights(field(35)?);
    if !KernelRights::ALL.contains(rights) || (kind == EntryKind::Guest && rights.0 != 0) {
        return Err(ImageError::BadRights { index });
    }
    let device_classes = read_u32(raw, 36).ok_or(ImageError::Truncated)?;
    if device_classes != 0 && !rights.contains(KernelRights::DEVICES) {
        return Err(ImageError::BadDeviceClasses { index });
    }
    let may_call = read_u64(raw, 40).ok_or(ImageError::Truncated)?;
    let offset = read_u64(raw, 48).ok_or(ImageError::Truncated)?;
    let size = read_u64(raw, 56).ok_or(ImageError::Truncated)?;
    let bad = ImageError::BadBlob { index };
    let offset = usize::try_from(offset).map_err(|_| bad)?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| offset.checked_add(size))
        .ok_or(bad)?;
    let data = bytes.get(offset..end).ok_or(bad)?;
    Ok(ImageEntry {
        spec: EntrySpec {
            name,
            kind,
            priority,
            serves,
            may_call,
            rights,
            device_classes,
            data,
        },
        offset,
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// What the image writer needs to know of one entry (and what the parser
/// gives back in [`ImageEntry::spec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySpec<'a> {
    /// Its unique name.
    pub name: &'a str,
    /// Service or guest.
    pub kind: EntryKind,
    /// Scheduling priority (services; 0 is the lowest).
    pub priority: u8,
    /// The endpoint this service serves, if any.
    pub serves: Option<u8>,
    /// Bit `n` set: may call endpoint `n`.
    pub may_call: u64,
    /// What the kernel lets this service do beyond IPC.
    pub rights: KernelRights,
    /// Bit `n` set: may map the virtio-mmio windows whose device ID is `n`
    /// (with the DEVICES right).
    pub device_classes: u32,
    /// The ELF or guest image bytes.
    pub data: &'a [u8],
}

/// The length of the image [`write`] makes of `entries`.
pub fn image_len(entries: &[EntrySpec<'_>]) -> usize {
    let mut len = HEADER_LEN + ENTRY_LEN * entries.len();
    for entry in entries {
        len = len.next_multiple_of(8) + entry.data.len();
    }
    len
}

/// Writes the image of `entries` into `out` (which must be exactly
/// [`image_len`] bytes) and returns it checked, so a writer bug or a bad
/// entry (name, endpoint, count) is reported as the parser would.
pub fn write<'o>(
    entries: &[EntrySpec<'_>],
    out: &'o mut [u8],
) -> Result<BootImage<'o>, ImageError> {
    if out.len() != image_len(entries) {
        return Err(ImageError::Truncated);
    }
    let count = u32::try_from(entries.len()).map_err(|_| ImageError::TooManyEntries(u32::MAX))?;
    out.fill(0);
    put(out, 0, &MAGIC);
    put(out, 8, &VERSION.to_le_bytes());
    put(out, 12, &count.to_le_bytes());
    put(out, 16, &(out.len() as u64).to_le_bytes());
    let mut blob = HEADER_LEN + ENTRY_LEN * entries.len();
    for (index, entry) in entries.iter().enumerate() {
        blob = blob.next_multiple_of(8);
        let at = HEADER_LEN + ENTRY_LEN * index;
        let name = entry.name.as_bytes();
        if name.len() > NAME_LEN {
            return Err(ImageError::BadName { index });
        }
        put(out, at, name);
        put(
            out,
            at + 32,
            &[
                entry.kind.byte(),
                entry.priority,
                entry.serves.unwrap_or(SERVES_NONE),
                entry.rights.0,
            ],
        );
        put(out, at + 36, &entry.device_classes.to_le_bytes());
        put(out, at + 40, &entry.may_call.to_le_bytes());
        put(out, at + 48, &(blob as u64).to_le_bytes());
        put(out, at + 56, &(entry.data.len() as u64).to_le_bytes());
        put(out, blob, entry.data);
        blob += entry.data.len();
    }
    BootImage::parse(out)
}

/// Copies `bytes` into `out` at `at`; `write` sized `out` so it always fits.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(window) = out.get_mut(at..at + bytes.len()) {
        window.copy_from_slice(bytes);
    }
}
