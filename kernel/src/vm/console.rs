//! A VM's console line: bytes the guest writes through SBI are collected
//! until a newline (or a full line) and printed as `<vm name> | <line>`.

use core::fmt;

use super::VmName;

/// Longest line kept before it is printed anyway.
pub const LINE_MAX: usize = 160;

/// The bytes of the line being written.
#[derive(Clone)]
pub struct ConsoleLine {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Default for ConsoleLine {
    fn default() -> Self {
        Self::new()
    }
}

/// One finished line, printable as `vm0 | text`.
pub struct PrefixedLine<'a> {
    name: &'a VmName,
    text: &'a [u8],
}

impl fmt::Display for PrefixedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} | ", self.name)?;
        // Guest bytes: printable ASCII as is, anything else as `\xNN`.
        for &b in self.text {
            if b == b' ' || b.is_ascii_graphic() {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl ConsoleLine {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            bytes: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Adds `byte`; calls `emit` with each line it completes (on `\n`, or
    /// when the line is full). `\r` is dropped.
    pub fn push(&mut self, name: &VmName, byte: u8, emit: &mut dyn FnMut(PrefixedLine<'_>)) {
        match byte {
            b'\r' => {}
            b'\n' => self.flush(name, emit),
            _ => {
                if self.len == LINE_MAX {
                    self.flush(name, emit);
                }
                self.bytes[self.len] = byte;
                self.len += 1;
            }
        }
    }

    /// Emits what is buffered (even an empty line after a bare `\n`).
    pub fn flush(&mut self, name: &VmName, emit: &mut dyn FnMut(PrefixedLine<'_>)) {
        emit(PrefixedLine {
            name,
            text: &self.bytes[..self.len],
        });
        self.len = 0;
    }

    /// Whether part of a line is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
}
