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

/// The user tasks the kernel embeds: package, and the variable that hands
/// its ELF to the kernel's build script.
const TASKS: [(&str, &str); 3] = [
    ("mica-init", "MICA_TASK_INIT"),
    ("mica-hello", "MICA_TASK_HELLO"),
    ("mica-crasher", "MICA_TASK_CRASHER"),
];

/// Builds the user tasks, then the RISC-V kernel that embeds them (both
/// release) and returns the path of the kernel's ELF.
pub fn build_kernel() -> Result<PathBuf, String> {
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", RISCV_TARGET]);
    for (package, _) in TASKS {
        tasks.args(["-p", package]);
    }
    run_cmd(&mut tasks, "build the user tasks")?;
    let release = workspace_root()
        .join("target")
        .join(RISCV_TARGET)
        .join("release");
    let mut kernel = cargo();
    for (package, var) in TASKS {
        kernel.env(var, release.join(package));
    }
    run_cmd(
        kernel.args([
            "build",
            "--release",
            "-p",
            "mica-kernel",
            "--target",
            RISCV_TARGET,
        ]),
        "build the kernel",
    )?;
    Ok(release.join("mica-kernel"))
}
