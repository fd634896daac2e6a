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

use mica_tests::riscv64::booted_scenario_shell;
use mica_tests::steady;

const BOOT: Duration = Duration::from_secs(60);
/// Each phase takes a few seconds of wall time at most.
const PHASE: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(30);
/// Ticks of `steady` to measure beside the spinning VM.
const BESIDE: usize = 4;
/// A tick is a second of guest time plus its line; one time slice (50 ms)
/// of the other VM may come between, not more.
const MAX_GAP_SECONDS: f64 = 1.25;
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
    let timebase = s.expect("vm0 | steady: timebase ", BOOT).unwrap();
    let timebase: u64 = timebase.rsplit(' ').next().unwrap().parse().unwrap();
    s.expect("vm1 | hostile: start", BOOT).unwrap();
    let started = s.position();
    let mut answers = Vec::new();
    for phase in [
        "mmio",
        "nowhere",
        "privileged",
        "sbi",
        "timer storm",
        "ipi storm",
        "wfi storm",
    ] {
        let line = s
            .expect(&format!("vm1 | hostile: {phase} "), PHASE)
            .unwrap();
        assert!(
            line.starts_with(&format!("vm1 | hostile: {phase} ok (")),
            "{line}\n{:?}",
            s.transcript()
        );
        answers.push(line);
    }
    assert!(
        answers[0].contains("(1232 accesses in 11 windows;"),
        "{}",
        answers[0]
    );
    assert!(answers[3].contains("(39 bad calls"), "{}", answers[3]);
    let slept: u64 = answers[6]
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|us| us.parse().ok())
        .unwrap();
    assert!(slept <= MAX_SLEEP_US, "{}", answers[6]);
    s.expect("vm1 | hostile: spinning", PHASE).unwrap();
    let spinning = s.position();
    for _ in 0..BESIDE {
        s.expect("vm0 | steady: tick", ANSWER).unwrap();
    }
    let lines = s.transcript();
    let alone = steady::ticks(&lines[..started], "vm0");
    let beside = steady::ticks(&lines[spinning..], "vm0");
    let max_gap = (MAX_GAP_SECONDS * timebase as f64) as u64;
    let (before, during) =
        steady::check_progress(&alone, &beside, max_gap, MIN_SHARE_INVERSE).unwrap();
    println!(
        "steady: {before} spins per tick alone, {during} beside the spinning VM ({:.2})",
        during as f64 / before as f64
    );
    // Stray accesses are reported once; the device failures the mmio
    // phase provokes are shown a few times, then no more.
    let said = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(said("mica: vm1: load access fault at 0x0 injected"), 1);
    assert_eq!(said("access fault at"), 1, "{lines:?}");
    assert!(said("ioreq: WARN:") <= 5, "{lines:?}");
    assert_eq!(
        said("ioreq: WARN: VmId(1): further problems are not shown"),
        1
    );
    for bad in ["FAILED", "stopped", "powered off", "panic", "killed"] {
        assert_eq!(said(bad), 0, "{bad:?} in {lines:?}");
    }
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
