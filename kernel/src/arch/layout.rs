//! Where the linker put the kernel image: the section boundaries each
//! arch's `linker.ld` defines under the same names.

use mica_boot::MemRange;

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// The kernel image's sections, as physical ranges (the kernel runs
/// identity-mapped).
#[derive(Debug, Clone, Copy)]
pub struct KernelImage {
    /// Code (on x86_64 also the Multiboot header): read + execute.
    pub text: MemRange,
    /// Constants: read-only.
    pub rodata: MemRange,
    /// Data, BSS, the boot stacks (and on x86_64 the boot page tables):
    /// read + write.
    pub data: MemRange,
}

impl KernelImage {
    /// The whole image.
    pub fn whole(&self) -> MemRange {
        MemRange::new(self.text.start, self.data.end() - self.text.start)
    }
}

/// Reads the section boundaries.
pub fn kernel_image() -> KernelImage {
    // Only the addresses of the linker symbols are used, never their contents.
    let start = (&raw const __kernel_start) as u64;
    let text_end = (&raw const __text_end) as u64;
    let rodata_end = (&raw const __rodata_end) as u64;
    let end = (&raw const __kernel_end) as u64;
    KernelImage {
        text: MemRange::new(start, text_end - start),
        rodata: MemRange::new(text_end, rodata_end - text_end),
        data: MemRange::new(rodata_end, end - rodata_end),
    }
}
