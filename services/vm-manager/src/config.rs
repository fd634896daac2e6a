//! VM configurations: the build-time [`StaticVmConfig`] scenario, its
//! validation, and the run-time [`VmConfig`] every slot holds (static or
//! built from `Create` options).

use core::fmt;

use ipc::vm::CreateOptions;

use crate::linux_boot::{Cmdline, LinuxBoot, LinuxBootError, StaticLinuxBoot, check_cmdline};
use crate::name::{ImageName, InvalidName, VmName};

/// The most vCPUs one VM may have: the kernel's limit
/// ([`ipc::syscall::MAX_VCPUS`]), one PLIC context and ioreq slot each.
pub const MAX_VCPUS: u8 = ipc::syscall::MAX_VCPUS.to_le_bytes()[0];
const _: () = assert!(MAX_VCPUS as usize == ipc::syscall::MAX_VCPUS);

/// Guest flags of a configuration (ACRN's `guest_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmFlags(u32);

impl VmFlags {
    /// No flag set.
    pub const NONE: VmFlags = VmFlags(0);
    /// Configured at build time: the configuration outlives the VM (ACRN's
    /// `GUEST_FLAG_STATIC_VM`). Every entry of a scenario must carry it.
    pub const STATIC: VmFlags = VmFlags(1 << 0);
    /// Pre-launched: created and started by the hypervisor at boot (see
    /// `VmManager::launch_pre_launched`), not by a management request.
    pub const PRE_LAUNCHED: VmFlags = VmFlags(1 << 1);

    /// Both sets of flags.
    pub const fn union(self, other: VmFlags) -> VmFlags {
        VmFlags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: VmFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// One VM of the build-time scenario, as the generated configuration (or a
/// test) writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticVmConfig {
    /// The VM's name; creating a VM of this name launches this configuration.
    pub name: &'static str,
    /// The guest image it boots: a raw image, or the Linux kernel Image
    /// when `linux` is set.
    pub image: &'static str,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// Number of vCPUs (1 to [`MAX_VCPUS`]).
    pub vcpus: u8,
    /// Must contain [`VmFlags::STATIC`]; may contain [`VmFlags::PRE_LAUNCHED`].
    pub flags: VmFlags,
    /// Set for a Linux kernel (scenario `kernel =`): its initrd and command
    /// line. `None` for a raw image (`image =`).
    pub linux: Option<StaticLinuxBoot>,
    /// The host disk it gets as a virtio-blk device (scenario `disk =`:
    /// the block service's disk number, in the scenario's order of
    /// disks), if any.
    pub disk: Option<u8>,
}

/// Why a build-time scenario was refused (the build is broken, not a user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    /// More static VMs than the slot table holds.
    TooManyVms {
        /// How many the scenario has.
        count: usize,
        /// The slot table's size.
        max: usize,
    },
    /// Entry `index` has an invalid VM name.
    BadName {
        /// Position in the scenario.
        index: usize,
        /// What is wrong.
        error: InvalidName,
    },
    /// Entry `index` has an invalid image name.
    BadImage {
        /// Position in the scenario.
        index: usize,
        /// What is wrong.
        error: InvalidName,
    },
    /// Entries `first` and `second` have the same name.
    DuplicateName {
        /// The earlier entry.
        first: usize,
        /// The later entry.
        second: usize,
    },
    /// Entry `index` lacks [`VmFlags::STATIC`].
    NotStatic {
        /// Position in the scenario.
        index: usize,
    },
    /// Entry `index` has 0 or more than [`MAX_VCPUS`] vCPUs.
    BadVcpuCount {
        /// Position in the scenario.
        index: usize,
    },
    /// Entry `index` has 0 MiB of RAM.
    NoMemory {
        /// Position in the scenario.
        index: usize,
    },
    /// Entry `index` has a bad initrd name or command line.
    BadLinuxBoot {
        /// Position in the scenario.
        index: usize,
        /// What is wrong.
        error: LinuxBootError,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::TooManyVms { count, max } => {
                write!(f, "scenario has {count} VMs; at most {max} fit")
            }
            ScenarioError::BadName { index, error } => write!(f, "scenario VM {index}: {error}"),
            ScenarioError::BadImage { index, error } => {
                write!(f, "scenario VM {index}: image {error}")
            }
            ScenarioError::DuplicateName { first, second } => {
                write!(f, "scenario VMs {first} and {second} have the same name")
            }
            ScenarioError::NotStatic { index } => {
                write!(f, "scenario VM {index} lacks the STATIC flag")
            }
            ScenarioError::BadVcpuCount { index } => {
                write!(f, "scenario VM {index}: use 1-{MAX_VCPUS} vCPUs")
            }
            ScenarioError::NoMemory { index } => write!(f, "scenario VM {index} has no RAM"),
            ScenarioError::BadLinuxBoot { index, error } => {
                write!(f, "scenario VM {index}: {error}")
            }
        }
    }
}

/// Checks a vCPU count against 1..=[`MAX_VCPUS`].
pub fn check_vcpus(vcpus: u8) -> Result<u8, ipc::Error> {
    if (1..=MAX_VCPUS).contains(&vcpus) {
        Ok(vcpus)
    } else {
        Err(ipc::Error::InvalidArgument)
    }
}

/// Checks a RAM size: zero MiB is refused as [`ipc::Error::OutOfMemory`].
pub fn check_mem(mem_mib: u32) -> Result<u32, ipc::Error> {
    if mem_mib == 0 {
        Err(ipc::Error::OutOfMemory)
    } else {
        Ok(mem_mib)
    }
}

/// What a dynamic VM gets for settings that neither its options nor its
/// template give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicDefaults {
    /// Guest image; `None` (the default): a create must name an image, a
    /// kernel or a template ([`ipc::Error::NoImageGiven`] otherwise).
    pub image: Option<&'static str>,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// Number of vCPUs.
    pub vcpus: u8,
}

impl Default for DynamicDefaults {
    fn default() -> Self {
        DynamicDefaults {
            image: None,
            mem_mib: 128,
            vcpus: 1,
        }
    }
}

/// A validated configuration, as a slot holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The VM's unique name.
    pub name: VmName,
    /// The image it boots.
    pub image: ImageName,
    /// RAM in MiB (never 0).
    pub mem_mib: u32,
    /// Number of vCPUs (1 to [`MAX_VCPUS`]).
    pub vcpus: u8,
    /// Its flags.
    pub flags: VmFlags,
    /// Set when `image` is a Linux kernel: its initrd and command line.
    pub linux: Option<LinuxBoot>,
    /// The host disk (the block service's number) it gets as a virtio-blk
    /// device, if any.
    pub disk: Option<u8>,
}

impl VmConfig {
    /// Validates scenario entry `index`.
    pub fn from_static(index: usize, entry: &StaticVmConfig) -> Result<Self, ScenarioError> {
        let name =
            VmName::parse(entry.name).map_err(|error| ScenarioError::BadName { index, error })?;
        let image = ImageName::parse(entry.image)
            .map_err(|error| ScenarioError::BadImage { index, error })?;
        if !entry.flags.contains(VmFlags::STATIC) {
            return Err(ScenarioError::NotStatic { index });
        }
        check_vcpus(entry.vcpus).map_err(|_| ScenarioError::BadVcpuCount { index })?;
        check_mem(entry.mem_mib).map_err(|_| ScenarioError::NoMemory { index })?;
        let linux = entry
            .linux
            .map(|l| l.to_boot())
            .transpose()
            .map_err(|error| ScenarioError::BadLinuxBoot { index, error })?;
        Ok(VmConfig {
            name,
            image,
            mem_mib: entry.mem_mib,
            vcpus: entry.vcpus,
            flags: entry.flags,
            linux,
            disk: entry.disk,
        })
    }

    /// Builds a dynamic VM's configuration: `options` override `template`
    /// (already looked up), which overrides `defaults`.
    ///
    /// Errors: an invalid image, kernel or initrd name is
    /// [`ipc::Error::UnknownImage`] (no image can have it); both `image`
    /// and `kernel`, an initrd or command line for a raw image, a command
    /// line with NUL, 0 or more than [`MAX_VCPUS`] vCPUs is
    /// [`ipc::Error::InvalidArgument`]; 0 MiB is [`ipc::Error::OutOfMemory`];
    /// no image, kernel or template (and no default image) is
    /// [`ipc::Error::NoImageGiven`].
    ///
    /// `disk` is the VM's own: a template's disk is never inherited.
    ///
    /// `kernel` boots a Linux Image (with `initrd`/`cmdline`, else none);
    /// `image` a raw image; neither keeps the template's choice, whose
    /// initrd and command line `initrd`/`cmdline` then override.
    pub fn dynamic(
        name: VmName,
        options: &CreateOptions,
        template: Option<&VmConfig>,
        defaults: &DynamicDefaults,
    ) -> Result<Self, ipc::Error> {
        let parse = |text: &str| ImageName::parse(text).map_err(|_| ipc::Error::UnknownImage);
        let (image, linux) = match (&options.image, &options.kernel, template) {
            (Some(_), Some(_), _) => return Err(ipc::Error::InvalidArgument),
            (Some(image), None, _) => (parse(image.as_str())?, None),
            (None, Some(kernel), _) => (parse(kernel.as_str())?, Some(LinuxBoot::default())),
            (None, None, Some(template)) => (template.image.clone(), template.linux.clone()),
            (None, None, None) => (
                parse(defaults.image.ok_or(ipc::Error::NoImageGiven)?)?,
                None,
            ),
        };
        let linux = match linux {
            Some(mut boot) => {
                if let Some(initrd) = &options.initrd {
                    boot.initrd = Some(parse(initrd.as_str())?);
                }
                if let Some(line) = &options.cmdline {
                    check_cmdline(line, ipc::vm::MAX_WIRE_CMDLINE)
                        .map_err(|_| ipc::Error::InvalidArgument)?;
                    boot.cmdline = Cmdline::parse(line).map_err(|_| ipc::Error::InvalidArgument)?;
                }
                Some(boot)
            }
            None if options.initrd.is_some() || options.cmdline.is_some() => {
                return Err(ipc::Error::InvalidArgument);
            }
            None => None,
        };
        let vcpus = options
            .vcpus
            .or(template.map(|t| t.vcpus))
            .unwrap_or(defaults.vcpus);
        let mem_mib = options
            .mem_mib
            .or(template.map(|t| t.mem_mib))
            .unwrap_or(defaults.mem_mib);
        Ok(VmConfig {
            name,
            image,
            mem_mib: check_mem(mem_mib)?,
            vcpus: check_vcpus(vcpus)?,
            flags: VmFlags::NONE,
            linux,
            // A disk is one VM's: a template's stays with it.
            disk: options.disk,
        })
    }

    /// Whether this is a build-time configuration.
    pub fn is_static(&self) -> bool {
        self.flags.contains(VmFlags::STATIC)
    }

    /// The create options that build this configuration again with
    /// [`VmConfig::dynamic`] (no template, every setting given): what the
    /// kernel keeps with a dynamic VM for a restarted vm-manager.
    pub fn as_options(&self) -> CreateOptions {
        let image = Some(self.image.to_wire());
        let (image, kernel) = match self.linux {
            Some(_) => (None, image),
            None => (image, None),
        };
        let linux = self.linux.as_ref();
        CreateOptions {
            template: None,
            image,
            mem_mib: Some(self.mem_mib),
            vcpus: Some(self.vcpus),
            kernel,
            initrd: linux
                .and_then(|l| l.initrd.as_ref())
                .map(ImageName::to_wire),
            cmdline: linux
                .map(|l| l.cmdline.as_str())
                .filter(|line| !line.is_empty())
                .and_then(|line| ipc::vm::WireCmdline::try_from(line).ok()),
            disk: self.disk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: StaticVmConfig = StaticVmConfig {
        name: "sos",
        image: "linux",
        mem_mib: 256,
        vcpus: 2,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    };

    fn name(text: &str) -> VmName {
        VmName::parse(text).unwrap()
    }

    #[test]
    fn flags_combine_and_test() {
        let both = VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED);
        assert!(both.contains(VmFlags::STATIC));
        assert!(both.contains(VmFlags::PRE_LAUNCHED));
        assert!(!VmFlags::STATIC.contains(VmFlags::PRE_LAUNCHED));
        assert_eq!(both.bits(), 0b11);
    }

    #[test]
    fn a_good_static_entry_is_accepted_as_written() {
        let config = VmConfig::from_static(0, &GOOD).unwrap();
        assert_eq!(config.name.as_str(), "sos");
        assert_eq!(config.image.as_str(), "linux");
        assert_eq!((config.mem_mib, config.vcpus), (256, 2));
        assert!(config.is_static());
    }

    #[test]
    fn each_bad_static_entry_is_refused_with_its_reason() {
        let cases: [(StaticVmConfig, ScenarioError); 6] = [
            (
                StaticVmConfig {
                    name: "a b",
                    ..GOOD
                },
                ScenarioError::BadName {
                    index: 3,
                    error: VmName::parse("a b").unwrap_err(),
                },
            ),
            (
                StaticVmConfig { image: "", ..GOOD },
                ScenarioError::BadImage {
                    index: 3,
                    error: ImageName::parse("").unwrap_err(),
                },
            ),
            (
                StaticVmConfig {
                    flags: VmFlags::PRE_LAUNCHED,
                    ..GOOD
                },
                ScenarioError::NotStatic { index: 3 },
            ),
            (
                StaticVmConfig { vcpus: 0, ..GOOD },
                ScenarioError::BadVcpuCount { index: 3 },
            ),
            (
                StaticVmConfig {
                    vcpus: MAX_VCPUS + 1,
                    ..GOOD
                },
                ScenarioError::BadVcpuCount { index: 3 },
            ),
            (
                StaticVmConfig { mem_mib: 0, ..GOOD },
                ScenarioError::NoMemory { index: 3 },
            ),
        ];
        for (entry, expected) in cases {
            assert_eq!(VmConfig::from_static(3, &entry), Err(expected));
        }
    }

    #[test]
    fn dynamic_config_takes_defaults_then_template_then_options() {
        assert_eq!(
            VmConfig::dynamic(
                name("d"),
                &CreateOptions::default(),
                None,
                &DynamicDefaults::default()
            ),
            Err(ipc::Error::NoImageGiven),
            "no image, kernel, template or default image: nothing to boot"
        );
        let defaults = DynamicDefaults {
            image: Some("guest"),
            ..DynamicDefaults::default()
        };
        let plain =
            VmConfig::dynamic(name("d"), &CreateOptions::default(), None, &defaults).unwrap();
        assert_eq!(plain.image.as_str(), "guest");
        assert_eq!((plain.mem_mib, plain.vcpus), (128, 1));
        assert!(!plain.is_static());

        let template = VmConfig::from_static(0, &GOOD).unwrap();
        let copied = VmConfig::dynamic(
            name("d"),
            &CreateOptions::default(),
            Some(&template),
            &defaults,
        )
        .unwrap();
        assert_eq!(copied.image.as_str(), "linux");
        assert_eq!((copied.mem_mib, copied.vcpus), (256, 2));
        assert_eq!(copied.flags, VmFlags::NONE, "a copy is never static");

        let options = CreateOptions {
            template: None,
            image: Some(ipc::wire_name("other").unwrap()),
            mem_mib: Some(64),
            vcpus: Some(8),
            ..CreateOptions::default()
        };
        let overridden =
            VmConfig::dynamic(name("d"), &options, Some(&template), &defaults).unwrap();
        assert_eq!(overridden.image.as_str(), "other");
        assert_eq!((overridden.mem_mib, overridden.vcpus), (64, 8));
        let too_many = CreateOptions {
            vcpus: Some(9),
            ..options
        };
        assert_eq!(
            VmConfig::dynamic(name("d"), &too_many, Some(&template), &defaults),
            Err(ipc::Error::InvalidArgument),
            "a VM has at most the kernel's 8 vCPUs"
        );
    }

    #[test]
    fn a_dynamic_vm_has_the_disk_it_asks_for_and_never_its_templates() {
        let defaults = DynamicDefaults::default();
        let template = VmConfig::from_static(
            0,
            &StaticVmConfig {
                disk: Some(1),
                ..GOOD
            },
        )
        .unwrap();
        let copied = VmConfig::dynamic(
            name("d"),
            &CreateOptions::default(),
            Some(&template),
            &defaults,
        )
        .unwrap();
        assert_eq!(copied.disk, None, "the template's disk stays its own");
        let options = CreateOptions {
            disk: Some(3),
            ..CreateOptions::default()
        };
        let with_disk = VmConfig::dynamic(name("d"), &options, Some(&template), &defaults).unwrap();
        assert_eq!(with_disk.disk, Some(3));
        assert_eq!(with_disk.as_options().disk, Some(3), "kept for a restart");
    }

    #[test]
    fn a_dynamic_config_is_built_again_from_its_options() {
        let defaults = DynamicDefaults {
            image: Some("guest"),
            ..DynamicDefaults::default()
        };
        let raw = CreateOptions {
            image: Some(ipc::wire_name("hello").unwrap()),
            mem_mib: Some(12),
            vcpus: Some(1),
            ..CreateOptions::default()
        };
        let linux = CreateOptions {
            kernel: Some(ipc::wire_name("linux").unwrap()),
            initrd: Some(ipc::wire_name("initramfs").unwrap()),
            cmdline: Some(ipc::vm::WireCmdline::try_from("console=ttyS0 quiet").unwrap()),
            ..CreateOptions::default()
        };
        let disk = CreateOptions {
            image: Some(ipc::wire_name("hello").unwrap()),
            disk: Some(2),
            ..CreateOptions::default()
        };
        for options in [raw, linux, disk, CreateOptions::default()] {
            let config = VmConfig::dynamic(name("d"), &options, None, &defaults).unwrap();
            let again =
                VmConfig::dynamic(name("d"), &config.as_options(), None, &defaults).unwrap();
            assert_eq!(again, config, "{options:?}");
        }
    }

    #[test]
    fn dynamic_config_refuses_bad_settings() {
        let defaults = DynamicDefaults {
            image: Some("guest"),
            ..DynamicDefaults::default()
        };
        let with = |image: Option<&str>, mem_mib, vcpus| CreateOptions {
            template: None,
            image: image.map(|i| ipc::wire_name(i).unwrap()),
            mem_mib,
            vcpus,
            ..CreateOptions::default()
        };
        let cases = [
            (with(None, None, Some(0)), ipc::Error::InvalidArgument),
            (with(None, None, Some(17)), ipc::Error::InvalidArgument),
            (with(None, Some(0), None), ipc::Error::OutOfMemory),
            (
                with(Some("bad image"), None, None),
                ipc::Error::UnknownImage,
            ),
        ];
        for (options, expected) in cases {
            assert_eq!(
                VmConfig::dynamic(name("d"), &options, None, &defaults),
                Err(expected)
            );
        }
    }

    fn wire(text: &str) -> Option<ipc::WireName> {
        Some(ipc::wire_name(text).unwrap())
    }

    #[test]
    fn a_kernel_boots_with_its_initrd_and_command_line() {
        let defaults = DynamicDefaults {
            image: Some("guest"),
            ..DynamicDefaults::default()
        };
        let options = CreateOptions {
            kernel: wire("lx"),
            initrd: wire("lx-initrd"),
            cmdline: Some(ipc::vm::WireCmdline::try_from("console=ttyS0 quiet").unwrap()),
            ..CreateOptions::default()
        };
        let config = VmConfig::dynamic(name("d"), &options, None, &defaults).unwrap();
        assert_eq!(config.image.as_str(), "lx");
        let linux = config.linux.clone().unwrap();
        assert_eq!(linux.initrd.unwrap().as_str(), "lx-initrd");
        assert_eq!(linux.cmdline.as_str(), "console=ttyS0 quiet");
        // A copy keeps the kernel and takes a new command line.
        let line = CreateOptions {
            cmdline: Some(ipc::vm::WireCmdline::try_from("single").unwrap()),
            ..CreateOptions::default()
        };
        let copy = VmConfig::dynamic(name("e"), &line, Some(&config), &defaults).unwrap();
        let linux = copy.linux.unwrap();
        assert_eq!(linux.cmdline.as_str(), "single");
        assert_eq!(linux.initrd.unwrap().as_str(), "lx-initrd");
    }

    #[test]
    fn kernel_options_that_contradict_are_refused() {
        let defaults = DynamicDefaults {
            image: Some("guest"),
            ..DynamicDefaults::default()
        };
        let cases = [
            CreateOptions {
                image: wire("raw"),
                kernel: wire("lx"),
                ..CreateOptions::default()
            },
            CreateOptions {
                initrd: wire("rd"),
                ..CreateOptions::default()
            },
            CreateOptions {
                image: wire("raw"),
                cmdline: Some(ipc::vm::WireCmdline::new()),
                ..CreateOptions::default()
            },
            CreateOptions {
                kernel: wire("lx"),
                cmdline: Some(ipc::vm::WireCmdline::try_from("a\0b").unwrap()),
                ..CreateOptions::default()
            },
        ];
        for options in cases {
            assert_eq!(
                VmConfig::dynamic(name("d"), &options, None, &defaults),
                Err(ipc::Error::InvalidArgument),
                "{options:?}"
            );
        }
    }

    #[test]
    fn a_static_kernel_entry_keeps_its_boot_and_a_bad_one_is_refused() {
        let entry = StaticVmConfig {
            linux: Some(StaticLinuxBoot {
                initrd: None,
                cmdline: "console=ttyS0",
            }),
            ..GOOD
        };
        let config = VmConfig::from_static(0, &entry).unwrap();
        assert_eq!(config.linux.unwrap().cmdline.as_str(), "console=ttyS0");
        let bad = StaticVmConfig {
            linux: Some(StaticLinuxBoot {
                initrd: None,
                cmdline: "a\0",
            }),
            ..GOOD
        };
        assert!(matches!(
            VmConfig::from_static(1, &bad),
            Err(ScenarioError::BadLinuxBoot { index: 1, .. })
        ));
    }
}
