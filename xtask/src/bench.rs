//! `cargo xtask bench`: boots the benchmark guest under QEMU with
//! `-icount shift=0`, so `instret` counts executed instructions exactly,
//! and reports the instructions per null SBI call and per 16550 LSR read
//! round trip (kernel -> ioreq -> devices -> back) in
//! `target/bench/riscv64.json`. `--arch x86_64` measures the x86 guest
//! paths instead (`bench_x86`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mica_tests::Session;

use crate::cmd::workspace_root;
use crate::{install, qemu};

/// The figures the benchmark guest prints, in the order of the JSON file.
pub const KEYS: [&str; 2] = ["null_sbi_call", "mmio_uart_roundtrip"];

/// `cargo xtask bench`: builds the kernel and the `bench` scenario's boot
/// image, then measures.
pub fn run(args: &[String]) -> Result<(), String> {
    let (arch, args) = crate::x86::take_arch(args)?;
    if arch == crate::x86::Arch::X86_64 {
        return crate::bench_x86::run(&args);
    }
    if let Some(arg) = args.first() {
        return Err(format!(
            "`xtask bench` does not know the option `{arg}` yet"
        ));
    }
    install::rust_targets()?;
    install::qemu()?;
    let kernel = qemu::build_kernel()?;
    let image = qemu::build_boot_image("bench", false)?;
    let out = workspace_root()
        .join("target")
        .join("bench")
        .join("riscv64.json");
    run_riscv64(&kernel, &image, &out)
}

/// Boots `kernel` with `boot_image` (whose scenario runs the bench guest),
/// collects the figures and writes them to `out`.
pub fn run_riscv64(kernel: &Path, boot_image: &Path, out: &Path) -> Result<(), String> {
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args([
        "-machine",
        "virt",
        "-nographic",
        "-bios",
        "default",
        "-m",
        "256M",
    ])
    .args([
        "-icount", "shift=0", "-monitor", "none", "-serial", "stdio", "-kernel",
    ])
    .arg(kernel)
    .arg("-initrd")
    .arg(boot_image);
    let mut session = Session::spawn(qemu)?;
    let figures = collect(&mut session, &KEYS, "instructions")?;
    write_json(out, &figures)
}

/// Reads `bench: <key> N` for each of `keys` in order, then `bench: done`,
/// from `session`; prints each figure with its `unit`.
pub fn collect<'k>(
    session: &mut Session,
    keys: &[&'k str],
    unit: &str,
) -> Result<Vec<(&'k str, u64)>, String> {
    let mut figures = Vec::new();
    for &key in keys {
        let line = session.expect(&format!("bench: {key} "), Duration::from_secs(300))?;
        let value = parse_figure(&line, key)
            .ok_or_else(|| format!("cannot read the figure in {line:?}"))?;
        println!("bench: {key} = {value} {unit}");
        figures.push((key, value));
    }
    session.expect("bench: done", Duration::from_secs(60))?;
    Ok(figures)
}

/// The number after `bench: <key> ` in a console line (which may carry a
/// `vm0 | ` prefix).
fn parse_figure(line: &str, key: &str) -> Option<u64> {
    let marker = format!("bench: {key} ");
    let at = line.find(&marker)? + marker.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Writes `{"key": value, ...}` with a trailing newline.
pub fn write_json(out: &Path, figures: &[(&str, u64)]) -> Result<(), String> {
    let body: Vec<String> = figures
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {v}"))
        .collect();
    let text = format!("{{\n{}\n}}\n", body.join(",\n"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("bench: wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_figure, write_json};

    #[test]
    fn reads_a_figure_with_or_without_the_vm_prefix() {
        assert_eq!(
            parse_figure("vm0 | bench: null_sbi_call 412", "null_sbi_call"),
            Some(412)
        );
        assert_eq!(
            parse_figure("bench: mmio_uart_roundtrip 1337", "mmio_uart_roundtrip"),
            Some(1337)
        );
        assert_eq!(
            parse_figure("bench: null_sbi_call x", "null_sbi_call"),
            None
        );
        assert_eq!(parse_figure("bench: other 5", "null_sbi_call"), None);
    }

    #[test]
    fn writes_the_figures_as_json() {
        let dir = std::env::temp_dir().join(format!("mica-bench-{}", std::process::id()));
        let out = dir.join("riscv64.json");
        write_json(&out, &[("null_sbi_call", 7), ("mmio_uart_roundtrip", 900)]).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "{\n  \"null_sbi_call\": 7,\n  \"mmio_uart_roundtrip\": 900\n}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
