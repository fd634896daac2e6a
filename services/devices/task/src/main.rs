//! `devices`: the device service task. It serves the `ipc::devices`
//! protocol with the `devices` library: guest console lines, their control
//! bytes shown as escapes (`ipc::console_text`), go to the hypervisor
//! console with `console_write` (`vm0 | hello from vm0`).
//!
//! Interrupts: each VM's PLIC model (attached by the vm-manager) computes
//! each vCPU's external interrupt (PLIC context `c` is vCPU `c`'s) from
//! the device lines; every change goes to the kernel with
//! `vm_set_external_irq` (GUEST_IRQ right).
//!
//! Guest memory: the vm-manager grants each VM's RAM to this service's
//! endpoint (`vm_grant_ram`); the virtio devices reach it with
//! `vm_ram_read` / `vm_ram_write`, which the kernel checks against the
//! grant and the VM's RAM. A refused access (no grant, or a descriptor
//! outside RAM) is the model's `OutOfRange`: the device goes to
//! NEEDS_RESET, the service carries on. Those calls pass the bytes through
//! the IPC buffer page, so a model reads its request out of the buffer
//! before it touches guest memory (as it does before calling the rng
//! service for entropy).
//!
//! Entropy (virtio-rng, the generation-ID device's first ID) comes from the
//! kernel's hardware source (ENTROPY right), else from the host's
//! virtio-rng through the rng service (`mica_rt::entropy::RealEntropy`).
//! With neither a virtio-rng request is answered with no bytes (the spec
//! allows fewer than offered) rather than made-up ones, and the service
//! says so once at start.
//!
//! Disks: a virtio-blk model's requests go to the block service
//! (`ipc::blk`, endpoint BLK, which the manifest lets this task call),
//! which moves the sectors straight between the host disk and the VM's
//! RAM through its own grant; attaching the device asks it what the disk
//! is. A call overwrites the IPC buffer page, like the guest-memory calls:
//! every request is out of the buffer before a model runs (the general
//! path decodes it into a value, the fast path copies the access or the
//! batch's writes out first).
//!
//! Layer: service task (`cargo xtask check-layers`): it links only `ipc`, the
//! user runtime and its own service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use devices::bus::{BlockBackend, EntropySource};
    use devices::console_lines::ConsoleSink;
    use devices::memory::{GuestMemory, OutOfRange};
    use devices::service::{DeviceService, GuestMemoryProvider, IrqSink};
    use ipc::blk;
    use ipc::devices::IrqEvent;
    use ipc::syscall::{endpoints, slots};
    use ipc::{Error, VmId};
    use log::{info, warn};
    use mica_rt::entropy::{HardwareFailure, Origin, RealEntropy};
    use mica_rt::{Start, StaticSlot, serve_forever, sys};

    /// Guest console lines (already escaped by `LineBuffer`) on the
    /// hypervisor console.
    struct Console;

    impl ConsoleSink for Console {
        fn write_line(&mut self, line: &[u8]) {
            if let Err(e) = sys::console_write(line) {
                warn!("console_write refused: {e}");
            }
        }
    }

    /// Device lines feed the VM's PLIC model; its outputs go to the kernel,
    /// context `c` as vCPU `c`'s external interrupt.
    struct KernelIrqs;

    impl IrqSink for KernelIrqs {
        fn irq_event(&mut self, _event: IrqEvent) {}

        fn external_irq(&mut self, vm: VmId, context: usize, raised: bool) {
            match mica_rt::vm::vm_set_external_irq(vm, raised, context) {
                // A context the VM has no vCPU for (the guest enabled
                // sources in a context its device tree does not list):
                // nobody to interrupt, and nothing worth a line per change.
                Ok(()) | Err(Error::InvalidArgument) => {}
                Err(e) => warn!(
                    "vm {}: vm_set_external_irq({raised}, vcpu {context}) refused: {e}",
                    vm.0
                ),
            }
        }
    }

    /// A VM's RAM through the kernel's checked copy calls.
    struct GrantedRam(VmId);

    impl GuestMemory for GrantedRam {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
            mica_rt::vm::vm_ram_read(self.0, addr, buf).map_err(|_| OutOfRange::of(addr, buf.len()))
        }

        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
            mica_rt::vm::vm_ram_write(self.0, addr, data)
                .map_err(|_| OutOfRange::of(addr, data.len()))
        }
    }

    /// Every VM's RAM as the kernel lets this service reach it: the
    /// kernel, not this service, knows which VMs granted theirs.
    struct KernelRam {
        /// The VM asked for last.
        current: GrantedRam,
    }

    impl GuestMemoryProvider for KernelRam {
        fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
            self.current = GrantedRam(vm);
            Some(&mut self.current)
        }

        fn save_state(&mut self, vm: VmId, offset: usize, bytes: &[u8]) -> Result<(), Error> {
            mica_rt::vm::vm_state_write(vm, offset, bytes)
        }

        fn load_state(&mut self, vm: VmId, offset: usize, out: &mut [u8]) -> Result<(), Error> {
            mica_rt::vm::vm_state_read(vm, offset, out)
        }
    }

    /// Real entropy only (the hardware, then the rng service): only the
    /// bytes they gave.
    struct Entropy(RealEntropy);

    impl EntropySource for Entropy {
        fn fill(&mut self, buf: &mut [u8]) -> usize {
            self.0.fill_prefix(buf)
        }
    }

    /// How long one block request may take: up to `blk::MAX_TRANSFER`
    /// bytes through the service's page-sized copies on a slow (emulated)
    /// disk. A service that hangs longer fails the guest's request with an
    /// I/O error, not this service.
    const BLK_DEADLINE_MS: u64 = 10_000;

    /// The block service, called for every block request of every VM.
    struct BlockService;

    impl BlockBackend for BlockService {
        fn request(&mut self, request: &blk::Request) -> blk::Response {
            mica_rt::call_service(endpoints::BLK, request, BLK_DEADLINE_MS)
                .unwrap_or_else(blk::Response::Err)
        }
    }

    type Devices = DeviceService<Console, KernelIrqs, KernelRam, Entropy, BlockService>;

    /// The service state (about 215 KiB: more than the 64 KiB stack).
    static SERVICE: StaticSlot<Devices> = StaticSlot::new();

    fn main(_start: Start) -> u32 {
        let mut entropy = RealEntropy::new();
        match entropy.fill(&mut [0u8; 8]) {
            Ok(Origin::Hardware) => {}
            Ok(Origin::RngService) => info!(
                "virtio-rng devices give guests the host's virtio-rng bytes (the rng service): {}",
                HardwareFailure(entropy.hardware_failure().unwrap_or(ipc::Error::NoEntropy))
            ),
            Err(e) => warn!("virtio-rng devices will give guests no bytes: {e}"),
        }
        let ram = KernelRam {
            current: GrantedRam(VmId(0)),
        };
        let built = SERVICE.init_with(|| {
            DeviceService::with_parts(Console, KernelIrqs, ram, Entropy(entropy), BlockService)
        });
        let Some(service) = built else {
            warn!("service state already in use");
            return 1;
        };
        info!("serving devices");
        serve_forever(slots::SERVE, service)
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-devices");
}
