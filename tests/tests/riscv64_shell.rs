//! The management shell on Mica's console, typed at through QEMU's serial
//! stdin: `vm list` with slots and generation IDs, pause/resume seen in the
//! guests' output, a dynamic VM created, started and destroyed (twice, so
//! its RAM comes back), one `error:` line per mistake, and `halt` ending
//! QEMU with status 0. Run by `cargo xtask test`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;
use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);
/// Guests tick about once a second; a few seconds is plenty under load.
const TICKS: Duration = Duration::from_secs(20);
const ANSWER: Duration = Duration::from_secs(10);

/// QEMU booting the default scenario with the shell on stdin, after the
/// static VMs started; 512 MiB leaves room for a dynamic VM's default
/// 128 MiB of contiguous RAM next to vm0's and vm1's.
fn booted() -> Session {
    let kernel = std::env::var("MICA_KERNEL_RISCV64").expect(
        "MICA_KERNEL_RISCV64 names the kernel ELF: run these tests with `cargo xtask test`",
    );
    let image = std::env::var("MICA_BOOT_IMAGE_RISCV64").expect(
        "MICA_BOOT_IMAGE_RISCV64 names the boot image: run these tests with `cargo xtask test`",
    );
    let mut command = Command::new("qemu-system-riscv64");
    command
        .args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "512M", "-smp", "2", "-kernel", &kernel])
        .args(["-initrd", &image])
        .args(["-monitor", "none", "-serial", "stdio"]);
    let mut s = Session::spawn_with_stdin(command).unwrap();
    s.expect("vm-manager: vm1 started", BOOT).unwrap();
    s
}

/// Types `halt` and checks the clean power-off.
fn halt(mut s: Session) {
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

/// Lines from `from` on that contain `needle`.
fn count_since(s: &Session, from: usize, needle: &str) -> usize {
    s.transcript()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn vm_list_shows_the_static_vms_and_halt_exits_zero() {
    let mut s = booted();
    s.send("vm list\n").unwrap();
    s.expect("mica> vm list", ANSWER).unwrap();
    let header = s.expect("NAME  SLOT  KIND", ANSWER).unwrap();
    assert!(header.ends_with("GENERATION ID"), "{header}");
    for (name, slot) in [("vm0", 0), ("vm1", 1)] {
        let row = s.expect(&format!("{name}      {slot}  static   started"), ANSWER);
        let row = row.unwrap();
        let genid = row.rsplit(' ').next().unwrap();
        assert_eq!(genid.len(), 36, "a UUID-style generation ID: {row}");
        assert_eq!(genid.matches('-').count(), 4, "{row}");
    }
    halt(s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn pause_stops_one_vms_ticks_and_resume_brings_them_back() {
    let mut s = booted();
    s.expect("vm0 | vm0: tick 1", TICKS).unwrap();
    s.send("vm pause vm0\n").unwrap();
    s.expect("vm0 paused", ANSWER).unwrap();
    // A line vm0 finished before the pause may still be on its way.
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    let paused_from = s.position();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    assert_eq!(
        count_since(&s, paused_from, "vm0 | vm0: tick"),
        0,
        "vm0 ticked while paused: {:?}",
        &s.transcript()[paused_from..]
    );
    s.send("vm resume vm0\n").unwrap();
    s.expect("vm0 resumed", ANSWER).unwrap();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    halt(s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_dynamic_vm_runs_and_is_destroyed_while_running_twice() {
    let mut s = booted();
    for round in 0..2 {
        s.send("vm create dyn1 --image hello\n").unwrap();
        s.expect("dyn1 created", ANSWER).unwrap();
        s.send("vm start dyn1\n").unwrap();
        s.expect("dyn1 started", ANSWER).unwrap();
        s.expect("dyn1 | hello from dyn1", TICKS).unwrap();
        s.expect("dyn1 | dyn1: tick 1", TICKS).unwrap();
        s.send("vm destroy dyn1\n").unwrap();
        s.expect("dyn1 destroyed", ANSWER).unwrap();
        s.expect("vm0 | vm0: tick", TICKS).unwrap();
        let destroyed_from = s.position();
        s.expect("vm0 | vm0: tick", TICKS).unwrap();
        s.expect("vm0 | vm0: tick", TICKS).unwrap();
        assert_eq!(
            count_since(&s, destroyed_from, "dyn1 |"),
            0,
            "round {round}: dyn1 printed after destroy: {:?}",
            &s.transcript()[destroyed_from..]
        );
        s.send("vm list\nvm info vm0\n").unwrap();
        let listed_from = s.position();
        s.expect("NAME  SLOT  KIND", ANSWER).unwrap();
        s.expect("name:          vm0", ANSWER).unwrap();
        let rows = &s.transcript()[listed_from..];
        assert!(
            !rows.iter().any(|l| l.starts_with("dyn1 ")),
            "round {round}: dyn1 still listed: {rows:?}"
        );
    }
    assert!(
        !s.transcript().iter().any(|l| l.contains("fatal")),
        "{:?}",
        s.transcript()
    );
    halt(s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn each_mistake_is_one_error_line() {
    let mut s = booted();
    let cases = [
        (
            "vm create bad!name\n",
            "error: name \"bad!name\" is invalid: bad character '!'; use 1-31 of [A-Za-z0-9._-]",
        ),
        ("vm create vm0\n", "error: "),
        ("vm start ghost\n", "error: no VM named ghost"),
        ("vm start vm0\n", "error: vm0 is started: cannot start it"),
        (
            "vm create dyn2 --image nope\n",
            "error: no guest image named nope: check --image",
        ),
    ];
    for (line, error) in cases {
        let from = s.position();
        s.send(line).unwrap();
        let shown = s.expect("error: ", ANSWER).unwrap();
        assert!(shown.starts_with(error), "{line:?} showed {shown:?}");
        // One error line per mistake: the next command's echo comes first.
        s.send("help\n").unwrap();
        s.expect("halt                         stop the hypervisor", ANSWER)
            .unwrap();
        assert_eq!(count_since(&s, from, "error: "), 1, "{line:?}");
    }
    let duplicate = s
        .transcript()
        .iter()
        .find(|l| l.starts_with("error: ") && l.contains("vm0"))
        .cloned()
        .unwrap();
    assert!(duplicate.contains("already exists"), "{duplicate}");
    halt(s);
}
