//! RISC-V (RV64 with the H extension) backend. The modules not gated on the
//! target (`sv39`, `seed`'s decoding ...) are pure and tested on the host;
//! everything else touches the hart and exists only on bare metal.

// RV64: usize, XLEN-wide CSRs and physical addresses are all 64 bits.
#![allow(clippy::cast_possible_truncation)]

pub mod cpus;
pub mod fpu;
pub mod gstage;
pub mod guest_sbi;
pub mod mmio_decode;
pub mod seed;
pub mod sv39;
pub mod vs_fetch;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod console_in;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod csr;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod devmem;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod dtb;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod entry;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod guest_mem;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod guest_tlb;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod paging;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod poweroff;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod sbi;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod smp;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod timer;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod trap;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod uspace;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub mod vcpu;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod vcpu_sbi;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod vs_csrs;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod world_switch;

/// The names every backend exports (see `arch/mod.rs`).
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub mod hal {
    pub use super::console_in::console_read;
    pub use super::cpus::this_cpu;
    pub use super::devmem::{device_reset, virtio_device_id};
    pub use super::dtb::{dtb_slice, initrd_slice};
    pub use super::guest_tlb::guest_tlb_tags;
    pub use super::paging::enable_kernel_paging;
    pub use super::sbi::console_write;
    pub use super::seed::{hardware_entropy, probe_entropy};
    pub use super::smp::{cpu_count, kick, release as cpus_release, start_secondaries};
    pub use super::timer::{
        init as timer_init, now as timer_now, platform_info, set_deadline as timer_set_deadline,
        ticks_per_second as timer_ticks_per_second, uses_sstc as timer_uses_sstc,
        wait_for_interrupt,
    };
    pub use super::trap::{TrapFrame, enter_user, init as trap_init, probe_hypervisor};
    pub use super::uspace::{AddressSpace, load as load_task};
    pub use super::vcpu::{GuestEntry, GuestVm};
    pub use crate::arch::frame_tables::zero_frames;
    pub use crate::arch::layout::{KernelImage, kernel_image};
    pub use crate::arch::uspace::copy_message;

    /// The architecture's name for the boot banner.
    pub const NAME: &str = "riscv64";

    /// Every hart runs user tasks (the services) as well as vCPUs: a trap
    /// from U-mode finds its hart's kernel stack and number in the task's
    /// frame, and a change of a task's mappings shoots the other harts'
    /// translations down (`arch::uspace`).
    pub const TASKS_ON_EVERY_CPU: bool = true;

    pub use super::poweroff::{init as platform_init, shutdown};

    /// Whether the hart can run guests: the device tree's ISA string names
    /// H and reading `hstatus` does not trap.
    pub fn hypervisor_available(info: &mica_boot::BootInfo<'_>) -> bool {
        info.has_h() && probe_hypervisor()
    }

    /// Whether the timer can use Sstc's `stimecmp` directly.
    pub fn timer_has_sstc(info: &mica_boot::BootInfo<'_>) -> bool {
        info.isa.has_extension("sstc")
    }
}
