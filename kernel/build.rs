//! Links the kernel binary with the per-architecture linker script, only when
//! building for bare metal (host builds run the generic unit tests). The
//! service tasks and guests are not built in: they come in the boot image
//! (the initrd) that xtask packs.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    if arch == "riscv64" && os == "none" {
        let script = format!("{dir}/src/arch/riscv64/linker.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
    if arch == "x86_64" && os == "none" {
        let script = format!("{dir}/src/arch/x86_64/linker.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        // The target links position-independent by default; Mica runs where
        // it is linked (1 MiB, identity-mapped) and has no relocator.
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
