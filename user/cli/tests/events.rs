//! `mica events` against the fake hypervisor: it follows the VMs' state
//! changes as they happen (text and `--json`), `--all` shows what was
//! kept, Ctrl-C ends it with status 0; and `mica` without `--socket`
//! finds the socket at its default path, or says where it looked.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use common::{Behaviour, Fake, mica_at, temp_dir};

/// How long a line may take to show.
const WAIT: Duration = Duration::from_secs(10);

/// A running `mica events`, its stdout read line by line.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(socket: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mica"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first answer came once "following" is said: from then on
        // every change is seen.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert_eq!(line, "following VM events: Ctrl-C stops\n");
        let lines = forward(child.stdout.take().unwrap());
        Follower { child, lines }
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no event line within {WAIT:?}: {e}"))
    }

    /// Ctrl-C: it ends with status 0.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

fn forward(stdout: ChildStdout) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn ok(socket: &Path, args: &[&str]) {
    let run = mica_at(socket, args);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn events_follow_the_changes_as_they_happen() {
    let fake = Fake::start(Behaviour::Serve);
    ok(&fake.socket, &["create", "before"]);
    let text = Follower::start(&fake.socket, &["events"]);
    let json = Follower::start(&fake.socket, &["--json", "events"]);
    ok(&fake.socket, &["create", "web"]);
    ok(&fake.socket, &["start", "web"]);
    ok(&fake.socket, &["destroy", "web"]);
    for line in [
        "1 web created",
        "2 web started",
        "3 web destroyed by the operator",
    ] {
        assert_eq!(text.next(), line);
    }
    assert_eq!(
        json.next(),
        r#"{"seq":1,"vm":"web","event":"created","state":"created"}"#
    );
    assert_eq!(
        json.next(),
        r#"{"seq":2,"vm":"web","event":"started","state":"started"}"#
    );
    assert_eq!(
        json.next(),
        concat!(
            r#"{"seq":3,"vm":"web","event":"destroyed","state":"powered-off","#,
            r#""exit":{"kind":"destroyed","detail":"destroyed by the operator"},"uptime_ms":null}"#
        )
    );
    text.interrupt();
    json.interrupt();
    let all = Follower::start(&fake.socket, &["events", "--all"]);
    assert_eq!(all.next(), "0 before created", "what was kept comes first");
    all.interrupt();
}

#[test]
fn events_take_only_all() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_at(&fake.socket, &["events", "web"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: events does not take \"web\" (usage: mica events [--all])\n"
        )
    );
}

/// Runs `mica args...` without `--socket`, in an environment of only
/// `vars` (and PATH).
fn mica_env(vars: &[(&str, &Path)], args: &[&str]) -> common::Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mica"));
    command.env_clear().args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    common::Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn without_socket_the_default_path_is_used_or_named() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_env(&[("MICA_SOCKET", &fake.socket)], &["list"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("NAME"), "{run:?}");

    let dir = temp_dir();
    let run = mica_env(&[("XDG_RUNTIME_DIR", &dir)], &["list"]);
    assert_eq!(run.code, 3);
    let path = dir.join("mica").join("mgmt.sock");
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot reach the hypervisor at {}: No such file or directory (os error 2) \
             (the default management socket: is Mica running? cargo xtask qemu opens it there; \
             --socket SOCKET or MICA_SOCKET names another)\n",
            path.display()
        )
    );
    let run = mica_env(&[("HOME", &dir)], &["events"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains(&format!(
            "{}: No such file",
            dir.join(".cache/mica/mgmt.sock").display()
        )),
        "{run:?}"
    );

    let run = mica_env(&[], &["list"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: no default management socket: none of MICA_SOCKET, XDG_RUNTIME_DIR and HOME \
             is set to an absolute path; name the socket with --socket SOCKET or MICA_SOCKET\n"
        )
    );
}
