//! The VM generation ID as a guest sees it: the `genid` test guest reads
//! the ID from guest memory (where its device tree's `microsoft,vmgenid`
//! node points) and prints it at boot. Driven through the shell on stdin:
//! pause/resume and a plain reset keep the ID (and `vm info` agrees),
//! `vm reset --new-genid` gives a different one after the reboot, and a
//! clone of a paused VM boots with an ID of its own. Run by `cargo xtask
//! test`.
//!
//! No operation changes a running VM's ID without a reboot, so the change
//! interrupt is tested on the host (the device service with its PLIC).
//!
//! The IDs are hardware entropy (the Zkr `seed` CSR of the tests' CPU):
//! two VMs and two boots never share one and nothing says they are not
//! random; on a hart without Zkr but with QEMU's virtio-rng, they come
//! from the host's virtio-rng through the rng service, random still; on a
//! hart with neither, the kernel, the vm-manager and the device service
//! each say so at boot, and the VMs still get distinct IDs.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);
const TICKS: Duration = Duration::from_secs(20);
const ANSWER: Duration = Duration::from_secs(10);

/// Mica booted with the shell on stdin, after the static VMs started.
fn booted() -> Session {
    mica_tests::riscv64::booted_shell(BOOT).unwrap()
}

/// The 32 hex digits of the first `<vm> | genid: ...` line from transcript
/// position `from` on: the guest may print it before the shell's answer
/// to the command that started it (it runs on another hart at once).
fn boot_id(s: &mut Session, vm: &str, from: usize) -> String {
    let prefix = format!("{vm} | genid: ");
    let seen = s.transcript()[from..]
        .iter()
        .find(|l| l.starts_with(&prefix))
        .cloned();
    let line = match seen {
        Some(line) => line,
        None => s.expect(&prefix, TICKS).unwrap(),
    };
    let id = line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(id.len(), 32, "32 hex digits: {line}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    assert_ne!(id, "0".repeat(32), "the ID was written into RAM: {line}");
    id
}

/// The generation ID `vm info` shows, without the UUID dashes.
fn info_id(s: &mut Session, vm: &str) -> String {
    s.send(&format!("vm info {vm}\n")).unwrap();
    s.expect(&format!("name:          {vm}"), ANSWER).unwrap();
    let line = s.expect("generation id: ", ANSWER).unwrap();
    line.rsplit(' ').next().unwrap().replace('-', "")
}

/// Types `command` and waits for `done`; returns the transcript position
/// from before the command.
fn run(s: &mut Session, command: &str, done: &str) -> usize {
    let from = s.position();
    s.send(&format!("{command}\n")).unwrap();
    s.expect(done, ANSWER).unwrap();
    from
}

fn lines_since(s: &Session, from: usize, needle: &str) -> usize {
    s.transcript()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// Creates and starts genid VMs `names` and returns the IDs their guests
/// read.
fn started_ids(s: &mut Session, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        run(
            s,
            &format!("vm create {name} --image genid --mem 16"),
            &format!("{name} created"),
        );
        let from = run(s, &format!("vm start {name}"), &format!("{name} started"));
        ids.push(boot_id(s, name, from));
    }
    ids
}

/// Halts Mica (QEMU exits 0).
fn halt(s: &mut Session) {
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

/// How `vm info` marks an ID drawn without hardware entropy.
const MARK: &str = "NOT random: drawn without a hardware entropy source";

/// What a machine without a hardware source says, wherever it is said.
const NOT_RANDOM: [&str; 3] = [
    "no hardware entropy source",
    "NOT random",
    "virtio-rng devices will give guests no bytes",
];

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn two_vms_and_two_boots_get_distinct_hardware_ids() {
    let mut all = Vec::new();
    for _boot in 0..2 {
        let mut s = booted();
        let source = s
            .transcript()
            .iter()
            .find(|l| l.starts_with("mica: entropy: "));
        assert_eq!(
            source.map(String::as_str),
            Some("mica: entropy: the Zkr seed CSR"),
            "{:?}",
            s.transcript()
        );
        let ids = started_ids(&mut s, &["a", "b"]);
        assert_eq!(info_id(&mut s, "a"), ids[0], "vm info agrees, unmarked");
        halt(&mut s);
        all.extend(ids);
        for warning in NOT_RANDOM {
            assert!(
                !s.transcript().iter().any(|l| l.contains(warning)),
                "{warning}: {:?}",
                s.transcript()
            );
        }
    }
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        4,
        "every VM of every boot has its own ID: {all:?}"
    );
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_zkr_mica_says_the_ids_are_not_random() {
    // QEMU's default hart: the H extension, no Zkr.
    let mut s = mica_tests::riscv64::booted_shell_on_cpu("rv64", BOOT).unwrap();
    let t = s.transcript().to_vec();
    let said = |needle: &str| t.iter().any(|l| l.starts_with(needle));
    assert!(
        said(
            "mica: warning: no hardware entropy source (RISC-V Zkr seed CSR, x86 RDSEED/RDRAND): \
             the entropy call will refuse"
        ),
        "the kernel names the missing source: {t:?}"
    );
    assert!(
        said(
            "vm-manager: WARN: generation IDs are NOT random, they come from guessable \
             counters: no hardware entropy source"
        ),
        "the vm-manager says what it means for the VMs, before any starts: {t:?}"
    );
    let warned = t.iter().position(|l| l.contains("NOT random")).unwrap();
    let first_vm = t.iter().position(|l| l.contains("vm0 started")).unwrap();
    assert!(warned < first_vm, "{t:?}");
    assert!(
        said("devices: WARN: virtio-rng devices will give guests no bytes"),
        "{t:?}"
    );
    let ids = started_ids(&mut s, &["a", "b"]);
    assert_ne!(ids[0], ids[1], "still distinct without hardware entropy");
    assert_eq!(
        s.transcript()
            .iter()
            .filter(|l| l.contains("NOT random"))
            .count(),
        1,
        "said once, not per VM: {:?}",
        s.transcript()
    );
    // `vm info` marks each such ID.
    assert_eq!(info_id(&mut s, "b"), ids[1]);
    s.expect(MARK, ANSWER).unwrap();
    halt(&mut s);
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_zkr_the_ids_come_from_the_hosts_virtio_rng_and_are_random() {
    // QEMU's default hart (no Zkr) with a virtio-rng device; the rng
    // service is killed twice after boot and must come back each time.
    let mut s = mica_tests::riscv64::booted_shell_on_cpu_with_virtio_rng(
        "rv64",
        // At 3 s and 6 s of Mica's clock: after the boot's VM took its RAM,
        // so the free counts after the two reloads compare (at 0.5 s and
        // 1 s, the VM was sometimes made between them).
        Some("mica.chaos=rng@3000x2"),
        BOOT,
    )
    .unwrap();
    let t = s.transcript().to_vec();
    let said = |needle: &str| t.iter().position(|l| l.starts_with(needle));
    assert!(
        said("mica: warning: no hardware entropy source").is_some(),
        "the kernel still names the CPU's missing source: {t:?}"
    );
    assert!(
        said("rng: serving the host's virtio-rng").is_some(),
        "the rng service found the device: {t:?}"
    );
    let source = said(
        "vm-manager: generation IDs come from the host's virtio-rng (the rng service): \
         the CPU has no entropy source",
    )
    .unwrap_or_else(|| panic!("the vm-manager names its source: {t:?}"));
    let first_vm = t.iter().position(|l| l.contains("vm0 started")).unwrap();
    assert!(source < first_vm, "said before any VM starts: {t:?}");
    assert!(
        said("devices: virtio-rng devices give guests the host's virtio-rng bytes").is_some(),
        "{t:?}"
    );
    // Restarted by init like every service, its device taken up again and
    // its DMA pages given back (the same free count after each reload).
    let count = |s: &Session, needle: &str| lines_since(s, 0, needle);
    while count(&s, "rng: serving the host's virtio-rng") < 3 {
        s.expect("rng: serving the host's virtio-rng", TICKS)
            .unwrap();
    }
    let free: Vec<&str> = s
        .transcript()
        .iter()
        .filter(|l| l.contains("(rng) loaded again: "))
        .filter_map(|l| l.rsplit(", ").next())
        .collect();
    assert_eq!(free.len(), 2, "killed twice: {:?}", s.transcript());
    assert_eq!(free[0], free[1], "nothing leaks per restart");
    let ids = started_ids(&mut s, &["a", "b"]);
    assert_ne!(ids[0], ids[1]);
    // `vm info` shows the ID unmarked: the next line is the exit counts.
    assert_eq!(info_id(&mut s, "b"), ids[1]);
    let (which, line) = s.expect_any(&[MARK, "exits:"], ANSWER).unwrap();
    assert_eq!(which, 1, "unmarked: {line:?}");
    halt(&mut s);
    for warning in
        NOT_RANDOM
            .iter()
            .chain(&[MARK, "guessable counters", "rng: no virtio-rng device"])
    {
        assert!(
            !s.transcript()
                .iter()
                .any(|l| l.contains(warning) && !l.starts_with("mica: warning:")),
            "{warning}: {:?}",
            s.transcript()
        );
    }
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn the_guest_sees_a_new_id_only_after_new_genid_and_clone() {
    let mut s = booted();
    run(&mut s, "vm create g --image genid --mem 16", "g created");
    let from = run(&mut s, "vm start g", "g started");
    let first = boot_id(&mut s, "g", from);
    s.expect("g | tick 1", TICKS).unwrap();
    assert_eq!(
        info_id(&mut s, "g"),
        first,
        "vm info shows what the guest read"
    );

    // Pause and resume: the guest goes on, no change, the same ID.
    let from = s.position();
    run(&mut s, "vm pause g", "g paused");
    run(&mut s, "vm resume g", "g resumed");
    s.expect("g | tick", TICKS).unwrap();
    s.expect("g | tick", TICKS).unwrap();
    assert_eq!(lines_since(&s, from, "genid changed"), 0);
    assert_eq!(lines_since(&s, from, "g | genid: "), 0, "no reboot");
    assert_eq!(info_id(&mut s, "g"), first);

    // A plain reset reboots the guest with the same ID.
    let from = run(&mut s, "vm reset g", "g reset");
    assert_eq!(
        boot_id(&mut s, "g", from),
        first,
        "plain reset keeps the ID"
    );
    s.expect("g | tick 1", TICKS).unwrap();

    // --new-genid: the rebooted guest reads a different ID.
    let from = run(
        &mut s,
        "vm reset g --new-genid",
        "g reset with a new generation ID",
    );
    let second = boot_id(&mut s, "g", from);
    assert_ne!(second, first, "a new generation ID");
    assert_eq!(info_id(&mut s, "g"), second);
    s.expect("g | tick 1", TICKS).unwrap();

    // A clone of the paused g: its own ID, and g keeps its own.
    run(&mut s, "vm pause g", "g paused");
    run(&mut s, "vm clone g g2", "g2 created");
    let from = run(&mut s, "vm start g2", "g2 started");
    let cloned = boot_id(&mut s, "g2", from);
    assert_ne!(cloned, second, "the clone's ID differs from its source's");
    assert_eq!(info_id(&mut s, "g2"), cloned);
    s.expect("g2 | tick 1", TICKS).unwrap();
    assert_eq!(info_id(&mut s, "g"), second);
    run(&mut s, "vm resume g", "g resumed");
    s.expect("g | tick", TICKS).unwrap();

    assert_eq!(
        lines_since(&s, 0, "genid changed"),
        0,
        "no live change: {:?}",
        s.transcript()
    );
    assert!(
        !s.transcript()
            .iter()
            .any(|l| l.contains("fatal") || l.contains("stopped:")),
        "{:?}",
        s.transcript()
    );
    s.send("halt\n").unwrap();
    s.expect("mica: halting", ANSWER).unwrap();
    let status = s.wait_exit(ANSWER).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}
