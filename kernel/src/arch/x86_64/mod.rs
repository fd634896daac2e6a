//! x86_64 backend: the Multiboot entry into long mode, the COM1 console,
//! exits through QEMU's and Bochs' power-off ports, the CPUID choice
//! between SVM and VMX, the GDT/TSS and IDT (`gdt`, `idt`, reports in
//! `fault`), the LAPIC timer, kernel page tables (`pt4`, `paging`), ring-3
//! tasks (`usermode`: the `syscall` entry and `iretq`; `uspace`: their page
//! tables), application processors (`smp`: ACPI-listed CPUs started with
//! INIT-SIPI-SIPI, then scheduling vCPUs beside the boot CPU; which are
//! online and which schedule in `cpus`), the SVM world switch and the VMs the VM calls make over it
//! (`guest`, `guest_mem`), VMX operation and vCPUs (`vmx`, `vmx_vcpu`, fields in
//! `vmcs`; `vcpu` hides which backend runs). Pure pieces (`virt`, `pt4`,
//! `fault`, `cpus`, `fpu` (each vCPU's x87/SSE state), `msr` (which MSRs a guest owns, the answers to the others),
//! `cr4` (which CR4 bits a guest owns, the answer to a write of the others),
//! `pmu` (the performance-monitoring unit a guest does not get), `mov_cr` (a MOV to CR4
//! fetched through the guest's page tables and decoded, for SVM),
//! `rng` (RDSEED, else RDRAND, with retries), `testhook`, `svm_exit`,
//! `vmx_caps`, `vmx_controls`, `vmx_exit`, `vmcs`) are host-tested; the
//! rest exists only on bare metal.
#![allow(
    clippy::cast_possible_truncation,
    reason = "register fields, descriptor limits and addresses on a 64-bit target have known widths"
)]

pub mod cpus;
pub mod cr4;
pub mod fault;
pub mod fpu;
pub mod mov_cr;
pub mod msr;
pub mod pmu;
pub mod pt4;
pub mod rng;
pub mod svm_exit;
pub mod testhook;
pub mod virt;
pub mod vmcs;
pub mod vmx_caps;
pub mod vmx_controls;
pub mod vmx_exit;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod entry;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod firmware;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod gdt;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod guest;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod guest_mem;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod idt;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod lapic;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod msr_io;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod paging;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod port;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod poweroff;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod serial;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod smp;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod svm;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod timer;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod usermode;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod uspace;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod vcpu;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod vmx;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod vmx_vcpu;

/// The names every backend exports (see `arch/mod.rs`).
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod hal {
    pub use super::firmware::{
        Firmware, check_virtualization, cpus_start, firmware_init, read_firmware,
    };
    pub use super::guest::{GuestEntry, GuestVm};

    pub use super::guest_mem::guest_tlb_tags;
    pub use super::paging::{PAGING, enable_kernel_paging};
    pub use super::poweroff::shutdown;
    pub use super::rng::{hardware_entropy, probe_entropy};
    pub use super::serial::{console_read, console_write};
    pub use super::smp::{cpu_count, kick, release as cpus_release, this_cpu};
    pub use super::timer::{
        platform_info, timer_now, timer_set_deadline, timer_source, timer_start, trap_init,
        wait_for_interrupt,
    };
    pub use super::usermode::{TrapFrame, enter_user};
    pub use super::uspace::{AddressSpace, device_reset, load as load_task, virtio_device_id};
    pub use crate::arch::frame_tables::zero_frames;
    pub use crate::arch::layout::{KernelImage, kernel_image};
    pub use crate::arch::uspace::copy_message;

    /// The architecture's name for the boot banner.
    pub const NAME: &str = "x86_64";

    /// User tasks run on every CPU that schedules: each has its own
    /// `syscall` entry block and entry stack (`usermode::EntryCpu`).
    pub const TASKS_ON_EVERY_CPU: bool = true;

    /// The boot image the loader placed in RAM as the first Multiboot module.
    pub fn initrd_slice(range: mica_boot::MemRange) -> &'static [u8] {
        let len = usize::try_from(range.size).unwrap_or(0);
        let end = range.start.saturating_add(range.size);
        if range.start == 0 || len == 0 || end > super::entry::BOOT_MAP_BYTES {
            return &[];
        }
        // SAFETY: the range is the loader's first module: RAM it filled,
        // inside the boot identity map (checked above), reserved from the
        // frame allocator (`bootmem::plan`) and never written by the kernel.
        unsafe { core::slice::from_raw_parts(range.start as *const u8, len) }
    }
}
