//! Builds the bare-metal pieces the boot image is made of: guest programs
//! as raw Linux-boot-protocol images (ELF flattened with llvm-objcopy).
//! Each is a sub-step of building a boot image, which says so in one
//! line: these run quietly (cargo `--quiet` still shows warnings and
//! errors) and a failure names the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cargo, run_quiet, workspace_root};

/// The target every RISC-V piece is built for.
pub const RISCV_TARGET: &str = "riscv64gc-unknown-none-elf";

/// The service and user task packages every RISC-V image carries (the
/// vm-manager is built apart: its scenario is compiled in).
pub const SERVICE_TASKS: &[&str] = &[
    "mica-init",
    "mica-ioreq",
    "mica-devices",
    "mica-shell",
    "mica-mgmt-task",
    "mica-rng-task",
    "mica-blk-task",
    "mica-crasher",
];

/// Where a release ELF of `package` lands.
pub fn riscv_elf(package: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join(RISCV_TARGET)
        .join("release")
        .join(package)
}

/// Builds the guest `package` and flattens it into `<elf>.bin`, the raw
/// image a VM boots (entry at its first byte).
pub fn guest_raw(package: &str) -> Result<PathBuf, String> {
    guest_bin_raw(package, package)
}

/// Like [`guest_raw`] for the binary `bin` of `package` (a package may
/// hold more than one guest).
pub fn guest_bin_raw(package: &str, bin: &str) -> Result<PathBuf, String> {
    build_guest(package, RISCV_TARGET, &format!("build guest {package}"))?;
    let elf = riscv_elf(bin);
    let raw = elf.with_extension("bin");
    flatten(&elf, &raw)?;
    Ok(raw)
}

/// Builds the x86 guest `package` for `x86_64-unknown-none` and flattens
/// it into `<elf>.bin` (linked at 1 MiB; entry at its first byte).
pub fn x86_guest_raw(package: &str) -> Result<PathBuf, String> {
    x86_guest_bin_raw(package, package)
}

/// Like [`x86_guest_raw`] for the binary `bin` of `package`.
pub fn x86_guest_bin_raw(package: &str, bin: &str) -> Result<PathBuf, String> {
    let target = crate::x86::X86_TARGET;
    build_guest(package, target, &format!("build guest {package} (x86_64)"))?;
    let elf = workspace_root()
        .join("target")
        .join(target)
        .join("release")
        .join(bin);
    let raw = elf.with_extension("bin");
    flatten(&elf, &raw)?;
    Ok(raw)
}

/// `cargo build --quiet --release -p package --target target`.
fn build_guest(package: &str, target: &str, what: &str) -> Result<(), String> {
    run_quiet(
        cargo().args([
            "build",
            "--quiet",
            "--release",
            "-p",
            package,
            "--target",
            target,
        ]),
        what,
    )
}

/// Writes `elf` without symbols and debug information to `out` (a task's
/// image in the boot image needs only its loadable segments).
pub fn stripped(elf: &Path, out: &Path) -> Result<PathBuf, String> {
    let objcopy = llvm_tool("llvm-objcopy")?;
    run_quiet(
        Command::new(objcopy).arg("--strip-all").arg(elf).arg(out),
        "strip a task image",
    )?;
    Ok(out.to_path_buf())
}

/// `llvm-objcopy -O binary`: the loadable bytes from the lowest address on.
pub fn flatten(elf: &Path, raw: &Path) -> Result<(), String> {
    let objcopy = llvm_tool("llvm-objcopy")?;
    run_quiet(
        Command::new(objcopy)
            .args(["-O", "binary"])
            .arg(elf)
            .arg(raw),
        "flatten an ELF into a raw image",
    )
}

/// A tool of rustup's `llvm-tools` component for the running toolchain.
fn llvm_tool(name: &str) -> Result<PathBuf, String> {
    let output = Command::new("rustc")
        .current_dir(workspace_root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc --print sysroot: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let host = host_triple()?;
    let tool = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin")
        .join(name);
    if tool.is_file() {
        Ok(tool)
    } else {
        Err(format!(
            "{} is missing: run `rustup component add llvm-tools`",
            tool.display()
        ))
    }
}

/// The host triple rustc builds for (`x86_64-unknown-linux-gnu` here).
fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc")
        .current_dir(workspace_root())
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| "rustc -vV names no host".into())
}
