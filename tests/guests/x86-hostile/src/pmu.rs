//! Phase `pmu` of the x86 hostile guest: the performance-monitoring unit
//! Mica does not virtualise. The host's counters count what the host and
//! the other VMs do, so a guest that read them would learn of its
//! neighbours (a side channel); Mica answers as a CPU without counters:
//!
//! - RDPMC raises #GP(0) in the guest and writes neither EAX nor EDX, at
//!   CPL 0 with CR4.PCE clear and with it set (PCE is a bit the guest
//!   owns: it toggles and reads back), for a general-purpose and a
//!   fixed-function counter;
//! - CPUID leaf 0xA reports architectural performance monitoring
//!   version 0, leaf 1 no PDCM (IA32_PERF_CAPABILITIES) and leaf
//!   0x8000_0001 none of AMD's PerfCtrExtCore, PerfCtrExtNB, PerfTsc or
//!   PerfCtrExtLLC;
//! - RDMSR and WRMSR of the PMU's MSRs (Intel's PMCx, PERFEVTSELx, the
//!   fixed counters and global controls; AMD's PERF_CTL/PERF_CTR, legacy
//!   and extended) raise #GP(0).

use mica_guest_common::x86_println;

use crate::cr4::{read_cr4, write_cr4};
use crate::idt;

const GP: u64 = 13;
const PCE: u64 = 1 << 8;
/// What EAX and EDX hold before an RDPMC: a fault must leave it there.
const UNTOUCHED: u32 = 0x5a5a_5a5a;

/// Counters RDPMC is asked for: general-purpose counter 0, and Intel's
/// fixed-function counter 0 (ECX bit 30).
const COUNTERS: [u32; 2] = [0, 1 << 30];

/// PMU MSRs, each read and then written (with a value that would start
/// counting, where it is a control).
const MSRS: [(&str, u32, u64); 12] = [
    ("IA32_PMC0", 0xc1, 0),
    ("IA32_PERFEVTSEL0", 0x186, 0x43_003c),
    ("IA32_FIXED_CTR0", 0x309, 0),
    ("IA32_PERF_CAPABILITIES", 0x345, 0),
    ("IA32_FIXED_CTR_CTRL", 0x38d, 0x3),
    ("IA32_PERF_GLOBAL_CTRL", 0x38f, 0x1_0000_0001),
    ("IA32_A_PMC0", 0x4c1, 0),
    ("AMD PERF_CTL0", 0xc001_0000, 0x43_0076),
    ("AMD PERF_CTR0", 0xc001_0004, 0),
    ("AMD PERF_CTL0 (core extension)", 0xc001_0200, 0x43_0076),
    ("AMD PERF_CTR0 (core extension)", 0xc001_0201, 0),
    ("AMD PerfCntrGlobalCtl", 0xc000_0301, 0x3f),
];

/// CPUID leaf 1 ECX: PDCM (15).
const LEAF1_ECX_PDCM: u32 = 1 << 15;
/// CPUID leaf 0x8000_0001 ECX: PerfCtrExtCore (23), PerfCtrExtNB (24),
/// PerfTsc (27), PerfCtrExtLLC (28).
const EXT1_ECX_PERFCTR: u32 = 1 << 23 | 1 << 24 | 1 << 27 | 1 << 28;

/// The #GP error code if the last case raised exactly one #GP, else a
/// description of what it raised.
fn one_gp(before: u64) -> Result<(), (u64, u64, u64)> {
    let (count, vector, error) = idt::last();
    if count == before + 1 && vector == GP && error == 0 {
        Ok(())
    } else {
        Err((count - before, vector, error))
    }
}

/// RDPMC of `counter`: `Err` says what happened instead of a #GP(0) that
/// left EAX and EDX alone.
fn rdpmc(counter: u32) -> Result<(), Message> {
    let (before, _, _) = idt::last();
    let (eax, edx): (u32, u32);
    faulting!(
        "rdpmc",
        in("ecx") counter,
        inout("eax") UNTOUCHED => eax,
        inout("edx") UNTOUCHED => edx,
    );
    let fault = one_gp(before);
    if fault.is_err() || eax != UNTOUCHED || edx != UNTOUCHED {
        return Err(Message::Rdpmc {
            counter,
            cr4: read_cr4(),
            fault: fault.err(),
            value: u64::from(edx) << 32 | u64::from(eax),
        });
    }
    Ok(())
}

/// Phase `pmu` (see the module comment); `Err` names the first failure.
fn check() -> Result<usize, Message> {
    let mut cases = 0;
    let start = read_cr4();
    for pce in [false, true] {
        let cr4 = if pce { start | PCE } else { start & !PCE };
        let (before, _, _) = idt::last();
        write_cr4(cr4, usize::from(pce));
        let (after, _, _) = idt::last();
        if read_cr4() != cr4 || after != before {
            return Err(Message::Pce {
                wanted: cr4,
                read: read_cr4(),
            });
        }
        for counter in COUNTERS {
            rdpmc(counter)?;
            cases += 1;
        }
    }
    write_cr4(start, 0);
    let leaf_a = core::arch::x86_64::__cpuid(0xa).eax;
    let pdcm = core::arch::x86_64::__cpuid(1).ecx & LEAF1_ECX_PDCM;
    let ext = core::arch::x86_64::__cpuid(0x8000_0001).ecx & EXT1_ECX_PERFCTR;
    if leaf_a & 0xff != 0 || pdcm != 0 || ext != 0 {
        return Err(Message::Cpuid { leaf_a, pdcm, ext });
    }
    cases += 1;
    for (name, msr, value) in MSRS {
        let (before, _, _) = idt::last();
        faulting!("rdmsr", in("ecx") msr, out("eax") _, out("edx") _);
        if let Err(fault) = one_gp(before) {
            return Err(Message::Msr {
                name,
                write: false,
                fault,
            });
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "WRMSR takes the value's halves in EDX:EAX"
        )]
        let (low, high) = (value as u32, (value >> 32) as u32);
        let (before, _, _) = idt::last();
        faulting!("wrmsr", in("ecx") msr, in("eax") low, in("edx") high);
        if let Err(fault) = one_gp(before) {
            return Err(Message::Msr {
                name,
                write: true,
                fault,
            });
        }
        cases += 2;
    }
    Ok(cases)
}

/// Runs the phase and prints its line.
pub fn phase() {
    match check() {
        Ok(cases) => x86_println!(
            "hostile: pmu ok ({cases} cases: RDPMC #GP(0) with CR4.PCE clear and set, CPUID shows no PMU, {} PMU MSRs #GP(0) on read and write)",
            MSRS.len()
        ),
        Err(message) => x86_println!("hostile: pmu FAILED: {message}"),
    }
}

/// A failure, printed without an allocator.
enum Message {
    Rdpmc {
        counter: u32,
        cr4: u64,
        /// Exceptions, last vector and error code, when not one #GP(0).
        fault: Option<(u64, u64, u64)>,
        value: u64,
    },
    Pce {
        wanted: u64,
        read: u64,
    },
    Cpuid {
        leaf_a: u32,
        pdcm: u32,
        ext: u32,
    },
    Msr {
        name: &'static str,
        write: bool,
        fault: (u64, u64, u64),
    },
}

impl core::fmt::Display for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::Rdpmc {
                counter,
                cr4,
                fault,
                value,
            } => match fault {
                None => write!(
                    f,
                    "rdpmc {counter:#x} (CR4 {cr4:#x}): #GP(0) but EDX:EAX became {value:#x}"
                ),
                Some((count, vector, error)) => write!(
                    f,
                    "rdpmc {counter:#x} (CR4 {cr4:#x}): {count} exceptions (last vector {vector}, error {error:#x}), EDX:EAX {value:#x}; wanted one #GP(0)"
                ),
            },
            Message::Pce { wanted, read } => {
                write!(
                    f,
                    "CR4 written {wanted:#x} reads {read:#x} (PCE is the guest's)"
                )
            }
            Message::Cpuid { leaf_a, pdcm, ext } => write!(
                f,
                "CPUID shows a PMU: leaf 0xa EAX {leaf_a:#x}, leaf 1 PDCM {pdcm:#x}, leaf 0x80000001 ECX perfctr bits {ext:#x}"
            ),
            Message::Msr { name, write, fault } => write!(
                f,
                "{} {name}: {} exceptions (last vector {}, error {:#x}); wanted one #GP(0)",
                if *write { "wrmsr" } else { "rdmsr" },
                fault.0,
                fault.1,
                fault.2
            ),
        }
    }
}
