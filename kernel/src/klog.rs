//! The kernel's `log` backend: each record becomes one `mica: ...` line on
//! the console sink the arch layer installs (warnings and errors say so).

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
            let _ = write_line(&mut SinkWriter(sink), record.level(), *record.args());
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
        let _ = SinkWriter(sink).write_fmt(args);
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
