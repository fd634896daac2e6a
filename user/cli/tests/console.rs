//! `mica console NAME` against the fake hypervisor, whose VM consoles echo
//! what is typed: stdin (a pipe here) reaches the VM as `ConsoleInput`, the
//! VM's output comes back through `ConsoleOutput` on stdout.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

mod common;

use common::{Behaviour, Fake, mica, mica_at, mica_with_input, temp_dir};

const ATTACHED: &str = "console attached to g: Ctrl-] detaches\n";

fn started(name: &str) -> Fake {
    let fake = Fake::start(Behaviour::Serve);
    for args in [&["create", name][..], &["start", name]] {
        let run = mica_at(&fake.socket, args);
        assert_eq!(run.code, 0, "{run:?}");
    }
    fake
}

/// What the fake VM's console received, in order.
fn typed_at(fake: &Fake, slot: u16) -> Vec<u8> {
    let manager = fake.manager.lock().unwrap();
    manager
        .platform()
        .consoles
        .iter()
        .find(|(vm, _)| vm.0 == slot)
        .map(|(_, bytes)| bytes.to_vec())
        .unwrap_or_default()
}

#[test]
fn typed_bytes_reach_the_vm_and_its_output_is_printed_raw() {
    let fake = started("g");
    let input = b"echo hi\r\n\x1b[A\x03";
    let run = mica_with_input(&fake.socket, &["console", "g"], input);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, format!("{ATTACHED}console detached\n").as_str()),
        "{run:?}"
    );
    assert_eq!(
        run.stdout.as_bytes(),
        input,
        "the echo comes back unchanged"
    );
    assert_eq!(typed_at(&fake, 2), input);

    // A second attach shows what the console printed before.
    let run = mica_with_input(&fake.socket, &["console", "g"], b"");
    assert_eq!(
        (run.code, run.stdout.as_bytes()),
        (0, &input[..]),
        "{run:?}"
    );
}

#[test]
fn ctrl_bracket_detaches_and_what_follows_is_not_sent() {
    let fake = started("g");
    let run = mica_with_input(&fake.socket, &["console", "g"], b"ls\n\x1dreboot\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, format!("{ATTACHED}console detached\n"));
    assert_eq!(run.stdout, "ls\n");
    assert_eq!(typed_at(&fake, 2), b"ls\n");
}

#[test]
fn long_input_goes_in_pieces() {
    let fake = started("g");
    let input: Vec<u8> = (0..300u16).map(|n| b'a' + (n % 26) as u8).collect();
    let run = mica_with_input(&fake.socket, &["console", "g"], &input);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.as_bytes(), &input[..]);
    assert_eq!(typed_at(&fake, 2), input);
}

#[test]
fn a_vm_without_a_console_is_refused_with_what_to_do() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_with_input(&fake.socket, &["console", "ghost"], b"x");
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (1, "", "error: no VM named ghost\n")
    );
    let run = mica_with_input(&fake.socket, &["console", "rtvm"], b"x");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            "error: rtvm is powered-off: it has no console until it is created (mica create rtvm)\n"
        )
    );
    let run = mica_with_input(&temp_dir().join("absent.sock"), &["console", "g"], b"");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot reach the hypervisor at ")
    );
}

#[test]
fn console_usage_errors_exit_2() {
    let fake = Fake::start(Behaviour::Serve);
    let socket = fake.socket.to_str().unwrap();
    for (args, line) in [
        (
            &["--socket", socket, "console"][..],
            "error: missing NAME (usage: mica console NAME [--hvc])\n",
        ),
        (
            &["--socket", socket, "console", "g", "h"],
            "error: unexpected argument \"h\" (usage: mica console NAME [--hvc])\n",
        ),
        (
            &["--socket", socket, "--json", "console", "g"],
            "error: --json does not apply to console: its output is the guest's\n",
        ),
    ] {
        let run = mica(args);
        assert_eq!((run.code, run.stderr.as_str()), (2, line), "{args:?}");
    }
    let run = mica(&["--help"]);
    assert!(run.stdout.contains("console NAME"), "{}", run.stdout);
}

#[test]
fn log_prints_the_vms_recent_output_as_escaped_lines() {
    let fake = started("g");
    let run = mica_at(&fake.socket, &["log", "g"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
    let input = b"hello\r\n\x1b[2J$ ";
    let run = mica_with_input(&fake.socket, &["console", "g"], input);
    assert_eq!(run.code, 0, "{run:?}");
    let run = mica_at(&fake.socket, &["log", "g"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "hello\n\\x1b[2J$ \n", ""),
        "{run:?}"
    );
}

#[test]
fn log_of_an_unknown_vm_is_refused_like_any_command() {
    let fake = started("g");
    let run = mica_at(&fake.socket, &["log", "ghost"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "error: no VM named ghost\n"),
        "{run:?}"
    );
    let run = mica_at(&fake.socket, &["log", "--json", "g"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--json does not apply to log"),
        "{run:?}"
    );
}
