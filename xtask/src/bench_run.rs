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
//! KiB through the 16550 twice: byte by byte (LSR polled before every THR
//! write) between `bench: out start` and `bench: out end`, then with the
//! FIFOs on, up to 16 bytes per LSR.THRE, between `bench: fifo start` and
//! `bench: fifo end`. The host times each run on its own clock, from the
//! start marker's arrival to the last line's, and checks every line
//! arrived intact.
//!
//! Wall time: `-icount shift=0` keeps QEMU's default `sleep=on`, so time a
//! machine spends idle (every hart waiting) passes in real time, as it
//! does for a user; the busy parts run as fast as QEMU emulates.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mica_tests::Session;

use crate::bench_trace::{self, Breakdown, TaskText};
use crate::cmd::workspace_root;

/// The per-operation figures the guest prints first, in its order; from
/// `harts` on, the cross-hart ones (its VM needs 2 harts).
pub const FIGURES: [&str; 19] = [
    "timebase_hz",
    "null_sbi_call",
    "null_sbi_call_ns",
    "mmio_uart_roundtrip",
    "mmio_uart_roundtrip_ns",
    "mmio_uart_max_idle_ns",
    "mmio_uart_posted_write",
    "harts",
    "ipi_roundtrip",
    "ipi_roundtrip_ns",
    "ipi_self",
    "ipi_self_ns",
    "rfence_sfence_vma_other",
    "rfence_sfence_vma_other_ns",
    "rfence_sfence_vma_both",
    "rfence_sfence_vma_both_ns",
    "rfence_fence_i_other",
    "rfence_fence_i_other_ns",
    "partner_stopped",
];
/// Harts the guest needs for the cross-hart figures: the bench VM has 2
/// vCPUs (configs/bench.toml), the native run 2 harts (`-smp 2`).
const GUEST_HARTS: usize = 2;
/// Host harts (QEMU `-smp`) of the full run under Mica, and of the second
/// run that takes only [`FIGURES`] (`cpu_figures`).
pub const MICA_CPUS: usize = 1;
pub const MICA_MORE_CPUS: usize = 4;
/// LSR reads the guest does in the traced window (its `TRACE_ROUNDS`).
const TRACE_ROUNDS: usize = 20;
/// Null SBI calls between `bench: exits start` and `bench: exits end`
/// (the guest's `EXIT_ROUNDS`).
pub const EXIT_ROUNDS: u32 = 65_536;
/// The sustained output: lines, and bytes per line with its `\n`.
pub const OUT_LINES: usize = 1024;
pub const LINE_LEN: usize = 64;
/// The U-mode tasks of a boot image, by file name `mica-<name>` (the trace
/// tells them apart by their text; `ioreq` and `devices` are the stages).
const TASKS: [&str; 7] = [
    "init",
    "ioreq",
    "devices",
    "vm-manager",
    "shell",
    "mgmt-task",
    "rng-task",
];

/// Mica's boot, the figures, and (slowest) the sustained output under Mica.
const FIGURE_WAIT: Duration = Duration::from_secs(300);
const OUTPUT_WAIT: Duration = Duration::from_secs(600);
const MONITOR_WAIT: Duration = Duration::from_secs(30);
/// The longest wait for the next output line (under Mica about 100 come
/// per second).
const LINE_WAIT: Duration = Duration::from_secs(60);

/// [`FIGURES`] with their values, as one run read them.
pub type Figures = Vec<(&'static str, u64)>;

/// What a sustained output took: guest instructions and ns, host wall.
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
    /// The sustained output byte by byte (`bench: out ...`).
    pub out: Output,
    /// The sustained output in FIFO bursts (`bench: fifo ...`).
    pub fifo: Output,
    /// Host wall time of the guest's [`EXIT_ROUNDS`] null SBI calls
    /// (`bench: exits ...`).
    pub exits: Duration,
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

/// QEMU virt with `cpus` harts, counting instructions, the console on
/// stdout.
fn qemu(cpus: usize) -> Command {
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-smp", &cpus.to_string()])
        .args(["-m", "256M", "-icount", "shift=0", "-serial", "stdio"]);
    qemu
}

/// The QEMU log and monitor socket of a traced bench run on `arch`, under
/// `target/bench/`, with what an earlier run left removed.
pub fn trace_files(arch: &str) -> Result<(PathBuf, PathBuf), String> {
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = dir.join(format!("{arch}-trace.log"));
    let socket = dir.join(format!("{arch}-monitor.sock"));
    for stale in [&log, &socket] {
        let _ = std::fs::remove_file(stale);
    }
    Ok((log, socket))
}

/// Boots Mica's `kernel` with the `bench` `boot_image` and measures; the
/// stage breakdown comes from the trace window (an error says why there is
/// none, while the other figures stand).
pub fn under_mica(
    kernel: &Path,
    boot_image: &Path,
) -> Result<(Run, Result<Breakdown, String>), String> {
    let (log, socket) = trace_files("riscv64")?;
    let mut qemu = qemu(MICA_CPUS);
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
    let exits = read_exits(&mut session)?;
    let out = read_output(&mut session, "out")?;
    let fifo = read_output(&mut session, "fifo")?;
    session.expect("bench: done", FIGURE_WAIT)?;
    drop(session);
    let _ = std::fs::remove_file(&socket);
    // The guest's reads share one total but for the odd one (the first
    // after its sleep, one the tick met); the reads of the `trace stop`
    // line carry its posted bytes and have another. Fewer than half of
    // them at the most common total means the trace missed the loop.
    let breakdown = breakdown(&log, boot_image).and_then(|b| {
        if b.typical < TRACE_ROUNDS / 2 {
            return Err(format!(
                "only {} round trips of one total in the trace, fewer than half the guest's \
                 {TRACE_ROUNDS} LSR reads: the trace was switched on late",
                b.typical
            ));
        }
        Ok(b)
    });
    let run = Run {
        figures,
        out,
        fifo,
        exits,
    };
    Ok((run, breakdown))
}

/// QEMU booting Mica's `kernel` with `boot_image` on `cpus` host harts,
/// without a monitor.
fn mica_on(kernel: &Path, boot_image: &Path, cpus: usize) -> Command {
    let mut qemu = qemu(cpus);
    qemu.args(["-monitor", "none", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(boot_image);
    qemu
}

/// Boots Mica's `kernel` with the `bench` `boot_image` on `cpus` host
/// harts and reads only [`FIGURES`] (QEMU is stopped after them).
pub fn cpu_figures(kernel: &Path, boot_image: &Path, cpus: usize) -> Result<Figures, String> {
    println!("bench: the bench guest's first figures under Mica with {cpus} host harts");
    let mut session = Session::spawn(mica_on(kernel, boot_image, cpus))?;
    read_figures(&mut session)
}

/// Boots Mica's `kernel` with the `bench-busy` `boot_image` (the bench VM
/// beside two VMs that spin) on one host hart and reads [`FIGURES`] and
/// the byte-by-byte output (`bench: out ...`); QEMU is stopped after it.
pub fn beside_busy_vms(kernel: &Path, boot_image: &Path) -> Result<(Figures, Output), String> {
    println!("bench: the bench guest under Mica beside two busy VMs on its host hart");
    let mut session = Session::spawn(mica_on(kernel, boot_image, MICA_CPUS))?;
    let figures = read_figures(&mut session)?;
    let out = read_output(&mut session, "out")?;
    Ok((figures, out))
}

/// Boots the bench guest's `elf` directly on QEMU with OpenSBI, on as many
/// harts as the guest uses under Mica.
pub fn native(elf: &Path) -> Result<Run, String> {
    let mut qemu = qemu(GUEST_HARTS);
    qemu.args(["-monitor", "none", "-kernel"]).arg(elf);
    println!("bench: the bench guest on QEMU without Mica");
    let mut session = Session::spawn(qemu)?;
    let figures = read_figures(&mut session)?;
    session.expect("bench: trace stop", FIGURE_WAIT)?;
    let exits = read_exits(&mut session)?;
    let out = read_output(&mut session, "out")?;
    let fifo = read_output(&mut session, "fifo")?;
    session.expect("bench: done", FIGURE_WAIT)?;
    Ok(Run {
        figures,
        out,
        fifo,
        exits,
    })
}

/// The stages of a round trip from the QEMU log `log` of a Mica run whose
/// tasks are beside `boot_image` (`mica-<task>`, as packed into it).
fn breakdown(log: &Path, boot_image: &Path) -> Result<Breakdown, String> {
    stage_breakdown(bench_trace::Arch::Riscv64, log, boot_image, &TASKS)
}

/// The stages of a round trip from the QEMU log `log` of a Mica run on
/// `arch` whose `tasks` are beside `boot_image` (`mica-<task>`).
pub fn stage_breakdown(
    arch: bench_trace::Arch,
    log: &Path,
    boot_image: &Path,
    tasks: &[&str],
) -> Result<Breakdown, String> {
    trace_breakdown(log, boot_image, tasks, |file, texts| {
        bench_trace::breakdown(arch, file, texts)
    })
}

/// The stages `read` finds in the trace `log` of a run whose `tasks` are
/// beside `boot_image` (`mica-<task>`), given their texts.
pub fn trace_breakdown(
    log: &Path,
    boot_image: &Path,
    tasks: &[&str],
    read: impl FnOnce(BufReader<std::fs::File>, &[TaskText]) -> Result<Breakdown, String>,
) -> Result<Breakdown, String> {
    let dir = boot_image.parent().unwrap_or(Path::new("."));
    let tasks = tasks
        .iter()
        .map(|name| TaskText::from_elf(name, &read_file(&dir.join(format!("mica-{name}")))?))
        .collect::<Result<Vec<_>, String>>()?;
    let file =
        std::fs::File::open(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    read(BufReader::new(file), &tasks).map_err(|e| format!("{}: {e}", log.display()))
}

/// The bytes of the file at `path`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads [`FIGURES`] in order; fails at once if the guest found fewer
/// than [`GUEST_HARTS`] harts (it prints no cross-hart figures then) or
/// its second hart did not stop after them.
fn read_figures(session: &mut Session) -> Result<Vec<(&'static str, u64)>, String> {
    let mut figures = Vec::with_capacity(FIGURES.len());
    for key in FIGURES {
        let value = read_number(session, key, FIGURE_WAIT)?;
        if key == "harts" && usize::try_from(value).is_ok_and(|harts| harts < GUEST_HARTS) {
            return Err(format!(
                "the bench guest found {value} hart(s), it needs {GUEST_HARTS} for the IPI \
                 and remote fence figures: give its VM `vcpus = {GUEST_HARTS}` \
                 (configs/bench.toml) and QEMU `-smp {GUEST_HARTS}` natively"
            ));
        }
        if key == "partner_stopped" && value != 1 {
            return Err(
                "the bench guest's second hart did not stop (HSM hart_stop, then \
                 hart_get_status): the figures after the cross-hart ones would run beside it"
                    .into(),
            );
        }
        figures.push((key, value));
    }
    Ok(figures)
}

/// The number in the next `bench: <key> N` line.
fn read_number(session: &mut Session, key: &str, wait: Duration) -> Result<u64, String> {
    let line = session.expect(&format!("bench: {key} "), wait)?;
    crate::bench::parse_figure(&line, key)
        .ok_or_else(|| format!("cannot read the figure in {line:?}"))
}

/// The guest's [`EXIT_ROUNDS`] null SBI calls, timed on the host from the
/// arrival of `bench: exits start` to that of `bench: exits end` (both
/// lines take the same path out, so its latency cancels: the guest sends
/// the start line's posted last byte out with an LSR read before its
/// first call, as the next line's first read sends the end line's).
fn read_exits(session: &mut Session) -> Result<Duration, String> {
    session.expect("bench: exits start", FIGURE_WAIT)?;
    let start = Instant::now();
    session.expect("bench: exits end", FIGURE_WAIT)?;
    Ok(start.elapsed())
}

/// The sustained output `run` (`out` or `fifo`, the word in its markers
/// and figure keys), timed on the host from the arrival of `bench: <run>
/// start` to that of the last line; every line is checked.
fn read_output(session: &mut Session, run: &str) -> Result<Output, String> {
    session.expect(&format!("bench: {run} start"), FIGURE_WAIT)?;
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
    check_lines(run, &received)?;
    session.expect(&format!("bench: {run} end"), FIGURE_WAIT)?;
    Ok(Output {
        bytes: read_number(session, &format!("{run}_bytes"), FIGURE_WAIT)?,
        instructions: read_number(session, &format!("{run}_instructions"), FIGURE_WAIT)?,
        ns: read_number(session, &format!("{run}_ns"), FIGURE_WAIT)?,
        wall,
    })
}

/// Line `n` of a sustained output (both runs write the same), without its
/// `\n`, as the guest writes it.
fn output_line(n: usize) -> String {
    const FILL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut line = format!("bench-out {n:04} ");
    let fill = FILL.chars().cycle().take(LINE_LEN - 1 - line.len());
    line.extend(fill);
    line
}

/// Every line of the sustained output `run` arrived, once, in order,
/// intact.
fn check_lines(run: &str, received: &[&str]) -> Result<(), String> {
    if received.len() != OUT_LINES {
        return Err(format!(
            "the sustained output `{run}` arrived as {} lines, not {OUT_LINES}",
            received.len()
        ));
    }
    for (n, line) in received.iter().enumerate() {
        let expected = output_line(n);
        if *line != expected {
            return Err(format!(
                "sustained output `{run}` line {n} arrived as {line:?}, not {expected:?}"
            ));
        }
    }
    Ok(())
}

/// QEMU's human monitor on a unix socket.
pub struct Monitor {
    stream: UnixStream,
}

impl Monitor {
    /// Connects to `socket` and reads up to the first prompt.
    pub fn connect(socket: &Path) -> Result<Monitor, String> {
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
    pub fn command(&mut self, command: &str) -> Result<String, String> {
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
    use super::{
        FIGURES, LINE_LEN, OUT_LINES, check_lines, output_line, read_figures, read_output,
    };
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
        assert_eq!(check_lines("out", &refs), Ok(()));
        refs.remove(5);
        let error = check_lines("out", &refs).unwrap_err();
        assert!(error.contains("`out` arrived as 1023 lines"), "{error}");
        let damaged = lines[5].replace('a', "b");
        let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        refs[5] = &damaged;
        let error = check_lines("fifo", &refs).unwrap_err();
        assert!(error.contains("`fifo` line 5 arrived"), "{error}");
    }

    /// A console script printing the sustained output `run` with the
    /// figures `instructions` and `ns`, behind a VM prefix.
    fn output_script(run: &str, instructions: u64, ns: u64) -> String {
        // A loop: two runs' lines, one `echo` each, would pass the shell's
        // limit on the length of one argument.
        let fill = &output_line(0)["bench-out 0000 ".len()..];
        let mut script = format!(
            "echo 'vm0 | bench: {run} start'\n\
             n=0; while [ $n -lt {OUT_LINES} ]; do\n\
             printf 'vm0 | bench-out %04d {fill}\\n' $n; n=$((n + 1)); done\n"
        );
        script.push_str(&format!(
            "echo 'vm0 | bench: {run} end'; echo 'vm0 | bench: {run}_bytes 65536'\n\
             echo 'vm0 | bench: {run}_instructions {instructions}'\n\
             echo 'vm0 | bench: {run}_ns {ns}'\n"
        ));
        script
    }

    fn console(script: &str) -> Session {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Session::spawn(command).unwrap()
    }

    #[test]
    fn reads_the_output_figures_behind_a_vm_prefix() {
        let script = output_script("out", 1000, 2000) + &output_script("fifo", 300, 400);
        let mut session = console(&script);
        let out = read_output(&mut session, "out").unwrap();
        assert_eq!((out.bytes, out.instructions, out.ns), (65536, 1000, 2000));
        let fifo = read_output(&mut session, "fifo").unwrap();
        assert_eq!((fifo.bytes, fifo.instructions, fifo.ns), (65536, 300, 400));
    }

    /// A console script printing [`FIGURES`] up to `harts` (with the value
    /// `harts`), then the rest if `all`, `partner_stopped` as `stopped`.
    fn figures_script(harts: u64, all: bool, stopped: u64) -> String {
        let mut script = String::new();
        for (n, key) in FIGURES.iter().enumerate() {
            let value = match *key {
                "harts" => harts,
                "partner_stopped" => stopped,
                _ => n as u64 * 10,
            };
            script.push_str(&format!("echo 'vm0 | bench: {key} {value}'\n"));
            if *key == "harts" && !all {
                break;
            }
        }
        script
    }

    #[test]
    fn the_cross_hart_figures_are_read_after_the_first_ones() {
        let figures = read_figures(&mut console(&figures_script(2, true, 1))).unwrap();
        assert_eq!(figures.len(), FIGURES.len());
        assert_eq!(figures[1], ("null_sbi_call", 10));
        assert_eq!(figures[7], ("harts", 2));
        assert_eq!(figures[10], ("ipi_self", 100));
        assert_eq!(figures[17], ("rfence_fence_i_other_ns", 170));
        assert_eq!(figures[18], ("partner_stopped", 1));
    }

    #[test]
    fn a_guest_with_one_hart_is_an_error_at_once() {
        let error = read_figures(&mut console(&figures_script(1, false, 1))).unwrap_err();
        assert!(error.contains("found 1 hart(s), it needs 2"), "{error}");
        assert!(error.contains("vcpus = 2"), "{error}");
    }

    #[test]
    fn a_second_hart_left_running_is_an_error() {
        let error = read_figures(&mut console(&figures_script(2, true, 0))).unwrap_err();
        assert!(error.contains("second hart did not stop"), "{error}");
    }

    #[test]
    fn the_fifo_run_is_not_read_from_the_byte_runs_lines() {
        let error =
            read_output(&mut console(&output_script("out", 1000, 2000)), "fifo").unwrap_err();
        assert!(error.contains("bench: fifo start"), "{error}");
    }
}
