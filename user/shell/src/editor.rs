//! The line editor of the shell: typed bytes in, echo and finished lines
//! out. Enter is CR or LF (a CR LF pair is one Enter), backspace (BS or DEL)
//! takes back a character, Ctrl-C drops the line; other control bytes are
//! ignored, and a line keeps at most [`LINE_MAX`] bytes.

/// The longest line the shell takes: as long as the grammar parses, so
/// that a full kernel command line fits in `vm create ... --cmdline "..."`.
pub const LINE_MAX: usize = mica_mgmt::parse::MAX_LINE;

/// What a typed byte did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Nothing to show (an ignored byte, or the LF of CR LF).
    Nothing,
    /// Show these bytes (the echo).
    Echo(&'static [u8]),
    /// Show the byte itself.
    EchoByte(u8),
    /// The line is finished: echo a newline and take it with
    /// [`LineEditor::take_line`].
    Enter,
    /// Ctrl-C: the line is dropped.
    Cancel,
}

/// The line being typed.
#[derive(Clone, Debug, Default)]
pub struct LineEditor {
    line: heapless::Vec<u8, LINE_MAX>,
    after_cr: bool,
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        LineEditor {
            line: heapless::Vec::new(),
            after_cr: false,
        }
    }

    /// Takes one typed byte.
    pub fn key(&mut self, byte: u8) -> Key {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Key::Nothing,
            b'\r' | b'\n' => Key::Enter,
            0x08 | 0x7f => match self.line.pop() {
                Some(_) => Key::Echo(b"\x08 \x08"),
                None => Key::Nothing,
            },
            0x03 => {
                self.line.clear();
                Key::Cancel
            }
            b' '..=b'~' => match self.line.push(byte) {
                Ok(()) => Key::EchoByte(byte),
                Err(_) => Key::Nothing,
            },
            _ => Key::Nothing,
        }
    }

    /// The finished line (after [`Key::Enter`]); the editor starts a new one.
    pub fn take_line(&mut self) -> heapless::Vec<u8, LINE_MAX> {
        core::mem::take(&mut self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(editor: &mut LineEditor, bytes: &[u8]) -> Vec<Key> {
        bytes.iter().map(|&b| editor.key(b)).collect()
    }

    #[test]
    fn printable_bytes_echo_and_enter_finishes_the_line() {
        let mut e = LineEditor::new();
        let keys = typed(&mut e, b"vm list\r");
        assert_eq!(keys[0], Key::EchoByte(b'v'));
        assert_eq!(keys[7], Key::Enter);
        assert_eq!(e.take_line().as_slice(), b"vm list");
        assert_eq!(e.take_line().as_slice(), b"");
    }

    #[test]
    fn cr_lf_is_one_enter_and_lf_alone_is_one_too() {
        let mut e = LineEditor::new();
        assert_eq!(typed(&mut e, b"\r\n"), [Key::Enter, Key::Nothing]);
        assert_eq!(typed(&mut e, b"\n\n"), [Key::Enter, Key::Enter]);
    }

    #[test]
    fn backspace_takes_back_one_character_and_not_past_the_start() {
        let mut e = LineEditor::new();
        typed(&mut e, b"vm lisx");
        assert_eq!(e.key(0x7f), Key::Echo(b"\x08 \x08"));
        assert_eq!(e.key(0x08), Key::Echo(b"\x08 \x08"));
        typed(&mut e, b"st");
        assert_eq!(e.take_line().as_slice(), b"vm list");
        assert_eq!(e.key(0x7f), Key::Nothing);
    }

    #[test]
    fn ctrl_c_drops_the_line_and_control_bytes_are_ignored() {
        let mut e = LineEditor::new();
        typed(&mut e, b"vm destroy vm0");
        assert_eq!(e.key(0x03), Key::Cancel);
        assert_eq!(e.key(0x1b), Key::Nothing);
        assert_eq!(e.take_line().as_slice(), b"");
    }

    #[test]
    fn an_overlong_line_keeps_its_first_bytes() {
        let mut e = LineEditor::new();
        let long = [b'a'; LINE_MAX + 10];
        let keys = typed(&mut e, &long);
        assert_eq!(keys[LINE_MAX], Key::Nothing);
        assert_eq!(e.take_line().len(), LINE_MAX);
    }
}
