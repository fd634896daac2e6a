//! x86 benchmark guest `x86-bench`: counts, with RDTSC (fenced by LFENCE),
//! the cycles the machine takes for a null hypercall (VMMCALL, or VMCALL
//! on Intel, with `rax` = the null number: Mica's exit handler advances
//! RIP and re-enters at once) and for one COM1 LSR read (`in al, 0x3fd`:
//! the port round trip kernel -> ioreq task -> devices task -> back) and
//! for one OUT of `\r` to COM1's THR on its own (posted under Mica: the
//! kernel queues it for the ioreq task and the guest runs on); then it
//! starts its second vCPU and counts IPI round trips between the two (vCPU
//! 0 sends vector [`PARTNER_VECTOR`] with `X86_HYPERCALL_SEND_IPI`, vCPU 1,
//! waiting in `sti; hlt`, takes it and sends [`HOME_VECTOR`] back, which
//! wakes vCPU 0 from its own `hlt`). It prints `bench: <name> <cycles>`
//! for each; then `bench: trace start`, [`TRACE_SPIN`] cycles of spinning
//! (the host switches QEMU's exec trace on meanwhile), [`TRACE_ROUNDS`]
//! LSR reads between two Bochs magic breakpoints (`xchg bx, bx`: Bochs'
//! debugger traces the instructions between them; elsewhere they do
//! nothing) and `bench: trace stop` (the host reads the round trips'
//! stages from the trace); then `bench: done`, and powers its VM off.
//!
//! Under QEMU with `-icount shift=0,sleep=off`, and under Bochs with a
//! fixed `ips` and `clock: sync=none`, the TSC counts retired instructions,
//! so the figures are exact and repeatable. Each figure is the loop's
//! count minus an empty loop's, over the iterations. With several CPUs
//! the TSC is the machine's one instruction counter: the IPI round trip
//! counts both vCPUs and the kernel (and QEMU's other CPUs, idle in `hlt`,
//! add nothing).
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU64, Ordering};

    use mica_guest_common::x86::{self, COM1 as THR, HYPERCALL_NULL, LSR};
    use mica_guest_common::{x86_idt, x86_println};

    /// Iterations per measurement.
    const ROUNDS: u64 = 200;
    /// LSR's "transmitter empty" bits (THRE | TEMT).
    const LSR_EMPTY: u8 = 0x60;
    /// THR writes between two LSR checks (a 16550A's transmit FIFO).
    const FIFO_DEPTH: u64 = 16;

    /// The vector vCPU 0 sends vCPU 1, and the one it answers with.
    pub const PARTNER_VECTOR: u8 = 0x42;
    pub const HOME_VECTOR: u8 = 0x41;
    /// Cycles the guest spins after `trace start` (QEMU runs about this
    /// many instructions in a second or less: time for the host to switch
    /// the trace on), and the LSR reads it then does.
    const TRACE_SPIN: u64 = 100_000_000;
    const TRACE_ROUNDS: usize = 20;
    /// Bytes of vCPU 1's stack.
    const STACK_BYTES: usize = 16 << 10;

    /// IPIs vCPU 0 ([`HOME_VECTOR`]) and vCPU 1 ([`PARTNER_VECTOR`]) took.
    static HOME: AtomicU64 = AtomicU64::new(0);
    static PARTNER: AtomicU64 = AtomicU64::new(0);

    #[repr(C, align(16))]
    struct Stack([u8; STACK_BYTES]);

    /// vCPU 1's stack.
    static mut STACK: Stack = Stack([0; STACK_BYTES]);

    // Each gate counts its IPI and returns: `lock inc` changes only the
    // flags, which IRETQ restores.
    core::arch::global_asm!(
        r#"
        .section .text
        .balign 16
        .globl bench_home_ipi
    bench_home_ipi:
        lock inc qword ptr [rip + {home}]
        iretq
        .balign 16
        .globl bench_partner_ipi
    bench_partner_ipi:
        lock inc qword ptr [rip + {partner}]
        iretq
        "#,
        home = sym HOME,
        partner = sym PARTNER,
    );

    unsafe extern "C" {
        /// The gates' stubs (above): never called from Rust.
        fn bench_home_ipi();
        fn bench_partner_ipi();
    }

    mica_guest_common::entry!(main);

    /// Waits with interrupts on until `counter` is past `seen` (`sti; hlt`:
    /// an IPI that came before the `hlt` ends it at once).
    #[inline(always)]
    fn wait_past(counter: &AtomicU64, seen: u64) {
        while counter.load(Ordering::Acquire) == seen {
            // SAFETY: enables interrupts for the `hlt` only (STI's shadow
            // keeps an IPI from landing before it); the gates the vCPU may
            // take are set and loaded. Not `nomem`: a gate writes the
            // counter read above.
            unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
        }
    }

    /// vCPU 1: answers every IPI vCPU 0 sends with one back.
    extern "C" fn partner(_id: u64) -> ! {
        x86_idt::load();
        let intel = x86::is_intel();
        let mut seen = 0;
        loop {
            wait_past(&PARTNER, seen);
            seen = PARTNER.load(Ordering::Acquire);
            x86::send_ipi(intel, 1 << 0, u64::from(HOME_VECTOR));
        }
    }

    /// Cycles of `ROUNDS` IPI round trips to vCPU 1, once it runs; `None`
    /// when Mica refuses to start it (a VM of one vCPU).
    fn ipi_round_trips(intel: bool) -> Option<u64> {
        x86_idt::set_gate(HOME_VECTOR, bench_home_ipi);
        x86_idt::set_gate(PARTNER_VECTOR, bench_partner_ipi);
        x86_idt::load();
        let top = (&raw mut STACK) as u64 + STACK_BYTES as u64 - 8;
        let entry = partner as extern "C" fn(u64) -> ! as usize as u64;
        if x86::vcpu_start(intel, 1, entry, top, 1) != x86::HC_OK {
            return None;
        }
        let round_trip = || {
            let seen = HOME.load(Ordering::Acquire);
            x86::send_ipi(intel, 1 << 1, u64::from(PARTNER_VECTOR));
            wait_past(&HOME, seen);
        };
        // The first one also waits for vCPU 1 to come up.
        round_trip();
        Some(count(ROUNDS, round_trip))
    }

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

    /// Bochs' magic breakpoint (`xchg bx, bx`, with `magic_break` on):
    /// around the traced reads, where the host's debugger script switches
    /// its instruction trace on and off. Elsewhere an exchange of a
    /// register with itself, that changes nothing.
    fn magic_break() {
        // SAFETY: exchanges bx with itself: no register, flag or memory
        // changes.
        unsafe { core::arch::asm!("xchg bx, bx", options(nomem, nostack, preserves_flags)) };
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
        match ipi_round_trips(intel) {
            Some(ipi) => x86_println!("bench: ipi_roundtrip {}", per_op(ipi, empty)),
            None => x86_println!("bench: ipi_roundtrip refused: vcpu 1 did not start"),
        }
        x86_println!("bench: trace start");
        let start = fenced_tsc();
        while fenced_tsc().wrapping_sub(start) < TRACE_SPIN {
            core::hint::spin_loop();
        }
        magic_break();
        for _ in 0..TRACE_ROUNDS {
            core::hint::black_box(x86::inb(LSR));
        }
        magic_break();
        x86_println!("bench: trace stop");
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
