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
//! - user tasks: `AddressSpace` (`activate`, `read_user`), `load_task(frames,
//!   kernel_root, elf, asid)`, `copy_message(from, to, len)`; the context
//!   switch is `TrapFrame::for_user` / `set_result` / `syscall` on the saved
//!   frame plus `enter_user(&TrapFrame) -> !` for the first entry: a trap
//!   from U-mode saves the frame, generic code picks the next task, and the
//!   vector's return path restores whichever frame it left.

pub mod riscv64;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64::hal::*;

#[cfg(target_os = "none")]
pub mod heap;
