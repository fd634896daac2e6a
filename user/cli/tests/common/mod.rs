//! A fake hypervisor on a temporary Unix socket (a real `VmManager` over a
//! null platform, behind the real frame decoder and server step), and a
//! runner for the real `mica` binary.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test helpers may panic; each test file uses a part"
)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use ipc::vm::Response;
use mica_mgmt::FrameDecoder;
use mica_mgmt::frame::{FrameBuf, MAX_FRAME};
use mica_mgmt::serve::answer;
use mica_mgmt::testing::{FakeManager, manager, manager_with_images};

/// How the fake answers.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Like the hypervisor: the vm-manager answers.
    Serve,
    /// Speaks protocol version 10: answers every frame with its version
    /// notice.
    Version10,
    /// Reads and never answers.
    Silent,
    /// Answers every frame with noise that is not a frame.
    Garbage,
    /// Answers every request with `Ok`, whatever it asked.
    AlwaysOk,
    /// Closes the connection at the first frame.
    Hangup,
}

/// A fake hypervisor listening on a fresh socket; it serves every
/// connection in turn, all on one vm-manager.
pub struct Fake {
    pub socket: PathBuf,
    pub manager: Arc<Mutex<FakeManager>>,
    dir: PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh, empty directory for this test.
pub fn temp_dir() -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mica-cli-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Fake {
    pub fn start(behaviour: Behaviour) -> Fake {
        Fake::over(behaviour, manager())
    }

    /// Serves a boot image of `mica_mgmt::testing::example_images`, and
    /// no default image for a create.
    pub fn with_images() -> Fake {
        Fake::over(Behaviour::Serve, manager_with_images())
    }

    fn over(behaviour: Behaviour, manager: FakeManager) -> Fake {
        let dir = temp_dir();
        let socket = dir.join("mgmt.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let manager = Arc::new(Mutex::new(manager));
        let shared = Arc::clone(&manager);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                serve(stream, behaviour, &shared);
            }
        });
        Fake {
            socket,
            manager,
            dir,
        }
    }
}

fn serve(mut stream: UnixStream, behaviour: Behaviour, manager: &Mutex<FakeManager>) {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 256];
    let mut out: FrameBuf = [0; MAX_FRAME];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            let Some(received) = decoder.push(byte) else {
                continue;
            };
            let reply: Vec<u8> = match behaviour {
                Behaviour::Serve => {
                    answer(received, |r| manager.lock().unwrap().handle(r), &mut out)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default()
                }
                Behaviour::Version10 => vec![0x02, 0x0a, 0x00],
                Behaviour::Silent => Vec::new(),
                Behaviour::Garbage => vec![0x05, 0x11, 0x00],
                Behaviour::AlwaysOk => answer(received, |_| Response::Ok, &mut out)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
                Behaviour::Hangup => return,
            };
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

/// What a run of `mica` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `mica` binary with `args`.
pub fn mica(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `mica --socket SOCKET args...`.
pub fn mica_at(socket: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--socket", socket.to_str().unwrap()];
    all.extend(args);
    mica(&all)
}

/// Runs `mica --socket SOCKET args...` with `input` as its stdin (a pipe).
pub fn mica_with_input(socket: &Path, args: &[&str], input: &[u8]) -> Run {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mica"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A `mica` that refuses (and exits) before reading its input closes the
    // pipe: what it would have read does not matter then.
    match child.stdin.take().unwrap().write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}
