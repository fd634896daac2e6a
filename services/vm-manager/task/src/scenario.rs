//! The build-time scenarios: which static VMs exist and which start at boot.
//! xtask picks one with the `MICA_SCENARIO` environment variable when it
//! builds this task (`build.rs` refuses an unknown name).

use vm_manager::{StaticVmConfig, VmFlags};

const PRE_LAUNCHED: VmFlags = VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED);

/// A static, pre-launched VM of 64 MiB and one vCPU booting `image`.
const fn vm(name: &'static str, image: &'static str) -> StaticVmConfig {
    StaticVmConfig {
        name,
        image,
        mem_mib: 64,
        vcpus: 1,
        flags: PRE_LAUNCHED,
    }
}

/// `default`: two VMs printing through the 16550 model.
const DEFAULT: &[StaticVmConfig] = &[vm("vm0", "hello"), vm("vm1", "hello")];
/// `misbehave`: `vm1` writes outside its RAM and jumps wild; `vm0` must go on.
const MISBEHAVE: &[StaticVmConfig] = &[vm("vm0", "hello"), vm("vm1", "misbehave")];
/// `bench`: one VM running the instruction-count benchmark.
const BENCH: &[StaticVmConfig] = &[vm("vm0", "bench")];

/// The scenario's name, as xtask set it at build time.
pub const NAME: &str = match option_env!("MICA_SCENARIO") {
    Some(name) => name,
    None => "default",
};

/// The static VMs of the scenario this task was built with.
pub fn configs() -> &'static [StaticVmConfig] {
    match NAME.as_bytes() {
        b"misbehave" => MISBEHAVE,
        b"bench" => BENCH,
        _ => DEFAULT,
    }
}
