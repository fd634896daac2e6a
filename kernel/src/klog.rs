//! The kernel's `log` backend: each record becomes one `mica: ...` line on
//! the console sink the arch layer installs (warnings and errors say so).
//! It also keeps the console's partial line ([`put_partial`]: the shell's
//! prompt and the keys it echoed), so that other output starts on a fresh
//! line and the partial line is shown again after it.
//!
//! Tasks' `debug_write` text is shown as [`TaskLines`]: every line carries
//! the task's name, put there by the kernel, so no task can print a line
//! that looks like the kernel's own (`mica: ...`) or another's.

use core::fmt::{self, Write};

use ipc::console_text::Escaped;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Writes console bytes; installed once at boot by the arch layer.
pub type Sink = fn(&str);

struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        (self.0)(s);
        Ok(())
    }
}

/// Formats one record the way the console shows it.
pub fn write_line(out: &mut impl Write, level: Level, args: fmt::Arguments<'_>) -> fmt::Result {
    let tag = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
        Level::Debug => "debug: ",
        Level::Trace => "trace: ",
    };
    writeln!(out, "mica: {tag}{args}")
}

/// A task's `debug_write` text as the console shows it, a line per
/// `\n`-separated part (a final `\n` ends the last one), each as
/// `<task name>: <part>` with the part shown by `ipc::console_text`'s rule
/// (control bytes and invalid UTF-8 as `\xNN`). The kernel writes the
/// name; the text cannot start a line or move the cursor.
pub struct TaskLines<'a> {
    /// The task's name (its boot-image entry).
    pub task: &'a str,
    /// The bytes the task wrote.
    pub text: &'a [u8],
}

impl fmt::Display for TaskLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.strip_suffix(b"\n").unwrap_or(self.text);
        for part in text.split(|&b| b == b'\n') {
            writeln!(f, "{}: {}", Escaped(self.task.as_bytes()), Escaped(part))?;
        }
        Ok(())
    }
}

struct ConsoleLogger {
    sink: spin::Once<Sink>,
    /// Keeps lines from different harts whole.
    line: spin::Mutex<()>,
}

impl Log for ConsoleLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        self.sink.is_completed()
    }

    fn log(&self, record: &Record<'_>) {
        if let Some(&sink) = self.sink.get() {
            let _line = self.line.lock();
            around_partial(sink, |out| {
                let _ = write_line(out, record.level(), *record.args());
            });
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger {
    sink: spin::Once::new(),
    line: spin::Mutex::new(()),
};

/// Routes `log` records to `sink` at `level` and above. Later calls keep
/// the first sink.
pub fn init(sink: Sink, level: LevelFilter) {
    LOGGER.sink.call_once(|| sink);
    // A second `set_logger` fails harmlessly: the same logger stays installed.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Writes formatted text straight to the sink (for the fatal paths that must
/// print exact lines, and for panics).
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(&sink) = LOGGER.sink.get() {
        around_partial(sink, |out| {
            let _ = out.write_fmt(args);
        });
    }
}

/// Longest partial line kept for showing again.
pub const PARTIAL_MAX: usize = 256;

/// The text printed since the last newline by [`put_partial`].
#[derive(Clone, Debug)]
pub struct PartialLine {
    bytes: [u8; PARTIAL_MAX],
    len: usize,
}

impl PartialLine {
    /// No partial line.
    pub const fn new() -> Self {
        PartialLine {
            bytes: [0; PARTIAL_MAX],
            len: 0,
        }
    }

    /// Follows `bytes` as a terminal would show them: a newline ends the
    /// line, a backspace takes one character back, a carriage return is
    /// ignored (the newline after it ends the line).
    pub fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => self.len = 0,
                b'\r' => {}
                0x08 => self.len = self.len.saturating_sub(1),
                _ => {
                    if let Some(slot) = self.bytes.get_mut(self.len) {
                        *slot = b;
                        self.len += 1;
                    }
                }
            }
        }
    }

    /// The text to show again (printable ASCII only is ever put here by
    /// the shell; anything else is shown as `?`).
    pub fn text(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for PartialLine {
    fn default() -> Self {
        Self::new()
    }
}

static PARTIAL: spin::Mutex<PartialLine> = spin::Mutex::new(PartialLine::new());

/// Prints `bytes` without ending the line (a prompt, echoed keys) and
/// remembers the line's text so far.
pub fn put_partial(bytes: &[u8]) {
    let Some(&sink) = LOGGER.sink.get() else {
        return;
    };
    let mut partial = PARTIAL.lock();
    write_bytes(sink, bytes);
    partial.extend(bytes);
}

fn write_bytes(sink: Sink, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        sink(chunk.valid());
        if !chunk.invalid().is_empty() {
            sink("?");
        }
    }
}

/// Runs `print` (which writes whole lines) on a fresh line when a partial
/// line is showing, and shows the partial line again after it. A panic
/// while the partial line is locked prints plainly.
fn around_partial(sink: Sink, print: impl FnOnce(&mut SinkWriter)) {
    let partial = PARTIAL.try_lock();
    let showing = partial.as_ref().is_some_and(|p| p.len > 0);
    if showing {
        sink("\n");
    }
    print(&mut SinkWriter(sink));
    if let Some(p) = partial.as_ref().filter(|_| showing) {
        write_bytes(sink, p.text());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, args: fmt::Arguments<'_>) -> String {
        let mut s = String::new();
        write_line(&mut s, level, args).unwrap();
        s
    }

    #[test]
    fn info_lines_carry_only_the_mica_prefix() {
        assert_eq!(
            line(
                Level::Info,
                format_args!("booting on {} ({} harts)", "riscv64", 2)
            ),
            "mica: booting on riscv64 (2 harts)\n"
        );
    }

    #[test]
    fn the_partial_line_follows_newlines_and_backspaces() {
        let mut p = PartialLine::new();
        p.extend(b"mica> vm lisx");
        p.extend(b"\x08 \x08t");
        assert_eq!(p.text(), b"mica> vm list");
        p.extend(b"\r\n");
        assert_eq!(p.text(), b"");
        p.extend(b"done\nmica> ");
        assert_eq!(p.text(), b"mica> ");
        p.extend(&[0x08; 10]);
        assert_eq!(p.text(), b"");
        p.extend(&[b'x'; PARTIAL_MAX + 5]);
        assert_eq!(p.text().len(), PARTIAL_MAX);
    }

    fn task(text: &[u8]) -> String {
        TaskLines {
            task: "crasher",
            text,
        }
        .to_string()
    }

    #[test]
    fn a_task_line_carries_the_task_name() {
        assert_eq!(task(b"serving devices"), "crasher: serving devices\n");
        assert_eq!(task(b""), "crasher: \n");
        assert_eq!(task(b"done\n"), "crasher: done\n");
    }

    #[test]
    fn a_task_cannot_forge_a_kernel_line() {
        let shown = task(b"ok\nmica: vm0 stopped\n\nmica: task 1 (init) killed");
        assert_eq!(
            shown,
            "crasher: ok\ncrasher: mica: vm0 stopped\ncrasher: \ncrasher: mica: task 1 (init) killed\n"
        );
        assert!(shown.lines().all(|l| l.starts_with("crasher: ")));
        // Nor overwrite its own prefix with a carriage return, or clear
        // the screen.
        assert_eq!(
            task(b"x\rmica: forged\x1b[2K\x1b[2J"),
            "crasher: x\\x0dmica: forged\\x1b[2K\\x1b[2J\n"
        );
        // Bytes that are not UTF-8 no longer hide the whole line.
        assert_eq!(task(b"bad \xff byte"), "crasher: bad \\xff byte\n");
    }

    #[test]
    fn problems_are_labelled() {
        assert_eq!(
            line(Level::Error, format_args!("bad")),
            "mica: error: bad\n"
        );
        assert_eq!(
            line(Level::Warn, format_args!("odd")),
            "mica: warning: odd\n"
        );
    }
}
