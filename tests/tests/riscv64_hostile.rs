//! A hostile guest beside a well-behaved one (scenario `hostile`): vm1
//! runs the `hostile` test guest, which touches every device window with
//! every width, addresses with nothing there, privileged and illegal
//! instructions, every SBI extension with bad arguments, storms of timers,
//! IPIs and `wfi`, then spins without ever exiting; each of its phases
//! checks Mica's answer from the inside and prints `hostile: <phase> ok`.
//! vm0 runs `steady`, whose tick lines carry its clock and its busy-loop
//! count: it must keep ticking on time, and at a rate beside the spinning
//! VM not far below its rate alone (while vm1 slept before its first
//! phase).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::hostile;
use mica_tests::riscv64::booted_scenario_shell;

const BOOT: Duration = Duration::from_secs(60);
/// Each phase takes a few seconds of wall time at most.
const PHASE: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(30);
/// A tick is a second of guest time plus its line; a time slice (50 ms)
/// of the other VM may come between, and a loaded host may hold QEMU
/// back a little.
const MAX_GAP_TICKS: f64 = 1.5;
/// The round-robin share of one hart between two VMs is a half; the test
/// fails below a fifth.
const MIN_SHARE_INVERSE: u64 = 5;
/// The longest a 1 ms `wfi` sleep may take: the other VM's slice (50 ms)
/// and two ticks, with room for a loaded host.
const MAX_SLEEP_US: u64 = 200_000;

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_hostile_guest_is_answered_and_its_neighbour_keeps_its_pace() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_HOSTILE", "vm1", BOOT).unwrap();
    let phases = hostile::expect_phases(
        &mut s,
        &[
            "mmio",
            "virtio",
            "nowhere",
            "privileged",
            "sbi",
            "timer storm",
            "ipi storm",
            "wfi storm",
        ],
        PHASE,
    )
    .unwrap();
    let answers = &phases.lines;
    assert!(
        answers[0].contains("(1232 accesses in 11 windows;"),
        "{}",
        answers[0]
    );
    assert!(answers[4].contains("(39 bad calls"), "{}", answers[4]);
    let slept: u64 = answers[7]
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|us| us.parse().ok())
        .unwrap();
    assert!(slept <= MAX_SLEEP_US, "{}", answers[7]);
    let (alone, beside) =
        hostile::expect_steady_progress(&mut s, &phases, MAX_GAP_TICKS, MIN_SHARE_INVERSE, PHASE)
            .unwrap();
    println!(
        "steady: {alone} spins per tick alone, {beside} beside the spinning VM ({:.2})",
        beside as f64 / alone as f64
    );
    // Stray accesses are reported once.
    let lines = s.transcript();
    let said = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(said("mica: vm1: load access fault at 0x0 injected"), 1);
    assert_eq!(said("access fault at"), 1, "{lines:?}");
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
