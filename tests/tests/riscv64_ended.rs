//! Guests that end, and the operator learning why (scenario `ender`): a
//! static VM that Mica stops for a fault shows `powered-off (stopped: guest
//! fault)` in `vm list` and the fault, with the guest's pc, on `vm info`'s
//! `last exit:` line; one that powers itself off shows `powered off by the
//! guest`; a dynamic VM that ends gives its slot back and `vm info` names
//! it with how it ended. Run by `cargo xtask test`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);
const ANSWER: Duration = Duration::from_secs(10);

/// What the `ender` guest's fault is, as Mica's console and `vm info` say.
const FAULT: &str = "stopped by Mica: instruction guest page fault at 0x1000, \
                     no RAM or device there (pc 0x1000)";

fn booted() -> Session {
    mica_tests::riscv64::booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_ENDER", "vm0", BOOT)
        .unwrap()
}

fn halt(mut s: Session) {
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn vm_info_and_vm_list_say_why_each_vm_ended() {
    let mut s = booted();
    // A static VM that Mica stops.
    s.send("vm start crash\n").unwrap();
    s.expect("ender: crash up", ANSWER).unwrap();
    s.expect(
        "mica: crash stopped: instruction guest-page fault at 0x1000",
        ANSWER,
    )
    .unwrap();
    s.expect(
        &format!("vm-manager: crash {FAULT}; now powered off"),
        ANSWER,
    )
    .unwrap();
    s.send("vm info crash\n").unwrap();
    s.expect("state:         powered-off", ANSWER).unwrap();
    let line = s.expect("last exit:", ANSWER).unwrap();
    assert!(line.ends_with(&format!("last exit:     {FAULT}")), "{line}");
    // And when, by the kernel's clock: after boot, a few seconds in.
    let when = s.expect(" after Mica booted", ANSWER).unwrap();
    let seconds: f64 = when
        .trim()
        .strip_prefix("at ")
        .and_then(|rest| rest.strip_suffix(" s after Mica booted"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{when}"));
    assert!(seconds > 0.0 && seconds < 120.0, "{when}");

    // A static VM whose guest powers itself off.
    s.send("vm start off\n").unwrap();
    s.expect("ender: powering off", ANSWER).unwrap();
    s.expect("mica: off powered off", ANSWER).unwrap();
    s.expect("vm-manager: off powered off by the guest", ANSWER)
        .unwrap();
    s.send("vm info off\n").unwrap();
    s.expect("state:         powered-off", ANSWER).unwrap();
    s.expect("last exit:     powered off by the guest", ANSWER)
        .unwrap();

    // The list says it too, in a few words; a VM that runs says nothing more.
    s.send("vm list\n").unwrap();
    s.expect("NAME   SLOT  KIND", ANSWER).unwrap();
    let vm0 = s.expect("vm0       0  static   started ", ANSWER).unwrap();
    assert!(!vm0.contains('('), "{vm0}");
    s.expect(
        "crash     1  static   powered-off (stopped: guest fault)",
        ANSWER,
    )
    .unwrap();
    s.expect(
        "off       2  static   powered-off (guest powered off)",
        ANSWER,
    )
    .unwrap();

    // A dynamic VM that ends gives its slot back and is named with how.
    s.send("vm create gone --image ender\n").unwrap();
    s.expect("gone created", ANSWER).unwrap();
    s.send("vm start gone\n").unwrap();
    s.expect("mica: gone stopped:", ANSWER).unwrap();
    s.expect("vm-manager: gone stopped by Mica", ANSWER)
        .unwrap();
    s.send("vm info gone\n").unwrap();
    let line = s.expect("error: no VM named gone", ANSWER).unwrap();
    assert!(
        line.ends_with(&format!("error: no VM named gone (it ended: {FAULT})")),
        "{line}"
    );

    // Started again, a static VM's last exit is history.
    s.send("vm start off\n").unwrap();
    s.expect("vm-manager: off powered off by the guest", ANSWER)
        .unwrap();
    s.send("vm info vm0\n").unwrap();
    s.expect("state:         started", ANSWER).unwrap();
    let from = s.position();
    s.expect("vcpus:", ANSWER).unwrap();
    assert!(
        s.transcript()[from..s.position()]
            .iter()
            .all(|l| !l.contains("last exit:")),
        "vm0 never ended: {:?}",
        &s.transcript()[from..]
    );
    halt(s);
}
