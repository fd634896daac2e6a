//! Links the task with the user linker script (`user/rt/link.ld`) when
//! building for bare metal, and refuses an unknown `MICA_SCENARIO`.

/// The scenarios `src/scenario.rs` defines.
const SCENARIOS: [&str; 3] = ["default", "misbehave", "bench"];

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MICA_SCENARIO");
    if let Ok(name) = std::env::var("MICA_SCENARIO")
        && !SCENARIOS.contains(&name.as_str())
    {
        panic!("MICA_SCENARIO={name:?} is not a scenario; use one of {SCENARIOS:?}");
    }
    if arch == "riscv64" && os == "none" {
        let script = format!("{dir}/../../../user/rt/link.ld");
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
}
