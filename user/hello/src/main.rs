//! `hello`: a service task serving the vm-manager protocol with the real
//! `vm_manager::VmManager` over an empty scenario. Its platform is **not yet
//! wired to kernel VM objects**: every effect is refused with
//! `Error::KernelRefused`, so creating a VM fails cleanly while listing and
//! queries work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::{Error, VmId};
    use log::info;
    use mica_rt::{Start, serve_forever};
    use vm_manager::{
        DEFAULT_MAX_VM_NUM, EntropySource, GenerationId, ImageName, Platform, VmManager, VmName,
    };

    /// Capability slot of the receive right on this service's endpoint.
    const ENDPOINT: usize = 0;

    /// Refuses every effect: VM objects do not exist in the kernel yet.
    struct Unwired;

    impl Platform for Unwired {
        fn create_address_space(&mut self, _: VmId, _: u32) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn load_image(&mut self, _: VmId, _: &ImageName) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn clone_memory(&mut self, _: VmId, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn create_vcpus(&mut self, _: VmId, _: u8) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn register_ioreq(&mut self, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn register_devices(&mut self, _: VmId, _: &VmName) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn set_generation_id(&mut self, _: VmId, _: GenerationId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn start(&mut self, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn pause(&mut self, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn resume(&mut self, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn reset(&mut self, _: VmId) -> Result<(), Error> {
            Err(Error::KernelRefused)
        }
        fn unregister_devices(&mut self, _: VmId) {}
        fn unregister_ioreq(&mut self, _: VmId) {}
        fn destroy_vcpus(&mut self, _: VmId) {}
        fn free_address_space(&mut self, _: VmId) {}
    }

    /// A counter, not randomness: no VM can be created yet, so no
    /// generation ID is ever handed out. Replace with a kernel entropy call.
    struct NotRandom(u8);

    impl EntropySource for NotRandom {
        fn fill(&mut self, out: &mut [u8; 16]) {
            self.0 = self.0.wrapping_add(1);
            *out = [self.0; 16];
        }
    }

    fn main(_start: Start) -> u32 {
        let service = VmManager::<_, _, DEFAULT_MAX_VM_NUM>::new(&[], Unwired, NotRandom(0));
        match service {
            Ok(mut service) => {
                info!("serving the vm-manager protocol (not yet wired to VM objects)");
                serve_forever(ENDPOINT, &mut service)
            }
            Err(e) => {
                info!("bad scenario: {e:?}");
                1
            }
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("mica-hello is a Mica task: build it with --target riscv64gc-unknown-none-elf");
    std::process::exit(2);
}
