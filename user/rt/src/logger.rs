//! A `log` backend: each record becomes one `debug_write` line (cut at
//! `ipc::syscall::MAX_DEBUG_WRITE` bytes); the kernel prefixes the task name.

use core::fmt::{self, Write};

use ipc::syscall::MAX_DEBUG_WRITE;
use log::{LevelFilter, Log, Metadata, Record};

struct Line {
    bytes: [u8; MAX_DEBUG_WRITE],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_DEBUG_WRITE - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

struct DebugLog;

impl Log for DebugLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let mut line = Line {
            bytes: [0; MAX_DEBUG_WRITE],
            len: 0,
        };
        if record.level() <= log::Level::Warn {
            let _ = write!(line, "{}: ", record.level());
        }
        let _ = write!(line, "{}", record.args());
        // A line the kernel refuses cannot be reported anywhere else.
        let _ = crate::sys::debug_write(&line.bytes[..line.len]);
    }

    fn flush(&self) {}
}

static LOGGER: DebugLog = DebugLog;

/// Installs the backend (once, from `_start`).
pub fn init() {
    // Only fails if a logger is already set, which `_start` never does twice.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}
