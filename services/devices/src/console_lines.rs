//! Turns a VM's transmitted console bytes into whole lines prefixed with
//! the VM's name (`vm0 | hello`) for the host console, and keeps them raw
//! in the VM's [`ConsoleRing`] for clients that attach to its console.

use heapless::Vec;

use crate::bus::OutputSink;
use crate::console_ring::ConsoleRing;

/// The longest line content delivered in one piece; a longer line is
/// delivered in pieces of this size.
pub const LINE_LIMIT: usize = 160;

/// The separator between a VM's name and its output.
const SEPARATOR: &[u8] = b" | ";

/// Where finished console lines go.
pub trait ConsoleSink {
    /// One line: the VM's name, `" | "`, and the output, without the line
    /// ending.
    fn write_line(&mut self, line: &[u8]);
}

/// The unfinished line of one VM's console output.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8, LINE_LIMIT>,
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            pending: Vec::new(),
        }
    }

    /// Whether part of a line is waiting for its end.
    pub fn has_partial_line(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Adds one output byte: `\n` ends the line, `\r` is dropped, and a
    /// full buffer is delivered as a line of its own.
    pub fn push(&mut self, byte: u8, name: &str, sink: &mut dyn ConsoleSink) {
        match byte {
            b'\n' => self.flush(name, sink),
            b'\r' => {}
            _ => {
                if self.pending.push(byte).is_err() {
                    self.flush(name, sink);
                    // The buffer is empty after a flush.
                    let _ = self.pending.push(byte);
                }
            }
        }
    }

    /// Delivers the pending bytes as a line (an empty line if none).
    pub fn flush(&mut self, name: &str, sink: &mut dyn ConsoleSink) {
        let mut line: Vec<u8, { 32 + 3 + LINE_LIMIT }> = Vec::new();
        // Capacity covers the longest wire name, the separator and a full
        // buffer, so these cannot fail; a failure would only shorten the line.
        let _ = line.extend_from_slice(name.as_bytes());
        let _ = line.extend_from_slice(SEPARATOR);
        let _ = line.extend_from_slice(&self.pending);
        sink.write_line(&line);
        self.pending.clear();
    }
}

/// A VM's output sink for its devices: bytes go through the VM's line
/// buffer to the console sink, and unchanged into its output ring.
pub struct VmOutput<'a> {
    /// The VM's unfinished line.
    pub line: &'a mut LineBuffer,
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
        self.line.push(byte, self.name, self.sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    #[derive(Default)]
    struct Lines(Vec<String>);

    impl ConsoleSink for Lines {
        fn write_line(&mut self, line: &[u8]) {
            self.0.push(String::from_utf8(line.to_vec()).unwrap());
        }
    }

    fn feed(buffer: &mut LineBuffer, lines: &mut Lines, text: &[u8]) {
        let mut ring = ConsoleRing::new();
        feed_with_ring(buffer, &mut ring, lines, text);
    }

    fn feed_with_ring(
        buffer: &mut LineBuffer,
        ring: &mut ConsoleRing,
        lines: &mut Lines,
        text: &[u8],
    ) {
        let mut out = VmOutput {
            line: buffer,
            ring,
            name: "vm0",
            sink: lines,
        };
        for &b in text {
            out.write_byte(b);
        }
    }

    #[test]
    fn lines_are_prefixed_and_split_at_newlines() {
        let mut buffer = LineBuffer::new();
        let mut lines = Lines::default();
        feed(&mut buffer, &mut lines, b"hello\r\nwor");
        assert_eq!(lines.0, ["vm0 | hello"]);
        assert!(buffer.has_partial_line());
        feed(&mut buffer, &mut lines, b"ld\n\n");
        assert_eq!(lines.0, ["vm0 | hello", "vm0 | world", "vm0 | "]);
        assert!(!buffer.has_partial_line());
    }

    #[test]
    fn the_ring_keeps_the_raw_bytes_the_lines_drop() {
        let mut buffer = LineBuffer::new();
        let mut ring = ConsoleRing::new();
        let mut lines = Lines::default();
        let text = b"\x1b[1m$ \x1b[0mls\r\n";
        feed_with_ring(&mut buffer, &mut ring, &mut lines, text);
        assert_eq!(&ring.read(0, 64).bytes[..], &text[..]);
        assert_eq!(lines.0, ["vm0 | \x1b[1m$ \x1b[0mls"]);
    }

    #[test]
    fn a_long_line_is_delivered_in_pieces() {
        let mut buffer = LineBuffer::new();
        let mut lines = Lines::default();
        let long = std::vec![b'x'; LINE_LIMIT + 3];
        feed(&mut buffer, &mut lines, &long);
        assert_eq!(lines.0.len(), 1);
        assert_eq!(lines.0[0].len(), "vm0 | ".len() + LINE_LIMIT);
        feed(&mut buffer, &mut lines, b"\n");
        assert_eq!(lines.0[1], "vm0 | xxx");
    }
}
