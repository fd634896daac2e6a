//! What an operating system needs from its hypervisor, checked from inside
//! two guests running side by side (the `traps` test guest, scenario
//! `traps`): the exceptions a guest handles reach its own trap vector, an
//! instruction Mica does not emulate is injected as an illegal
//! instruction instead of stopping the VM, and each vCPU's FP registers
//! survive while the other VM uses its own.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::riscv64::booted_scenario_shell;

const BOOT: Duration = Duration::from_secs(60);
/// The guests check their FP registers for about ten seconds.
const CHECKS: Duration = Duration::from_secs(120);
const ANSWER: Duration = Duration::from_secs(30);

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn guests_take_their_own_traps_and_keep_their_fp_state() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_TRAPS", "vm0", BOOT).unwrap();
    s.expect_all(&["t0 | traps: done", "t1 | traps: done"], CHECKS)
        .unwrap();
    // From the start: t0 and t1 run on harts of their own from their
    // start on, and may pass their first checks before the shell's
    // prompt.
    let lines = s.transcript();
    for vm in ["t0", "t1"] {
        for check in [
            "traps: illegal instruction ok (scause 2",
            "traps: breakpoint ok (scause 3",
            "traps: virtual instruction injected ok (scause 2, stval 0x62000073)",
            "traps: fp registers kept over 100 checks ok",
        ] {
            let line = format!("{vm} | {check}");
            assert!(
                lines.iter().any(|l| l.starts_with(&line)),
                "no {line:?} in {lines:?}"
            );
        }
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("FAILED") || l.contains("stopped")),
        "{lines:?}"
    );
    // The hello VM ran beside them throughout.
    s.expect("vm0 | vm0: tick", ANSWER).unwrap();
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
