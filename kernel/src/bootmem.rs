//! Turning the firmware's memory description into free frames: RAM from the
//! device tree or the Multiboot memory map, minus the firmware's
//! reservations, the kernel image, the boot-info blob and the boot image; and
//! the check that enough is left to run.

use core::fmt;

use mica_boot::{MachineInfo, MemRange};

use crate::frame::{FRAME_SIZE, FrameAllocator};

/// Less free RAM than this after reservations cannot hold the kernel heap,
/// the service tasks and a guest.
pub const MIN_FREE_BYTES: u64 = 32 << 20;

/// Why boot memory is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMemError {
    /// Too little free RAM; sizes in MiB.
    TooLittle {
        /// Free after reservations.
        free_mib: u64,
        /// What Mica needs ([`MIN_FREE_BYTES`]).
        need_mib: u64,
    },
    /// The kernel image does not lie inside the RAM the boot info names.
    KernelOutsideRam,
}

impl fmt::Display for BootMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootMemError::TooLittle { free_mib, need_mib } => {
                write!(
                    f,
                    "not enough memory: {free_mib} MiB free, need at least {need_mib} MiB (give QEMU more with -m)"
                )
            }
            BootMemError::KernelOutsideRam => {
                f.write_str("kernel image lies outside the RAM the boot info names")
            }
        }
    }
}

/// What the plan found, for the boot banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySummary {
    /// RAM the boot info names.
    pub ram_bytes: u64,
    /// Free frames after every reservation.
    pub free_bytes: u64,
    /// Lowest to highest RAM address: what an identity map must cover.
    pub span: MemRange,
}

/// Sets `frames` up over the machine's RAM, reserving the firmware's
/// ranges, the boot image and every range in `taken` (kernel image, DTB,
/// what an x86 loader keeps in low memory).
pub fn plan<const W: usize>(
    frames: &mut FrameAllocator<W>,
    info: &MachineInfo<'_>,
    kernel: MemRange,
    taken: &[MemRange],
) -> Result<MemorySummary, BootMemError> {
    let ram = info.memory.as_slice();
    let low = ram.iter().map(|r| r.start).min().unwrap_or(0);
    let high = ram.iter().map(MemRange::end).max().unwrap_or(0);
    if !ram
        .iter()
        .any(|r| r.start <= kernel.start && kernel.end() <= r.end())
    {
        return Err(BootMemError::KernelOutsideRam);
    }
    let span = frames.init(MemRange::new(low, high - low));
    for &r in ram {
        frames.add_free(r);
    }
    for &r in info
        .reserved
        .as_slice()
        .iter()
        .chain(info.boot_image.iter())
        .chain(taken)
        .chain([&kernel])
    {
        frames.reserve(r);
    }
    let free_bytes = frames.free_frames() as u64 * FRAME_SIZE;
    if free_bytes < MIN_FREE_BYTES {
        return Err(BootMemError::TooLittle {
            free_mib: free_bytes >> 20,
            need_mib: MIN_FREE_BYTES >> 20,
        });
    }
    Ok(MemorySummary {
        ram_bytes: info.memory_bytes(),
        free_bytes,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_boot::BootInfo;

    const VIRT: &[u8] = include_bytes!("../../boot/tests/fixtures/virt.dtb");
    const KERNEL: MemRange = MemRange::new(0x8020_0000, 0x10_0000);

    #[test]
    fn qemu_256m_leaves_ram_minus_kernel_and_dtb() {
        let info = BootInfo::from_dtb(VIRT).unwrap().machine();
        let mut frames = FrameAllocator::<{ 1 << 12 }>::new();
        let dtb = MemRange::new(0x8fe0_0000, 0x1800);
        let s = plan(&mut frames, &info, KERNEL, &[dtb]).unwrap();
        assert_eq!(s.ram_bytes, 256 << 20);
        assert_eq!(s.free_bytes, (256 << 20) - 0x10_0000 - 0x2000);
        while let Ok(f) = frames.alloc() {
            assert!(
                !KERNEL.overlaps(&MemRange::new(f, FRAME_SIZE)),
                "kernel frame {f:#x} handed out"
            );
            assert!(
                !dtb.overlaps(&MemRange::new(f, FRAME_SIZE)),
                "DTB frame {f:#x} handed out"
            );
        }
    }

    #[test]
    fn too_little_ram_is_reported_in_mib() {
        let info = BootInfo::from_dtb(VIRT).unwrap().machine();
        let mut frames = FrameAllocator::<{ 1 << 12 }>::new();
        let big = MemRange::new(0x8100_0000, (256 - 20) << 20);
        let err = plan(&mut frames, &info, KERNEL, &[big]).unwrap_err();
        assert_eq!(
            err,
            BootMemError::TooLittle {
                free_mib: 19,
                need_mib: 32
            }
        );
        assert!(err.to_string().contains("-m"));
    }

    #[test]
    fn a_kernel_outside_ram_is_refused() {
        let info = BootInfo::from_dtb(VIRT).unwrap().machine();
        let mut frames = FrameAllocator::<{ 1 << 12 }>::new();
        let err = plan(&mut frames, &info, MemRange::new(0x4000_0000, 0x1000), &[]).unwrap_err();
        assert_eq!(err, BootMemError::KernelOutsideRam);
    }
}
