//! The range checks of the VM boot calls (`vm_load`, `vm_write_ram`,
//! `vm_start`) and of device models' RAM accesses (`vm_ram_read`,
//! `vm_ram_write`), free of any architecture: what the vm-manager may write
//! into a VM's RAM and where it may start it. Offsets count from the start
//! of guest RAM; the generation-ID page and the page above it (a device
//! tree written with `vm_set_dtb`) are the kernel's to write.

use ipc::Error;
use ipc::syscall::GUEST_GENID_FROM_END;

/// Where a VM with `ram_bytes` of RAM stops taking `vm_load` and
/// `vm_write_ram` bytes: the start of its generation-ID page.
pub fn fill_end(ram_bytes: u64) -> u64 {
    ram_bytes.saturating_sub(GUEST_GENID_FROM_END)
}

/// `offset..offset + len` lies below the generation-ID page;
/// `Error::OutOfMemory` if it reaches into it, past RAM, or overflows.
pub fn check_fill(ram_bytes: u64, offset: u64, len: u64) -> Result<(), Error> {
    match offset.checked_add(len) {
        Some(end) if end <= fill_end(ram_bytes) => Ok(()),
        _ => Err(Error::OutOfMemory),
    }
}

/// The offset from the start of RAM of a device model's access to
/// `gpa..gpa + len` (`vm_ram_read`, `vm_ram_write`) in a VM whose RAM
/// starts at guest-physical `base`: the range must lie in RAM below the
/// generation-ID page (the kernel's), else `Error::InvalidRange`.
pub fn dma_offset(base: u64, ram_bytes: u64, gpa: u64, len: u64) -> Result<u64, Error> {
    let offset = gpa.checked_sub(base).ok_or(Error::InvalidRange)?;
    check_fill(ram_bytes, offset, len).map_err(|_| Error::InvalidRange)?;
    Ok(offset)
}

/// The entry lies below the generation-ID page and the device tree inside
/// RAM, 8-byte aligned; `Error::InvalidArgument` otherwise.
pub fn check_start(ram_bytes: u64, entry: u64, dtb: u64) -> Result<(), Error> {
    if entry < fill_end(ram_bytes) && dtb < ram_bytes && dtb.is_multiple_of(8) {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 64 << 20;

    #[test]
    fn fills_must_end_at_or_below_the_genid_page() {
        assert_eq!(check_fill(RAM, 0x20_0000, 4096), Ok(()));
        assert_eq!(check_fill(RAM, 0, RAM - 8192), Ok(()));
        assert_eq!(check_fill(RAM, 0, RAM - 8191), Err(Error::OutOfMemory));
        assert_eq!(check_fill(RAM, RAM, 0), Err(Error::OutOfMemory));
        assert_eq!(check_fill(RAM, u64::MAX, 2), Err(Error::OutOfMemory));
        assert_eq!(check_fill(4096, 0, 1), Err(Error::OutOfMemory));
    }

    #[test]
    fn device_model_accesses_stay_in_ram_below_the_genid_page() {
        const BASE: u64 = 0x8000_0000;
        assert_eq!(dma_offset(BASE, RAM, BASE, 4096), Ok(0));
        assert_eq!(dma_offset(BASE, RAM, BASE + 0x1000, 16), Ok(0x1000));
        assert_eq!(
            dma_offset(BASE, RAM, BASE + RAM - 8192 - 16, 16),
            Ok(RAM - 8192 - 16)
        );
        assert_eq!(dma_offset(BASE, RAM, BASE - 1, 2), Err(Error::InvalidRange));
        assert_eq!(
            dma_offset(BASE, RAM, BASE + RAM - 8192, 1),
            Err(Error::InvalidRange)
        );
        assert_eq!(
            dma_offset(BASE, RAM, BASE + RAM, 1),
            Err(Error::InvalidRange)
        );
        assert_eq!(dma_offset(BASE, RAM, u64::MAX, 2), Err(Error::InvalidRange));
        assert_eq!(dma_offset(0, RAM, 0, RAM), Err(Error::InvalidRange));
    }

    #[test]
    fn a_start_needs_an_entry_in_ram_and_an_aligned_dtb() {
        assert_eq!(check_start(RAM, 0x20_0000, RAM - 4096), Ok(()));
        assert_eq!(check_start(RAM, RAM - 8192, 0), Err(Error::InvalidArgument));
        assert_eq!(check_start(RAM, 0, RAM), Err(Error::InvalidArgument));
        assert_eq!(check_start(RAM, 0, 4), Err(Error::InvalidArgument));
    }
}
