//! The options of `cargo xtask qemu`: which scenario file, guest images
//! the user brings (`--guest NAME=PATH[,initrd=PATH][,mem=MiB][,vcpus=N][,disk=FILE][,cmdline=...]`),
//! the management socket (at its default path unless `--mgmt SOCKET`
//! names another or `--no-mgmt` turns it off), and whether the console is
//! a terminal (`--console tty|plain`; by default, whether stdin is one).
//!
//! A `--guest` file with a RISC-V Linux Image header becomes the VM's
//! `kernel =` (packed as boot-image entry NAME, its initrd as NAME-initrd);
//! any other file is a raw `image =` as before. `cmdline=` must be the last
//! setting and takes the rest of the argument, commas included
//! (`cmdline=console=ttyS0 earlycon=sbi,foo`).

use std::path::PathBuf;

use vm_manager::MAX_VCPUS;
use vm_manager::boot_layout::{self, LayoutError};
use vm_manager::linux_image::{self, HEADER_BYTES, LinuxImage};
use vm_manager::scenario_file::{MEM_MIB, ScenarioLinux, ScenarioVm};
use vm_manager::{Cmdline, ImageName, VmName};

/// Guest images load 2 MiB into RAM and the device tree takes the last
/// 4 KiB page, so this much of a VM's RAM is not available to its image.
const RAM_NOT_FOR_THE_IMAGE: u64 = 2 * 1024 * 1024 + 4096;

/// What the user asked `xtask qemu` for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QemuOptions {
    /// `configs/<scenario>.toml`; `default` when not given.
    pub scenario: Option<String>,
    /// Guests from the user's files, each a static VM of its own.
    pub guests: Vec<GuestSpec>,
    /// The Unix socket of the management channel (a virtio console) that
    /// the `mica` CLI connects to.
    pub mgmt: Mgmt,
    /// `--console tty|plain`: how the kernel shows output beside the
    /// shell's prompt; `None`: what stdin is ([`ConsoleKind::of_stdin`]).
    pub console: Option<ConsoleKind>,
}

/// Where the management socket goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Mgmt {
    /// At the default path (`mica_cli::socket_path`), where `mica` looks
    /// without `--socket`.
    #[default]
    Default,
    /// `--mgmt SOCKET`.
    At(PathBuf),
    /// `--no-mgmt`: no management channel.
    Off,
}

/// What reads Mica's console, passed to the kernel as `mica.console=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleKind {
    /// A terminal: lines appear above the prompt, which is drawn again.
    Tty,
    /// A pipe or a file: no prompt is repeated between lines.
    Plain,
}

impl ConsoleKind {
    /// A terminal when stdin is one.
    pub fn of_stdin() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            ConsoleKind::Tty
        } else {
            ConsoleKind::Plain
        }
    }

    /// The kernel boot option saying so.
    pub fn boot_option(self) -> &'static str {
        match self {
            ConsoleKind::Tty => "mica.console=tty",
            ConsoleKind::Plain => "mica.console=plain",
        }
    }
}

/// One `--guest NAME=PATH[,initrd=PATH][,mem=MiB][,vcpus=N][,disk=FILE][,cmdline=...]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestSpec {
    /// The VM's name, also the image's name in the boot image.
    pub name: String,
    /// A Linux kernel Image, or a raw image (entered at RAM + 2 MiB).
    pub path: PathBuf,
    /// The kernel's initrd, packed as `NAME-initrd`.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// RAM in MiB (64 unless given).
    pub mem_mib: u32,
    /// vCPUs (1 unless given).
    pub vcpus: u8,
    /// A raw disk image file, the VM's virtio-blk disk (`disk=FILE`).
    pub disk: Option<String>,
}

/// The first bytes of `path`, if it can be read.
fn header_of(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut header = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(HEADER_BYTES as u64).read_to_end(&mut header);
    }
    header
}

impl GuestSpec {
    /// The boot-image entry of the initrd.
    pub fn initrd_entry(&self) -> String {
        format!("{}-initrd", self.name)
    }

    /// Whether the file carries a Linux Image magic (then it is `kernel =`).
    pub fn is_linux(&self) -> bool {
        linux_image::has_magic(&header_of(&self.path))
    }

    /// The static VM this guest becomes.
    pub fn vm(&self) -> ScenarioVm {
        let linux = self.is_linux().then(|| ScenarioLinux {
            initrd: self.initrd.as_ref().map(|_| self.initrd_entry()),
            cmdline: self.cmdline.clone().unwrap_or_default(),
        });
        ScenarioVm {
            name: self.name.clone(),
            image: self.name.clone(),
            linux,
            mem_mib: self.mem_mib,
            vcpus: self.vcpus,
            pre_launched: true,
            disk: self.disk.clone(),
        }
    }

    /// The size of file `path` (`what` names it in errors); refuses a
    /// missing or empty file.
    fn file_size(&self, what: &str, path: &std::path::Path) -> Result<u64, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("guest {}: cannot read {what}{shown}: {e}", self.name))?
            .len();
        if size == 0 {
            return Err(format!("guest {}: {what}{shown} is empty", self.name));
        }
        Ok(size)
    }

    /// Checks a Linux kernel, its initrd and command line against the VM.
    fn check_linux(&self, kernel: &LinuxImage) -> Result<(), String> {
        let name = &self.name;
        let initrd_len = match &self.initrd {
            Some(path) => {
                ImageName::parse(&self.initrd_entry())
                    .map_err(|e| format!("guest {name}: initrd entry {e}: use a shorter name"))?;
                Some(self.file_size("initrd ", path)?)
            }
            None => None,
        };
        if let Some(line) = &self.cmdline {
            Cmdline::parse(line).map_err(|e| format!("guest {name}: {e}"))?;
        }
        let ram = u64::from(self.mem_mib) << 20;
        boot_layout::plan_linux(ram, kernel, initrd_len).map_err(|e| match e {
            LayoutError::InitrdDoesNotFit { bytes, room, .. } => format!(
                "guest {name}: initrd {} is {bytes} bytes but VM {name} with {} MiB has room for {room}: give it more with mem=",
                self.initrd.as_deref().unwrap_or_else(|| std::path::Path::new("?")).display(),
                self.mem_mib
            ),
            other => format!("guest {name}: {}: {other}", self.path.display()),
        })?;
        Ok(())
    }

    /// Checks the files: they must exist and be non-empty; a Linux kernel
    /// and its initrd must fit the VM's RAM as `boot_layout` places them,
    /// a raw image below the reserved top pages; `initrd=`/`cmdline=` need
    /// a kernel. Returns the kernel's (or image's) size.
    pub fn check_file(&self) -> Result<u64, String> {
        let path = self.path.display();
        let size = self.file_size("", &self.path)?;
        let header = header_of(&self.path);
        if linux_image::has_magic(&header) {
            let kernel = linux_image::parse_header(&header, size)
                .map_err(|e| format!("guest {}: kernel {path} {e}", self.name))?;
            self.check_linux(&kernel)?;
            return Ok(size);
        }
        if self.initrd.is_some() || self.cmdline.is_some() {
            let why = linux_image::parse_header(&header, size)
                .err()
                .map_or(String::new(), |e| e.to_string());
            return Err(format!(
                "guest {}: kernel {path} {why}; initrd= and cmdline= need a Linux kernel",
                self.name
            ));
        }
        let room = u64::from(self.mem_mib) * 1024 * 1024 - RAM_NOT_FOR_THE_IMAGE;
        if size > room {
            return Err(format!(
                "guest {}: {path} is {size} bytes, but a VM with {} MiB holds an image of at most {room} bytes (give it more with mem=MiB)",
                self.name, self.mem_mib
            ));
        }
        Ok(size)
    }
}

/// Parses `xtask qemu`'s arguments.
/// Takes `flag VALUE` out of `args`, VALUE one of the names in `choices`
/// (a `what`, e.g. "architecture"); the rest is left for other options.
/// `default` when the flag is not given; the last one counts when it is
/// given twice.
pub fn take_choice<T: Copy>(
    args: &[String],
    flag: &str,
    what: &str,
    choices: &[(&str, T)],
    default: T,
) -> Result<(T, Vec<String>), String> {
    let names = choices
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(" or ");
    let mut chosen = default;
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg != flag {
            rest.push(arg.clone());
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value: {names}"))?;
        chosen = choices
            .iter()
            .find(|(name, _)| name == value)
            .map(|&(_, choice)| choice)
            .ok_or_else(|| format!("unknown {what} `{value}`: use {names}"))?;
    }
    Ok((chosen, rest))
}

pub fn parse(args: &[String]) -> Result<QemuOptions, String> {
    let mut options = QemuOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--scenario" => options.scenario = Some(value("--scenario")?),
            "--guest" => options.guests.push(guest_spec(&value("--guest")?)?),
            "--mgmt" | "--no-mgmt" if options.mgmt != Mgmt::Default => {
                return Err(
                    "give --mgmt SOCKET or --no-mgmt once: they say where the management socket goes, or that there is none".into(),
                );
            }
            "--mgmt" => {
                let socket = value("--mgmt")?;
                if socket.is_empty() {
                    return Err("--mgmt \"\": give the path of a Unix socket".into());
                }
                options.mgmt = Mgmt::At(PathBuf::from(socket));
            }
            "--no-mgmt" => options.mgmt = Mgmt::Off,
            "--console" => {
                options.console = Some(match value("--console")?.as_str() {
                    "tty" => ConsoleKind::Tty,
                    "plain" => ConsoleKind::Plain,
                    other => {
                        return Err(format!(
                            "--console {other:?}: use --console tty (a terminal: lines above the prompt) or --console plain (no prompt repeated)"
                        ));
                    }
                });
            }
            other => {
                return Err(format!(
                    "`xtask qemu` does not know `{other}`; use --scenario NAME, --guest NAME=PATH[,initrd=PATH][,mem=MiB][,vcpus=N][,disk=FILE][,cmdline=...], --mgmt SOCKET, --no-mgmt and --console tty|plain"
                ));
            }
        }
    }
    Ok(options)
}

/// Parses `NAME=PATH[,initrd=PATH][,mem=MiB][,vcpus=N][,disk=FILE][,cmdline=...]`;
/// `cmdline=` takes the rest of the text, commas included.
fn guest_spec(text: &str) -> Result<GuestSpec, String> {
    let usage = "use --guest NAME=PATH[,initrd=PATH][,mem=MiB][,vcpus=N][,disk=FILE][,cmdline=...] (cmdline last)";
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("--guest {text:?}: {usage}"))?;
    VmName::parse(name).map_err(|e| format!("--guest: {e}"))?;
    ImageName::parse(name).map_err(|e| format!("--guest: {e}"))?;
    let (rest, cmdline) = match rest.find(",cmdline=") {
        Some(at) => (
            &rest[..at],
            Some(rest[at + ",cmdline=".len()..].to_string()),
        ),
        None => (rest, None),
    };
    let mut parts = rest.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("--guest {text:?}: {usage}"))?;
    let mut spec = GuestSpec {
        name: name.into(),
        path: PathBuf::from(path),
        cmdline,
        mem_mib: 64,
        vcpus: 1,
        ..GuestSpec::default()
    };
    for part in parts {
        match part.split_once('=') {
            Some(("mem", mib)) => {
                spec.mem_mib = mib
                    .parse()
                    .ok()
                    .filter(|m| MEM_MIB.contains(m) && m % 2 == 0)
                    .ok_or_else(|| {
                        format!(
                            "--guest {name}: mem={mib}: use an even number of MiB from {} to {}",
                            MEM_MIB.start(),
                            MEM_MIB.end()
                        )
                    })?;
            }
            Some(("initrd", file)) if !file.is_empty() => {
                spec.initrd = Some(PathBuf::from(file));
            }
            Some(("disk", file)) if !file.is_empty() => {
                spec.disk = Some(file.to_string());
            }
            Some(("vcpus", n)) => {
                spec.vcpus = n
                    .parse()
                    .ok()
                    .filter(|v| (1..=MAX_VCPUS).contains(v))
                    .ok_or_else(|| {
                        format!("--guest {name}: vcpus={n}: a VM has 1 to {MAX_VCPUS} vCPUs")
                    })?;
            }
            _ => return Err(format!("--guest {name}: unknown setting {part:?}; {usage}")),
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::{ConsoleKind, GuestSpec, Mgmt, parse, take_choice};
    use std::path::PathBuf;

    #[test]
    fn a_choice_is_taken_out_of_the_arguments_and_a_wrong_one_named() {
        let sizes = [("small", 1), ("medium", 2), ("large", 3)];
        let take = |text: &str| take_choice(&args(text), "--size", "size", &sizes, 2);
        assert_eq!(take("-v --size large x"), Ok((3, args("-v x"))));
        assert_eq!(take("-v"), Ok((2, args("-v"))));
        assert_eq!(
            take("--size huge"),
            Err("unknown size `huge`: use small or medium or large".to_string())
        );
        assert_eq!(
            take("--size"),
            Err("--size needs a value: small or medium or large".to_string())
        );
    }

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_console_kind_can_be_forced_and_a_bad_one_is_refused() {
        assert_eq!(parse(&args("")).unwrap().console, None);
        let tty = parse(&args("--console tty")).unwrap().console;
        assert_eq!(tty.map(ConsoleKind::boot_option), Some("mica.console=tty"));
        let plain = parse(&args("--scenario hello --console plain")).unwrap();
        assert_eq!(plain.console, Some(ConsoleKind::Plain));
        assert_eq!(ConsoleKind::Plain.boot_option(), "mica.console=plain");
        let bad = parse(&args("--console vt100")).unwrap_err();
        assert!(bad.contains("--console tty"), "{bad}");
        assert!(
            parse(&args("--console"))
                .unwrap_err()
                .contains("needs a value")
        );
    }

    #[test]
    fn scenario_and_guests_parse() {
        let options = parse(&args(
            "--scenario misbehave --guest linux=/tmp/Image,mem=128 --guest g2=x",
        ))
        .unwrap();
        assert_eq!(options.scenario.as_deref(), Some("misbehave"));
        assert_eq!(
            options.guests[0],
            GuestSpec {
                name: "linux".into(),
                path: PathBuf::from("/tmp/Image"),
                mem_mib: 128,
                vcpus: 1,
                ..GuestSpec::default()
            }
        );
        assert_eq!(options.guests[1].mem_mib, 64);
        let smp = parse(&args("--guest linux=/tmp/Image,vcpus=4")).unwrap();
        assert_eq!(smp.guests[0].vcpus, 4, "a guest may have up to 8 vCPUs");
    }

    #[test]
    fn mgmt_names_the_management_socket() {
        let options = parse(&args("--mgmt /tmp/mica.sock --scenario default")).unwrap();
        assert_eq!(options.mgmt, Mgmt::At(PathBuf::from("/tmp/mica.sock")));
        assert_eq!(parse(&args("")).unwrap().mgmt, Mgmt::Default);
        assert_eq!(parse(&args("--no-mgmt")).unwrap().mgmt, Mgmt::Off);
        let error = |text: &str| parse(&args(text)).unwrap_err();
        assert_eq!(error("--mgmt"), "--mgmt needs a value");
        assert!(error("--mgmt /a --no-mgmt").starts_with("give --mgmt SOCKET or --no-mgmt once"));
        assert!(error("--no-mgmt --mgmt /a").starts_with("give --mgmt SOCKET or --no-mgmt once"));
        // QEMU's option syntax doubles a comma.
        let qemu = crate::qemu::mgmt_args(std::path::Path::new("/tmp/a,b.sock"));
        assert_eq!(
            qemu[1],
            "socket,id=mgmt,path=/tmp/a,,b.sock,server=on,wait=off"
        );
        let qemu = crate::qemu::mgmt_args(std::path::Path::new("/tmp/mica.sock"));
        assert_eq!(
            qemu,
            [
                "-chardev",
                "socket,id=mgmt,path=/tmp/mica.sock,server=on,wait=off",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=mgmt"
            ]
        );
    }

    #[test]
    fn bad_options_say_what_to_do() {
        let error = |text: &str| parse(&args(text)).unwrap_err();
        assert!(error("--frobnicate").starts_with("`xtask qemu` does not know `--frobnicate`"));
        assert_eq!(error("--scenario"), "--scenario needs a value");
        assert!(error("--guest noequals").contains("use --guest NAME=PATH[,initrd=PATH]"));
        assert!(error("--guest bad!=x").contains("is invalid: bad character '!'"));
        assert!(
            error("--guest g=x,mem=3").contains("mem=3: use an even number of MiB from 2 to 1024")
        );
        assert!(error("--guest g=x,vcpus=9").contains("vcpus=9: a VM has 1 to 8 vCPUs"));
        assert!(error("--guest g=x,vcpus=0").contains("vcpus=0: a VM has 1 to 8 vCPUs"));
        assert!(error("--guest g=x,color=red").contains("unknown setting \"color=red\""));
        assert!(error("--guest g=").contains("use --guest"));
    }

    #[test]
    fn a_missing_empty_or_too_big_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("mica-guest-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = |file: &str, mem_mib| GuestSpec {
            name: "g".into(),
            path: dir.join(file),
            mem_mib,
            vcpus: 1,
            ..GuestSpec::default()
        };
        assert!(
            spec("missing", 64)
                .check_file()
                .unwrap_err()
                .starts_with("guest g: cannot read")
        );
        std::fs::write(dir.join("empty"), b"").unwrap();
        assert!(
            spec("empty", 64)
                .check_file()
                .unwrap_err()
                .ends_with("is empty")
        );
        std::fs::write(dir.join("big"), vec![1u8; 3 * 1024 * 1024]).unwrap();
        let too_big = spec("big", 4).check_file().unwrap_err();
        assert!(
            too_big.contains(
                "is 3145728 bytes, but a VM with 4 MiB holds an image of at most 2093056 bytes"
            ),
            "{too_big}"
        );
        assert_eq!(spec("big", 8).check_file(), Ok(3 * 1024 * 1024));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cmdline_is_last_and_takes_the_rest_commas_included() {
        let spec = super::guest_spec(
            "lx=/tmp/Image,initrd=/tmp/rd,mem=128,cmdline=console=ttyS0 earlycon=sbi,foo",
        )
        .unwrap();
        assert_eq!(spec.initrd, Some(PathBuf::from("/tmp/rd")));
        assert_eq!(spec.mem_mib, 128);
        assert_eq!(
            spec.cmdline.as_deref(),
            Some("console=ttyS0 earlycon=sbi,foo")
        );
        assert_eq!(spec.initrd_entry(), "lx-initrd");
    }

    #[test]
    fn linux_guests_are_checked_on_the_host() {
        let dir = std::env::temp_dir().join(format!("mica-linux-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut image = vec![0u8; 8192];
        image[0x08..0x10].copy_from_slice(&0x20_0000u64.to_le_bytes());
        image[0x10..0x18].copy_from_slice(&(20u64 << 20).to_le_bytes());
        image[0x38..0x3c].copy_from_slice(b"RSC\x05");
        std::fs::write(dir.join("Image"), &image).unwrap();
        std::fs::write(dir.join("raw"), vec![0x13u8; 4096]).unwrap();
        std::fs::write(dir.join("rd"), vec![1u8; 10 << 20]).unwrap();
        let spec = |path: &str, initrd: Option<&str>, cmdline: Option<&str>, mem_mib| GuestSpec {
            name: "lx".into(),
            path: dir.join(path),
            initrd: initrd.map(|i| dir.join(i)),
            cmdline: cmdline.map(String::from),
            mem_mib,
            vcpus: 1,
            disk: None,
        };
        let good = spec("Image", Some("rd"), Some("console=ttyS0"), 64);
        assert_eq!(good.check_file(), Ok(8192));
        let vm = good.vm();
        let linux = vm.linux.unwrap();
        assert_eq!(linux.initrd.as_deref(), Some("lx-initrd"));
        assert_eq!(linux.cmdline, "console=ttyS0");
        assert_eq!(spec("raw", None, None, 64).vm().linux, None);

        let small = spec("Image", Some("rd"), None, 32)
            .check_file()
            .unwrap_err();
        assert!(small.starts_with("guest lx: initrd "), "{small}");
        assert!(
            small.ends_with("is 10485760 bytes but VM lx with 32 MiB has room for 10477568: give it more with mem="),
            "{small}"
        );
        let raw = spec("raw", None, Some("quiet"), 64)
            .check_file()
            .unwrap_err();
        assert!(raw.contains("is not a RISC-V Linux Image"), "{raw}");
        assert!(
            raw.ends_with("initrd= and cmdline= need a Linux kernel"),
            "{raw}"
        );
        let missing = spec("Image", Some("nope"), None, 64)
            .check_file()
            .unwrap_err();
        assert!(
            missing.starts_with("guest lx: cannot read initrd "),
            "{missing}"
        );
        let long = "x".repeat(1024);
        let long = spec("Image", None, Some(&long), 64)
            .check_file()
            .unwrap_err();
        assert!(
            long.ends_with("Linux takes at most 1023, shorten it"),
            "{long}"
        );
        let tiny = spec("Image", None, None, 16).check_file().unwrap_err();
        assert!(tiny.contains("give it more with mem="), "{tiny}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
