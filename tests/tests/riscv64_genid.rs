//! The VM generation ID as a guest sees it: the `genid` test guest reads
//! the ID from guest memory (where its device tree's `microsoft,vmgenid`
//! node points) and prints it at boot. Driven through the shell on stdin:
//! pause/resume and a plain reset keep the ID (and `vm info` agrees),
//! `vm reset --new-genid` gives a different one after the reboot, and a
//! clone of a paused VM boots with an ID of its own. Run by `cargo xtask
//! test`.
//!
//! No operation changes a running VM's ID without a reboot, so the change
//! interrupt is tested on the host (the device service with its PLIC).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);
const TICKS: Duration = Duration::from_secs(20);
const ANSWER: Duration = Duration::from_secs(10);

/// Mica booted with the shell on stdin, after the static VMs started.
fn booted() -> Session {
    mica_tests::riscv64::booted_shell(BOOT).unwrap()
}

/// The 32 hex digits of the next `<vm> | genid: ...` line.
fn boot_id(s: &mut Session, vm: &str) -> String {
    let line = s.expect(&format!("{vm} | genid: "), TICKS).unwrap();
    let id = line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(id.len(), 32, "32 hex digits: {line}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    assert_ne!(id, "0".repeat(32), "the ID was written into RAM: {line}");
    id
}

/// The generation ID `vm info` shows, without the UUID dashes.
fn info_id(s: &mut Session, vm: &str) -> String {
    s.send(&format!("vm info {vm}\n")).unwrap();
    s.expect(&format!("name:          {vm}"), ANSWER).unwrap();
    let line = s.expect("generation id: ", ANSWER).unwrap();
    line.rsplit(' ').next().unwrap().replace('-', "")
}

fn run(s: &mut Session, command: &str, done: &str) {
    s.send(&format!("{command}\n")).unwrap();
    s.expect(done, ANSWER).unwrap();
}

fn lines_since(s: &Session, from: usize, needle: &str) -> usize {
    s.transcript()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn the_guest_sees_a_new_id_only_after_new_genid_and_clone() {
    let mut s = booted();
    run(&mut s, "vm create g --image genid --mem 16", "g created");
    run(&mut s, "vm start g", "g started");
    let first = boot_id(&mut s, "g");
    s.expect("g | tick 1", TICKS).unwrap();
    assert_eq!(
        info_id(&mut s, "g"),
        first,
        "vm info shows what the guest read"
    );

    // Pause and resume: the guest goes on, no change, the same ID.
    let from = s.position();
    run(&mut s, "vm pause g", "g paused");
    run(&mut s, "vm resume g", "g resumed");
    s.expect("g | tick", TICKS).unwrap();
    s.expect("g | tick", TICKS).unwrap();
    assert_eq!(lines_since(&s, from, "genid changed"), 0);
    assert_eq!(lines_since(&s, from, "g | genid: "), 0, "no reboot");
    assert_eq!(info_id(&mut s, "g"), first);

    // A plain reset reboots the guest with the same ID.
    run(&mut s, "vm reset g", "g reset");
    assert_eq!(boot_id(&mut s, "g"), first, "plain reset keeps the ID");
    s.expect("g | tick 1", TICKS).unwrap();

    // --new-genid: the rebooted guest reads a different ID.
    run(
        &mut s,
        "vm reset g --new-genid",
        "g reset with a new generation ID",
    );
    let second = boot_id(&mut s, "g");
    assert_ne!(second, first, "a new generation ID");
    assert_eq!(info_id(&mut s, "g"), second);
    s.expect("g | tick 1", TICKS).unwrap();

    // A clone of the paused g: its own ID, and g keeps its own.
    run(&mut s, "vm pause g", "g paused");
    run(&mut s, "vm clone g g2", "g2 created");
    run(&mut s, "vm start g2", "g2 started");
    let cloned = boot_id(&mut s, "g2");
    assert_ne!(cloned, second, "the clone's ID differs from its source's");
    assert_eq!(info_id(&mut s, "g2"), cloned);
    s.expect("g2 | tick 1", TICKS).unwrap();
    assert_eq!(info_id(&mut s, "g"), second);
    run(&mut s, "vm resume g", "g resumed");
    s.expect("g | tick", TICKS).unwrap();

    assert_eq!(
        lines_since(&s, 0, "genid changed"),
        0,
        "no live change: {:?}",
        s.transcript()
    );
    assert!(
        !s.transcript()
            .iter()
            .any(|l| l.contains("fatal") || l.contains("stopped:")),
        "{:?}",
        s.transcript()
    );
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
