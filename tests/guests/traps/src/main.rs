//! Test guest `traps`: what a guest must get from its hypervisor to run an
//! operating system, checked from the inside.
//!
//! 1. Its own trap vector receives the exceptions it can handle: an
//!    illegal instruction (`c.unimp`) and a breakpoint (`ebreak`) arrive
//!    with their cause and trap value, and it carries on past them.
//! 2. An instruction the hypervisor does not emulate for it (an H-extension
//!    fence, a virtual-instruction exit) is injected as an illegal
//!    instruction, with the instruction bits as trap value: the VM is not
//!    stopped.
//! 3. Its FP state is its own: it fills f0-f31 and `fcsr` with a pattern
//!    drawn from its name, then for about ten seconds spins (so the host
//!    preempts it and other VMs run, other `traps` VMs writing their own
//!    patterns) and checks that every register still holds its pattern.
//!
//! Each check prints one line (`traps: ... ok` or `traps: ... FAILED: ...`),
//! then `traps: done` and a tick line every second.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicUsize, Ordering};

    use mica_guest_common::fdt;
    use mica_guest_common::{println, time};

    /// `sstatus.FS` = Initial: FP instructions allowed.
    const SSTATUS_FS_INITIAL: usize = 1 << 13;
    const ILLEGAL_INSTRUCTION: usize = 2;
    const BREAKPOINT: usize = 3;
    /// `hfence.gvma zero, zero`: an H instruction, a virtual-instruction
    /// exception in VS-mode.
    const HFENCE_GVMA: u32 = 0x6200_0073;
    /// How many FP checks, about 100 ms apart.
    const FP_CHECKS: u32 = 100;

    /// What the trap handler saw last: cause, trap value, pc (0 = none).
    static CAUSE: AtomicUsize = AtomicUsize::new(usize::MAX);
    static TVAL: AtomicUsize = AtomicUsize::new(0);
    static EPC: AtomicUsize = AtomicUsize::new(0);

    mica_guest_common::entry!(main);

    // The trap vector: `traps_trap` with the caller-saved registers saved.
    mica_guest_common::trap_vector!(traps_trap);

    /// Records the exception and resumes after the instruction (2 or 4
    /// bytes, from its low bits); an interrupt or a second exception
    /// before the main code took the first parks the hart.
    #[unsafe(no_mangle)]
    extern "C" fn traps_trap(cause: usize, tval: usize, epc: usize) -> usize {
        if cause >> 63 != 0 || CAUSE.load(Ordering::Relaxed) != usize::MAX {
            loop {
                core::hint::spin_loop();
            }
        }
        CAUSE.store(cause, Ordering::Relaxed);
        TVAL.store(tval, Ordering::Relaxed);
        EPC.store(epc, Ordering::Relaxed);
        // SAFETY: `epc` is the pc of the trapping instruction in this
        // image's text, readable guest RAM.
        let low = unsafe { (epc as *const u16).read_volatile() };
        epc + if low & 0b11 == 0b11 { 4 } else { 2 }
    }

    /// The exception the handler took since the last call, if any.
    fn take_trap() -> Option<(usize, usize, usize)> {
        let cause = CAUSE.swap(usize::MAX, Ordering::Relaxed);
        (cause != usize::MAX).then(|| {
            (
                cause,
                TVAL.load(Ordering::Relaxed),
                EPC.load(Ordering::Relaxed),
            )
        })
    }

    /// Runs `f`, which executes one trapping instruction at the returned
    /// label, and checks the handler saw `cause` there with `tval` (when
    /// given).
    fn expect_trap(what: &str, cause: usize, tval: Option<usize>, f: fn() -> usize) {
        let at = f();
        match take_trap() {
            Some((c, t, epc)) if c == cause && epc == at && tval.is_none_or(|v| v == t) => {
                println!("traps: {what} ok (scause {c}, stval {t:#x})");
            }
            Some((c, t, epc)) => println!(
                "traps: {what} FAILED: scause {c}, stval {t:#x} at {epc:#x} (wanted scause {cause} at {at:#x})"
            ),
            None => println!("traps: {what} FAILED: no trap"),
        }
    }

    fn illegal() -> usize {
        let at: usize;
        // SAFETY: `c.unimp` traps to this guest's own vector, which
        // resumes after it; the label's address is returned.
        unsafe {
            core::arch::asm!("lla {0}, 1f", "1: .2byte 0", out(reg) at, options(nostack));
        }
        at
    }

    fn breakpoint() -> usize {
        let at: usize;
        // SAFETY: as in `illegal`; `ebreak` spelled out so it stays 4 bytes.
        unsafe {
            core::arch::asm!("lla {0}, 1f", "1: .4byte 0x00100073", out(reg) at, options(nostack));
        }
        at
    }

    fn h_instruction() -> usize {
        let at: usize;
        // SAFETY: as in `illegal`: in VS-mode the hypervisor fence is a
        // virtual-instruction exit, injected back as an illegal instruction.
        unsafe {
            core::arch::asm!("lla {0}, 1f", "1: .4byte 0x62000073", out(reg) at, options(nostack));
        }
        at
    }

    /// What FP register `i` holds for `seed`.
    fn pattern(seed: u64, i: u32) -> u64 {
        seed.rotate_left(i) ^ u64::from(i) << 56
    }

    /// f0..f31 and `fcsr`'s rounding mode set from `seed`.
    fn fill_fp(seed: u64) {
        let mut values = [0u64; 32];
        for (i, v) in (0u32..).zip(values.iter_mut()) {
            *v = pattern(seed, i);
        }
        let frm = (seed % 5) as usize;
        // SAFETY: loads 32 doublewords from a local array into the FP
        // registers (FS is on); no Rust code here keeps values in them.
        unsafe {
            core::arch::asm!(
                ".option push",
                ".option arch, +d",
                mica_guest_common::each_fp_register!("fld"),
                "fsrm {frm}",
                ".option pop",
                p = in(reg) values.as_ptr(),
                frm = in(reg) frm,
                options(nostack, readonly),
            );
        }
    }

    /// The index of the first FP register (32 = the rounding mode) that
    /// does not hold `seed`'s pattern.
    fn check_fp(seed: u64) -> Option<usize> {
        let mut values = [0u64; 32];
        let frm: usize;
        // SAFETY: stores the 32 FP registers into a local array (FS is on).
        unsafe {
            core::arch::asm!(
                ".option push",
                ".option arch, +d",
                mica_guest_common::each_fp_register!("fsd"),
                "frrm {frm}",
                ".option pop",
                p = in(reg) values.as_mut_ptr(),
                frm = out(reg) frm,
                options(nostack),
            );
        }
        let wrong = values
            .iter()
            .zip(0u32..)
            .position(|(&v, i)| v != pattern(seed, i));
        wrong.or_else(|| (frm != (seed % 5) as usize).then_some(32))
    }

    /// A seed per VM name (FNV-1a), so VMs side by side use different
    /// patterns.
    fn seed_of(name: &str) -> u64 {
        name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn main(_hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let dtb = unsafe { fdt::boot_dtb(dtb) };
        let name = fdt::vm_name_in(dtb).unwrap_or("unnamed");
        let timebase = fdt::timebase_hz(dtb);
        // SAFETY: this guest's own trap vector (direct mode, 4-aligned)
        // and its FP unit; nothing else runs.
        unsafe {
            core::arch::asm!("csrw stvec, {0}", in(reg) mica_guest_trap_vector as *const () as usize);
            core::arch::asm!("csrs sstatus, {0}", in(reg) SSTATUS_FS_INITIAL);
        }
        expect_trap("illegal instruction", ILLEGAL_INSTRUCTION, None, illegal);
        expect_trap("breakpoint", BREAKPOINT, None, breakpoint);
        expect_trap(
            "virtual instruction injected",
            ILLEGAL_INSTRUCTION,
            Some(HFENCE_GVMA as usize),
            h_instruction,
        );
        let seed = seed_of(name);
        fill_fp(seed);
        let mut failed = None;
        for _ in 0..FP_CHECKS {
            time::wait_ticks(timebase / 10);
            if let Some(reg) = check_fp(seed) {
                failed = Some(reg);
                break;
            }
        }
        match failed {
            None => println!("traps: fp registers kept over {FP_CHECKS} checks ok"),
            Some(32) => println!("traps: fp FAILED: the rounding mode changed"),
            Some(reg) => println!("traps: fp FAILED: f{reg} changed"),
        }
        println!("traps: done");
        let mut tick: u64 = 0;
        loop {
            time::wait_ticks(timebase);
            tick += 1;
            println!("{name}: tick {tick}");
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-traps is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
