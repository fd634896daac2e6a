//! Debian's unmodified riscv64 Linux (6.12) with the busybox initramfs of
//! `cargo xtask guests`, under Mica on QEMU: it boots to its `/init` marker
//! while a hello VM keeps ticking, answers commands typed at its console
//! through the shell's `console linux` (uname, cpuinfo, the device tree
//! with the vmgenid node, `/dev/hwrng` from Mica's virtio-rng), powers off
//! with `poweroff -f` and boots again;
//! a shell started on `/dev/hvc0` (Mica's virtio console) answers what
//! `console linux --hvc` types; and two Linux VMs boot side by side and
//! ping each other through their virtio-net cards. First of all, the same kernel and
//! initramfs boot on QEMU without Mica to a shell with job control, and
//! read QEMU's own virtio-rng the same way; a VM's disk keeps what the
//! guest wrote, also while the block service is killed again and again. Run by
//! `cargo xtask test`, which fetches the guests and builds the `linux` and
//! `linux-two` boot images.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::{Duration, Instant};

use mica_tests::Session;
use mica_tests::linux::CMDLINE;
use mica_tests::linux::{INIT_READY, uptime_ms};
use mica_tests::riscv64::{artifact, booted_scenario_shell, booted_scenario_shell_with, disk_args};
use std::process::Command;

/// Mica's own boot, up to the static VMs being started.
const BOOT: Duration = Duration::from_secs(60);
/// Linux under emulation and a hypervisor: natively it needs 2-4 s of
/// guest time, each of its traps costs far more here.
const LINUX_BOOT: Duration = Duration::from_secs(300);
/// A command's answer from Linux (every byte goes through a trap).
const ANSWER: Duration = Duration::from_secs(60);
/// The hello guest ticks about once a second.
const TICKS: Duration = Duration::from_secs(60);
/// The escape byte (Ctrl-]) that detaches the console.
const DETACH: &str = "\x1d";

/// Reads 16 bytes of `/dev/hwrng` at the Linux shell (lines prefixed with
/// `prefix`): the virtio device is an entropy device (ID 4) and the
/// kernel's current hwrng is the virtio_rng driver's. Returns the bytes.
fn read_hwrng(s: &mut Session, prefix: &str) -> Vec<u8> {
    s.send("cat /sys/bus/virtio/devices/virtio0/device\n")
        .unwrap();
    s.expect(&format!("{prefix}0x0004"), ANSWER).unwrap();
    s.send("cat /sys/class/misc/hw_random/rng_current\n")
        .unwrap();
    s.expect(&format!("{prefix}virtio_rng.0"), ANSWER).unwrap();
    s.send("head -c 16 /dev/hwrng | od -An -tx1 | sed 's/^/hwrng:/'\n")
        .unwrap();
    expect_echo(s, prefix, "sed 's/^/hwrng:/'");
    let line = s.expect(&format!("{prefix}hwrng: "), ANSWER).unwrap();
    let hex = line.trim_start_matches(prefix).trim_start_matches("hwrng:");
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// What QEMU's own virtio-mmio devices (virtio 1.x) negotiate with this
/// Linux, measured natively with the devices a Mica VM with a disk has
/// (virtio-rng, virtio-blk on a raw image, a virtio console with one
/// port, a network card): `<device ID> <features>`, the features as Linux's sysfs shows
/// them, one character per bit from bit 0. Mica's devices must give the
/// same.
const VIRTIO_FEATURES: [&str; 4] = [
    // virtio-net on QEMU's user network: CTRL_GUEST_OFFLOADS, MAC,
    // MRG_RXBUF, STATUS, CTRL_VQ, CTRL_RX, CTRL_VLAN, GUEST_ANNOUNCE,
    // CTRL_MAC_ADDR; INDIRECT_DESC, EVENT_IDX, VERSION_1 (no checksum or
    // segmentation offloads: the user network has no vnet header).
    "0x0001 0010010000000001111101010000110010000000000000000000000000000000",
    // virtio-blk: SEG_MAX, GEOMETRY, BLK_SIZE, FLUSH, TOPOLOGY,
    // CONFIG_WCE, DISCARD, WRITE_ZEROES; INDIRECT_DESC, EVENT_IDX,
    // VERSION_1.
    "0x0002 0010101001110110000000000000110010000000000000000000000000000000",
    // virtio console: the ring features and VERSION_1 (EMERG_WRITE is
    // offered, but Linux's driver does not take it).
    "0x0003 0000000000000000000000000000110010000000000000000000000000000000",
    // virtio-rng: the ring features and VERSION_1.
    "0x0004 0000000000000000000000000000110010000000000000000000000000000000",
];

/// QEMU's own virtio-net card as the native reference, with its defaults,
/// on QEMU's user network.
const NATIVE_NET_CARD: &str = "virtio-net-device,netdev=n0";

/// Lists, at the Linux shell (lines prefixed with `prefix`), every virtio
/// device's ID and negotiated features, sorted, as in
/// [`VIRTIO_FEATURES`].
fn virtio_features(s: &mut Session, prefix: &str) -> Vec<String> {
    // Each typed line fits 80 columns with the prompt.
    s.send("cd /sys/bus/virtio/devices\n").unwrap();
    s.expect("cd /sys/bus/virtio/devices", ANSWER).unwrap();
    let from = s.transcript().len();
    s.send("for d in *;do echo vf $(cat $d/device $d/features);done|sort\n")
        .unwrap();
    s.send("cd /;echo vf-$((6 * 7))\n").unwrap();
    s.expect(&format!("{prefix}vf-42"), ANSWER).unwrap();
    s.transcript()[from..]
        .iter()
        .filter_map(|line| line.strip_prefix(prefix)?.strip_prefix("vf "))
        .map(str::to_string)
        .collect()
}

/// The tick numbers of `vm`'s `<vm> | <vm>: tick N` lines in `lines`.
fn ticks(lines: &[String], vm: &str) -> Vec<u64> {
    let prefix = format!("{vm} | {vm}: tick ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .collect()
}

/// Waits for `needle` unless it already appeared since `from`.
fn seen_or_expect(s: &mut Session, from: usize, needle: &str, timeout: Duration) {
    if !s.transcript()[from..].iter().any(|l| l.contains(needle)) {
        s.expect(needle, timeout).unwrap();
    }
}

/// Waits for `vm`'s init marker and checks it carries a readable uptime.
fn init_ready(s: &mut Session, vm: &str) {
    let line = s
        .expect(&format!("{vm} | {INIT_READY}"), LINUX_BOOT)
        .unwrap();
    assert!(uptime_ms(&line).is_some(), "no uptime in {line:?}");
}

/// Attaches the console to `vm`.
fn attach(s: &mut Session, vm: &str) {
    s.send(&format!("console {vm}\n")).unwrap();
    s.expect(&format!("console attached to {vm}'s UART"), ANSWER)
        .unwrap();
}

/// Detaches the console with Ctrl-].
fn detach(s: &mut Session) {
    s.send(DETACH).unwrap();
    s.expect("console detached", ANSWER).unwrap();
}

/// Types `lines` at the guest's shell one at a time, each once the guest
/// echoed the one before (its first 20 bytes): a burst longer than the
/// UART's input backlog loses its tail while the guest is busy (loading
/// its modules, say), as a fast typist's would on a real serial line.
fn type_lines(s: &mut Session, vm: &str, lines: &[&str]) {
    for line in lines {
        s.send(&format!("{line}\n")).unwrap();
        let head: String = line.chars().take(20).collect();
        expect_echo(s, &format!("{vm} | "), &head);
    }
}

/// Types `command` at the attached Linux shell and returns the first
/// line of `vm`'s output after the echoed command that starts with
/// `answer`.
fn type_and_expect(s: &mut Session, vm: &str, command: &str, answer: &str) -> String {
    s.send(&format!("{command}\n")).unwrap();
    expect_echo(s, &format!("{vm} | "), command);
    s.expect(&format!("{vm} | {answer}"), ANSWER).unwrap()
}

/// Waits until the lines prefixed with `prefix` (one VM's, or all for
/// `""`) since the last matched line echo `typed`, and goes on after the
/// line that completed it. Linux echoes typed bytes as they arrive, so a
/// kernel message printed meanwhile (`hrtimer: interrupt took 120847400
/// ns`, once, when a loaded host held a vCPU back) can split the echo
/// over two lines: the echo is looked for in the output with kernel
/// messages cut out ([`without_kernel_messages`]).
fn expect_echo(s: &mut Session, prefix: &str, typed: &str) {
    let from = s.position();
    let deadline = Instant::now() + ANSWER;
    loop {
        let output: String = s.transcript()[from..s.position()]
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        if without_kernel_messages(&output).contains(typed) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = s.expect(prefix, left) {
            panic!("no echo of {typed:?}: {e}");
        }
    }
}

/// `output` without the kernel's console messages: each `[ seconds.frac]`
/// stamp to the end of its line, wherever it starts.
fn without_kernel_messages(output: &str) -> String {
    let mut kept = String::new();
    let mut rest = output;
    while let Some(at) = rest.find('[') {
        kept.push_str(&rest[..at]);
        let from = &rest[at..];
        let len = kernel_message_len(from).unwrap_or(1);
        if len == 1 {
            kept.push('[');
        }
        rest = &from[len..];
    }
    kept.push_str(rest);
    kept
}

/// The length of the kernel message `text` starts with (its `[ 28.305869]`
/// stamp up to and with its line's end), if it starts with one.
fn kernel_message_len(text: &str) -> Option<usize> {
    let stamp = &text[1..text.find(']')?];
    let (seconds, fraction) = stamp.trim_start().split_once('.')?;
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    (digits(seconds) && digits(fraction)).then(|| text.find('\n').map_or(text.len(), |n| n + 1))
}

#[test]
fn an_echo_split_by_a_kernel_message_is_whole_again_without_it() {
    let output = "mica-linux# grep '^c[   28.305869] hrtimer: interrupt took 120847400 ns\n\
                  pu[0-9]' /proc/stat; echo counted\ncpu0 34 0 189\n";
    assert_eq!(
        without_kernel_messages(output),
        "mica-linux# grep '^cpu[0-9]' /proc/stat; echo counted\ncpu0 34 0 189\n"
    );
    // Brackets that are no stamp stay, as does a stamp's lookalike.
    let kept = "a[0-9] [1.x] [ .5] [] [12.5\n";
    assert_eq!(without_kernel_messages(kept), kept);
    assert_eq!(without_kernel_messages("x[ 0.1] m"), "x");
}

#[test]
#[ignore = "needs QEMU and `cargo xtask guests`: run by `cargo xtask test`"]
fn the_kernel_and_initramfs_boot_natively_to_a_shell_with_job_control() {
    let kernel = artifact("MICA_LINUX_KERNEL").unwrap();
    let initramfs = artifact("MICA_LINUX_INITRAMFS").unwrap();
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "128M", "-kernel", &kernel, "-initrd", &initramfs])
        .args(["-append", CMDLINE, "-monitor", "none", "-serial", "stdio"])
        // QEMU's own virtio-rng (virtio 1.x), the reference for Mica's.
        .args(["-device", "virtio-rng-device"])
        .args(["-global", "virtio-mmio.force-legacy=false"]);
    let mut s = Session::spawn_with_stdin(qemu).unwrap();
    let line = s.expect(INIT_READY, BOOT).unwrap();
    let uptime = uptime_ms(&line).unwrap();
    assert!(uptime > 0 && line.starts_with(INIT_READY), "{line}");
    s.send("uname -m\n").unwrap();
    s.expect("uname -m", ANSWER).unwrap();
    assert_eq!(s.expect("riscv64", ANSWER).unwrap(), "riscv64");
    let native = read_hwrng(&mut s, "");
    assert_eq!(native.len(), 16, "{native:?}");
    // Job control: a background job is listed as such.
    s.send("sleep 600 &\n").unwrap();
    s.expect("sleep 600 &", ANSWER).unwrap();
    s.send("jobs\n").unwrap();
    let job = s.expect("Running", ANSWER).unwrap();
    assert!(
        job.starts_with("[1]+  Running") && job.ends_with("sleep 600"),
        "{job}"
    );
    s.send("poweroff -f\n").unwrap();
    s.expect("reboot: Power down", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn linux_boots_beside_a_ticking_vm_answers_at_its_console_and_boots_again() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_LINUX", "vm0", BOOT).unwrap();
    init_ready(&mut s, "linux");
    let booted_at = s.position();
    let before = ticks(&s.transcript()[..booted_at], "vm0");
    assert!(
        before.len() >= 2 && before.windows(2).all(|w| w[0] < w[1]),
        "vm0 ticks on while Linux boots: {before:?}"
    );
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    let after = ticks(&s.transcript()[booted_at..], "vm0");
    assert!(
        after.first() > before.last() && after.windows(2).all(|w| w[0] < w[1]),
        "vm0 ticks on after Linux booted: {before:?} then {after:?}"
    );

    attach(&mut s, "linux");
    type_and_expect(&mut s, "linux", "uname -m", "riscv64");
    s.send("cat /proc/cpuinfo\n").unwrap();
    s.expect("linux | hart", ANSWER).unwrap();
    let isa = s.expect("linux | isa", ANSWER).unwrap();
    assert!(isa.contains(": rv64"), "{isa}");
    s.send("ls /sys/firmware/devicetree/base/soc/\n").unwrap();
    let listed = s.expect("vmgenid@10101000", ANSWER).unwrap();
    assert!(listed.starts_with("linux | "), "{listed}");
    // Mica's virtio-rng, as the native run sees QEMU's: device ID 4, the
    // virtio_rng driver current, 16 bytes that differ from read to read.
    let first = read_hwrng(&mut s, "linux | ");
    let second = read_hwrng(&mut s, "linux | ");
    assert_ne!(first, second, "two reads of /dev/hwrng");
    detach(&mut s);
    // Detached, typed lines are the shell's again.
    s.send("vm info linux\n").unwrap();
    s.expect("name:          linux", ANSWER).unwrap();

    attach(&mut s, "linux");
    s.send("poweroff -f\n").unwrap();
    s.expect("mica: linux powered off", ANSWER).unwrap();
    detach(&mut s);
    s.send("vm list\n").unwrap();
    s.expect("SLOT  KIND", ANSWER).unwrap();
    // Slot order: linux (slot 0) is the first row.
    let row = s.expect(" static ", ANSWER).unwrap();
    assert!(
        row.starts_with("linux ") && row.contains(" powered-off"),
        "{row}"
    );
    // vm0 was not touched by Linux's power-off.
    s.expect("vm0 | vm0: tick", TICKS).unwrap();

    // `vm start` boots the powered-off static VM again.
    let relaunched_at = s.position();
    s.send("vm start linux\n").unwrap();
    s.expect("linux started", ANSWER).unwrap();
    init_ready(&mut s, "linux");
    assert!(
        !s.transcript()[relaunched_at..]
            .iter()
            .any(|l| l.starts_with("error: ") || l.contains("stopped:")),
        "{:?}",
        &s.transcript()[relaunched_at..]
    );
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn a_shell_on_hvc0_answers_what_console_hvc_types() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_LINUX", "vm0", BOOT).unwrap();
    init_ready(&mut s, "linux");
    attach(&mut s, "linux");
    // Mica's virtio console (slot 2) is Linux's /dev/hvc0.
    type_and_expect(&mut s, "linux", "ls /dev/hvc0", "/dev/hvc0");
    // W marks the hvc0 shell's answers.
    s.send("setsid sh -c 'export W=hvc0; exec sh </dev/hvc0 >/dev/hvc0 2>&1' &\n")
        .unwrap();
    s.expect("exec sh </dev/hvc0", ANSWER).unwrap();
    detach(&mut s);
    s.send("console linux --hvc\n").unwrap();
    s.expect(
        "console attached to linux's virtio console (hvc0): type Ctrl-] to detach",
        ANSWER,
    )
    .unwrap();
    let typed_at = s.position();
    // The hvc0 shell echoes the line and answers, both through the virtio
    // console's queues.
    type_and_expect(&mut s, "linux", "echo $((6 * 7))", "42");
    type_and_expect(&mut s, "linux", "echo on:$W:", "on:hvc0:");
    detach(&mut s);
    // The UART's shell, without W, did not see those lines.
    s.send("console linux\n").unwrap();
    s.expect("console attached to linux's UART", ANSWER)
        .unwrap();
    type_and_expect(&mut s, "linux", "echo on:$W:", "on::");
    detach(&mut s);
    let answers: Vec<&String> = s.transcript()[typed_at..]
        .iter()
        .filter(|l| l.ends_with("| 42"))
        .collect();
    assert_eq!(answers, ["linux | 42"], "one answer, from hvc0's shell");
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn two_linux_vms_boot_side_by_side_each_on_its_own_console() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_LINUX_TWO", "linux2", BOOT).unwrap();
    let from = s.position();
    // Either may be first: wait for one, then for the other unless seen.
    s.expect(&format!("| {INIT_READY}"), LINUX_BOOT).unwrap();
    seen_or_expect(&mut s, from, &format!("linux | {INIT_READY}"), LINUX_BOOT);
    seen_or_expect(&mut s, from, &format!("linux2 | {INIT_READY}"), LINUX_BOOT);
    for line in s.transcript()[from..]
        .iter()
        .filter(|l| l.contains(INIT_READY))
    {
        assert!(uptime_ms(line).is_some(), "no uptime in {line:?}");
    }

    // Typed input reaches only the attached VM.
    attach(&mut s, "linux2");
    let typed_at = s.position();
    type_and_expect(&mut s, "linux2", "echo $((6 * 7))", "42");
    detach(&mut s);
    attach(&mut s, "linux");
    type_and_expect(&mut s, "linux", "uname -m", "riscv64");
    detach(&mut s);
    let answers: Vec<&String> = s.transcript()[typed_at..]
        .iter()
        .filter(|l| l.ends_with("| 42") || l.ends_with("| riscv64"))
        .collect();
    assert_eq!(
        answers,
        ["linux2 | 42", "linux | riscv64"],
        "each answer came from the VM it was typed at"
    );

    // Each VM's eth0 is Mica's virtio-net card, on the devices service's
    // switch: bring both up, then linux pings linux2.
    for (vm, address, mac) in [
        ("linux2", "10.0.0.2", "02:4d:49:43:41:01"),
        ("linux", "10.0.0.1", "02:4d:49:43:41:00"),
    ] {
        attach(&mut s, vm);
        type_and_expect(
            &mut s,
            vm,
            "cat /sys/class/net/eth0/device/device",
            "0x0001",
        );
        type_and_expect(&mut s, vm, "cat /sys/class/net/eth0/address", mac);
        type_and_expect(&mut s, vm, "ip link set eth0 up && echo link up", "link up");
        let add = format!("ip addr add {address}/24 dev eth0 && echo addr up");
        type_and_expect(&mut s, vm, &add, "addr up");
        if vm == "linux" {
            let result = type_and_expect(&mut s, vm, "ping -c 3 10.0.0.2", "3 packets transmitted");
            assert!(
                result.ends_with("3 packets transmitted, 3 packets received, 0% packet loss"),
                "{result}"
            );
            let rtt = s.expect("linux | round-trip min/avg/max", ANSWER).unwrap();
            println!("ping under Mica: {rtt}");
        }
        detach(&mut s);
    }

    // linux2 takes another address (the card's control queue): it shows,
    // and once linux forgets the old one, the switch learns the new one.
    attach(&mut s, "linux2");
    let set = "ip link set eth0 address 02:00:00:00:00:42 && echo mac set";
    type_and_expect(&mut s, "linux2", set, "mac set");
    type_and_expect(
        &mut s,
        "linux2",
        "cat /sys/class/net/eth0/address",
        "02:00:00:00:00:42",
    );
    detach(&mut s);
    attach(&mut s, "linux");
    let promisc = "ip link set eth0 promisc on && echo promisc on";
    type_and_expect(&mut s, "linux", promisc, "promisc on");
    type_and_expect(
        &mut s,
        "linux",
        "ip neigh flush dev eth0 && echo flushed",
        "flushed",
    );
    let result = type_and_expect(
        &mut s,
        "linux",
        "ping -c 3 10.0.0.2",
        "3 packets transmitted",
    );
    assert!(
        result.ends_with("3 packets transmitted, 3 packets received, 0% packet loss"),
        "{result}"
    );
    // linux reached linux2 at its new address.
    s.send("ip neigh show 10.0.0.2\n").unwrap();
    let neigh = s
        .expect("linux | 10.0.0.2 dev eth0 lladdr", ANSWER)
        .unwrap();
    assert!(neigh.contains("lladdr 02:00:00:00:00:42"), "{neigh}");
    detach(&mut s);
    // The operator sees the card's traffic: linux2 answered six pings.
    s.send("vm info linux2\n").unwrap();
    let net = s.expect("network:       ", ANSWER).unwrap();
    let counts: Vec<u64> = net
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        counts.len() >= 3 && counts[0] >= 6 && counts[1] >= 6,
        "{net}"
    );
    // Linux warns when the card refuses a control command (its receive
    // mode, MAC table, address or a VLAN): none did.
    let refused: Vec<&String> = s
        .transcript()
        .iter()
        .filter(|l| l.contains("eth0: Failed"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

/// An ext4 image made on the host (`mkfs.ext4 -d`) holding `hello.txt`,
/// in a fresh directory; returns the image's path.
fn host_disk(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mica-disk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("hello.txt"), "written by the host\n").unwrap();
    let image = dir.join("disk.img");
    let made = Command::new(mica_tests::host_tool("mkfs.ext4").expect("mkfs.ext4 (e2fsprogs)"))
        .args(["-q", "-d"])
        .arg(&files)
        .arg(&image)
        .arg("64M")
        .status()
        .unwrap();
    assert!(made.success(), "mkfs.ext4 failed");
    image
}

/// The `linux-disk` scenario booted with `image` as the Linux VM's disk
/// and `extra` QEMU options, Linux at its shell and the console attached.
fn linux_with_disk(image: &std::path::Path, extra: &[&str]) -> Session {
    let disk = disk_args(0, image.to_str().unwrap());
    let args: Vec<&str> = disk
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    let mut s =
        booted_scenario_shell_with("MICA_BOOT_IMAGE_RISCV64_LINUX_DISK", "linux", &args, BOOT)
            .unwrap();
    init_ready(&mut s, "linux");
    attach(&mut s, "linux");
    s
}

/// A file of the ext4 image `image`, read on the host without mounting.
fn host_read(image: &std::path::Path, file: &str) -> String {
    let out = Command::new(mica_tests::host_tool("debugfs").expect("debugfs (e2fsprogs)"))
        .args(["-R", &format!("cat /{file}")])
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs QEMU, the built kernel, e2fsprogs and `cargo xtask guests`: run by `cargo xtask test`"]
fn a_linux_vm_mounts_its_disk_reads_the_hosts_file_and_its_write_reaches_the_host_file() {
    let image = host_disk("linux");
    let mut s = linux_with_disk(&image, &[]);
    // The disk is a virtio block device (ID 2) beside the entropy device.
    type_and_expect(
        &mut s,
        "linux",
        "cat /sys/bus/virtio/devices/virtio1/device",
        "0x0002",
    );
    // Mica's virtio devices offer what QEMU's do: Linux negotiates the
    // same features as natively.
    assert_eq!(virtio_features(&mut s, "linux | "), VIRTIO_FEATURES);
    type_and_expect(
        &mut s,
        "linux",
        "mount /dev/vda /mnt && echo mounted",
        "mounted",
    );
    type_and_expect(&mut s, "linux", "cat /mnt/hello.txt", "written by the host");
    type_and_expect(
        &mut s,
        "linux",
        // Short enough for one 80-column line with the prompt.
        "echo \"guest wrote $((6 * 7))\" > /mnt/new.txt && sync && echo synced",
        "synced",
    );
    type_and_expect(
        &mut s,
        "linux",
        "umount /mnt && echo unmounted",
        "unmounted",
    );
    // A DISCARD (the disk's last MiB, which the small filesystem leaves
    // unused) is answered OK.
    type_and_expect(
        &mut s,
        "linux",
        "blkdiscard -o 66060288 -l 1048576 /dev/vda && echo discarded",
        "discarded",
    );
    s.send("poweroff -f\n").unwrap();
    s.expect("mica: linux powered off", ANSWER).unwrap();
    detach(&mut s);
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
    // QEMU has exited: the host file holds what the guest wrote.
    assert_eq!(host_read(&image, "new.txt"), "guest wrote 42\n");
    assert_eq!(host_read(&image, "hello.txt"), "written by the host\n");
    let _ = std::fs::remove_dir_all(image.parent().unwrap());
}

#[test]
#[ignore = "needs QEMU, e2fsprogs and `cargo xtask guests`: run by `cargo xtask test`"]
fn natively_the_same_disk_mounts_and_reads_the_same() {
    let image = host_disk("native");
    let kernel = artifact("MICA_LINUX_KERNEL").unwrap();
    let initramfs = artifact("MICA_LINUX_INITRAMFS").unwrap();
    let mut qemu = Command::new("qemu-system-riscv64");
    qemu.args(["-machine", "virt", "-nographic", "-bios", "default"])
        .args(["-m", "128M", "-kernel", &kernel, "-initrd", &initramfs])
        .args(["-append", CMDLINE, "-monitor", "none", "-serial", "stdio"])
        // The devices a Mica VM with a disk has, QEMU's own: entropy,
        // block, a console with one port (Mica's has no MULTIPORT) and a
        // network card, all virtio 1.x.
        .args(["-device", "virtio-rng-device"])
        .args(disk_args(0, image.to_str().unwrap()))
        .args(["-device", "virtio-serial-device,max_ports=1"])
        .args(["-device", "virtconsole"])
        .args(["-netdev", "user,id=n0", "-device", NATIVE_NET_CARD])
        .args(["-global", "virtio-mmio.force-legacy=false"]);
    let mut s = Session::spawn_with_stdin(qemu).unwrap();
    s.expect(INIT_READY, BOOT).unwrap();
    assert_eq!(virtio_features(&mut s, ""), VIRTIO_FEATURES);
    for (command, answer) in [
        (
            "mount /dev/vda /mnt && echo mounted $((1 + 1))",
            "mounted 2",
        ),
        ("cat /mnt/hello.txt", "written by the host"),
    ] {
        s.send(&format!("{command}\n")).unwrap();
        s.expect(command, ANSWER).unwrap();
        assert_eq!(s.expect(answer, ANSWER).unwrap(), answer);
    }
    s.send("poweroff -f\n").unwrap();
    s.expect("reboot: Power down", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
    let _ = std::fs::remove_dir_all(image.parent().unwrap());
}

/// The bytes `yes N | head -c 4096` writes: `N\n` repeated over a block.
/// A fresh, empty 16 MiB disk image in a directory of its own (removed by
/// [`halt_and_find_blocks`]).
fn empty_disk(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("mica-disk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    (dir, image)
}

/// Detaches, halts Mica (exit status 0), then finds every block of
/// `acked` (the writes the guest was told are done) in the host's
/// `image` with its contents ([`block_of`]); removes `dir`.
fn halt_and_find_blocks(
    mut s: Session,
    dir: &std::path::Path,
    image: &std::path::Path,
    acked: Vec<u32>,
) {
    detach(&mut s);
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
    let disk = std::fs::read(image).unwrap();
    for n in acked {
        let at = n as usize * 4096;
        assert_eq!(disk[at..at + 4096], block_of(n)[..], "block {n}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The guest's shell function `w N`: writes block N filled with `N\n`
/// repeated ([`block_of`]) straight to its disk and syncs; its status
/// says whether the guest was told the write is done. Typed as short
/// lines (the guest's echo wraps at 80 columns).
const WRITE_BLOCK: [&str; 2] = [
    "w() { yes $1 | head -c 4096 > /tmp/b",
    "dd if=/tmp/b of=/dev/vda bs=4096 seek=$1 oflag=direct conv=fsync 2>/dev/null; }",
];

fn block_of(n: u32) -> Vec<u8> {
    format!("{n}\n").bytes().cycle().take(4096).collect()
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn a_block_service_killed_during_writes_neither_hangs_the_guest_nor_loses_an_acknowledged_write() {
    let (dir, image) = empty_disk("chaos");
    // The block service dies every 1.5 s, for ever, as if it faulted.
    let mut s = linux_with_disk(&image, &["-append", "mica.chaos=blk@1500"]);
    let from = s.position();
    // Block i gets `i` repeated (`w`), each write saying whether the guest
    // was told it is done.
    type_lines(
        &mut s,
        "linux",
        &[
            WRITE_BLOCK[0],
            WRITE_BLOCK[1],
            "for i in $(seq 1 80); do",
            "w $i && echo \"wrote $i\" || echo \"failed $i\"; done; echo \"writes $((2 * 40))\"",
        ],
    );
    // The guest finishes: no write hangs it.
    s.expect("linux | writes 80", LINUX_BOOT).unwrap();
    let lines = s.transcript()[from..].to_vec();
    let numbers = |word: &str| -> Vec<u32> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("linux | {word} ")))
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    let (wrote, failed) = (numbers("wrote"), numbers("failed"));
    assert_eq!(wrote.len() + failed.len(), 80, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("blk") && l.contains("killed")),
        "the block service died during the writes: {lines:?}"
    );
    assert!(
        !wrote.is_empty(),
        "the guest wrote again after the service came back"
    );
    let deaths = lines.iter().filter(|l| l.contains("mica.chaos")).count();
    println!(
        "{} writes done, {} failed with an I/O error, {deaths} deaths of the block service",
        wrote.len(),
        failed.len()
    );
    halt_and_find_blocks(s, &dir, &image, wrote);
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn a_devices_service_killed_during_writes_comes_back_with_the_guests_devices_as_they_were() {
    let (dir, image) = empty_disk("devchaos");
    // The device service (every VM's UART, PLIC and virtio devices) dies
    // three times, 16 s apart, by Mica's clock: mostly while Linux writes
    // (at its shell after 12 to 20 s of a loaded 2-core machine's time,
    // with the four harts), the first maybe while it still boots.
    let mut s = linux_with_disk(&image, &["-append", "mica.chaos=devices@16000x3"]);
    // What is typed goes through the device service's UART: a death while
    // the lines are typed loses the bytes in its receive FIFO (the shell
    // then waits for the rest of a line). The lines go in once the first
    // death is over (at 16 s, in the boot or at the shell), so that the
    // other two fall in the writes, 16 s later each.
    const RECOVERED: &str = "init: the vm-manager handed endpoint 3 its VMs again";
    if !s.transcript().iter().any(|l| l.contains(RECOVERED)) {
        s.expect(RECOVERED, LINUX_BOOT).unwrap();
    }
    let from = s.position();
    // Block i gets `i` repeated, written direct and synced, until the
    // guest has run 52 s (past the last death), and for 20 s at least (a
    // loaded machine may bring the shell up late); each block the guest
    // was told is done goes to /tmp/ok, each refused to /tmp/bad.
    type_lines(
        &mut s,
        "linux",
        &[
            WRITE_BLOCK[0],
            WRITE_BLOCK[1],
            "up() { cut -d. -f1 /proc/uptime; }; touch /tmp/ok /tmp/bad; i=0",
            "t=$(($(up) + 20)); [ $t -lt 52 ] && t=52",
            "while [ $(up) -lt $t ]; do i=$((i + 1)); w $i && echo $i >> /tmp/ok ||",
            "echo $i >> /tmp/bad; done; echo \"acked $(wc -l < /tmp/ok) of $i\"",
        ],
    );
    let done = s.expect("linux | acked ", LINUX_BOOT).unwrap();
    let lines = s.transcript()[from..].to_vec();
    // Counted from the boot on: on a loaded machine the first death may
    // come while Linux still boots (the schedule is Mica's clock).
    let deaths = s
        .transcript()
        .iter()
        .filter(|l| l.contains("(devices) killed by fault injection"))
        .count();
    assert_eq!(deaths, 3, "the device service died three times: {lines:?}");
    let words: Vec<u32> = done
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [acked, written] = words[..] else {
        panic!("{done:?}")
    };
    assert!(acked > 0, "{done:?}");
    // The console still answers: the UART and the PLIC kept what Linux
    // programmed, and virtio-rng still serves its queue.
    type_and_expect(&mut s, "linux", "echo $((6 * 7))", "42");
    let bytes = read_hwrng(&mut s, "linux | ");
    assert!(bytes.iter().any(|&b| b != 0), "{bytes:?}");
    s.send("echo \"bad $(cat /tmp/bad | tr '\\n' ' ')\"\n")
        .unwrap();
    let bad_line = s.expect("linux | bad", ANSWER).unwrap();
    let bad: Vec<u32> = bad_line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(acked as usize + bad.len(), written as usize, "{bad_line:?}");
    println!(
        "{acked} of {written} writes acknowledged across {deaths} deaths of the device service; refused: {bad:?}"
    );
    let acked = (1..=written).filter(|n| !bad.contains(n)).collect();
    halt_and_find_blocks(s, &dir, &image, acked);
}

/// Each CPU's user time (`/proc/stat`, clock ticks) as `vm`'s Linux
/// counts it, read at its attached shell.
fn user_ticks(s: &mut Session, vm: &str, cpus: usize) -> Vec<u64> {
    let from = s.position();
    type_and_expect(
        s,
        vm,
        "grep '^cpu[0-9]' /proc/stat; echo counted",
        "counted",
    );
    let prefix = format!("{vm} | cpu");
    let ticks: Vec<u64> = s.transcript()[from..]
        .iter()
        .filter_map(|l| {
            l.strip_prefix(&prefix)?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(ticks.len(), cpus, "{:?}", &s.transcript()[from..]);
    ticks
}

/// The state and exit count of each vCPU of `vm`, as `vm info` shows
/// them (`vcpu N:        STATE, E exits, R I/O round trips`, where STATE
/// of a vCPU on a host CPU now is `running on cpu C`).
fn vcpu_lines(s: &mut Session, vm: &str) -> Vec<(String, u64)> {
    let from = s.position();
    // `mem` answers after the whole block is out.
    s.send(&format!("vm info {vm}\nmem\n")).unwrap();
    s.expect(&format!("name:          {vm}"), ANSWER).unwrap();
    s.expect("memory: ", ANSWER).unwrap();
    s.transcript()[from..]
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.strip_prefix("vcpu ")?.split_once(':')?;
            let mut parts = rest.trim().split(", ");
            let state = parts.next()?.to_string();
            let exits = parts.next()?.strip_suffix(" exits")?.parse().ok()?;
            Some((state, exits))
        })
        .collect()
}

/// The frames the shell's `mem` says are free.
fn free_frames(s: &mut Session) -> u64 {
    s.send("mem\n").unwrap();
    let line = s.expect("memory: ", ANSWER).unwrap();
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[test]
#[ignore = "needs QEMU, the built kernel and `cargo xtask guests`: run by `cargo xtask test`"]
fn two_four_vcpu_linux_vms_run_busy_loops_on_every_cpu_beside_a_ticking_vm() {
    let mut s = booted_scenario_shell("MICA_BOOT_IMAGE_RISCV64_LINUX_SMP", "linux2", BOOT).unwrap();
    let from = s.position();
    s.expect(&format!("| {INIT_READY}"), LINUX_BOOT).unwrap();
    seen_or_expect(&mut s, from, &format!("linux | {INIT_READY}"), LINUX_BOOT);
    seen_or_expect(&mut s, from, &format!("linux2 | {INIT_READY}"), LINUX_BOOT);

    // Each VM brought its three other harts up (SBI HSM) and pins a busy
    // loop to each of its four CPUs.
    for vm in ["linux", "linux2"] {
        attach(&mut s, vm);
        type_and_expect(&mut s, vm, "nproc", "4");
        type_and_expect(&mut s, vm, "cat /sys/devices/system/cpu/online", "0-3");
        if vm == "linux" {
            // The console's interrupt moves to CPU 1: PLIC context 1, the
            // S-mode external interrupt of vCPU 1 alone.
            let mv = "cd /proc/irq/*/ttyS0/.. && echo 2 > smp_affinity && echo moved";
            type_and_expect(&mut s, vm, mv, "moved");
            type_and_expect(&mut s, vm, "cat effective_affinity_list", "1");
            type_and_expect(&mut s, vm, "cd / && echo $((6 * 7))", "42");
            s.send("grep ttyS0 /proc/interrupts\n").unwrap();
            expect_echo(&mut s, "linux | ", "grep ttyS0 /proc/interrupts");
            // The counts' line (not a second echo of the command: a line
            // typed before the prompt is echoed by the terminal, then
            // again by the shell's line editor).
            let line = s.expect("PLIC", ANSWER).unwrap();
            assert!(line.contains("ttyS0"), "{line}");
            let counts: Vec<u64> = line
                .split_whitespace()
                .skip(3)
                .take(4)
                .filter_map(|n| n.parse().ok())
                .collect();
            assert!(
                counts.len() == 4 && counts[1] > 0,
                "CPU 1 took none: {line}"
            );
        }
        type_lines(
            &mut s,
            vm,
            &[
                "spin() { while :; do :; done; }",
                "for c in 0 1 2 3; do spin & taskset -pc $c $! >/dev/null; done",
            ],
        );
        detach(&mut s);
    }
    // Every CPU of both VMs keeps running its loop, and the hello VM
    // keeps ticking beside them.
    let mut before = Vec::new();
    for vm in ["linux", "linux2"] {
        attach(&mut s, vm);
        before.push(user_ticks(&mut s, vm, 4));
        detach(&mut s);
    }
    let ticked_from = s.position();
    for _ in 0..2 {
        s.expect("vm0 | vm0: tick", TICKS).unwrap();
    }
    for (vm, before) in ["linux", "linux2"].into_iter().zip(before) {
        attach(&mut s, vm);
        let after = user_ticks(&mut s, vm, 4);
        detach(&mut s);
        for (cpu, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                a > b,
                "{vm} cpu{cpu} made no progress: {before:?} then {after:?}"
            );
        }
        println!("{vm}: user ticks per CPU {before:?} then {after:?}");
    }
    let ticks = ticks(&s.transcript()[ticked_from..], "vm0");
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");

    // A pause holds every vCPU of the busy VM: `vm info` shows each held,
    // its exits standing still, until the VM resumes and all run again.
    s.send("vm pause linux2\n").unwrap();
    s.expect("linux2 paused", ANSWER).unwrap();
    let paused = vcpu_lines(&mut s, "linux2");
    // With linux2 held, linux's four busy vCPUs have the four harts: `vm
    // info` catches two or more of them in the guest at once, on CPUs of
    // their own, and three CPUs or more running them over a few looks.
    // vCPUs taking turns on one hart would show one CPU only. (Not four
    // at once: whichever harts run the shell and the services at the
    // moment of a look have no vCPU then, and on a 2-core host QEMU's
    // hart threads take turns too.)
    let mut spread = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let cpus: std::collections::BTreeSet<u8> = vcpu_lines(&mut s, "linux")
            .iter()
            .filter_map(|(state, _)| state.strip_prefix("running on cpu ")?.parse().ok())
            .collect();
        spread.push(cpus.len());
        seen.extend(cpus);
        if seen.len() >= 3 && spread.iter().any(|&n| n >= 2) {
            break;
        }
    }
    println!("linux: vCPUs in the guest at once, per look: {spread:?}, on CPUs {seen:?}");
    assert!(
        spread.iter().any(|&n| n >= 2) && seen.len() >= 3,
        "linux's busy vCPUs were not seen on 2 CPUs at once and on 3 in all: {spread:?}, {seen:?}"
    );

    assert!(
        paused.iter().all(|(state, _)| state == "held"),
        "{paused:?}"
    );
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    let still = vcpu_lines(&mut s, "linux2");
    assert_eq!(paused, still, "a paused vCPU ran");
    s.send("vm resume linux2\n").unwrap();
    s.expect("linux2 resumed", ANSWER).unwrap();
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    let resumed = vcpu_lines(&mut s, "linux2");
    for (n, ((state, after), (_, before))) in resumed.iter().zip(&paused).enumerate() {
        assert!(
            state != "held" && state != "stopped",
            "vcpu {n}: {resumed:?}"
        );
        assert!(after > before, "vcpu {n} did not run again: {resumed:?}");
    }

    // A reset while every vCPU is busy reboots the VM on all four.
    s.send("vm reset linux\n").unwrap();
    s.expect("linux reset", ANSWER).unwrap();
    init_ready(&mut s, "linux");
    attach(&mut s, "linux");
    type_and_expect(&mut s, "linux", "nproc", "4");
    detach(&mut s);

    // A 4-vCPU VM destroyed with every vCPU busy: the call returns, no
    // vCPU of it runs again, and the frames the same VM made again
    // takes are exactly the ones it gave back.
    let with = free_frames(&mut s);
    s.send("vm destroy linux2\n").unwrap();
    s.expect("linux2 destroyed", ANSWER).unwrap();
    let destroyed_from = s.position();
    let without = free_frames(&mut s);
    assert!(without > with, "{with} free before, {without} after");
    // The static linux2 made again from its build-time settings.
    s.send("vm create linux2\n").unwrap();
    s.expect("linux2 created", ANSWER).unwrap();
    assert_eq!(
        free_frames(&mut s),
        with,
        "a new linux2 takes what the old one gave back"
    );
    s.send("vm destroy linux2\n").unwrap();
    s.expect("linux2 destroyed", ANSWER).unwrap();
    assert_eq!(free_frames(&mut s), without, "nothing leaks");
    s.expect("vm0 | vm0: tick", TICKS).unwrap();
    attach(&mut s, "linux");
    type_and_expect(&mut s, "linux", "echo still $((6 * 7))", "still 42");
    detach(&mut s);
    let late: Vec<&String> = s.transcript()[destroyed_from..]
        .iter()
        .filter(|l| l.starts_with("linux2 |"))
        .collect();
    assert!(late.is_empty(), "linux2 ran after its destroy: {late:?}");
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
