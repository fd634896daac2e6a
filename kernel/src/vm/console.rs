//! A VM's console line: bytes the guest writes through SBI are collected
//! until a newline (or a full line) and printed as `<vm name> | <line>`,
//! shown by `ipc::console_text`'s rule (the devices service's `vm0 |`
//! lines follow the same one): printable UTF-8 as is, the backslash as
//! `\\`, every other byte as `\xNN`.

use core::fmt;

use ipc::console_text::EscapedLine;

use super::VmName;

/// Longest shown line (after escaping) printed in one piece; a longer one
/// is printed in pieces cut between characters and escapes.
pub const LINE_MAX: usize = 160;

/// The line being written.
#[derive(Clone, Default)]
pub struct ConsoleLine {
    text: EscapedLine<LINE_MAX>,
}

/// One finished line, printable as `vm0 | text`.
pub struct PrefixedLine<'a> {
    name: &'a VmName,
    text: &'a str,
}

impl fmt::Display for PrefixedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} | {}", self.name, self.text)
    }
}

impl ConsoleLine {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            text: EscapedLine::new(),
        }
    }

    /// Adds `byte`; calls `emit` with each line it completes (on `\n`, or
    /// when the line is full). `\r` is dropped.
    pub fn push(&mut self, name: &VmName, byte: u8, emit: &mut dyn FnMut(PrefixedLine<'_>)) {
        self.text
            .push(byte, &mut |text| emit(PrefixedLine { name, text }));
    }

    /// Emits what is buffered (even an empty line after a bare `\n`).
    pub fn flush(&mut self, name: &VmName, emit: &mut dyn FnMut(PrefixedLine<'_>)) {
        self.text
            .flush(&mut |text| emit(PrefixedLine { name, text }));
    }

    /// Whether nothing of a line (or of a character) is waiting.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(line: &mut ConsoleLine, bytes: &[u8]) -> Vec<String> {
        let name = VmName::new("vm0").unwrap();
        let mut out = Vec::new();
        for &b in bytes {
            line.push(&name, b, &mut |l| out.push(l.to_string()));
        }
        out
    }

    #[test]
    fn lines_get_the_vm_name_and_pieces_are_joined() {
        let mut line = ConsoleLine::new();
        assert!(feed(&mut line, b"hello ").is_empty());
        assert_eq!(
            feed(&mut line, b"from vm0\r\nnext"),
            ["vm0 | hello from vm0"]
        );
        assert!(!line.is_empty());
    }

    #[test]
    fn control_bytes_are_escaped_and_long_lines_split() {
        let mut line = ConsoleLine::new();
        assert_eq!(feed(&mut line, b"a\x1bb\n"), ["vm0 | a\\x1bb"]);
        let long = vec![b'x'; LINE_MAX + 1];
        let out = feed(&mut line, &long);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), "vm0 | ".len() + LINE_MAX);
    }

    #[test]
    fn sbi_output_follows_the_devices_rule_utf8_kept_escapes_whole() {
        let mut line = ConsoleLine::new();
        // The same rule as the devices service's lines: UTF-8 text kept, an
        // OSC 52 clipboard write, a C1 CSI and a backslash shown as text.
        assert_eq!(
            feed(
                &mut line,
                "caf\u{e9} \x1b]52;c;aGk=\x07 \u{9b}2J \\\r\n".as_bytes()
            ),
            ["vm0 | caf\u{e9} \\x1b]52;c;aGk=\\x07 \\xc2\\x9b2J \\\\"]
        );
        // At the limit, an escape goes whole to the next piece.
        let mut text = vec![b'x'; LINE_MAX - 1];
        text.extend_from_slice(b"\x7f\n");
        let out = feed(&mut line, &text);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], "vm0 | \\x7f");
        // A character waiting for its last byte is part of the line.
        assert!(feed(&mut line, &[0xe2, 0x82]).is_empty());
        assert!(!line.is_empty());
        assert_eq!(feed(&mut line, &[0xac, b'\n']), ["vm0 | \u{20ac}"]);
    }
}
