//! Installs what the build and the emulators need, idempotently: rustup
//! targets and components, QEMU 10 from Debian bookworm-backports, and
//! Bochs with GRUB's ISO tools.

use std::process::Command;

use crate::cmd::{on_path, run, run_quiet};

/// The bare-metal targets Mica builds for.
pub const TARGETS: [&str; 2] = ["riscv64gc-unknown-none-elf", "x86_64-unknown-none"];

/// Adds the bare-metal targets and the lint/format components to the active
/// toolchain (a no-op when present; RUSTUP_AUTO_INSTALL=0 machines need it).
/// One line says so; rustup itself is quiet (it has nothing to say when
/// all is there, and shows its own progress only while downloading).
pub fn rust_targets() -> Result<(), String> {
    println!(
        "xtask: rust targets ({}) and components (clippy, rustfmt, llvm-tools)",
        TARGETS.join(", ")
    );
    let mut add = Command::new("rustup");
    add.args(["--quiet", "target", "add"]).args(TARGETS);
    run_quiet(&mut add, "install rust targets")?;
    let mut components = Command::new("rustup");
    components.args([
        "--quiet",
        "component",
        "add",
        "clippy",
        "rustfmt",
        "llvm-tools",
    ]);
    run_quiet(&mut components, "install rust components")
}

const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/mica-backports.sources";

/// Installs `qemu-system-riscv64` (and the x86 one, and OpenSBI) from
/// bookworm-backports when `qemu-system-riscv64` is missing.
///
/// Without recommended packages: a headless hypervisor needs none of
/// QEMU's GUI, SPICE, OpenGL, extra block drivers, `qemu-utils` or OVMF.
/// What our command lines need at run time comes with the dependencies or
/// is named here: OpenSBI (`-bios default` on RISC-V; named, though
/// qemu-system-riscv depends on it too) and SeaBIOS (x86, a dependency).
/// No NIC is configured: the x86 command lines say `-nic none` (the pc
/// board's default e1000 would need `efi-e1000.rom` from ipxe-qemu, a
/// recommendation of qemu-system-riscv and a dependency of
/// qemu-system-x86 in bookworm-backports), and RISC-V's virt board has
/// no default NIC.
pub fn qemu() -> Result<(), String> {
    if on_path("qemu-system-riscv64") && on_path("qemu-system-x86_64") {
        return Ok(());
    }
    println!("xtask: QEMU is missing; installing it from Debian bookworm-backports");
    if !std::path::Path::new(BACKPORTS_LIST).exists() {
        let uri = debian_archive_uri()?;
        let entry = format!(
            "Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        std::fs::write(BACKPORTS_LIST, entry).map_err(|e| {
            format!("cannot write {BACKPORTS_LIST} (run as root, or install QEMU 10 yourself): {e}")
        })?;
    }
    run(Command::new("apt-get").arg("update"), "apt-get update")?;
    apt_install(
        Some("bookworm-backports"),
        &["qemu-system-riscv", "qemu-system-x86", "opensbi"],
        "install QEMU",
    )
}

/// `apt-get install`s `packages` (from `release` when given, as `-t`
/// names it) without asking and without recommended packages.
fn apt_install(release: Option<&str>, packages: &[&str], what: &str) -> Result<(), String> {
    run(&mut apt_install_command(release, packages), what)
}

/// The command [`apt_install`] runs.
fn apt_install_command(release: Option<&str>, packages: &[&str]) -> Command {
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "--no-install-recommends"]);
    if let Some(release) = release {
        install.args(["-t", release]);
    }
    install
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    install
}

/// `xz`, which unpacks the Linux guest's kernel modules (`cargo xtask
/// guests`): xz-utils is standard on Debian but not always installed.
pub fn xz() -> Result<(), String> {
    if on_path("xz") {
        return Ok(());
    }
    println!("xtask: xz is missing; installing xz-utils");
    apt_install(None, &["xz-utils"], "install xz-utils")
}

/// `mkfs.ext4` and `debugfs`, with which the Linux disk tests make an ext4
/// image on the host and read it back: e2fsprogs is required on Debian,
/// so this only installs it on a machine that lacks it.
pub fn e2fsprogs() -> Result<(), String> {
    if mica_tests::host_tool("mkfs.ext4").is_some() && mica_tests::host_tool("debugfs").is_some() {
        return Ok(());
    }
    println!("xtask: mkfs.ext4 or debugfs is missing; installing e2fsprogs");
    apt_install(None, &["e2fsprogs"], "install e2fsprogs")
}

/// What booting the x86 kernel under Bochs needs: Bochs with its BIOSes,
/// and GRUB with the tools `grub-mkrescue` builds an ISO with.
const BOCHS_PACKAGES: [&str; 7] = [
    "bochs",
    "bochsbios",
    "vgabios",
    "grub-pc-bin",
    "grub-common",
    "xorriso",
    "mtools",
];

/// Installs Bochs and the GRUB ISO tools from Debian when any is missing,
/// without recommended packages (`bximage`, `os-prober`: not needed to
/// boot an ISO).
pub fn bochs() -> Result<(), String> {
    let programs = ["bochs-bin", "grub-mkrescue", "xorriso", "mformat"];
    let files = [
        "/usr/lib/grub/i386-pc",
        "/usr/share/bochs/BIOS-bochs-latest",
    ];
    if programs.iter().all(|program| on_path(program))
        && files.iter().all(|path| std::path::Path::new(path).exists())
    {
        return Ok(());
    }
    println!("xtask: Bochs or the GRUB ISO tools are missing; installing them from Debian");
    run(Command::new("apt-get").arg("update"), "apt-get update")?;
    apt_install(None, &BOCHS_PACKAGES, "install Bochs and GRUB")
}

/// The archive URI of the system's own Debian sources (deb822 or one-line).
pub fn debian_archive_uri() -> Result<String, String> {
    let mut texts = Vec::new();
    for path in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            texts.push(text);
        }
    }
    texts
        .iter()
        .find_map(|text| find_debian_uri(text))
        .ok_or_else(|| "cannot find the system's Debian archive URI in the apt sources".into())
}

/// Picks the main Debian archive URI (not the security one) out of an apt
/// sources file in either format.
fn find_debian_uri(text: &str) -> Option<String> {
    let uris = text.lines().filter_map(|line| {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("URIs:") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("deb ") {
            rest.split_whitespace().find(|word| word.contains("://"))
        } else {
            None
        }
    });
    uris.filter(|uri| !uri.contains("security"))
        .map(|uri| uri.trim_end_matches('/').to_string())
        .next()
}

#[cfg(test)]
mod tests {
    use super::{apt_install_command, find_debian_uri};

    #[test]
    fn apt_installs_without_asking_from_the_release_named() {
        let args = |release| {
            let command = apt_install_command(release, &["qemu-system-riscv", "opensbi"]);
            let noninteractive = command.get_envs().any(|(key, value)| {
                key == "DEBIAN_FRONTEND" && value == Some("noninteractive".as_ref())
            });
            assert!(noninteractive, "{command:?}");
            command
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            args(Some("bookworm-backports")),
            [
                "install",
                "-y",
                "--no-install-recommends",
                "-t",
                "bookworm-backports",
                "qemu-system-riscv",
                "opensbi"
            ]
        );
        assert_eq!(
            args(None),
            [
                "install",
                "-y",
                "--no-install-recommends",
                "qemu-system-riscv",
                "opensbi"
            ]
        );
    }

    #[test]
    fn finds_the_archive_in_deb822_and_skips_security() {
        let text = "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n\n\
                    Types: deb\nURIs: http://deb.example/debian/\nSuites: bookworm\n";
        assert_eq!(
            find_debian_uri(text).as_deref(),
            Some("http://deb.example/debian")
        );
    }

    #[test]
    fn finds_the_archive_in_one_line_format() {
        let text = "# comment\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            find_debian_uri(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn no_sources_means_none() {
        assert_eq!(find_debian_uri("# nothing here\n"), None);
    }
}
