//! SVM exit decoding: the VMCB's EXITCODE, EXITINFO1 and EXITINFO2 into
//! the generic [`GuestExit`], and where the guest resumes (QEMU has no
//! next-RIP save, so the backend advances RIP itself). Pure and host-tested.

use crate::vm::exit::{GuestExit, PioExit, fault_access, port_mask};

/// Exit codes (AMD APM vol. 2, appendix C).
pub mod code {
    /// A MOV to CR4 (CR4 write intercept).
    pub const WRITE_CR4: u64 = 0x14;
    /// A physical interrupt (INTR intercept).
    pub const INTR: u64 = 0x60;
    /// RDPMC (always intercepted: the guest has no counters).
    pub const RDPMC: u64 = 0x6f;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// IN/OUT (IOIO_PROT with the IOPM bit set).
    pub const IOIO: u64 = 0x7b;
    /// RDMSR/WRMSR (MSR_PROT with the MSRPM bit set; EXITINFO1 1: write).
    pub const MSR: u64 = 0x7c;
    /// Shutdown (a triple fault in the guest).
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// VMRUN refused the guest state.
    pub const INVALID: u64 = u64::MAX;
}

/// IOIO EXITINFO1 bits.
const IO_IN: u64 = 1 << 0;
const IO_STRING: u64 = 1 << 2;
const IO_REP: u64 = 1 << 3;
const IO_SIZE_SHIFT: u64 = 4;
/// NPF EXITINFO1 (a page-fault error code) bits.
const NPF_WRITE: u64 = 1 << 1;
const NPF_FETCH: u64 = 1 << 4;

/// Decodes an exit; `rax` is the guest's RAX (the value an OUT writes).
pub fn decode(exit_code: u64, info1: u64, info2: u64, rax: u64) -> GuestExit {
    match exit_code {
        code::IOIO => decode_io(info1, rax).unwrap_or(GuestExit::Unhandled {
            code: exit_code,
            info: info1,
        }),
        code::HLT => GuestExit::Halt,
        // EXITINFO1 names the register only with decode assists (bit 63),
        // which QEMU lacks: the backend decodes the instruction itself.
        code::WRITE_CR4 => GuestExit::ControlRegisterWrite { gpr: None },
        code::VMMCALL => GuestExit::Hypercall,
        code::CPUID => GuestExit::Cpuid,
        code::RDPMC => GuestExit::PerfCounterRead,
        code::MSR => GuestExit::Msr {
            write: info1 & 1 != 0,
        },
        code::INTR => GuestExit::HostInterrupt,
        code::SHUTDOWN => GuestExit::Shutdown,
        code::NPF => GuestExit::GuestPageFault {
            access: fault_access(info1 & NPF_FETCH != 0, info1 & NPF_WRITE != 0),
            gpa: info2,
        },
        _ => GuestExit::Unhandled {
            code: exit_code,
            info: info1,
        },
    }
}

/// An IN or OUT; string and `rep` forms are not emulated (`None`).
fn decode_io(info1: u64, rax: u64) -> Option<GuestExit> {
    if info1 & (IO_STRING | IO_REP) != 0 {
        return None;
    }
    let size = match (info1 >> IO_SIZE_SHIFT) & 0x7 {
        0b001 => 1u8,
        0b010 => 2,
        0b100 => 4,
        _ => return None,
    };
    let mask = (1u64 << (u32::from(size) * 8)) - 1;
    let write = (info1 & IO_IN == 0).then_some((rax & mask) as u32);
    Some(GuestExit::Pio(PioExit {
        port: (info1 >> 16) as u16,
        size,
        write,
    }))
}

/// Bytes of the instruction an `in`/`out` exit stopped at, from its first
/// bytes: an optional operand-size prefix, then `E4`-`E7` (port in an
/// immediate, 2 bytes) or `EC`-`EF` (port in DX, 1 byte).
pub fn io_instruction_len(bytes: &[u8]) -> Option<u64> {
    let (prefix, opcode) = match bytes {
        [0x66, op, ..] => (1, *op),
        [op, ..] => (0, *op),
        [] => return None,
    };
    match opcode {
        0xe4..=0xe7 => Some(prefix + 2),
        0xec..=0xef => Some(prefix + 1),
        _ => None,
    }
}

/// Bytes of the instruction behind exits that skip it: HLT (1), CPUID and
/// RDMSR/WRMSR (2), VMMCALL (3).
pub fn fixed_instruction_len(exit_code: u64) -> Option<u64> {
    match exit_code {
        code::HLT => Some(1),
        code::CPUID | code::MSR => Some(2),
        code::VMMCALL => Some(3),
        _ => None,
    }
}

/// The RAX a guest sees after `in` of `size` bytes read `value`: AL and AX
/// keep the upper bits, EAX is zero-extended (as every 32-bit write).
pub fn rax_after_in(rax: u64, size: u8, value: u64) -> u64 {
    let mask = port_mask(size);
    if size == 4 {
        value & mask
    } else {
        (rax & !mask) | (value & mask)
    }
}

/// The instruction after an `in`/`out` at `rip`: EXITINFO2 of an IOIO exit
/// holds it (the APM's "next sequential RIP", written without the nRIP
/// feature); an IN/OUT is 1 to 3 bytes (with a size prefix), so anything
/// else is refused.
pub fn io_next_rip(rip: u64, info2: u64) -> Option<u64> {
    let len = info2.checked_sub(rip)?;
    (1..=3).contains(&len).then_some(info2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::GuestAccess;

    #[test]
    fn in_results_land_like_the_cpu_puts_them() {
        assert_eq!(
            rax_after_in(0x1122_3344_5566_7788, 1, 0x60),
            0x1122_3344_5566_7760
        );
        assert_eq!(
            rax_after_in(0x1122_3344_5566_7788, 2, 0xabcd),
            0x1122_3344_5566_abcd
        );
        assert_eq!(
            rax_after_in(0x1122_3344_5566_7788, 4, 0xdead_beef),
            0xdead_beef
        );
    }

    #[test]
    fn the_next_rip_must_be_one_to_three_bytes_on() {
        assert_eq!(io_next_rip(0x10_0000, 0x10_0001), Some(0x10_0001));
        assert_eq!(io_next_rip(0x10_0000, 0x10_0003), Some(0x10_0003));
        assert_eq!(io_next_rip(0x10_0000, 0x10_0000), None);
        assert_eq!(io_next_rip(0x10_0000, 0x0f_ffff), None);
        assert_eq!(io_next_rip(0x10_0000, 0x10_0010), None);
    }

    #[test]
    fn out_to_the_uart_carries_its_byte() {
        // OUT DX, AL to 0x3f8: port in 31:16, SZ8, A32, type OUT.
        let info1 = 0x03f8_0000 | 1 << 4 | 1 << 8;
        let exit = decode(code::IOIO, info1, 0, 0xdead_be68);
        let expected = PioExit {
            port: 0x3f8,
            size: 1,
            write: Some(0x68),
        };
        assert_eq!(exit, GuestExit::Pio(expected));
    }

    #[test]
    fn in_from_the_line_status_register_is_a_read() {
        let info1 = 0x03fd_0000 | 1 << 4 | IO_IN;
        let exit = decode(code::IOIO, info1, 0, 0);
        let GuestExit::Pio(pio) = exit else {
            panic!("{exit:?}")
        };
        assert_eq!((pio.port, pio.size, pio.write), (0x3fd, 1, None));
        let word = decode(code::IOIO, 0x0060_0000 | 1 << 6, 0, 0x1234_5678_9abc);
        assert!(matches!(
            word,
            GuestExit::Pio(PioExit {
                size: 4,
                write: Some(0x5678_9abc),
                ..
            })
        ));
    }

    #[test]
    fn string_io_is_not_emulated() {
        let exit = decode(code::IOIO, 0x03f8_0000 | 1 << 4 | IO_STRING | IO_REP, 0, 0);
        assert!(matches!(
            exit,
            GuestExit::Unhandled {
                code: code::IOIO,
                ..
            }
        ));
    }

    #[test]
    fn nested_page_faults_say_what_and_where() {
        let store = decode(code::NPF, 0x6, 0x4000_0000, 0);
        assert_eq!(
            store,
            GuestExit::GuestPageFault {
                access: GuestAccess::Store,
                gpa: 0x4000_0000
            }
        );
        let fetch = decode(code::NPF, 0x14, 0x5000, 0);
        assert!(matches!(
            fetch,
            GuestExit::GuestPageFault {
                access: GuestAccess::Fetch,
                ..
            }
        ));
        let load = decode(code::NPF, 0x4, 0x5000, 0);
        assert!(matches!(
            load,
            GuestExit::GuestPageFault {
                access: GuestAccess::Load,
                ..
            }
        ));
    }

    #[test]
    fn instruction_lengths() {
        assert_eq!(io_instruction_len(&[0xee]), Some(1));
        assert_eq!(io_instruction_len(&[0xec, 0x90]), Some(1));
        assert_eq!(io_instruction_len(&[0xe6, 0x80]), Some(2));
        assert_eq!(io_instruction_len(&[0x66, 0xef]), Some(2));
        assert_eq!(io_instruction_len(&[0x90]), None);
        assert_eq!(io_instruction_len(&[]), None);
        assert_eq!(fixed_instruction_len(code::VMMCALL), Some(3));
        assert_eq!(fixed_instruction_len(code::HLT), Some(1));
        assert_eq!(fixed_instruction_len(code::NPF), None);
        assert_eq!(fixed_instruction_len(code::MSR), Some(2));
        assert_eq!(decode(code::MSR, 0, 0, 0), GuestExit::Msr { write: false });
        assert_eq!(
            decode(code::WRITE_CR4, 0, 0, 0),
            GuestExit::ControlRegisterWrite { gpr: None }
        );
        assert_eq!(fixed_instruction_len(code::WRITE_CR4), None);
        assert_eq!(decode(code::MSR, 1, 0, 0), GuestExit::Msr { write: true });
        assert_eq!(decode(0x6f, 0, 0, 0), GuestExit::PerfCounterRead);
        assert_eq!(
            fixed_instruction_len(code::RDPMC),
            None,
            "never stepped over"
        );
        assert_eq!(
            decode(code::INVALID, 0, 0, 0),
            GuestExit::Unhandled {
                code: u64::MAX,
                info: 0
            }
        );
    }
}
