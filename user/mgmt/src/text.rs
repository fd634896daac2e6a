//! Small text helpers: quoting a user's word back (bounded, escaped), and
//! showing a peer's text on a terminal without its control characters.

use core::fmt;

/// How much of a user's word an error quotes back.
const QUOTE_LEN: usize = 32;

/// The start of a word the user typed, for quoting it back in an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted {
    text: heapless::String<QUOTE_LEN>,
    shortened: bool,
}

impl Quoted {
    /// Keeps up to 32 bytes of `word`, cut at a character boundary.
    pub fn new(word: &str) -> Self {
        let mut text = heapless::String::new();
        let mut shortened = false;
        for ch in word.chars() {
            if text.push(ch).is_err() {
                shortened = true;
                break;
            }
        }
        Quoted { text, shortened }
    }

    /// The kept text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ellipsis = if self.shortened { "..." } else { "" };
        write!(f, "{:?}{ellipsis}", self.text.as_str())
    }
}

/// Shows text from the peer with every character outside printable ASCII
/// replaced by `?`, so that a name cannot move the cursor or change colours.
pub struct Printable<'a>(pub &'a str);

impl Printable<'_> {
    /// How many columns the text takes.
    pub fn width(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ch in self.0.chars() {
            let shown = if ch == ' ' || ch.is_ascii_graphic() {
                ch
            } else {
                '?'
            };
            fmt::Write::write_char(f, shown)?;
        }
        Ok(())
    }
}
