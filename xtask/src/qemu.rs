//! `cargo xtask qemu`: build Mica and boot the default scenario on QEMU.

use std::path::PathBuf;
use std::process::Command;

use crate::cmd::{cargo, run as run_cmd, workspace_root};
use crate::install;

const RISCV_TARGET: &str = "riscv64gc-unknown-none-elf";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`xtask qemu` does not know the option `{arg}` yet"));
    }
    install::rust_targets()?;
    install::qemu()?;
    let kernel = build_kernel()?;
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
    .args(["-smp", "2", "-kernel"])
    .arg(&kernel);
    run_cmd(&mut qemu, "boot Mica on QEMU")
}

/// Builds the RISC-V kernel (release) and returns the path of its ELF.
pub fn build_kernel() -> Result<PathBuf, String> {
    run_cmd(
        cargo().args([
            "build",
            "--release",
            "-p",
            "mica-kernel",
            "--target",
            RISCV_TARGET,
        ]),
        "build the kernel",
    )?;
    Ok(workspace_root()
        .join("target")
        .join(RISCV_TARGET)
        .join("release")
        .join("mica-kernel"))
}
