//! `linux_boot`, part of `cargo xtask bench`: Debian's riscv64 kernel with
//! the busybox initramfs (`cargo xtask guests`) and the same command line,
//! booted on QEMU without Mica and under Mica (scenario `linux-bench`) in
//! the same run, both with `-icount shift=0`. The figure is guest time from
//! boot to `/init`'s marker: Linux's own uptime, which `/init` prints in
//! the marker line, so both sides are measured by the same clock.
//! `sleep=off` keeps idle time from following the host's clock; the native
//! figure still varies by about 2% from run to run (820-850 ms measured:
//! the kernel's boot does not depend on instructions alone, e.g. QEMU hands
//! it a random `rng-seed`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mica_tests::Session;
use mica_tests::linux::{CMDLINE, INIT_READY, uptime_ms};

use crate::guests::LinuxGuest;

/// The JSON keys: native and Mica boot times (ms of guest time) and
/// their ratio (Mica / native).
pub const NATIVE: &str = "linux_boot_native_ms";
pub const MICA: &str = "linux_boot_mica_ms";
pub const RATIO: &str = "linux_boot_ratio";

/// Wall-clock limit for one boot to the marker (Linux under emulation and
/// Mica traps often; natively it takes seconds).
const BOOT: Duration = Duration::from_secs(900);

/// QEMU virt with the instruction-counting clock, the console on stdout.
fn qemu(memory: &str) -> Command {
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", memory, "-icount", "shift=0,sleep=off"])
        .args(["-monitor", "none", "-serial", "stdio"]);
    qemu
}

/// Boots `guest` directly on QEMU (128 MiB, as the Linux VM has) and
/// returns the guest time to the marker, in ms.
pub fn native(guest: &LinuxGuest) -> Result<u64, String> {
    let mut qemu = qemu("128M");
    guest.boot_directly(&mut qemu, CMDLINE);
    println!("bench: booting Linux on QEMU without Mica");
    boot_ms(&mut Session::spawn(qemu)?, "")
}

/// Boots Mica's `kernel` with the `linux-bench` `boot_image` and returns the
/// Linux VM's guest time to the marker, in ms.
pub fn under_mica(kernel: &Path, boot_image: &Path) -> Result<u64, String> {
    let mut qemu = qemu("512M");
    qemu.arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(boot_image);
    println!("bench: booting Linux under Mica");
    boot_ms(&mut Session::spawn(qemu)?, "linux | ")
}

/// Waits for the marker line (after `prefix`) and reads its uptime.
fn boot_ms(session: &mut Session, prefix: &str) -> Result<u64, String> {
    let line = session.expect(&format!("{prefix}{INIT_READY}"), BOOT)?;
    uptime_ms(&line).ok_or_else(|| format!("no uptime in the marker line {line:?}"))
}

/// The JSON figures: the native time, and with a Mica time that time and
/// the ratio to two decimals.
pub fn figures(native_ms: u64, mica_ms: Option<u64>) -> Vec<(&'static str, String)> {
    let mut figures = vec![(NATIVE, native_ms.to_string())];
    if let Some(mica_ms) = mica_ms {
        figures.push((MICA, mica_ms.to_string()));
        // Exact in f64 for any boot time a person would wait for.
        #[allow(clippy::cast_precision_loss, reason = "milliseconds of a boot")]
        let ratio = mica_ms as f64 / native_ms.max(1) as f64;
        figures.push((RATIO, format!("{ratio:.2}")));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::{boot_ms, figures};
    use mica_tests::Session;
    use std::process::Command;

    fn console(script: &str) -> Session {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Session::spawn(command).unwrap()
    }

    #[test]
    fn reads_the_boot_time_from_the_right_vms_marker() {
        let mut native =
            console("echo '[    1.5] Run /init'; echo 'mica-linux: init ready (uptime 1.76)'");
        assert_eq!(boot_ms(&mut native, ""), Ok(1760));
        let mut mica = console(
            "echo 'vm0 | vm0: tick 1'; echo 'linux | mica-linux: init ready (uptime 42.50)'",
        );
        assert_eq!(boot_ms(&mut mica, "linux | "), Ok(42_500));
    }

    #[test]
    fn a_marker_without_an_uptime_or_no_marker_is_an_error() {
        let mut bad = console("echo 'mica-linux: init ready'");
        let error = boot_ms(&mut bad, "").unwrap_err();
        assert!(error.starts_with("no uptime in the marker line"), "{error}");
        let mut none = console("echo 'Kernel panic - not syncing'");
        let error = boot_ms(&mut none, "").unwrap_err();
        assert!(error.starts_with("output ended before"), "{error}");
    }

    #[test]
    fn the_ratio_is_mica_over_native() {
        assert_eq!(
            figures(1760, None),
            [("linux_boot_native_ms", "1760".into())]
        );
        assert_eq!(
            figures(2000, Some(5000)),
            [
                ("linux_boot_native_ms", "2000".to_string()),
                ("linux_boot_mica_ms", "5000".into()),
                ("linux_boot_ratio", "2.50".into()),
            ]
        );
    }
}
