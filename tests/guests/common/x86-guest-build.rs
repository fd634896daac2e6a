//! The build script of every x86 test guest (each names it with
//! `build = "../common/x86-guest-build.rs"`): links the guest at 1 MiB
//! with the shared x86 guest linker script, only when building for
//! bare-metal x86_64.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed={dir}/../common/x86-guest-build.rs");
    if arch == "x86_64" && os == "none" {
        let script = format!("{dir}/../common/x86-guest.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
