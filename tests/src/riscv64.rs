//! Launching Mica on QEMU RISC-V the way the integration tests do, from the
//! artifacts `cargo xtask test` names in the environment.

use std::process::Command;
use std::time::Duration;

use crate::Session;

/// The path in environment variable `var`, or a message saying how to run.
pub fn artifact(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| {
        format!("{var} names a build artifact: run these tests with `cargo xtask test`")
    })
}

/// The hart the tests boot on: QEMU's default `rv64` (with the H
/// extension) plus Zkr, whose `seed` CSR is Mica's hardware entropy source
/// (OpenSBI sets mseccfg.SSEED so the kernel may read it). As `cargo xtask
/// qemu` runs; the benchmarks keep QEMU's default CPU. `cargo xtask qemu`
/// also adds QEMU's virtio-rng ([`RNG_DEVICE`]); the tests add it only
/// where they test the rng service, so elsewhere it says it has no device.
pub const CPU: &str = "rv64,zkr=true";

/// QEMU virt (4 harts as `cargo xtask qemu` boots, 512 MiB: room for
/// dynamic VMs next to the static ones) booting the kernel with the default
/// boot image, the shell on stdin; returns once the default scenario's last
/// VM (`vm1`) started.
pub fn booted_shell(boot: Duration) -> Result<Session, String> {
    booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64", "vm1", boot)
}

/// Like [`booted_shell`] with the boot image named by `image_var` (another
/// scenario's); returns once its VM `last_vm` started.
pub fn booted_scenario_shell(
    image_var: &str,
    last_vm: &str,
    boot: Duration,
) -> Result<Session, String> {
    booted_with(image_var, last_vm, None, CPU, &[], boot)
}

/// Like [`booted_shell`] on QEMU CPU model `cpu` (`-cpu`), e.g. `rv64`, a
/// hart without a hardware entropy source.
pub fn booted_shell_on_cpu(cpu: &str, boot: Duration) -> Result<Session, String> {
    booted_with("MICA_BOOT_IMAGE_RISCV64", "vm1", None, cpu, &[], boot)
}

/// QEMU's virtio-rng on the virt board's virtio-mmio bus (the rng
/// service's device), as `cargo xtask qemu` adds it.
pub const RNG_DEVICE: [&str; 2] = ["-device", "virtio-rng-device"];

/// The QEMU options that give Mica's block service host disk number `n`:
/// the raw image file `path` as a virtio-blk device whose serial is
/// `mica<n>` (the block service numbers disks by it). `cargo xtask qemu`
/// adds one per scenario `disk =`, in the file's order.
pub fn disk_args(n: usize, path: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={path},if=none,format=raw,id=mica{n}"),
        "-device".into(),
        format!("virtio-blk-device,drive=mica{n},serial=mica{n}"),
    ]
}

/// Like [`booted_scenario_shell`] with `extra` QEMU options (a scenario's
/// disks: [`disk_args`]).
pub fn booted_scenario_shell_with(
    image_var: &str,
    last_vm: &str,
    extra: &[&str],
    boot: Duration,
) -> Result<Session, String> {
    booted_with(image_var, last_vm, None, CPU, extra, boot)
}

/// Like [`booted_shell_on_cpu`] with the host's virtio-rng
/// ([`RNG_DEVICE`]) on the machine and `cmdline`, if any, as the kernel
/// command line.
pub fn booted_shell_on_cpu_with_virtio_rng(
    cpu: &str,
    cmdline: Option<&str>,
    boot: Duration,
) -> Result<Session, String> {
    booted_with(
        "MICA_BOOT_IMAGE_RISCV64",
        "vm1",
        cmdline,
        cpu,
        &RNG_DEVICE,
        boot,
    )
}

/// Like [`booted_shell`] with `cmdline` as the kernel command line (QEMU's
/// `-append`, the device tree's `/chosen` `bootargs`).
pub fn booted_shell_with_cmdline(cmdline: &str, boot: Duration) -> Result<Session, String> {
    booted_with(
        "MICA_BOOT_IMAGE_RISCV64",
        "vm1",
        Some(cmdline),
        CPU,
        &[],
        boot,
    )
}

fn booted_with(
    image_var: &str,
    last_vm: &str,
    cmdline: Option<&str>,
    cpu: &str,
    extra: &[&str],
    boot: Duration,
) -> Result<Session, String> {
    let kernel = artifact("MICA_KERNEL_RISCV64")?;
    let image = artifact(image_var)?;
    let mut command = Command::new("qemu-system-riscv64");
    command
        .args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-cpu", cpu, "-m", "512M", "-smp", "4", "-kernel", &kernel])
        .args(["-initrd", &image])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(extra);
    if let Some(cmdline) = cmdline {
        command.args(["-append", cmdline]);
    }
    let mut session = Session::spawn_with_stdin(command)?;
    session.expect(&format!("vm-manager: {last_vm} started"), boot)?;
    Ok(session)
}

/// Types `halt` at the shell and checks that QEMU powers off with status 0
/// within `wait`.
pub fn halt_with_status_0(mut s: Session, wait: Duration) {
    s.send("halt\n").expect("halt typed");
    s.expect("mica: halting", wait).expect("mica: halting");
    let status = s.wait_exit(wait).expect("QEMU exits");
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
