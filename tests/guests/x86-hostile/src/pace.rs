//! The pace `x86-steady` ticks at, which `x86-hostile` waits out before
//! its first phase: TSC cycles per tick, chosen by the CPU's vendor as a
//! stand-in for the emulator (QEMU's SVM counts the host's cycles, Bochs'
//! VMX one per instruction, about twenty times fewer per second here).

use mica_guest_common::x86;

/// TSC cycles between two of `x86-steady`'s ticks.
pub fn tick_cycles() -> u64 {
    if x86::is_intel() {
        20_000_000
    } else {
        200_000_000
    }
}
