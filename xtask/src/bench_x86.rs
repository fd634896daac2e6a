//! `cargo xtask bench --arch x86_64`: boots the `x86-bench` scenario on
//! QEMU (SVM, `-icount shift=0,sleep=off`) and on Bochs (VMX, fixed `ips`
//! and `time0`, `clock: sync=none`), where the guest's TSC counts retired
//! instructions, and writes the cycles per null hypercall, per COM1 LSR
//! read round trip and per (posted) THR write of each backend to
//! `target/bench/x86_64.json`.

use mica_tests::Session;

use crate::bench::{collect, write_json};
use crate::bochs::{self, Boot, Serial};
use crate::cmd::workspace_root;
use crate::{install, x86, x86_image};

/// The figures the x86 benchmark guest prints, in its order.
const KEYS: [&str; 3] = [
    "null_hypercall",
    "pio_uart_roundtrip",
    "pio_uart_posted_write",
];
/// The JSON keys: the guest's per backend, SVM first.
const JSON_KEYS: [&str; 6] = [
    "svm_null_hypercall",
    "svm_pio_uart_roundtrip",
    "svm_pio_uart_posted_write",
    "vmx_null_hypercall",
    "vmx_pio_uart_roundtrip",
    "vmx_pio_uart_posted_write",
];

/// Builds the kernel and the `x86-bench` boot image, measures on both
/// backends and writes the JSON file.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`xtask bench --arch x86_64` does not know the option `{arg}`"
        ));
    }
    install::rust_targets()?;
    install::qemu()?;
    install::bochs()?;
    let kernel = x86::build_kernel()?;
    let image = x86_image::build_boot_image("x86-bench")?;

    let mut qemu = x86::qemu_command(&kernel, x86::SVM_CPU);
    qemu.args(["-icount", "shift=0,sleep=off", "-initrd"])
        .arg(&image);
    println!("bench: QEMU (SVM)");
    let svm = collect(&mut Session::spawn(qemu)?, &KEYS, "instructions")?;

    let dir = workspace_root()
        .join("target")
        .join("mica")
        .join("x86_64")
        .join("bochs-bench");
    let boot = Boot {
        kernel: &kernel,
        module: Some(&image),
        cmdline: "",
    };
    bochs::prepare(&dir, &boot, Serial::Stdout)?;
    println!("bench: Bochs (VMX)");
    let vmx = collect(
        &mut Session::spawn(bochs::command(&dir))?,
        &KEYS,
        "instructions",
    )?;

    let figures: Vec<(&str, u64)> = JSON_KEYS
        .iter()
        .zip(svm.iter().chain(vmx.iter()))
        .map(|(&key, &(_, value))| (key, value))
        .collect();
    let out = workspace_root()
        .join("target")
        .join("bench")
        .join("x86_64.json");
    write_json(&out, &figures)
}
