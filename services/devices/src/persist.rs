//! What a VM's device models keep beyond the device service's life: their
//! guest-visible registers (a UART's line settings and interrupt enables,
//! the PLIC's priorities and enables, a virtio transport's negotiated
//! features and queue addresses), saved into the VM's device-state area
//! that the kernel holds (`vm_state_write`) and taken back by a restarted
//! service when the vm-manager attaches the VM's devices again.
//!
//! The area holds one [`RECORD_BYTES`] record per attached device, in
//! attach order (the vm-manager attaches a board's devices in one order).
//! A record is [`HEADER_BYTES`] of header, then the payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0-1 | [`MAGIC`] |
//! | 2 | the model's kind ([`kind_tag`]) |
//! | 3 | payload length |
//! | 4-11 | the device's base address (little-endian) |
//! | 12-15 | FNV-1a of bytes 0-11 and the payload |
//!
//! A record that does not check out (a service killed in the middle of
//! writing it, a different device in that place) is ignored: that device
//! starts from reset, as it did before records existed. What a model
//! keeps is decoded fallibly (`Persist::restore`): it never trusts the
//! bytes beyond their checksum.

use ipc::devices::DeviceKind;

/// Bytes of one device's record.
pub const RECORD_BYTES: usize = 256;
/// Bytes of a record's header.
pub const HEADER_BYTES: usize = 16;
/// The most payload a record holds.
pub const MAX_PAYLOAD: usize = RECORD_BYTES - HEADER_BYTES;
/// First bytes of a record.
pub const MAGIC: [u8; 2] = *b"MS";
/// How many records the area holds.
pub const MAX_RECORDS: usize = ipc::syscall::DEVICE_STATE_BYTES / RECORD_BYTES;

/// A model whose guest-visible registers outlive the service.
pub trait Persist {
    /// Writes what to keep into `out` (at least [`MAX_PAYLOAD`] bytes);
    /// returns its length, 0 when the model keeps nothing.
    fn save(&self, out: &mut [u8]) -> usize;
    /// Takes back what [`Persist::save`] wrote; false (the model
    /// unchanged) if `saved` does not decode.
    fn restore(&mut self, saved: &[u8]) -> bool;
    /// Whether a guest write at `offset` may change what is kept: a hot
    /// register that never does (a UART's transmit holding register, a
    /// virtio queue notification) skips the save.
    fn write_persists(&self, _offset: u64) -> bool {
        true
    }
}

/// The byte naming a model's kind in its record.
pub fn kind_tag(kind: DeviceKind) -> u8 {
    match kind {
        DeviceKind::Uart16550 => 1,
        DeviceKind::VirtioConsole => 2,
        DeviceKind::VirtioRng => 3,
        DeviceKind::VmGenId => 4,
        DeviceKind::Plic => 5,
        DeviceKind::VirtioBlk { .. } => 6,
        DeviceKind::VirtioNet => 7,
    }
}

fn fnv1a(parts: &[&[u8]]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for part in parts {
        for &byte in *part {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// Builds the record of a device of `kind` at `base` with `payload` into
/// `out`; returns the record's length and its checksum (which changes
/// whenever the payload does, so an unchanged record need not be written
/// again). `None` for a payload longer than [`MAX_PAYLOAD`].
pub fn encode(
    kind: DeviceKind,
    base: u64,
    payload: &[u8],
    out: &mut [u8; RECORD_BYTES],
) -> Option<(usize, u32)> {
    let len = u8::try_from(payload.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_PAYLOAD)?;
    out[..2].copy_from_slice(&MAGIC);
    out[2] = kind_tag(kind);
    out[3] = len;
    out[4..12].copy_from_slice(&base.to_le_bytes());
    let sum = fnv1a(&[&out[..12], payload]);
    out[12..16].copy_from_slice(&sum.to_le_bytes());
    let end = HEADER_BYTES + payload.len();
    out[HEADER_BYTES..end].copy_from_slice(payload);
    Some((end, sum))
}

/// The payload of `record` if it is a whole record of a device of `kind`
/// at `base`, with its checksum; `None` for anything else.
pub fn decode(kind: DeviceKind, base: u64, record: &[u8]) -> Option<(&[u8], u32)> {
    let header = record.get(..HEADER_BYTES)?;
    if header[..2] != MAGIC || header[2] != kind_tag(kind) || header[4..12] != base.to_le_bytes() {
        return None;
    }
    let payload = record.get(HEADER_BYTES..HEADER_BYTES + usize::from(header[3]))?;
    let sum = fnv1a(&[&header[..12], payload]);
    (header[12..16] == sum.to_le_bytes()).then_some((payload, sum))
}

/// Little-endian fields written one after another into a payload.
pub struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `out`.
    pub fn new(out: &'a mut [u8]) -> Self {
        Self { out, at: 0 }
    }

    /// Appends `bytes`; beyond the end of the buffer they are dropped and
    /// [`Writer::written`] returns 0 (nothing is kept rather than a part).
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.at.saturating_add(bytes.len());
        match self.out.get_mut(self.at..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.at = end;
            }
            None => self.at = usize::MAX,
        }
        self
    }

    /// Appends a byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes(&[value])
    }

    /// Appends a 16-bit value.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// Appends a 32-bit value.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// Appends a 64-bit value.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// Bytes written; 0 if they did not all fit.
    pub fn written(&self) -> usize {
        if self.at == usize::MAX { 0 } else { self.at }
    }
}

/// Little-endian fields read one after another from a payload; every read
/// past the end gives `None`.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next 16-bit value.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }

    /// The next 32-bit value.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    /// The next 64-bit value.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    /// Whether every byte was read (a payload of another layout is
    /// refused rather than half taken).
    pub fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_only_as_the_same_device_and_whole() {
        let mut out = [0u8; RECORD_BYTES];
        let (len, sum) = encode(DeviceKind::Plic, 0xc00_0000, b"state", &mut out).unwrap();
        assert_eq!(len, HEADER_BYTES + 5);
        assert_eq!(
            decode(DeviceKind::Plic, 0xc00_0000, &out),
            Some((&b"state"[..], sum))
        );
        assert_eq!(
            decode(DeviceKind::Uart16550, 0xc00_0000, &out),
            None,
            "kind"
        );
        assert_eq!(decode(DeviceKind::Plic, 0x1000_0000, &out), None, "base");
        for at in [0, 3, 9, 14, HEADER_BYTES + 2] {
            let mut torn = out;
            torn[at] ^= 0x40;
            assert_eq!(
                decode(DeviceKind::Plic, 0xc00_0000, &torn),
                None,
                "byte {at}"
            );
        }
        assert_eq!(
            decode(DeviceKind::Plic, 0xc00_0000, &[0; RECORD_BYTES]),
            None
        );
        assert_eq!(decode(DeviceKind::Plic, 0xc00_0000, &out[..8]), None);
        let (_, other) = encode(DeviceKind::Plic, 0xc00_0000, b"statf", &mut out).unwrap();
        assert_ne!(sum, other, "a changed payload changes the checksum");
        assert!(encode(DeviceKind::Plic, 0, &[0; MAX_PAYLOAD + 1], &mut out).is_none());
    }

    #[test]
    fn fields_read_back_as_written_and_short_payloads_are_refused() {
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        w.u8(1).u16(0x0203).u32(0x0405_0607).u64(8);
        assert_eq!(w.written(), 15);
        let mut r = Reader::new(&buf[..15]);
        assert_eq!(
            (r.u8(), r.u16(), r.u32(), r.u64()),
            (Some(1), Some(0x0203), Some(0x0405_0607), Some(8))
        );
        assert!(r.is_done());
        assert_eq!(Reader::new(&buf[..3]).u32(), None);
        let mut small = [0u8; 3];
        let mut w = Writer::new(&mut small);
        w.u16(1).u16(2);
        assert_eq!(w.written(), 0, "a payload that does not fit is not kept");
    }
}
