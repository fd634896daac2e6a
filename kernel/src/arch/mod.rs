//! The architecture boundary. Each backend (`riscv64` now, `x86_64` next)
//! exports the same names through its `hal` module, re-exported here; generic
//! kernel code calls only these and never names a CSR or a VMCS field:
//!
//! - `NAME`, `console_write(&str)`, `shutdown(ExitStatus) -> !`,
//!   `platform_init(&BootInfo)` (what shutdown needs from the device tree)
//! - `dtb_slice` / boot-info source, `kernel_image() -> KernelImage`
//! - `hypervisor_available(&BootInfo)`, `probe_hypervisor()`
//! - `trap_init()`, `TrapFrame`; traps reach `crate::trap::handle`
//! - `timer_init(hz, fast)`, `timer_now()`, `timer_set_deadline(t)`,
//!   `timer_ticks_per_second()`, `wait_for_interrupt()`
//! - `enable_kernel_paging(frames, image, ram)` (page-table activation)
//!
//! Context switching joins this list with the first U-mode task.

pub mod riscv64;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64::hal::*;

#[cfg(target_os = "none")]
pub mod heap;
