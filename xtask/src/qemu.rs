//! `cargo xtask qemu`: build Mica (the kernel and the boot image it loads
//! as its initrd) and boot the default scenario on QEMU.

use std::path::PathBuf;
use std::process::Command;

use mica_boot::image::{EntryKind, KernelRights};

use crate::artifacts::{self, RISCV_TARGET, riscv_elf};
use crate::cmd::{cargo, run as run_cmd, workspace_root};
use crate::image::{Part, pack};
use crate::install;

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`xtask qemu` does not know the option `{arg}` yet"));
    }
    install::rust_targets()?;
    install::qemu()?;
    let kernel = build_kernel()?;
    let image = build_boot_image()?;
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
    .arg(&kernel)
    .arg("-initrd")
    .arg(&image);
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
    Ok(riscv_elf("mica-kernel"))
}

/// The vm-manager's endpoint number (`ipc::syscall::endpoints::VM_MANAGER`).
const VM_MANAGER: u8 = 1;

/// A service part of the default boot image.
fn service(
    name: &'static str,
    package: &str,
    priority: u8,
    serves: Option<u8>,
    may_call: &'static [u8],
    rights: KernelRights,
) -> Part {
    Part {
        name,
        kind: EntryKind::Service,
        priority,
        serves,
        may_call,
        rights,
        path: riscv_elf(package),
    }
}

/// Builds the service tasks and the test guests, packs them into
/// `target/mica/riscv64/boot.img` and returns its path.
pub fn build_boot_image() -> Result<PathBuf, String> {
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", RISCV_TARGET]);
    for package in ["mica-init", "mica-hello", "mica-crasher"] {
        tasks.args(["-p", package]);
    }
    run_cmd(&mut tasks, "build the service tasks")?;
    let guest = |name: &'static str, path: PathBuf| Part {
        name,
        kind: EntryKind::Guest,
        priority: 0,
        serves: None,
        may_call: &[],
        rights: KernelRights::default(),
        path,
    };
    let parts = [
        service(
            "init",
            "mica-init",
            10,
            None,
            &[VM_MANAGER],
            KernelRights::SUPERVISOR,
        ),
        // Stands in for the vm-manager until that service is packed here.
        service(
            "hello",
            "mica-hello",
            8,
            Some(VM_MANAGER),
            &[],
            KernelRights::VM_CONTROL,
        ),
        service(
            "crasher",
            "mica-crasher",
            2,
            None,
            &[],
            KernelRights::default(),
        ),
        guest("guest-hello", artifacts::guest_raw("mica-guest-hello")?),
        guest(
            "guest-misbehave",
            artifacts::guest_raw("mica-guest-misbehave")?,
        ),
    ];
    let out = workspace_root()
        .join("target")
        .join("mica")
        .join("riscv64")
        .join("boot.img");
    let size = pack(&parts, &out)?;
    println!("xtask: boot image {} ({size} bytes)", out.display());
    Ok(out)
}
