//! x86 test guest `x86-hostile` (SVM and VMX alike): does, phase by
//! phase, what a guest should not, checks from the inside that Mica
//! answered as specified, and prints one line per phase (`hostile:
//! <phase> ok ...` or `hostile: <phase> FAILED: ...`):
//!
//! 1. `ports`: IN and OUT of widths 1, 2 and 4 at COM1's registers and
//!    the ports around them, ports with no device, the last ports (a
//!    dword at 0xffff), and the host emulators' own exit and shutdown
//!    ports (QEMU's isa-debug-exit at 0xf4, Bochs' 0x8900 "Shutdown"):
//!    each is answered (all-ones for no device) and none reaches the host.
//! 2. `privileged`: UD2, INT3, MSRs the policy denies (read and write),
//!    a nonexistent MSR and the other vendor's hypercall instruction: the
//!    exception each raises reaches the guest's own IDT.
//! 3. `cpuid`: leaves in and out of range answer, none shows VMX or SVM.
//! 4. `cr4`: CPUID hides protection keys; setting CR4.PKE or another bit
//!    Mica does not virtualise raises #GP (so WRPKRU/RDPKRU raise #UD);
//!    the bits a guest owns toggle and read back (see `cr4`).
//! 5. `pmu`: RDPMC raises #GP(0) (CR4.PCE clear or set), CPUID shows no
//!    performance-monitoring unit, and RDMSR/WRMSR of its MSRs raise
//!    #GP(0): the host's counters never reach the guest (see `pmu`).
//! 6. `hypercall`: the null hypercall with garbage in every other
//!    register returns with them unchanged.
//! 7. `hlt storm`: HLT with interrupts off, again and again: each returns.
//! 8. `spinning`: a loop with interrupts off and no exit, for ever.
//!
//! It first waits a few seconds in HLT so a VM beside it can measure its
//! progress alone. (A store outside RAM stops an x86 VM: `x86-misbehave`
//! does that; an unknown hypercall number powers it off: `x86-poweroff`.)
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[macro_use]
mod idt;
#[cfg(target_os = "none")]
mod cr4;
#[cfg(target_os = "none")]
mod pace;
#[cfg(target_os = "none")]
mod pmu;

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::x86::{self, rdtsc};
    use mica_guest_common::x86_println;

    use crate::idt;

    /// The quiet wait before the first phase, in `x86-steady`'s ticks.
    const QUIET_TICKS: u64 = 4;
    const HLT_STORM: u32 = 20;
    const UD: u64 = 6;
    const BP: u64 = 3;
    const GP: u64 = 13;

    /// Ports: COM1 and its edges, the PIC, PIT, keyboard controller,
    /// CMOS, POST, PCI config, COM2, the debug consoles, the emulators'
    /// exit ports, the last ports.
    const PORTS: [u16; 28] = [
        0x0, 0x20, 0x21, 0x40, 0x43, 0x60, 0x64, 0x70, 0x71, 0x80, 0xcf8, 0xcfc, 0xe9, 0xf4, 0x2f8,
        0x3f7, 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x400, 0x402, 0xfffc,
        0xffff,
    ];
    /// COM1's line control register and 8N1.
    const COM1_LCR: u16 = 0x3fb;
    const LCR_8N1: u8 = 3;
    /// QEMU's isa-debug-exit (the host QEMU exits if a write reaches it)
    /// and Bochs' shutdown port (the host Bochs stops on "Shutdown").
    const QEMU_EXIT: u16 = 0xf4;
    const BOCHS_SHUTDOWN: u16 = 0x8900;
    /// A port no device claims (COM2 is not on Mica's board).
    const NO_DEVICE: u16 = 0x2f8;

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        idt::install();
        let quiet = QUIET_TICKS * crate::pace::tick_cycles();
        x86_println!("hostile: quiet for {quiet} cycles");
        let start = rdtsc();
        while rdtsc().wrapping_sub(start) < quiet {
            hlt();
        }
        x86_println!("hostile: start");
        ports();
        privileged();
        cpuid();
        crate::cr4::phase();
        crate::pmu::phase();
        hypercall();
        hlt_storm();
        x86_println!("hostile: spinning");
        // SAFETY: a loop of one jump with interrupts off: no memory, no
        // exit, no end.
        unsafe { core::arch::asm!("cli", "2: jmp 2b", options(noreturn, nomem, nostack)) }
    }

    fn hlt() {
        // SAFETY: HLT with interrupts off: Mica resumes the guest after it.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
    }

    fn inw(port: u16) -> u16 {
        let value: u16;
        // SAFETY: a port read; in a Mica guest it exits to the hypervisor.
        unsafe {
            core::arch::asm!("in ax, dx", in("dx") port, out("ax") value, options(nomem, nostack))
        };
        value
    }

    fn ind(port: u16) -> u32 {
        let value: u32;
        // SAFETY: as `inw`.
        unsafe {
            core::arch::asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack))
        };
        value
    }

    fn outw(port: u16, value: u16) {
        // SAFETY: as `inw`: the hypervisor takes it.
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack))
        };
    }

    fn outd(port: u16, value: u32) {
        // SAFETY: as `inw`: the hypervisor takes it.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack))
        };
    }

    /// Phase 1: every port in the list at every width, reads then zeroes
    /// written; then the emulators' exit ports with the values that would
    /// end them. No exception, and a port without a device reads all-ones.
    fn ports() {
        let (before, _, _) = idt::last();
        let mut accesses = 0;
        for port in PORTS {
            x86::inb(port);
            x86::outb(port, 0);
            inw(port);
            outw(port, 0);
            ind(port);
            outd(port, 0);
            accesses += 6;
        }
        x86::outb(QEMU_EXIT, 0x55);
        outd(QEMU_EXIT, 1);
        for &b in b"Shutdown" {
            x86::outb(BOCHS_SHUTDOWN, b);
        }
        accesses += 10;
        let unclaimed = (x86::inb(NO_DEVICE), inw(NO_DEVICE), ind(NO_DEVICE));
        // A word and a dword that run past port 0xffff.
        let past_the_end = (inw(0xffff), ind(0xfffd));
        accesses += 5;
        // Zeroes went to COM1's registers (a 5-bit word length among
        // them) and a NUL to its THR: 8N1 again, then a fresh line.
        x86::outb(COM1_LCR, LCR_8N1);
        let (after, vector, _) = idt::last();
        if after != before {
            x86_println!(
                "\nhostile: ports FAILED: {} exceptions, the last vector {vector}",
                after - before
            );
        } else if unclaimed != (0xff, 0xffff, 0xffff_ffff) {
            x86_println!("\nhostile: ports FAILED: port {NO_DEVICE:#x} reads {unclaimed:x?}");
        } else if past_the_end != (0xffff, 0xffff_ffff) {
            x86_println!("\nhostile: ports FAILED: past port 0xffff reads {past_the_end:x?}");
        } else {
            x86_println!(
                "\nhostile: ports ok ({accesses} accesses at {} ports; no device and past port 0xffff read all-ones; the host's exit ports untouched)",
                PORTS.len() + 2
            );
        }
    }

    /// The exception the last case raised, if it raised exactly one.
    fn one_exception(before: u64) -> Option<(u64, u64)> {
        let (count, vector, error) = idt::last();
        (count == before + 1).then_some((vector, error))
    }

    /// A case: its name, the vector it must raise, and a function running
    /// it (given whether the CPU is Intel's).
    type Case = (&'static str, u64, fn(bool));

    /// Phase 2: each case must raise its exception in the guest.
    fn privileged() {
        let intel = x86::is_intel();
        let cases: [Case; 8] = [
            ("ud2", UD, |_| faulting!("ud2")),
            ("int3", BP, |_| faulting!("int3")),
            (
                "rdmsr VM_HSAVE_PA",
                GP,
                |_| faulting!("rdmsr", in("ecx") 0xc001_0117u32, out("eax") _, out("edx") _),
            ),
            (
                "rdmsr 0xdeadbeef",
                GP,
                |_| faulting!("rdmsr", in("ecx") 0xdead_beefu32, out("eax") _, out("edx") _),
            ),
            (
                "wrmsr EFER=0",
                GP,
                |_| faulting!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") 0u32, in("edx") 0u32),
            ),
            (
                "wrmsr VM_HSAVE_PA",
                GP,
                |_| faulting!("wrmsr", in("ecx") 0xc001_0117u32, in("eax") 0x1000u32, in("edx") 0u32),
            ),
            (
                "wrmsr IA32_FEATURE_CONTROL",
                GP,
                |_| faulting!("wrmsr", in("ecx") 0x3au32, in("eax") 5u32, in("edx") 0u32),
            ),
            ("the other vendor's hypercall", UD, |intel| {
                if intel {
                    faulting!("vmmcall", inout("rax") 0u64 => _)
                } else {
                    faulting!("vmcall", inout("rax") 0u64 => _)
                }
            }),
        ];
        for (name, want, case) in cases {
            let (before, _, _) = idt::last();
            case(intel);
            match one_exception(before) {
                Some((vector, _)) if vector == want => {}
                other => {
                    x86_println!(
                        "hostile: privileged FAILED: {name}: {other:x?}, wanted vector {want}"
                    );
                    return;
                }
            }
        }
        x86_println!(
            "hostile: privileged ok ({} instructions raised their exception in the guest)",
            cases.len()
        );
    }

    /// Phase 3: CPUID leaves in and out of range; VMX (leaf 1 ECX bit 5)
    /// and SVM (leaf 0x8000_0001 ECX bit 2) are never shown.
    fn cpuid() {
        let (before, _, _) = idt::last();
        let leaves = [
            0,
            1,
            7,
            0xb,
            0xd,
            0x4000_0000,
            0x8000_0000,
            0x8000_0001,
            0x8000_000a,
            0xdead_beef,
            0xffff_ffff,
        ];
        for leaf in leaves {
            core::arch::x86_64::__cpuid_count(leaf, 99);
        }
        let vmx = core::arch::x86_64::__cpuid(1).ecx & (1 << 5) != 0;
        let svm = core::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 2) != 0;
        let (after, _, _) = idt::last();
        if vmx || svm || after != before {
            x86_println!(
                "hostile: cpuid FAILED: vmx {vmx}, svm {svm}, {} exceptions",
                after - before
            );
        } else {
            x86_println!(
                "hostile: cpuid ok ({} leaves answered, neither VMX nor SVM shown)",
                leaves.len()
            );
        }
    }

    /// Phase 4: the null hypercall with garbage in the other registers.
    fn hypercall() {
        let intel = x86::is_intel();
        let garbage: [u64; 8] = core::array::from_fn(|i| 0xbad0_0000_0000_0000 | i as u64);
        let mut kept = [0u64; 8];
        /// The null hypercall through `$insn` with `garbage` in rcx, rdx,
        /// rsi, rdi and r8-r11, which come back in `kept`.
        macro_rules! garbage_hypercall {
            ($insn:literal) => {
                core::arch::asm!(
                    $insn,
                    inout("rax") x86::HYPERCALL_NULL => _,
                    inout("rcx") garbage[0] => kept[0], inout("rdx") garbage[1] => kept[1],
                    inout("rsi") garbage[2] => kept[2], inout("rdi") garbage[3] => kept[3],
                    inout("r8") garbage[4] => kept[4], inout("r9") garbage[5] => kept[5],
                    inout("r10") garbage[6] => kept[6], inout("r11") garbage[7] => kept[7],
                    options(nomem, nostack),
                )
            };
        }
        // SAFETY: VMMCALL/VMCALL with the null number exits to Mica, which
        // returns at once; the registers written are named.
        unsafe {
            if intel {
                garbage_hypercall!("vmcall");
            } else {
                garbage_hypercall!("vmmcall");
            }
        }
        if kept == garbage {
            x86_println!("hostile: hypercall ok (the null hypercall kept 8 registers of garbage)");
        } else {
            x86_println!("hostile: hypercall FAILED: {garbage:x?} came back as {kept:x?}");
        }
    }

    /// Phase 5: HLT with interrupts off, many times: each returns.
    fn hlt_storm() {
        let start = rdtsc();
        for _ in 0..HLT_STORM {
            hlt();
        }
        let cycles = rdtsc().wrapping_sub(start);
        x86_println!(
            "hostile: hlt storm ok ({HLT_STORM} hlt returned, {} cycles each)",
            cycles / u64::from(HLT_STORM)
        );
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-hostile is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
