//! The kernel's `log` backend: each record becomes one `mica: ...` line on
//! the console sink the arch layer installs (warnings and errors say so).
//! It also keeps the console's partial line ([`put_partial`]: the shell's
//! prompt and the keys it echoed), so that other output starts on a fresh
//! line and the partial line is shown again after it.

use core::fmt::{self, Write};

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
