//! The build script of every RISC-V test guest (each names it with
//! `build = "../common/guest-build.rs"`): links the guest at 0x8020_0000
//! with the shared guest linker script, only when building for bare-metal
//! RISC-V.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed={dir}/../common/guest-build.rs");
    if arch == "riscv64" && os == "none" {
        let script = format!("{dir}/../common/guest.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
}
