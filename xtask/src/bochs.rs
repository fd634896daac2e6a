//! Booting the x86_64 kernel under Bochs, the emulator that gives Mica
//! Intel VMX here (`cpu: model=corei7_skylake_x`): a small GRUB ISO with
//! the Multiboot image as `/boot/kernel.bin` (and the boot image as its
//! module), a headless bochsrc with a fixed `ips` and `time0` so runs are
//! repeatable, and Bochs' exit status as the result (0 after the kernel's
//! clean shutdown through port 0x8A00, non-zero after its failure exit).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::cmd::{describe, run as run_cmd};

/// The Bochs binary (Debian's `bochs` package).
pub const BOCHS: &str = "bochs-bin";
/// GRUB modules the ISO needs (the rest are left out to keep it small).
const GRUB_MODULES: &str = "multiboot normal configfile iso9660 biosdisk serial terminal";
/// Bochs' instructions per emulated second: a low value shortens the
/// BIOS's F12 wait; fixed so timer calibration is the same every run.
const IPS: u32 = 10_000_000;
/// The emulated clock's start (2000-01-01 00:00:00 UTC), fixed so runs
/// are identical.
const TIME0: u64 = 946_684_800;

/// Where the kernel's COM1 output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    /// `serial.txt` in the run directory (followed by `xtask qemu`).
    File,
    /// Bochs' stdout (read line by line by the integration tests).
    Stdout,
}

impl Serial {
    fn device(self) -> &'static str {
        match self {
            Serial::File => "serial.txt",
            Serial::Stdout => "/dev/stdout",
        }
    }
}

/// What one Bochs boot loads: the kernel, its optional Multiboot module
/// (the boot image) and its command line.
pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub module: Option<&'a Path>,
    pub cmdline: &'a str,
}

/// GRUB's configuration: serial console, no menu wait, the kernel with
/// `cmdline` and the boot image as its module when there is one.
pub fn grub_cfg(with_module: bool, cmdline: &str) -> String {
    let module = if with_module {
        "  module /boot/mica.img mica.img\n"
    } else {
        ""
    };
    let cmdline = if cmdline.is_empty() {
        String::new()
    } else {
        format!(" {cmdline}")
    };
    format!(
        "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
         set timeout=0\nmenuentry \"Mica\" {{\n  multiboot /boot/kernel.bin{cmdline}\n\
         {module}  boot\n}}\n"
    )
}

/// A headless bochsrc booting `mica.iso` (both relative to the run
/// directory) with VMX, 256 MiB and COM1 to `serial`.
pub fn bochsrc(serial: Serial) -> String {
    format!(
        "megs: 256\n\
         cpu: model=corei7_skylake_x, ips={IPS}, reset_on_triple_fault=0\n\
         clock: sync=none, time0={TIME0}\n\
         display_library: rfb, options=\"timeout=0\"\n\
         ata0-master: type=cdrom, path=mica.iso, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev={}\n\
         sound: driver=dummy\n\
         speaker: enabled=0\n\
         log: bochs.log\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=ignore\n\
         debug: action=ignore\n",
        serial.device()
    )
}

/// Bochs' debugger script: run, then quit when the simulation stops
/// (port 0x8A00's shutdown drops to the debugger).
const CONT_RC: &str = "c\nquit\n";

/// Writes `dir/{mica.iso, bochsrc, cont.rc}` for `boot` (the directory is
/// made fresh) and returns `dir`.
pub fn prepare(dir: &Path, boot: &Boot, serial: Serial) -> Result<PathBuf, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| fail("cannot clear", e))?;
    }
    let grub = dir.join("iso").join("boot").join("grub");
    std::fs::create_dir_all(&grub).map_err(|e| fail("cannot create", e))?;
    let boot_dir = dir.join("iso").join("boot");
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, boot_dir.join(to))
            .map(|_| ())
            .map_err(|e| format!("cannot copy {}: {e}", from.display()))
    };
    copy(boot.kernel, "kernel.bin")?;
    if let Some(module) = boot.module {
        copy(module, "mica.img")?;
    }
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(
        grub.join("grub.cfg"),
        &grub_cfg(boot.module.is_some(), boot.cmdline),
    )?;
    let mut mkrescue = Command::new("grub-mkrescue");
    mkrescue
        .arg(format!("--install-modules={GRUB_MODULES}"))
        .args(["--locales=", "--fonts=", "--themes=", "-o"])
        .arg(dir.join("mica.iso"))
        .arg(dir.join("iso"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    run_cmd(&mut mkrescue, "make the GRUB ISO")?;
    write(dir.join("bochsrc"), &bochsrc(serial))?;
    write(dir.join("cont.rc"), CONT_RC)?;
    Ok(dir.to_path_buf())
}

/// The instruction trace [`prepare_traced`] has Bochs write, in the run
/// directory.
pub const TRACE_LOG: &str = "trace.txt";

/// The debugger script of a traced run: run to the guest's first magic
/// breakpoint, trace every instruction to its second, then run on and
/// quit as [`CONT_RC`] does.
const TRACE_RC: &str = "c\ntrace on\nc\ntrace off\nc\nquit\n";

/// As [`prepare`], for a run whose guest brackets a window with two magic
/// breakpoints (`xchg bx, bx`): Bochs' debugger traces every instruction
/// between them to [`TRACE_LOG`] ([`command`] runs the script that does).
pub fn prepare_traced(dir: &Path, boot: &Boot, serial: Serial) -> Result<PathBuf, String> {
    let dir = prepare(dir, boot, serial)?;
    let rc = format!(
        "{}magic_break: enabled=1\ndebugger_log: {TRACE_LOG}\n",
        bochsrc(serial)
    );
    for (file, text) in [("bochsrc", rc.as_str()), ("cont.rc", TRACE_RC)] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir)
}

/// The boot images the Bochs integration tests boot, by scenario.
pub struct TestImages<'a> {
    /// `x86-default`.
    pub default: &'a Path,
    /// `x86-misbehave`.
    pub misbehave: &'a Path,
    /// `x86-hostile`.
    pub hostile: &'a Path,
    /// `x86-smp`.
    pub smp: &'a Path,
}

/// Installs Bochs when missing and writes the run directories the Bochs
/// integration tests boot (`services`, `misbehave` and `hostile`: with
/// those scenarios' boot images; `no-image`: the kernel alone, which
/// shuts down cleanly; `ud2`: a provoked #UD), COM1 on Bochs' stdout.
/// Returns their parent directory.
pub fn prepare_tests(kernel: &Path, images: &TestImages<'_>) -> Result<PathBuf, String> {
    crate::install::bochs()?;
    let root = crate::cmd::workspace_root()
        .join("target")
        .join("mica")
        .join("x86_64")
        .join("bochs-tests");
    let runs: [(&str, Option<&Path>, &str); 6] = [
        ("services", Some(images.default), ""),
        ("smp", Some(images.smp), ""),
        ("misbehave", Some(images.misbehave), ""),
        ("hostile", Some(images.hostile), ""),
        ("no-image", None, ""),
        ("ud2", None, "mica.test=ud2"),
    ];
    for (name, module, cmdline) in runs {
        let boot = Boot {
            kernel,
            module,
            cmdline,
        };
        prepare(&root.join(name), &boot, Serial::Stdout)?;
    }
    Ok(root)
}

/// Bochs running the boot `prepare` wrote to `dir` (stdin closed).
pub fn command(dir: &Path) -> Command {
    let mut bochs = Command::new(BOCHS);
    bochs
        .args(["-q", "-f", "bochsrc", "-rc", "cont.rc"])
        .current_dir(dir)
        .stdin(Stdio::null());
    bochs
}

/// The emulator `xtask qemu --arch x86_64` boots on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// QEMU pc with SVM (the default).
    Qemu,
    /// Bochs with VMX.
    Bochs,
}

/// Takes `--emulator qemu|bochs` out of `args`; the rest is left for the
/// x86 options.
pub fn take_emulator(args: &[String]) -> Result<(Emulator, Vec<String>), String> {
    crate::options::take_choice(
        args,
        "--emulator",
        "emulator",
        &[("qemu", Emulator::Qemu), ("bochs", Emulator::Bochs)],
        Emulator::Qemu,
    )
}

/// `xtask qemu --arch x86_64 --emulator bochs [--scenario NAME]`: installs
/// Bochs and GRUB's tools when missing, builds the kernel and the boot
/// image, boots them and returns Bochs' verdict.
pub fn run_cli(args: &[String]) -> Result<(), String> {
    let scenario = match args {
        [] => crate::x86_image::DEFAULT_SCENARIO,
        [flag, name] if flag == "--scenario" => name.as_str(),
        [arg, ..] => {
            return Err(format!(
                "`xtask qemu --arch x86_64 --emulator bochs` knows only `--scenario NAME`, not `{arg}`"
            ));
        }
    };
    crate::install::rust_targets()?;
    crate::install::bochs()?;
    let kernel = crate::x86::build_kernel()?;
    let boot_image = crate::x86_image::build_boot_image(scenario)?;
    let boot = Boot {
        kernel: &kernel,
        module: Some(&boot_image),
        cmdline: "",
    };
    let status = run(&boot)?;
    match status.code() {
        Some(0) => Ok(()),
        _ => Err(format!(
            "Mica stopped with a failure, or Bochs ended unexpectedly ({status}; \
             its log: target/mica/x86_64/bochs-run/bochs.log)"
        )),
    }
}

/// Boots `boot` under Bochs,
/// copies the serial console to the terminal as it grows, and returns
/// Bochs' exit status.
pub fn run(boot: &Boot) -> Result<ExitStatus, String> {
    let dir = crate::cmd::workspace_root()
        .join("target")
        .join("mica")
        .join("x86_64")
        .join("bochs-run");
    prepare(&dir, boot, Serial::File)?;
    let output = dir.join("bochs.out");
    let out = std::fs::File::create(&output)
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", output.display()))?;
    let mut bochs = command(&dir);
    bochs.stdout(out).stderr(err);
    println!(
        "xtask: boot Mica on Bochs (x86_64, VMX) in {}: {}",
        dir.display(),
        describe(&bochs)
    );
    let mut child = bochs
        .spawn()
        .map_err(|e| format!("cannot start {BOCHS}: {e}"))?;
    let serial = dir.join("serial.txt");
    let mut copied = 0u64;
    loop {
        let exited = child.try_wait().map_err(|e| format!("{BOCHS}: {e}"))?;
        copied += copy_new(&serial, copied)?;
        if let Some(status) = exited {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies what `file` holds past byte `from` to stdout; returns how many
/// bytes that was (0 while the file does not exist yet).
fn copy_new(file: &Path, from: u64) -> Result<u64, String> {
    let Ok(mut f) = std::fs::File::open(file) else {
        return Ok(0);
    };
    let mut bytes = Vec::new();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from))
        .and_then(|_| f.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut stdout = std::io::stdout().lock();
    // The terminal going away is not the boot's failure: ignore it.
    let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_is_qemu_unless_bochs_is_asked_for() {
        let args =
            |text: &str| -> Vec<String> { text.split_whitespace().map(String::from).collect() };
        assert_eq!(take_emulator(&[]), Ok((Emulator::Qemu, vec![])));
        let (emulator, rest) = take_emulator(&args("--scenario s --emulator bochs")).unwrap();
        assert_eq!(emulator, Emulator::Bochs);
        assert_eq!(rest, args("--scenario s"));
        let error = |text: &str| take_emulator(&args(text)).unwrap_err();
        assert!(error("--emulator vbox").contains("use qemu or bochs"));
        assert!(error("--emulator").contains("needs a value"));
    }

    #[test]
    fn grub_cfg_loads_the_kernel_and_the_boot_image() {
        let cfg = grub_cfg(true, "mica.test=ud2");
        assert!(cfg.contains("set timeout=0\n"));
        assert!(cfg.contains("terminal_output serial\n"));
        assert!(cfg.contains("  multiboot /boot/kernel.bin mica.test=ud2\n"));
        assert!(cfg.contains("  module /boot/mica.img mica.img\n"));
        let bare = grub_cfg(false, "");
        assert!(bare.contains("  multiboot /boot/kernel.bin\n"));
        assert!(!bare.contains("module"));
    }

    #[test]
    fn bochsrc_is_headless_repeatable_and_has_vmx() {
        let rc = bochsrc(Serial::File);
        assert!(rc.contains("cpu: model=corei7_skylake_x, ips=10000000,"));
        assert!(rc.contains("clock: sync=none, time0=946684800\n"));
        assert!(rc.contains("display_library: rfb, options=\"timeout=0\"\n"));
        assert!(rc.contains("com1: enabled=1, mode=file, dev=serial.txt\n"));
        assert!(rc.contains("panic: action=fatal\n"));
        assert!(bochsrc(Serial::Stdout).contains("dev=/dev/stdout\n"));
    }
}
