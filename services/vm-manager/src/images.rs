//! What a boot-image guest entry holds, told from its first bytes: a Linux
//! kernel `Image` (its header's magic), an initial ramdisk (a cpio archive,
//! plain or in one of the compressions the kernel unpacks), or else a raw
//! image. The `images` list and a `vm create` naming an unknown image show
//! it. The kernel knows the entries only by number: names are turned into
//! numbers here, and a Linux kernel's entries are placed from their headers.

use ipc::Error;
use ipc::vm::{GuestImage, ImageKind};

use crate::boot_layout::{self, BootPlan};
use crate::kernel_platform::VmKernel;
use crate::linux_image;
use crate::name::ImageName;

/// The first bytes of every archive format the kernel's initramfs unpacker
/// takes: cpio newc and crc, then gzip, bzip2, xz, zstd, lz4 (legacy frame)
/// and lzo (lzop).
const INITRD_MAGICS: [&[u8]; 8] = [
    b"070701",
    b"070702",
    &[0x1f, 0x8b],
    b"BZh",
    &[0xfd, b'7', b'z', b'X', b'Z', 0],
    &[0x28, 0xb5, 0x2f, 0xfd],
    &[0x02, 0x21, 0x4c, 0x18],
    &[0x89, b'L', b'Z', b'O', 0],
];

/// The kind of an image whose first bytes are `header`.
pub fn kind_of(header: &[u8]) -> ImageKind {
    if linux_image::has_magic(header) {
        ImageKind::LinuxImage
    } else if INITRD_MAGICS.iter().any(|magic| header.starts_with(magic)) {
        ImageKind::Initrd
    } else {
        ImageKind::Raw
    }
}

/// Guest image number `index` of the boot image as `kernel` knows it
/// (`image_name`, then `image_info` for the header); `None` past the last.
pub fn guest_image<K: VmKernel>(kernel: &mut K, index: u16) -> Result<Option<GuestImage>, Error> {
    let (name, size) = match kernel.image_name(usize::from(index)) {
        Ok(found) => found,
        Err(Error::UnknownImage) => return Ok(None),
        Err(error) => return Err(error),
    };
    let (_, header) = kernel.image_info(usize::from(index))?;
    Ok(Some(GuestImage {
        name,
        kind: kind_of(&header),
        size,
    }))
}

/// The number of the boot-image guest called `name`, which the kernel's
/// `vm_load` and `image_info` take: the kernel knows no names, so the
/// vm-manager asks `image_name` for each number in turn until one matches.
/// `UnknownImage` when none does (the shell then lists the images).
pub fn image_number<K: VmKernel>(kernel: &mut K, name: &ImageName) -> Result<usize, Error> {
    // A boot image has far fewer entries than this; the bound only keeps
    // a kernel that never says `UnknownImage` from looping for ever.
    for index in 0..usize::from(u16::MAX) {
        let (found, _) = kernel.image_name(index)?;
        if found.as_str() == name.as_str() {
            return Ok(index);
        }
    }
    Err(Error::UnknownImage)
}

/// Reads the header of image number `image` (a Linux kernel) and the size
/// of image number `initrd` through `kernel`, and places them in
/// `ram_bytes` of RAM: `InvalidArgument` for an image without a Linux
/// Image header, `OutOfMemory` when they do not fit.
pub fn plan_linux<K: VmKernel>(
    kernel: &mut K,
    ram_bytes: u64,
    image: usize,
    initrd: Option<usize>,
) -> Result<BootPlan, Error> {
    let (len, header) = kernel.image_info(image)?;
    let image = linux_image::parse_header(&header, len).map_err(|_| Error::InvalidArgument)?;
    let initrd_len = match initrd {
        Some(initrd) => Some(kernel.image_info(initrd)?.0),
        None => None,
    };
    boot_layout::plan_linux(ram_bytes, &image, initrd_len).map_err(|_| Error::OutOfMemory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_ramdisks_and_raw_images_are_told_apart() {
        let mut kernel = [0u8; 64];
        kernel[0x38..0x3c].copy_from_slice(&linux_image::MAGIC2);
        assert_eq!(kind_of(&kernel), ImageKind::LinuxImage);
        let mut old_kernel = [0u8; 64];
        old_kernel[0x30..0x38].copy_from_slice(&linux_image::MAGIC);
        assert_eq!(kind_of(&old_kernel), ImageKind::LinuxImage);
        for initrd in [
            &b"070701000000"[..],
            &[0x1f, 0x8b, 8, 0],
            &[0x28, 0xb5, 0x2f, 0xfd, 0],
            b"BZh91AY",
        ] {
            assert_eq!(kind_of(initrd), ImageKind::Initrd, "{initrd:?}");
        }
        // The hello guest starts with instructions; an empty or short
        // image is raw too.
        assert_eq!(kind_of(&[0x97, 0x02, 0, 0, 0x93, 0x82]), ImageKind::Raw);
        assert_eq!(kind_of(&[]), ImageKind::Raw);
        assert_eq!(kind_of(b"0707"), ImageKind::Raw);
    }
}
