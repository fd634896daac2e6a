//! The x86_64 boot image: the service tasks built for `x86_64-unknown-none`
//! (ring 3 under the x86 kernel), packed with the same manifest as on
//! RISC-V and handed to QEMU's Multiboot loader with `-initrd` (it becomes
//! the first Multiboot module). No x86 guest images yet: the vm-manager's
//! VM calls are refused on x86 until SVM vCPUs come from them.

use std::path::PathBuf;

use mica_boot::image::{EntryKind, KernelRights};

use crate::artifacts;
use crate::cmd::{cargo, run, workspace_root};
use crate::image::{Part, pack};
use crate::x86::X86_TARGET;

/// Endpoint numbers (`ipc::syscall::endpoints`).
const VM_MANAGER: u8 = 1;
const IOREQ: u8 = 2;
const DEVICES: u8 = 3;

fn service(
    name: &str,
    path: PathBuf,
    priority: u8,
    serves: Option<u8>,
    may_call: &'static [u8],
    rights: KernelRights,
) -> Part {
    Part {
        name: name.into(),
        kind: EntryKind::Service,
        priority,
        serves,
        may_call,
        rights,
        path,
    }
}

/// Builds the x86 service tasks and packs `target/mica/x86_64/boot.img`.
pub fn build_boot_image() -> Result<PathBuf, String> {
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", X86_TARGET]);
    for package in ["mica-init", "mica-ioreq", "mica-devices", "mica-vm-manager"] {
        tasks.args(["-p", package]);
    }
    let scenario = workspace_root().join("configs").join("default.toml");
    run(
        tasks.env("MICA_SCENARIO_FILE", &scenario),
        "build the service tasks (x86_64)",
    )?;
    let dir = workspace_root().join("target").join("mica").join("x86_64");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let elf = |package: &str| {
        workspace_root()
            .join("target")
            .join(X86_TARGET)
            .join("release")
            .join(package)
    };
    let task = |package: &str| artifacts::stripped(&elf(package), &dir.join(package));
    let parts = vec![
        service(
            "init",
            task("mica-init")?,
            10,
            None,
            &[],
            KernelRights::SUPERVISOR,
        ),
        service(
            "ioreq",
            task("mica-ioreq")?,
            9,
            Some(IOREQ),
            &[DEVICES],
            KernelRights::IOREQ,
        ),
        service(
            "devices",
            task("mica-devices")?,
            8,
            Some(DEVICES),
            &[],
            KernelRights::CONSOLE,
        ),
        service(
            "vm-manager",
            task("mica-vm-manager")?,
            7,
            Some(VM_MANAGER),
            &[IOREQ, DEVICES],
            KernelRights::VM_CONTROL,
        ),
    ];
    let out = dir.join("boot.img");
    let size = pack(&parts, &out)?;
    println!("xtask: boot image {} ({size} bytes)", out.display());
    Ok(out)
}
