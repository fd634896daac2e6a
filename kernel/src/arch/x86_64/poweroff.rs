//! Powering off with a status the emulator turns into its exit code.
//!
//! | status  | QEMU                                        | Bochs                          |
//! |---------|---------------------------------------------|--------------------------------|
//! | Success | ACPI S5 (PM1a_CNT at 0x604): exits **0**    | port 0x8A00 shutdown: exits 0 |
//! | Failure | `isa-debug-exit` at 0xf4, value 1: exits **3** | "Shutdown" to port 0x8900: panic, exits 1 |
//!
//! QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,
//! iosize=0x04`) exits with `(value << 1) | 1`, so it can never give 0; the
//! clean shutdown goes through ACPI instead. Writes to a port nobody decodes
//! are ignored, so each emulator's way is tried in turn: Bochs' port before
//! ACPI, whose soft power-off Bochs treats as a panic (exit 1).

use super::port::{outb, outl, outw};
use crate::ExitStatus;

/// QEMU `isa-debug-exit` port.
const DEBUG_EXIT: u16 = 0xf4;
/// Value written for a failure: QEMU exits `(1 << 1) | 1` = 3.
pub const FAILURE_VALUE: u32 = 1;
/// QEMU's ACPI PM1a control register (PIIX4 and ICH9 as SeaBIOS sets them up).
const ACPI_PM1A_CNT: [u16; 2] = [0x604, 0xB004];
/// SLP_EN with SLP_TYP 0 (QEMU's `\_S5`).
const ACPI_SLEEP_S5: u16 = 0x2000;
/// Bochs' shutdown port and the sequence that ends the simulation.
const BOCHS_SHUTDOWN: u16 = 0x8A00;
/// Bochs' "Shutdown" port (a string written to it panics the simulator).
const BOCHS_PANIC: u16 = 0x8900;

/// Powers off: the emulator exits 0 on success and non-zero on failure.
pub fn shutdown(status: ExitStatus) -> ! {
    match status {
        // SAFETY: Bochs' shutdown port and ACPI PM1a control only power the
        // machine off; nothing else decodes them on the emulated boards.
        // Bochs first: its ACPI soft-off is a panic (exit 1), while QEMU
        // ignores the Bochs port.
        ExitStatus::Success => unsafe {
            outw(BOCHS_SHUTDOWN, 0x8A00);
            outw(BOCHS_SHUTDOWN, 0x8AE0);
            for port in ACPI_PM1A_CNT {
                outw(port, ACPI_SLEEP_S5);
            }
        },
        // SAFETY: the debug-exit device and Bochs' panic port only end the
        // emulation with a failure status.
        ExitStatus::Failure => unsafe {
            outl(DEBUG_EXIT, FAILURE_VALUE);
            for byte in b"Shutdown" {
                outb(BOCHS_PANIC, *byte);
            }
        },
    }
    halt_forever()
}

/// Stops the CPU for good (interrupts off): what is left when no emulator
/// ended the machine.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops this CPU; no memory is touched.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
