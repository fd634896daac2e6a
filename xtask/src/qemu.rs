//! `cargo xtask qemu`: build Mica and boot the default scenario on QEMU.

use std::process::Command;

use crate::cmd::{cargo, run as run_cmd, workspace_root};
use crate::install;

const RISCV_TARGET: &str = "riscv64gc-unknown-none-elf";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`xtask qemu` does not know the option `{arg}` yet"));
    }
    let root = workspace_root();
    if !root.join("kernel").join("Cargo.toml").exists() {
        return Err(
            "the Mica kernel is not built yet: this checkout has only the host-side \
                    service libraries (run `cargo xtask test` for them)"
                .into(),
        );
    }
    install::rust_targets()?;
    install::qemu()?;
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
    let kernel = root
        .join("target")
        .join(RISCV_TARGET)
        .join("release")
        .join("mica-kernel");
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args([
        "-machine",
        "virt",
        "-nographic",
        "-bios",
        "default",
        "-m",
        "256M",
        "-kernel",
    ])
    .arg(&kernel);
    run_cmd(&mut qemu, "boot Mica on QEMU")
}
