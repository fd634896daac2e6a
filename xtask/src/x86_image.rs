//! The x86_64 boot image: the service tasks built for `x86_64-unknown-none`
//! (ring 3 under the x86 kernel), packed with the same manifest as on
//! RISC-V and handed to QEMU's Multiboot loader with `-initrd` (it becomes
//! the first Multiboot module), with the x86 test guests (`x86-hello`,
//! `x86-misbehave`, `x86-poweroff`, `x86-bench`, `x86-hostile`,
//! `x86-steady`, `x86-smp`) the scenario's VMs boot. No rng task: x86 QEMU has no
//! virtio-mmio bus, so RDSEED/RDRAND are the only entropy source there
//! (the vm-manager's and the device service's call slot to the rng
//! endpoint stays empty, and they say so if the CPU has neither).

use std::path::PathBuf;

use mica_boot::image::KernelRights;

use crate::artifacts;
use crate::cmd::{cargo, run, workspace_root};
use crate::image::{core_services, guest, pack_into};
use crate::x86::X86_TARGET;

/// The scenario `cargo xtask qemu --arch x86_64` boots by default.
pub const DEFAULT_SCENARIO: &str = "x86-default";

/// Builds the x86 service tasks (the vm-manager with
/// `configs/<scenario>.toml` compiled in) and the x86 guests, and packs
/// `target/mica/x86_64/<scenario>/boot.img`.
pub fn build_boot_image(scenario: &str) -> Result<PathBuf, String> {
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", X86_TARGET]);
    for package in ["mica-init", "mica-ioreq", "mica-devices", "mica-vm-manager"] {
        tasks.args(["-p", package]);
    }
    let file = workspace_root()
        .join("configs")
        .join(format!("{scenario}.toml"));
    if !file.is_file() {
        return Err(format!("no scenario `{scenario}` ({})", file.display()));
    }
    run(
        tasks.env("MICA_SCENARIO_FILE", &file),
        "build the service tasks (x86_64)",
    )?;
    let dir = workspace_root()
        .join("target")
        .join("mica")
        .join("x86_64")
        .join(scenario);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let elf = |package: &str| {
        workspace_root()
            .join("target")
            .join(X86_TARGET)
            .join("release")
            .join(package)
    };
    println!(
        "xtask: build the x86 test guests and pack the boot image into {}",
        dir.display()
    );
    let task = |package: &str| artifacts::stripped(&elf(package), &dir.join(package));
    let mut parts = core_services(task, KernelRights::CONSOLE)?;
    parts.extend([
        guest(
            "x86-hello",
            artifacts::x86_guest_raw("mica-guest-x86-hello")?,
        ),
        guest(
            "x86-misbehave",
            artifacts::x86_guest_raw("mica-guest-x86-misbehave")?,
        ),
        guest(
            "x86-bench",
            artifacts::x86_guest_raw("mica-guest-x86-bench")?,
        ),
        guest(
            "x86-poweroff",
            artifacts::x86_guest_raw("mica-guest-x86-poweroff")?,
        ),
        guest(
            "x86-hostile",
            artifacts::x86_guest_bin_raw("mica-guest-x86-hostile", "mica-guest-x86-hostile")?,
        ),
        guest(
            "x86-steady",
            artifacts::x86_guest_bin_raw("mica-guest-x86-hostile", "mica-guest-x86-steady")?,
        ),
        guest("x86-smp", artifacts::x86_guest_raw("mica-guest-x86-smp")?),
    ]);
    pack_into(&parts, &dir)
}
