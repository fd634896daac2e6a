//! `cargo xtask qemu`: build Mica (the kernel and the boot image it loads
//! as its initrd) and boot the default scenario on QEMU.

use std::path::PathBuf;
use std::process::Command;

use mica_boot::image::KernelRights;

use crate::artifacts::{self, RISCV_TARGET, riscv_elf};
use crate::cmd::{cargo, run as run_cmd, workspace_root};
use crate::image::{
    Part, VIRTIO_CONSOLE, VM_MANAGER, blk_service, core_services, guest, pack_into, rng_service,
    service,
};
use crate::install;
use crate::mgmt_socket;
use crate::options::{self, GuestSpec, Mgmt};
use vm_manager::scenario_file;

#[path = "qemu_stdin.rs"]
mod stdin;

pub fn run(args: &[String]) -> Result<(), String> {
    let (arch, args) = crate::x86::take_arch(args)?;
    if arch == crate::x86::Arch::X86_64 {
        let (emulator, args) = crate::bochs::take_emulator(&args)?;
        return match emulator {
            crate::bochs::Emulator::Qemu => crate::x86::run(&args),
            crate::bochs::Emulator::Bochs => crate::bochs::run_cli(&args),
        };
    }
    let options = options::parse(&args)?;
    let scenario = options.scenario.as_deref().unwrap_or("default");
    // Refuse a bad scenario, guest or disk file before building anything.
    let text = scenario_text(scenario, &options.guests)?;
    let disks = disk_args(&text)?;
    for guest in &options.guests {
        guest.check_file()?;
    }
    // Claimed before the long build: a second `cargo xtask qemu` on the
    // same path is refused at once.
    let mgmt = claim_mgmt_socket(&options.mgmt)?;
    install::rust_targets()?;
    install::qemu()?;
    let kernel = build_kernel()?;
    let image = build_image(scenario, false, &options.guests)?;
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args([
        "-machine",
        "virt",
        "-nographic",
        "-bios",
        "default",
        "-cpu",
        RISCV_CPU,
        "-m",
        // Room for a dynamic VM (128 MiB by default) next to the static ones.
        "512M",
    ])
    // Four harts: the boot hart schedules, the others come up and park
    // until SMP scheduling (the boot log's `cpus:` line says so).
    .args(["-smp", "4"])
    .args(RNG_DEVICE)
    .arg("-kernel")
    .arg(&kernel)
    .arg("-initrd")
    .arg(&image)
    .args(disks);
    if let Some((socket, _claim)) = &mgmt {
        qemu.args(mgmt_args(socket));
    }
    let console = options
        .console
        .unwrap_or_else(options::ConsoleKind::of_stdin);
    qemu.args(["-append", console.boot_option()]);
    // A terminal gets QEMU's interactive console (Ctrl-A x quits); piped
    // input is typed at the shell.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        run_cmd(&mut qemu, "boot Mica on QEMU")
    } else {
        stdin::run(&mut qemu, "boot Mica on QEMU")
    }
}

/// The management socket's path, made ready for QEMU (see
/// [`mgmt_socket::claim`]) and held until QEMU ends; `None` with
/// `--no-mgmt`.
fn claim_mgmt_socket(mgmt: &Mgmt) -> Result<Option<(PathBuf, mgmt_socket::Claim)>, String> {
    let (path, change) = match mgmt {
        Mgmt::Off => return Ok(None),
        Mgmt::At(path) => (
            path.clone(),
            "give this one another path with --mgmt SOCKET, or --no-mgmt",
        ),
        Mgmt::Default => (
            mica_cli::socket_path::from_env()
                .map_err(|e| format!("{e}; or run without one: --no-mgmt"))?,
            "give this one another path with --mgmt SOCKET (mica then needs --socket SOCKET or \
             MICA_SOCKET), or --no-mgmt",
        ),
    };
    let (claim, found) = mgmt_socket::claim(&path, change)?;
    let stale = match found {
        mgmt_socket::Found::Stale => ", replacing a stale one whose QEMU ended",
        mgmt_socket::Found::Nothing => "",
    };
    let how = match mgmt {
        Mgmt::Default => "mica finds it without --socket".to_string(),
        _ => format!("mica --socket {}", path.display()),
    };
    println!("xtask: management socket {} ({how}{stale})", path.display());
    Ok(Some((path, claim)))
}

/// QEMU's options for the scenario's disks (`disk =`), in the file's order
/// ([`mica_tests::riscv64::disk_args`]); a relative path is the
/// workspace's. A file that does not exist is refused with how to make one.
pub fn disk_args(scenario_text: &str) -> Result<Vec<String>, String> {
    let vms = scenario_file::parse(scenario_text).map_err(|e| e.to_string())?;
    let mut args = Vec::new();
    for (n, file) in vms.iter().filter_map(|vm| vm.disk.as_ref()).enumerate() {
        let path = workspace_root().join(file);
        if !path.is_file() {
            return Err(format!(
                "disk = {file:?}: {} is not a file; make a disk image first (e.g. `truncate -s 64M {file}`, or `mkfs.ext4 -d DIR {file} 64M` with files in it)",
                path.display()
            ));
        }
        let path = path
            .to_str()
            .ok_or_else(|| format!("disk = {file:?}: the path is not UTF-8"))?;
        if path.contains(',') {
            return Err(format!(
                "disk = {file:?}: {path} has a comma (QEMU's option syntax)"
            ));
        }
        args.extend(mica_tests::riscv64::disk_args(n, path));
    }
    Ok(args)
}

/// The hart `cargo xtask qemu` boots on: QEMU's default `rv64` (with the H
/// extension) plus Zkr, whose `seed` CSR gives Mica hardware entropy for
/// generation IDs and virtio-rng (OpenSBI lets S-mode read it). Without it
/// Mica says at boot that generation IDs are not random.
pub const RISCV_CPU: &str = "rv64,zkr=true";

/// The host's virtio-rng on the virt board's virtio-mmio bus: the rng
/// service's device, the entropy of a hart without Zkr (`-cpu rv64`).
/// x86 QEMU has no virtio-mmio bus: there RDSEED/RDRAND are the only source.
pub const RNG_DEVICE: [&str; 2] = ["-device", "virtio-rng-device"];

/// The QEMU options that put a virtio console behind the management socket
/// `socket` (QEMU listens; the `mica` CLI connects whenever it likes).
pub fn mgmt_args(socket: &std::path::Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,id=mgmt,path={},server=on,wait=off",
            socket.display().to_string().replace(',', ",,")
        ),
        "-device".into(),
        "virtio-serial-device".into(),
        "-device".into(),
        "virtconsole,chardev=mgmt".into(),
    ]
}

/// Builds the RISC-V kernel (release) and returns the path of its ELF.
pub fn build_kernel() -> Result<PathBuf, String> {
    crate::cmd::build_kernel_for(RISCV_TARGET, "build the kernel")?;
    Ok(riscv_elf("mica-kernel"))
}

/// The test-only crasher serves this endpoint once restarted.
const CRASHER: u8 = 4;

/// The scenario file `configs/<scenario>.toml` with a static VM added for
/// each user guest, checked with the vm-manager's own rules.
fn scenario_text(scenario: &str, guests: &[GuestSpec]) -> Result<String, String> {
    let configs = workspace_root().join("configs");
    let file = configs.join(format!("{scenario}.toml"));
    let mut text = std::fs::read_to_string(&file).map_err(|e| {
        let known: Vec<String> = std::fs::read_dir(&configs)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|f| {
                f.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(String::from)
            })
            .collect();
        format!(
            "no scenario `{scenario}` ({}: {e}); scenarios: {}",
            file.display(),
            known.join(", ")
        )
    })?;
    scenario_file::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    for spec in guests {
        let vm = spec.vm();
        let boot = match &vm.linux {
            None => format!("image = {:?}\n", vm.image),
            Some(linux) => {
                let mut boot = format!("kernel = {:?}\ncmdline = {:?}\n", vm.image, linux.cmdline);
                if let Some(initrd) = &linux.initrd {
                    boot.push_str(&format!("initrd = {initrd:?}\n"));
                }
                boot
            }
        };
        let disk = vm
            .disk
            .as_ref()
            .map_or(String::new(), |file| format!("disk = {file:?}\n"));
        text.push_str(&format!(
            "\n# from --guest\n[[vm]]\nname = {:?}\n{boot}mem_mib = {}\nvcpus = {}\n{disk}",
            vm.name, vm.mem_mib, vm.vcpus
        ));
    }
    scenario_file::parse(&text)
        .map_err(|e| format!("scenario `{scenario}` with the --guest VMs: {e}"))?;
    Ok(text)
}

/// The operator's tasks on RISC-V: the console shell and the management
/// channel. Both speak only the management protocol (they may call the
/// vm-manager and nothing else); mgmt drives its virtio console itself
/// (DEVICES).
fn operator_tasks(task: impl Fn(&str) -> Result<PathBuf, String>) -> Result<Vec<Part>, String> {
    Ok(vec![
        // The management shell on the console: below every service, above
        // the guests' vCPUs (priority 0), so typing is served while they run.
        // It speaks only the management protocol, as the CLI does.
        service(
            "shell",
            task("mica-shell")?,
            1,
            None,
            &[VM_MANAGER],
            KernelRights::CONSOLE.union(KernelRights::HALT),
        ),
        // The management channel (`--mgmt SOCKET`): drives the virtio
        // console behind the host socket, polling between timer ticks; it
        // may map virtio consoles and no other device.
        service(
            "mgmt",
            task("mica-mgmt-task")?,
            1,
            None,
            &[VM_MANAGER],
            KernelRights::DEVICES,
        )
        .driving(1 << VIRTIO_CONSOLE),
    ])
}

/// Builds the boot image of `configs/<scenario>.toml` with, when `crasher`
/// is set, the test service that faults once; returns its path.
pub fn build_boot_image(scenario: &str, crasher: bool) -> Result<PathBuf, String> {
    build_image(scenario, crasher, &[])
}

/// Builds the services (the vm-manager with the scenario compiled in), the
/// test guests, the user's `guests` and optionally the crasher; packs them
/// into `target/mica/riscv64/<scenario>[-crasher|-custom]/boot.img`.
fn build_image(scenario: &str, crasher: bool, guests: &[GuestSpec]) -> Result<PathBuf, String> {
    let text = scenario_text(scenario, guests)?;
    let variant = match (crasher, guests.is_empty()) {
        (true, _) => format!("{scenario}-crasher"),
        (false, false) => format!("{scenario}-custom"),
        (false, true) => scenario.to_string(),
    };
    let dir = workspace_root()
        .join("target")
        .join("mica")
        .join("riscv64")
        .join(variant);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let scenario_file = dir.join(format!("{scenario}.toml"));
    std::fs::write(&scenario_file, &text)
        .map_err(|e| format!("cannot write {}: {e}", scenario_file.display()))?;
    let mut tasks = cargo();
    tasks.args(["build", "--release", "--target", RISCV_TARGET]);
    for package in artifacts::SERVICE_TASKS {
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
            .env("MICA_SCENARIO_FILE", &scenario_file),
        &format!("build the vm-manager ({scenario} scenario)"),
    )?;
    // GUEST_IRQ: the device service's PLIC models drive the VMs' external
    // interrupts. Each task is stripped into this scenario's directory, so
    // the next scenario's vm-manager build cannot replace this one's.
    println!(
        "xtask: build the test guests and pack the boot image into {}",
        dir.display()
    );
    let devices_rights = KernelRights::CONSOLE.union(KernelRights::GUEST_IRQ);
    let task = |package: &str| artifacts::stripped(&riscv_elf(package), &dir.join(package));
    let mut parts = core_services(task, devices_rights)?;
    parts.extend(operator_tasks(task)?);
    parts.push(rng_service(task)?);
    parts.push(blk_service(task)?);
    parts.extend([
        guest("hello", artifacts::guest_raw("mica-guest-hello")?),
        guest("misbehave", artifacts::guest_raw("mica-guest-misbehave")?),
        guest(
            "ender",
            artifacts::guest_bin_raw("mica-guest-misbehave", "mica-guest-ender")?,
        ),
        guest("bench", artifacts::guest_raw("mica-guest-bench")?),
        guest("genid", artifacts::guest_raw("mica-guest-genid")?),
        guest("traps", artifacts::guest_raw("mica-guest-traps")?),
        guest(
            "hostile",
            artifacts::guest_bin_raw("mica-guest-hostile", "mica-guest-hostile")?,
        ),
        guest(
            "steady",
            artifacts::guest_bin_raw("mica-guest-hostile", "mica-guest-steady")?,
        ),
    ]);
    for spec in guests {
        parts.push(guest(&spec.name, spec.path.clone()));
        if let Some(initrd) = &spec.initrd {
            parts.push(guest(&spec.initrd_entry(), initrd.clone()));
        }
    }
    // Debian's Linux and its initramfs, when the scenario names them.
    parts.extend(crate::guests::scenario_parts(&text)?);
    if crasher {
        let path = task("mica-crasher")?;
        parts.push(
            service(
                "crasher",
                path,
                2,
                Some(CRASHER),
                &[],
                // To hand the kernel a device window's address as a buffer
                // (whatever device it holds, or none).
                KernelRights::DEVICES,
            )
            .driving(u32::MAX),
        );
    }
    pack_into(&parts, &dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_and_mgmt_may_call_only_the_vm_manager() {
        let parts = operator_tasks(|p| Ok(p.into())).unwrap();
        let calls: Vec<(&str, &[u8])> = parts
            .iter()
            .map(|p| (p.name.as_str(), p.may_call))
            .collect();
        assert_eq!(
            calls,
            [("shell", &[VM_MANAGER][..]), ("mgmt", &[VM_MANAGER][..])]
        );
        let (shell, mgmt) = (&parts[0], &parts[1]);
        assert!(
            !shell.rights.contains(KernelRights::DEVICES),
            "the shell maps no device"
        );
        assert_eq!(
            mgmt.device_classes,
            1 << 3,
            "mgmt maps virtio consoles only"
        );
    }

    /// `cargo xtask qemu --scenario NAME` takes every file of configs/.
    #[test]
    fn every_scenario_file_passes_the_vm_managers_rules() {
        let configs = workspace_root().join("configs");
        let mut names: Vec<String> = std::fs::read_dir(&configs)
            .unwrap()
            .filter_map(|f| {
                let name = f.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".toml").map(String::from)
            })
            .collect();
        names.sort();
        assert!(names.iter().any(|n| n == "linux-smp"), "{names:?}");
        for name in &names {
            if let Err(e) = scenario_text(name, &[]) {
                panic!("scenario {name}: {e}");
            }
        }
    }

    #[test]
    fn the_smp_scenario_has_two_4_vcpu_linux_vms_beside_hello() {
        let vms = scenario_file::parse(&scenario_text("linux-smp", &[]).unwrap()).unwrap();
        let shape: Vec<(&str, bool, u8, u32)> = vms
            .iter()
            .map(|vm| (vm.name.as_str(), vm.linux.is_some(), vm.vcpus, vm.mem_mib))
            .collect();
        assert_eq!(
            shape,
            [
                ("linux", true, 4, 128),
                ("linux2", true, 4, 128),
                ("vm0", false, 1, 64)
            ]
        );
    }
}
