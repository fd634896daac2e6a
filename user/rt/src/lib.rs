//! The runtime every Mica user task links, on RISC-V and x86_64: the
//! `_start` entry (the kernel sets the stack, the IPC buffer and the
//! restart count in the first two argument registers, see `ipc::syscall`),
//! system-call wrappers, a `log` backend over `debug_write`, a small heap,
//! a panic handler that exits, and [`serve_forever`], the server loop.
//!
//! It also wraps the hypervisor console calls of the shell ([`console`]),
//! the VM-control calls ([`vm`]), the ioreq calls and page
//! accessor ([`ioreq_pages`]), the kernel's entropy call, the rng
//! service (the host's virtio-rng) and a counter fallback that is not
//! random ([`entropy`]), the
//! device calls ([`device`]) and, with the `virtio` feature, a
//! `virtio-drivers` HAL over them (`virtio`).
//!
//! A task crate names its main function with [`entry!`] and links with
//! `user/rt/link.ld` (its build script passes `-T`). On the host the crate
//! builds (every call answers `KernelRefused`) so its pure parts are tested.
//!
//! Layer: runtime (`cargo xtask check-layers`): it owns the user side of the
//! syscall ABI and depends only on `ipc`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod console;
pub mod device;
pub mod entropy;
#[cfg(target_os = "none")]
mod heap;
pub mod ioreq_pages;
#[cfg(target_os = "none")]
mod logger;
mod server;
mod static_slot;
pub mod sys;
#[cfg(feature = "virtio")]
pub mod virtio;
pub mod vm;

pub use server::{call_message, call_message_within, call_service, call_with, serve_forever};
pub use static_slot::StaticSlot;
pub use sys::{Received, Start};

/// Declares `$main: fn(Start) -> u32` as the task's main function; its
/// return value is the task's exit status.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __mica_task_main(start: $crate::Start) -> u32 {
            let main: fn($crate::Start) -> u32 = $main;
            main(start)
        }
    };
}

/// The `main` of a task crate built for the host, where a Mica task cannot
/// run: says how to build `task` (its package name) instead and exits with
/// status 2.
#[cfg(not(target_os = "none"))]
pub fn refuse_to_run_on_the_host(task: &str) -> ! {
    extern crate std;
    std::eprintln!("{task} is a Mica task: build it with --target riscv64gc-unknown-none-elf");
    std::process::exit(2)
}

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn __mica_task_main(start: Start) -> u32;
}

/// Called by `_start` with the kernel's first two argument registers.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn __mica_rt_start(ipc_buffer: usize, restarts: usize) -> ! {
    heap::init();
    logger::init();
    let start = Start {
        ipc_buffer,
        restarts,
    };
    // SAFETY: `__mica_task_main` is defined by the task's `entry!` with
    // exactly this signature; without it the task does not link.
    let status = unsafe { __mica_task_main(start) };
    sys::exit(status)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    log::error!("panic: {info}");
    sys::exit(101)
}
