//! Test guest `hostile`: does, phase by phase, what a guest should not,
//! checks from the inside that Mica answered as specified, and prints one
//! line per phase (`hostile: <phase> ok ...` or `hostile: <phase> FAILED:
//! ...`):
//!
//! 1. `mmio`: loads and stores of widths 1, 2, 4 and 8 at every device
//!    window (aligned, unaligned, past the registers, across the window's
//!    end): each is answered, or the guest gets a misaligned or access
//!    fault it can handle; nothing else.
//! 2. `virtio`: its virtio-rng handed a buffer outside RAM goes to
//!    NEEDS_RESET (and works again after a reset).
//! 3. `nowhere`: loads, stores and a fetch at guest-physical addresses
//!    with no RAM or device: an access fault each, at that address.
//! 4. `privileged`: HS-mode CSRs and H instructions, M-mode CSRs and
//!    `mret`, illegal encodings: an illegal-instruction exception each;
//!    `ebreak` a breakpoint; `sret` into its own S- and U-mode code works.
//! 5. `sbi`: every extension and some it lacks, with bad arguments: each
//!    call gets its SBI error code (none stops, powers off or reboots).
//! 6. `timer storm`, `ipi storm`, `wfi storm`: thousands of timers set in
//!    the past, IPIs to itself and `wfi`s: each interrupt arrives once.
//! 7. `spinning`: a loop with no exit at all, for ever.
//!
//! It first sleeps a few seconds (`wfi`) so a VM beside it can measure
//! its progress alone.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod access;
#[cfg(target_os = "none")]
mod privileged;
#[cfg(target_os = "none")]
mod sbi;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod virtio;

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::{println, time};

    use crate::access::{self, NOWHERE, OFFSETS, TAIL_OFFSETS, WIDTHS, WINDOWS};
    use crate::{privileged, sbi, trap, virtio};

    /// Mica's (and QEMU's) timebase.
    const TIMEBASE_HZ: u64 = mica_guest_common::fdt::DEFAULT_TIMEBASE_HZ;
    /// How long it sleeps before the first phase.
    const QUIET_SECONDS: u64 = 4;
    const STORM: usize = 2000;
    const MISALIGNED_LOAD: usize = 4;
    const LOAD_ACCESS_FAULT: usize = 5;
    const MISALIGNED_STORE: usize = 6;
    const STORE_ACCESS_FAULT: usize = 7;
    const INSTRUCTION_ACCESS_FAULT: usize = 1;
    /// `sie` bits: supervisor software and timer interrupts.
    const SIE_SSIE: usize = 1 << 1;
    const SIE_STIE: usize = 1 << 5;
    /// `sstatus.SIE`.
    const SSTATUS_SIE: usize = 1 << 1;

    mica_guest_common::entry!(main);

    fn main(_hart: usize, _dtb: usize) -> ! {
        trap::install();
        println!("hostile: quiet for {QUIET_SECONDS} s");
        sleep(QUIET_SECONDS * TIMEBASE_HZ);
        println!("hostile: start");
        mmio();
        match virtio::run() {
            Ok(seen) => println!("hostile: virtio ok ({seen})"),
            Err(e) => println!("hostile: virtio FAILED: {e}"),
        }
        nowhere();
        privileged::run();
        bad_sbi_calls();
        timer_storm();
        ipi_storm();
        wfi_storm();
        println!("hostile: spinning");
        // SAFETY: a loop of one jump: no memory, no exit, no end.
        unsafe { core::arch::asm!("1: j 1b", options(noreturn, nomem, nostack)) }
    }

    /// Sleeps `ticks` of the timebase in `wfi`, its timer interrupt
    /// pending but not taken (interrupts off).
    fn sleep(ticks: u64) {
        let until = time::now() + ticks;
        // SAFETY: enables only the timer's pending bit to wake `wfi`;
        // sstatus.SIE stays off, so no interrupt is taken.
        unsafe { core::arch::asm!("csrs sie, {0}", in(reg) SIE_STIE) };
        while time::now() < until {
            sbi::set_timer(until);
            // SAFETY: waits for an interrupt; none is taken (SIE off).
            unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
        }
        sbi::set_timer(u64::MAX);
        // SAFETY: as above, undone.
        unsafe { core::arch::asm!("csrc sie, {0}", in(reg) SIE_STIE) };
    }

    /// Counts per exception cause (0..16) over a phase.
    struct Causes([usize; 16]);

    impl Causes {
        /// Records the exception taken since the last look, if any; `Err`
        /// with it when its cause is not one of `allowed`.
        fn after(&mut self, allowed: &[usize]) -> Result<(), (usize, usize, usize)> {
            if let Some((cause, tval, epc)) = trap::take() {
                if !allowed.contains(&cause) || cause >= 16 {
                    return Err((cause, tval, epc));
                }
                self.0[cause] += 1;
            }
            Ok(())
        }
    }

    /// Phase 1: every window, offset and width, loads then stores of 0.
    fn mmio() {
        let allowed = [
            MISALIGNED_LOAD,
            LOAD_ACCESS_FAULT,
            MISALIGNED_STORE,
            STORE_ACCESS_FAULT,
        ];
        let mut causes = Causes([0; 16]);
        let mut accesses = 0usize;
        for w in &WINDOWS {
            let tail = TAIL_OFFSETS.iter().map(|t| w.size - t);
            for offset in OFFSETS.iter().copied().chain(tail) {
                for width in WIDTHS {
                    let addr = w.base + offset;
                    access::load(addr, width);
                    let loaded = causes.after(&allowed);
                    access::store(addr, width, 0);
                    let stored = causes.after(&allowed);
                    accesses += 2;
                    if let Err((cause, tval, epc)) = loaded.and(stored) {
                        // The UART may be in any state: set it back first.
                        access::store(access::UART_LCR, 1, access::LCR_8N1);
                        println!(
                            "\nhostile: mmio FAILED: {} {addr:#x} width {width}: scause {cause}, stval {tval:#x}, sepc {epc:#x}",
                            w.name
                        );
                        return;
                    }
                }
            }
        }
        // Zeroes went to the UART's registers (a word length of 5 bits
        // among them) and a NUL to its THR: 8N1 again, a fresh line.
        access::store(access::UART_LCR, 1, access::LCR_8N1);
        let c = &causes.0;
        println!(
            "\nhostile: mmio ok ({accesses} accesses in {} windows; misaligned {} load {} store, access faults {} load {} store)",
            WINDOWS.len(),
            c[MISALIGNED_LOAD],
            c[MISALIGNED_STORE],
            c[LOAD_ACCESS_FAULT],
            c[STORE_ACCESS_FAULT]
        );
    }

    /// Phase 2: no RAM or device there: an access fault for each access,
    /// at its address, and one for a jump there.
    fn nowhere() {
        let mut faults = 0;
        for addr in NOWHERE {
            for width in WIDTHS {
                access::load(addr, width);
                let load = trap::take();
                access::store(addr, width, 0x5a5a_5a5a_5a5a_5a5a);
                let store = trap::take();
                let ok = |t: Option<(usize, usize, usize)>, want| matches!(t, Some((c, v, _)) if c == want && v == addr);
                if !ok(load, LOAD_ACCESS_FAULT) || !ok(store, STORE_ACCESS_FAULT) {
                    println!(
                        "hostile: nowhere FAILED: {addr:#x} width {width}: load {load:x?}, store {store:x?}"
                    );
                    return;
                }
                faults += 2;
            }
        }
        let target = NOWHERE[4];
        let fetch = jump_to(target);
        if !matches!(fetch, Some((c, v, e)) if c == INSTRUCTION_ACCESS_FAULT && v == target && e == target)
        {
            println!("hostile: nowhere FAILED: jump to {target:#x}: {fetch:x?}");
            return;
        }
        println!(
            "hostile: nowhere ok ({faults} load and store access faults at {} addresses, an instruction access fault)",
            NOWHERE.len()
        );
    }

    /// Jumps to `target` (nothing there), coming back through the trap
    /// vector: the exception it took.
    fn jump_to(target: usize) -> Option<(usize, usize, usize)> {
        // SAFETY: the fetch at `target` faults; the vector resumes at the
        // label after the jump, with every register the asm clobbers named.
        unsafe {
            core::arch::asm!(
                "lla {back}, 2f",
                "mv a0, {back}",
                "call {arm}",
                "jalr zero, 0({t})",
                "2:",
                back = out(reg) _,
                arm = sym crate::trap::resume_at,
                t = in(reg) target,
                out("a0") _, out("ra") _, out("t0") _, out("t1") _, out("t2") _,
                out("a1") _, out("a2") _, out("a3") _, out("a4") _, out("a5") _,
                out("a6") _, out("a7") _, out("t3") _, out("t4") _, out("t5") _, out("t6") _,
            );
        }
        trap::take()
    }

    /// Phase 4: each bad call gets its error.
    fn bad_sbi_calls() {
        for call in sbi::BAD_CALLS {
            let (error, _) = sbi::call(call.eid, call.fid, call.args);
            if error != call.error {
                println!(
                    "hostile: sbi FAILED: {} (eid {:#x} fid {}): error {error}, not {}",
                    call.what, call.eid, call.fid, call.error
                );
                return;
            }
        }
        println!(
            "hostile: sbi ok ({} bad calls answered with their errors)",
            sbi::BAD_CALLS.len()
        );
    }

    /// Enables the interrupts in `sie_bits` and `sstatus.SIE` around `f`.
    fn with_interrupts(sie_bits: usize, f: impl FnOnce()) {
        // SAFETY: the vector counts and silences these interrupts.
        unsafe {
            core::arch::asm!("csrs sie, {0}", in(reg) sie_bits);
            core::arch::asm!("csrs sstatus, {0}", in(reg) SSTATUS_SIE);
        }
        f();
        // SAFETY: as above, undone.
        unsafe {
            core::arch::asm!("csrc sstatus, {0}", in(reg) SSTATUS_SIE);
            core::arch::asm!("csrc sie, {0}", in(reg) sie_bits);
        }
    }

    /// Phase 5a: a timer set in the past, again and again: each fires
    /// once, at once.
    fn timer_storm() {
        let before = trap::timer_irqs();
        with_interrupts(SIE_STIE, || {
            for i in 0..STORM {
                sbi::set_timer(i as u64);
            }
        });
        let taken = trap::timer_irqs() - before;
        if taken == STORM {
            println!("hostile: timer storm ok ({STORM} timers in the past, {taken} interrupts)");
        } else {
            println!("hostile: timer storm FAILED: {STORM} timers in the past, {taken} interrupts");
        }
    }

    /// Phase 5b: IPIs to itself: each is one software interrupt.
    fn ipi_storm() {
        let before = trap::soft_irqs();
        let mut refused = 0;
        with_interrupts(SIE_SSIE, || {
            for _ in 0..STORM {
                refused += usize::from(sbi::ipi_self() != 0);
            }
        });
        let taken = trap::soft_irqs() - before;
        if taken == STORM && refused == 0 {
            println!("hostile: ipi storm ok ({STORM} IPIs to itself, {taken} interrupts)");
        } else {
            println!(
                "hostile: ipi storm FAILED: {STORM} IPIs, {refused} refused, {taken} interrupts"
            );
        }
    }

    /// Phase 5c: `wfi` with nothing to wait for (every one returns), then
    /// `wfi` with a timer 1 ms ahead, 20 times: each waits for it, and the
    /// line says the longest (a wake-up waits for the CPU another vCPU
    /// holds, up to its time slice).
    fn wfi_storm() {
        sbi::set_timer(u64::MAX);
        for _ in 0..STORM {
            // SAFETY: waits for an interrupt; the hypervisor may return at
            // once (nothing is enabled).
            unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
        }
        let mut longest = 0;
        for _ in 0..20 {
            let start = time::now();
            sleep(TIMEBASE_HZ / 1000);
            longest = longest.max(time::now() - start);
        }
        let us = TIMEBASE_HZ / 1_000_000;
        match trap::take() {
            None if longest >= TIMEBASE_HZ / 1000 => println!(
                "hostile: wfi storm ok ({STORM} wfi returned; 1 ms sleeps took at most {} us)",
                longest / us
            ),
            other => println!(
                "hostile: wfi storm FAILED: exception {other:x?}, a 1 ms sleep took {} us",
                longest / us
            ),
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-hostile is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
