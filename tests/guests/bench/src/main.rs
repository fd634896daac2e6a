//! Benchmark guest `bench`: counts, with the `instret` counter, the
//! instructions the whole machine retires for a null SBI call and for one
//! 16550 LSR read (the MMIO round trip through the hypervisor), and with the
//! `time` CSR the guest time they take; with a second hart, an IPI round
//! trip between the two and SBI remote fences; then a traced window of LSR reads
//! and two sustained-output runs of 64 KiB through the 16550, byte by byte
//! and in FIFO bursts. It prints `bench: <name> <value>` lines, then powers
//! its VM off.
//!
//! Under QEMU with `-icount shift=0` one instruction is 1 ns of virtual
//! time and the counts are exact and repeatable; time the machine spends
//! idle (a vCPU blocked while nothing runs) retires no instructions but
//! still advances `time`, so `*_ns` above the instruction count is idle
//! time. Each figure is the loop's count minus an empty loop's, over the
//! iterations, so loop overhead is not charged to the operation.
//!
//! The same ELF boots natively (QEMU `-bios default -kernel`, OpenSBI
//! enters it at 0x8020_0000 as Mica does): the host compares the two runs.
//!
//! Lines, in order (`cargo xtask bench` and the `riscv64_bench` test read
//! them):
//! - `null_sbi_call`, `null_sbi_call_ns`, `mmio_uart_roundtrip`,
//!   `mmio_uart_roundtrip_ns`: per operation, instructions and ns.
//! - `mmio_uart_max_idle_ns`: over [`IDLE_ROUNDS`] LSR reads timed one by
//!   one, the largest (time - instructions) of a single read, 0 if none
//!   was positive.
//! - `harts`: 2 if the hart beside the boot one (1, or 0 if it booted on
//!   another) exists and HSM `hart_start` started it (module `harts`), else
//!   1 and none of the next lines. With 2, per operation on the boot hart
//!   (instructions and `_ns`): `ipi_roundtrip` (an SBI sPI IPI to the
//!   partner, which answers with one back; both wait in `wfi`),
//!   `ipi_self` (an IPI to the boot hart itself, `wfi`, which returns at
//!   once, and the clear: one side's exits without a switch of hart),
//!   `rfence_sfence_vma_other`, `rfence_sfence_vma_both` (SBI RFENCE
//!   `remote_sfence_vma` of the whole address space on the partner, on
//!   both) and `rfence_fence_i_other`; then `partner_stopped` (1 once HSM
//!   reports the partner stopped again). Under `-icount` `instret` is the
//!   machine's one counter: the counts include the partner's instructions
//!   (and under Mica the kernel's switches between the two vCPUs).
//! - `trace start`, then [`TRACE_SLEEP_MS`] of sleep (the host switches
//!   QEMU's exec trace on meanwhile), [`TRACE_ROUNDS`] LSR reads, `trace
//!   stop` (the host switches the trace off).
//! - `exits start`, [`EXIT_ROUNDS`] null SBI calls, `exits end`: the host
//!   times them on its own clock, for the wall time of one exit (under
//!   Mica a guest exit, natively a trap into OpenSBI).
//! - `out start`, 1024 lines of 63 characters and `\n` (`bench-out NNNN
//!   ...`), `out end`, `out_bytes`, `out_instructions`, `out_ns`: each byte
//!   sent as the console (printk) path does, LSR polled before every THR
//!   write.
//! - `fifo start`, the same 1024 lines, `fifo end`, `fifo_bytes`,
//!   `fifo_instructions`, `fifo_ns`: the FIFOs switched on first (FCR), then
//!   sent as Linux's 8250 driver does with a 16550A: wait for LSR.THRE (the
//!   transmit FIFO empty), write up to [`FIFO_DEPTH`] bytes to THR without
//!   reading LSR in between, repeat. Bursts straddle line boundaries.
//! - `done`.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod harts;

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::fdt;
    use mica_guest_common::println;
    use mica_guest_common::time;
    use mica_guest_common::uart::UART_BASE;

    use crate::harts;

    /// Iterations per measurement.
    const ROUNDS: u64 = 200;
    /// LSR reads timed one by one for `mmio_uart_max_idle_ns`.
    const IDLE_ROUNDS: u64 = 1000;
    /// The guest sleeps this long after `trace start` (the host switches
    /// tracing on meanwhile), then does [`TRACE_ROUNDS`] LSR reads.
    const TRACE_SLEEP_MS: u64 = 300;
    /// How long the guest sleeps before it counts anything.
    const SETTLE_MS: u64 = 300;
    const TRACE_ROUNDS: u64 = 20;
    /// Null SBI calls the host times on its own clock between `bench:
    /// exits start` and `bench: exits end`: the wall time of one exit.
    const EXIT_ROUNDS: u64 = 65_536;
    /// The 16550's transmit holding, FIFO control and line status
    /// registers; LSR.THRE (transmit holding register, or with FIFOs the
    /// transmit FIFO, empty) and LSR.TEMT (nothing left to send at all).
    const THR: usize = UART_BASE;
    const FCR: usize = UART_BASE + 2;
    const LSR: usize = UART_BASE + 5;
    const LSR_THRE: u8 = 1 << 5;
    const LSR_TEMT: u8 = 1 << 6;
    /// FCR: FIFOs on, receive and transmit FIFOs cleared.
    const FCR_ENABLE_AND_CLEAR: u8 = 0x07;
    /// The 16550A's transmit FIFO: bytes a driver writes per LSR.THRE
    /// (Linux's `tx_loadsz`).
    const FIFO_DEPTH: usize = 16;
    /// Sustained output: lines of `LINE_LEN` bytes including the `\n`.
    const OUT_LINES: usize = 1024;
    const LINE_LEN: usize = 64;

    mica_guest_common::entry!(main);

    fn instret() -> u64 {
        let count: u64;
        // SAFETY: `rdinstret` only reads the retired-instruction counter.
        unsafe { core::arch::asm!("rdinstret {0}", out(reg) count, options(nomem, nostack)) };
        count
    }

    /// SBI base extension, `get_spec_version`: the cheapest call there is.
    fn null_sbi_call() {
        // SAFETY: an SBI call to the base extension (EID 0x10, FID 0) only
        // returns the version in a0/a1; it touches no guest memory.
        unsafe {
            core::arch::asm!(
                "ecall",
                inlateout("a0") 0usize => _,
                lateout("a1") _,
                in("a6") 0usize,
                in("a7") 0x10usize,
                options(nostack),
            );
        }
    }

    fn uart_lsr_read() -> u8 {
        // SAFETY: LSR is the board's 16550 register, not RAM Rust owns; the
        // read has no side effect on the line status we depend on.
        unsafe { (LSR as *const u8).read_volatile() }
    }

    /// Polls LSR until all of `bits` are set.
    fn uart_wait_lsr(bits: u8) {
        while uart_lsr_read() & bits != bits {
            core::hint::spin_loop();
        }
    }

    fn uart_thr_write(byte: u8) {
        // SAFETY: THR is the board's 16550 register; a byte write transmits.
        unsafe { (THR as *mut u8).write_volatile(byte) };
    }

    /// Sends `byte` as the console (printk) path does: wait for THRE, write
    /// THR.
    fn uart_put(byte: u8) {
        uart_wait_lsr(LSR_THRE);
        uart_thr_write(byte);
    }

    /// Switches the FIFOs on as a driver does, once everything already
    /// written has gone out (clearing the transmit FIFO would drop it).
    fn uart_enable_fifos() {
        uart_wait_lsr(LSR_THRE | LSR_TEMT);
        // SAFETY: FCR is the board's 16550 register; the write only sets
        // the FIFO mode and clears both (now empty) FIFOs.
        unsafe { (FCR as *mut u8).write_volatile(FCR_ENABLE_AND_CLEAR) };
    }

    /// Sends bytes as Linux's 8250 driver does with a 16550A's FIFO: when
    /// the transmit FIFO is known to have room left, write THR at once;
    /// otherwise wait for LSR.THRE (FIFO empty), which makes room for
    /// [`FIFO_DEPTH`] more.
    struct FifoWriter {
        /// Bytes that may still go to THR before LSR must be read again.
        room: usize,
    }

    impl FifoWriter {
        fn put(&mut self, byte: u8) {
            if self.room == 0 {
                uart_wait_lsr(LSR_THRE);
                self.room = FIFO_DEPTH;
            }
            uart_thr_write(byte);
            self.room -= 1;
        }
    }

    /// Instructions per THR write on its own (posted under Mica), over
    /// `ROUNDS` writes of `\r` (no visible output: Mica's console drops
    /// it) in FIFO-sized groups; the LSR wait before each group is not
    /// counted. Needs the FIFOs on.
    fn thr_write_cost() -> u64 {
        let mut total = 0;
        let mut left = ROUNDS;
        while left > 0 {
            let group = left.min(FIFO_DEPTH as u64);
            uart_wait_lsr(LSR_THRE | LSR_TEMT);
            let start = stamp();
            for _ in 0..group {
                uart_thr_write(b'\r');
            }
            total += since(start).0;
            left -= group;
        }
        total
    }

    /// Instructions and timebase ticks, read together.
    #[derive(Clone, Copy)]
    struct Stamp {
        instructions: u64,
        ticks: u64,
    }

    #[inline(always)]
    fn stamp() -> Stamp {
        Stamp {
            instructions: instret(),
            ticks: time::now(),
        }
    }

    /// What passed since `start`: (instructions, timebase ticks).
    #[inline(always)]
    fn since(start: Stamp) -> (u64, u64) {
        let end = stamp();
        (
            end.instructions.wrapping_sub(start.instructions),
            end.ticks.wrapping_sub(start.ticks),
        )
    }

    /// Instructions and ticks of `rounds` runs of `op`, loop included.
    #[inline(always)]
    fn count(rounds: u64, mut op: impl FnMut()) -> (u64, u64) {
        let start = stamp();
        for _ in 0..rounds {
            op();
        }
        since(start)
    }

    fn per_op(loop_count: u64, empty: u64) -> u64 {
        loop_count.saturating_sub(empty) / ROUNDS
    }

    /// Timebase ticks as ns.
    fn ns(ticks: u64, hz: u64) -> u64 {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The largest (ns - instructions) of one LSR read over `rounds` reads.
    fn max_idle_ns(rounds: u64, hz: u64) -> u64 {
        let mut worst = 0;
        for _ in 0..rounds {
            let start = stamp();
            core::hint::black_box(uart_lsr_read());
            let (instructions, ticks) = since(start);
            worst = worst.max(ns(ticks, hz).saturating_sub(instructions));
        }
        worst
    }

    /// SBI TIME `set_timer(deadline)` (in timebase ticks).
    fn sbi_set_timer(deadline: u64) {
        // SAFETY: SBI TIME (EID "TIME", FID 0) only programs the timer; it
        // touches no guest memory.
        unsafe {
            core::arch::asm!(
                "ecall",
                inlateout("a0") deadline => _,
                lateout("a1") _,
                in("a6") 0usize,
                in("a7") 0x5449_4d45usize,
                options(nostack),
            );
        }
    }

    /// Sleeps (WFI, the hart idle) until `ticks` timebase ticks have passed:
    /// a window in which the host can switch tracing on while the guest
    /// executes nothing. Interrupts stay globally off (`sstatus.SIE` is 0):
    /// WFI wakes on the pending timer, no trap is taken.
    fn sleep_ticks(ticks: u64) {
        const SIE_STIE: usize = 1 << 5;
        let deadline = time::now().wrapping_add(ticks);
        // SAFETY: enabling the supervisor timer in `sie` only lets WFI wake
        // on it; with sstatus.SIE clear no interrupt trap is taken.
        unsafe { core::arch::asm!("csrs sie, {0}", in(reg) SIE_STIE, options(nomem, nostack)) };
        while time::now() < deadline {
            sbi_set_timer(deadline);
            // SAFETY: `wfi` only waits for an interrupt to be pending.
            unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
        }
        sbi_set_timer(u64::MAX);
        // SAFETY: as above; the timer is no longer wanted.
        unsafe { core::arch::asm!("csrc sie, {0}", in(reg) SIE_STIE, options(nomem, nostack)) };
    }

    /// Hands `put` the bytes of `OUT_LINES` lines `bench-out NNNN ` +
    /// filler + `\n`, one by one.
    #[inline(always)]
    fn sustained_output(mut put: impl FnMut(u8)) {
        const HEAD: &[u8] = b"bench-out ";
        const FILL: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for line in 0..OUT_LINES {
            let mut at = 0;
            for &b in HEAD {
                put(b);
                at += 1;
            }
            for shift in [1000, 100, 10, 1] {
                // `line / shift % 10` is a single decimal digit.
                put(b'0' + u8::try_from(line / shift % 10).unwrap_or(0));
                at += 1;
            }
            put(b' ');
            at += 1;
            let mut fill = FILL.iter().cycle();
            while at < LINE_LEN - 1 {
                put(fill.next().copied().unwrap_or(b'.'));
                at += 1;
            }
            put(b'\n');
        }
    }

    /// Runs `run` (a sustained output) between `bench: <name> start` and
    /// `bench: <name> end`, then prints its bytes, instructions and ns.
    fn timed_output(name: &str, hz: u64, run: impl FnOnce()) {
        println!("bench: {name} start");
        let start = stamp();
        run();
        let (instructions, ticks) = since(start);
        println!("bench: {name} end");
        println!("bench: {name}_bytes {}", OUT_LINES * LINE_LEN);
        println!("bench: {name}_instructions {instructions}");
        println!("bench: {name}_ns {}", ns(ticks, hz));
    }

    /// Prints `bench: <name> N` and `bench: <name>_ns N`, per operation, of
    /// `ROUNDS` runs that took `measured` (instructions, ticks).
    fn print_per_op(name: &str, measured: (u64, u64), empty: (u64, u64), hz: u64) {
        println!("bench: {name} {}", per_op(measured.0, empty.0));
        let (op_ns, empty_ns) = (ns(measured.1, hz), ns(empty.1, hz));
        println!("bench: {name}_ns {}", per_op(op_ns, empty_ns));
    }

    /// `bench: harts N`, then with a second hart (`N` = 2) the IPI round
    /// trip and the remote fences, timed on the boot hart `hart` while the
    /// partner hart waits for IPIs; the partner is stopped again after.
    fn cross_hart(hart: usize, empty: (u64, u64), hz: u64) {
        let partner = harts::partner_of(hart);
        let two = harts::is_stopped(partner) && harts::start_partner(hart, partner);
        println!("bench: harts {}", if two { 2 } else { 1 });
        if !two {
            return;
        }
        // One round trip untimed, as a warm-up.
        harts::ipi_round_trip(partner);
        let ipi = count(ROUNDS, || harts::ipi_round_trip(partner));
        let ipi_self = count(ROUNDS, || harts::ipi_self(hart));
        let other = 1 << partner;
        let both = other | 1 << hart;
        let sfence_other = count(ROUNDS, || harts::remote_sfence_vma(other));
        let sfence_both = count(ROUNDS, || harts::remote_sfence_vma(both));
        let fence_i_other = count(ROUNDS, || harts::remote_fence_i(other));
        let stopped = harts::stop_partner(partner);
        print_per_op("ipi_roundtrip", ipi, empty, hz);
        print_per_op("ipi_self", ipi_self, empty, hz);
        print_per_op("rfence_sfence_vma_other", sfence_other, empty, hz);
        print_per_op("rfence_sfence_vma_both", sfence_both, empty, hz);
        print_per_op("rfence_fence_i_other", fence_i_other, empty, hz);
        println!("bench: partner_stopped {}", u8::from(stopped));
    }

    fn shutdown() -> ! {
        // SAFETY: SBI SRST (EID "SRST", FID 0) with type shutdown and reason
        // none; it does not return when the VM is powered off.
        unsafe {
            core::arch::asm!(
                "ecall",
                in("a0") 0usize,
                in("a1") 0usize,
                in("a6") 0usize,
                in("a7") 0x5352_5354usize,
                options(nostack),
            );
        }
        loop {
            core::hint::spin_loop();
        }
    }

    fn main(hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let hz = fdt::timebase_hz(unsafe { fdt::boot_dtb(dtb) });
        // The services finish their boot work (other harts' lines, the
        // shell's prompt) before anything is counted: under `-icount` a
        // hart that finds the kernel lock held spins until QEMU gives the
        // holder its turn, and every instruction of every hart counts.
        sleep_ticks(hz * SETTLE_MS / 1000);
        let empty = count(ROUNDS, || core::hint::black_box(()));
        let sbi = count(ROUNDS, null_sbi_call);
        let mmio = count(ROUNDS, || {
            core::hint::black_box(uart_lsr_read());
        });
        let idle = max_idle_ns(IDLE_ROUNDS, hz);
        let (empty_ns, sbi_ns, mmio_ns) = (ns(empty.1, hz), ns(sbi.1, hz), ns(mmio.1, hz));
        println!("bench: timebase_hz {hz}");
        println!("bench: null_sbi_call {}", per_op(sbi.0, empty.0));
        println!("bench: null_sbi_call_ns {}", per_op(sbi_ns, empty_ns));
        println!("bench: mmio_uart_roundtrip {}", per_op(mmio.0, empty.0));
        println!(
            "bench: mmio_uart_roundtrip_ns {}",
            per_op(mmio_ns, empty_ns)
        );
        println!("bench: mmio_uart_max_idle_ns {idle}");
        uart_enable_fifos();
        let posted = thr_write_cost();
        println!("bench: mmio_uart_posted_write {}", per_op(posted, empty.0));
        cross_hart(hart, empty, hz);
        println!("bench: trace start");
        sleep_ticks(hz * TRACE_SLEEP_MS / 1000);
        for _ in 0..TRACE_ROUNDS {
            core::hint::black_box(uart_lsr_read());
        }
        println!("bench: trace stop");
        println!("bench: exits start");
        // Under Mica the line's last byte is a posted write, which goes
        // out with the next access that traps to the ioreq service (or at
        // the next tick): an LSR read sends it now, so that the host's
        // clock starts when the calls do. (The end line's goes out with
        // the next line's first LSR read, at once.)
        uart_wait_lsr(LSR_THRE | LSR_TEMT);
        for _ in 0..EXIT_ROUNDS {
            null_sbi_call();
        }
        println!("bench: exits end");
        timed_output("out", hz, || sustained_output(uart_put));
        timed_output("fifo", hz, || {
            let mut fifo = FifoWriter { room: 0 };
            sustained_output(|byte| fifo.put(byte));
        });
        println!("bench: done");
        shutdown()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-bench is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
