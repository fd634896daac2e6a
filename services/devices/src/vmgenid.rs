//! The VM generation ID device: a 128-bit ID the guest can read, which the
//! host replaces whenever the VM may have become a copy (clone, snapshot
//! restore), raising an interrupt until the guest acknowledges the change.
//!
//! Register layout (32 bytes, little-endian, naturally aligned accesses of
//! 1, 2, 4 or 8 bytes):
//!
//! | offset | name    | access | meaning |
//! |--------|---------|--------|---------|
//! | 0x00..0x10 | ID  | read-only | the 128-bit generation ID; byte `i` is bits `8i..8i+8` |
//! | 0x10   | STATUS  | read / write-1-to-clear | bit 0 = the ID changed since the last acknowledgement |
//! | 0x11..0x20 | reserved | read-only | read as zero |
//!
//! Writes to the ID or reserved bytes are refused ([`DeviceError::ReadOnly`]).
//! A write to STATUS with bit 0 set acknowledges the change; other bits are
//! ignored.
//!
//! The interrupt is a notification, one request per change: the line
//! pulses when the ID changes and drops once the interrupt controller has
//! latched it. Linux's `microsoft,vmgenid` driver (drivers/virt/vmgenid.c)
//! reads the new ID in its handler and never writes STATUS, so a line held
//! until STATUS is acknowledged would interrupt it forever. The first ID
//! the host gives a device (which starts with a placeholder until then) is
//! what the guest reads at boot and raises nothing.

use crate::bus::{AccessSize, BusDevice, DeviceEnv, DeviceError};

/// Bytes the device occupies.
pub const VMGENID_SIZE: u64 = 0x20;
/// Offset of the status register.
pub const STATUS_OFFSET: u64 = 0x10;
/// Status bit: the ID changed since the guest last acknowledged.
pub const STATUS_CHANGED: u8 = 0x01;

/// The VM generation ID device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmGenId {
    id: u128,
    changed: bool,
    /// A change not yet latched by the interrupt controller.
    notify: bool,
    /// Whether the host has given an ID yet (the first one is the boot ID).
    assigned: bool,
}

impl VmGenId {
    /// A device showing `id`, with no change pending (the guest reads the
    /// first ID at boot without a notification).
    pub const fn new(id: u128) -> Self {
        Self {
            id,
            changed: false,
            notify: false,
            assigned: false,
        }
    }

    /// The current ID.
    pub fn id(&self) -> u128 {
        self.id
    }

    /// Whether a change awaits the guest's acknowledgement.
    pub fn change_pending(&self) -> bool {
        self.changed
    }

    /// The host gives the VM a new ID. A different ID raises the change
    /// notification; setting the same ID again changes nothing, and the
    /// first ID the host gives replaces the placeholder the device was
    /// made with: the boot ID, read without a notification.
    pub fn set_id(&mut self, id: u128) {
        let first = !core::mem::replace(&mut self.assigned, true);
        if id != self.id {
            self.id = id;
            self.changed |= !first;
            self.notify |= !first;
        }
    }

    /// The interrupt controller latched the pulse.
    pub fn irq_latched(&mut self) {
        self.notify = false;
    }

    /// The register file as bytes.
    fn register_bytes(&self) -> [u8; 0x20] {
        let mut bytes = [0u8; 0x20];
        let (id, status) = bytes.split_at_mut(0x10);
        id.copy_from_slice(&self.id.to_le_bytes());
        if let Some(first) = status.first_mut() {
            *first = u8::from(self.changed);
        }
        bytes
    }
}

fn check(offset: u64, size: AccessSize) -> Result<usize, DeviceError> {
    if !size.is_aligned(offset) {
        return Err(DeviceError::Unaligned);
    }
    let end = offset
        .checked_add(size.bytes())
        .ok_or(DeviceError::OutOfRange)?;
    if end > VMGENID_SIZE {
        return Err(DeviceError::OutOfRange);
    }
    usize::try_from(offset).map_err(|_| DeviceError::OutOfRange)
}

impl BusDevice for VmGenId {
    fn size(&self) -> u64 {
        VMGENID_SIZE
    }

    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError> {
        let start = check(offset, size)?;
        let bytes = self.register_bytes();
        let mut value = [0u8; 8];
        let width = size.byte_count();
        let src = bytes
            .get(start..start.saturating_add(width))
            .ok_or(DeviceError::OutOfRange)?;
        value
            .get_mut(..width)
            .ok_or(DeviceError::BadWidth)?
            .copy_from_slice(src);
        Ok(u64::from_le_bytes(value))
    }

    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError> {
        check(offset, size)?;
        if offset != STATUS_OFFSET {
            return Err(DeviceError::ReadOnly);
        }
        // Only the status byte is writable; anything wider would also write
        // reserved bytes, which must stay zero.
        if value & size.mask() & !0xff != 0 {
            return Err(DeviceError::ReadOnly);
        }
        if value & u64::from(STATUS_CHANGED) != 0 {
            self.changed = false;
        }
        Ok(())
    }

    fn irq_level(&self) -> bool {
        self.notify
    }

    fn irq_latched(&mut self) {
        VmGenId::irq_latched(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestEnv;

    const ID: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;

    fn read(dev: &mut VmGenId, offset: u64, bytes: u8) -> Result<u64, DeviceError> {
        let size = AccessSize::from_bytes(bytes).unwrap();
        dev.read(offset, size, &mut TestEnv::default().env())
    }

    fn write(dev: &mut VmGenId, offset: u64, bytes: u8, value: u64) -> Result<(), DeviceError> {
        let size = AccessSize::from_bytes(bytes).unwrap();
        dev.write(offset, size, value, &mut TestEnv::default().env())
    }

    #[test]
    fn id_reads_little_endian_at_every_width() {
        let mut dev = VmGenId::new(ID);
        for offset in 0..16 {
            assert_eq!(read(&mut dev, offset, 1), Ok(offset));
        }
        assert_eq!(read(&mut dev, 2, 2), Ok(0x0302));
        assert_eq!(read(&mut dev, 4, 4), Ok(0x0706_0504));
        assert_eq!(read(&mut dev, 0, 8), Ok(0x0706_0504_0302_0100));
        assert_eq!(read(&mut dev, 8, 8), Ok(0x0f0e_0d0c_0b0a_0908));
        let low = read(&mut dev, 0, 8).unwrap();
        let high = read(&mut dev, 8, 8).unwrap();
        assert_eq!(u128::from(low) | (u128::from(high) << 64), dev.id());
    }

    #[test]
    fn unaligned_and_out_of_range_reads_are_refused() {
        let mut dev = VmGenId::new(ID);
        assert_eq!(read(&mut dev, 1, 2), Err(DeviceError::Unaligned));
        assert_eq!(read(&mut dev, 4, 8), Err(DeviceError::Unaligned));
        assert_eq!(read(&mut dev, 0x20, 1), Err(DeviceError::OutOfRange));
        assert_eq!(read(&mut dev, 0x18, 8), Ok(0), "reserved reads zero");
    }

    #[test]
    fn writes_to_the_id_and_reserved_bytes_are_refused() {
        let mut dev = VmGenId::new(ID);
        assert_eq!(write(&mut dev, 0, 8, 0), Err(DeviceError::ReadOnly));
        assert_eq!(write(&mut dev, 0x0f, 1, 0), Err(DeviceError::ReadOnly));
        assert_eq!(write(&mut dev, 0x18, 4, 0), Err(DeviceError::ReadOnly));
        assert_eq!(write(&mut dev, 0x10, 4, 0x100), Err(DeviceError::ReadOnly));
        assert_eq!(write(&mut dev, 0x11, 1, 1), Err(DeviceError::ReadOnly));
        assert_eq!(write(&mut dev, 0x12, 4, 1), Err(DeviceError::Unaligned));
        assert_eq!(dev.id(), ID);
    }

    #[test]
    fn a_new_id_pulses_the_line_and_sets_status_until_acknowledged() {
        let mut dev = VmGenId::new(0);
        dev.set_id(ID);
        assert!(!dev.irq_level(), "the boot ID");
        assert_eq!(read(&mut dev, 0x10, 1), Ok(0));
        dev.set_id(ID + 1);
        assert!(dev.irq_level());
        dev.irq_latched();
        assert!(!dev.irq_level(), "one request per change");
        assert_eq!(read(&mut dev, 0x10, 4), Ok(1));
        assert_eq!(read(&mut dev, 0, 1), Ok(1), "the guest sees the new ID");
        write(&mut dev, 0x10, 4, 0).unwrap();
        assert_eq!(
            read(&mut dev, 0x10, 1),
            Ok(1),
            "writing 0 does not acknowledge"
        );
        write(&mut dev, 0x10, 1, 1).unwrap();
        assert_eq!(read(&mut dev, 0x10, 1), Ok(0));
    }

    #[test]
    fn the_first_id_the_host_gives_is_the_boot_id() {
        let mut dev = VmGenId::new(0x1234);
        dev.set_id(ID);
        assert!(!dev.irq_level());
        assert!(!dev.change_pending());
        assert_eq!(dev.id(), ID);
        dev.set_id(ID + 1);
        assert!(dev.irq_level() && dev.change_pending());
    }

    #[test]
    fn setting_the_same_id_does_not_notify() {
        let mut dev = VmGenId::new(ID);
        dev.set_id(ID);
        assert!(!dev.change_pending());
    }
}
