//! Scenario files (`configs/*.toml`): the static VMs of a build, read on the
//! host by xtask and by the vm-manager task's build script, checked with the
//! same rules the service applies, and turned into the task's
//! `&'static [StaticVmConfig]`. A malformed file is refused with its line
//! and the reason.
//!
//! ```toml
//! [[vm]]
//! name = "vm0"          # the VM's unique name
//! image = "hello"       # a raw guest image of the boot image, entered at
//!                       # RAM + 2 MiB ...
//! # kernel = "lx"       # ... or a RISC-V Linux kernel Image (not both)
//! # initrd = "lx-initrd"          # optional, with kernel: the initrd
//! # cmdline = "console=ttyS0"     # optional, with kernel: at most 1023
//!                                 # bytes, no NUL ("" by default)
//! mem_mib = 64          # optional, 64 by default (2-1024, even)
//! vcpus = 1             # optional, 1 by default (1-8: the kernel's
//!                       # ipc::syscall::MAX_VCPUS)
//! pre_launched = true   # optional, true by default: started at boot
//! # disk = "target/disk.img"  # optional (RISC-V): a raw disk image file on
//!                             # the host, the VM's virtio-blk disk; one VM
//!                             # per file
//! ```
//!
//! Disks are numbered in the file's order (the first VM with a `disk =`
//! has disk 0): `cargo xtask qemu` gives QEMU the files in that order
//! (serial `micaN`), the block service serves disk N as that file.

extern crate std;

use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::Deserialize;
use toml::Spanned;

use crate::config::MAX_VCPUS;
use crate::linux_boot::Cmdline;
use crate::name::{ImageName, VmName};
use crate::service::DEFAULT_MAX_VM_NUM;

/// Guest RAM the kernel accepts, in MiB (whole 2 MiB pages).
pub const MEM_MIB: core::ops::RangeInclusive<u32> = 2..=1024;

/// One static VM of a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioVm {
    /// Its name (valid per [`VmName`]).
    pub name: String,
    /// The guest image it boots (valid per [`ImageName`]): a raw image, or
    /// the Linux kernel when `linux` is set.
    pub image: String,
    /// Set for `kernel =`: the initrd and command line.
    pub linux: Option<ScenarioLinux>,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// Started by the vm-manager at boot.
    pub pre_launched: bool,
    /// Its disk image file on the host (`disk =`), if any.
    pub disk: Option<String>,
}

/// A scenario VM's Linux boot: `initrd =` and `cmdline =`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioLinux {
    /// The initrd entry, if any.
    pub initrd: Option<String>,
    /// The command line ("" when none).
    pub cmdline: String,
}

/// Why a scenario file was refused: the 1-based line and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioFileError {
    /// Where (1-based); 0 when the whole file is at fault.
    pub line: usize,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl fmt::Display for ScenarioFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vm: Vec<Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<String>,
    image: Option<Spanned<String>>,
    kernel: Option<Spanned<String>>,
    initrd: Option<Spanned<String>>,
    cmdline: Option<Spanned<String>>,
    mem_mib: Option<Spanned<u32>>,
    vcpus: Option<Spanned<u8>>,
    pre_launched: Option<bool>,
    disk: Option<Spanned<String>>,
}

/// Parses and checks a scenario file's text.
pub fn parse(text: &str) -> Result<Vec<ScenarioVm>, ScenarioFileError> {
    let line_of = |offset: usize| {
        text.get(..offset)
            .map_or(0, |s| s.matches('\n').count() + 1)
    };
    let at = |offset: usize, reason: String| ScenarioFileError {
        line: line_of(offset),
        reason,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |span| line_of(span.start));
        ScenarioFileError {
            line,
            reason: e.message().to_string(),
        }
    })?;
    if file.vm.is_empty() {
        return Err(ScenarioFileError {
            line: 0,
            reason: "no [[vm]] entries".into(),
        });
    }
    let mut vms: Vec<ScenarioVm> = Vec::new();
    for entry in &file.vm {
        let start = entry.span().start;
        let entry = entry.get_ref();
        let name = entry.name.get_ref();
        VmName::parse(name).map_err(|e| at(entry.name.span().start, e.to_string()))?;
        let (image, linux) = boot_of(entry, start).map_err(|(o, r)| at(o, r))?;
        if vms.iter().any(|vm| vm.name == *name) {
            return Err(at(
                entry.name.span().start,
                format!("a VM named {name:?} is already defined"),
            ));
        }
        if vms.len() >= DEFAULT_MAX_VM_NUM {
            return Err(at(
                start,
                format!("more than {DEFAULT_MAX_VM_NUM} VMs (the slot table's size)"),
            ));
        }
        let mem_mib = entry.mem_mib.as_ref().map_or(64, |m| *m.get_ref());
        if !MEM_MIB.contains(&mem_mib) || mem_mib % 2 != 0 {
            let offset = entry.mem_mib.as_ref().map_or(start, |m| m.span().start);
            let (low, high) = (MEM_MIB.start(), MEM_MIB.end());
            return Err(at(
                offset,
                format!("mem_mib = {mem_mib}: use an even number from {low} to {high}"),
            ));
        }
        let vcpus = entry.vcpus.as_ref().map_or(1, |v| *v.get_ref());
        if !(1..=MAX_VCPUS).contains(&vcpus) {
            let offset = entry.vcpus.as_ref().map_or(start, |v| v.span().start);
            return Err(at(
                offset,
                format!("vcpus = {vcpus}: a VM has 1 to {MAX_VCPUS} vCPUs"),
            ));
        }
        let disk = match &entry.disk {
            Some(file) => {
                let path = file.get_ref();
                if path.is_empty() || path.contains(',') {
                    return Err(at(
                        file.span().start,
                        format!(
                            "disk = {path:?}: name an image file (no commas: QEMU's option syntax)"
                        ),
                    ));
                }
                if vms
                    .iter()
                    .any(|vm| vm.disk.as_deref() == Some(path.as_str()))
                {
                    return Err(at(
                        file.span().start,
                        format!("disk = {path:?} is another VM's already: a disk is one VM's"),
                    ));
                }
                if vms.iter().filter(|vm| vm.disk.is_some()).count() >= ipc::blk::MAX_DISKS {
                    return Err(at(
                        file.span().start,
                        format!("more than {} disks", ipc::blk::MAX_DISKS),
                    ));
                }
                Some(path.clone())
            }
            None => None,
        };
        vms.push(ScenarioVm {
            name: name.clone(),
            image,
            linux,
            mem_mib,
            vcpus,
            pre_launched: entry.pre_launched.unwrap_or(true),
            disk,
        });
    }
    Ok(vms)
}

/// The entry's image and Linux boot, checked: exactly one of `image` and
/// `kernel`; `initrd` and `cmdline` only with `kernel`. Errors carry the
/// offset to blame.
fn boot_of(
    entry: &Entry,
    start: usize,
) -> Result<(String, Option<ScenarioLinux>), (usize, String)> {
    let named = |field: &Spanned<String>, what: &str| {
        ImageName::parse(field.get_ref())
            .map(|_| field.get_ref().clone())
            .map_err(|e| (field.span().start, format!("{what} {e}")))
    };
    let kernel = match (&entry.image, &entry.kernel) {
        (Some(_), Some(kernel)) => {
            return Err((
                kernel.span().start,
                "both image = and kernel =: give a raw image or a Linux kernel, not both".into(),
            ));
        }
        (None, None) => {
            return Err((
                start,
                "no image = or kernel =: name a raw guest image or a Linux kernel Image".into(),
            ));
        }
        (Some(image), None) => {
            if let Some(field) = entry.initrd.as_ref().or(entry.cmdline.as_ref()) {
                return Err((
                    field.span().start,
                    "initrd = and cmdline = need kernel = (a raw image = takes neither)".into(),
                ));
            }
            return Ok((named(image, "image")?, None));
        }
        (None, Some(kernel)) => named(kernel, "kernel")?,
    };
    let initrd = entry
        .initrd
        .as_ref()
        .map(|i| named(i, "initrd"))
        .transpose()?;
    let cmdline = match &entry.cmdline {
        Some(line) => {
            Cmdline::parse(line.get_ref()).map_err(|e| (line.span().start, e.to_string()))?;
            line.get_ref().clone()
        }
        None => String::new(),
    };
    Ok((kernel, Some(ScenarioLinux { initrd, cmdline })))
}

/// The Rust source of a `&'static [StaticVmConfig]` constant named `SCENARIO`
/// holding `vms` (for the vm-manager task's build script).
pub fn to_rust(vms: &[ScenarioVm]) -> String {
    let mut out = String::from("pub const SCENARIO: &[vm_manager::StaticVmConfig] = &[\n");
    let mut disks = 0u8;
    for vm in vms {
        let disk = match vm.disk {
            Some(_) => {
                disks += 1;
                format!("Some({})", disks - 1)
            }
            None => "None".to_string(),
        };
        let flags = if vm.pre_launched {
            "vm_manager::VmFlags::STATIC.union(vm_manager::VmFlags::PRE_LAUNCHED)"
        } else {
            "vm_manager::VmFlags::STATIC"
        };
        let linux = match &vm.linux {
            None => "None".to_string(),
            Some(l) => format!(
                "Some(vm_manager::StaticLinuxBoot {{ initrd: {:?}, cmdline: {:?} }})",
                l.initrd.as_deref(),
                l.cmdline
            ),
        };
        out.push_str(&format!(
            "    vm_manager::StaticVmConfig {{ name: {:?}, image: {:?}, mem_mib: {}, vcpus: {}, flags: {flags}, linux: {linux}, disk: {disk} }},\n",
            vm.name, vm.image, vm.mem_mib, vm.vcpus
        ));
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# two VMs\n[[vm]]\nname = \"vm0\"\nimage = \"hello\"\n\n[[vm]]\nname = \"vm1\"\nimage = \"hello\"\nmem_mib = 128\npre_launched = false\n";

    fn error(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        (e.line, e.reason)
    }

    #[test]
    fn a_good_file_gives_its_vms_with_defaults() {
        let vms = parse(GOOD).unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(
            (vms[0].mem_mib, vms[0].vcpus, vms[0].pre_launched),
            (64, 1, true)
        );
        let smp = parse("[[vm]]\nname = \"a\"\nimage = \"x\"\nvcpus = 8\n").unwrap();
        assert_eq!(smp[0].vcpus, 8, "up to the kernel's 8 vCPUs per VM");
        assert_eq!(
            (vms[1].name.as_str(), vms[1].mem_mib, vms[1].pre_launched),
            ("vm1", 128, false)
        );
    }

    #[test]
    fn disks_are_numbered_in_file_order_and_each_is_one_vms() {
        let text = "[[vm]]\nname = \"a\"\nimage = \"hello\"\ndisk = \"a.img\"\n\n[[vm]]\nname = \"b\"\nimage = \"hello\"\n\n[[vm]]\nname = \"c\"\nimage = \"hello\"\ndisk = \"c.img\"\n";
        let vms = parse(text).unwrap();
        assert_eq!(vms[0].disk.as_deref(), Some("a.img"));
        assert_eq!(vms[1].disk, None);
        let rust = to_rust(&vms);
        assert!(
            rust.contains("name: \"a\"") && rust.contains("disk: Some(0)"),
            "{rust}"
        );
        assert!(
            rust.contains("disk: Some(1)") && rust.contains("disk: None"),
            "{rust}"
        );
        let shared = "[[vm]]\nname = \"a\"\nimage = \"hello\"\ndisk = \"a.img\"\n[[vm]]\nname = \"b\"\nimage = \"hello\"\ndisk = \"a.img\"\n";
        let (line, reason) = error(shared);
        assert_eq!(line, 8, "{reason}");
        assert!(reason.contains("another VM's already"), "{reason}");
        let (_, reason) = error("[[vm]]\nname = \"a\"\nimage = \"hello\"\ndisk = \"a,b.img\"\n");
        assert!(reason.contains("no commas"), "{reason}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let (line, reason) = error("[[vm]]\nname = \"vm0\"\nimage = hello\n");
        assert_eq!(line, 3, "{reason}");
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        let (line, reason) = error("[[vm]]\nname = \"vm0\"\nimage = \"hello\"\nmemory = 64\n");
        assert!(reason.contains("unknown field `memory`"), "{reason}");
        assert!(line >= 1);
        let (_, reason) = error("[[vm]]\nname = \"vm0\"\n");
        assert!(reason.starts_with("no image = or kernel ="), "{reason}");
    }

    #[test]
    fn semantic_errors_name_the_line_and_the_rule() {
        assert_eq!(
            error("[[vm]]\nname = \"bad name\"\nimage = \"hello\"\n"),
            (
                2,
                "name \"bad name\" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]"
                    .into()
            )
        );
        let dup = "[[vm]]\nname = \"a\"\nimage = \"x\"\n[[vm]]\nname = \"a\"\nimage = \"x\"\n";
        assert_eq!(
            error(dup),
            (5, "a VM named \"a\" is already defined".into())
        );
        let (line, reason) = error("[[vm]]\nname = \"a\"\nimage = \"x\"\nmem_mib = 3\n");
        assert_eq!(
            (line, reason.as_str()),
            (4, "mem_mib = 3: use an even number from 2 to 1024")
        );
        let (line, reason) = error("[[vm]]\nname = \"a\"\nimage = \"x\"\nvcpus = 9\n");
        assert_eq!(
            (line, reason.as_str()),
            (4, "vcpus = 9: a VM has 1 to 8 vCPUs")
        );
        let (line, reason) = error("[[vm]]\nname = \"a\"\nimage = \"x\"\nvcpus = 0\n");
        assert_eq!(
            (line, reason.as_str()),
            (4, "vcpus = 0: a VM has 1 to 8 vCPUs")
        );
        assert_eq!(error("# nothing\n"), (0, "no [[vm]] entries".into()));
    }

    #[test]
    fn more_vms_than_slots_is_refused() {
        let text: String = (0..17)
            .map(|i| format!("[[vm]]\nname = \"v{i}\"\nimage = \"x\"\n"))
            .collect();
        let (line, reason) = error(&text);
        assert_eq!(line, 49);
        assert!(reason.starts_with("more than 16 VMs"), "{reason}");
    }

    #[test]
    fn generated_rust_lists_every_vm() {
        let rust = to_rust(&parse(GOOD).unwrap());
        assert!(rust.starts_with("pub const SCENARIO: &[vm_manager::StaticVmConfig] = &[\n"));
        assert!(rust.contains("name: \"vm1\", image: \"hello\", mem_mib: 128, vcpus: 1, flags: vm_manager::VmFlags::STATIC, linux: None, disk: None }"));
        assert!(rust.contains("VmFlags::STATIC.union(vm_manager::VmFlags::PRE_LAUNCHED)"));
    }

    const LINUX: &str = "[[vm]]\nname = \"lx\"\nkernel = \"lx\"\ninitrd = \"lx-initrd\"\ncmdline = \"console=ttyS0 earlycon=sbi\"\nmem_mib = 256\n";

    #[test]
    fn a_kernel_entry_carries_its_initrd_and_command_line_into_the_rust() {
        let vms = parse(LINUX).unwrap();
        let linux = vms[0].linux.clone().unwrap();
        assert_eq!(vms[0].image, "lx");
        assert_eq!(linux.initrd.as_deref(), Some("lx-initrd"));
        assert_eq!(linux.cmdline, "console=ttyS0 earlycon=sbi");
        let rust = to_rust(&vms);
        assert!(rust.contains("linux: Some(vm_manager::StaticLinuxBoot { initrd: Some(\"lx-initrd\"), cmdline: \"console=ttyS0 earlycon=sbi\" })"), "{rust}");
        let plain = parse("[[vm]]\nname = \"k\"\nkernel = \"k\"\n").unwrap();
        assert_eq!(plain[0].linux, Some(ScenarioLinux::default()));
    }

    #[test]
    fn kernel_options_are_checked_with_their_line() {
        let both = "[[vm]]\nname = \"a\"\nimage = \"x\"\nkernel = \"k\"\n";
        assert_eq!(
            error(both),
            (
                4,
                "both image = and kernel =: give a raw image or a Linux kernel, not both".into()
            )
        );
        let raw = "[[vm]]\nname = \"a\"\nimage = \"x\"\ncmdline = \"quiet\"\n";
        assert_eq!(
            error(raw),
            (
                4,
                "initrd = and cmdline = need kernel = (a raw image = takes neither)".into()
            )
        );
        let long = std::format!(
            "[[vm]]\nname = \"a\"\nkernel = \"k\"\ncmdline = \"{}\"\n",
            "x".repeat(1024)
        );
        assert_eq!(
            error(&long),
            (
                4,
                "cmdline is 1024 bytes: Linux takes at most 1023, shorten it".into()
            )
        );
        let bad = "[[vm]]\nname = \"a\"\nkernel = \"k\"\ninitrd = \"a b\"\n";
        assert_eq!(error(bad).0, 4);
    }
}
