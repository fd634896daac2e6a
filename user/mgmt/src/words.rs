//! Splitting a shell line into words. The rule, as `help` states it:
//!
//! - blanks (spaces, tabs) separate words;
//! - double quotes keep blanks in a word: `"console=ttyS0 quiet"` is one
//!   word, without the quotes; quoted and unquoted text next to each other
//!   make one word (`root="/dev/vda 1"` is `root=/dev/vda 1`), and `""` is
//!   an empty word;
//! - inside quotes, `\"` is a quote and `\\` a backslash; any other
//!   backslash, and every character outside quotes, is taken as typed;
//! - a quote that is not closed is an error.
//!
//! The words are copied, unquoted, into one fixed buffer: no heap.

/// The longest line the shell parses (room for a full 256-byte kernel
/// command line, quoted, after the rest of `vm create`).
pub const MAX_LINE: usize = 512;

/// At most one word per two bytes, plus one.
const MAX_WORDS: usize = MAX_LINE / 2 + 1;

/// Why a line could not be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The line is longer than [`MAX_LINE`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A `"` opens a quoted part that does not end.
    UnclosedQuote,
}

/// The words of a line, unquoted.
pub struct Words {
    text: heapless::String<MAX_LINE>,
    /// Where each word ends in `text`.
    ends: heapless::Vec<u16, MAX_WORDS>,
}

impl Words {
    /// Splits `line` by the rule of this module.
    pub fn split(line: &str) -> Result<Words, SplitError> {
        let too_long = SplitError::TooLong { len: line.len() };
        if line.len() > MAX_LINE {
            return Err(too_long);
        }
        let mut words = Words {
            text: heapless::String::new(),
            ends: heapless::Vec::new(),
        };
        // The unquoted text never outgrows the line, so neither push can
        // fail; they report `too_long` rather than panic all the same.
        let mut in_word = false;
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '"' => {
                    in_word = true;
                    loop {
                        let ch = match chars.next() {
                            None => return Err(SplitError::UnclosedQuote),
                            Some('"') => break,
                            Some('\\') => match chars.clone().next() {
                                Some(escaped @ ('"' | '\\')) => {
                                    chars.next();
                                    escaped
                                }
                                _ => '\\',
                            },
                            Some(ch) => ch,
                        };
                        words.text.push(ch).map_err(|_| too_long)?;
                    }
                }
                ch if ch.is_ascii_whitespace() => {
                    if in_word {
                        words.end_word().map_err(|_| too_long)?;
                        in_word = false;
                    }
                }
                ch => {
                    in_word = true;
                    words.text.push(ch).map_err(|_| too_long)?;
                }
            }
        }
        if in_word {
            words.end_word().map_err(|_| too_long)?;
        }
        Ok(words)
    }

    fn end_word(&mut self) -> Result<(), u16> {
        // `text` holds at most MAX_LINE (512) bytes: its length fits.
        let end = u16::try_from(self.text.len()).map_err(|_| 0u16)?;
        self.ends.push(end)
    }

    /// The words, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let end = usize::from(end);
            // Every end is a character boundary: words are pushed whole.
            let word = self.text.get(start..end).unwrap_or("");
            start = end;
            word
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> heapless::Vec<heapless::String<64>, 16> {
        let words = Words::split(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
        words
            .iter()
            .map(|word| heapless::String::try_from(word).unwrap_or_default())
            .collect()
    }

    #[test]
    fn the_worst_case_line_fits() {
        // One-byte words and empty quoted words: the most words per byte.
        let a = "a ".repeat(MAX_LINE / 2);
        assert_eq!(Words::split(&a).map(|w| w.iter().count()), Ok(MAX_LINE / 2));
        let quotes = "\"\" ".repeat(MAX_LINE / 3);
        assert_eq!(
            Words::split(&quotes).map(|w| w.iter().count()),
            Ok(MAX_LINE / 3)
        );
        let long = "a".repeat(MAX_LINE + 1);
        assert!(matches!(
            Words::split(&long),
            Err(SplitError::TooLong { len }) if len == MAX_LINE + 1
        ));
    }

    #[test]
    fn quotes_join_and_escapes_unescape() {
        assert_eq!(split("  a\tb  "), ["a", "b"]);
        assert_eq!(split("x=\"1 2\"y \"\""), ["x=1 2y", ""]);
        assert_eq!(split(r#""a\"b\\c\d""#), [r#"a"b\c\d"#]);
        assert_eq!(split(r"a\b"), [r"a\b"]);
        assert_eq!(split("é \"ü ß\""), ["é", "ü ß"]);
    }
}
