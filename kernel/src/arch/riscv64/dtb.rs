//! The DTB the firmware left in memory, as a bounded byte slice.

use mica_boot::fdt::{self, DtbError};

/// The DTB at physical address `addr` (a1 at entry), `totalsize` bytes.
pub fn dtb_slice(addr: usize) -> Result<&'static [u8], DtbError> {
    if addr == 0 || !addr.is_multiple_of(8) {
        return Err(DtbError::BadHeader);
    }
    // SAFETY: OpenSBI passes the address of a DTB in RAM it reserved for us;
    // 8 readable bytes at an aligned, non-null address are read to learn the
    // size, which `total_size` bounds to 16 MiB before the full slice is made.
    let header = unsafe { core::slice::from_raw_parts(addr as *const u8, 8) };
    let size = fdt::total_size(header)?;
    // SAFETY: as above, for the `totalsize` bytes the header announces; the
    // kernel never writes that range (it is reserved in the frame allocator).
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, size) })
}

/// The boot image the loader placed in RAM as the initrd (`/chosen`).
pub fn initrd_slice(range: mica_boot::MemRange) -> &'static [u8] {
    let len = usize::try_from(range.size).unwrap_or(0);
    if range.start == 0 || len == 0 {
        return &[];
    }
    // SAFETY: the range comes from the device tree's `/chosen` initrd
    // properties: RAM the loader filled and the frame allocator reserves
    // (`bootmem::plan`), identity-mapped before and after paging is on; the
    // kernel never writes it.
    unsafe { core::slice::from_raw_parts(range.start as *const u8, len) }
}
