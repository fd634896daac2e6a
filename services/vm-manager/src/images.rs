//! What a boot-image guest entry holds, told from its first bytes: a Linux
//! kernel `Image` (its header's magic), an initial ramdisk (a cpio archive,
//! plain or in one of the compressions the kernel unpacks), or else a raw
//! image. The `images` list and a `vm create` naming an unknown image show
//! it.

use ipc::Error;
use ipc::vm::{GuestImage, ImageKind};

use crate::kernel_platform::VmKernel;
use crate::linux_image;

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
    let (_, header) = kernel.image_info(name.as_str())?;
    Ok(Some(GuestImage {
        name,
        kind: kind_of(&header),
        size,
    }))
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
