//! What Mica's bare-metal test guests share: the boot-protocol entry (image
//! header, stack, .bss), output through the 16550 UART, the `rdtime` clock
//! and a bounded walk over the device tree the guest is handed.
//!
//! A guest binary calls [`entry!`] with a `fn(hart: usize, dtb: usize) -> !`.
//! The entry code builds for `riscv64` and (module `x86`, 1 MiB flat
//! images) bare-metal `x86_64`; [`fdt`] and [`boot_info`] also build on the
//! host so their bounds checks are unit-tested there.
#![no_std]

pub mod boot_info;
pub mod fdt;

#[cfg(target_arch = "riscv64")]
mod entry;
#[cfg(target_arch = "riscv64")]
pub mod time;
#[cfg(target_arch = "riscv64")]
pub mod uart;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86;

/// Where the QEMU-virt-like board (Mica's and QEMU's) puts guest RAM.
pub const RAM_BASE: usize = 0x8000_0000;

/// Declares the guest's Rust entry point: `$main(hart_id, dtb_address)`,
/// called once on the boot hart with a stack and a zeroed `.bss`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by the common crate's `_start` with the boot protocol's
        /// a0 (hart id) and a1 (DTB address).
        #[unsafe(no_mangle)]
        extern "C" fn mica_guest_main(hart: usize, dtb: usize) -> ! {
            let main: fn(usize, usize) -> ! = $main;
            main(hart, dtb)
        }
    };
}

/// Stops on a panic without printing: a test guest's output is its contract.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
