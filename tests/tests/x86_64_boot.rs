//! Boots Mica's x86_64 Multiboot image on QEMU and checks what a user sees:
//! the boot banner, the SVM backend and the timer ticks with a clean exit
//! 0; four CPUs all online (three parked), one alone, ten of which eight
//! come online and two are named, and without ACPI the boot CPU alone; with the boot image, the services in ring 3 starting two SVM guests
//! whose COM1 lines reach the console through the devices task, each
//! keeping its own XMM0 while the other writes a different value, and a
//! guest that stores outside its RAM stopped while the other prints on; a
//! four-vCPU guest starting, interrupting, stopping and restarting its
//! vCPUs with Mica's hypercalls, then all four making progress; a
//! CPU exception provoked through the `mica.test=` command-line hook
//! reported with its name and RIP and exit 3 (never 0); one clear line
//! and a non-zero exit on a CPU without VMX or SVM, with too little memory,
//! and with a Multiboot module that is not a boot image. Run by `cargo
//! xtask test`, which builds the image and installs QEMU.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;
use std::time::Duration;

use mica_tests::Session;

/// QEMU's SVM CPU as `cargo xtask qemu --arch x86_64` runs it: RDSEED and
/// RDRAND are Mica's hardware entropy source.
const SVM: &str = "qemu64,+svm,+npt,+rdrand,+rdseed";

const BOOT: Duration = Duration::from_secs(30);
/// QEMU's exit for the kernel's failure (isa-debug-exit value 1).
const FAILURE_EXIT: i32 = 3;

/// QEMU pc booting the Multiboot image xtask built, on four `cpu`s (as
/// `cargo xtask qemu --arch x86_64` runs it), without a NIC (Mica has no
/// network; the default e1000 needs ipxe-qemu's ROM).
fn qemu(cpu: &str, extra: &[&str]) -> Session {
    qemu_smp(cpu, 4, extra)
}

/// [`qemu`] with `cpus` processors.
fn qemu_smp(cpu: &str, cpus: u32, extra: &[&str]) -> Session {
    let image = std::env::var("MICA_KERNEL_X86_64").expect(
        "MICA_KERNEL_X86_64 names the Multiboot image: run these tests with `cargo xtask test`",
    );
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-cpu", cpu, "-kernel", &image])
        .args(["-smp", &cpus.to_string()])
        .args(["-serial", "stdio", "-display", "none", "-monitor", "none"])
        .args(["-nic", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-no-reboot")
        .args(extra);
    Session::spawn(command).unwrap()
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn boots_under_svm_and_shuts_down_cleanly() {
    let mut s = qemu(SVM, &["-m", "256M"]);
    let banner = s.expect("mica: booting on x86_64 (", BOOT).unwrap();
    // QEMU's memory map leaves out the 384 KiB hole below 1 MiB.
    assert_eq!(banner, "mica: booting on x86_64 (255 MiB)");
    s.expect("mica: virtualization: SVM", BOOT).unwrap();
    s.expect("mica: entropy: RDSEED (RDRAND when it runs dry)", BOOT)
        .unwrap();
    s.expect("mica: heap: 4096 KiB", BOOT).unwrap();
    s.expect("mica: paging: 4-level on", BOOT).unwrap();
    let timer = s.expect("mica: timer:", BOOT).unwrap();
    assert_eq!(
        timer,
        "mica: timer: 3 ticks at 100 Hz via the LAPIC timer (PIT-calibrated)"
    );
    s.expect("mica: no boot image (initrd): nothing to run", BOOT)
        .unwrap();
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn four_cpus_all_come_online_and_all_run_vcpus() {
    let mut s = qemu_smp(SVM, 4, &["-m", "256M"]);
    s.expect("mica: timer:", BOOT).unwrap();
    let cpus = s.expect("mica: cpus:", BOOT).unwrap();
    assert_eq!(
        cpus,
        "mica: cpus: 4 CPUs online (all 4 run the services and vCPUs)"
    );
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
    let warned = s.transcript().iter().any(|l| l.contains("warning: cpus:"));
    assert!(!warned, "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn one_cpu_alone_is_one_cpu_online() {
    let mut s = qemu_smp(SVM, 1, &["-m", "256M"]);
    let cpus = s.expect("mica: cpus:", BOOT).unwrap();
    assert_eq!(
        cpus,
        "mica: cpus: 1 CPU online (CPU 0 runs the services and the vCPUs)"
    );
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn cpus_past_eight_are_named_and_eight_come_online() {
    let mut s = qemu_smp(SVM, 10, &["-m", "256M"]);
    s.expect(
        "mica: warning: cpus: 2 enabled CPU(s) left stopped: past the first 8",
        BOOT,
    )
    .unwrap();
    let cpus = s.expect("mica: cpus:", BOOT).unwrap();
    assert_eq!(
        cpus,
        "mica: cpus: 8 CPUs online (all 8 run the services and vCPUs)"
    );
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_acpi_the_boot_cpu_runs_alone_and_says_why() {
    let mut s = qemu_smp(SVM, 4, &["-m", "256M", "-machine", "pc,acpi=off"]);
    s.expect(
        "mica: warning: cpus: no ACPI RSDP in the EBDA or at 0xe0000-0xfffff: \
         the boot CPU runs alone",
        BOOT,
    )
    .unwrap();
    let cpus = s.expect("mica: cpus:", BOOT).unwrap();
    assert_eq!(
        cpus,
        "mica: cpus: 1 CPU online (CPU 0 runs the services and the vCPUs)"
    );
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    // Without ACPI there is no S5 power-off for a clean exit: dropping the
    // session stops QEMU.
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_rdseed_or_rdrand_the_boot_says_there_is_no_entropy() {
    let mut s = qemu("qemu64,+svm,+npt", &["-m", "256M"]);
    s.expect(
        "mica: warning: no hardware entropy source (RISC-V Zkr seed CSR, x86 RDSEED/RDRAND): \
         the entropy call will refuse",
        BOOT,
    )
    .unwrap();
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_cpu_without_vmx_or_svm_is_refused_with_one_line() {
    let mut s = qemu("qemu64,-svm", &["-m", "256M"]);
    s.expect("mica: booting on x86_64", BOOT).unwrap();
    let line = s.expect("mica: no", BOOT).unwrap();
    assert_eq!(line, "mica: no VMX or SVM available");
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(FAILURE_EXIT));
    assert!(
        !s.transcript().iter().any(|l| l.contains("memory:")),
        "the boot must stop at the check: {:?}",
        s.transcript()
    );
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn too_little_memory_is_refused_with_the_fix() {
    let mut s = qemu(SVM, &["-m", "24M"]);
    let line = s.expect("mica: not enough memory", BOOT).unwrap();
    assert!(line.contains("need at least 32 MiB"), "{line}");
    assert!(line.contains("-m"), "{line}");
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(FAILURE_EXIT));
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_module_that_is_not_a_boot_image_is_refused() {
    let dir = std::env::temp_dir().join(format!("mica-x86-module-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("not-a-boot-image");
    std::fs::write(&module, b"this is not a Mica boot image\n".repeat(100)).unwrap();
    let mut s = qemu(SVM, &["-m", "256M", "-initrd", module.to_str().unwrap()]);
    s.expect("mica: virtualization: SVM", BOOT).unwrap();
    s.expect("mica: boot image:", BOOT).unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(FAILURE_EXIT));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Boots with the `mica.test=<hook>` command line and returns the fatal line.
/// Whether the report's RIP lies in the kernel, which is linked at 1 MiB
/// and is well under 1 MiB long.
fn in_kernel_text(line: &str) -> bool {
    let rip = line
        .split(" at rip 0x")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    rip.is_some_and(|rip| (0x10_0000..0x20_0000).contains(&rip))
}

fn provoked_fault(hook: &str) -> String {
    let append = format!("mica.test={hook}");
    let mut s = qemu(SVM, &["-m", "256M", "-append", &append]);
    s.expect(&format!("mica: test hook mica.test={hook}"), BOOT)
        .unwrap();
    let line = s.expect("mica: fatal:", BOOT).unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(FAILURE_EXIT));
    line
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn an_invalid_opcode_is_reported_and_fails_the_boot() {
    let line = provoked_fault("ud2");
    assert!(
        line.starts_with("mica: fatal: invalid opcode (#UD) at rip 0x1"),
        "{line}"
    );
    assert!(in_kernel_text(&line), "{line}");
    assert!(line.ends_with("(error code 0x0, cr2 0x0)"), "{line}");
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_null_store_faults_because_page_zero_is_unmapped() {
    let line = provoked_fault("pf");
    assert!(
        line.starts_with("mica: fatal: page fault (#PF) at rip 0x1"),
        "{line}"
    );
    assert!(in_kernel_text(&line), "{line}");
    // Error code 2: a write to a not-present page; CR2 names the address.
    assert!(line.ends_with("(error code 0x2, cr2 0x0)"), "{line}");
}

fn boot_image(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} names an x86 boot image: run these tests with `cargo xtask test`")
    })
}

/// With the x86 boot image as its Multiboot module, the services run in
/// ring 3, each in its own page tables, and talk over IPC; the vm-manager
/// starts the scenario's two VMs on SVM vCPUs. Each guest reads its name
/// from the boot-info block and prints through COM1: every LSR poll and
/// THR write is an IOIO exit that goes through the ioreq slot to the
/// devices task, whose 16550 model prints the `vmN | ` lines.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn service_tasks_run_in_ring_3_and_start_svm_guests() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64");
    let mut s = qemu(SVM, &["-m", "256M", "-initrd", &image]);
    s.expect("mica: boot complete, starting tasks", BOOT)
        .unwrap();
    s.expect("mica: 4 tasks loaded, entering init", BOOT)
        .unwrap();
    // The services start on whichever CPUs take them, in any order.
    s.expect_all(
        &[
            "init: started; supervising the services",
            "ioreq: serving ioreq",
            "devices: serving devices",
            "vm-manager: scenario x86-default",
        ],
        BOOT,
    )
    .unwrap();
    // Each starts with its own reset FP state, not the other's XMM0. vm0
    // runs on another CPU at once: its first lines may come before the
    // vm-manager says it started vm1.
    s.expect_all(
        &[
            "vm-manager: vm0 started",
            "vm-manager: vm1 started",
            "vm0 | hello from vm0",
            "vm1 | hello from vm1",
            "vm0 | vm0: fp state fresh",
            "vm1 | vm1: fp state fresh",
        ],
        BOOT,
    )
    .unwrap();
    // Both keep running: their tick lines come after the greeting. Each
    // reads back the XMM0 marker it wrote, though the other VM wrote its
    // own in between: FP state is switched with the vCPU.
    s.expect_all(
        &[
            "vm0 | vm0: tick 2",
            "vm1 | vm1: tick 2",
            "vm0 | vm0: xmm0 kept",
            "vm1 | vm1: xmm0 kept",
        ],
        BOOT,
    )
    .unwrap();
    assert!(
        !s.transcript().iter().any(|l| l.contains("stopped")),
        "no VM may stop: {:?}",
        s.transcript()
    );
    // Every CPU runs the services and vCPUs: an application processor
    // logs its first guest entry (on 4 CPUs with two VMs, one of them
    // does whatever CPU 0 takes).
    let firsts: Vec<&String> = s
        .transcript()
        .iter()
        .filter(|l| l.contains("runs its first vCPU (vm"))
        .collect();
    assert!(
        firsts.iter().all(|l| l.starts_with("mica: cpu ")),
        "{:?}",
        s.transcript()
    );
    assert!(
        firsts.iter().any(|l| !l.starts_with("mica: cpu 0 ")),
        "{firsts:?}"
    );
    // RDSEED answers the vm-manager and the device service: nothing says
    // the generation IDs are not random.
    assert!(
        !s.transcript()
            .iter()
            .any(|l| l.contains("NOT random") || l.contains("no hardware entropy")),
        "{:?}",
        s.transcript()
    );
    // Dropping the session stops QEMU: the services serve forever.
}

/// The ioreq and device services killed in turn every 700 ms, in the
/// middle of the SVM guests' COM1 traffic, are restarted by init and
/// handed every VM again by the vm-manager; the guests count on.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn services_killed_again_and_again_are_restarted_and_svm_guests_go_on() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64");
    let mut s = qemu(
        "qemu64,+svm,+npt",
        &[
            "-m",
            "256M",
            "-initrd",
            &image,
            "-append",
            mica_tests::RECOVERY_CHAOS,
        ],
    );
    mica_tests::expect_recovery(&mut s, 3, BOOT).unwrap();
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn hung_services_are_killed_by_the_watchdog_and_svm_guests_go_on() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64");
    let mut s = qemu(
        "qemu64,+svm,+npt",
        &[
            "-m",
            "256M",
            "-initrd",
            &image,
            "-append",
            mica_tests::HANG_CHAOS,
        ],
    );
    mica_tests::expect_hang_recovery(&mut s, BOOT).unwrap();
}

/// A guest that writes garbage into the MSRs it owns (LSTAR, STAR, SFMASK,
/// FS/GS base, KernelGSBase...), loads its own TR and SWAPGS reads them
/// back as it wrote them, and gets #GP (not a stopped VM) for an MSR it may
/// not read and an EFER it may not write; the host's own syscall MSRs are
/// untouched, so the services keep serving the other guest. Then it stores
/// outside its RAM (and outside every device) and is stopped by the nested
/// page fault with the RISC-V report line; the other guest prints on. A
/// third guest's VMMCALL powers its VM off.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_guest_storing_outside_its_ram_is_stopped_and_the_other_runs_on() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64_MISBEHAVE");
    let mut s = qemu(SVM, &["-m", "256M", "-initrd", &image]);
    s.expect("vm-manager: scenario x86-misbehave", BOOT)
        .unwrap();
    mica_tests::expect_x86_guest_msr_lines(&mut s, BOOT).unwrap();
    s.expect("vm1 | misbehave: about to write outside RAM", BOOT)
        .unwrap();
    let npf = s.expect("mica: vm1 stopped:", BOOT).unwrap();
    assert_eq!(
        npf,
        "mica: vm1 stopped: store guest-page fault at 0x28000000"
    );
    // The vm-manager learns why, with the guest's rip.
    let why = s.expect("vm-manager: vm1 stopped by Mica:", BOOT).unwrap();
    assert!(
        why.starts_with(
            "vm-manager: vm1 stopped by Mica: store guest page fault at 0x28000000, \
             no RAM or device there (pc 0x1"
        ) && why.ends_with("); now powered off"),
        "{why}"
    );
    // vm0 prints on after vm1 stopped (the session reads on from the stop).
    s.expect("vm0 | vm0: tick", BOOT).unwrap();
    s.expect("vm0 | vm0: tick", BOOT).unwrap();
    assert!(
        s.transcript().iter().any(|l| l == "vm0 | hello from vm0"),
        "{:?}",
        s.transcript()
    );
    assert!(
        !s.transcript()
            .iter()
            .any(|l| l.starts_with("vm1 | ") && !l.contains("misbehave")),
        "vm1 printed after its store: {:?}",
        s.transcript()
    );
    let lines = s.transcript();
    let bye = lines.iter().position(|l| l == "vm2 | poweroff: bye");
    let off = lines.iter().position(|l| l == "mica: vm2 powered off");
    assert!(
        matches!((bye, off), (Some(b), Some(o)) if b < o),
        "vm2 must print, then be powered off by its VMMCALL: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "vm-manager: vm2 powered off by the guest"),
        "the vm-manager learns that vm2's guest powered it off: {lines:?}"
    );
}

/// A hostile guest beside a well-behaved one under SVM (scenario
/// `x86-hostile`): vm1 does IN and OUT of every width at COM1, at ports
/// with no device, past port 0xffff and at QEMU's own exit port,
/// privileged instructions and denied MSRs, CPUID leaves, CR4 bits Mica
/// does not virtualise (the CPU has protection keys and XSAVE, so a CR4
/// write that got through would stick), RDPMC (#GP(0) where QEMU's own
/// raises #UD, never the host's counters), a CPUID without a PMU and the
/// PMU's MSRs (#GP(0)), the null hypercall with garbage and an HLT storm,
/// each checked from the inside (`hostile: <phase> ok`), then spins with
/// interrupts off. QEMU does not exit (no write
/// reached isa-debug-exit); vm0 keeps ticking on time, at a rate not far
/// below its rate alone.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn under_svm_a_hostile_guest_is_answered_and_its_neighbour_keeps_its_pace() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64_HOSTILE");
    let mut s = qemu(
        "qemu64,+svm,+npt,+pku,+xsave",
        &["-m", "256M", "-initrd", &image],
    );
    let phases = mica_tests::hostile::expect_phases(&mut s, X86_HOSTILE_PHASES, BOOT).unwrap();
    let (alone, beside) =
        mica_tests::hostile::expect_steady_progress(&mut s, &phases, 4.0, 5, BOOT).unwrap();
    println!(
        "steady (SVM): {alone} spins per tick alone, {beside} beside the spinning VM ({:.2})",
        beside as f64 / alone as f64
    );
    // Dropping the session stops QEMU: the services serve forever.
}

/// One VM with four vCPUs (scenario `x86-smp`) under SVM, on four host
/// CPUs: vCPU 0 of the `x86-smp` guest finds the vCPU count in its
/// boot-info block; Mica refuses a start of a vCPU past the last and of a
/// running one, and an IPI below vector 32, and reports vCPU 1 stopped
/// until it is started. vCPU 0 starts vCPUs 1-3 with the start hypercall
/// (each on its own stack, with its number in RDI, which the ID hypercall
/// confirms); each waits in HLT with interrupts on until vCPU 0's one IPI
/// to all three arrives through the IDT they share. The last stops itself
/// with the stop hypercall, Mica reports it stopped, and a second start
/// runs it at a new entry. Then all four vCPUs spin and print their own
/// progress lines, so each makes progress beside the others; the lines
/// (serialized by a spinlock in guest memory, each vCPU's port I/O
/// served on its own) come out whole, and nothing is unexpected or
/// stopped.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn an_smp_guest_starts_its_vcpus_sends_ipis_and_all_progress_in_parallel() {
    let image = boot_image("MICA_BOOT_IMAGE_X86_64_SMP");
    let mut s = qemu(SVM, &["-m", "256M", "-initrd", &image]);
    mica_tests::expect_x86_smp_guest_ipis(&mut s, BOOT).unwrap();
    s.expect("smp | vcpu 3: stopping", BOOT).unwrap();
    s.expect("smp | vcpu 0: vcpu 3 stopped", BOOT).unwrap();
    s.expect_all(
        &[
            "smp | vcpu 0: started vcpu 3 again",
            "smp | vcpu 3: up again",
        ],
        BOOT,
    )
    .unwrap();
    s.expect("smp | vcpu 0: all vcpus busy", BOOT).unwrap();
    // Every vCPU makes progress beside the others.
    s.expect_all(
        &[
            "smp | vcpu 0: progress 3",
            "smp | vcpu 1: progress 3",
            "smp | vcpu 2: progress 3",
            "smp | vcpu 3: progress 3",
        ],
        BOOT,
    )
    .unwrap();
    let troubles = mica_tests::x86_smp_guest_troubles(&s);
    assert!(troubles.is_empty(), "{troubles:?}");
    let lines = s.transcript();
    // Whole lines: the greeting, or `vcpu k: ...` with one colon.
    let torn: Vec<&String> = lines
        .iter()
        .filter_map(|l| Some((l, l.strip_prefix("smp | ")?)))
        .filter(|(_, rest)| {
            *rest != "hello from smp (4 vcpus)"
                && !(rest.starts_with("vcpu ") && rest.matches(':').count() == 1)
        })
        .map(|(l, _)| l)
        .collect();
    assert!(torn.is_empty(), "lines not whole: {torn:?}");
    // Dropping the session stops QEMU: the guest spins forever.
}

/// The x86 hostile guest's phases, in order.
const X86_HOSTILE_PHASES: &[&str] = &[
    "ports",
    "privileged",
    "cpuid",
    "cr4",
    "pmu",
    "hypercall",
    "hlt storm",
];

/// The x86 bench guest's null hypercall, COM1 LSR round trip, posted THR
/// write and IPI round trip (TSC cycles: every instruction of the CPU
/// under `-icount shift=0,sleep=off`) from the boot image `var` names, on
/// one CPU under SVM.
fn bench_counts(var: &str) -> (Session, [u64; 4]) {
    let image = boot_image(var);
    let mut s = qemu_smp(SVM, 1, &["-icount", "shift=0,sleep=off", "-initrd", &image]);
    let counts = [
        "null_hypercall",
        "pio_uart_roundtrip",
        "pio_uart_posted_write",
        "ipi_roundtrip",
    ]
    .map(|key| mica_tests::bench::figure(&mut s, key, BOOT).unwrap());
    (s, counts)
}

/// Beside two VMs that spin on its one CPU (`x86-bench-busy`), the bench
/// VM's I/O costs what it costs alone (`x86-bench`): the vCPU whose
/// access completes runs next, not after the neighbours' time slices.
#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn under_svm_beside_two_busy_vms_a_round_trip_costs_what_it_costs_alone() {
    let (_, alone) = bench_counts("MICA_BOOT_IMAGE_X86_64_BENCH");
    let (s, busy) = bench_counts("MICA_BOOT_IMAGE_X86_64_BENCH_BUSY");
    for vm in ["vm1", "vm2"] {
        assert!(
            s.transcript()
                .iter()
                .any(|l| l.starts_with(&format!("{vm} | steady: timebase "))),
            "{vm} did not start spinning: {:?}",
            s.transcript()
        );
    }
    mica_tests::bench::assert_beside_busy_vms_as_alone(
        [
            "null hypercall",
            "UART round trip",
            "posted write",
            "IPI round trip",
        ],
        alone,
        busy,
    );
}
