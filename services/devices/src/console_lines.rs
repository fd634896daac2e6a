//! Turns a VM's transmitted console bytes into whole lines prefixed with
//! the VM's name (`vm0 | hello`) for the host console, and keeps them raw
//! in the VM's [`ConsoleRing`] for clients that attach to its console.
//!
//! The prefixed lines show the guest's bytes by `ipc::console_text`'s rule
//! (control bytes, escape sequences and invalid UTF-8 as `\xNN`, the
//! backslash as `\\`, printable UTF-8 as is): a guest cannot reach the
//! operator's terminal with `ESC [ 2 J` or an OSC 52 clipboard write. The
//! ring keeps the raw bytes: `mica console NAME` shows what the guest wrote.

use heapless::Vec;
use ipc::console_text::EscapedLine;

use crate::bus::OutputSink;
use crate::console_ring::ConsoleRing;

/// The longest shown line content (after escaping) delivered in one piece;
/// a longer line is delivered in pieces of at most this size, cut between
/// a character or an escape and the next.
pub const LINE_LIMIT: usize = 160;

/// The separator between a VM's name and its output.
const SEPARATOR: &[u8] = b" | ";

/// Where finished console lines go.
pub trait ConsoleSink {
    /// One line: the VM's name, `" | "`, and the shown output, without the
    /// line ending.
    fn write_line(&mut self, line: &[u8]);
}

/// The unfinished line of one VM's console output.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: EscapedLine<LINE_LIMIT>,
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            pending: EscapedLine::new(),
        }
    }

    /// Whether part of a line (or of a character) is waiting for its end.
    pub fn has_partial_line(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Adds one output byte: `\n` ends the line, `\r` is dropped, and a
    /// full buffer is delivered as a line of its own.
    /// A byte shown as itself that fits is taken inline; any other byte
    /// out of line.
    #[inline]
    pub fn push(&mut self, byte: u8, name: &str, sink: &mut dyn ConsoleSink) {
        if !self.pending.push_plain(byte) {
            self.push_escaped(byte, name, sink);
        }
    }

    /// [`push`](Self::push) of a byte that may end, escape or fill the
    /// line.
    #[inline(never)]
    fn push_escaped(&mut self, byte: u8, name: &str, sink: &mut dyn ConsoleSink) {
        self.pending
            .push(byte, &mut |text| write_prefixed(name, text, sink));
    }

    /// Delivers the pending bytes as a line (an empty line if none).
    pub fn flush(&mut self, name: &str, sink: &mut dyn ConsoleSink) {
        self.pending
            .flush(&mut |text| write_prefixed(name, text, sink));
    }
}

/// The unfinished lines of one VM's two consoles: its serial port (the
/// UART) and its virtio console (hvc0), kept apart so that a line of one
/// never takes in bytes of the other.
#[derive(Debug, Default)]
pub struct ConsoleLines {
    /// The serial port's.
    pub serial: LineBuffer,
    /// The virtio console's.
    pub virtio: LineBuffer,
}

impl ConsoleLines {
    /// Both empty.
    pub const fn new() -> Self {
        Self {
            serial: LineBuffer::new(),
            virtio: LineBuffer::new(),
        }
    }

    /// Delivers each console's pending bytes as a line (the VM goes away).
    pub fn flush_partial(&mut self, name: &str, sink: &mut dyn ConsoleSink) {
        for line in [&mut self.serial, &mut self.virtio] {
            if line.has_partial_line() {
                line.flush(name, sink);
            }
        }
    }
}

fn write_prefixed(name: &str, text: &str, sink: &mut dyn ConsoleSink) {
    let mut line: Vec<u8, { 32 + 3 + LINE_LIMIT }> = Vec::new();
    // Capacity covers the longest wire name, the separator and a full
    // line, so these cannot fail; a failure would only shorten the line.
    let _ = line.extend_from_slice(name.as_bytes());
    let _ = line.extend_from_slice(SEPARATOR);
    let _ = line.extend_from_slice(text.as_bytes());
    sink.write_line(&line);
}

/// A VM's output sink for its devices: bytes go through the VM's line
/// buffer to the console sink, and unchanged into its output ring.
pub struct VmOutput<'a> {
    /// The VM's unfinished lines.
    pub lines: &'a mut ConsoleLines,
    /// The VM's recent output, raw.
    pub ring: &'a mut ConsoleRing,
    /// The VM's name.
    pub name: &'a str,
    /// The host console.
    pub sink: &'a mut dyn ConsoleSink,
}

impl OutputSink for VmOutput<'_> {
    fn write_byte(&mut self, byte: u8) {
        self.ring.push(byte);
        self.lines.serial.push(byte, self.name, self.sink);
    }

    fn write_virtio_byte(&mut self, byte: u8) {
        self.ring.push(byte);
        self.lines.virtio.push(byte, self.name, self.sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    #[derive(Default)]
    struct Lines(Vec<String>);

    impl ConsoleSink for Lines {
        fn write_line(&mut self, line: &[u8]) {
            self.0.push(String::from_utf8(line.to_vec()).unwrap());
        }
    }

    fn feed(buffer: &mut ConsoleLines, lines: &mut Lines, text: &[u8]) {
        let mut ring = ConsoleRing::new();
        feed_with_ring(buffer, &mut ring, lines, text);
    }

    fn feed_with_ring(
        buffer: &mut ConsoleLines,
        ring: &mut ConsoleRing,
        lines: &mut Lines,
        text: &[u8],
    ) {
        let mut out = VmOutput {
            lines: buffer,
            ring,
            name: "vm0",
            sink: lines,
        };
        for &b in text {
            out.write_byte(b);
        }
    }

    #[test]
    fn the_serial_port_and_the_virtio_console_never_share_a_line() {
        let mut buffer = ConsoleLines::new();
        let mut ring = ConsoleRing::new();
        let mut lines = Lines::default();
        let mut out = VmOutput {
            lines: &mut buffer,
            ring: &mut ring,
            name: "vm0",
            sink: &mut lines,
        };
        for (&serial, &virtio) in b"uart\n".iter().zip(b"hvc0\n") {
            out.write_byte(serial);
            out.write_virtio_byte(virtio);
        }
        out.write_virtio_byte(b'!');
        assert_eq!(lines.0, ["vm0 | uart", "vm0 | hvc0"]);
        assert!(!buffer.serial.has_partial_line() && buffer.virtio.has_partial_line());
        buffer.flush_partial("vm0", &mut lines);
        assert_eq!(lines.0, ["vm0 | uart", "vm0 | hvc0", "vm0 | !"]);
    }

    #[test]
    fn lines_are_prefixed_and_split_at_newlines() {
        let mut buffer = ConsoleLines::new();
        let mut lines = Lines::default();
        feed(&mut buffer, &mut lines, b"hello\r\nwor");
        assert_eq!(lines.0, ["vm0 | hello"]);
        assert!(buffer.serial.has_partial_line());
        feed(&mut buffer, &mut lines, b"ld\n\n");
        assert_eq!(lines.0, ["vm0 | hello", "vm0 | world", "vm0 | "]);
        assert!(!buffer.serial.has_partial_line());
    }

    #[test]
    fn the_ring_keeps_the_raw_bytes_the_lines_show_escaped() {
        let mut buffer = ConsoleLines::new();
        let mut ring = ConsoleRing::new();
        let mut lines = Lines::default();
        // A coloured prompt, a screen clear, an OSC 52 clipboard write and
        // a C1 CSI: raw in the ring, visible escapes on the host console.
        let text = "\x1b[1m$ \x1b[0mls\x1b[2J\x1b]52;c;aGk=\x07 \u{9b}0m\r\n".as_bytes();
        feed_with_ring(&mut buffer, &mut ring, &mut lines, text);
        assert_eq!(&ring.read(0, 64).bytes[..], text);
        assert_eq!(
            lines.0,
            ["vm0 | \\x1b[1m$ \\x1b[0mls\\x1b[2J\\x1b]52;c;aGk=\\x07 \\xc2\\x9b0m"]
        );
        assert!(lines.0.iter().all(|l| !l.contains('\x1b')));
    }

    #[test]
    fn utf8_text_is_kept_and_broken_bytes_are_escaped() {
        let mut buffer = ConsoleLines::new();
        let mut lines = Lines::default();
        feed(&mut buffer, &mut lines, "caf\u{e9} \u{65e5}\n".as_bytes());
        feed(&mut buffer, &mut lines, b"\xff\xc3(\x7f\\\n");
        assert_eq!(
            lines.0,
            ["vm0 | caf\u{e9} \u{65e5}", "vm0 | \\xff\\xc3(\\x7f\\\\"]
        );
    }

    #[test]
    fn a_character_cut_by_a_flush_is_pending_until_then() {
        let mut buffer = ConsoleLines::new();
        let mut lines = Lines::default();
        feed(&mut buffer, &mut lines, &[0xe6]);
        assert!(buffer.serial.has_partial_line());
        buffer.serial.flush("vm0", &mut lines);
        assert_eq!(lines.0, ["vm0 | \\xe6"]);
        assert!(!buffer.serial.has_partial_line());
    }

    #[test]
    fn a_long_line_is_delivered_in_pieces() {
        let mut buffer = ConsoleLines::new();
        let mut lines = Lines::default();
        let long = std::vec![b'x'; LINE_LIMIT + 3];
        feed(&mut buffer, &mut lines, &long);
        assert_eq!(lines.0.len(), 1);
        assert_eq!(lines.0[0].len(), "vm0 | ".len() + LINE_LIMIT);
        feed(&mut buffer, &mut lines, b"\n");
        assert_eq!(lines.0[1], "vm0 | xxx");
    }

    #[test]
    fn escapes_count_against_the_limit_and_are_never_cut() {
        let mut buffer = ConsoleLines::new();
        let mut lines = Lines::default();
        // Two bytes short of the limit, then ESC (shown as four).
        let mut text = std::vec![b'x'; LINE_LIMIT - 2];
        text.extend_from_slice(b"\x1b[2J\n");
        feed(&mut buffer, &mut lines, &text);
        let x = "x".repeat(LINE_LIMIT - 2);
        assert_eq!(lines.0, [format!("vm0 | {x}"), "vm0 | \\x1b[2J".into()]);
        // All escapes: 40 of them fill a line exactly.
        lines.0.clear();
        feed(&mut buffer, &mut lines, &[0x07; LINE_LIMIT / 4 + 1]);
        feed(&mut buffer, &mut lines, b"\n");
        assert_eq!(
            lines.0,
            [
                format!("vm0 | {}", "\\x07".repeat(LINE_LIMIT / 4)),
                "vm0 | \\x07".into()
            ]
        );
        // The longest line fits a `console_write`.
        let longest = "vm0-with-a-thirty-one-byte-name".len() + 3 + LINE_LIMIT;
        assert!(longest <= ipc::syscall::MAX_DEBUG_WRITE);
    }
}
