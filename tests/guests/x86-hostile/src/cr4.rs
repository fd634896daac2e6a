//! Phase `cr4` of the x86 hostile guest: CR4 bits Mica does not
//! virtualise and protection keys.
//!
//! - a MOV to CR4 that sets PKE raises #GP in the guest and CR4 reads
//!   back unchanged, so WRPKRU and RDPKRU raise #UD: the guest can never
//!   write PKRU, a register FXSAVE does not switch, which would otherwise
//!   reach the next VM on the CPU;
//! - so does every other bit the guest must not own (OSXSAVE: XSAVE is
//!   hidden; VMXE, SMXE, LA57, CET, PKS; reserved bits) and clearing PAE
//!   in long mode;
//! - the bits a guest does own (PGE, OSFXSR, OSXMMEXCPT, TSD, DE) can be
//!   set and cleared, each through a different register (RAX, RDX, RSI,
//!   R8, R15), and read back as written;
//! - CPUID leaf 7 shows neither PKU nor OSPKE (nor LA57, CET or PKS).

use mica_guest_common::x86_println;

use crate::idt;

const UD: u64 = 6;
const GP: u64 = 13;

const PAE: u64 = 1 << 5;
const PKE: u64 = 1 << 22;

/// Bits a guest must not set: each write of CR4 with one of them faults.
const FORBIDDEN: [(&str, u64); 10] = [
    ("PKE", PKE),
    ("OSXSAVE", 1 << 18),
    ("VMXE", 1 << 13),
    ("SMXE", 1 << 14),
    ("LA57", 1 << 12),
    ("CET", 1 << 23),
    ("PKS", 1 << 24),
    ("reserved bit 15", 1 << 15),
    ("reserved bit 31", 1 << 31),
    ("reserved bit 63", 1 << 63),
];

/// Bits a guest owns, toggled one register each.
const PERMITTED: [(&str, u64); 5] = [
    ("PGE", 1 << 7),
    ("OSFXSR", 1 << 9),
    ("OSXMMEXCPT", 1 << 10),
    ("TSD", 1 << 2),
    ("DE", 1 << 3),
];

pub(crate) fn read_cr4() -> u64 {
    let cr4: u64;
    // SAFETY: reads CR4 (CPL 0 in this guest); no memory, no side effect.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
    cr4
}

/// Writes `value` to CR4 through register number `via` (0 RAX, 1 RDX,
/// 2 RSI, 3 R8, else R15), resuming after it if it faults.
pub(crate) fn write_cr4(value: u64, via: usize) {
    match via {
        0 => faulting!("mov cr4, rax", in("rax") value),
        1 => faulting!("mov cr4, rdx", in("rdx") value),
        2 => faulting!("mov cr4, rsi", in("rsi") value),
        3 => faulting!("mov cr4, r8", in("r8") value),
        _ => faulting!("mov cr4, r15", in("r15") value),
    }
}

/// The exception the last case raised, if it raised exactly one.
fn one_exception(before: u64) -> Option<u64> {
    let (count, vector, _) = idt::last();
    (count == before + 1).then_some(vector)
}

/// Phase `cr4` (see the module comment); `Err` names the first failure.
fn check() -> Result<usize, alloc_free::Message> {
    let mut cases = 0;
    let start = read_cr4();
    for (i, (name, bit)) in FORBIDDEN.into_iter().enumerate() {
        let (before, _, _) = idt::last();
        write_cr4(start | bit, i);
        let vector = one_exception(before);
        let after = read_cr4();
        if vector != Some(GP) || after != start {
            return Err(alloc_free::Message::Forbidden {
                name,
                vector,
                cr4: after,
                pkru: pkru_if_enabled(after),
            });
        }
        cases += 1;
    }
    for (name, insn) in [("wrpkru", 0), ("rdpkru", 1)] {
        let (before, _, _) = idt::last();
        if insn == 0 {
            faulting!("wrpkru", in("eax") 0x5555_5554u32, in("ecx") 0u32, in("edx") 0u32);
        } else {
            faulting!("rdpkru", in("ecx") 0u32, out("eax") _, out("edx") _);
        }
        let vector = one_exception(before);
        if vector != Some(UD) {
            return Err(alloc_free::Message::Pkru { name, vector });
        }
        cases += 1;
    }
    let (before, _, _) = idt::last();
    write_cr4(start & !PAE, 0);
    let vector = one_exception(before);
    if vector != Some(GP) || read_cr4() != start {
        return Err(alloc_free::Message::Forbidden {
            name: "PAE cleared in long mode",
            vector,
            cr4: read_cr4(),
            pkru: None,
        });
    }
    cases += 1;
    for (i, (name, bit)) in PERMITTED.into_iter().enumerate() {
        let (before, _, _) = idt::last();
        write_cr4(start ^ bit, i);
        let flipped = read_cr4();
        write_cr4(start, (i + 1) % PERMITTED.len());
        let back = read_cr4();
        let (after, _, _) = idt::last();
        if flipped != start ^ bit || back != start || after != before {
            return Err(alloc_free::Message::Permitted {
                name,
                flipped,
                back,
                exceptions: after - before,
            });
        }
        cases += 1;
    }
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    // PKU (3), OSPKE (4), CET_SS (7), LA57 (16), PKS (31).
    let shown = leaf7.ecx & (1 << 3 | 1 << 4 | 1 << 7 | 1 << 16 | 1 << 31);
    if shown != 0 {
        return Err(alloc_free::Message::Cpuid(shown));
    }
    Ok(cases + 1)
}

/// PKRU as RDPKRU reads it, when CR4 (as read back) has PKE set.
fn pkru_if_enabled(cr4: u64) -> Option<u32> {
    if cr4 & PKE == 0 {
        return None;
    }
    let pkru: u32;
    // SAFETY: RDPKRU with ECX = 0 and CR4.PKE set: reads PKRU into EAX
    // (EDX zeroed); no memory.
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0u32, out("eax") pkru, out("edx") _, options(nomem, nostack));
    }
    Some(pkru)
}

/// Runs the phase and prints its line.
pub fn phase() {
    let start = read_cr4();
    match check() {
        Ok(cases) => x86_println!(
            "hostile: cr4 ok ({cases} cases: {} host-owned bits and clearing PAE #GP, WRPKRU/RDPKRU #UD, {} owned bits toggled, PKU hidden)",
            FORBIDDEN.len(),
            PERMITTED.len()
        ),
        Err(message) => x86_println!("hostile: cr4 FAILED: {message} (CR4 was {start:#x})"),
    }
}

/// The failure messages, without an allocator.
mod alloc_free {
    use core::fmt;

    pub enum Message {
        Cpuid(u32),
        Forbidden {
            name: &'static str,
            vector: Option<u64>,
            cr4: u64,
            pkru: Option<u32>,
        },
        Pkru {
            name: &'static str,
            vector: Option<u64>,
        },
        Permitted {
            name: &'static str,
            flipped: u64,
            back: u64,
            exceptions: u64,
        },
    }

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Message::Cpuid(bits) => {
                    write!(f, "CPUID 7.0 ECX shows {bits:#x} (PKU/OSPKE/CET/LA57/PKS)")
                }
                Message::Forbidden {
                    name,
                    vector,
                    cr4,
                    pkru,
                } => write!(
                    f,
                    "setting {name}: exception {vector:?} (wanted #GP), CR4 now {cr4:#x}, PKRU {pkru:x?}"
                ),
                Message::Pkru { name, vector } => {
                    write!(f, "{name}: exception {vector:?} (wanted #UD)")
                }
                Message::Permitted {
                    name,
                    flipped,
                    back,
                    exceptions,
                } => write!(
                    f,
                    "toggling {name}: read {flipped:#x} then {back:#x}, {exceptions} exceptions"
                ),
            }
        }
    }
}
