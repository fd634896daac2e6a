//! VMX exit decoding: the basic exit reason, the exit qualification and the
//! guest-physical address into the generic [`GuestExit`] (Intel SDM vol.
//! 3C, chapter 28 and appendix C). The guest resumes after the instruction
//! at the VM-exit instruction length. Pure and host-tested.

use crate::vm::exit::{GuestExit, PioExit, fault_access};

/// Basic exit reasons (appendix C).
pub mod reason {
    /// An external interrupt (the host's timer).
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    /// The VMX-preemption timer counted down to 0.
    pub const PREEMPTION_TIMER: u32 = 52;
    /// A triple fault in the guest.
    pub const TRIPLE_FAULT: u32 = 2;
    /// CPUID.
    pub const CPUID: u32 = 10;
    /// HLT.
    pub const HLT: u32 = 12;
    /// RDPMC ("RDPMC exiting" is always on: the guest has no counters).
    pub const RDPMC: u32 = 15;
    /// A control-register access (MOV to CR4 that sets a bit the guest/host
    /// mask covers).
    pub const CR_ACCESS: u32 = 28;
    /// RDMSR and WRMSR (an MSR the bitmap intercepts, or outside it).
    pub const RDMSR: u32 = 31;
    pub const WRMSR: u32 = 32;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// IN/OUT (unconditional I/O exiting or the I/O bitmaps).
    pub const IO_INSTRUCTION: u32 = 30;
    /// An EPT violation.
    pub const EPT_VIOLATION: u32 = 48;
}

/// Exit reason bit 31: the VM entry failed (guest state or MSR loading).
pub const ENTRY_FAILED: u32 = 1 << 31;

/// I/O exit qualification bits (table 28-5).
const IO_IN: u64 = 1 << 3;
const IO_STRING: u64 = 1 << 4;
const IO_REP: u64 = 1 << 5;
/// Control-register access qualification (table 28-3): the register in
/// bits 3:0, the access type in 5:4 (0: MOV to CR), the general register
/// in 11:8.
const CR_NUMBER: u64 = 0xf;
const CR_ACCESS_TYPE: u64 = 0x30;
const CR_GPR_SHIFT: u64 = 8;
/// EPT-violation qualification bits (table 28-7).
const EPT_WRITE: u64 = 1 << 1;
const EPT_FETCH: u64 = 1 << 2;

/// Decodes an exit: `exit_reason` as the VMCS field holds it,
/// `qualification`, the faulting guest-physical address (meaningful for
/// EPT violations) and the guest's RAX (the value an OUT writes).
pub fn decode(exit_reason: u32, qualification: u64, gpa: u64, rax: u64) -> GuestExit {
    let unhandled = GuestExit::Unhandled {
        code: u64::from(exit_reason),
        info: qualification,
    };
    if exit_reason & ENTRY_FAILED != 0 {
        return unhandled;
    }
    match exit_reason & 0xffff {
        reason::IO_INSTRUCTION => decode_io(qualification, rax).unwrap_or(unhandled),
        reason::HLT => GuestExit::Halt,
        // Only MOV to CR4 can exit (the CR0 mask is empty, CR3 and CR8
        // accesses are not intercepted).
        reason::CR_ACCESS if qualification & (CR_NUMBER | CR_ACCESS_TYPE) == 4 => {
            GuestExit::ControlRegisterWrite {
                gpr: Some((qualification >> CR_GPR_SHIFT & 0xf) as u8),
            }
        }
        reason::VMCALL => GuestExit::Hypercall,
        reason::CPUID => GuestExit::Cpuid,
        reason::RDPMC => GuestExit::PerfCounterRead,
        reason::RDMSR => GuestExit::Msr { write: false },
        reason::WRMSR => GuestExit::Msr { write: true },
        // The preemption timer ended the run at the host's tick: as an
        // interrupt would (the tick's own interrupt is taken after it).
        reason::EXTERNAL_INTERRUPT | reason::PREEMPTION_TIMER => GuestExit::HostInterrupt,
        reason::TRIPLE_FAULT => GuestExit::Shutdown,
        reason::EPT_VIOLATION => GuestExit::GuestPageFault {
            access: fault_access(
                qualification & EPT_FETCH != 0,
                qualification & EPT_WRITE != 0,
            ),
            gpa,
        },
        _ => unhandled,
    }
}

/// An IN or OUT; string and `rep` forms are not emulated (`None`).
fn decode_io(qualification: u64, rax: u64) -> Option<GuestExit> {
    if qualification & (IO_STRING | IO_REP) != 0 {
        return None;
    }
    let size = match qualification & 0x7 {
        0 => 1u8,
        1 => 2,
        3 => 4,
        _ => return None,
    };
    let mask = (1u64 << (u32::from(size) * 8)) - 1;
    let write = (qualification & IO_IN == 0).then_some((rax & mask) as u32);
    Some(GuestExit::Pio(PioExit {
        port: (qualification >> 16) as u16,
        size,
        write,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::GuestAccess;

    #[test]
    fn an_out_to_com1_is_a_one_byte_write_of_al() {
        // OUT DX, AL to 0x3f8: size 0 (1 byte), direction out, DX encoding.
        let exit = decode(reason::IO_INSTRUCTION, 0x03f8_0000, 0, 0x1234_5668);
        assert_eq!(
            exit,
            GuestExit::Pio(PioExit {
                port: 0x3f8,
                size: 1,
                write: Some(0x68)
            })
        );
    }

    #[test]
    fn an_in_is_a_read_of_its_size() {
        // IN EAX, 0x71 (immediate operand): size 3 (4 bytes), IN, bit 6.
        let exit = decode(reason::IO_INSTRUCTION, 0x0071_0000 | 0x40 | 0x8 | 3, 0, 7);
        assert_eq!(
            exit,
            GuestExit::Pio(PioExit {
                port: 0x71,
                size: 4,
                write: None
            })
        );
        let word = decode(reason::IO_INSTRUCTION, 0x03fd_0000 | 0x8 | 1, 0, 0);
        assert!(matches!(word, GuestExit::Pio(PioExit { size: 2, .. })));
    }

    #[test]
    fn string_and_rep_port_accesses_are_unhandled() {
        for q in [0x03f8_0010, 0x03f8_0030] {
            assert_eq!(
                decode(reason::IO_INSTRUCTION, q, 0, 0),
                GuestExit::Unhandled { code: 30, info: q }
            );
        }
    }

    #[test]
    fn ept_violations_name_the_access() {
        let store = decode(reason::EPT_VIOLATION, 0x182, 0x2800_0000, 0);
        assert_eq!(
            store,
            GuestExit::GuestPageFault {
                access: GuestAccess::Store,
                gpa: 0x2800_0000
            }
        );
        let load = decode(reason::EPT_VIOLATION, 0x181, 0x2800_0000, 0);
        assert!(matches!(
            load,
            GuestExit::GuestPageFault {
                access: GuestAccess::Load,
                ..
            }
        ));
        let fetch = decode(reason::EPT_VIOLATION, 0x184, 0x4000_0000, 0);
        assert!(matches!(
            fetch,
            GuestExit::GuestPageFault {
                access: GuestAccess::Fetch,
                ..
            }
        ));
    }

    #[test]
    fn a_mov_to_cr4_names_its_register_and_other_cr_accesses_are_unhandled() {
        // mov cr4, r9: CR 4, type 0, register 9.
        assert_eq!(
            decode(reason::CR_ACCESS, 0x904, 0, 0),
            GuestExit::ControlRegisterWrite { gpr: Some(9) }
        );
        // mov rax, cr4 (type 1), mov cr0 (CR 0), clts (type 2).
        for q in [0x014, 0x000, 0x020] {
            assert_eq!(
                decode(reason::CR_ACCESS, q, 0, 0),
                GuestExit::Unhandled { code: 28, info: q }
            );
        }
    }

    #[test]
    fn simple_reasons_and_failed_entries() {
        assert_eq!(decode(reason::HLT, 0, 0, 0), GuestExit::Halt);
        assert_eq!(decode(reason::VMCALL, 0, 0, 0), GuestExit::Hypercall);
        assert_eq!(decode(reason::CPUID, 0, 0, 0), GuestExit::Cpuid);
        assert_eq!(decode(31, 0, 0, 0), GuestExit::Msr { write: false });
        assert_eq!(decode(32, 0, 0, 0), GuestExit::Msr { write: true });
        assert_eq!(decode(15, 0, 0, 0), GuestExit::PerfCounterRead);
        assert_eq!(
            decode(reason::EXTERNAL_INTERRUPT, 0, 0, 0),
            GuestExit::HostInterrupt
        );
        assert_eq!(
            decode(reason::PREEMPTION_TIMER, 0, 0, 0),
            GuestExit::HostInterrupt
        );
        assert_eq!(decode(reason::TRIPLE_FAULT, 0, 0, 0), GuestExit::Shutdown);
        // Invalid guest state: entry failure bit with basic reason 33.
        let failed = ENTRY_FAILED | 33;
        assert_eq!(
            decode(failed, 0, 0, 0),
            GuestExit::Unhandled {
                code: u64::from(failed),
                info: 0
            }
        );
    }
}
