//! `cargo xtask test`: everything CI checks, in the order a failure is
//! cheapest to find, ending with one summary line.

use std::io::{BufRead, BufReader};
use std::ops::AddAssign;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cmd::{self, cargo, describe};
use crate::{artifacts, bochs, guests, install, qemu, x86};

/// Bare-metal packages, linted for RISC-V in one clippy run with the
/// [`artifacts::SERVICE_TASKS`] (they are not default members, so the host
/// clippy run does not see them).
const RISCV_PACKAGES: &[&str] = &[
    "mica-kernel",
    "mica-guest-common",
    "mica-guest-hello",
    "mica-guest-misbehave",
    "mica-guest-bench",
    "mica-guest-genid",
    "mica-guest-traps",
    "mica-guest-hostile",
    "mica-rt",
    "mica-vm-manager",
];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`xtask test` takes no arguments (got `{arg}`)"));
    }
    install::rust_targets()?;
    cmd::run(
        cargo().args(["fmt", "--all", "--", "--check"]),
        "format check",
    )?;
    println!("xtask: layer check");
    crate::layers::check()?;
    cmd::run(
        cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]),
        "clippy (host crates)",
    )?;
    let mut riscv_clippy = cargo();
    riscv_clippy.arg("clippy");
    for package in RISCV_PACKAGES.iter().chain(artifacts::SERVICE_TASKS) {
        riscv_clippy.args(["-p", package]);
    }
    riscv_clippy.args(["--target", artifacts::RISCV_TARGET, "--", "-D", "warnings"]);
    cmd::run(&mut riscv_clippy, "clippy (bare-metal RISC-V crates)")?;
    cmd::run(
        cargo()
            .args(["clippy", "-p", "mica-kernel", "--target", x86::X86_TARGET])
            .args([
                "-p",
                "mica-guest-x86-hello",
                "-p",
                "mica-guest-x86-misbehave",
                "-p",
                "mica-guest-x86-poweroff",
                "-p",
                "mica-guest-x86-bench",
                "-p",
                "mica-guest-x86-hostile",
                "-p",
                "mica-guest-x86-smp",
            ])
            .args(["--", "-D", "warnings"]),
        "clippy (x86_64 kernel and guests)",
    )?;
    let mut counts = counted(cargo().arg("test"), "host unit tests")?;
    install::qemu()?;
    let kernel = qemu::build_kernel()?;
    // The hello VMs: no download, quick to boot (the default scenario
    // boots Linux; the Linux tests below use it).
    let default_image = qemu::build_boot_image("hello", false)?;
    let crasher_image = qemu::build_boot_image("hello", true)?;
    let misbehave_image = qemu::build_boot_image("misbehave", false)?;
    counts += qemu_tests(
        "riscv64_boot",
        &[
            ("MICA_KERNEL_RISCV64", &kernel),
            ("MICA_BOOT_IMAGE_RISCV64", &default_image),
            ("MICA_BOOT_IMAGE_RISCV64_CRASHER", &crasher_image),
            ("MICA_BOOT_IMAGE_RISCV64_MISBEHAVE", &misbehave_image),
        ],
        "QEMU tests (riscv64)",
    )?;
    for (binary, what) in [
        ("riscv64_shell", "QEMU tests (riscv64 shell)"),
        (
            "riscv64_console",
            "QEMU tests (riscv64 shell console and disks)",
        ),
        ("riscv64_genid", "QEMU tests (riscv64 generation ID)"),
    ] {
        let env = [
            ("MICA_KERNEL_RISCV64", kernel.as_path()),
            ("MICA_BOOT_IMAGE_RISCV64", &default_image),
        ];
        counts += qemu_tests(binary, &env, what)?;
    }
    // Each of these boots scenarios of its own, built just before its
    // tests run.
    for (binary, images, what) in [
        (
            "riscv64_traps",
            &[("MICA_BOOT_IMAGE_RISCV64_TRAPS", "traps")][..],
            "QEMU tests (riscv64 guest traps and FP state)",
        ),
        (
            "riscv64_ended",
            &[("MICA_BOOT_IMAGE_RISCV64_ENDER", "ender")][..],
            "QEMU tests (riscv64 guests that end, and why)",
        ),
        (
            "riscv64_hostile",
            &[("MICA_BOOT_IMAGE_RISCV64_HOSTILE", "hostile")][..],
            "QEMU tests (riscv64 hostile guest beside a steady one)",
        ),
        (
            "riscv64_bench",
            &[
                ("MICA_BOOT_IMAGE_RISCV64_BENCH", "bench"),
                // The bench VM again, beside two busy VMs.
                ("MICA_BOOT_IMAGE_RISCV64_BENCH_BUSY", "bench-busy"),
            ][..],
            "QEMU tests (riscv64 I/O round trips without idle waits, alone and beside busy VMs)",
        ),
    ] {
        let mut env = vec![("MICA_KERNEL_RISCV64", kernel.clone())];
        for &(var, scenario) in images {
            env.push((var, qemu::build_boot_image(scenario, false)?));
        }
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        counts += qemu_tests(binary, &env, what)?;
    }
    counts += linux_tests(&kernel)?;
    cmd::run(
        cargo().args(["build", "-p", "mica-cli"]),
        "build the mica CLI",
    )?;
    let cli = cmd::workspace_root()
        .join("target")
        .join("debug")
        .join("mica");
    counts += qemu_tests(
        "riscv64_mgmt",
        &[
            ("MICA_KERNEL_RISCV64", &kernel),
            ("MICA_BOOT_IMAGE_RISCV64", &default_image),
            (
                "MICA_BOOT_IMAGE_RISCV64_LINUX",
                &qemu::build_boot_image("default", false)?,
            ),
            ("MICA_CLI", &cli),
        ],
        "QEMU tests (riscv64 management channel)",
    )?;
    let x86_image = x86::build_kernel()?;
    let x86_boot_image = crate::x86_image::build_boot_image("x86-default")?;
    let x86_misbehave_image = crate::x86_image::build_boot_image("x86-misbehave")?;
    let x86_hostile_image = crate::x86_image::build_boot_image("x86-hostile")?;
    let x86_smp_image = crate::x86_image::build_boot_image("x86-smp")?;
    let x86_bench_image = crate::x86_image::build_boot_image("x86-bench")?;
    let x86_busy_image = crate::x86_image::build_boot_image("x86-bench-busy")?;
    counts += qemu_tests(
        "x86_64_boot",
        &[
            ("MICA_KERNEL_X86_64", &x86_image),
            ("MICA_BOOT_IMAGE_X86_64", &x86_boot_image),
            ("MICA_BOOT_IMAGE_X86_64_MISBEHAVE", &x86_misbehave_image),
            ("MICA_BOOT_IMAGE_X86_64_HOSTILE", &x86_hostile_image),
            ("MICA_BOOT_IMAGE_X86_64_SMP", &x86_smp_image),
            ("MICA_BOOT_IMAGE_X86_64_BENCH", &x86_bench_image),
            ("MICA_BOOT_IMAGE_X86_64_BENCH_BUSY", &x86_busy_image),
        ],
        "QEMU tests (x86_64)",
    )?;
    let bochs_tests = bochs::prepare_tests(
        &x86_image,
        &bochs::TestImages {
            default: &x86_boot_image,
            misbehave: &x86_misbehave_image,
            hostile: &x86_hostile_image,
            smp: &x86_smp_image,
        },
    )?;
    counts += qemu_tests(
        "x86_64_bochs",
        &[("MICA_BOCHS_X86_64", &bochs_tests)],
        "Bochs tests (x86_64, VMX)",
    )?;
    println!(
        "xtask test: {} passed, {} failed",
        counts.passed, counts.failed
    );
    if counts.failed > 0 || counts.passed == 0 {
        return Err("tests failed or none ran".into());
    }
    Ok(())
}

/// The Linux QEMU tests (`riscv64_linux`): fetches Debian's kernel and
/// busybox (`cargo xtask guests`), boots them without Mica, then builds the
/// `linux` and `linux-two` boot images and runs the tests under Mica.
/// Until the vm-manager's scenario files take `kernel`, `initrd` and
/// `cmdline`, says so in one line and runs only the native test.
fn linux_tests(kernel: &Path) -> Result<Counts, String> {
    let guest = guests::fetch()?;
    // The disk tests make and read ext4 images on the host.
    install::e2fsprogs()?;
    let file = cmd::workspace_root().join("configs").join("default.toml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut test = ignored_tests("riscv64_linux");
    // One Linux boot at a time: each keeps both QEMU harts busy.
    test.args(["--test-threads", "1"])
        .env("MICA_KERNEL_RISCV64", kernel)
        .env("MICA_LINUX_KERNEL", &guest.kernel)
        .env("MICA_LINUX_INITRAMFS", &guest.initramfs);
    vm_manager::scenario_file::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    test.env(
        "MICA_BOOT_IMAGE_RISCV64_LINUX",
        qemu::build_boot_image("default", false)?,
    )
    .env(
        "MICA_BOOT_IMAGE_RISCV64_LINUX_TWO",
        qemu::build_boot_image("linux-two", false)?,
    )
    .env(
        "MICA_BOOT_IMAGE_RISCV64_LINUX_SMP",
        qemu::build_boot_image("linux-smp", false)?,
    )
    .env(
        "MICA_BOOT_IMAGE_RISCV64_LINUX_DISK",
        qemu::build_boot_image("linux-disk", false)?,
    );
    counted(&mut test, "QEMU tests (riscv64 Linux)")
}

/// `cargo test` of one test binary of mica-tests (`tests/`), running its
/// ignored tests: those that boot QEMU or Bochs, which a plain `cargo test`
/// leaves out.
fn ignored_tests(binary: &str) -> Command {
    let mut test = cargo();
    test.args(["test", "-p", "mica-tests", "--test", binary])
        .args(["--", "--ignored"]);
    test
}

/// Runs the ignored tests of `binary` (see [`ignored_tests`]) with the
/// kernel and boot images its tests read from `env`, and counts them.
fn qemu_tests(binary: &str, env: &[(&str, &Path)], what: &str) -> Result<Counts, String> {
    let mut test = ignored_tests(binary);
    test.envs(env.iter().copied());
    counted(&mut test, what)
}

/// Totals over every `test result:` line of a cargo test run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, more: Counts) {
        self.passed += more.passed;
        self.failed += more.failed;
    }
}

/// Runs a cargo test command, passing its output through and adding up the
/// per-binary results.
fn counted(command: &mut Command, what: &str) -> Result<Counts, String> {
    println!("xtask: {what}: {}", describe(command));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let mut counts = Counts::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("{what}: reading output: {e}"))?;
            println!("{line}");
            if let Some(result) = parse_result(&line) {
                counts.passed += result.passed;
                counts.failed += result.failed;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() && counts.failed == 0 {
        return Err(format!("{what} failed ({status})"));
    }
    Ok(counts)
}

/// Parses libtest's `test result: ok. 3 passed; 0 failed; ...` line.
fn parse_result(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let number_before = |word: &str| -> Option<u64> {
        rest.split(';')
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|n| n.trim().rsplit(' ').next())
            .and_then(|n| n.parse().ok())
    };
    Some(Counts {
        passed: number_before("passed")?,
        failed: number_before("failed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{Counts, ignored_tests, parse_result};

    #[test]
    fn parses_a_passing_result_line() {
        let line = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.70s";
        assert_eq!(
            parse_result(line),
            Some(Counts {
                passed: 12,
                failed: 0
            })
        );
    }

    #[test]
    fn parses_a_failing_result_line() {
        let line = "test result: FAILED. 3 passed; 2 failed; 0 ignored";
        assert_eq!(
            parse_result(line),
            Some(Counts {
                passed: 3,
                failed: 2
            })
        );
    }

    #[test]
    fn a_qemu_test_run_takes_the_ignored_tests_of_one_binary() {
        let test = ignored_tests("riscv64_shell");
        let args: Vec<_> = test.get_args().collect();
        assert_eq!(
            args,
            [
                "test",
                "-p",
                "mica-tests",
                "--test",
                "riscv64_shell",
                "--",
                "--ignored"
            ]
        );
    }

    #[test]
    fn counts_of_several_runs_add_up() {
        let mut counts = Counts {
            passed: 3,
            failed: 0,
        };
        counts += Counts {
            passed: 4,
            failed: 2,
        };
        assert_eq!(
            counts,
            Counts {
                passed: 7,
                failed: 2
            }
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_result("running 3 tests"), None);
        assert_eq!(parse_result("test foo ... ok"), None);
    }
}
