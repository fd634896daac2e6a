//! Boots the RISC-V kernel on QEMU virt and checks what a user sees: the boot
//! lines and a clean exit, and a clear line plus a non-zero exit when the
//! machine cannot run Mica. Run by `cargo xtask test`, which builds the
//! kernel and installs QEMU first.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;
use std::time::Duration;

use mica_tests::Session;

const BOOT: Duration = Duration::from_secs(30);

/// QEMU virt with OpenSBI booting the kernel and boot image xtask built.
fn qemu(extra: &[&str]) -> Session {
    let image = std::env::var("MICA_BOOT_IMAGE_RISCV64").expect(
        "MICA_BOOT_IMAGE_RISCV64 names the boot image: run these tests with `cargo xtask test`",
    );
    qemu_with_initrd(&image, extra)
}

/// QEMU virt booting the kernel xtask built with `initrd` as its boot image.
fn qemu_with_initrd(initrd: &str, extra: &[&str]) -> Session {
    let kernel = std::env::var("MICA_KERNEL_RISCV64").expect(
        "MICA_KERNEL_RISCV64 names the kernel ELF: run these tests with `cargo xtask test`",
    );
    let mut command = Command::new("qemu-system-riscv64");
    command
        .args([
            "-machine",
            "virt",
            "-nographic",
            "-bios",
            "default",
            "-kernel",
            &kernel,
            "-initrd",
            initrd,
        ])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(extra);
    Session::spawn(command).unwrap()
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn boots_and_shuts_down_cleanly() {
    let mut s = qemu(&["-m", "256M", "-smp", "2"]);
    s.expect("mica: booting on riscv64 (2 harts, 256 MiB)", BOOT)
        .unwrap();
    s.expect("mica: paging: Sv39 on", BOOT).unwrap();
    s.expect("mica: timer:", BOOT).unwrap();
    s.expect("mica: boot complete", BOOT).unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn without_the_h_extension_it_says_so_and_fails() {
    let mut s = qemu(&["-m", "256M", "-cpu", "rv64,h=false"]);
    s.expect("mica: RISC-V H extension not available", BOOT)
        .unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "must exit non-zero: {:?}",
        s.transcript()
    );
    assert!(
        !s.transcript()
            .iter()
            .any(|line| line.contains("boot complete")),
        "must stop before booting on: {:?}",
        s.transcript()
    );
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn with_too_little_memory_it_says_so_and_fails() {
    let mut s = qemu(&["-m", "32M"]);
    s.expect("mica: not enough memory", BOOT).unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "must exit non-zero: {:?}",
        s.transcript()
    );
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn init_calls_the_vm_manager_service_over_ipc() {
    let mut s = qemu(&["-m", "256M", "-smp", "2"]);
    s.expect("mica: boot complete, starting tasks", BOOT)
        .unwrap();
    s.expect("init: started", BOOT).unwrap();
    s.expect(
        "hello: serving the vm-manager protocol (not yet wired to VM objects)",
        BOOT,
    )
    .unwrap();
    s.expect("init: vm-manager answered List: 0 VMs, next None", BOOT)
        .unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_faulting_task_is_killed_reported_and_restarted_once_by_init() {
    let mut s = qemu(&["-m", "256M", "-smp", "2"]);
    s.expect("crasher: overflowing my stack", BOOT).unwrap();
    // It writes below the stack it was granted.
    let report = s
        .expect(
            "mica: task 2 (crasher) killed: store page fault at 0x3ffe",
            BOOT,
        )
        .unwrap();
    assert!(report.starts_with("mica: task 2"), "{report}");
    s.expect("init: task 2 died; restarted it as task 2", BOOT)
        .unwrap();
    s.expect("crasher: restarted 1 time(s); exiting cleanly", BOOT)
        .unwrap();
    s.expect("mica: task 2 (crasher) exited with code 0", BOOT)
        .unwrap();
    s.expect("mica: task 0 (init) exited with code 0", BOOT)
        .unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
    assert!(
        !s.transcript().iter().any(|l| l.contains("fatal")),
        "the kernel must go on after a task faults: {:?}",
        s.transcript()
    );
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn boot_self_test_guests_print_power_off_and_a_wild_store_is_stopped() {
    let mut s = qemu(&["-m", "256M", "-smp", "2"]);
    s.expect("vm0 | hello from vm0", BOOT).unwrap();
    s.expect("vm0 | mmio read of the UART status ok", BOOT)
        .unwrap();
    s.expect("mica: vm0 powered off", BOOT).unwrap();
    s.expect(
        "mica: vm1 stopped: store guest-page fault at 0x40000000",
        BOOT,
    )
    .unwrap();
    s.expect("mica: boot complete", BOOT).unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", s.transcript());
}

#[test]
#[ignore = "needs QEMU and the built kernel: run by `cargo xtask test`"]
fn a_malformed_boot_image_is_refused_with_a_clear_line() {
    let junk = std::env::temp_dir().join(format!("mica-junk-initrd-{}", std::process::id()));
    std::fs::write(
        &junk,
        b"this is not a Mica boot image, just some bytes\n".repeat(20),
    )
    .unwrap();
    let mut s = qemu_with_initrd(junk.to_str().unwrap(), &["-m", "256M"]);
    s.expect("mica: boot image: not a Mica boot image (bad magic)", BOOT)
        .unwrap();
    let status = s.wait_exit(BOOT).unwrap();
    std::fs::remove_file(&junk).unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "must exit non-zero: {:?}",
        s.transcript()
    );
    assert!(
        !s.transcript().iter().any(|l| l.contains("starting tasks")),
        "no task may start from a malformed image: {:?}",
        s.transcript()
    );
}
