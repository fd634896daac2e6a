//! `disk_*`, part of `cargo xtask bench`: Debian's Linux reads and writes
//! a raw disk image with `dd` (O_DIRECT, so every block goes to the
//! device) on QEMU's own virtio-blk without Mica and on Mica's (scenario
//! `linux-disk`: devices service -> block service -> QEMU's virtio-blk) in
//! the same run, both under `-icount shift=0,sleep=on`: busy time is
//! instructions (1 ns each), and time the guest waits idle for the host's
//! disk passes as on the host's clock (with `sleep=off` QEMU would skip
//! to the guest's next timer on every wait, which makes a native 4 KiB
//! read cost a timer tick). Each run is timed by the guest's own monotonic
//! clock in ns (`now at` of `/proc/timer_list`: busybox's `date` has no
//! `%N`, and `/proc/uptime`'s 10 ms steps are longer than a native run).
//!
//! Figures: MB (10^6 bytes) per second of guest time for sequential 4 KiB
//! and 1 MiB reads and writes, natively and under Mica, their ratios, and
//! the guest time of one 512-byte read, the round trip of one virtio
//! notification through the whole stack (ns, = instructions when nothing
//! waits idle).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mica_tests::Session;
use mica_tests::linux::{CMDLINE, INIT_READY};
use mica_tests::riscv64::disk_args;

use crate::guests::LinuxGuest;

/// One timed `dd`: its key, the bytes it moves and the command.
struct Run {
    key: &'static str,
    bytes: u64,
    command: &'static str,
}

/// The runs, in order (reads before writes: the image starts zeroed).
const RUNS: [Run; 5] = [
    Run {
        key: "read_4k",
        bytes: 2048 * 4096,
        command: "dd if=/dev/vda of=/dev/null bs=4k count=2048 iflag=direct",
    },
    Run {
        key: "read_1m",
        bytes: 16 << 20,
        command: "dd if=/dev/vda of=/dev/null bs=1M count=16 iflag=direct",
    },
    Run {
        key: "write_4k",
        bytes: 2048 * 4096,
        command: "dd if=/dev/zero of=/dev/vda bs=4k count=2048 oflag=direct",
    },
    Run {
        key: "write_1m",
        bytes: 16 << 20,
        command: "dd if=/dev/zero of=/dev/vda bs=1M count=16 oflag=direct",
    },
    Run {
        key: "read_512",
        bytes: 4000 * 512,
        command: "dd if=/dev/vda of=/dev/null bs=512 count=4000 iflag=direct",
    },
];

/// 512-byte requests in the `read_512` run.
const SMALL_READS: u64 = 4000;

/// The disk image's size.
const DISK_BYTES: u64 = 64 << 20;

/// Wall-clock limits: a boot, and one run.
const BOOT: Duration = Duration::from_secs(900);
const RUN: Duration = Duration::from_secs(900);

/// The shell functions that read the guest's monotonic clock (ns) and time
/// a command by it, printing `disk-time: START END` (the quotes keep the
/// typed line itself from matching).
const TIMER: &str = "now() { n=$(grep -m1 'now at' /proc/timer_list); n=${n#now at }; echo ${n% nsecs}; }; t() { a=$(now); \"$@\"; b=$(now); echo \"disk\"\"-time: $a $b\"; }";

/// Guest time per run, in µs, in [`RUNS`] order.
pub type Times = Vec<u64>;

fn qemu(memory: &str, disk: &Path) -> Result<Command, String> {
    let disk = disk
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", disk.display()))?;
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", memory, "-icount", "shift=0,sleep=on"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(disk_args(0, disk));
    Ok(qemu)
}

/// A zeroed raw disk image at `path`.
fn fresh_disk(path: &Path) -> Result<(), String> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.set_len(DISK_BYTES)
        .map_err(|e| format!("cannot size {}: {e}", path.display()))
}

/// Runs [`RUNS`] at a Linux shell whose lines carry `prefix`.
fn timed_runs(session: &mut Session, prefix: &str) -> Result<Times, String> {
    session.send(&format!("{TIMER}\n"))?;
    let mut times = Vec::new();
    for run in &RUNS {
        session.send(&format!("t {}\n", run.command))?;
        let line = session.expect(&format!("{prefix}disk-time: "), RUN)?;
        times.push(elapsed_us(&line).ok_or_else(|| format!("cannot read the time in {line:?}"))?);
    }
    Ok(times)
}

/// The µs between the two clock readings (ns) of a `disk-time: START END`
/// line.
fn elapsed_us(line: &str) -> Option<u64> {
    let at = line.find("disk-time: ")? + "disk-time: ".len();
    let mut parts = line[at..].split_whitespace().map(|n| n.parse::<u64>().ok());
    let (start, end) = (parts.next()??, parts.next()??);
    end.checked_sub(start).map(|ns| ns / 1000)
}

/// Natively: Linux on QEMU with `disk` as its virtio-blk device.
pub fn native(guest: &LinuxGuest, disk: &Path) -> Result<Times, String> {
    fresh_disk(disk)?;
    let mut qemu = qemu("128M", disk)?;
    guest.boot_directly(&mut qemu, CMDLINE);
    println!("bench: disk runs on QEMU without Mica");
    let mut session = Session::spawn_with_stdin(qemu)?;
    session.expect(INIT_READY, BOOT)?;
    timed_runs(&mut session, "")
}

/// Under Mica: the `linux-disk` boot image, its Linux VM's disk `disk`,
/// typed at through the shell's `console linux`.
pub fn under_mica(kernel: &Path, boot_image: &Path, disk: &Path) -> Result<Times, String> {
    fresh_disk(disk)?;
    let mut qemu = qemu("512M", disk)?;
    qemu.arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(boot_image);
    println!("bench: disk runs under Mica");
    let mut session = Session::spawn_with_stdin(qemu)?;
    session.expect(&format!("linux | {INIT_READY}"), BOOT)?;
    session.send("console linux\n")?;
    session.expect("console attached to linux", Duration::from_secs(60))?;
    timed_runs(&mut session, "linux | ")
}

/// MB (10^6 bytes) per second for `bytes` in `us` µs (0 when no time
/// passed).
fn mb_per_s(bytes: u64, us: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "tens of MB and seconds")]
    let rate = bytes as f64 / us.max(1) as f64;
    if us == 0 { 0.0 } else { rate }
}

/// The JSON figures (key, value, summary) of both sides' times.
pub fn figures(native: &Times, mica: Option<&Times>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (i, run) in RUNS.iter().enumerate() {
        let native_rate = mb_per_s(run.bytes, native[i]);
        out.push((
            format!("disk_{}_native_mb_s", run.key),
            format!("{native_rate:.2}"),
            format!("{native_rate:.2} MB/s ({} us)", native[i]),
        ));
        if let Some(mica) = mica {
            let rate = mb_per_s(run.bytes, mica[i]);
            out.push((
                format!("disk_{}_mica_mb_s", run.key),
                format!("{rate:.2}"),
                format!("{rate:.2} MB/s ({} us)", mica[i]),
            ));
            let ratio = if native_rate > 0.0 {
                rate / native_rate
            } else {
                0.0
            };
            out.push((
                format!("disk_{}_ratio", run.key),
                format!("{ratio:.3}"),
                format!("{ratio:.3} (Mica / native)"),
            ));
        }
    }
    let small = RUNS.len() - 1;
    let per_request = |us: u64| us * 1000 / SMALL_READS;
    out.push((
        "disk_request_native_ns".into(),
        per_request(native[small]).to_string(),
        format!("{} ns per 512-byte read", per_request(native[small])),
    ));
    if let Some(mica) = mica {
        out.push((
            "disk_request_mica_ns".into(),
            per_request(mica[small]).to_string(),
            format!(
                "{} ns (= instructions, no idle wait) per 512-byte read",
                per_request(mica[small])
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{RUNS, elapsed_us, figures, timed_runs};
    use mica_tests::Session;
    use std::process::Command;

    #[test]
    fn reads_the_guests_clock_behind_a_prefix() {
        assert_eq!(elapsed_us("disk-time: 7027604200 7037333200"), Some(9729));
        assert_eq!(elapsed_us("linux | disk-time: 1000 251000"), Some(250));
        assert_eq!(elapsed_us("disk-time: 2000 1000"), None);
        assert_eq!(elapsed_us("disk-time: 2000"), None);
        assert_eq!(elapsed_us("disk-time: 1.5 2.5"), None);
        assert_eq!(elapsed_us("mica-linux# t dd ..."), None);
    }

    #[test]
    fn every_run_is_timed_in_order() {
        let script: String = (0..RUNS.len())
            .map(|i| format!("echo 'linux | disk-time: {i}000000 {i}50{i}000'; "))
            .collect();
        let mut command = Command::new("sh");
        // The lines first, then it reads what is typed until stdin closes.
        command.args(["-c", &format!("{script} cat > /dev/null")]);
        let mut session = Session::spawn_with_stdin(command).unwrap();
        let times = timed_runs(&mut session, "linux | ").unwrap();
        assert_eq!(times, [500, 501, 502, 503, 504]);
    }

    #[test]
    fn rates_are_megabytes_per_guest_second_and_ratios_mica_over_native() {
        // µs per run.
        let native = vec![1_000_000, 1_000_000, 1_000_000, 1_000_000, 40_000];
        let mica = vec![2_000_000, 1_000_000, 4_000_000, 500_000, 80_000];
        let figures = figures(&native, Some(&mica));
        let value = |key: &str| {
            figures
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, _)| v.clone())
                .unwrap()
        };
        assert_eq!(value("disk_read_4k_native_mb_s"), "8.39");
        assert_eq!(value("disk_read_4k_mica_mb_s"), "4.19");
        assert_eq!(value("disk_read_4k_ratio"), "0.500");
        assert_eq!(value("disk_write_1m_ratio"), "2.000");
        assert_eq!(value("disk_read_1m_native_mb_s"), "16.78");
        assert_eq!(value("disk_request_native_ns"), "10000");
        assert_eq!(value("disk_request_mica_ns"), "20000");
    }
}
