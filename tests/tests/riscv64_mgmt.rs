//! The management channel end to end: QEMU boots the default scenario with
//! a virtio console behind a temporary Unix socket (what `cargo xtask qemu
//! --mgmt SOCKET` adds), and the real host `mica` binary talks to the
//! `mgmt` task through it: `list --json` with the exact VMs, `pause` seen
//! by `info`, refused requests exiting 1 with their error line, and the
//! guests still running afterwards; `mica console NAME` showing a VM's
//! UART output and taking input, and in a terminal (a pty) raw while
//! attached, detached by Ctrl-] and restored; `mica log NAME` printing its
//! recent output; `mica` without `--socket` at the default path; `mica
//! events` following creates, starts, destroys and guests that end, in
//! text and JSON, and going on across a restarted vm-manager. Without the
//! console the task says so once and the machine runs on. Run by `cargo
//! xtask test`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);
/// Guests tick about once a second; a few seconds is plenty under load.
const TICKS: Duration = Duration::from_secs(20);

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these tests with `cargo xtask test`"))
}

/// QEMU with the hello scenario; with `socket`, the management console.
fn boot(socket: Option<&Path>) -> Session {
    let mut s = boot_image("MICA_BOOT_IMAGE_RISCV64", socket, None);
    started_with_channel(&mut s, socket.is_some());
    s
}

/// Waits until `vm1` started and the mgmt task said whether its channel is
/// `on`: the services run on every hart, so the two lines come in either
/// order.
fn started_with_channel(s: &mut Session, on: bool) {
    let channel = if on {
        "mgmt: management channel on the virtio console"
    } else {
        "mgmt: no virtio console: management channel off"
    };
    s.expect_all(&["vm-manager: vm1 started", channel], BOOT)
        .unwrap();
}

/// QEMU with the boot image named by `image_var`; with `socket`, the
/// management console; with `cmdline`, that kernel command line.
fn boot_image(image_var: &str, socket: Option<&Path>, cmdline: Option<&str>) -> Session {
    let kernel = env("MICA_KERNEL_RISCV64");
    let image = env(image_var);
    let mut command = Command::new("qemu-system-riscv64");
    command
        .args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-cpu", mica_tests::riscv64::CPU])
        .args(["-m", "512M", "-smp", "2", "-kernel", &kernel])
        .args(["-initrd", &image]);
    if let Some(socket) = socket {
        let chardev = format!(
            "socket,id=mgmt,path={},server=on,wait=off",
            socket.display()
        );
        command
            .args(["-chardev", &chardev])
            .args(["-device", "virtio-serial-device"])
            .args(["-device", "virtconsole,chardev=mgmt"]);
    }
    if let Some(cmdline) = cmdline {
        command.args(["-append", cmdline]);
    }
    Session::spawn(command).unwrap()
}

/// A socket path of this test run that no other run uses.
fn socket_path(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mica-mgmt-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs the real `mica` CLI against `socket`.
fn mica(socket: &Path, args: &[&str]) -> Output {
    let output = Command::new(env("MICA_CLI"))
        .arg("--socket")
        .arg(socket)
        .args(["--timeout", "10"])
        .args(args)
        .output()
        .unwrap();
    println!(
        "mica {args:?}: {:?}\nstdout: {}stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `mica console NAME` against `socket` with `input` as its stdin (a
/// pipe, so it ends shortly after the input does).
fn mica_console(socket: &Path, name: &str, input: &[u8]) -> Output {
    let mut child = Command::new(env("MICA_CLI"))
        .arg("--socket")
        .arg(socket)
        .args(["--timeout", "10", "console", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    println!(
        "mica console {name}: {:?}\nstdout: {}stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Replaces each `"generation_id":"<uuid>"` value with `UUID` after checking
/// its shape (8-4-4-4-12 lowercase hex digits).
fn masked_generation_ids(json: &str) -> String {
    let key = "\"generation_id\":\"";
    let mut out = String::new();
    let mut rest = json;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at + key.len()]);
        let value = &rest[at + key.len()..];
        let end = value.find('"').unwrap();
        let id = &value[..end];
        let groups: Vec<&str> = id.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "generation id {id:?}");
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "generation id {id:?}"
        );
        out.push_str("UUID");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn the_mica_cli_manages_vms_over_the_management_socket() {
    let socket = socket_path("cli");
    let mut s = boot(Some(&socket));

    let list = mica(&socket, &["--json", "list"]);
    assert_eq!(list.status.code(), Some(0));
    let json = String::from_utf8(list.stdout).unwrap();
    assert_eq!(
        masked_generation_ids(json.trim_end()),
        concat!(
            r#"{"vms":["#,
            r#"{"name":"vm0","slot":0,"kind":"static","state":"started","vcpus":1,"mem_mib":64,"generation_id":"UUID","generation_id_random":true,"last_exit":null,"last_exit_uptime_ms":null},"#,
            r#"{"name":"vm1","slot":1,"kind":"static","state":"started","vcpus":1,"mem_mib":64,"generation_id":"UUID","generation_id_random":true,"last_exit":null,"last_exit_uptime_ms":null}"#,
            "]}"
        )
    );

    let pause = mica(&socket, &["pause", "vm0"]);
    assert_eq!(pause.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&pause.stdout), "vm0 paused\n");
    let info = mica(&socket, &["info", "vm0"]);
    assert_eq!(info.status.code(), Some(0));
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().eq(["state:", "paused"])),
        "{info}"
    );

    // Refused requests: exit 1 and one error line each; nothing changes.
    let start = mica(&socket, &["start", "vm0"]);
    assert_eq!(start.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&start.stderr),
        "error: vm0 is paused: cannot start it; resume it instead\n"
    );
    let unknown = mica(&socket, &["info", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        "error: no VM named nosuch\n"
    );

    // vm1 never stopped, and vm0 runs again once resumed. Console lines
    // from before the pause may still be queued: skip a tick's worth.
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    let from = s.position();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    s.expect("vm1 | vm1: tick", TICKS).unwrap();
    assert!(
        !s.transcript()[from..]
            .iter()
            .any(|l| l.contains("vm0 | vm0: tick")),
        "vm0 ticked while paused"
    );
    assert_eq!(mica(&socket, &["resume", "vm0"]).status.code(), Some(0));
    s.expect("vm0 | vm0: tick", TICKS).unwrap();

    // A dynamic VM that ends is named with how it ended, for scripts too.
    assert_eq!(
        mica(
            &socket,
            &["create", "gone", "--image", "hello", "--mem", "16"]
        )
        .status
        .code(),
        Some(0)
    );
    assert_eq!(mica(&socket, &["destroy", "gone"]).status.code(), Some(0));
    let gone = mica(&socket, &["--json", "info", "gone"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&gone.stdout),
        "{\"error\":{\"code\":7,\"message\":\"no VM named gone (it ended: destroyed by the \
         operator)\",\"last_exit\":{\"kind\":\"destroyed\",\"detail\":\"destroyed by the \
         operator\"}}}\n"
    );
    let _ = std::fs::remove_file(&socket);
}

#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn mica_console_shows_a_vms_uart_output_and_takes_input() {
    let socket = socket_path("console");
    let mut s = boot(Some(&socket));
    let create = mica(
        &socket,
        &["create", "con", "--image", "hello", "--mem", "16"],
    );
    assert_eq!(create.status.code(), Some(0));
    assert_eq!(mica(&socket, &["start", "con"]).status.code(), Some(0));
    s.expect("con | hello from con", TICKS).unwrap();
    s.expect("con | con: tick 2", TICKS).unwrap();

    // The guest's earlier output shows on attach, byte for byte as its
    // UART wrote it; typed input is taken (the hello guest ignores it).
    let console = mica_console(&socket, "con", b"typed at the console\r");
    assert_eq!(console.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&console.stderr),
        "console attached to con: Ctrl-] detaches\nconsole detached\n"
    );
    let output = String::from_utf8(console.stdout).unwrap();
    assert!(
        output.starts_with("hello from con\n") || output.starts_with("hello from con\r\n"),
        "{output:?}"
    );
    assert!(output.contains("con: tick 1"), "{output:?}");
    assert!(output.contains("con: tick 2"), "{output:?}");
    // The hypervisor console still shows the lines as before.
    s.expect("con | con: tick", TICKS).unwrap();

    // Ctrl-] detaches at once; a powered-off VM has no console.
    let detach = mica_console(&socket, "vm0", b"\x1d");
    assert_eq!(detach.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&detach.stdout).contains("hello from vm0"),
        "vm0's output from boot is kept"
    );
    assert_eq!(mica(&socket, &["shutdown", "vm1"]).status.code(), Some(0));
    let off = mica_console(&socket, "vm1", b"");
    assert_eq!(off.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&off.stderr),
        "error: vm1 is powered-off: it has no console until it is created (mica create vm1)\n"
    );
    let _ = std::fs::remove_file(&socket);
}

#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn mica_log_prints_a_vms_recent_output_and_refuses_a_vm_without_one() {
    let socket = socket_path("log");
    let mut s = boot(Some(&socket));
    s.expect("vm0 | vm0: tick 2", TICKS).unwrap();
    // From its first line at boot on, as lines with control bytes escaped.
    let log = mica(&socket, &["log", "vm0"]);
    assert_eq!(log.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&log.stderr), "");
    let text = String::from_utf8(log.stdout).unwrap();
    assert!(text.starts_with("hello from vm0\n"), "{text:?}");
    assert!(text.contains("\nvm0: tick 1\nvm0: tick 2\n"), "{text:?}");
    assert!(!text.contains('\r'), "{text:?}");
    let ghost = mica(&socket, &["log", "ghost"]);
    assert_eq!(ghost.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&ghost.stderr),
        "error: no VM named ghost\n"
    );
    assert_eq!(mica(&socket, &["shutdown", "vm1"]).status.code(), Some(0));
    let off = mica(&socket, &["log", "vm1"]);
    assert_eq!(off.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&off.stderr),
        "error: vm1 is powered-off: cannot show its log; create it first\n"
    );
    let _ = std::fs::remove_file(&socket);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_a_virtio_console_the_channel_is_off_and_guests_run() {
    let mut s = boot(None);
    s.expect_all(&["vm0 | vm0: tick", "vm1 | vm1: tick"], TICKS)
        .unwrap();
    assert!(
        !s.transcript().iter().any(|l| l.contains("(mgmt) killed")),
        "{:?}",
        s.transcript()
    );
}

/// Debian's Linux (the default scenario) at the host CLI's console: a
/// line typed into `mica console linux` runs in the guest's busybox shell
/// (its UART receive path and interrupt), and the answer comes back; with
/// `--hvc` a line reaches a shell started on `/dev/hvc0` (the virtio
/// console) instead.
#[test]
#[ignore = "needs QEMU, the built kernel, the mica CLI and `cargo xtask guests`: run by `cargo xtask test`"]
fn mica_console_is_interactive_with_the_linux_shell() {
    let socket = socket_path("linux");
    let mut s = boot_image("MICA_BOOT_IMAGE_RISCV64_LINUX", Some(&socket), None);
    s.expect("mgmt: management channel on the virtio console", BOOT)
        .unwrap();
    s.expect("linux | mica-linux: init ready", Duration::from_secs(300))
        .unwrap();
    let mut console = Command::new(env("MICA_CLI"));
    console
        .arg("--socket")
        .arg(&socket)
        .args(["--timeout", "10", "console", "linux"]);
    let mut c = Session::spawn_with_stdin(console).unwrap();
    // The shell computes the answer: only a line it ran prints it.
    c.send("echo mica-cli-$((6*7))\n").unwrap();
    let answer = c.expect("mica-cli-42", Duration::from_secs(60)).unwrap();
    assert!(!answer.contains("$(("), "{answer:?}");
    // A second shell on /dev/hvc0 (Mica's virtio console), marked by W.
    c.send("setsid sh -c 'export W=hvc0; exec sh </dev/hvc0 >/dev/hvc0 2>&1' &\n")
        .unwrap();
    c.expect("exec sh </dev/hvc0", Duration::from_secs(60))
        .unwrap();
    c.send("\x1d").unwrap();
    let status = c.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", c.transcript());
    // The hypervisor console shows the same line.
    s.expect("linux | mica-cli-42", Duration::from_secs(30))
        .unwrap();
    // `--hvc` types at that shell: only it knows W.
    let mut hvc = Command::new(env("MICA_CLI"));
    hvc.arg("--socket")
        .arg(&socket)
        .args(["--timeout", "10", "console", "linux", "--hvc"]);
    let mut c = Session::spawn_with_stdin(hvc).unwrap();
    c.expect(
        "console attached to linux's virtio console (hvc0)",
        Duration::from_secs(30),
    )
    .unwrap();
    c.send("echo on-$W-$((6*7))\n").unwrap();
    c.expect("on-hvc0-42", Duration::from_secs(60)).unwrap();
    c.send("\x1d").unwrap();
    let status = c.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", c.transcript());
    s.expect("linux | on-hvc0-42", Duration::from_secs(30))
        .unwrap();
    let _ = std::fs::remove_file(&socket);
}

/// `mica` without `--socket`, in an environment whose only say about the
/// socket is `vars` (a temporary runtime directory, never the user's).
fn mica_default(vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = Command::new(env("MICA_CLI"));
    command
        .env_remove("MICA_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("HOME");
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command
        .args(["--timeout", "10"])
        .args(args)
        .output()
        .unwrap();
    println!(
        "mica {args:?} with {vars:?}: {:?}\nstdout: {}stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A directory of this test run that no other run uses.
fn run_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mica-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The default socket path (`$XDG_RUNTIME_DIR/mica/mgmt.sock`, where
/// `cargo xtask qemu` opens it) reaches the hypervisor with no `--socket`;
/// `MICA_SOCKET` names another; nothing listening is an error that names
/// the path it tried.
#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn mica_without_socket_uses_the_default_path() {
    let runtime = run_dir("xdg");
    let socket = runtime.join("mica").join("mgmt.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    // QEMU runs while the session lives.
    let _session = boot(Some(&socket));

    let list = mica_default(&[("XDG_RUNTIME_DIR", &runtime)], &["list"]);
    assert_eq!(list.status.code(), Some(0));
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("vm0 ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("vm1 ")), "{text}");

    let elsewhere = run_dir("empty");
    let named = mica_default(
        &[("XDG_RUNTIME_DIR", &elsewhere), ("MICA_SOCKET", &socket)],
        &["info", "vm1"],
    );
    assert_eq!(named.status.code(), Some(0));

    let nothing = mica_default(&[("XDG_RUNTIME_DIR", &elsewhere)], &["list"]);
    assert_eq!(nothing.status.code(), Some(3));
    let tried = elsewhere.join("mica").join("mgmt.sock");
    assert_eq!(
        String::from_utf8_lossy(&nothing.stderr),
        format!(
            "error: cannot reach the hypervisor at {}: No such file or directory (os error 2) \
             (the default management socket: is Mica running? cargo xtask qemu opens it there; \
             --socket SOCKET or MICA_SOCKET names another)\n",
            tried.display()
        )
    );
    let _ = std::fs::remove_dir_all(&runtime);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

/// `mica events` (text and `--json`) as a session: its lines as they come.
fn follow_events(socket: &Path, json: bool) -> Session {
    let mut command = Command::new(env("MICA_CLI"));
    command
        .arg("--socket")
        .arg(socket)
        .args(["--timeout", "10"]);
    if json {
        command.arg("--json");
    }
    command.arg("events");
    let mut s = Session::spawn(command).unwrap();
    // From this line on every change is seen.
    s.expect("following VM events: Ctrl-C stops", BOOT).unwrap();
    s
}

/// Ctrl-C ends `mica events` with status 0.
fn interrupt(mut s: Session) {
    let kill = Command::new("kill")
        .args(["-INT", &s.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = s.wait_exit(TICKS).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

/// `mica events` follows what the operator does and what guests do on
/// their own: a create, start and destroy, a guest that powers itself off
/// and one that Mica stops for a fault, with why, in text and in JSON.
#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn mica_events_follows_vm_state_changes() {
    let socket = socket_path("events");
    let mut s = boot(Some(&socket));
    let mut text = follow_events(&socket, false);
    let mut json = follow_events(&socket, true);
    let create = &["create", "ev", "--image", "hello", "--mem", "16"];
    assert_eq!(mica(&socket, create).status.code(), Some(0));
    assert_eq!(mica(&socket, &["start", "ev"]).status.code(), Some(0));
    s.expect("ev | hello from ev", TICKS).unwrap();
    assert_eq!(mica(&socket, &["destroy", "ev"]).status.code(), Some(0));
    for (name, image) in [("offev", "ender"), ("crashev", "ender")] {
        let create = &["create", name, "--image", image, "--mem", "16"];
        assert_eq!(mica(&socket, create).status.code(), Some(0));
        assert_eq!(mica(&socket, &["start", name]).status.code(), Some(0));
    }

    // Each line: the sequence number, the VM, what happened. ev's come in
    // order; offev and crashev run at once (on two harts), so their ends
    // come in either order.
    let text_lines = [
        " ev created",
        " ev started",
        " ev destroyed by the operator",
        " offev powered off by the guest",
        " crashev stopped by Mica: instruction guest page fault at 0x1000, no RAM or device there",
    ];
    for what in &text_lines[..3] {
        text.expect(what, TICKS).unwrap();
    }
    text.expect_all(&text_lines[3..], TICKS).unwrap();
    for what in text_lines {
        let line = text.transcript().iter().find(|l| l.contains(what)).unwrap();
        let (seq, rest) = line.split_once(' ').unwrap();
        assert!(seq.parse::<u64>().is_ok(), "{line:?}");
        assert!(
            what.starts_with(' ') && rest.starts_with(&what[1..]),
            "{line:?}"
        );
    }
    let json_lines = [
        r#""vm":"ev","event":"created","state":"created"}"#,
        r#""vm":"ev","event":"started","state":"started"}"#,
        r#""vm":"ev","event":"destroyed","state":"powered-off","exit":{"kind":"destroyed","detail":"destroyed by the operator"},"uptime_ms":null}"#,
        r#""vm":"offev","event":"powered_off","state":"powered-off","exit":{"kind":"powered_off","detail":"powered off by the guest","reason":0},"uptime_ms":"#,
        r#""vm":"crashev","event":"stopped","state":"powered-off","exit":{"kind":"stopped","detail":"stopped by Mica: instruction guest page fault at 0x1000, no RAM or device there"#,
    ];
    for what in &json_lines[..3] {
        json.expect(what, TICKS).unwrap();
    }
    json.expect_all(&json_lines[3..], TICKS).unwrap();
    for what in json_lines {
        let line = json.transcript().iter().find(|l| l.contains(what)).unwrap();
        assert!(line.starts_with("{\"seq\":"), "{line:?}");
        assert!(line.ends_with('}'), "{line:?}");
    }
    interrupt(text);
    interrupt(json);
    let _ = std::fs::remove_file(&socket);
}

/// `mica console NAME` in a terminal (a pty, from `script`): the terminal
/// is raw while attached (typed text is not echoed by it, it goes to the
/// guest), Ctrl-] detaches at once with stdin still open, and the
/// terminal's settings afterwards are the ones it had before.
#[test]
#[ignore = "needs QEMU, the built kernel, the mica CLI and script(1): run by `cargo xtask test`"]
fn mica_console_in_a_terminal_attaches_and_detaches_restoring_it() {
    let socket = socket_path("pty");
    let mut s = boot(Some(&socket));
    let create = &["create", "tty", "--image", "hello", "--mem", "16"];
    assert_eq!(mica(&socket, create).status.code(), Some(0));
    assert_eq!(mica(&socket, &["start", "tty"]).status.code(), Some(0));
    s.expect("tty | hello from tty", TICKS).unwrap();

    let inner = format!(
        "echo before=$(stty -g); {} --socket {} --timeout 10 console tty; \
         echo mica-exit=$?; echo after=$(stty -g)",
        env("MICA_CLI"),
        socket.display()
    );
    let mut script = Command::new("script");
    script.args([
        "--quiet",
        "--flush",
        "--return",
        "--command",
        &inner,
        "/dev/null",
    ]);
    let mut c = Session::spawn_with_stdin(script).unwrap();
    let before = c.expect("before=", TICKS).unwrap();
    c.expect("console attached to tty: Ctrl-] detaches", TICKS)
        .unwrap();
    c.expect("tty: tick", TICKS).unwrap();
    let attached = c.position();
    c.send("not-echoed-by-the-terminal").unwrap();
    c.send("\x1d").unwrap();
    c.expect("console detached", TICKS).unwrap();
    assert!(
        !c.transcript()[attached..]
            .iter()
            .any(|l| l.contains("not-echoed-by-the-terminal")),
        "the terminal echoed typed text: it was not raw {:?}",
        c.transcript()
    );
    c.expect("mica-exit=0", TICKS).unwrap();
    let after = c.expect("after=", TICKS).unwrap();
    assert_eq!(
        before.trim_start_matches("before="),
        after.trim_start_matches("after="),
        "the terminal's settings are restored"
    );
    let status = c.wait_exit(TICKS).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", c.transcript());
    let _ = std::fs::remove_file(&socket);
}

/// `mica events` goes on across a vm-manager that dies and is restarted:
/// it says so, and shows the restarted one's changes.
#[test]
#[ignore = "needs QEMU, the built kernel and the mica CLI: run by `cargo xtask test`"]
fn mica_events_goes_on_across_a_restarted_vm_manager() {
    let socket = socket_path("restart");
    // The vm-manager is killed once, 8 s after the services started.
    let mut s = boot_image(
        "MICA_BOOT_IMAGE_RISCV64",
        Some(&socket),
        Some("mica.chaos=vm-manager@8000x1"),
    );
    started_with_channel(&mut s, true);
    let mut text = follow_events(&socket, false);
    let mut json = follow_events(&socket, true);
    s.expect("(vm-manager) killed by fault injection", BOOT)
        .unwrap();
    s.expect_all(
        &["vm-manager: vm0 taken over", "vm-manager: vm1 taken over"],
        BOOT,
    )
    .unwrap();
    let create = &["create", "after", "--image", "hello", "--mem", "16"];
    assert_eq!(mica(&socket, create).status.code(), Some(0));
    // The notice goes to stderr and the event to stdout: the test reads
    // the two pipes apart, so their lines may arrive in either order (the
    // JSON stream below, one pipe, keeps its order).
    text.expect_all(
        &[
            "[mica: the vm-manager restarted: the events before it are lost; mica list shows the VMs as they are]",
            "0 after created",
        ],
        TICKS,
    )
    .unwrap();
    json.expect(r#"{"event":"lost","count":null}"#, TICKS)
        .unwrap();
    json.expect(
        r#"{"seq":0,"vm":"after","event":"created","state":"created"}"#,
        TICKS,
    )
    .unwrap();
    interrupt(text);
    interrupt(json);
    let _ = std::fs::remove_file(&socket);
}
