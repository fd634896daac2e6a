//! Links the task with the user linker script (`user/rt/link.ld`) when
//! building for bare metal (RISC-V or x86_64).

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    if arch == "riscv64" && os == "none" {
        let script = format!("{dir}/../rt/link.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
    if arch == "x86_64" && os == "none" {
        let script = format!("{dir}/../rt/link.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        // Linked where it runs (ipc::syscall::IMAGE_BASE), no relocator.
        println!("cargo:rustc-link-arg-bins=--defsym=MICA_IMAGE_BASE=0x8000010000");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
