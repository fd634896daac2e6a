//! Mica's privileged kernel. Generic modules (frames, boot memory, traps,
//! ticks, logging) build and test on the host; `arch` holds each machine's
//! backend, and `kmain` the bare-metal boot sequence.
//!
//! Layer: kernel (`cargo xtask check-layers`): it owns only what needs
//! privilege and depends only on `ipc` and `mica-boot`, never on a service or
//! user crate; ABI it shares with a service lives in `ipc`.
#![cfg_attr(not(test), no_std)]

pub mod arch;
pub mod bootmem;
pub mod chaos;
pub mod elf;
pub mod frame;
pub mod klog;
pub mod manifest;
pub mod online;
pub mod ram;
pub mod syscall;
pub mod syscall_console;
pub mod syscall_device;
pub mod syscall_entropy;
pub mod syscall_stats;
pub mod syscall_vm;
#[cfg(test)]
mod test_machine;
pub mod ticks;
pub mod translated;
pub mod trap;
pub mod vm;

#[cfg(target_os = "none")]
mod kmain;
#[cfg(target_os = "none")]
mod userland;

/// How the machine should power off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything went as planned: the emulator exits 0.
    Success,
    /// Something failed: the emulator exits non-zero.
    Failure,
}
pub mod obj;
