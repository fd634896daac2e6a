//! The RISC-V Linux `Image` header (the kernel's
//! `Documentation/arch/riscv/boot.rst`): what a kernel file says about
//! where it must be loaded and how much RAM it occupies. Pure; the
//! vm-manager reads the first [`HEADER_BYTES`] of a boot-image entry with
//! the kernel's `image_info` and xtask reads them from the user's file.
//!
//! Header layout (little-endian): `code0`/`code1` (0x0, 0x4), `text_offset`
//! u64 (0x8), `image_size` u64 (0x10), `flags` u64 (0x18, bit 0 =
//! big-endian kernel), `version` u32 (0x20), `res1` u32, `res2` u64,
//! `magic` u64 `"RISCV\0\0\0"` (0x30, deprecated but still written),
//! `magic2` u32 `"RSC\x05"` (0x38), `res3` u32 (the PE header's offset).

use core::fmt;

/// Bytes of the header that are read before a kernel is placed.
pub const HEADER_BYTES: usize = 64;
/// The current magic at 0x38.
pub const MAGIC2: [u8; 4] = *b"RSC\x05";
/// The deprecated magic at 0x30, accepted as well.
pub const MAGIC: [u8; 8] = *b"RISCV\0\0\0";
/// An RV64 kernel is mapped with 2 MiB pages: its load address, and so its
/// `text_offset` from the start of RAM, must be 2 MiB aligned.
pub const KERNEL_ALIGN: u64 = 2 * 1024 * 1024;

/// What a valid header says about a kernel file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxImage {
    /// Where the kernel goes, in bytes from the start of RAM (2 MiB for
    /// every RV64 kernel in practice).
    pub text_offset: u64,
    /// Bytes of RAM the kernel occupies from its load address, BSS
    /// included: the header's `image_size`, never less than the file (a
    /// header's 0 means unknown, so the file's length).
    pub footprint: u64,
    /// Bytes of the file itself (what is copied).
    pub file_len: u64,
}

/// Why a file is not a kernel this loader can boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageHeaderError {
    /// The file is empty.
    Empty,
    /// The file is shorter than the 64-byte header.
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// Neither `RSC\x05` at 0x38 nor the old `RISCV` magic at 0x30.
    NoMagic,
    /// `text_offset` is not a multiple of 2 MiB.
    MisalignedTextOffset {
        /// The header's value.
        text_offset: u64,
    },
    /// The header's flags say big-endian; guests here are little-endian.
    BigEndian,
}

impl fmt::Display for ImageHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageHeaderError::Empty => {
                f.write_str("is empty: give a RISC-V Linux Image (arch/riscv/boot/Image)")
            }
            ImageHeaderError::TooShort { len } => write!(
                f,
                "is {len} bytes, shorter than the {HEADER_BYTES}-byte Linux Image header: give a kernel Image, or use image = for a raw guest"
            ),
            ImageHeaderError::NoMagic => f.write_str(
                "is not a RISC-V Linux Image (no \"RSC\\x05\" magic at 0x38): give a kernel Image, or use image = for a raw guest",
            ),
            ImageHeaderError::MisalignedTextOffset { text_offset } => write!(
                f,
                "has text_offset {text_offset:#x}, not a multiple of 2 MiB as an RV64 kernel needs: rebuild it or give another Image"
            ),
            ImageHeaderError::BigEndian => f.write_str(
                "is a big-endian kernel (flags bit 0): give a little-endian RISC-V Image",
            ),
        }
    }
}

fn u64_at(header: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(bytes) = header.get(at..at + 8) {
        word.copy_from_slice(bytes);
    }
    u64::from_le_bytes(word)
}

/// Whether `header` (a file's first bytes) carries a Linux Image magic.
pub fn has_magic(header: &[u8]) -> bool {
    header.get(0x38..0x3c) == Some(&MAGIC2[..]) || header.get(0x30..0x38) == Some(&MAGIC[..])
}

/// Reads the header of a kernel file `file_len` bytes long whose first
/// bytes are `header` (at least [`HEADER_BYTES`] of them unless the file
/// is shorter).
pub fn parse_header(header: &[u8], file_len: u64) -> Result<LinuxImage, ImageHeaderError> {
    if file_len == 0 {
        return Err(ImageHeaderError::Empty);
    }
    if file_len < HEADER_BYTES as u64 || header.len() < HEADER_BYTES {
        return Err(ImageHeaderError::TooShort {
            len: file_len.min(header.len() as u64),
        });
    }
    if !has_magic(header) {
        return Err(ImageHeaderError::NoMagic);
    }
    if u64_at(header, 0x18) & 1 != 0 {
        return Err(ImageHeaderError::BigEndian);
    }
    let text_offset = u64_at(header, 0x08);
    if !text_offset.is_multiple_of(KERNEL_ALIGN) {
        return Err(ImageHeaderError::MisalignedTextOffset { text_offset });
    }
    let image_size = u64_at(header, 0x10);
    Ok(LinuxImage {
        text_offset,
        footprint: image_size.max(file_len),
        file_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 64 bytes of Debian's linux-image-6.12 riscv64 `Image`.
    const DEBIAN: [u8; 64] = [
        0x4d, 0x5a, 0x6f, 0x10, 0x60, 0x0d, 0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xc0, 0xe6, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x52, 0x49, 0x53, 0x43, 0x56, 0x00, 0x00, 0x00, 0x52, 0x53, 0x43, 0x05,
        0x40, 0x00, 0x00, 0x00,
    ];
    const DEBIAN_LEN: u64 = 31_167_488;

    fn header(text_offset: u64, image_size: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(&MAGIC2);
        h
    }

    #[test]
    fn debians_image_loads_2_mib_into_ram_and_occupies_its_image_size() {
        let image = parse_header(&DEBIAN, DEBIAN_LEN).unwrap();
        assert_eq!(image.text_offset, 0x20_0000);
        assert_eq!(image.footprint, 0x1e6_c000);
        assert_eq!(image.file_len, DEBIAN_LEN);
    }

    #[test]
    fn image_size_zero_means_the_file_size() {
        let image = parse_header(&header(0x20_0000, 0), 5000).unwrap();
        assert_eq!(image.footprint, 5000);
        // A header smaller than the file cannot shrink what is copied.
        let image = parse_header(&header(0x20_0000, 100), 5000).unwrap();
        assert_eq!(image.footprint, 5000);
    }

    #[test]
    fn the_deprecated_magic_alone_is_accepted() {
        let mut h = header(0, 8192);
        h[0x38..0x3c].fill(0);
        h[0x30..0x38].copy_from_slice(&MAGIC);
        assert_eq!(parse_header(&h, 4096).unwrap().text_offset, 0);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert_eq!(parse_header(&[], 0), Err(ImageHeaderError::Empty));
        assert_eq!(
            parse_header(&DEBIAN[..10], 10),
            Err(ImageHeaderError::TooShort { len: 10 })
        );
        let mut raw = DEBIAN;
        raw[0x30..0x3c].fill(0);
        assert_eq!(parse_header(&raw, 4096), Err(ImageHeaderError::NoMagic));
        assert_eq!(
            parse_header(&header(0x1000, 0), 4096),
            Err(ImageHeaderError::MisalignedTextOffset {
                text_offset: 0x1000
            })
        );
        let mut big = header(0, 0);
        big[0x18] = 1;
        assert_eq!(parse_header(&big, 4096), Err(ImageHeaderError::BigEndian));
    }

    #[test]
    fn the_no_magic_error_says_what_to_do() {
        let text = std::format!("kernel lx {}", ImageHeaderError::NoMagic);
        assert_eq!(
            text,
            "kernel lx is not a RISC-V Linux Image (no \"RSC\\x05\" magic at 0x38): give a kernel Image, or use image = for a raw guest"
        );
    }

    extern crate std;
}
