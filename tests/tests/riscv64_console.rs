//! The shell's console and disk commands on Mica's console, typed at
//! through QEMU's serial stdin: no prompt between the guests' lines
//! without a terminal (`mica.console=plain`) and the lines above a redrawn
//! prompt with one (`mica.console=tty`), `console NAME` showing only that
//! VM's lines and the others' afterwards, `vm log NAME`, and a dynamic VM
//! given a host disk (`--disk 0`, refused to a second VM until the first
//! is destroyed; `--disk 5` no such disk). Run by `cargo xtask test`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::riscv64::{booted_shell, halt_with_status_0};
use mica_tests::{Session, count_since};

const BOOT: Duration = Duration::from_secs(30);
/// Guests tick about once a second; a few seconds is plenty under load.
const TICKS: Duration = Duration::from_secs(20);
const ANSWER: Duration = Duration::from_secs(10);

/// Mica booted with the shell on stdin, after the static VMs started.
fn booted() -> Session {
    booted_shell(BOOT).unwrap()
}

/// Types `halt` and checks the clean power-off.
fn halt(s: Session) {
    halt_with_status_0(s, ANSWER);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_a_terminal_no_prompt_comes_between_the_guests_lines() {
    // Default: `mica.console=plain`, as `cargo xtask qemu` passes for a
    // stdin that is not a terminal.
    let mut s = booted();
    s.expect("vm1 | vm1: tick 1", TICKS).unwrap();
    let from = s.position();
    for n in 2..5 {
        s.expect_all(
            &[
                &format!("vm0 | vm0: tick {n}"),
                &format!("vm1 | vm1: tick {n}"),
            ],
            TICKS,
        )
        .unwrap();
    }
    // The prompt printed once at start is on a line of its own, ended
    // by the first line after it; it is not printed again until a key is
    // typed.
    let prompts = count_since(&s, from, "mica> ");
    assert!(
        prompts <= 1,
        "{prompts} prompts between the guests' lines: {:?}",
        &s.transcript()[from..]
    );
    assert!(
        s.transcript()[from..]
            .iter()
            .all(|l| !l.contains("mica> ") || !l.contains(" | ")),
        "output starts on a fresh line: {:?}",
        &s.transcript()[from..]
    );
    // A command's answer ends with one prompt; the guests' lines after it
    // bring no more.
    // A command typed shows after its prompt, shown again for it.
    s.send("vm list\n").unwrap();
    let echo = s.expect("vm list", ANSWER).unwrap();
    assert_eq!(echo, "mica> vm list");
    s.expect("vm1      1  static   started", ANSWER).unwrap();
    let answered = s.position();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    assert!(
        count_since(&s, answered, "mica> ") <= 1,
        "{:?}",
        &s.transcript()[answered..]
    );
    halt(s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn on_a_terminal_lines_go_above_the_prompt_and_the_typed_line_is_redrawn() {
    let mut s = mica_tests::riscv64::booted_shell_with_cmdline("mica.console=tty", BOOT).unwrap();
    s.expect("vm1 | vm1: tick 1", TICKS).unwrap();
    // Half a command, then the guests print.
    s.send("vm li").unwrap();
    // Each guest line erases the partial line (`\r` ESC [ K: the test's
    // reader drops the `\r`), and the partial line is drawn again after
    // it: so the next line starts with it before its own erase.
    let erase = "mica> vm li\x1b[K";
    let first = s.expect(&format!("{erase}vm0 | vm0: tick"), TICKS).unwrap();
    assert!(first.ends_with(|c: char| c.is_ascii_digit()), "{first:?}");
    s.expect(&format!("{erase}vm1 | vm1: tick"), TICKS).unwrap();
    s.expect(&format!("{erase}vm0 | vm0: tick"), TICKS).unwrap();
    // The line typed is intact: finishing it runs `vm list`. A guest line
    // may still come between the last letters and the Enter (on another
    // hart): the completed line is then drawn again and erased first.
    s.send("st\n").unwrap();
    let mut echo = s.expect("mica> vm list", ANSWER).unwrap();
    for _ in 0..8 {
        if !echo.contains("mica> vm list\x1b[K") {
            break;
        }
        echo = s.expect("mica> vm list", ANSWER).unwrap();
    }
    assert!(echo.ends_with("mica> vm list"), "{echo:?}");
    s.expect("vm0      0  static   started", ANSWER).unwrap();
    // No line is left showing a stale prompt: every line that shows one
    // either is erased at once (a guest line follows on it) or is the
    // line a command was typed on.
    for line in s.transcript() {
        let stale = line.contains("mica> ")
            && !line.contains("\x1b[K")
            && !line.ends_with("mica> vm list")
            && !line.ends_with("mica> halt");
        assert!(!stale, "a stale prompt: {line:?} in {:?}", s.transcript());
    }
    halt(s);
}

/// Ctrl-]: detaches the console.
const DETACH: &str = "\x1d";

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn an_attached_console_shows_only_its_vm_and_the_others_lines_come_after() {
    let mut s = booted();
    s.expect("vm1 | vm1: tick 2", TICKS).unwrap();
    s.send("console vm0\n").unwrap();
    s.expect("console attached to vm0's UART", ANSWER).unwrap();
    // The focus is set before the shell reads on: from vm0's next line
    // on, only vm0's lines show.
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    let attached = s.position();
    for _ in 0..3 {
        s.expect("vm0 | vm0: tick", TICKS).unwrap();
    }
    assert_eq!(
        count_since(&s, attached, "vm1 |"),
        0,
        "vm1's lines showed while attached to vm0: {:?}",
        &s.transcript()[attached..]
    );
    s.send(DETACH).unwrap();
    s.expect("console detached", ANSWER).unwrap();
    s.expect(
        "devices: the other VMs' lines held while the console was attached to vm0 (",
        ANSWER,
    )
    .unwrap();
    // Held, not lost: vm1's ticks go on without a gap, past those vm0
    // printed while attached.
    let target = mica_tests::tick_numbers(&s, "vm0").last().unwrap() + 2;
    while mica_tests::tick_numbers(&s, "vm1").last() < Some(&target) {
        s.expect("vm1 | vm1: tick", TICKS).unwrap();
    }
    let ticks = mica_tests::tick_numbers(&s, "vm1");
    let first = ticks[0];
    let expected: Vec<u64> = (first..first + ticks.len() as u64).collect();
    assert_eq!(ticks, expected, "vm1's ticks in order, none lost");
    // And the console shows every VM again.
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    halt(s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn vm_log_prints_a_vms_recent_output_and_refuses_a_vm_that_is_gone() {
    let mut s = booted();
    s.expect("vm0 | vm0: tick 2", TICKS).unwrap();
    s.send("vm log vm0\n").unwrap();
    s.expect("mica> vm log vm0", ANSWER).unwrap();
    // From the VM's first line (printed at boot, long before) on.
    s.expect("vm0 log | hello from vm0", ANSWER).unwrap();
    s.expect("vm0 log | vm0: tick 1", ANSWER).unwrap();
    s.expect("vm0 log | vm0: tick 2", ANSWER).unwrap();
    s.expect("vm0 log: end", ANSWER).unwrap();
    s.send("vm log ghost\n").unwrap();
    s.expect("error: no VM named ghost", ANSWER).unwrap();
    s.send("vm create dyn1 --image hello\nvm start dyn1\n")
        .unwrap();
    s.expect("dyn1 | dyn1: tick 1", TICKS).unwrap();
    s.send("vm destroy dyn1\n").unwrap();
    s.expect("dyn1 destroyed", ANSWER).unwrap();
    s.send("vm log dyn1\n").unwrap();
    s.expect("error: no VM named dyn1 (it ended:", ANSWER)
        .unwrap();
    s.send("vm shutdown vm1\nvm log vm1\n").unwrap();
    s.expect("vm1 shut down", ANSWER).unwrap();
    s.expect(
        "error: vm1 is powered-off: cannot show its log; create it first",
        ANSWER,
    )
    .unwrap();
    halt(s);
}

/// A zeroed 16 MiB raw disk image in a fresh temporary file.
fn blank_disk(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mica-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.img");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(16 << 20).unwrap();
    path
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_dynamic_vm_gets_a_host_disk_that_is_one_vms_until_destroyed() {
    let disk = blank_disk("dyn-disk");
    let args = mica_tests::riscv64::disk_args(0, disk.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut s = mica_tests::riscv64::booted_scenario_shell_with(
        "MICA_BOOT_IMAGE_RISCV64",
        "vm1",
        &args,
        BOOT,
    )
    .unwrap();
    // 16 MiB each: the machine's RAM is no reason for a refusal here.
    s.send("vm create d1 --image hello --mem 16 --disk 0\n")
        .unwrap();
    s.expect("d1 created", ANSWER).unwrap();
    s.send("vm start d1\n").unwrap();
    // The guest may greet before the shell says it started.
    s.expect_all(&["d1 started", "d1 | hello from d1"], TICKS)
        .unwrap();
    s.send("vm info d1\n").unwrap();
    s.expect("mica> vm info d1", ANSWER).unwrap();
    s.expect("disk:          0 (virtio-blk)", ANSWER).unwrap();
    // Disk 0 is d1's: d2 is refused, and nothing of it is left.
    s.send("vm create d2 --image hello --mem 16 --disk 0\n")
        .unwrap();
    s.expect(
        "error: disk 0 is attached to another VM: destroy that VM first or choose another --disk",
        ANSWER,
    )
    .unwrap();
    s.send("vm info d2\n").unwrap();
    s.expect("error: no VM named d2", ANSWER).unwrap();
    // Once d1 is gone the disk is free.
    s.send("vm destroy d1\n").unwrap();
    s.expect("d1 destroyed", ANSWER).unwrap();
    s.send("vm create d2 --image hello --mem 16 --disk 0\n")
        .unwrap();
    s.expect("d2 created", ANSWER).unwrap();
    s.send("vm info d2\n").unwrap();
    s.expect("mica> vm info d2", ANSWER).unwrap();
    s.expect("disk:          0 (virtio-blk)", ANSWER).unwrap();
    // The machine has one disk: number 5 is no disk.
    s.send("vm create d3 --image hello --mem 16 --disk 5\n")
        .unwrap();
    s.expect("error: no disk 5 on this machine: ", ANSWER)
        .unwrap();
    s.send("vm info vm0\n").unwrap();
    s.expect("mica> vm info vm0", ANSWER).unwrap();
    s.expect("disk:          none", ANSWER).unwrap();
    let _ = std::fs::remove_dir_all(disk.parent().unwrap());
    halt(s);
}
