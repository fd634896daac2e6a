//! `vm-manager`: the vm-manager service task. The `vm_manager` library does
//! the work; this binary wires its [`vm_manager::KernelPlatform`] to the
//! kernel's VM calls and to IPC with the ioreq and device services, launches
//! the pre-launched VMs of the build-time scenario (logging
//! `vm-manager: vm0 started` or the error) and then serves the `ipc::vm`
//! protocol on its endpoint.
//!
//! Layer: service task (`cargo xtask check-layers`): it links only `ipc`, the
//! user runtime and its own service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod scenario;

#[cfg(target_os = "none")]
mod task {
    use ipc::syscall::{IMAGE_HEADER_BYTES, SUPERVISOR_BADGE, endpoints, slots};
    use ipc::vm::SERVICE_DEADLINE_MS;
    use ipc::{Error, VmId, devices, ioreq};
    use log::{info, warn};
    use mica_rt::entropy::HardwareOrCounters;
    use mica_rt::{Start, StaticSlot, call_message_within, serve_forever, vm};
    use vm_manager::{
        Caller, DEFAULT_MAX_VM_NUM, EntropySource, GuestBoard, GuestExit, KernelPlatform, KernelVm,
        ServiceLinks, VmKernel, VmManager,
    };

    use crate::scenario;

    /// The kernel's VM calls (this task holds the VM_CONTROL right).
    struct Syscalls;

    impl VmKernel for Syscalls {
        fn vm_create(&mut self, vm: VmId, ram_mib: u32, vcpus: u8) -> Result<(), Error> {
            vm::vm_create(vm, ram_mib, vcpus)
        }
        fn vm_load(&mut self, vm: VmId, image: usize, offset: u64) -> Result<u64, Error> {
            vm::vm_load(vm, image, offset).map(|len| len as u64)
        }
        fn image_info(&mut self, image: usize) -> Result<(u64, [u8; IMAGE_HEADER_BYTES]), Error> {
            vm::image_info(image).map(|(len, header)| (len as u64, header))
        }
        fn image_name(&mut self, index: usize) -> Result<(ipc::WireName, u64), Error> {
            let mut name = [0u8; 32];
            let (len, size) = vm::image_name(index, &mut name)?;
            let text = core::str::from_utf8(&name[..len]).map_err(|_| Error::InvalidName)?;
            let name = ipc::wire_name(text)?;
            Ok((name, size as u64))
        }
        fn vm_write_ram(&mut self, vm: VmId, offset: u64, bytes: &[u8]) -> Result<(), Error> {
            vm::vm_write_ram(vm, offset, bytes)
        }
        fn platform_info(&mut self) -> Result<(u64, usize), Error> {
            vm::platform_info()
        }
        fn vm_set_dtb(&mut self, vm: VmId, dtb: &[u8]) -> Result<(), Error> {
            vm::vm_set_dtb(vm, dtb).map(|_| ())
        }
        fn vm_grant_ram(&mut self, vm: VmId, endpoints: u64) -> Result<(), Error> {
            vm::vm_grant_ram(vm, endpoints)
        }
        fn vm_start(&mut self, vm: VmId, entry: u64, dtb: u64) -> Result<(), Error> {
            vm::vm_start(vm, entry, dtb)
        }
        fn vm_pause(&mut self, vm: VmId) -> Result<(), Error> {
            vm::vm_pause(vm)
        }
        fn vm_resume(&mut self, vm: VmId) -> Result<(), Error> {
            vm::vm_resume(vm)
        }
        fn vm_reset(&mut self, vm: VmId) -> Result<(), Error> {
            vm::vm_reset(vm)
        }
        fn vm_destroy(&mut self, vm: VmId) -> Result<(), Error> {
            vm::vm_destroy(vm)
        }
        fn vm_write_genid(&mut self, vm: VmId, id: [u8; 16]) -> Result<(), Error> {
            vm::vm_write_genid(vm, id).map(|_| ())
        }
        fn vm_clone_ram(&mut self, source: VmId, target: VmId) -> Result<(), Error> {
            vm::vm_clone_ram(source, target)
        }
        fn vm_set_name(&mut self, vm: VmId, name: &str) -> Result<(), Error> {
            vm::vm_set_name(vm, name)
        }
        fn vm_status(
            &mut self,
            vm: VmId,
        ) -> Result<(usize, ipc::syscall::vm_exit::ExitRecord), Error> {
            vm::vm_status(vm)
        }
        fn vm_stats(&mut self, vm: VmId, group: usize) -> Result<[u64; 3], Error> {
            vm::vm_stats(vm, group)
        }
        fn vm_adopt(&mut self, vm: VmId) -> Result<KernelVm, Error> {
            let adopted = vm::vm_adopt(vm)?;
            let name = adopted.name().ok_or(Error::InvalidName)?;
            Ok(KernelVm {
                status: adopted.status,
                mem_mib: adopted.ram_mib,
                vcpus: adopted.vcpus,
                name: heapless::String::try_from(name).map_err(|_| Error::InvalidName)?,
                generation_id: adopted.generation_id,
                note: heapless::Vec::from_slice(adopted.note()).map_err(|_| Error::Malformed)?,
            })
        }
        fn vm_set_note(&mut self, vm: VmId, note: &[u8]) -> Result<(), Error> {
            vm::vm_set_note(vm, note)
        }
    }

    /// IPC calls through the manifest's call rights to the two services.
    struct Ipc;

    impl ServiceLinks for Ipc {
        fn ioreq(&mut self, request: &ioreq::Request) -> Result<ioreq::Response, Error> {
            call_message_within(slots::call(endpoints::IOREQ), request, SERVICE_DEADLINE_MS)
        }
        fn devices(&mut self, request: &devices::Request) -> Result<devices::Response, Error> {
            call_message_within(
                slots::call(endpoints::DEVICES),
                request,
                SERVICE_DEADLINE_MS,
            )
        }
    }

    /// Generation IDs from the kernel's hardware entropy (ENTROPY right),
    /// else from the host's virtio-rng through the rng service (a call
    /// slot to endpoint RNG), both random; on a machine with neither, from
    /// counters, with a warning on the console (`mica_rt::entropy`).
    struct Entropy(HardwareOrCounters);

    impl EntropySource for Entropy {
        fn fill(&mut self, out: &mut [u8; 16]) {
            self.0.fill(out);
        }
        fn last_was_random(&self) -> bool {
            self.0.failure().is_none()
        }
    }

    type Manager = VmManager<KernelPlatform<Syscalls, Ipc>, Entropy, DEFAULT_MAX_VM_NUM>;

    /// The manager as served on the endpoint: requests go to it, and so do
    /// the kernel's wake-ups for VMs whose guest ended, each logged as
    /// `vm-manager: linux powered off` (or rebooted, or stopped).
    struct Served(Manager, Caller);

    impl ipc::server::Service for Served {
        type Request = ipc::vm::Request;
        type Response = ipc::vm::Response;

        fn caller(&mut self, badge: u64) {
            self.1 = if badge == SUPERVISOR_BADGE {
                Caller::Supervisor
            } else {
                Caller::Operator
            };
        }

        fn handle(&mut self, request: Self::Request) -> Self::Response {
            self.0.handle_from(self.1, request)
        }

        fn refusal(error: Error) -> Self::Response {
            ipc::vm::Response::Err(error)
        }

        fn kernel_upcall(&mut self, vms: u64) {
            report_exits(self.0.guests_ended(vms));
        }
    }

    /// Logs what was done for guests that ended.
    fn report_exits(exits: impl IntoIterator<Item = GuestExit>) {
        for exit in exits {
            match exit {
                GuestExit::PoweredOff(name, how) => info!("{name} {how}"),
                GuestExit::Stopped(name, how) => info!("{name} {how}; now powered off"),
                GuestExit::Rebooted(name, Ok(())) => info!("{name} rebooted"),
                GuestExit::Rebooted(name, Err(e)) => warn!("{name} did not reboot: {e}"),
            }
        }
    }

    /// After a restart the VMs run on: they are taken over, not launched.
    fn take_over(manager: &mut Manager) {
        let (found, exits) = manager.recover();
        for recovery in found {
            let name = recovery.name.as_ref().map_or("?", |n| n.as_str());
            match recovery.result {
                Ok(()) => info!("{name} taken over"),
                Err(e) => warn!(
                    "VM {} ({name}) not taken over: {e}; it runs on unmanaged",
                    recovery.id.0
                ),
            }
        }
        report_exits(exits);
    }

    /// The manager's state (about 12 KiB, most of it the ring of recent
    /// VM events) lives here rather than on the 64 KiB task stack, which
    /// is left to the requests' deep call paths.
    static SERVICE: StaticSlot<Option<Served>> = StaticSlot::new();

    fn main(start: Start) -> u32 {
        let platform = KernelPlatform::with_board(Syscalls, Ipc, GuestBoard::NATIVE);
        let mut entropy = Entropy(HardwareOrCounters::new(start.restarts as u64));
        // Named at boot, before any VM: `vm-manager: generation IDs come
        // from the host's virtio-rng (...)` on a machine without a hardware
        // source, `vm-manager: WARN: generation IDs are NOT random (...)`
        // on one without either.
        entropy.0.probe();
        let built = SERVICE.init_with(|| {
            match VmManager::<_, _, DEFAULT_MAX_VM_NUM>::new(scenario::SCENARIO, platform, entropy)
            {
                Ok(manager) => Some(Served(manager, Caller::Operator)),
                Err(e) => {
                    warn!("bad build-time scenario: {e}");
                    None
                }
            }
        });
        let Some(built) = built else {
            warn!("service state already in use");
            return 1;
        };
        let Some(served) = built else {
            return 1;
        };
        let manager = &mut served.0;
        manager.set_incarnation(u32::try_from(start.restarts).unwrap_or(u32::MAX));
        info!("scenario {}", scenario::NAME);
        if start.restarts > 0 {
            take_over(manager);
        } else {
            // The kernel prefixes each line with the task name: these read
            // `vm-manager: vm0 started`.
            for outcome in manager.launch_pre_launched() {
                match outcome.result {
                    Ok(()) => info!("{} started", outcome.name),
                    Err(e) => warn!("{} not started: {e}", outcome.name),
                }
            }
        }
        serve_forever(slots::SERVE, served)
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-vm-manager");
}
