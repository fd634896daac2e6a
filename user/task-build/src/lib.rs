//! The build-script half of every Mica task crate: call [`link_task`] from
//! the task's `build.rs` to link its binary with the user linker script
//! (`user/rt/link.ld`) when it is built for bare metal.
//!
//! Layer: runtime (`cargo xtask check-layers`): a build-script helper that
//! depends on no other workspace crate.

/// Where x86_64 task images are linked and run (`ipc::syscall::IMAGE_BASE`
/// on bare-metal x86_64: user space starts at 512 GiB there, above the
/// kernel's identity map). The build script runs on the host, where that
/// constant has its host value, so it is repeated here.
const X86_64_IMAGE_BASE: u64 = 0x80_0001_0000;

/// Emits the link arguments for the task being built (RISC-V or x86_64
/// bare metal); does nothing for host builds.
pub fn link_task() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../rt/link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if os != "none" {
        return;
    }
    if arch == "riscv64" || arch == "x86_64" {
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
    if arch == "x86_64" {
        // Linked where it runs, with no relocator.
        println!("cargo:rustc-link-arg-bins=--defsym=MICA_IMAGE_BASE={X86_64_IMAGE_BASE:#x}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
