//! What a CPU exception is called and the one line the kernel prints before
//! it powers off: `fatal: invalid opcode (#UD) at rip 0x... (error code
//! 0x0, cr2 0x0)`. Pure and host-tested; the IDT stubs feed it.

use core::fmt;

/// The name and mnemonic of exception `vector` (0-31).
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "non-maskable interrupt (NMI)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        9 => "coprocessor segment overrun",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point error (#XM)",
        20 => "virtualization exception (#VE)",
        21 => "control protection (#CP)",
        28 => "hypervisor injection (#HV)",
        29 => "VMM communication (#VC)",
        30 => "security exception (#SX)",
        _ => "reserved exception",
    }
}

/// Whether the CPU pushes an error code for exception `vector`.
pub const fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// A fatal kernel exception, printable as the report line (without the
/// `mica: ` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal {
    /// The exception vector.
    pub vector: u64,
    /// Where it happened.
    pub rip: u64,
    /// The error code (0 when the exception has none).
    pub error_code: u64,
    /// CR2: the faulting address of a page fault.
    pub cr2: u64,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fatal: {} at rip {:#x} (error code {:#x}, cr2 {:#x})",
            exception_name(self.vector),
            self.rip,
            self.error_code,
            self.cr2
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_exception_and_its_state() {
        let line = Fatal {
            vector: 14,
            rip: 0x10_2345,
            error_code: 2,
            cr2: 0,
        };
        assert_eq!(
            line.to_string(),
            "fatal: page fault (#PF) at rip 0x102345 (error code 0x2, cr2 0x0)"
        );
        assert_eq!(exception_name(6), "invalid opcode (#UD)");
        assert_eq!(exception_name(15), "reserved exception");
    }

    #[test]
    fn error_codes_come_with_the_documented_vectors() {
        let with: Vec<u64> = (0..32).filter(|&v| has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }
}
