//! `devices`: the device service task. It serves the `ipc::devices`
//! protocol with the `devices` library: guest console lines, their control
//! bytes shown as escapes (`ipc::console_text`), go to the hypervisor
//! console with `console_write` (`vm0 | hello from vm0`).
//!
//! Interrupts: each VM's PLIC model (attached by the vm-manager) computes
//! the VM's external interrupt from the device lines; every change goes to
//! the kernel with `vm_set_external_irq` (GUEST_IRQ right).
//!
//! Not yet wired: guest memory. Virtio devices need RAM grants from the
//! vm-manager, which do not exist yet, so no VM has memory here and virtio
//! queues fail.
//!
//! Entropy (virtio-rng, the generation-ID device's first ID) comes from the
//! kernel's hardware source (ENTROPY right), else from the host's
//! virtio-rng through the rng service (`mica_rt::entropy::RealEntropy`).
//! With neither a virtio-rng request is answered with no bytes (the spec
//! allows fewer than offered) rather than made-up ones, and the service
//! says so once at start.
//!
//! Layer: service task (`cargo xtask check-layers`): it links only `ipc`, the
//! user runtime and its own service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use devices::bus::EntropySource;
    use devices::console_lines::ConsoleSink;
    use devices::memory::GuestMemory;
    use devices::service::{DeviceService, GuestMemoryProvider, IrqSink};
    use ipc::VmId;
    use ipc::devices::IrqEvent;
    use ipc::syscall::slots;
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

    /// Device lines feed the VM's PLIC model; its output goes to the kernel.
    struct KernelIrqs;

    impl IrqSink for KernelIrqs {
        fn irq_event(&mut self, _event: IrqEvent) {}

        fn external_irq(&mut self, vm: VmId, raised: bool) {
            if let Err(e) = mica_rt::vm::vm_set_external_irq(vm, raised) {
                warn!("vm {}: vm_set_external_irq({raised}) refused: {e}", vm.0);
            }
        }
    }

    /// No VM has granted its RAM to this service yet.
    struct NoRam;

    impl GuestMemoryProvider for NoRam {
        fn memory(&mut self, _vm: VmId) -> Option<&mut dyn GuestMemory> {
            None
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

    type Devices = DeviceService<Console, KernelIrqs, NoRam, Entropy>;

    /// The service state (about 78 KiB: more than the 64 KiB stack).
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
        let built =
            SERVICE.init_with(|| DeviceService::new(Console, KernelIrqs, NoRam, Entropy(entropy)));
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
    eprintln!("mica-devices is a Mica task: build it with --target riscv64gc-unknown-none-elf");
    std::process::exit(2);
}
