//! `cargo xtask guests`: fetches Debian trixie's riscv64 Linux kernel and
//! static busybox into `target/guests/` and packs the busybox initramfs
//! (`initramfs.rs`), for `cargo xtask qemu` (the default scenario boots Linux), the Linux
//! QEMU tests and the `linux_boot` benchmark.
//!
//! The system's apt state is left alone: apt runs with a private state
//! directory, cache and sources list under `target/guests/apt/`, the
//! archive URI of the system's own Debian sources and the installed
//! debian-archive-keyring. Versions are pinned; a pin that has left the
//! archive falls back to the newest package (said in one line). A second
//! run with the files and the stamp in place downloads nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmd::{describe, run as run_cmd, workspace_root};
use crate::image::{Part, guest};
use crate::{initramfs, install};

/// The Debian suite the guests come from.
const SUITE: &str = "trixie";
/// The keyring apt checks the suite's signatures with.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A package to fetch: the pinned name and version, and how to pick a
/// replacement when the pin has left the archive.
struct Package {
    name: &'static str,
    version: &'static str,
    fallback: Fallback,
}

/// How a package whose pin is gone is replaced.
enum Fallback {
    /// The archive's current version of the same package.
    SameName,
    /// The newest `linux-image-6.12.*-riscv64` (the ABI is in the name).
    NewestKernel,
}

/// Debian's riscv64 kernel (its Image is `boot/vmlinux-<abi>`).
const KERNEL: Package = Package {
    name: "linux-image-6.12.117+deb13-riscv64",
    version: "6.12.117-1",
    fallback: Fallback::NewestKernel,
};

/// The static busybox the initramfs is made of.
const BUSYBOX: Package = Package {
    name: "busybox-static",
    version: "1:1.37.0-6+b9",
    fallback: Fallback::SameName,
};

/// The kernel modules the initramfs carries, in load order (each after
/// the ones it depends on: their `depends=`), as paths under the
/// package's `usr/lib/modules/<abi>/kernel/` without `.ko.xz`: the
/// virtio-mmio transport, the entropy driver of Mica's virtio-rng
/// (`/dev/hwrng`), the disk driver and ext4 (which finds crc32c through
/// the crypto API, so crc32c_generic is loaded by name), and the network
/// card's driver after the failover modules it depends on. Debian builds
/// virtio core, the console and the hw_random core in.
pub const MODULES: &[&str] = &[
    "drivers/virtio/virtio_mmio",
    "drivers/char/hw_random/virtio-rng",
    "drivers/block/virtio_blk",
    "lib/crc16",
    "crypto/crc32c_generic",
    "fs/mbcache",
    "fs/jbd2/jbd2",
    "fs/ext4/ext4",
    // virtio_net needs net_failover, which needs failover (modinfo).
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
];

/// The files `cargo xtask guests` provides.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// Debian's kernel Image (an EFI-stub PE Image with the RISC-V header).
    pub kernel: PathBuf,
    /// The busybox initramfs (uncompressed newc cpio).
    pub initramfs: PathBuf,
}

impl LinuxGuest {
    /// Has `qemu` boot this kernel and initramfs directly (no Mica under
    /// them) with `cmdline`.
    pub fn boot_directly(&self, qemu: &mut Command, cmdline: &str) {
        qemu.arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initramfs)
            .args(["-append", cmdline]);
    }
}

/// Where the uncompressed [`MODULES`] are kept (`<name>.ko`).
fn modules_dir(out: &Path) -> PathBuf {
    out.join("modules")
}

/// The module file name of a [`MODULES`] entry: `virtio_mmio.ko`.
fn module_file(entry: &str) -> String {
    format!("{}.ko", entry.rsplit('/').next().unwrap_or(entry))
}

/// Which of [`LinuxGuest`]'s files a boot-image entry holds.
type FetchedFile = fn(&LinuxGuest) -> PathBuf;

/// Boot-image entries filled from `cargo xtask guests`' files when a
/// scenario names them (as `kernel`, `initrd` or `image`).
const FETCHED: &[(&str, FetchedFile)] = &[
    ("linux", |g| g.kernel.clone()),
    ("linux-initrd", |g| g.initramfs.clone()),
];

/// `cargo xtask guests`: fetches (or finds cached) and prints the paths.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`xtask guests` takes no arguments (got `{arg}`)"));
    }
    let guest = fetch()?;
    println!("xtask: guests: kernel    {}", guest.kernel.display());
    println!("xtask: guests: initramfs {}", guest.initramfs.display());
    Ok(())
}

/// The directory the guests are cached in.
pub fn dir() -> PathBuf {
    workspace_root().join("target").join("guests")
}

/// Fetches the kernel and busybox unless cached, (re)packs the initramfs
/// when its contents changed, and returns the paths.
pub fn fetch() -> Result<LinuxGuest, String> {
    let dir = dir();
    let out = dir.join("riscv64");
    let guest = LinuxGuest {
        kernel: out.join("Image"),
        initramfs: out.join("initramfs.cpio"),
    };
    let busybox = out.join("busybox");
    let stamp = dir.join("guests.stamp");
    let packages = [&KERNEL, &BUSYBOX];
    let cached = std::fs::read_to_string(&stamp).ok().filter(|text| {
        packages.iter().all(|p| stamp_entry(text, p).is_some())
            && guest.kernel.is_file()
            && busybox.is_file()
            && MODULES
                .iter()
                .all(|m| modules_dir(&out).join(module_file(m)).is_file())
    });
    if let Some(text) = cached {
        let versions: Vec<&str> = packages
            .iter()
            .filter_map(|p| stamp_entry(&text, p))
            .collect();
        println!(
            "xtask: guests: cached in {} ({})",
            out.display(),
            versions.join(", ")
        );
    } else {
        let apt = Apt::prepare(&dir.join("apt"))?;
        let mut lines = String::new();
        let kernel = apt.resolve(&KERNEL)?;
        let deb = apt.download(&kernel, &dir.join("debs"))?;
        extract_kernel(&deb, &dir.join("extract"), &guest.kernel)?;
        extract_modules(&deb, &dir.join("extract"), &modules_dir(&out))?;
        lines.push_str(&format!("{} -> {}\n", pin(&KERNEL), kernel));
        let bb = apt.resolve(&BUSYBOX)?;
        let deb = apt.download(&bb, &dir.join("debs"))?;
        extract_busybox(&deb, &dir.join("extract"), &busybox)?;
        lines.push_str(&format!("{} -> {}\n", pin(&BUSYBOX), bb));
        write_file(&stamp, lines.as_bytes())?;
    }
    let busybox =
        std::fs::read(&busybox).map_err(|e| format!("cannot read {}: {e}", busybox.display()))?;
    let modules = MODULES
        .iter()
        .map(|m| {
            let file = module_file(m);
            let path = modules_dir(&out).join(&file);
            std::fs::read(&path)
                .map(|data| (file, data))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let archive = initramfs::build(busybox, &modules);
    if std::fs::read(&guest.initramfs).ok().as_deref() != Some(archive.as_slice()) {
        write_file(&guest.initramfs, &archive)?;
        println!(
            "xtask: guests: packed the busybox initramfs {} ({} bytes)",
            guest.initramfs.display(),
            archive.len()
        );
    }
    Ok(guest)
}

/// The boot-image parts for the fetched entries `scenario_text` names
/// (none when it names none: nothing is fetched then).
pub fn scenario_parts(scenario_text: &str) -> Result<Vec<Part>, String> {
    let named = entries_named(scenario_text);
    let wanted: Vec<_> = FETCHED
        .iter()
        .filter(|(name, _)| named.iter().any(|n| n == name))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let fetched = fetch()?;
    Ok(wanted
        .iter()
        .map(|(name, path)| guest(name, path(&fetched)))
        .collect())
}

/// The boot-image entries a scenario file's `image`, `kernel` and `initrd`
/// keys name (a line scan: the file's own parser belongs to the vm-manager).
fn entries_named(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            if !matches!(key.trim(), "image" | "kernel" | "initrd") {
                return None;
            }
            let value = value.trim_start().strip_prefix('"')?;
            Some(value.get(..value.find('"')?)?.to_string())
        })
        .collect()
}

/// `name=version` of a pin.
fn pin(package: &Package) -> String {
    format!("{}={}", package.name, package.version)
}

/// What the stamp says `package`'s pin resolved to, if it has that pin.
fn stamp_entry<'t>(stamp: &'t str, package: &Package) -> Option<&'t str> {
    let prefix = format!("{} -> ", pin(package));
    stamp.lines().find_map(|line| line.strip_prefix(&prefix))
}

/// apt with private state, cache and sources under one directory.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    /// Writes the private sources list and runs `apt-get update`.
    fn prepare(dir: &Path) -> Result<Apt, String> {
        let uri = install::debian_archive_uri()?;
        for sub in ["state/lists/partial", "cache/archives/partial", "etc"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        let sources = dir.join("etc/sources.list");
        write_file(
            &sources,
            format!("deb [signed-by={KEYRING}] {uri} {SUITE} main\n").as_bytes(),
        )?;
        let status = dir.join("state/status");
        if !status.exists() {
            write_file(&status, b"")?;
        }
        let path = |p: &str| dir.join(p).display().to_string();
        let options = [
            "APT::Architecture=riscv64".to_string(),
            "APT::Architectures=riscv64".into(),
            format!("Dir::State={}", path("state")),
            format!("Dir::State::status={}", path("state/status")),
            format!("Dir::Cache={}", path("cache")),
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::Etc::Preferences={}", path("etc/preferences")),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            "Debug::NoLocking=1".into(),
            "Acquire::Languages=none".into(),
            // Only the package lists: no AppStream metadata.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            // Downloads land in our own directory, which apt's `_apt`
            // sandbox user may not be able to write.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect();
        let apt = Apt { options };
        println!("xtask: guests: reading Debian {SUITE}'s riscv64 package lists from {uri}");
        run_cmd(
            apt.command("apt-get").args(["-q", "update"]),
            "apt-get update (private state)",
        )?;
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.args(&self.options);
        command
    }

    /// The output of `program args...` under the private state.
    fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut command = self.command(program);
        command.args(args);
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", describe(&command)))?;
        if !output.status.success() {
            return Err(format!("{} failed ({})", describe(&command), output.status));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The versions of `name` the archive has.
    fn versions(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(madison_versions(
            &self.output("apt-cache", &["madison", name])?,
            name,
        ))
    }

    /// `name=version` to download: the pin, or its replacement.
    fn resolve(&self, package: &Package) -> Result<String, String> {
        let versions = self.versions(package.name)?;
        if versions.iter().any(|v| v == package.version) {
            return Ok(pin(package));
        }
        let (name, version) = match package.fallback {
            Fallback::SameName => (package.name.to_string(), newest(&versions)),
            Fallback::NewestKernel => {
                let found = self.output(
                    "apt-cache",
                    &["search", "--names-only", r"^linux-image-6\.12\..*-riscv64$"],
                )?;
                let mut best: Option<(String, String)> = None;
                for name in kernel_names(&found) {
                    let version = newest(&self.versions(&name)?);
                    if best.as_ref().is_none_or(|(_, b)| newer(&version, b)) {
                        best = Some((name, version));
                    }
                }
                best.ok_or_else(|| {
                    format!("no linux-image-6.12.*-riscv64 in Debian {SUITE}: check the archive")
                })?
            }
        };
        if version.is_empty() {
            return Err(format!(
                "{} is not in Debian {SUITE} for riscv64: check the archive",
                package.name
            ));
        }
        println!(
            "xtask: guests: {} has left the archive; using {name}={version}",
            pin(package)
        );
        Ok(format!("{name}={version}"))
    }

    /// Downloads `name=version` into `dir` (unless there) and returns the
    /// .deb's path.
    fn download(&self, wanted: &str, dir: &Path) -> Result<PathBuf, String> {
        let (name, version) = wanted.split_once('=').unwrap_or((wanted, ""));
        let deb = dir.join(format!(
            "{name}_{}_riscv64.deb",
            version.replace(':', "%3a")
        ));
        if deb.is_file() {
            return Ok(deb);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        println!("xtask: guests: downloading {wanted}");
        run_cmd(
            self.command("apt-get")
                .args(["-q", "download", wanted])
                .current_dir(dir),
            &format!("download {wanted}"),
        )?;
        if !deb.is_file() {
            return Err(format!(
                "apt-get download {wanted} left no {}",
                deb.display()
            ));
        }
        Ok(deb)
    }
}

/// The versions in `apt-cache madison NAME` output (` NAME | VER | URI`).
fn madison_versions(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            (fields.next()? == name).then_some(fields.next()?.to_string())
        })
        .collect()
}

/// The kernel image packages in `apt-cache search` output: not the debug
/// symbols, not the unsigned build.
fn kernel_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            name.starts_with("linux-image-6.12.")
                && name.ends_with("-riscv64")
                && !name.contains("-dbg")
                && !name.contains("unsigned")
        })
        .map(String::from)
        .collect()
}

/// The newest of `versions` by dpkg's ordering ("" when there are none).
fn newest(versions: &[String]) -> String {
    let mut best = String::new();
    for version in versions {
        if best.is_empty() || newer(version, &best) {
            best.clone_from(version);
        }
    }
    best
}

/// Whether Debian version `a` is newer than `b` (`dpkg --compare-versions`).
fn newer(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// Extracts only `boot/vmlinux-*` from the kernel package (its modules
/// are hundreds of MB) and installs it as `image`, checking the RISC-V
/// Image header.
fn extract_kernel(deb: &Path, scratch: &Path, image: &Path) -> Result<(), String> {
    let into = scratch.join("kernel");
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).map_err(|e| format!("cannot create {}: {e}", into.display()))?;
    println!(
        "xtask: guests: extracting the kernel Image from {}",
        deb.display()
    );
    extract_members(deb, &into, &["./boot/vmlinux-*".to_string()])
        .map_err(|e| format!("{e}: delete it and run `cargo xtask guests` again"))?;
    let found = std::fs::read_dir(into.join("boot"))
        .map_err(|e| format!("{} has no boot/: {e}", deb.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinux-"))
        })
        .ok_or_else(|| format!("{} has no boot/vmlinux-*", deb.display()))?;
    let data =
        std::fs::read(&found).map_err(|e| format!("cannot read {}: {e}", found.display()))?;
    check_riscv_image(&data).map_err(|e| format!("{}: {e}", found.display()))?;
    write_file(image, &data)?;
    let _ = std::fs::remove_dir_all(&into);
    Ok(())
}

/// Extracts the files of package `deb` that match `members` (tar
/// wildcards) into `into`.
fn extract_members(deb: &Path, into: &Path, members: &[String]) -> Result<(), String> {
    let mut dpkg = Command::new("dpkg-deb");
    dpkg.arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped());
    let mut producer = dpkg
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", describe(&dpkg)))?;
    let mut tar = Command::new("tar");
    tar.args(["-x", "-f", "-", "--wildcards", "-C"])
        .arg(into)
        .args(members);
    if let Some(stdout) = producer.stdout.take() {
        tar.stdin(stdout);
    }
    let tar_status = tar.status();
    let dpkg_status = producer.wait();
    if matches!((&tar_status, &dpkg_status), (Ok(t), Ok(d)) if t.success() && d.success()) {
        Ok(())
    } else {
        Err(format!(
            "cannot extract {} from {} (dpkg-deb: {dpkg_status:?}, tar: {tar_status:?})",
            members.join(" "),
            deb.display()
        ))
    }
}

/// Extracts the [`MODULES`] from the kernel package and installs them
/// uncompressed (`xz -d`; xz-utils is installed when missing) in `into`.
fn extract_modules(deb: &Path, scratch: &Path, into: &Path) -> Result<(), String> {
    install::xz()?;
    let unpacked = scratch.join("modules");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| format!("cannot create {}: {e}", unpacked.display()))?;
    println!(
        "xtask: guests: extracting {} kernel modules from {}",
        MODULES.len(),
        deb.display()
    );
    let members: Vec<String> = MODULES
        .iter()
        .map(|module| format!("./usr/lib/modules/*/kernel/{module}.ko.xz"))
        .collect();
    extract_members(deb, &unpacked, &members)?;
    let abi_dirs = std::fs::read_dir(unpacked.join("usr/lib/modules"))
        .map_err(|e| format!("{} has no usr/lib/modules: {e}", deb.display()))?;
    let kernel_dir = abi_dirs
        .flatten()
        .map(|entry| entry.path().join("kernel"))
        .next()
        .ok_or_else(|| format!("{} has no usr/lib/modules/<abi>", deb.display()))?;
    std::fs::create_dir_all(into).map_err(|e| format!("cannot create {}: {e}", into.display()))?;
    for module in MODULES {
        let packed = kernel_dir.join(format!("{module}.ko.xz"));
        let out = std::process::Command::new("xz")
            .args(["-d", "-c"])
            .arg(&packed)
            .output()
            .map_err(|e| format!("cannot run xz: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "xz -d {} failed: {}",
                packed.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        write_file(&into.join(module_file(module)), &out.stdout)?;
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(())
}

/// Extracts the busybox package and installs its static executable as
/// `busybox`.
fn extract_busybox(deb: &Path, scratch: &Path, busybox: &Path) -> Result<(), String> {
    let into = scratch.join("busybox");
    let _ = std::fs::remove_dir_all(&into);
    run_cmd(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&into),
        "extract busybox",
    )?;
    let found = ["usr/bin/busybox", "bin/busybox"]
        .iter()
        .map(|p| into.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} has no usr/bin/busybox", deb.display()))?;
    let data =
        std::fs::read(&found).map_err(|e| format!("cannot read {}: {e}", found.display()))?;
    if !data.starts_with(b"\x7fELF") {
        return Err(format!("{} is not an ELF executable", found.display()));
    }
    write_file(busybox, &data)?;
    let _ = std::fs::remove_dir_all(&into);
    Ok(())
}

/// Checks the RISC-V Linux Image header: magic2 `RSC\x05` at 0x38.
fn check_riscv_image(data: &[u8]) -> Result<(), String> {
    match data.get(0x38..0x3c) {
        Some(b"RSC\x05") => Ok(()),
        _ => Err("not a RISC-V Linux Image (no RSC\\x05 magic at 0x38)".into()),
    }
}

/// Writes `data` to `path` through a temporary file, so that an
/// interrupted run never leaves a partial file that looks complete.
fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, data)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{
        BUSYBOX, KERNEL, check_riscv_image, entries_named, kernel_names, madison_versions, newest,
        stamp_entry,
    };

    #[test]
    fn the_newest_version_follows_dpkg_ordering() {
        let versions = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            newest(&versions(&["1:1.37.0-6", "1:1.37.0-6+b9", "1:1.36.1-9"])),
            "1:1.37.0-6+b9"
        );
        // The epoch wins over everything after it; 6.12.9 < 6.12.117.
        assert_eq!(newest(&versions(&["1:9.0", "2:0.1"])), "2:0.1");
        assert_eq!(newest(&versions(&["6.12.117-1", "6.12.9-1"])), "6.12.117-1");
        assert_eq!(newest(&[]), "");
    }

    #[test]
    fn reads_versions_from_madison_output() {
        let text = "busybox-static | 1:1.37.0-6+b9 | http://deb.debian.org/debian trixie/main riscv64 Packages\n\
                    busybox-static | 1:1.37.0-6+b8 | http://deb.debian.org/debian trixie/main riscv64 Packages\n\
                    busybox | 1:1.37.0-6 | http://deb.debian.org/debian trixie/main riscv64 Packages\n";
        assert_eq!(
            madison_versions(text, "busybox-static"),
            ["1:1.37.0-6+b9", "1:1.37.0-6+b8"]
        );
        assert!(madison_versions("", "busybox-static").is_empty());
    }

    #[test]
    fn kernel_candidates_skip_debug_and_unsigned_packages() {
        let text = "linux-image-6.12.117+deb13-riscv64 - Linux 6.12 for 64-bit RISC-V platforms\n\
                    linux-image-6.12.117+deb13-riscv64-dbg - Debug symbols\n\
                    linux-image-6.12.117+deb13-riscv64-unsigned - Linux 6.12 unsigned\n\
                    linux-image-6.12.120+deb13-riscv64 - Linux 6.12 for 64-bit RISC-V platforms\n\
                    linux-image-riscv64 - Linux for 64-bit RISC-V platforms (meta-package)\n";
        assert_eq!(
            kernel_names(text),
            [
                "linux-image-6.12.117+deb13-riscv64",
                "linux-image-6.12.120+deb13-riscv64"
            ]
        );
    }

    #[test]
    fn the_stamp_holds_what_each_pin_resolved_to() {
        let stamp = "linux-image-6.12.117+deb13-riscv64=6.12.117-1 -> linux-image-6.12.117+deb13-riscv64=6.12.117-1\n\
                     busybox-static=1:1.37.0-6+b9 -> busybox-static=1:1.37.0-7\n";
        assert_eq!(
            stamp_entry(stamp, &KERNEL),
            Some("linux-image-6.12.117+deb13-riscv64=6.12.117-1")
        );
        assert_eq!(
            stamp_entry(stamp, &BUSYBOX),
            Some("busybox-static=1:1.37.0-7")
        );
        // A stamp written for other pins is no cache hit.
        let old = "busybox-static=1:1.36.1-1 -> busybox-static=1:1.36.1-1\n";
        assert_eq!(stamp_entry(old, &BUSYBOX), None);
    }

    #[test]
    fn finds_the_entries_a_scenario_names() {
        let text = "[[vm]]\nname = \"linux\"\nkernel = \"linux\"   # the Image\n\
                    initrd = \"linux-initrd\"\ncmdline = \"console=ttyS0\"\n\
                    [[vm]]\nname = \"vm0\"\nimage=\"hello\"\n";
        assert_eq!(entries_named(text), ["linux", "linux-initrd", "hello"]);
        assert!(entries_named("[[vm]]\nname = \"linux\"\n").is_empty());
    }

    #[test]
    fn only_a_riscv_image_header_is_accepted() {
        let mut image = vec![0u8; 64];
        image[..2].copy_from_slice(b"MZ");
        assert!(check_riscv_image(&image).is_err());
        image[0x38..0x3c].copy_from_slice(b"RSC\x05");
        assert!(check_riscv_image(&image).is_ok());
        assert!(check_riscv_image(b"short").is_err());
    }
}
