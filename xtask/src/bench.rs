//! `cargo xtask bench`: boots the benchmark guest (`tests/guests/bench`)
//! under QEMU with `-icount shift=0`, so `instret` counts executed
//! instructions exactly and one instruction is 1 ns of guest time, under
//! Mica (scenario `bench`) and natively (`bench_run`), and reports per null
//! SBI call and per 16550 LSR read round trip (kernel -> ioreq -> devices
//! -> back) the instructions, the guest time and the worst idle gap; the
//! round trip's stages from an exec trace of the same run (`bench_trace`);
//! an IPI round trip between the guest's two harts and SBI remote fences
//! (`bench_harts`), and the first figures again with Mica on 4 host harts
//! instead of 1 (`smp4_*`, only those: QEMU is stopped after them) and
//! with two busy VMs on the same host hart (`busy_*`, scenario
//! `bench-busy`);
//! 64 KiB of sustained UART output per million instructions, per second of
//! guest time and per second of wall time, with and without Mica, written
//! byte by byte (`uart_out_*`) and in 16-byte FIFO bursts (`uart_fifo_*`);
//! and
//! `linux_boot` (Debian's Linux to its `/init` marker without and under
//! Mica, `bench_linux`) and the disk figures (`bench_disk`), which
//! `--guest-only` leaves out. All go to `target/bench/riscv64.json`
//! (`bench_report`). `--arch x86_64` measures the x86 guest paths instead
//! (`bench_x86`).

use std::path::Path;
use std::time::Duration;

use mica_tests::Session;

use crate::artifacts::riscv_elf;
use crate::cmd::workspace_root;
use crate::{bench_disk, bench_harts, bench_linux, bench_report, bench_run, guests, install, qemu};

/// `cargo xtask bench`: builds the kernel and the `bench` scenario's boot
/// image, then measures.
pub fn run(args: &[String]) -> Result<(), String> {
    let (arch, args) = crate::x86::take_arch(args)?;
    if arch == crate::x86::Arch::X86_64 {
        return crate::bench_x86::run(&args);
    }
    let guest_only = match args.as_slice() {
        [] => false,
        [only] if only == "--guest-only" => true,
        [arg, ..] => {
            return Err(format!(
                "`xtask bench` does not know the option `{arg}` (it has --arch and \
                 --guest-only)"
            ));
        }
    };
    install::rust_targets()?;
    install::qemu()?;
    let kernel = qemu::build_kernel()?;
    let image = qemu::build_boot_image("bench", false)?;
    let out = workspace_root()
        .join("target")
        .join("bench")
        .join("riscv64.json");
    let (mica, breakdown) = bench_run::under_mica(&kernel, &image)?;
    let more_cpus = bench_run::cpu_figures(&kernel, &image, bench_run::MICA_MORE_CPUS)?;
    let busy_image = qemu::build_boot_image("bench-busy", false)?;
    let (busy, busy_out) = bench_run::beside_busy_vms(&kernel, &busy_image)?;
    let native = bench_run::native(&riscv_elf("mica-guest-bench"))?;
    let mut figures = Vec::new();
    let report = bench_report::figures(&mica, &native, breakdown.as_ref().ok())
        .into_iter()
        .chain(bench_harts::figures(&mica, &native))
        .chain(bench_harts::cpu_figures(&mica.figures, &more_cpus))
        .chain(bench_harts::busy_figures(&mica.figures, &busy))
        .chain([bench_harts::busy_share(&mica.out, &busy_out)]);
    for (key, value, summary) in report {
        println!("bench: {key} = {summary}");
        figures.push((key.to_string(), value));
    }
    if guest_only {
        write_json_text(&out, &figures)?;
        return breakdown
            .map(|_| ())
            .map_err(|e| format!("no stage breakdown (the other figures are written): {e}"));
    }
    let linux = linux_boot(&kernel, &mut figures);
    let disk = disk(&kernel, &mut figures);
    write_json_text(&out, &figures)?;
    breakdown.map_err(|e| format!("no stage breakdown (the other figures are written): {e}"))?;
    linux.and(disk)
}

/// `disk_*`: sequential reads and writes with `dd` natively and under Mica
/// (`bench_disk`); adds what was measured to `figures`.
fn disk(kernel: &Path, figures: &mut Vec<(String, String)>) -> Result<(), String> {
    let guest = guests::fetch()?;
    let image = workspace_root()
        .join("target")
        .join("bench")
        .join("disk.img");
    let native = bench_disk::native(&guest, &image)?;
    let mica = qemu::build_boot_image("linux-disk", false)
        .and_then(|boot| bench_disk::under_mica(kernel, &boot, &image));
    for (key, value, summary) in bench_disk::figures(&native, mica.as_ref().ok()) {
        println!("bench: {key} = {summary}");
        figures.push((key, value));
    }
    mica.map(|_| ())
        .map_err(|e| format!("disk runs under Mica failed (the other figures are written): {e}"))
}

/// `linux_boot`: Debian's Linux to its `/init` marker without Mica and
/// under Mica (`bench_linux`); adds what was measured to `figures`, so a
/// failure under Mica still leaves the native figure in the JSON file.
fn linux_boot(kernel: &Path, figures: &mut Vec<(String, String)>) -> Result<(), String> {
    let guest = guests::fetch()?;
    let native = bench_linux::native(&guest)?;
    println!("bench: linux_boot native = {native} ms of guest time");
    let mica = qemu::build_boot_image("linux-bench", false)
        .and_then(|image| bench_linux::under_mica(kernel, &image));
    figures.extend(
        bench_linux::figures(native, mica.as_ref().ok().copied())
            .into_iter()
            .map(|(key, value)| (key.to_string(), value)),
    );
    match mica {
        Ok(ms) => {
            println!("bench: linux_boot under Mica = {ms} ms of guest time");
            Ok(())
        }
        Err(e) => Err(format!(
            "linux_boot under Mica failed (the other figures are written): {e}"
        )),
    }
}

/// Reads `bench: <key> N` for each of `keys` in order, then `bench: done`,
/// from `session`; prints each figure with its `unit`.
pub fn collect<'k>(
    session: &mut Session,
    keys: &[&'k str],
    unit: &str,
) -> Result<Vec<(&'k str, u64)>, String> {
    let figures = read_figures(session, keys, unit)?;
    session.expect("bench: done", Duration::from_secs(60))?;
    Ok(figures)
}

/// [`collect`] without waiting for `bench: done`.
pub fn read_figures<'k>(
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
    Ok(figures)
}

/// The number after `bench: <key> ` in a console line (which may carry a
/// `vm0 | ` prefix).
pub fn parse_figure(line: &str, key: &str) -> Option<u64> {
    let marker = format!("bench: {key} ");
    let at = line.find(&marker)? + marker.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Writes `{"key": value, ...}` with each value as given (a JSON number).
pub fn write_json_text<K: AsRef<str>>(out: &Path, figures: &[(K, String)]) -> Result<(), String> {
    let body: Vec<String> = figures
        .iter()
        .map(|(k, v)| format!("  \"{}\": {v}", k.as_ref()))
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
    use super::{parse_figure, write_json_text};

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
        let figures = [
            ("null_sbi_call", "7".to_string()),
            ("mmio_uart_roundtrip", "900".to_string()),
        ];
        write_json_text(&out, &figures).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "{\n  \"null_sbi_call\": 7,\n  \"mmio_uart_roundtrip\": 900\n}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_fractional_figures_as_given() {
        let dir = std::env::temp_dir().join(format!("mica-bench-text-{}", std::process::id()));
        let out = dir.join("riscv64.json");
        let figures = [
            ("linux_boot_native_ms", "1760".into()),
            ("linux_boot_ratio", "2.50".into()),
        ];
        write_json_text(&out, &figures).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "{\n  \"linux_boot_native_ms\": 1760,\n  \"linux_boot_ratio\": 2.50\n}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
