//! The architecture boundary. Each backend (`riscv64`, `x86_64`) exports the
//! same names through its `hal` module, re-exported here; generic kernel
//! code calls only these and never names a CSR, a VMCS field or a register:
//!
//! - `NAME`, `console_write(&str)`, `shutdown(ExitStatus) -> !`
//! - boot info: `read_firmware(arg0, arg1) -> Firmware` (the two entry
//!   registers: hart + DTB, or Multiboot magic + information), with
//!   `Firmware::machine()` (a `mica_boot::MachineInfo`) and `taken()`;
//!   `firmware_init(&Firmware)` (what shutdown needs), `kernel_image()`,
//!   `initrd_slice(range)` (the boot image's bytes)
//! - `check_virtualization(&Firmware)`: the H extension, or SVM / VMX
//! - `trap_init()`, `TrapFrame`; traps reach `crate::trap::handle`
//! - `timer_start(&Firmware) -> Option<hz>`, `timer_source()`,
//!   `timer_now()`, `timer_set_deadline(t)`, `wait_for_interrupt()`,
//!   `platform_info() -> Option<(timebase_hz, PLATFORM_* bits)>`
//! - `PAGING`, `enable_kernel_paging(frames, image, ram)` (page-table
//!   activation)
//! - `cpus_start(&Firmware, kernel_root)`: brings the other processors up
//!   and parks them until SMP scheduling, logging how many are online
//!   (RISC-V harts through SBI HSM; x86 CPUs of the ACPI MADT through
//!   INIT-SIPI-SIPI)
//! - `GuestVm`: a VM's arch state (RISC-V: H extension; x86_64: SVM or
//!   VMX), driven by the VM calls; a run of its vCPU ends in a
//!   [`RunOutcome`]
//! - user tasks: `AddressSpace` (`activate`, `read_user`),
//!   `load_task(frames, kernel_root, elf, asid)`, `copy_message(from, to,
//!   len)`; the context switch is `TrapFrame::for_user` / `set_result` /
//!   `syscall` on the saved frame plus `enter_user(&TrapFrame) -> !` for the
//!   first entry: a trap from U-mode saves the frame, generic code picks the
//!   next task, and the vector's return path restores whichever frame it left.
//!
//! What both backends share is written once here, over a trait each arch
//! implements with static calls: `page_table` (4 KiB tables of 512 entries
//! behind `TableMemory`; host-tested formats sv39, gstage, pt4),
//! `frame_tables` (table pages from the frame allocator through the
//! identity map), `uspace` (task address spaces over `UserPaging`),
//! `guest_ram` (a VM's RAM and its ioreq and posted-write frames),
//! `layout` (the kernel image's sections) and the heap.

/// How a run of a vCPU ended (`GuestVm::run`), the same on every arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// An interrupt for the host: the scheduler decides what runs next.
    Preempted,
    /// The vCPU waits for its ioreq slot (`GuestVm::resume_io`).
    BlockedOnIo,
    /// The VM left the running state.
    Left(crate::vm::VmState),
    /// The guest waits (RISC-V `wfi`, x86 `hlt`) for its timer, due at
    /// this time (on x86 the next tick; `u64::MAX` with no timer set: only
    /// an interrupt wakes it).
    Sleeping(u64),
    /// The vCPU stopped itself (SBI HSM `hart_stop`), or is stopped: it
    /// runs again when a sibling starts it.
    HartStopped,
    /// Another CPU still holds the vCPU's state from a run the kernel took
    /// off it (a pause), until that CPU next takes the kernel lock: this
    /// one keeps the task and waits until that CPU, letting the run go,
    /// asks it to decide again ([`crate::obj::sched::Scheduler::let_go`]).
    Elsewhere,
}

pub mod riscv64;
pub mod x86_64;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64::hal::*;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
#[path = "riscv64/firmware.rs"]
mod riscv64_firmware;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64_firmware::{
    Firmware, PAGING, check_virtualization, cpus_start, firmware_init, read_firmware, timer_source,
    timer_start,
};

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use x86_64::hal::*;

pub mod page_table;
pub mod per_cpu;
pub mod user_presence;

#[cfg(target_os = "none")]
pub mod frame_tables;
#[cfg(target_os = "none")]
pub mod guest_ram;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod layout;
#[cfg(target_os = "none")]
pub mod uspace;
