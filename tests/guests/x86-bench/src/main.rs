//! x86 benchmark guest `x86-bench`: counts, with RDTSC (fenced by LFENCE),
//! the cycles the machine takes for a null hypercall (VMMCALL, or VMCALL
//! on Intel, with `rax` = the null number: Mica's exit handler advances
//! RIP and re-enters at once) and for one COM1 LSR read (`in al, 0x3fd`:
//! the port round trip kernel -> ioreq task -> devices task -> back) and
//! for one OUT of `\r` to COM1's THR on its own (posted under Mica: the
//! kernel queues it for the ioreq task and the guest runs on), prints
//! `bench: <name> <cycles>` for each and `bench: done`, then powers its VM
//! off.
//!
//! Under QEMU with `-icount shift=0,sleep=off`, and under Bochs with a
//! fixed `ips` and `clock: sync=none`, the TSC counts retired instructions,
//! so the figures are exact and repeatable. Each figure is the loop's
//! count minus an empty loop's, over the iterations.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::x86::{self, COM1 as THR, HYPERCALL_NULL, LSR};
    use mica_guest_common::x86_println;

    /// Iterations per measurement.
    const ROUNDS: u64 = 200;
    /// LSR's "transmitter empty" bits (THRE | TEMT).
    const LSR_EMPTY: u8 = 0x60;
    /// THR writes between two LSR checks (a 16550A's transmit FIFO).
    const FIFO_DEPTH: u64 = 16;

    mica_guest_common::entry!(main);

    /// The time-stamp counter, with earlier instructions retired before it
    /// is read and later ones not started.
    #[inline(always)]
    fn fenced_tsc() -> u64 {
        let low: u32;
        let high: u32;
        // SAFETY: LFENCE and RDTSC only order execution and read a counter.
        unsafe {
            core::arch::asm!(
                "lfence",
                "rdtsc",
                "lfence",
                out("eax") low,
                out("edx") high,
                options(nomem, nostack),
            );
        }
        (u64::from(high) << 32) | u64::from(low)
    }

    /// Cycles taken by `rounds` runs of `op`, loop included.
    #[inline(always)]
    fn count(rounds: u64, mut op: impl FnMut()) -> u64 {
        let start = fenced_tsc();
        for _ in 0..rounds {
            op();
        }
        fenced_tsc().wrapping_sub(start)
    }

    /// Cycles of `ROUNDS` OUTs of `\r` to THR (no visible output: Mica's
    /// console drops it), in FIFO-sized groups after LSR says the
    /// transmitter is empty; the LSR reads are not counted, the loop is.
    fn thr_writes() -> u64 {
        let mut total = 0;
        let mut left = ROUNDS;
        while left > 0 {
            let group = left.min(FIFO_DEPTH);
            while x86::inb(LSR) & LSR_EMPTY != LSR_EMPTY {
                core::hint::spin_loop();
            }
            total += count(group, || x86::outb(THR, b'\r'));
            left -= group;
        }
        total
    }

    fn per_op(loop_count: u64, empty: u64) -> u64 {
        loop_count.saturating_sub(empty) / ROUNDS
    }

    fn main(_cpu: usize, _info: usize) -> ! {
        let intel = x86::is_intel();
        let empty = count(ROUNDS, || core::hint::black_box(()));
        let null = if intel {
            count(ROUNDS, || x86::hypercall(true, HYPERCALL_NULL))
        } else {
            count(ROUNDS, || x86::hypercall(false, HYPERCALL_NULL))
        };
        let pio = count(ROUNDS, || {
            core::hint::black_box(x86::inb(LSR));
        });
        x86_println!("bench: null_hypercall {}", per_op(null, empty));
        let posted = thr_writes();
        x86_println!("bench: pio_uart_roundtrip {}", per_op(pio, empty));
        x86_println!("bench: pio_uart_posted_write {}", per_op(posted, empty));
        x86_println!("bench: done");
        x86::power_off()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-bench is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
