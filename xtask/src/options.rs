//! The options of `cargo xtask qemu`: which scenario file, guest images
//! the user brings (`--guest NAME=PATH[,mem=MiB][,vcpus=N]`), and the
//! management socket (`--mgmt SOCKET`).

use std::path::PathBuf;

use vm_manager::scenario_file::{MAX_KERNEL_VCPUS, MEM_MIB, ScenarioVm};
use vm_manager::{ImageName, VmName};

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
    /// `--mgmt SOCKET`: the Unix socket of the management channel (a
    /// virtio console) that the `mica` CLI connects to.
    pub mgmt: Option<PathBuf>,
}

/// One `--guest NAME=PATH[,mem=MiB][,vcpus=N]`.
#[derive(Debug, PartialEq, Eq)]
pub struct GuestSpec {
    /// The VM's name, also the image's name in the boot image.
    pub name: String,
    /// The raw image (Linux boot protocol).
    pub path: PathBuf,
    /// RAM in MiB (64 unless given).
    pub mem_mib: u32,
    /// vCPUs (1 unless given).
    pub vcpus: u8,
}

impl GuestSpec {
    /// The static VM this guest becomes.
    pub fn vm(&self) -> ScenarioVm {
        ScenarioVm {
            name: self.name.clone(),
            image: self.name.clone(),
            linux: None,
            mem_mib: self.mem_mib,
            vcpus: self.vcpus,
            pre_launched: true,
        }
    }

    /// Checks the file: it must exist, be non-empty and fit the VM's RAM.
    pub fn check_file(&self) -> Result<u64, String> {
        let path = self.path.display();
        let size = std::fs::metadata(&self.path)
            .map_err(|e| format!("guest {}: cannot read {path}: {e}", self.name))?
            .len();
        if size == 0 {
            return Err(format!("guest {}: {path} is empty", self.name));
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
            "--mgmt" => {
                let socket = value("--mgmt")?;
                if socket.is_empty() || socket.contains(',') {
                    return Err(format!(
                        "--mgmt {socket:?}: give the path of a Unix socket (no commas: QEMU's option syntax)"
                    ));
                }
                options.mgmt = Some(PathBuf::from(socket));
            }
            other => {
                return Err(format!(
                    "`xtask qemu` does not know `{other}`; use --scenario NAME, --guest NAME=PATH[,mem=MiB][,vcpus=N] and --mgmt SOCKET"
                ));
            }
        }
    }
    Ok(options)
}

/// Parses `NAME=PATH[,mem=MiB][,vcpus=N]`.
fn guest_spec(text: &str) -> Result<GuestSpec, String> {
    let usage = "use --guest NAME=PATH[,mem=MiB][,vcpus=N]";
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("--guest {text:?}: {usage}"))?;
    VmName::parse(name).map_err(|e| format!("--guest: {e}"))?;
    ImageName::parse(name).map_err(|e| format!("--guest: {e}"))?;
    let mut parts = rest.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("--guest {text:?}: {usage}"))?;
    let mut spec = GuestSpec {
        name: name.into(),
        path: PathBuf::from(path),
        mem_mib: 64,
        vcpus: 1,
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
            Some(("vcpus", n)) => {
                spec.vcpus = n
                    .parse()
                    .ok()
                    .filter(|&v| v >= 1 && v <= MAX_KERNEL_VCPUS)
                    .ok_or_else(|| {
                        format!("--guest {name}: vcpus={n}: this kernel runs 1 vCPU per VM")
                    })?;
            }
            _ => return Err(format!("--guest {name}: unknown setting {part:?}; {usage}")),
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::{GuestSpec, parse};
    use std::path::PathBuf;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
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
                vcpus: 1
            }
        );
        assert_eq!(options.guests[1].mem_mib, 64);
    }

    #[test]
    fn mgmt_names_the_management_socket() {
        let options = parse(&args("--mgmt /tmp/mica.sock --scenario default")).unwrap();
        assert_eq!(options.mgmt, Some(PathBuf::from("/tmp/mica.sock")));
        assert_eq!(parse(&args("")).unwrap().mgmt, None);
        let error = |text: &str| parse(&args(text)).unwrap_err();
        assert_eq!(error("--mgmt"), "--mgmt needs a value");
        assert!(error("--mgmt a,b").contains("no commas"));
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
        assert!(error("--guest noequals").ends_with("use --guest NAME=PATH[,mem=MiB][,vcpus=N]"));
        assert!(error("--guest bad!=x").contains("is invalid: bad character '!'"));
        assert!(
            error("--guest g=x,mem=3").contains("mem=3: use an even number of MiB from 2 to 1024")
        );
        assert!(error("--guest g=x,vcpus=4").contains("vcpus=4: this kernel runs 1 vCPU per VM"));
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
}
