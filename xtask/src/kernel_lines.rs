//! `cargo xtask kernel-lines`: the kernel's lines of code without tests,
//! split into generic code and each arch, so that "the kernel as small as it
//! can be" is a number a change can be held to.
//!
//! A line counts when it is not blank and not a comment. Left out: files
//! named `*_tests.rs`, files declared by a `#[cfg(test)] mod NAME;`, and the
//! body of every `#[cfg(test)]` item (`mod tests { ... }` and the like).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd;

/// The kernel's counted lines, by where they live.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KernelLines {
    /// Everything outside `src/arch/<name>/` (including `src/arch/*.rs`).
    pub generic: usize,
    /// `src/arch/riscv64/`.
    pub riscv64: usize,
    /// `src/arch/x86_64/`.
    pub x86_64: usize,
}

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`xtask kernel-lines` takes no arguments (got `{arg}`)"
        ));
    }
    let src = cmd::workspace_root().join("kernel").join("src");
    let lines = count(&src)?;
    println!("kernel lines without tests (non-blank, non-comment):");
    println!("  generic  {:>6}", lines.generic);
    println!("  riscv64  {:>6}", lines.riscv64);
    println!("  x86_64   {:>6}", lines.x86_64);
    println!(
        "  total    {:>6}  (generic + riscv64 {}, generic + x86_64 {})",
        lines.generic + lines.riscv64 + lines.x86_64,
        lines.generic + lines.riscv64,
        lines.generic + lines.x86_64
    );
    Ok(())
}

/// Counts the kernel sources below `src`.
pub fn count(src: &Path) -> Result<KernelLines, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut test_only = BTreeSet::new();
    let mut texts = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        for declared in test_module_files(&file, &text) {
            test_only.insert(declared);
        }
        texts.push((file, text));
    }
    let mut lines = KernelLines::default();
    for (file, text) in texts {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with("_tests.rs") || test_only.contains(&file) {
            continue;
        }
        let counted = count_code_lines(&text);
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let mut parts = relative.components().map(|c| c.as_os_str());
        let arch = match (parts.next(), parts.next(), parts.next()) {
            (Some(first), Some(second), Some(_)) if first == "arch" => second.to_str(),
            _ => None,
        };
        match arch {
            Some("riscv64") => lines.riscv64 += counted,
            Some("x86_64") => lines.x86_64 += counted,
            _ => lines.generic += counted,
        }
    }
    Ok(lines)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        fs::read_dir(dir).map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|error| format!("cannot list {}: {error}", dir.display()))?
            .path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The files that `file` declares as `#[cfg(test)] mod NAME;` (with an
/// optional `#[path = "..."]`).
fn test_module_files(file: &Path, text: &str) -> Vec<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new("."));
    // `foo.rs` declares its children in `foo/`; `mod.rs` and `lib.rs` in
    // their own folder.
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let child_dir = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let mut found = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "#[cfg(test)]" {
            continue;
        }
        let mut path_attr = None;
        for next in lines.by_ref() {
            if let Some(rest) = next.strip_prefix("#[path = \"") {
                path_attr = rest.strip_suffix("\"]").map(str::to_owned);
                continue;
            }
            let declared = next
                .strip_prefix("pub(crate) ")
                .or_else(|| next.strip_prefix("pub "))
                .unwrap_or(next);
            if let Some(name) = declared
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
            {
                match &path_attr {
                    Some(path) => found.push(dir.join(path)),
                    None => {
                        found.push(child_dir.join(format!("{name}.rs")));
                        found.push(child_dir.join(name).join("mod.rs"));
                    }
                }
            }
            break;
        }
    }
    found
}

/// Where the counter is in a `#[cfg(test)]` item it leaves out.
enum Skip {
    /// Counting.
    No,
    /// After `#[cfg(test)]`: the item (or its further attributes) comes next.
    Item,
    /// In the item, before its first `{`.
    AwaitingOpen,
    /// In the item's braces, this deep.
    Depth(i64),
}

/// Non-blank, non-comment lines of `text`, leaving out `#[cfg(test)]` items.
pub fn count_code_lines(text: &str) -> usize {
    let mut count = 0;
    let mut in_block_comment = false;
    let mut skip = Skip::No;
    for raw in text.lines() {
        let line = raw.trim();
        if in_block_comment {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        skip = match skip {
            Skip::No if line == "#[cfg(test)]" => Skip::Item,
            Skip::No => {
                count += 1;
                Skip::No
            }
            Skip::Item if line.starts_with("#[") => Skip::Item,
            Skip::Item | Skip::AwaitingOpen => {
                let balance = brace_balance(line);
                if balance > 0 {
                    Skip::Depth(balance)
                } else if line.contains('{') || line.ends_with(';') {
                    // `mod x;`, `use ...;` or a one-line item.
                    Skip::No
                } else {
                    Skip::AwaitingOpen
                }
            }
            Skip::Depth(depth) => {
                let depth = depth + brace_balance(line);
                if depth <= 0 {
                    Skip::No
                } else {
                    Skip::Depth(depth)
                }
            }
        };
    }
    count
}

/// `{` minus `}` on one line, ignoring those in string and char literals
/// and after a `//` comment.
fn brace_balance(line: &str) -> i64 {
    let mut balance = 0;
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if in_string {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_string = false;
            }
            previous = c;
            continue;
        }
        match c {
            '"' => in_string = true,
            '\'' if chars.peek().is_some_and(|n| *n == '{' || *n == '}') => {
                chars.next();
            }
            '/' if previous == '/' => break,
            '{' => balance += 1,
            '}' => balance -= 1,
            _ => {}
        }
        previous = c;
    }
    balance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_comment_lines_do_not_count() {
        let text = "//! crate doc\n\n/// item doc\nfn a() {\n    // note\n    let x = 1;\n}\n/* block\n   still */\nfn b() {}\n";
        assert_eq!(count_code_lines(text), 4);
    }

    #[test]
    fn cfg_test_modules_do_not_count() {
        let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn t() {\n        let s = \"}\";\n    }\n}\nfn b() {}\n";
        assert_eq!(count_code_lines(text), 2);
    }

    #[test]
    fn cfg_test_module_declarations_name_their_files() {
        let file = Path::new("/k/src/vm/control.rs");
        let text = "#[cfg(test)]\n#[path = \"control_tests.rs\"]\nmod tests;\n#[cfg(test)]\nmod helpers;\n";
        let found = test_module_files(file, text);
        assert!(found.contains(&PathBuf::from("/k/src/vm/control_tests.rs")));
        assert!(found.contains(&PathBuf::from("/k/src/vm/control/helpers.rs")));
    }
}
