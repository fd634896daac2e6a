//! The Mica kernel image: all code lives in the `mica_kernel` library; this
//! binary only links it for bare metal (entry `_start` in `arch`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use mica_kernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-kernel runs on bare metal: build it with --target riscv64gc-unknown-none-elf or x86_64-unknown-none"
    );
    std::process::exit(2);
}
