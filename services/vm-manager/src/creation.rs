//! Building a VM's resources step by step through the [`Platform`], and
//! taking them apart again: a failed step undoes every earlier step in
//! reverse order, so a failed creation leaves nothing behind.

use ipc::VmId;

use crate::config::VmConfig;
use crate::genid::GenerationId;
use crate::platform::Platform;

/// What a new VM's RAM is filled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Its configured image.
    Image,
    /// A copy of this (paused) VM's RAM.
    CloneOf(VmId),
}

/// One step of a creation, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `create_address_space`; undone by `free_address_space`.
    AddressSpace,
    /// `load_image` or `clone_memory`; freed with the address space.
    Contents,
    /// `create_vcpus`; undone by `destroy_vcpus`.
    Vcpus,
    /// `register_ioreq`; undone by `unregister_ioreq`.
    Ioreq,
    /// `register_devices`; undone by `unregister_devices`.
    Devices,
    /// `set_generation_id`; goes with the devices.
    GenerationId,
}

impl Step {
    /// Every step, in execution order.
    pub const ALL: [Step; 6] = [
        Step::AddressSpace,
        Step::Contents,
        Step::Vcpus,
        Step::Ioreq,
        Step::Devices,
        Step::GenerationId,
    ];
}

/// Runs one step.
fn run<P: Platform + ?Sized>(
    platform: &mut P,
    step: Step,
    vm: VmId,
    config: &VmConfig,
    contents: Contents,
    generation_id: GenerationId,
) -> Result<(), ipc::Error> {
    match step {
        Step::AddressSpace => platform.create_address_space(vm, config.mem_mib),
        Step::Contents => match contents {
            Contents::Image => platform.load_image(vm, &config.image, config.linux.as_ref()),
            Contents::CloneOf(source) => platform.clone_memory(source, vm),
        },
        Step::Vcpus => platform.create_vcpus(vm, config.vcpus),
        Step::Ioreq => platform.register_ioreq(vm),
        Step::Devices => platform.register_devices(vm, &config.name, config.disk),
        Step::GenerationId => platform.set_generation_id(vm, generation_id),
    }
}

/// Undoes one step that succeeded.
fn undo<P: Platform + ?Sized>(platform: &mut P, step: Step, vm: VmId) {
    match step {
        Step::AddressSpace => platform.free_address_space(vm),
        Step::Vcpus => platform.destroy_vcpus(vm),
        Step::Ioreq => platform.unregister_ioreq(vm),
        Step::Devices => platform.unregister_devices(vm),
        Step::Contents | Step::GenerationId => {}
    }
}

/// Acquires every resource of `vm` for `config`. On failure, every step that
/// succeeded is undone in reverse order and the failing step's error is
/// returned: the platform holds nothing for `vm`.
pub fn build<P: Platform + ?Sized>(
    platform: &mut P,
    vm: VmId,
    config: &VmConfig,
    contents: Contents,
    generation_id: GenerationId,
) -> Result<(), ipc::Error> {
    for (done, step) in Step::ALL.iter().enumerate() {
        if let Err(error) = run(platform, *step, vm, config, contents, generation_id) {
            for earlier in Step::ALL.iter().take(done).rev() {
                undo(platform, *earlier, vm);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Releases every resource of a fully built `vm`, in reverse order.
pub fn tear_down<P: Platform + ?Sized>(platform: &mut P, vm: VmId) {
    for step in Step::ALL.iter().rev() {
        undo(platform, *step, vm);
    }
}
