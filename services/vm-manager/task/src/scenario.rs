//! The build-time scenario: the static VMs of the scenario file xtask chose
//! (`configs/<name>.toml`), compiled in by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/scenario.rs"));
