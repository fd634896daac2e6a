//! Reads a help text's command synopses back and types each as a command
//! line, for the tests that hold the shell's `help` and the CLI's `--help`
//! to the grammar (feature `testing`).

extern crate std;

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

/// The command synopses of `help`: each line indented by exactly `margin`
/// spaces that holds a two-space gap before its description (or whose
/// next line continues it), with the more indented `[...]` lines that
/// continue it (`          [--kernel IMAGE]`).
pub fn synopses(help: &str, margin: usize) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let synopsis = |line: &str| line.trim().split("  ").next().unwrap_or("").to_string();
    let continues = |line: &str| {
        (margin + 1..margin + 20).contains(&indent(line)) && line.trim().starts_with('[')
    };
    let lines: Vec<&str> = help.lines().collect();
    let mut entries: Vec<String> = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let continued = lines.get(at + 1).is_some_and(|next| continues(next));
        let gap = line.trim().contains("  ");
        if !line.trim().is_empty() && indent(line) == margin && (gap || continued) {
            entries.push(synopsis(line));
        } else if continues(line)
            && let Some(last) = entries.last_mut()
        {
            last.push(' ');
            last.push_str(&synopsis(line));
        }
    }
    entries
}

/// A synopsis as typed words: each `a|b|c` alternative, the placeholders
/// (`NAME`, `IMAGE`, `MiB` ...) filled in; once without its `[...]`
/// options (`true`: it must parse) and once with each option alone
/// (`false`: it may be refused for what it needs with it, as `--initrd`
/// needs `--kernel`, never as unknown).
pub fn typed_forms(synopsis: &str) -> Vec<(Vec<String>, bool)> {
    let fill = |word: &str| -> String {
        match word {
            "NAME" | "SRC" | "TEMPLATE" => "web".into(),
            "NEW" => "copy".into(),
            "IMAGE" => "hello".into(),
            "MiB" => "64".into(),
            "N" => "1".into(),
            "TEXT" => "quiet".into(),
            other => other.into(),
        }
    };
    let (bare, options) = match synopsis.find('[') {
        Some(at) => (&synopsis[..at], &synopsis[at..]),
        None => (synopsis, ""),
    };
    let words: Vec<String> = bare.split_whitespace().map(fill).collect();
    let heads: Vec<Vec<String>> = match words.iter().position(|w| w.contains('|')) {
        Some(at) => words[at]
            .split('|')
            .map(|alternative| {
                let mut head = words.clone();
                head[at] = alternative.to_string();
                head
            })
            .collect(),
        None => vec![words],
    };
    let mut forms = Vec::new();
    for head in heads {
        forms.push((head.clone(), true));
        for group in options.split('[').filter(|g| !g.trim().is_empty()) {
            let mut form = head.clone();
            form.extend(
                group
                    .trim()
                    .trim_end_matches(']')
                    .split_whitespace()
                    .map(fill),
            );
            forms.push((form, false));
        }
    }
    forms
}

/// `words` as one shell line.
pub fn line(words: &[String]) -> String {
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synopses_and_their_continuations_are_read_and_typed() {
        let help = concat!(
            "  list        list them\n",
            "  create NAME [--mem MiB]\n",
            "         [--image IMAGE]\n",
            "              create one\n",
            "  start|stop NAME   run or stop\n",
            "prose that is  no command\n",
        );
        assert_eq!(
            synopses(help, 2),
            [
                "list",
                "create NAME [--mem MiB] [--image IMAGE]",
                "start|stop NAME"
            ]
        );
        let forms = typed_forms("create NAME [--mem MiB] [--image IMAGE]");
        let lines: Vec<(String, bool)> = forms.iter().map(|(w, b)| (line(w), *b)).collect();
        assert_eq!(
            lines,
            [
                ("create web".to_string(), true),
                ("create web --mem 64".to_string(), false),
                ("create web --image hello".to_string(), false)
            ]
        );
        let forms = typed_forms("start|stop NAME");
        assert_eq!(line(&forms[1].0), "stop web");
    }
}
