//! Service tasks on x86_64 (ring 3 in their own page tables) are not built
//! yet: a boot image stops the boot with a clear line instead of being
//! ignored.

use mica_boot::image::BootImage;

use crate::{ExitStatus, arch, klog};

/// Refuses to run the boot image's tasks.
pub fn start(_kernel_root: u64, image: BootImage<'static>) -> ! {
    klog::print(format_args!(
        "mica: boot image has {} entries, but service tasks do not run on {} yet\n",
        image.len(),
        arch::NAME
    ));
    arch::shutdown(ExitStatus::Failure)
}
