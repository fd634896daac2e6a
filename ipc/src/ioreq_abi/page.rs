//! The per-VM ioreq page: 16 slots of 256 bytes shared between the kernel and
//! the ioreq service, laid out like ACRN's `struct acrn_io_request`.
//!
//! This module is plain data and safe accessors, nothing else: the kernel
//! uses it to fill slots, the ioreq service to dispatch them. Every
//! field is public because the memory is shared: whoever reads a field must
//! validate it (see `slot`), whatever this type says about it.
//!
//! Values are stored in native byte order, as the C structure is; both Mica
//! targets are little-endian.
//!
//! The state word (`processed`) is an [`AtomicU32`] (same size, alignment
//! and offset as the C `uint32_t`): the kernel and the ioreq service may
//! run on different harts at once, and the state word is what orders their
//! plain accesses to the rest of the slot. Who may touch which field in
//! which state is the ownership rule in `slot`'s module doc.

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, Ordering};

/// Slots per page, one per vCPU (ACRN's `ACRN_IO_REQUEST_MAX`).
pub const SLOT_COUNT: usize = 16;
/// Bytes per slot.
pub const SLOT_SIZE: usize = 256;
/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes in a slot's request union.
pub const PAYLOAD_SIZE: usize = 64;

/// `IoreqSlot::request_type` of an x86 port I/O access.
pub const TYPE_PIO: u32 = 0;
/// `IoreqSlot::request_type` of an MMIO access.
pub const TYPE_MMIO: u32 = 1;
/// `IoreqSlot::request_type` of a PCI configuration-space access.
pub const TYPE_PCI_CONFIG: u32 = 2;

/// `IoreqSlot::processed`: a request waits for the service.
pub const STATE_PENDING: u32 = 0;
/// `IoreqSlot::processed`: the request is done; the kernel may resume the vCPU.
pub const STATE_COMPLETE: u32 = 1;
/// `IoreqSlot::processed`: a client is emulating the request.
pub const STATE_PROCESSING: u32 = 2;
/// `IoreqSlot::processed`: the slot is empty.
pub const STATE_FREE: u32 = 3;

/// Request direction: the guest reads.
pub const DIRECTION_READ: u32 = 0;
/// Request direction: the guest writes.
pub const DIRECTION_WRITE: u32 = 1;

/// The 64-byte request union of a slot (ACRN's `reqs`), stored as its
/// `data[8]` member; the typed views below read and write the MMIO, PIO and
/// PCI members at their C offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct RequestPayload {
    /// The raw union words.
    pub data: [u64; 8],
}

/// Byte offsets inside the union, shared by the three request kinds.
mod field {
    pub const DIRECTION: usize = 0;
    pub const ADDRESS: usize = 8;
    pub const SIZE: usize = 16;
    pub const VALUE: usize = 24;
    pub const PCI_BUS: usize = 28;
    pub const PCI_DEV: usize = 32;
    pub const PCI_FUNC: usize = 36;
    pub const PCI_REG: usize = 40;
}

/// The MMIO member of the union, unvalidated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmioFields {
    /// `DIRECTION_READ` or `DIRECTION_WRITE` (if the writer was honest).
    pub direction: u32,
    /// Guest-physical address.
    pub address: u64,
    /// Access width in bytes.
    pub size: u64,
    /// Value written, or read result.
    pub value: u64,
}

/// The port-I/O member of the union, unvalidated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PioFields {
    /// `DIRECTION_READ` or `DIRECTION_WRITE` (if the writer was honest).
    pub direction: u32,
    /// Port number.
    pub address: u64,
    /// Access width in bytes.
    pub size: u64,
    /// Value written, or read result.
    pub value: u32,
}

/// The PCI-configuration member of the union, unvalidated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciFields {
    /// `DIRECTION_READ` or `DIRECTION_WRITE` (if the writer was honest).
    pub direction: u32,
    /// Access width in bytes.
    pub size: u64,
    /// Value written, or read result.
    pub value: u32,
    /// Bus number.
    pub bus: u32,
    /// Device number.
    pub dev: u32,
    /// Function number.
    pub func: u32,
    /// Register offset in the function's configuration space.
    pub reg: u32,
}

impl RequestPayload {
    fn u32_at<const BYTE: usize>(&self) -> u32 {
        const { assert!(BYTE.is_multiple_of(4) && BYTE + 4 <= PAYLOAD_SIZE) };
        let [a, b, c, d, e, f, g, h] = self.data[BYTE / 8].to_ne_bytes();
        let half = if BYTE.is_multiple_of(8) {
            [a, b, c, d]
        } else {
            [e, f, g, h]
        };
        u32::from_ne_bytes(half)
    }

    fn set_u32_at<const BYTE: usize>(&mut self, value: u32) {
        const { assert!(BYTE.is_multiple_of(4) && BYTE + 4 <= PAYLOAD_SIZE) };
        let word = &mut self.data[BYTE / 8];
        let [a, b, c, d, e, f, g, h] = word.to_ne_bytes();
        let [v0, v1, v2, v3] = value.to_ne_bytes();
        let bytes = if BYTE.is_multiple_of(8) {
            [v0, v1, v2, v3, e, f, g, h]
        } else {
            [a, b, c, d, v0, v1, v2, v3]
        };
        *word = u64::from_ne_bytes(bytes);
    }

    fn u64_at<const BYTE: usize>(&self) -> u64 {
        const { assert!(BYTE.is_multiple_of(8) && BYTE + 8 <= PAYLOAD_SIZE) };
        self.data[BYTE / 8]
    }

    fn set_u64_at<const BYTE: usize>(&mut self, value: u64) {
        const { assert!(BYTE.is_multiple_of(8) && BYTE + 8 <= PAYLOAD_SIZE) };
        self.data[BYTE / 8] = value;
    }

    /// The direction word, at the same place for every request kind.
    #[inline]
    pub fn direction(&self) -> u32 {
        self.u32_at::<{ field::DIRECTION }>()
    }

    /// Reads the union as an MMIO request.
    #[inline]
    pub fn mmio(&self) -> MmioFields {
        MmioFields {
            direction: self.direction(),
            address: self.u64_at::<{ field::ADDRESS }>(),
            size: self.u64_at::<{ field::SIZE }>(),
            value: self.u64_at::<{ field::VALUE }>(),
        }
    }

    /// Writes the union as an MMIO request; the reserved word is cleared.
    pub fn set_mmio(&mut self, fields: &MmioFields) {
        *self = Self::default();
        self.set_u32_at::<{ field::DIRECTION }>(fields.direction);
        self.set_u64_at::<{ field::ADDRESS }>(fields.address);
        self.set_u64_at::<{ field::SIZE }>(fields.size);
        self.set_u64_at::<{ field::VALUE }>(fields.value);
    }

    /// Reads the union as a port-I/O request.
    #[inline]
    pub fn pio(&self) -> PioFields {
        PioFields {
            direction: self.direction(),
            address: self.u64_at::<{ field::ADDRESS }>(),
            size: self.u64_at::<{ field::SIZE }>(),
            value: self.u32_at::<{ field::VALUE }>(),
        }
    }

    /// Writes the union as a port-I/O request; the reserved word is cleared.
    pub fn set_pio(&mut self, fields: &PioFields) {
        *self = Self::default();
        self.set_u32_at::<{ field::DIRECTION }>(fields.direction);
        self.set_u64_at::<{ field::ADDRESS }>(fields.address);
        self.set_u64_at::<{ field::SIZE }>(fields.size);
        self.set_u32_at::<{ field::VALUE }>(fields.value);
    }

    /// Reads the union as a PCI-configuration request.
    #[inline]
    pub fn pci(&self) -> PciFields {
        PciFields {
            direction: self.direction(),
            size: self.u64_at::<{ field::SIZE }>(),
            value: self.u32_at::<{ field::VALUE }>(),
            bus: self.u32_at::<{ field::PCI_BUS }>(),
            dev: self.u32_at::<{ field::PCI_DEV }>(),
            func: self.u32_at::<{ field::PCI_FUNC }>(),
            reg: self.u32_at::<{ field::PCI_REG }>(),
        }
    }

    /// Writes the union as a PCI-configuration request; reserved words are
    /// cleared.
    pub fn set_pci(&mut self, fields: &PciFields) {
        *self = Self::default();
        self.set_u32_at::<{ field::DIRECTION }>(fields.direction);
        self.set_u64_at::<{ field::SIZE }>(fields.size);
        self.set_u32_at::<{ field::VALUE }>(fields.value);
        self.set_u32_at::<{ field::PCI_BUS }>(fields.bus);
        self.set_u32_at::<{ field::PCI_DEV }>(fields.dev);
        self.set_u32_at::<{ field::PCI_FUNC }>(fields.func);
        self.set_u32_at::<{ field::PCI_REG }>(fields.reg);
    }

    /// Stores a 64-bit read result (the MMIO `value` member).
    #[inline]
    pub fn set_value_u64(&mut self, value: u64) {
        self.set_u64_at::<{ field::VALUE }>(value);
    }

    /// Stores a 32-bit read result (the PIO and PCI `value` member); the
    /// neighbouring word (the PCI bus number) is left alone.
    #[inline]
    pub fn set_value_u32(&mut self, value: u32) {
        self.set_u32_at::<{ field::VALUE }>(value);
    }
}

/// How a state word is read: a load that sees the other side's publish
/// also sees every payload write the other side made before it.
pub(crate) const STATE_LOAD: Ordering = Ordering::Acquire;
/// How a state word is published: after every payload access of the slot.
pub(crate) const STATE_PUBLISH: Ordering = Ordering::Release;

/// One I/O request slot: ACRN's `struct acrn_io_request`, 256 bytes.
#[derive(Debug)]
#[repr(C, align(256))]
pub struct IoreqSlot {
    /// `TYPE_PIO`, `TYPE_MMIO` or `TYPE_PCI_CONFIG` (C name: `type`).
    pub request_type: u32,
    /// Non-zero if the kernel polls for completion instead of waiting for a
    /// notification. Mica does not interpret it.
    pub completion_polling: u32,
    /// Reserved (zero).
    pub reserved0: [u32; 14],
    /// The request itself.
    pub payload: RequestPayload,
    /// Reserved (zero).
    pub reserved1: u32,
    /// Non-zero if the kernel handled the request itself. Mica does not
    /// interpret it.
    pub kernel_handled: u32,
    /// The slot state (C name: `processed`): one of the `STATE_*` values.
    /// Read it with [`IoreqSlot::state_word`]; the transitions are `slot`'s.
    pub processed: AtomicU32,
    /// Padding up to 256 bytes (zero).
    pub reserved2: [u32; 29],
}

/// A whole ioreq page: one slot per vCPU, indexed by vCPU id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct IoreqPage {
    /// The slots.
    pub slots: [IoreqSlot; SLOT_COUNT],
}

const _: () = assert!(size_of::<RequestPayload>() == PAYLOAD_SIZE);
// The atomic state word is laid out exactly as the C `uint32_t`.
const _: () = assert!(size_of::<AtomicU32>() == 4 && align_of::<AtomicU32>() == 4);
const _: () = assert!(size_of::<IoreqSlot>() == SLOT_SIZE);
const _: () = assert!(align_of::<IoreqSlot>() == SLOT_SIZE);
const _: () = assert!(size_of::<IoreqPage>() == PAGE_SIZE);
const _: () = assert!(align_of::<IoreqPage>() == PAGE_SIZE);
const _: () = assert!(offset_of!(IoreqSlot, request_type) == 0);
const _: () = assert!(offset_of!(IoreqSlot, completion_polling) == 4);
const _: () = assert!(offset_of!(IoreqSlot, reserved0) == 8);
const _: () = assert!(offset_of!(IoreqSlot, payload) == 64);
const _: () = assert!(offset_of!(IoreqSlot, reserved1) == 128);
const _: () = assert!(offset_of!(IoreqSlot, kernel_handled) == 132);
const _: () = assert!(offset_of!(IoreqSlot, processed) == 136);
const _: () = assert!(offset_of!(IoreqSlot, reserved2) == 140);

impl IoreqSlot {
    /// An empty slot in state FREE, every other field zero.
    pub const fn free() -> Self {
        Self {
            request_type: 0,
            completion_polling: 0,
            reserved0: [0; 14],
            payload: RequestPayload { data: [0; 8] },
            reserved1: 0,
            kernel_handled: 0,
            processed: AtomicU32::new(STATE_FREE),
            reserved2: [0; 29],
        }
    }

    /// The state word, read with acquire ordering: the payload the other
    /// side wrote before it published this state is visible after it.
    #[inline]
    pub fn state_word(&self) -> u32 {
        self.processed.load(STATE_LOAD)
    }

    /// The state word, read without ordering: a hint for a scan (is there
    /// work?), never a reason to touch the payload. The step that acts on
    /// it reads the word again, ordered (the service's claim is an acquire
    /// compare-exchange).
    #[inline]
    pub fn state_hint(&self) -> u32 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Overwrites the state word (release ordering), whatever it holds.
    /// Transitions go through `slot`; this is for what a misbehaving side
    /// could write (tests) and for resets.
    #[inline]
    pub fn set_state_word(&self, raw: u32) {
        self.processed.store(raw, STATE_PUBLISH);
    }

    /// The slot as its 256 bytes in memory.
    pub fn to_bytes(&self) -> [u8; SLOT_SIZE] {
        let mut out = [0u8; SLOT_SIZE];
        let mut words = out.chunks_exact_mut(4);
        let mut put = |value: u32| {
            if let Some(chunk) = words.next() {
                chunk.copy_from_slice(&value.to_ne_bytes());
            }
        };
        put(self.request_type);
        put(self.completion_polling);
        self.reserved0.iter().for_each(|&w| put(w));
        for word in self.payload.data {
            let [a, b, c, d, e, f, g, h] = word.to_ne_bytes();
            put(u32::from_ne_bytes([a, b, c, d]));
            put(u32::from_ne_bytes([e, f, g, h]));
        }
        put(self.reserved1);
        put(self.kernel_handled);
        put(self.processed.load(Ordering::Relaxed));
        self.reserved2.iter().for_each(|&w| put(w));
        out
    }

    /// The slot whose memory holds exactly `bytes` (any bytes are a valid
    /// slot image; what they mean is checked by whoever reads the fields).
    pub fn from_bytes(bytes: &[u8; SLOT_SIZE]) -> Self {
        let mut words = bytes
            .chunks_exact(4)
            .map(|c| c.try_into().map_or(0, u32::from_ne_bytes));
        let mut take = || words.next().unwrap_or(0);
        let mut slot = Self::free();
        slot.request_type = take();
        slot.completion_polling = take();
        slot.reserved0.iter_mut().for_each(|w| *w = take());
        for word in slot.payload.data.iter_mut() {
            let [a, b, c, d] = take().to_ne_bytes();
            let [e, f, g, h] = take().to_ne_bytes();
            *word = u64::from_ne_bytes([a, b, c, d, e, f, g, h]);
        }
        slot.reserved1 = take();
        slot.kernel_handled = take();
        slot.processed = AtomicU32::new(take());
        slot.reserved2.iter_mut().for_each(|w| *w = take());
        slot
    }
}

impl Default for IoreqSlot {
    fn default() -> Self {
        Self::free()
    }
}

/// A copy of the slot's bytes at one moment (a snapshot; not a protocol
/// step: tests and the fuzzers compare pages with it).
impl Clone for IoreqSlot {
    fn clone(&self) -> Self {
        Self::from_bytes(&self.to_bytes())
    }
}

/// Equal when their bytes are.
impl PartialEq for IoreqSlot {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for IoreqSlot {}

impl IoreqPage {
    /// A page with every slot FREE.
    pub const fn new() -> Self {
        Self {
            slots: [const { IoreqSlot::free() }; SLOT_COUNT],
        }
    }

    /// The slot of `vcpu`, or `None` past the last slot.
    #[inline]
    pub fn slot(&self, vcpu: usize) -> Option<&IoreqSlot> {
        self.slots.get(vcpu)
    }

    /// The slot of `vcpu` for writing, or `None` past the last slot.
    #[inline]
    pub fn slot_mut(&mut self, vcpu: usize) -> Option<&mut IoreqSlot> {
        self.slots.get_mut(vcpu)
    }

    /// The page as its 4096 bytes in memory.
    pub fn to_bytes(&self) -> [u8; PAGE_SIZE] {
        let mut out = [0u8; PAGE_SIZE];
        for (chunk, slot) in out.chunks_exact_mut(SLOT_SIZE).zip(&self.slots) {
            chunk.copy_from_slice(&slot.to_bytes());
        }
        out
    }

    /// The page whose memory holds exactly `bytes`.
    pub fn from_bytes(bytes: &[u8; PAGE_SIZE]) -> Self {
        let mut page = Self::new();
        for (slot, chunk) in page.slots.iter_mut().zip(bytes.chunks_exact(SLOT_SIZE)) {
            if let Ok(image) = <&[u8; SLOT_SIZE]>::try_from(chunk) {
                *slot = IoreqSlot::from_bytes(image);
            }
        }
        page
    }
}

impl Default for IoreqPage {
    fn default() -> Self {
        Self::new()
    }
}

/// A page is its own storage (the host tests own their pages); a kernel
/// grant is a `&mut IoreqPage`, which gets this for free.
impl AsRef<IoreqPage> for IoreqPage {
    fn as_ref(&self) -> &IoreqPage {
        self
    }
}

impl AsMut<IoreqPage> for IoreqPage {
    fn as_mut(&mut self) -> &mut IoreqPage {
        self
    }
}

#[cfg(test)]
mod tests;
