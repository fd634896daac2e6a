//! No guest I/O round trip waits for a tick: the `bench` scenario under
//! `-icount shift=0` (one instruction is 1 ns of guest time; time the
//! machine spends idle advances the clock without retiring instructions),
//! where the bench guest times 1000 16550 LSR reads one by one and reports
//! the largest (time - instructions) of one, then writes 64 KiB through the
//! UART byte by byte (about 130,000 round trips) and again in FIFO bursts
//! (16 THR writes per LSR read) and reports each run's instructions and
//! time. A round trip that waited for the scheduler's tick would show 10 ms
//! (10,000,000 ns) of idle time. The same holds for an IPI round trip
//! between the VM's two vCPUs (each waiting in `wfi` for the other's IPI),
//! and the second vCPU stops again with HSM. Beside two VMs that spin on
//! the same host hart (scenario `bench-busy`), a round trip costs what it
//! costs alone: the vCPU whose access completes runs next, not after the
//! neighbours' time slices. Run by `cargo xtask test`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;
use std::time::Duration;

use mica_tests::Session;
use mica_tests::riscv64::artifact;

/// Mica's boot and the guest's first figures.
const FIGURES: Duration = Duration::from_secs(120);
/// One sustained output (about 15 s on an idle machine).
const OUTPUT: Duration = Duration::from_secs(600);
/// Idle time allowed: far below one tick (10 ms), above `rdtime`'s
/// resolution (100 ns at QEMU virt's 10 MHz timebase).
const MAX_IDLE_NS: u64 = 50_000;

/// The number in the next `bench: <key> N` line.
fn figure(s: &mut Session, key: &str, wait: Duration) -> u64 {
    mica_tests::bench::figure(s, key, wait).unwrap()
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn no_uart_round_trip_waits_for_a_tick() {
    let kernel = artifact("MICA_KERNEL_RISCV64").unwrap();
    let image = artifact("MICA_BOOT_IMAGE_RISCV64_BENCH").unwrap();
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "256M", "-icount", "shift=0", "-monitor", "none"])
        .args(["-serial", "stdio", "-kernel", &kernel, "-initrd", &image]);
    let mut s = Session::spawn(qemu).unwrap();

    let instructions = figure(&mut s, "mmio_uart_roundtrip", FIGURES);
    let ns = figure(&mut s, "mmio_uart_roundtrip_ns", FIGURES);
    assert!(
        ns <= instructions + instructions / 20,
        "a round trip takes {ns} ns of guest time but {instructions} instructions: \
         the vCPU spent time idle"
    );
    let worst = figure(&mut s, "mmio_uart_max_idle_ns", FIGURES);
    assert!(
        worst < MAX_IDLE_NS,
        "one LSR read round trip spent {worst} ns idle (a tick is 10,000,000 ns)"
    );

    assert_eq!(
        figure(&mut s, "harts", FIGURES),
        2,
        "the bench VM has 2 vCPUs"
    );
    let instructions = figure(&mut s, "ipi_roundtrip", FIGURES);
    let ns = figure(&mut s, "ipi_roundtrip_ns", FIGURES);
    assert!(
        ns <= instructions + instructions / 20,
        "an IPI round trip between the two vCPUs takes {ns} ns of guest time but \
         {instructions} instructions: a woken vCPU waited"
    );
    assert_eq!(
        figure(&mut s, "partner_stopped", FIGURES),
        1,
        "the second vCPU stopped itself with HSM hart_stop"
    );

    for (run, how) in [("out", "byte by byte"), ("fifo", "in FIFO bursts")] {
        s.expect(&format!("bench: {run} start"), FIGURES).unwrap();
        let instructions = figure(&mut s, &format!("{run}_instructions"), OUTPUT);
        let ns = figure(&mut s, &format!("{run}_ns"), FIGURES);
        let idle = ns.saturating_sub(instructions);
        assert!(
            idle < MAX_IDLE_NS,
            "writing 64 KiB {how} took {ns} ns of guest time for {instructions} \
             instructions: {idle} ns idle"
        );
    }
    s.expect("bench: done", FIGURES).unwrap();
}

/// Boots the bench scenario whose boot image `image_var` names, on one
/// host hart under `-icount shift=0`, and reads the guest's null SBI call,
/// UART round trip, posted write and IPI round trip (instructions of the
/// whole hart each, as `instret` counts them).
fn first_figures(image_var: &str) -> (Session, [u64; 4]) {
    let kernel = artifact("MICA_KERNEL_RISCV64").unwrap();
    let image = artifact(image_var).unwrap();
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "256M", "-icount", "shift=0", "-monitor", "none"])
        .args(["-serial", "stdio", "-kernel", &kernel, "-initrd", &image]);
    let mut s = Session::spawn(qemu).unwrap();
    let figures = [
        "null_sbi_call",
        "mmio_uart_roundtrip",
        "mmio_uart_posted_write",
        "ipi_roundtrip",
    ]
    .map(|key| figure(&mut s, key, FIGURES));
    (s, figures)
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn beside_two_busy_vms_a_round_trip_costs_what_it_costs_alone() {
    let (_, alone) = first_figures("MICA_BOOT_IMAGE_RISCV64_BENCH");
    let (mut s, busy) = first_figures("MICA_BOOT_IMAGE_RISCV64_BENCH_BUSY");
    // Both neighbours spin on the bench VM's host hart: each reaches the
    // first second of its clock (some 10^9 instructions of the hart).
    s.expect_all(&["vm1 | steady: tick 1 ", "vm2 | steady: tick 1 "], FIGURES)
        .unwrap();
    // The counts are the whole hart's: a round trip that waited behind a
    // neighbour's time slice (10 ms, 10 million instructions) would add
    // tens of thousands to the mean of the 200 the guest times.
    mica_tests::bench::assert_beside_busy_vms_as_alone(
        [
            "null SBI call",
            "UART round trip",
            "posted write",
            "IPI round trip",
        ],
        alone,
        busy,
    );
}
