//! The x86_64 side of `cargo xtask qemu --arch x86_64`: build the kernel
//! for `x86_64-unknown-none`, flatten it into the Multiboot image QEMU's
//! `-kernel` (and GRUB) loads at 1 MiB, and boot it under SVM with the
//! x86 boot image (`x86_image`) as its Multiboot module.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::artifacts;
use crate::cmd::{describe, workspace_root};
use crate::install;

/// The target the x86 kernel is built for.
pub const X86_TARGET: &str = "x86_64-unknown-none";
/// QEMU's CPU for Mica: the emulator has SVM with nested paging, no VMX;
/// RDSEED and RDRAND give Mica hardware entropy (generation IDs).
pub const SVM_CPU: &str = "qemu64,+svm,+npt,+rdrand,+rdseed";
/// The exit device the kernel's failure path writes to (QEMU exits
/// `(value << 1) | 1`; the kernel writes 1, so a failure is exit 3).
pub const DEBUG_EXIT: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// The architecture `xtask qemu` boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// QEMU virt with OpenSBI (the default).
    Riscv64,
    /// QEMU pc with SVM.
    X86_64,
}

/// Takes `--arch NAME` out of `args`; the rest is left for the
/// architecture's own options.
pub fn take_arch(args: &[String]) -> Result<(Arch, Vec<String>), String> {
    crate::options::take_choice(
        args,
        "--arch",
        "architecture",
        &[("riscv64", Arch::Riscv64), ("x86_64", Arch::X86_64)],
        Arch::Riscv64,
    )
}

/// `xtask qemu --arch x86_64`: builds and boots Mica on QEMU under SVM.
pub fn run(args: &[String]) -> Result<(), String> {
    let scenario = match args {
        [] => crate::x86_image::DEFAULT_SCENARIO,
        [flag, name] if flag == "--scenario" => name.as_str(),
        [arg, ..] => {
            return Err(format!(
                "`xtask qemu --arch x86_64` knows only `--scenario NAME`, not `{arg}`"
            ));
        }
    };
    install::rust_targets()?;
    install::qemu()?;
    let image = build_kernel()?;
    let boot_image = crate::x86_image::build_boot_image(scenario)?;
    let mut qemu = qemu_command(&image, SVM_CPU);
    qemu.arg("-initrd").arg(&boot_image);
    // The Multiboot command line: whether the console is a terminal.
    qemu.args([
        "-append",
        crate::options::ConsoleKind::of_stdin().boot_option(),
    ]);
    println!(
        "xtask: boot Mica on QEMU (x86_64, SVM): {}",
        describe(&qemu)
    );
    let status = qemu
        .status()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(3) => Err("Mica stopped with a failure (QEMU exit 3)".into()),
        _ => Err(format!("QEMU ended unexpectedly ({status})")),
    }
}

/// Processors of the QEMU pc machine: every CPU runs the services and
/// vCPUs (the boot log's `cpus:` line says so).
pub const SMP_CPUS: &str = "4";

/// QEMU booting the Multiboot `image` on [`SMP_CPUS`] `cpu`s, console on
/// stdio. No NIC (`-nic none`): Mica has no network, and the pc board's
/// default e1000 would need its option ROM (ipxe-qemu) for nothing.
pub fn qemu_command(image: &Path, cpu: &str) -> Command {
    qemu_command_on(image, cpu, SMP_CPUS)
}

/// [`qemu_command`] on `cpus` processors.
pub fn qemu_command_on(image: &Path, cpu: &str, cpus: &str) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-cpu", cpu, "-m", "256M", "-smp", cpus, "-kernel"])
        .arg(image)
        .args(["-serial", "stdio", "-display", "none", "-monitor", "none"])
        .args(["-nic", "none"])
        .args(["-device", DEBUG_EXIT, "-no-reboot"]);
    qemu
}

/// The x86_64 kernel's ELF, as cargo builds it (before [`build_kernel`]
/// flattens it to a Multiboot image).
pub fn kernel_elf() -> PathBuf {
    workspace_root()
        .join("target")
        .join(X86_TARGET)
        .join("release")
        .join("mica-kernel")
}

/// Builds the x86 kernel (release) and returns the path of its Multiboot
/// image, `target/mica/x86_64/mica-kernel.mb`.
pub fn build_kernel() -> Result<PathBuf, String> {
    crate::cmd::build_kernel_for(X86_TARGET, "build the kernel (x86_64)")?;
    let elf = kernel_elf();
    let dir = workspace_root().join("target").join("mica").join("x86_64");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let image = dir.join("mica-kernel.mb");
    artifacts::flatten(&elf, &image)?;
    let mut bytes =
        std::fs::read(&image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let load_size = multiboot_load_size(&bytes)?;
    if bytes.len() > load_size {
        return Err(format!(
            "{}: {} bytes, more than the {load_size} its Multiboot header loads",
            image.display(),
            bytes.len()
        ));
    }
    bytes.resize(load_size, 0);
    std::fs::write(&image, &bytes).map_err(|e| format!("cannot write {}: {e}", image.display()))?;
    Ok(image)
}

/// Multiboot header magic.
const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Flag: the header's address fields are valid (a.out kludge).
const AOUT_KLUDGE: u32 = 1 << 16;
/// The loader looks for the header in the first 8 KiB.
const SEARCH_BYTES: usize = 8192;

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The bytes a Multiboot loader reads from a flat image whose first byte is
/// at `load_addr`: `load_end_addr - load_addr`. The file must be padded to
/// it (QEMU refuses a shorter one).
pub fn multiboot_load_size(image: &[u8]) -> Result<usize, String> {
    let searched = image.len().min(SEARCH_BYTES);
    let at = (0..searched)
        .step_by(4)
        .find(|&at| {
            let (Some(magic), Some(flags), Some(sum)) =
                (word(image, at), word(image, at + 4), word(image, at + 8))
            else {
                return false;
            };
            magic == HEADER_MAGIC && magic.wrapping_add(flags).wrapping_add(sum) == 0
        })
        .ok_or("no Multiboot header in the first 8 KiB of the kernel image")?;
    let field = |n: usize| word(image, at + 12 + 4 * n).ok_or("truncated Multiboot header");
    let flags = word(image, at + 4).unwrap_or(0);
    if flags & AOUT_KLUDGE == 0 {
        return Err("the Multiboot header has no address fields (flag 16)".into());
    }
    let (header_addr, load_addr, load_end) = (field(0)?, field(1)?, field(2)?);
    let header_offset = u32::try_from(at).map_err(|_| "header offset")?;
    if header_addr.checked_sub(load_addr) != Some(header_offset) {
        return Err("the Multiboot header_addr does not match its place in the file".into());
    }
    let size = load_end
        .checked_sub(load_addr)
        .ok_or("the Multiboot load_end_addr lies below load_addr")?;
    usize::try_from(size).map_err(|_| "load size".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(at: usize, fields: [u32; 3]) -> Vec<u8> {
        let flags = 0x0001_0003u32;
        let mut image = vec![0u8; at];
        for w in [
            HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)),
        ]
        .into_iter()
        .chain(fields)
        {
            image.extend_from_slice(&w.to_le_bytes());
        }
        image
    }

    #[test]
    fn the_load_size_comes_from_the_header() {
        let image = header(0, [0x10_0000, 0x10_0000, 0x12_74c0]);
        assert_eq!(multiboot_load_size(&image), Ok(0x2_74c0));
        let image = header(64, [0x10_0040, 0x10_0000, 0x10_2000]);
        assert_eq!(multiboot_load_size(&image), Ok(0x2000));
    }

    #[test]
    fn images_without_a_usable_header_are_refused() {
        assert!(
            multiboot_load_size(&[0; 64])
                .unwrap_err()
                .contains("no Multiboot header")
        );
        let misplaced = header(0, [0x10_0040, 0x10_0000, 0x10_2000]);
        assert!(multiboot_load_size(&misplaced).is_err());
        let backwards = header(0, [0x10_0000, 0x10_0000, 0xf_0000]);
        assert!(multiboot_load_size(&backwards).is_err());
    }

    #[test]
    fn arch_is_taken_out_of_the_arguments() {
        let args: Vec<String> = ["--arch", "x86_64", "--scenario", "bench"]
            .map(String::from)
            .to_vec();
        let (arch, rest) = take_arch(&args).unwrap();
        assert_eq!(arch, Arch::X86_64);
        assert_eq!(rest, ["--scenario", "bench"]);
        assert_eq!(take_arch(&[]).unwrap().0, Arch::Riscv64);
        let bad = ["--arch".to_string(), "arm".to_string()];
        assert!(take_arch(&bad).unwrap_err().contains("riscv64 or x86_64"));
    }
}
