//! VM and image names: the naming rule (1-31 bytes of `[A-Za-z0-9._-]`), the
//! validated [`VmName`] and [`ImageName`] types, and the error that says what
//! broke the rule.

use core::fmt;

use ipc::WireName;

/// The longest valid name in bytes.
pub const MAX_NAME_LEN: usize = 31;

/// The rule, as every name error states it.
const RULE: &str = "use 1-31 of [A-Za-z0-9._-]";

/// How much of a user's text a [`Quoted`] keeps.
const QUOTE_LEN: usize = 32;

/// The start of text a user gave, for quoting it back in an error (a
/// rejected name here, a word of a command line in the shell): at most 32
/// bytes, cut at a character boundary. Displays as a Rust string literal
/// (control characters escaped), with `...` after it when shortened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted {
    text: heapless::String<QUOTE_LEN>,
    /// Whether `text` is only a prefix of what the user gave.
    shortened: bool,
}

impl Quoted {
    /// Keeps up to 32 bytes of `text`, cut at a character boundary.
    pub fn new(text: &str) -> Self {
        let mut kept = heapless::String::new();
        let mut shortened = false;
        for ch in text.chars() {
            if kept.push(ch).is_err() {
                shortened = true;
                break;
            }
        }
        Quoted {
            text: kept,
            shortened,
        }
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

/// What exactly is wrong with a rejected name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// The name has no bytes at all.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes; `len` is its length.
    TooLong {
        /// The rejected name's length in bytes.
        len: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9._-]`; the first one.
    BadCharacter {
        /// The first offending character.
        ch: char,
    },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("empty"),
            NameProblem::TooLong { len } => write!(f, "too long ({len} bytes)"),
            NameProblem::BadCharacter { ch } => write!(f, "bad character {ch:?}"),
        }
    }
}

/// A name that breaks the naming rule: the (possibly shortened) text and the
/// problem. Displays as
/// `name "x y" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]`,
/// and becomes [`ipc::Error::InvalidName`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName {
    /// The start of the rejected text.
    quoted: Quoted,
    /// What is wrong.
    problem: NameProblem,
}

impl InvalidName {
    /// What is wrong with the name.
    pub fn problem(&self) -> NameProblem {
        self.problem
    }

    fn new(text: &str, problem: NameProblem) -> Self {
        InvalidName {
            quoted: Quoted::new(text),
            problem,
        }
    }
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name {} is invalid: {}; {RULE}",
            self.quoted, self.problem
        )
    }
}

impl From<InvalidName> for ipc::Error {
    fn from(_: InvalidName) -> Self {
        ipc::Error::InvalidName
    }
}

/// Checks `text` against the naming rule.
fn check(text: &str) -> Result<heapless::String<MAX_NAME_LEN>, InvalidName> {
    if text.is_empty() {
        return Err(InvalidName::new(text, NameProblem::Empty));
    }
    if let Some(ch) = text
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))
    {
        return Err(InvalidName::new(text, NameProblem::BadCharacter { ch }));
    }
    heapless::String::try_from(text)
        .map_err(|_| InvalidName::new(text, NameProblem::TooLong { len: text.len() }))
}

/// Copies a valid name into a [`WireName`], which is one byte larger.
fn to_wire(text: &str) -> WireName {
    let mut wire = WireName::new();
    // A valid name has at most 31 bytes; the wire name holds 32.
    let _fits = wire.push_str(text).is_ok();
    debug_assert!(_fits);
    wire
}

/// A VM's name: unique among the VMs of a vm-manager, 1-31 bytes of
/// `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmName(heapless::String<MAX_NAME_LEN>);

impl VmName {
    /// Checks `text` against the naming rule.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        check(text).map(VmName)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as it travels on the wire.
    pub fn to_wire(&self) -> WireName {
        to_wire(self.as_str())
    }
}

impl TryFrom<&WireName> for VmName {
    type Error = InvalidName;

    fn try_from(wire: &WireName) -> Result<Self, InvalidName> {
        VmName::parse(wire.as_str())
    }
}

impl From<&VmName> for WireName {
    fn from(name: &VmName) -> Self {
        name.to_wire()
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of a guest image the platform can load; same rule as a VM name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageName(heapless::String<MAX_NAME_LEN>);

impl ImageName {
    /// Checks `text` against the naming rule.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        check(text).map(ImageName)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as it travels on the wire.
    pub fn to_wire(&self) -> WireName {
        to_wire(self.as_str())
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::{String, ToString};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_every_allowed_character_class() {
        for text in ["a", "Z", "0", "vm-1", "my_vm.2", "A.b-C_9", "..", "-"] {
            let name = VmName::parse(text).unwrap();
            assert_eq!(name.as_str(), text);
        }
    }

    #[test]
    fn accepts_exactly_31_bytes_and_rejects_32() {
        let longest = "a".repeat(31);
        assert_eq!(VmName::parse(&longest).unwrap().as_str(), longest);
        let too_long = "a".repeat(32);
        let err = VmName::parse(&too_long).unwrap_err();
        assert_eq!(err.problem(), NameProblem::TooLong { len: 32 });
    }

    #[test]
    fn empty_name_says_it_is_empty() {
        let err = VmName::parse("").unwrap_err();
        assert_eq!(err.problem(), NameProblem::Empty);
        assert_eq!(
            err.to_string(),
            "name \"\" is invalid: empty; use 1-31 of [A-Za-z0-9._-]"
        );
    }

    #[test]
    fn bad_character_names_the_first_offender() {
        let err = VmName::parse("x y/z").unwrap_err();
        assert_eq!(err.problem(), NameProblem::BadCharacter { ch: ' ' });
        assert_eq!(
            err.to_string(),
            "name \"x y/z\" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]"
        );
        let err = VmName::parse("vm\u{e9}").unwrap_err();
        assert_eq!(err.problem(), NameProblem::BadCharacter { ch: '\u{e9}' });
    }

    #[test]
    fn too_long_states_the_length_and_quotes_a_prefix() {
        let text = "b".repeat(40);
        let err = VmName::parse(&text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(
            shown,
            std::format!(
                "name \"{}\"... is invalid: too long (40 bytes); use 1-31 of [A-Za-z0-9._-]",
                "b".repeat(32)
            )
        );
    }

    #[test]
    fn bad_character_wins_over_length() {
        let text = std::format!("{} ", "c".repeat(40));
        let err = VmName::parse(&text).unwrap_err();
        assert_eq!(err.problem(), NameProblem::BadCharacter { ch: ' ' });
    }

    #[test]
    fn wire_round_trip_and_error_code() {
        let name = VmName::parse("guest0").unwrap();
        let wire = name.to_wire();
        assert_eq!(wire.as_str(), "guest0");
        assert_eq!(VmName::try_from(&wire).unwrap(), name);
        let bad = ipc::wire_name("no way").unwrap();
        let err = VmName::try_from(&bad).unwrap_err();
        assert_eq!(ipc::Error::from(err), ipc::Error::InvalidName);
    }

    #[test]
    fn image_names_follow_the_same_rule() {
        assert_eq!(
            ImageName::parse("linux-6.12.img").unwrap().as_str(),
            "linux-6.12.img"
        );
        assert!(ImageName::parse("a/b").is_err());
        assert!(ImageName::parse("").is_err());
    }

    proptest! {
        #[test]
        fn any_text_is_accepted_exactly_when_it_follows_the_rule(text in ".{0,40}") {
            let valid = (1..=31).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            match VmName::parse(&text) {
                Ok(name) => {
                    prop_assert!(valid);
                    prop_assert_eq!(name.as_str(), text.as_str());
                }
                Err(err) => {
                    prop_assert!(!valid);
                    let shown: String = err.to_string();
                    prop_assert!(shown.ends_with("; use 1-31 of [A-Za-z0-9._-]"));
                }
            }
        }

        #[test]
        fn valid_names_round_trip(text in "[A-Za-z0-9._-]{1,31}") {
            let name = VmName::parse(&text).unwrap();
            prop_assert_eq!(VmName::try_from(&name.to_wire()).unwrap(), name);
        }
    }
}
