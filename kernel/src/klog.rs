//! The kernel's `log` backend: each record becomes one `mica: ...` line on
//! the console sink the arch layer installs (warnings and errors say so).
//! It also keeps the console's partial line ([`put_partial`]: the shell's
//! prompt and the keys it echoed), so that other output starts on a fresh
//! line, by the rule of the console's [`ConsoleMode`] (`mica.console=`):
//! on a terminal the partial line is erased, the output printed and the
//! partial line drawn again below it (as readline does); on a plain stream
//! (a pipe, a log file, a test) the partial line is ended with a newline
//! and not drawn again after the output, only before the shell's next
//! bytes on it (the next echoed key): no prompt comes between asynchronous
//! lines, and a typed command still shows after its prompt.
//!
//! Tasks' `debug_write` text is shown as [`TaskLines`]: every line carries
//! the task's name, put there by the kernel, so no task can print a line
//! that looks like the kernel's own (`mica: ...`) or another's.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

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
    /// Ended by other output on a plain console, and not shown since.
    hidden: bool,
}

impl PartialLine {
    /// No partial line.
    pub const fn new() -> Self {
        PartialLine {
            bytes: [0; PARTIAL_MAX],
            len: 0,
            hidden: false,
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
    put(&mut PARTIAL.lock(), sink, bytes);
}

/// [`put_partial`] on a given partial line: a partial line hidden by other
/// output is shown again first.
fn put(partial: &mut PartialLine, sink: Sink, bytes: &[u8]) {
    if partial.hidden && !bytes.is_empty() {
        partial.hidden = false;
        write_bytes(sink, partial.text());
    }
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

/// What the console's reader is, as the boot option [`CONSOLE_OPTION`]
/// says (the kernel cannot tell; `cargo xtask qemu` passes what its stdin
/// is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// A stream that keeps every byte (the default): asynchronous output
    /// ends the partial line with a newline, and the partial line is shown
    /// again only before the shell's next bytes on it.
    Plain,
    /// A terminal: asynchronous output erases the partial line (`\r`,
    /// `ESC [ K`), and the partial line is drawn again after it.
    Tty,
}

/// The boot option naming the [`ConsoleMode`]: `mica.console=tty` or
/// `mica.console=plain`.
pub const CONSOLE_OPTION: &str = "mica.console";

impl ConsoleMode {
    /// Reads [`CONSOLE_OPTION`] from the kernel command line: `Ok(None)`
    /// without it (the last one wins), the offending word when its value is
    /// neither `tty` nor `plain`.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, &str> {
        let mut mode = None;
        for word in cmdline.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix(CONSOLE_OPTION) else {
                continue;
            };
            mode = match rest {
                "=tty" => Some(ConsoleMode::Tty),
                "=plain" => Some(ConsoleMode::Plain),
                _ if rest.is_empty() || rest.starts_with('=') => return Err(word),
                _ => continue,
            };
        }
        Ok(mode)
    }
}

static TTY: AtomicBool = AtomicBool::new(false);

/// Sets how asynchronous output meets the partial line (at boot).
pub fn set_mode(mode: ConsoleMode) {
    TTY.store(mode == ConsoleMode::Tty, Ordering::Relaxed);
}

fn mode() -> ConsoleMode {
    if TTY.load(Ordering::Relaxed) {
        ConsoleMode::Tty
    } else {
        ConsoleMode::Plain
    }
}

/// Erases the terminal line the cursor is on (carriage return, erase to
/// the end of the line).
pub const ERASE_LINE: &str = "\r\x1b[K";

/// Runs `print` (which writes whole lines) on a fresh line when a partial
/// line is showing, by `mode`'s rule. A panic while the partial line is
/// locked prints plainly.
fn around_partial(sink: Sink, print: impl FnOnce(&mut SinkWriter)) {
    let mut partial = PARTIAL.try_lock();
    around(mode(), partial.as_deref_mut(), sink, print);
}

/// [`around_partial`] on a given partial line (host-testable).
fn around(
    mode: ConsoleMode,
    partial: Option<&mut PartialLine>,
    sink: Sink,
    print: impl FnOnce(&mut SinkWriter),
) {
    let showing = partial.filter(|p| p.len > 0 && !p.hidden);
    if showing.is_some() {
        sink(match mode {
            ConsoleMode::Plain => "\n",
            ConsoleMode::Tty => ERASE_LINE,
        });
    }
    print(&mut SinkWriter(sink));
    if let Some(p) = showing {
        match mode {
            ConsoleMode::Plain => p.hidden = true,
            ConsoleMode::Tty => write_bytes(sink, p.text()),
        }
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

    std::thread_local! {
        static SHOWN: core::cell::RefCell<String> = const { core::cell::RefCell::new(String::new()) };
    }

    fn shown(text: &str) {
        SHOWN.with(|s| s.borrow_mut().push_str(text));
    }

    /// What the console shows for `typed` (the shell's prompt and keys),
    /// then a line printed by someone else, then `more` typed keys, then
    /// another line.
    fn console(mode: ConsoleMode, typed: &[u8], more: &[u8]) -> String {
        SHOWN.with(|s| s.borrow_mut().clear());
        let mut partial = PartialLine::new();
        put(&mut partial, shown, typed);
        around(mode, Some(&mut partial), shown, |out| {
            let _ = out.write_str("vm0 | tick 1\n");
        });
        put(&mut partial, shown, more);
        around(mode, Some(&mut partial), shown, |out| {
            let _ = out.write_str("vm0 | tick 2\nvm1 | tick 2\n");
        });
        SHOWN.with(|s| s.borrow().clone())
    }

    #[test]
    fn on_a_terminal_lines_go_above_the_partial_line_which_is_drawn_again() {
        assert_eq!(
            console(ConsoleMode::Tty, b"mica> vm li", b"st"),
            "mica> vm li\r\x1b[Kvm0 | tick 1\nmica> vm list\r\x1b[Kvm0 | tick 2\nvm1 | tick 2\nmica> vm list"
        );
    }

    #[test]
    fn on_a_plain_stream_the_partial_line_is_ended_and_shown_again_only_for_more_keys() {
        let shown = console(ConsoleMode::Plain, b"mica> ", b"");
        assert_eq!(shown, "mica> \nvm0 | tick 1\nvm0 | tick 2\nvm1 | tick 2\n");
        assert_eq!(shown.matches("mica> ").count(), 1);
        // Keys typed after the line show after the prompt again, on a
        // line that the next output ends in turn.
        assert_eq!(
            console(ConsoleMode::Plain, b"mica> vm", b" list"),
            "mica> vm\nvm0 | tick 1\nmica> vm list\nvm0 | tick 2\nvm1 | tick 2\n"
        );
        // A backspace after the line takes back from the line shown again.
        assert_eq!(
            console(ConsoleMode::Plain, b"mica> vm", b"\x08 \x08"),
            "mica> vm\nvm0 | tick 1\nmica> vm\x08 \x08\nvm0 | tick 2\nvm1 | tick 2\n"
        );
    }

    #[test]
    fn without_a_partial_line_output_is_printed_as_it_is() {
        for mode in [ConsoleMode::Plain, ConsoleMode::Tty] {
            assert_eq!(
                console(mode, b"", b""),
                "vm0 | tick 1\nvm0 | tick 2\nvm1 | tick 2\n"
            );
        }
        // A partial line taken back to nothing is not showing.
        assert_eq!(
            console(ConsoleMode::Tty, b"x\x08", b""),
            "x\x08vm0 | tick 1\nvm0 | tick 2\nvm1 | tick 2\n"
        );
    }

    #[test]
    fn the_console_mode_comes_from_the_command_line() {
        assert_eq!(ConsoleMode::from_cmdline(""), Ok(None));
        assert_eq!(
            ConsoleMode::from_cmdline("mica.chaos=ioreq@100 mica.console=tty"),
            Ok(Some(ConsoleMode::Tty))
        );
        assert_eq!(
            ConsoleMode::from_cmdline("mica.console=tty mica.console=plain"),
            Ok(Some(ConsoleMode::Plain))
        );
        assert_eq!(
            ConsoleMode::from_cmdline("mica.console=vt100"),
            Err("mica.console=vt100")
        );
        assert_eq!(
            ConsoleMode::from_cmdline("mica.console"),
            Err("mica.console")
        );
        // Another option that only starts the same is not this one.
        assert_eq!(ConsoleMode::from_cmdline("mica.consoles=2"), Ok(None));
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
