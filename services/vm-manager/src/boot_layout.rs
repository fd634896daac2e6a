//! Where a guest's boot pieces go in its RAM (offsets from the start of
//! RAM), per the RISC-V Linux boot protocol. Pure; the vm-manager plans a
//! VM with it before loading, and xtask checks a user's files with it.
//!
//! The top of RAM is fixed: the last page holds a device tree that fits in
//! a page, the page below it the generation ID ([`GENID_FROM_END`]), and
//! nothing else may reach into either. Below them:
//!
//! - a Linux kernel at its header's `text_offset` (2 MiB on RV64), the
//!   entry point being its first byte; it occupies its `image_size`
//!   (BSS included), never less than the file;
//! - an initrd right after the kernel's footprint, rounded up to 2 MiB.
//!   Low rather than QEMU's "high" placement because the top is where a
//!   device tree larger than a page goes, and right after the kernel
//!   leaves all the rest of RAM for the initrd; 2 MiB keeps it out of the
//!   huge page that maps the kernel's end, and it is page aligned as Linux
//!   needs (it reserves `linux,initrd-start..end` before allocating);
//! - a device tree larger than a page at the highest page below the
//!   generation-ID page, 8-byte (in fact page) aligned, clear of the rest.
//!
//! A raw guest image keeps the old rule: at [`RAW_IMAGE_OFFSET`], entered at
//! its first byte.

use core::fmt;

use ipc::syscall::GUEST_GENID_FROM_END;

use crate::linux_image::{KERNEL_ALIGN, LinuxImage};

/// The generation-ID page starts this many bytes before the end of RAM.
pub const GENID_FROM_END: u64 = GUEST_GENID_FROM_END;
/// Bytes of the top page, where a device tree that fits goes.
pub const DTB_PAGE: u64 = 4096;
/// Page size.
pub const PAGE: u64 = 4096;
/// Where a raw (non-Linux) RISC-V image goes and is entered.
pub const RAW_IMAGE_OFFSET: u64 = ipc::syscall::RISCV_GUEST_IMAGE_OFFSET;
/// An initrd starts at a multiple of this after the kernel.
pub const INITRD_ALIGN: u64 = KERNEL_ALIGN;

/// A run of bytes in guest RAM, by offset from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte, from the start of RAM.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

impl Span {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Where the kernel (or raw image) and the initrd go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPlan {
    /// The kernel's load offset, also where vCPU 0 starts.
    pub entry: u64,
    /// The RAM the kernel occupies (load offset, footprint).
    pub kernel: Span,
    /// The initrd, if there is one.
    pub initrd: Option<Span>,
}

impl BootPlan {
    /// The end of the highest piece placed so far.
    pub fn used_end(&self) -> u64 {
        self.initrd.map_or(self.kernel.end(), |i| i.end())
    }
}

/// Why the pieces do not fit a VM's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The kernel (or raw image) runs into the generation-ID page.
    KernelDoesNotFit {
        /// Bytes it occupies.
        bytes: u64,
        /// Bytes there are from its load offset to the reserved top pages.
        room: u64,
        /// The VM's RAM in MiB.
        ram_mib: u64,
    },
    /// The initrd runs into the generation-ID page.
    InitrdDoesNotFit {
        /// Its bytes.
        bytes: u64,
        /// Bytes there are after the kernel.
        room: u64,
        /// The VM's RAM in MiB.
        ram_mib: u64,
    },
    /// The initrd is empty.
    EmptyInitrd,
    /// The device tree does not fit between the other pieces and the
    /// generation-ID page.
    DtbDoesNotFit {
        /// Its bytes.
        bytes: u64,
        /// Bytes there are.
        room: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::KernelDoesNotFit {
                bytes,
                room,
                ram_mib,
            } => write!(
                f,
                "the kernel occupies {bytes} bytes but a VM with {ram_mib} MiB has room for {room}: give it more with mem="
            ),
            LayoutError::InitrdDoesNotFit {
                bytes,
                room,
                ram_mib,
            } => write!(
                f,
                "the initrd is {bytes} bytes but a VM with {ram_mib} MiB has room for {room} after the kernel: give it more with mem="
            ),
            LayoutError::EmptyInitrd => f.write_str("the initrd is empty: give a cpio archive"),
            LayoutError::DtbDoesNotFit { bytes, room } => write!(
                f,
                "the device tree is {bytes} bytes but only {room} are free below the generation-ID page: shorten the command line or give more mem="
            ),
        }
    }
}

/// The end of what a guest may fill: the start of the generation-ID page.
pub fn usable_end(ram_bytes: u64) -> u64 {
    ram_bytes.saturating_sub(GENID_FROM_END)
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    value.checked_add(align - 1).map(|v| v / align * align)
}

fn place_kernel(ram_bytes: u64, offset: u64, bytes: u64) -> Result<Span, LayoutError> {
    let end = usable_end(ram_bytes);
    let room = end.saturating_sub(offset);
    if bytes > room {
        return Err(LayoutError::KernelDoesNotFit {
            bytes,
            room,
            ram_mib: ram_bytes >> 20,
        });
    }
    Ok(Span { offset, len: bytes })
}

/// Plans a Linux `kernel` and an optional initrd of `initrd_len` bytes in
/// `ram_bytes` of RAM.
pub fn plan_linux(
    ram_bytes: u64,
    kernel: &LinuxImage,
    initrd_len: Option<u64>,
) -> Result<BootPlan, LayoutError> {
    let span = place_kernel(ram_bytes, kernel.text_offset, kernel.footprint)?;
    let initrd = match initrd_len {
        None => None,
        Some(0) => return Err(LayoutError::EmptyInitrd),
        Some(bytes) => {
            let end = usable_end(ram_bytes);
            let start = align_up(span.end(), INITRD_ALIGN).unwrap_or(u64::MAX);
            let room = end.saturating_sub(start);
            if bytes > room {
                return Err(LayoutError::InitrdDoesNotFit {
                    bytes,
                    room,
                    ram_mib: ram_bytes >> 20,
                });
            }
            Some(Span {
                offset: start,
                len: bytes,
            })
        }
    };
    Ok(BootPlan {
        entry: span.offset,
        kernel: span,
        initrd,
    })
}

/// Plans a raw image of `image_len` bytes at `offset` (entered at its
/// first byte), without an initrd.
pub fn plan_raw(ram_bytes: u64, offset: u64, image_len: u64) -> Result<BootPlan, LayoutError> {
    let span = place_kernel(ram_bytes, offset, image_len)?;
    Ok(BootPlan {
        entry: offset,
        kernel: span,
        initrd: None,
    })
}

/// Where a device tree of `dtb_len` bytes goes, given that RAM below
/// `used_end` is taken: the top page when it fits there, else the highest
/// page-aligned run below the generation-ID page.
pub fn place_dtb(ram_bytes: u64, used_end: u64, dtb_len: u64) -> Result<u64, LayoutError> {
    let end = usable_end(ram_bytes);
    if dtb_len <= DTB_PAGE && ram_bytes >= GENID_FROM_END {
        return Ok(ram_bytes - DTB_PAGE);
    }
    let room = end.saturating_sub(align_up(used_end, PAGE).unwrap_or(u64::MAX));
    let fits = end
        .checked_sub(dtb_len)
        .map(|start| start / PAGE * PAGE)
        .filter(|start| *start >= used_end);
    fits.ok_or(LayoutError::DtbDoesNotFit {
        bytes: dtb_len,
        room,
    })
}

#[cfg(test)]
#[path = "boot_layout_tests.rs"]
mod tests;
