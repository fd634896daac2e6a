extern crate std;

use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

fn shown(bytes: &[u8]) -> String {
    Escaped(bytes).to_string()
}

/// Undoes the rule: `\\` and `\xNN` back to bytes; `None` for a backslash
/// that starts no complete escape (a line cut inside one).
fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', tail @ ..] => {
                out.push(b'\\');
                rest = tail;
            }
            [b'x', hi, lo, tail @ ..] => {
                let hex = core::str::from_utf8(&[*hi, *lo]).ok()?.to_string();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Feeds `bytes` to a line of capacity `N`, then flushes it.
fn lines<const N: usize>(bytes: &[u8]) -> Vec<String> {
    let mut line = EscapedLine::<N>::new();
    let mut out = Vec::new();
    for &b in bytes {
        line.push(b, &mut |l| out.push(l.to_string()));
    }
    line.flush(&mut |l| out.push(l.to_string()));
    out
}

#[test]
fn printable_ascii_is_shown_as_is_and_the_backslash_doubled() {
    assert_eq!(shown(b"hello, world ~ {}[]|"), "hello, world ~ {}[]|");
    // A guest that prints the text of an escape cannot pass it off as one.
    assert_eq!(shown(b"C:\\x1b"), "C:\\\\x1b");
}

#[test]
fn terminal_control_sequences_are_shown_not_sent() {
    assert_eq!(shown(b"\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
    // OSC 52: a write to the operator's clipboard, ended by BEL.
    assert_eq!(
        shown(b"\x1b]52;c;cm0gLXJmIC8=\x07"),
        "\\x1b]52;c;cm0gLXJmIC8=\\x07"
    );
    // OSC 8 hyperlink ended by ST (ESC \).
    assert_eq!(shown(b"\x1b]8;;x\x1b\\"), "\\x1b]8;;x\\x1b\\\\");
}

#[test]
fn every_c0_control_but_tab_and_del_are_escaped_line_endings_too() {
    assert_eq!(
        shown(b"\x00\x07\x08\t\n\r\x1f\x7f"),
        "\\x00\\x07\\x08\t\\x0a\\x0d\\x1f\\x7f"
    );
    for b in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
        assert_eq!(shown(&[b]), format!("\\x{b:02x}"));
    }
}

#[test]
fn printable_utf8_is_kept_whole() {
    let text = "café ü 日本語 🦀 €";
    assert_eq!(shown(text.as_bytes()), text);
    assert!(is_printable(text));
}

#[test]
fn c1_controls_are_escaped_byte_by_byte_as_encoded_and_raw() {
    // U+009B, the one-character CSI, as UTF-8 and as a bare byte.
    assert_eq!(shown("a\u{9b}31m".as_bytes()), "a\\xc2\\x9b31m");
    assert_eq!(shown(b"a\x9b31m"), "a\\x9b31m");
    assert_eq!(shown("\u{80}\u{9f}".as_bytes()), "\\xc2\\x80\\xc2\\x9f");
    // U+00A0 (no-break space) is the first printable one after them.
    assert_eq!(shown("\u{a0}".as_bytes()), "\u{a0}");
}

#[test]
fn characters_that_reorder_or_break_the_line_are_escaped() {
    // RIGHT-TO-LEFT OVERRIDE would show the rest of the line reversed.
    assert_eq!(shown("a\u{202e}b".as_bytes()), "a\\xe2\\x80\\xaeb");
    assert_eq!(shown("\u{2028}".as_bytes()), "\\xe2\\x80\\xa8");
    assert_eq!(shown("\u{2066}".as_bytes()), "\\xe2\\x81\\xa6");
    assert!(!is_printable("a\u{200f}"));
    assert!(is_printable("C:\\ and \\x1b"));
}

#[test]
fn invalid_and_unfinished_utf8_is_escaped_byte_by_byte() {
    assert_eq!(shown(b"\xff\xfe"), "\\xff\\xfe");
    // Overlong '/', a surrogate, a sequence broken by ASCII.
    assert_eq!(shown(b"\xc0\xaf"), "\\xc0\\xaf");
    assert_eq!(shown(b"\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_eq!(shown(b"\xe6\x97A"), "\\xe6\\x97A");
    // Cut off by the end of the text.
    assert_eq!(shown(b"ok\xe6\x97"), "ok\\xe6\\x97");
    // A valid character right after an invalid byte is kept.
    assert_eq!(shown("\u{ff}é".as_bytes()), "ÿé");
    assert_eq!(shown(b"\x80\xc3\xa9"), "\\x80é");
}

#[test]
fn a_checked_line_passes_when_printable_and_is_escaped_otherwise() {
    let done = b"vm0 | \\x1b[2J C:\\\\ caf\xc3\xa9";
    assert_eq!(
        Checked(done).to_string(),
        core::str::from_utf8(done).unwrap()
    );
    assert_eq!(
        Checked(b"vm0 | x\nmica: vm1 stopped").to_string(),
        "vm0 | x\\x0amica: vm1 stopped"
    );
    assert_eq!(Checked(b"\x1b[2J\\").to_string(), "\\x1b[2J\\\\");
    assert_eq!(Checked(b"\xff").to_string(), "\\xff");
}

#[test]
fn lines_end_at_newlines_and_drop_carriage_returns() {
    assert_eq!(lines::<32>(b"one\r\ntwo\n\nx"), ["one", "two", "", "x"]);
    assert_eq!(lines::<32>(b"\x1b[31mred\n"), ["\\x1b[31mred", ""]);
    assert_eq!(lines::<32>("€\r\n".as_bytes()), ["€", ""]);
    // A carriage return inside a sequence ends it: nothing is joined
    // across it.
    assert_eq!(lines::<32>(b"\xe2\r\x82\xac"), ["\\xe2\\x82\\xac"]);
    // An unfinished sequence at the end of a line is shown escaped.
    assert_eq!(lines::<32>(b"a\xe6\nb"), ["a\\xe6", "b"]);
}

#[test]
fn a_line_knows_when_part_of_a_character_is_waiting() {
    let mut line = EscapedLine::<32>::new();
    let mut out = Vec::new();
    assert!(line.is_empty());
    line.push(0xe6, &mut |l| out.push(l.to_string()));
    assert!(!line.is_empty(), "the first byte of a character");
    line.push(0x97, &mut |l| out.push(l.to_string()));
    line.push(0xa5, &mut |l| out.push(l.to_string()));
    line.push(b'\n', &mut |l| out.push(l.to_string()));
    assert_eq!(out, ["日"]);
    assert!(line.is_empty());
}

#[test]
fn a_long_line_is_split_between_units_never_inside_one() {
    // 18 + 4 > 20: the escape starts the next piece.
    let mut input = vec![b'a'; 18];
    input.push(0x1b);
    assert_eq!(lines::<20>(&input), ["a".repeat(18), "\\x1b".to_string()]);
    // 19 + 2 > 20: the two-byte character starts the next piece.
    let mut input = vec![b'a'; 19];
    input.extend_from_slice("é".as_bytes());
    assert_eq!(lines::<20>(&input), ["a".repeat(19), "é".to_string()]);
    // A C1 control's two escapes stay together: 14 + 8 > 20.
    let mut input = vec![b'a'; 14];
    input.extend_from_slice("\u{9b}".as_bytes());
    assert_eq!(
        lines::<20>(&input),
        ["a".repeat(14), "\\xc2\\x9b".to_string()]
    );
    // Exactly full: no empty piece.
    assert_eq!(lines::<20>(&[b'\\'; 10]), ["\\".repeat(20)]);
    assert_eq!(
        lines::<20>(&[0x7f; 5]),
        ["\\x7f".repeat(5)],
        "five escapes fill a 20-byte line"
    );
    assert_eq!(lines::<20>(&[0x7f; 6]), ["\\x7f".repeat(5), "\\x7f".into()]);
}

proptest! {
    #[test]
    fn shown_text_has_no_control_bytes_and_gives_back_the_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        let text = shown(&bytes);
        prop_assert!(text.bytes().all(|b| (b >= 0x20 || b == b'\t') && b != 0x7f), "{text:?}");
        prop_assert!(!text.chars().any(|c| c.is_control() && c != '\t'), "{text:?}");
        prop_assert!(is_printable(&text));
        prop_assert_eq!(unescape(&text), Some(bytes.clone()));
        // Shown text is printable: a checked line leaves it alone.
        prop_assert_eq!(Checked(text.as_bytes()).to_string(), text);
    }

    #[test]
    fn a_plain_byte_taken_on_its_own_is_taken_as_push_takes_it(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), b' '..=b'~', Just(b'\\'), Just(b'\t'), Just(b'\n'), Just(0xc3)],
            0..200,
        )
    ) {
        let mut line = EscapedLine::<MAX_UNIT>::new();
        let mut out = Vec::new();
        for &b in &bytes {
            if !line.push_plain(b) {
                line.push(b, &mut |l| out.push(l.to_string()));
            }
        }
        line.flush(&mut |l| out.push(l.to_string()));
        prop_assert_eq!(out, lines::<MAX_UNIT>(&bytes));
    }

    #[test]
    fn lines_fit_and_hold_whole_units_of_the_input(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b'\n'), Just(0x1b), Just(0xc2), Just(0x9b)],
            0..400,
        )
    ) {
        let out = lines::<MAX_UNIT>(&bytes);
        let mut joined = Vec::new();
        for line in &out {
            prop_assert!(line.len() <= MAX_UNIT);
            prop_assert!(line.bytes().all(|b| (b >= 0x20 || b == b'\t') && b != 0x7f), "{line:?}");
            // Each line on its own unescapes: no escape was cut.
            let raw = unescape(line);
            prop_assert!(raw.is_some(), "cut escape in {line:?}");
            joined.extend(raw.unwrap_or_default());
        }
        let expected: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\n' && b != b'\r').collect();
        prop_assert_eq!(joined, expected);
        let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
        prop_assert!(out.len() > newlines);
    }
}
