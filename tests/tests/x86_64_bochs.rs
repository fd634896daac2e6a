//! Boots Mica's x86_64 image under Bochs, the emulator with Intel VMX here
//! (`corei7_skylake_x`), from the GRUB ISOs `cargo xtask test` prepares:
//! the kernel finds VMX, the ring-3 services start from the boot image,
//! the first VM call switches VMX on (VMXON) and the guests run on VMX
//! (hello lines through the devices task, an EPT violation stops a VM, a
//! VMCALL powers one off),
//! a boot without a boot image shuts down cleanly (Bochs exits 0, through
//! port 0x8A00) with its one CPU online, and a CPU exception provoked
//! through `mica.test=ud2` fails the boot (Bochs exits non-zero, through
//! port 0x8900).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mica_tests::Session;

/// Bochs boots in a few seconds at ips=10000000; other builds and tests
/// may share the CPUs, so wait generously.
const BOOT: Duration = Duration::from_secs(120);

/// One Bochs at a time: each opens the headless rfb display, and two
/// starting together can collide on it (seen as a Bochs that ends before
/// printing anything).
static ONE_BOCHS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_BOCHS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bochs started on the run directory `name` (bochsrc, cont.rc, mica.iso)
/// that xtask wrote under `MICA_BOCHS_X86_64`, COM1 on its stdout.
fn bochs(name: &str) -> Session {
    let root = std::env::var("MICA_BOCHS_X86_64").expect(
        "MICA_BOCHS_X86_64 names the Bochs run directories: run these tests with `cargo xtask test`",
    );
    let dir = PathBuf::from(root).join(name);
    assert!(dir.join("bochsrc").is_file(), "no bochsrc in {dir:?}");
    let mut command = Command::new("bochs-bin");
    command
        .args(["-q", "-f", "bochsrc", "-rc", "cont.rc"])
        .current_dir(&dir);
    Session::spawn(command).unwrap()
}

#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn services_start_in_ring_3_under_vmx() {
    let _only = one_at_a_time();
    let mut s = bochs("services");
    s.expect("mica: booting on x86_64", BOOT).unwrap();
    s.expect("mica: virtualization: VMX", BOOT).unwrap();
    // Bochs' Skylake-X has RDSEED and RDRAND: generation IDs are random.
    s.expect("mica: entropy: RDSEED (RDRAND when it runs dry)", BOOT)
        .unwrap();
    s.expect("mica: boot complete, starting tasks", BOOT)
        .unwrap();
    s.expect("init: started; supervising the services", BOOT)
        .unwrap();
    s.expect("ioreq: serving ioreq", BOOT).unwrap();
    s.expect("devices: serving devices", BOOT).unwrap();
    s.expect("vm-manager: scenario", BOOT).unwrap();
    // The first VM call switches VMX on (feature control, fixed CR0/CR4
    // bits, VMXON region); the guests run in VMX non-root operation and
    // print through the devices task's COM1 (every IN/OUT an I/O exit).
    s.expect("mica: vmx: VMXON done (VMCS revision", BOOT)
        .unwrap();
    s.expect("vm0 | hello from vm0", BOOT).unwrap();
    s.expect("vm0 | vm0: tick", BOOT).unwrap();
    assert!(
        s.transcript().iter().any(|l| l == "vm1 | hello from vm1"),
        "{:?}",
        s.transcript()
    );
    // Dropping the session stops Bochs: the services serve forever.
}

/// Under VMX as under SVM: a store outside RAM is an EPT violation that
/// stops the VM with the same report line, vm0 runs on, and the
/// power-off guest's VMCALL powers its VM off.
#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn under_vmx_a_wild_store_stops_its_vm_and_vmcall_powers_off() {
    let _only = one_at_a_time();
    let mut s = bochs("misbehave");
    s.expect("vm-manager: scenario x86-misbehave", BOOT)
        .unwrap();
    // The guest owns its syscall, SYSENTER and FS/GS MSRs (the VMCS and
    // the MSR areas switch them); other MSRs give it #GP.
    mica_tests::expect_x86_guest_msr_lines(&mut s, BOOT).unwrap();
    let stop = s.expect("mica: vm1 stopped:", BOOT).unwrap();
    assert_eq!(
        stop,
        "mica: vm1 stopped: store guest-page fault at 0x28000000"
    );
    s.expect("vm0 | vm0: tick", BOOT).unwrap();
    let lines = s.transcript();
    let bye = lines.iter().position(|l| l == "vm2 | poweroff: bye");
    let off = lines.iter().position(|l| l == "mica: vm2 powered off");
    assert!(
        matches!((bye, off), (Some(b), Some(o)) if b < o),
        "vm2 must print, then be powered off by its VMCALL: {lines:?}"
    );
}

/// Under VMX as under SVM: the hostile guest's every phase is answered
/// (no write reaches Bochs' own shutdown port; RDPMC is #GP(0) where
/// Bochs' own RDPMC would return a value, and CPUID leaf 0xA, which
/// Bochs' Skylake-X fills, reports no PMU), and vm0 keeps ticking on
/// time beside it, at a rate not far below its rate alone.
#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn under_vmx_a_hostile_guest_is_answered_and_its_neighbour_keeps_its_pace() {
    let _only = one_at_a_time();
    let mut s = bochs("hostile");
    let phases = mica_tests::hostile::expect_phases(
        &mut s,
        &[
            "ports",
            "privileged",
            "cpuid",
            "cr4",
            "pmu",
            "hypercall",
            "hlt storm",
        ],
        BOOT,
    )
    .unwrap();
    let (alone, beside) =
        mica_tests::hostile::expect_steady_progress(&mut s, &phases, 4.0, 5, BOOT).unwrap();
    println!(
        "steady (VMX): {alone} spins per tick alone, {beside} beside the spinning VM ({:.2})",
        beside as f64 / alone as f64
    );
}

/// Under VMX, on Bochs' one CPU, the four vCPUs of the `x86-smp` guest
/// share CPU 0: vCPU 0 starts the others by hypercall, and the IPIs it
/// sends them are injected at VM entry once each has interrupts on (each
/// waits in `sti; hlt`, which the IPI ends).
#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn under_vmx_an_smp_guest_starts_its_vcpus_and_each_takes_its_ipi() {
    let _only = one_at_a_time();
    let mut s = bochs("smp");
    mica_tests::expect_x86_smp_guest_ipis(&mut s, BOOT).unwrap();
    let troubles = mica_tests::x86_smp_guest_troubles(&s);
    assert!(troubles.is_empty(), "{troubles:?}");
    // Dropping the session stops Bochs: the guest runs forever.
}

#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn a_boot_without_a_boot_image_shuts_down_with_status_0() {
    let _only = one_at_a_time();
    let mut s = bochs("no-image");
    s.expect("mica: virtualization: VMX", BOOT).unwrap();
    // Bochs emulates one CPU (SMP needs a Bochs built for it): its MADT
    // lists the boot CPU alone.
    let cpus = s.expect("mica: cpus:", BOOT).unwrap();
    assert_eq!(
        cpus,
        "mica: cpus: 1 CPU online (CPU 0 runs the services and the vCPUs)"
    );
    s.expect("mica: no boot image", BOOT).unwrap();
    s.expect("mica: boot complete, shutting down", BOOT)
        .unwrap();
    assert_eq!(s.wait_exit(BOOT).unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs Bochs and the GRUB ISOs: run by `cargo xtask test`"]
fn an_invalid_opcode_fails_the_boot_with_a_non_zero_status() {
    let _only = one_at_a_time();
    let mut s = bochs("ud2");
    s.expect("mica: virtualization: VMX", BOOT).unwrap();
    s.expect("mica: test hook mica.test=ud2", BOOT).unwrap();
    let line = s.expect("mica: fatal:", BOOT).unwrap();
    assert!(
        line.starts_with("mica: fatal: invalid opcode (#UD) at rip 0x1"),
        "{line}"
    );
    let status = s.wait_exit(BOOT).unwrap();
    assert!(
        status.code().is_some_and(|code| code != 0),
        "Bochs must fail the boot: {status}"
    );
}
