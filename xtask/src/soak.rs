//! `cargo xtask soak [--cycles N]`: the long run of the soak that `cargo
//! xtask test` runs briefly: N (default 1,000) dynamic VMs created,
//! started and destroyed from the shell while the ioreq and device
//! services are killed every 500 ms (`mica.chaos`), then `mem` must show
//! every frame back and `vm list` only the static VMs. Prints the cycles,
//! the service kills and the frames leaked.

use crate::cmd::{self, cargo};
use crate::{install, qemu};

/// Cycles when `--cycles` is not given.
const DEFAULT_CYCLES: u32 = 1000;

pub fn run(args: &[String]) -> Result<(), String> {
    let cycles = match args {
        [] => DEFAULT_CYCLES,
        [flag, n] if flag == "--cycles" => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`--cycles {n}`: give a number of cycles above 0"))?,
        other => return Err(format!("`xtask soak` takes [--cycles N], not {other:?}")),
    };
    install::qemu()?;
    let kernel = qemu::build_kernel()?;
    let image = qemu::build_boot_image("hello", false)?;
    cmd::run(
        cargo()
            .args(["test", "-p", "mica-tests", "--test", "riscv64_shell"])
            .args(["a_soak_of_vm_cycles", "--", "--ignored", "--nocapture"])
            .env("MICA_KERNEL_RISCV64", &kernel)
            .env("MICA_BOOT_IMAGE_RISCV64", &image)
            .env("MICA_SOAK_CYCLES", cycles.to_string()),
        &format!("soak ({cycles} cycles with services killed)"),
    )
}
