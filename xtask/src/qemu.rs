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
    let image = build_boot_image("default", false)?;
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

/// Endpoint numbers (`ipc::syscall::endpoints`).
const VM_MANAGER: u8 = 1;
const IOREQ: u8 = 2;
const DEVICES: u8 = 3;
/// The test-only crasher serves this endpoint once restarted.
const CRASHER: u8 = 4;

/// The build-time scenarios of the vm-manager task (`scenario.rs` there).
pub const SCENARIOS: [&str; 3] = ["default", "misbehave", "bench"];

/// A service part of the boot image.
fn service(
    name: &'static str,
    path: PathBuf,
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
        path,
    }
}

/// A guest part of the boot image.
fn guest(name: &'static str, path: PathBuf) -> Part {
    let rights = KernelRights::default();
    Part {
        name,
        kind: EntryKind::Guest,
        priority: 0,
        serves: None,
        may_call: &[],
        rights,
        path,
    }
}

/// Builds the services (the vm-manager with `scenario`), the guests and,
/// with `crasher`, the test service that faults once; packs them into
/// `target/mica/riscv64/<scenario>[-crasher]/boot.img` and returns its path.
pub fn build_boot_image(scenario: &str, crasher: bool) -> Result<PathBuf, String> {
    if !SCENARIOS.contains(&scenario) {
        return Err(format!(
            "no scenario `{scenario}`; use one of {SCENARIOS:?}"
        ));
    }
    let dir = workspace_root().join("target").join("mica").join("riscv64");
    let dir = dir.join(if crasher {
        format!("{scenario}-crasher")
    } else {
        scenario.to_string()
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", RISCV_TARGET]);
    for package in ["mica-init", "mica-ioreq", "mica-devices", "mica-crasher"] {
        tasks.args(["-p", package]);
    }
    run_cmd(&mut tasks, "build the service tasks")?;
    // The scenario is compiled into the vm-manager: build it for this one.
    run_cmd(
        cargo()
            .args([
                "build",
                "--release",
                "--target",
                RISCV_TARGET,
                "-p",
                "mica-vm-manager",
            ])
            .env("MICA_SCENARIO", scenario),
        &format!("build the vm-manager ({scenario} scenario)"),
    )?;
    // The next scenario's build replaces the vm-manager ELF: keep this one.
    let task = |package: &str| artifacts::stripped(&riscv_elf(package), &dir.join(package));
    let vm_manager = task("mica-vm-manager")?;
    let mut parts = vec![
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
            vm_manager,
            7,
            Some(VM_MANAGER),
            &[IOREQ, DEVICES],
            KernelRights::VM_CONTROL,
        ),
        guest("hello", artifacts::guest_raw("mica-guest-hello")?),
        guest("misbehave", artifacts::guest_raw("mica-guest-misbehave")?),
        guest("bench", artifacts::guest_raw("mica-guest-bench")?),
    ];
    if crasher {
        let path = task("mica-crasher")?;
        parts.push(service(
            "crasher",
            path,
            2,
            Some(CRASHER),
            &[],
            KernelRights::default(),
        ));
    }
    let out = dir.join("boot.img");
    let size = pack(&parts, &out)?;
    println!("xtask: boot image {} ({size} bytes)", out.display());
    Ok(out)
}
