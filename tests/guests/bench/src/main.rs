//! Benchmark guest `bench`: counts, with the `instret` counter, the
//! instructions the whole machine retires for a null SBI call and for one
//! 16550 LSR read (the MMIO round trip through the hypervisor), prints
//! `bench: <name> <instructions>` for each, then powers its VM off.
//!
//! Under QEMU with `-icount shift=0` the counts are exact and repeatable.
//! Each figure is the loop's count minus an empty loop's, over the
//! iterations, so loop overhead is not charged to the operation.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::println;
    use mica_guest_common::uart::UART_BASE;

    /// Iterations per measurement.
    const ROUNDS: u64 = 200;
    /// The 16550's line status register.
    const LSR: usize = UART_BASE + 5;

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

    /// Instructions retired by `rounds` runs of `op`, loop included.
    #[inline(always)]
    fn count(rounds: u64, mut op: impl FnMut()) -> u64 {
        let start = instret();
        for _ in 0..rounds {
            op();
        }
        instret().wrapping_sub(start)
    }

    fn per_op(loop_count: u64, empty: u64) -> u64 {
        loop_count.saturating_sub(empty) / ROUNDS
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

    fn main(_hart: usize, _dtb: usize) -> ! {
        let empty = count(ROUNDS, || core::hint::black_box(()));
        let sbi = count(ROUNDS, null_sbi_call);
        let mmio = count(ROUNDS, || {
            core::hint::black_box(uart_lsr_read());
        });
        println!("bench: null_sbi_call {}", per_op(sbi, empty));
        println!("bench: mmio_uart_roundtrip {}", per_op(mmio, empty));
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
