//! One run of the RISC-V bench guest (`tests/guests/bench`), part of
//! `cargo xtask bench`: under Mica (scenario `bench`) and natively (the
//! same ELF booted by QEMU's OpenSBI, which enters it at 0x8020_0000 as
//! Mica does), both on QEMU virt with `-icount shift=0`.
//!
//! The guest prints its figures (instructions and guest time per null SBI
//! call and per 16550 LSR read, the worst idle gap of one read), sleeps
//! after `bench: trace start` while the host switches QEMU's exec trace on
//! through the monitor (under Mica: `log in_asm,exec,nochain`, then `log
//! none` at `bench: trace stop`; `bench_trace` reads it), then writes 64
//! KiB through the 16550 between `bench: out start` and `bench: out end`:
//! the host times that on its own clock, from the start marker's arrival
//! to the last line's, and checks every line arrived intact.
//!
//! Wall time: `-icount shift=0` keeps QEMU's default `sleep=on`, so time a
//! machine spends idle (every hart waiting) passes in real time, as it
//! does for a user; the busy parts run as fast as QEMU emulates.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mica_tests::Session;

use crate::bench_trace::{self, Breakdown, TaskText};
use crate::cmd::workspace_root;

/// The per-operation figures the guest prints first, in its order.
pub const FIGURES: [&str; 6] = [
    "timebase_hz",
    "null_sbi_call",
    "null_sbi_call_ns",
    "mmio_uart_roundtrip",
    "mmio_uart_roundtrip_ns",
    "mmio_uart_max_idle_ns",
];
/// LSR reads the guest does in the traced window (its `TRACE_ROUNDS`).
const TRACE_ROUNDS: usize = 20;
/// The sustained output: lines, and bytes per line with its `\n`.
pub const OUT_LINES: usize = 1024;
pub const LINE_LEN: usize = 64;
/// The U-mode tasks of a boot image, by file name `mica-<name>` (the trace
/// tells them apart by their text; `ioreq` and `devices` are the stages).
const TASKS: [&str; 6] = [
    "init",
    "ioreq",
    "devices",
    "vm-manager",
    "shell",
    "mgmt-task",
];

/// Mica's boot, the figures, and (slowest) the sustained output under Mica.
const FIGURE_WAIT: Duration = Duration::from_secs(300);
const OUTPUT_WAIT: Duration = Duration::from_secs(600);
const MONITOR_WAIT: Duration = Duration::from_secs(30);
/// The longest wait for the next output line (under Mica about 100 come
/// per second).
const LINE_WAIT: Duration = Duration::from_secs(60);

/// What the sustained output took: guest instructions and ns, host wall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    pub bytes: u64,
    pub instructions: u64,
    pub ns: u64,
    pub wall: Duration,
}

/// What one boot of the bench guest measured.
#[derive(Debug)]
pub struct Run {
    /// [`FIGURES`], with their values.
    pub figures: Vec<(&'static str, u64)>,
    pub output: Output,
}

impl Run {
    /// The figure `key` (one of [`FIGURES`]).
    pub fn figure(&self, key: &str) -> u64 {
        self.figures
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v)
    }
}

/// QEMU virt, one hart, counting instructions, the console on stdout.
fn qemu() -> Command {
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "256M", "-icount", "shift=0", "-serial", "stdio"]);
    qemu
}

/// Boots Mica's `kernel` with the `bench` `boot_image` and measures; the
/// stage breakdown comes from the trace window (an error says why there is
/// none, while the other figures stand).
pub fn under_mica(
    kernel: &Path,
    boot_image: &Path,
) -> Result<(Run, Result<Breakdown, String>), String> {
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = dir.join("riscv64-trace.log");
    let socket = dir.join("riscv64-monitor.sock");
    for stale in [&log, &socket] {
        let _ = std::fs::remove_file(stale);
    }
    let mut qemu = qemu();
    qemu.arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .args(["-d", "in_asm", "-D"])
        .arg(&log)
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(boot_image);
    println!("bench: the bench guest under Mica");
    let mut session = Session::spawn(qemu)?;
    let figures = read_figures(&mut session)?;
    session.expect("bench: trace start", FIGURE_WAIT)?;
    let mut monitor = Monitor::connect(&socket)?;
    monitor.command("log in_asm,exec,nochain")?;
    session.expect("bench: trace stop", OUTPUT_WAIT)?;
    monitor.command("log none")?;
    let output = read_output(&mut session)?;
    session.expect("bench: done", FIGURE_WAIT)?;
    drop(session);
    let _ = std::fs::remove_file(&socket);
    let breakdown = breakdown(&log, boot_image).and_then(|b| {
        if b.typical < TRACE_ROUNDS {
            return Err(format!(
                "only {} round trips of one total in the trace, fewer than the guest's \
                 {TRACE_ROUNDS} LSR reads: the trace was switched on late",
                b.typical
            ));
        }
        Ok(b)
    });
    Ok((Run { figures, output }, breakdown))
}

/// Boots the bench guest's `elf` directly on QEMU with OpenSBI.
pub fn native(elf: &Path) -> Result<Run, String> {
    let mut qemu = qemu();
    qemu.args(["-monitor", "none", "-kernel"]).arg(elf);
    println!("bench: the bench guest on QEMU without Mica");
    let mut session = Session::spawn(qemu)?;
    let figures = read_figures(&mut session)?;
    session.expect("bench: trace stop", FIGURE_WAIT)?;
    let output = read_output(&mut session)?;
    session.expect("bench: done", FIGURE_WAIT)?;
    Ok(Run { figures, output })
}

/// The stages of a round trip from the QEMU log `log` of a Mica run whose
/// tasks are beside `boot_image` (`mica-<task>`, as packed into it).
fn breakdown(log: &Path, boot_image: &Path) -> Result<Breakdown, String> {
    let dir = boot_image.parent().unwrap_or(Path::new("."));
    let tasks = TASKS
        .iter()
        .map(|name| {
            let path = dir.join(format!("mica-{name}"));
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            TaskText::from_elf(name, &bytes)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let file =
        std::fs::File::open(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    bench_trace::breakdown(BufReader::new(file), &tasks)
        .map_err(|e| format!("{}: {e}", log.display()))
}

/// Reads [`FIGURES`] in order.
fn read_figures(session: &mut Session) -> Result<Vec<(&'static str, u64)>, String> {
    FIGURES
        .iter()
        .map(|&key| Ok((key, read_number(session, key, FIGURE_WAIT)?)))
        .collect()
}

/// The number in the next `bench: <key> N` line.
fn read_number(session: &mut Session, key: &str, wait: Duration) -> Result<u64, String> {
    let line = session.expect(&format!("bench: {key} "), wait)?;
    crate::bench::parse_figure(&line, key)
        .ok_or_else(|| format!("cannot read the figure in {line:?}"))
}

/// The sustained output, timed on the host from the arrival of `bench: out
/// start` to that of the last line; every line is checked.
fn read_output(session: &mut Session) -> Result<Output, String> {
    session.expect("bench: out start", FIGURE_WAIT)?;
    let start = Instant::now();
    // Line by line, so each wait looks at new lines only.
    let mut received = Vec::with_capacity(OUT_LINES);
    for _ in 0..OUT_LINES {
        let line = session.expect("bench-out ", LINE_WAIT)?;
        received.push(line);
    }
    let wall = start.elapsed();
    let received: Vec<&str> = received
        .iter()
        .filter_map(|line| line.find("bench-out ").map(|at| &line[at..]))
        .collect();
    check_lines(&received)?;
    session.expect("bench: out end", FIGURE_WAIT)?;
    Ok(Output {
        bytes: read_number(session, "out_bytes", FIGURE_WAIT)?,
        instructions: read_number(session, "out_instructions", FIGURE_WAIT)?,
        ns: read_number(session, "out_ns", FIGURE_WAIT)?,
        wall,
    })
}

/// Line `n` of the sustained output, without its `\n`, as the guest
/// writes it.
fn output_line(n: usize) -> String {
    const FILL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut line = format!("bench-out {n:04} ");
    let fill = FILL.chars().cycle().take(LINE_LEN - 1 - line.len());
    line.extend(fill);
    line
}

/// Every output line arrived, once, in order, intact.
fn check_lines(received: &[&str]) -> Result<(), String> {
    if received.len() != OUT_LINES {
        return Err(format!(
            "the sustained output arrived as {} lines, not {OUT_LINES}",
            received.len()
        ));
    }
    for (n, line) in received.iter().enumerate() {
        let expected = output_line(n);
        if *line != expected {
            return Err(format!(
                "sustained output line {n} arrived as {line:?}, not {expected:?}"
            ));
        }
    }
    Ok(())
}

/// QEMU's human monitor on a unix socket.
struct Monitor {
    stream: UnixStream,
}

impl Monitor {
    /// Connects to `socket` and reads up to the first prompt.
    fn connect(socket: &Path) -> Result<Monitor, String> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("cannot connect to QEMU's monitor {}: {e}", socket.display()))?;
        stream
            .set_read_timeout(Some(MONITOR_WAIT))
            .map_err(|e| format!("monitor: {e}"))?;
        let mut monitor = Monitor { stream };
        monitor.prompt()?;
        Ok(monitor)
    }

    /// Runs `command` and waits for the next prompt; returns what was
    /// printed (QEMU echoes the line with terminal escapes).
    fn command(&mut self, command: &str) -> Result<String, String> {
        self.stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("monitor: cannot send {command:?}: {e}"))?;
        self.prompt()
    }

    fn prompt(&mut self) -> Result<String, String> {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while !text.ends_with(b"(qemu) ") {
            let n = self
                .stream
                .read(&mut buf)
                .map_err(|e| format!("monitor: no prompt: {e}"))?;
            if n == 0 {
                return Err("monitor: QEMU closed the connection".into());
            }
            text.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{LINE_LEN, OUT_LINES, check_lines, output_line, read_output};
    use mica_tests::Session;
    use std::process::Command;

    #[test]
    fn output_lines_are_the_guests() {
        let line = output_line(7);
        assert_eq!(line.len(), LINE_LEN - 1);
        assert_eq!(
            line,
            "bench-out 0007 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
        );
        assert!(output_line(1023).starts_with("bench-out 1023 "));
    }

    #[test]
    fn a_lost_or_damaged_line_is_an_error() {
        let lines: Vec<String> = (0..OUT_LINES).map(output_line).collect();
        let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(check_lines(&refs), Ok(()));
        refs.remove(5);
        let error = check_lines(&refs).unwrap_err();
        assert!(error.contains("1023 lines"), "{error}");
        let damaged = lines[5].replace('a', "b");
        let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        refs[5] = &damaged;
        let error = check_lines(&refs).unwrap_err();
        assert!(error.contains("line 5 arrived"), "{error}");
    }

    #[test]
    fn reads_the_output_figures_behind_a_vm_prefix() {
        let mut script = String::from("echo 'vm0 | bench: out start'\n");
        for n in 0..OUT_LINES {
            script.push_str(&format!("echo 'vm0 | {}'\n", output_line(n)));
        }
        script.push_str(
            "echo 'vm0 | bench: out end'; echo 'vm0 | bench: out_bytes 65536'\n\
             echo 'vm0 | bench: out_instructions 1000'; echo 'vm0 | bench: out_ns 2000'\n",
        );
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        let output = read_output(&mut Session::spawn(command).unwrap()).unwrap();
        assert_eq!(
            (output.bytes, output.instructions, output.ns),
            (65536, 1000, 2000)
        );
    }
}
