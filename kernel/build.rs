//! Links the kernel binary with the per-architecture linker script, only when
//! building for bare metal (host builds run the generic unit tests), and
//! stages the user task ELFs that `userland.rs` embeds: xtask names them in
//! `MICA_TASK_INIT`, `MICA_TASK_HELLO` and `MICA_TASK_CRASHER`; without
//! them the images are empty and the kernel boots without tasks.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    embed_tasks();
    if arch == "riscv64" && os == "none" {
        let script = format!("{dir}/src/arch/riscv64/linker.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
}

/// Copies each task ELF named by its env var to `OUT_DIR/<name>.elf` (an
/// empty file when the variable is unset).
fn embed_tasks() {
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    for (var, name) in [
        ("MICA_TASK_INIT", "init"),
        ("MICA_TASK_HELLO", "hello"),
        ("MICA_TASK_CRASHER", "crasher"),
    ] {
        println!("cargo:rerun-if-env-changed={var}");
        let bytes = match std::env::var(var) {
            Ok(path) => {
                println!("cargo:rerun-if-changed={path}");
                std::fs::read(&path).unwrap_or_else(|e| panic!("{var}={path}: {e}"))
            }
            Err(_) => Vec::new(),
        };
        let target = format!("{out}/{name}.elf");
        std::fs::write(&target, bytes).unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}
