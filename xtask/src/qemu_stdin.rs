//! `cargo xtask qemu` with stdin that is not a terminal (a pipe, a file):
//! the bytes are typed at Mica's shell. QEMU gets the serial port alone on
//! stdio (no monitor, so no Ctrl-A escapes), its output is passed through,
//! and stdin is only fed once the shell's prompt appeared: a byte that
//! reaches the UART before the firmware set it up is lost.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::cmd::describe;

/// What the shell prints when it is ready for a line.
const PROMPT: &[u8] = b"mica> ";

/// Runs `qemu` (without its serial options), feeding our stdin to the
/// shell; fails if QEMU exits non-zero.
pub fn run(qemu: &mut Command, what: &str) -> Result<(), String> {
    qemu.args(["-monitor", "none", "-serial", "stdio"]);
    println!("xtask: {what} (stdin to the shell): {}", describe(qemu));
    let mut child = qemu
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start {}: {e}", describe(qemu)))?;
    let (ready, prompt_seen) = mpsc::channel::<()>();
    if let Some(mut to_qemu) = child.stdin.take() {
        thread::spawn(move || {
            if prompt_seen.recv().is_ok() {
                // Ends at our EOF; dropping the pipe then closes QEMU's stdin.
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_qemu);
            }
        });
    }
    if let Some(mut from_qemu) = child.stdout.take() {
        pass_through(&mut from_qemu, &ready);
    }
    let status = child.wait().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Copies QEMU's output to ours until it ends; signals `ready` once, at the
/// first prompt.
fn pass_through(from_qemu: &mut impl Read, ready: &mpsc::Sender<()>) {
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    let mut seen = Prompt::default();
    loop {
        let n = match from_qemu.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
        if seen.feed(&buf[..n]) {
            let _ = ready.send(());
        }
    }
}

/// Finds [`PROMPT`] in a byte stream that arrives in pieces.
#[derive(Default)]
struct Prompt {
    matched: usize,
    found: bool,
}

impl Prompt {
    /// Takes the next bytes; true exactly once, when the prompt completes.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.found {
            return false;
        }
        for &b in bytes {
            self.matched = if PROMPT.get(self.matched) == Some(&b) {
                self.matched + 1
            } else if PROMPT.first() == Some(&b) {
                1
            } else {
                0
            };
            if self.matched == PROMPT.len() {
                self.found = true;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Prompt;

    #[test]
    fn the_prompt_is_found_once_even_split_across_reads() {
        let mut p = Prompt::default();
        assert!(!p.feed(b"vm-manager: vm1 started\nmmica"));
        assert!(p.feed(b"> "));
        assert!(!p.feed(b"mica> "));
    }

    #[test]
    fn other_text_is_no_prompt() {
        let mut p = Prompt::default();
        assert!(!p.feed(b"mica: boot complete\nmica>x "));
    }
}
