//! Links the task with the user linker script (`user/rt/link.ld`) when
//! building for bare metal, and compiles the scenario file named by
//! `MICA_SCENARIO_FILE` (default `configs/default.toml`) into the task's
//! static VM table, refusing a malformed file with its line and reason.

use std::path::PathBuf;

use vm_manager::scenario_file;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=MICA_SCENARIO_FILE");
    let file = std::env::var_os("MICA_SCENARIO_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("../../../configs/default.toml"));
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read scenario {}: {e}", file.display()));
    let vms =
        scenario_file::parse(&text).unwrap_or_else(|e| panic!("scenario {}: {e}", file.display()));
    let name = file
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy());
    let source = format!(
        "pub const NAME: &str = {name:?};\n{}",
        scenario_file::to_rust(&vms)
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("scenario.rs");
    std::fs::write(&out, source).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    mica_task_build::link_task();
}
