//! Small text helpers: quoting a user's word back (bounded, escaped), and
//! showing a peer's text on a terminal without its control characters.

use core::fmt;

/// The start of a word the user typed, for quoting it back in an error
/// (the names library's, which quotes rejected names the same way).
pub use vm_manager::name::Quoted;

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
