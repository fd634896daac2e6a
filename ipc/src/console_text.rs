//! How the hypervisor console shows text that it does not write itself:
//! guest console output (`vm0 | ...`, from the devices service and from the
//! kernel's SBI console) and tasks' debug lines (`init: ...`). Such text may
//! hold terminal control sequences (`ESC [ 2 J`, an OSC 52 clipboard write)
//! or a newline followed by a forged `mica: ...` line; shown by this rule,
//! it can do neither. The kernel and the devices service both use it, so it
//! lives here rather than in a service.
//!
//! The rule, byte stream in, text out:
//! - printable ASCII (`' '..='~'`) and the tab are shown as is, except
//!   the backslash, shown as `\\`;
//! - valid UTF-8 is shown as is when the character is printable: not a
//!   control (C0, DEL, C1 `U+0080..=U+009F`) and not one of the characters
//!   that reorder or break the rest of the line (the bidirectional
//!   controls `U+061C`, `U+200E`, `U+200F`, `U+202A..=U+202E`,
//!   `U+2066..=U+2069`, and the separators `U+2028`, `U+2029`);
//! - every other byte is shown as `\xNN` (two lowercase hex digits): the
//!   other C0 controls including newline and carriage return, DEL, each
//!   byte of a C1 control's or a reordering character's UTF-8 encoding,
//!   and each byte of an invalid or unfinished UTF-8 sequence.
//!
//! So the shown text is printable UTF-8 without a control byte but tab, and
//! it is unambiguous: undoing `\\` and `\xNN` gives back the exact bytes.
//! Line structure is the caller's: [`EscapedLine`] ends a line at `\n` and
//! drops `\r`, as the console lines always did.

use core::fmt;

use heapless::String;

/// The longest shown form of one character or of one invalid sequence:
/// four bytes, each as `\xNN`.
pub const MAX_UNIT: usize = 16;

/// One shown unit: a character as is, `\\`, or the `\xNN` escapes of one
/// character or of one invalid sequence. A line is never cut inside one.
type Unit = String<MAX_UNIT>;

/// Whether `c` is shown as itself (the backslash is shown doubled).
fn shown_as_is(c: char) -> bool {
    match c {
        ' '..='~' | '\t' => true,
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}' => false,
        _ => !c.is_ascii() && !c.is_control(),
    }
}

/// Whether `text` holds only characters the rule shows as themselves
/// (the backslash included): nothing in it can move the cursor, reorder
/// the line or start a new one. Shown text always is.
pub fn is_printable(text: &str) -> bool {
    text.chars().all(shown_as_is)
}

fn push_escape(unit: &mut Unit, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // MAX_UNIT holds the four escapes of a four-byte sequence, the most a
    // unit ever gets.
    let _ = unit.push_str("\\x");
    let _ = unit.push(char::from(HEX[usize::from(byte >> 4)]));
    let _ = unit.push(char::from(HEX[usize::from(byte & 0xf)]));
}

fn char_unit(c: char) -> Unit {
    let mut unit = Unit::new();
    if c == '\\' {
        let _ = unit.push_str("\\\\");
    } else if shown_as_is(c) {
        let _ = unit.push(c);
    } else {
        let mut utf8 = [0u8; 4];
        for &b in c.encode_utf8(&mut utf8).as_bytes() {
            push_escape(&mut unit, b);
        }
    }
    unit
}

fn bytes_unit(bytes: &[u8]) -> Unit {
    let mut unit = Unit::new();
    for &b in bytes {
        push_escape(&mut unit, b);
    }
    unit
}

/// Turns a byte stream into shown units, one byte at a time; it holds at
/// most the three bytes of an unfinished UTF-8 sequence.
#[derive(Clone, Debug, Default)]
pub struct Escaper {
    pending: [u8; 4],
    len: usize,
}

impl Escaper {
    /// An escaper with nothing pending.
    pub const fn new() -> Self {
        Self {
            pending: [0; 4],
            len: 0,
        }
    }

    /// Whether bytes of an unfinished UTF-8 sequence are waiting.
    pub fn is_idle(&self) -> bool {
        self.len == 0
    }

    /// Takes one byte; calls `out` with each unit it completes.
    pub fn push(&mut self, byte: u8, out: &mut dyn FnMut(&str)) {
        if self.len == 0 && byte.is_ascii() {
            let c = char::from(byte);
            if c != '\\' && shown_as_is(c) {
                // The common case (guest text) without building a unit.
                out(c.encode_utf8(&mut [0; 4]));
            } else {
                out(&char_unit(c));
            }
            return;
        }
        match self.pending.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                self.drain(false, out);
            }
            // Unreachable (a fifth byte always completes or breaks the
            // sequence), but should it happen: nothing is lost or shown raw.
            None => {
                self.drain(true, out);
                out(&bytes_unit(&[byte]));
            }
        }
    }

    /// Ends the stream (or the line): an unfinished sequence is shown as
    /// escapes.
    pub fn finish(&mut self, out: &mut dyn FnMut(&str)) {
        self.drain(true, out);
    }

    fn drain(&mut self, finishing: bool, out: &mut dyn FnMut(&str)) {
        while self.len > 0 {
            let pending = &self.pending[..self.len];
            let (valid, bad) = match core::str::from_utf8(pending) {
                Ok(_) => (self.len, 0),
                Err(e) => match e.error_len() {
                    Some(bad) => (e.valid_up_to(), bad),
                    None if finishing => (e.valid_up_to(), self.len - e.valid_up_to()),
                    None => (e.valid_up_to(), 0),
                },
            };
            if let Ok(text) = core::str::from_utf8(&pending[..valid]) {
                for c in text.chars() {
                    out(&char_unit(c));
                }
            }
            if bad > 0 {
                out(&bytes_unit(&pending[valid..valid + bad]));
            }
            let used = valid + bad;
            if used == 0 {
                // The start of a sequence still waiting for its next byte.
                return;
            }
            self.pending.copy_within(used..self.len, 0);
            self.len -= used;
        }
    }
}

/// Bytes shown by the rule, for text that arrives whole (a task's debug
/// line): `format!("{}", Escaped(b"a\x1b[2J"))` is `a\x1b[2J` with a
/// literal backslash.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut result = Ok(());
        let mut out = |unit: &str| {
            if result.is_ok() {
                result = f.write_str(unit);
            }
        };
        let mut escaper = Escaper::new();
        for &b in self.0 {
            escaper.push(b, &mut out);
        }
        escaper.finish(&mut out);
        result
    }
}

/// A line that its writer says it has already shown by this rule (the
/// devices service's `vm0 | ...` lines): printed as is when it
/// [`is_printable`], else escaped whole, so that even a writer that breaks its promise
/// cannot move the cursor or start a line of its own.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a>(pub &'a [u8]);

impl fmt::Display for Checked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(text) if is_printable(text) => f.write_str(text),
            _ => Escaped(self.0).fmt(f),
        }
    }
}

/// The unfinished line of one console (a VM's): bytes go in one at a time,
/// shown text comes out a line at a time. `\n` ends the line, `\r` is
/// dropped (it ends an unfinished UTF-8 sequence), and a line whose shown
/// text would pass `N` bytes is delivered before the unit that would not
/// fit: lines are split between units, never inside an escape or a
/// character.
#[derive(Clone, Debug)]
pub struct EscapedLine<const N: usize> {
    text: String<N>,
    escaper: Escaper,
}

impl<const N: usize> Default for EscapedLine<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> EscapedLine<N> {
    /// An empty line.
    pub const fn new() -> Self {
        const { assert!(N >= MAX_UNIT, "a line must hold the longest unit") };
        Self {
            text: String::new(),
            escaper: Escaper::new(),
        }
    }

    /// Whether nothing of a line is waiting (no text, no unfinished
    /// sequence).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.escaper.is_idle()
    }

    /// Takes one output byte; calls `emit` with the shown text of each
    /// line it completes (without a line ending).
    pub fn push(&mut self, byte: u8, emit: &mut dyn FnMut(&str)) {
        let text = &mut self.text;
        let mut out = |unit: &str| append(text, unit, emit);
        match byte {
            b'\n' => {
                self.escaper.finish(&mut out);
                emit(text);
                text.clear();
            }
            b'\r' => self.escaper.finish(&mut out),
            _ => self.escaper.push(byte, &mut out),
        }
    }

    /// [`push`](Self::push) of a byte shown as itself (printable ASCII or
    /// the tab, not the backslash) while no UTF-8 sequence is unfinished
    /// and the line has room for it: the byte goes onto the line, `true`.
    /// Anything else changes nothing and is `false`: the caller pushes the
    /// byte. Guest text is nearly all such bytes, and this takes them
    /// without a call through `dyn FnMut` per byte.
    #[inline]
    pub fn push_plain(&mut self, byte: u8) -> bool {
        let plain = matches!(byte, b' '..=b'~' | b'\t') && byte != b'\\';
        plain && self.escaper.is_idle() && self.text.push(char::from(byte)).is_ok()
    }

    /// Delivers what is waiting as a line (an empty one if nothing is).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&str)) {
        self.push(b'\n', emit);
    }
}

fn append<const N: usize>(text: &mut String<N>, unit: &str, emit: &mut dyn FnMut(&str)) {
    if text.push_str(unit).is_err() {
        emit(text);
        text.clear();
        // N >= MAX_UNIT (checked in `new`): a unit fits an empty line.
        let _ = text.push_str(unit);
    }
}

#[cfg(test)]
mod tests;
