//! Mica's one entry point for building, running, testing and benchmarking:
//! `cargo xtask qemu | test | bench`.
//!
//! Layer: tool (`cargo xtask check-layers`): it may depend on any crate; no
//! crate but another tool depends on it.

mod artifacts;
mod bench;
mod bench_disk;
mod bench_harts;
mod bench_linux;
mod bench_report;
mod bench_run;
mod bench_trace;
mod bench_x86;
mod bochs;
mod cmd;
mod cpio;
mod fuzz;
mod guests;
mod image;
mod initramfs;
mod install;
mod kernel_lines;
mod layers;
mod mgmt_socket;
mod options;
mod qemu;
mod soak;
mod test;
mod x86;
mod x86_image;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  qemu     build Mica and boot a scenario on QEMU
           [--scenario NAME]  configs/NAME.toml (default: default)
           [--guest NAME=PATH[,mem=MiB][,vcpus=N][,disk=FILE]]  boot your raw
             image as VM NAME (vcpus 1-8)
           [--arch riscv64|x86_64]  x86_64: QEMU pc with SVM (default: riscv64)
           [--emulator qemu|bochs]  x86_64 only: bochs boots it with VMX
           [--mgmt SOCKET | --no-mgmt]  riscv64: the management socket for
             the mica CLI (default: $MICA_SOCKET, else
             $XDG_RUNTIME_DIR/mica/mgmt.sock, else ~/.cache/mica/mgmt.sock)
  guests   fetch Debian's riscv64 Linux kernel and busybox into target/guests/
           and pack the busybox initramfs (cached: a second run downloads nothing)
  test     fmt check, layer check (check-layers), clippy -D warnings, host
           unit tests, QEMU tests
  bench    exact instruction counts and guest time of the guest I/O paths (QEMU
           -icount), the UART round trip's stages (from a QEMU exec trace),
           64 KiB of UART output and linux_boot (Debian's Linux to its /init),
           each without and under Mica
           [--arch riscv64|x86_64]  x86_64: SVM on QEMU and VMX on Bochs
           [--guest-only]  riscv64: only the bench guest's figures (no Linux
             boot, no disk)
  soak     VMs created, started and destroyed from the shell while the ioreq
           and device services are killed every 500 ms; every frame must
           come back (`cargo xtask test` runs 150 cycles)
           [--cycles N]  (default 1000)
  fuzz     run each cargo-fuzz target (nightly Rust, installed if missing) and
           print its executions and crashes
           [--target NAME]...  only these targets (default: all)
           [--seconds N]  per target (default: 60)
  check-layers  fail when a crate depends on one its layer must not
           (the rules: xtask/src/layers.rs)
  kernel-lines  the kernel's lines without tests (non-blank, non-comment),
           split into generic, riscv64 and x86_64
  help     this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "qemu" => qemu::run(rest),
        "guests" => guests::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "soak" => soak::run(rest),
        "fuzz" => fuzz::run_command(rest),
        "kernel-lines" => kernel_lines::run(rest),
        "check-layers" => layers::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
