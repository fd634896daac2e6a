//! `rng`: the rng service task. It finds the host's virtio-rng device (a
//! virtio-mmio window with device ID 4: RISC-V QEMU's `-device
//! virtio-rng-device`; the manifest lets it map that class and no other),
//! drives it with `virtio-drivers` and answers the `ipc::rng` protocol on
//! its endpoint, for tasks whose CPU has no hardware entropy source (the
//! vm-manager's generation IDs, the device service's guest virtio-rng).
//! Without such a device it says so once and refuses every request with
//! `Error::NoEntropy`, so its callers fall back loudly, never silently.
//!
//! A request waits for the device (the driver polls its queue); QEMU's
//! virtio-rng answers from the host's own generator at once.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::Error;
    use ipc::syscall::slots;
    use log::{info, warn};
    use mica_rng_task::{RandomDevice, RngService};
    use mica_rt::virtio::{MicaHal, find_device};
    use mica_rt::{Start, serve_forever};
    use virtio_drivers::device::rng::VirtIORng;
    use virtio_drivers::transport::DeviceType;
    use virtio_drivers::transport::mmio::MmioTransport;

    /// The host's virtio-rng through `virtio-drivers`.
    struct VirtioRng {
        driver: VirtIORng<MicaHal, MmioTransport<'static>>,
        /// Whether a failure was reported already (said once).
        complained: bool,
    }

    impl RandomDevice for VirtioRng {
        fn fill(&mut self, out: &mut [u8]) -> Result<usize, Error> {
            self.driver.request_entropy(out).map_err(|e| {
                if !self.complained {
                    self.complained = true;
                    warn!("virtio-rng request failed: {e}");
                }
                Error::NoEntropy
            })
        }
    }

    /// The device, if the machine has one that starts.
    fn device() -> Option<VirtioRng> {
        let Some(transport) = find_device(DeviceType::EntropySource) else {
            info!("no virtio-rng device: every request is refused (NoEntropy)");
            return None;
        };
        match VirtIORng::<MicaHal, _>::new(transport) {
            Ok(driver) => {
                info!("serving the host's virtio-rng");
                Some(VirtioRng {
                    driver,
                    complained: false,
                })
            }
            Err(e) => {
                warn!(
                    "cannot start the virtio-rng device: {e}; every request is refused (NoEntropy)"
                );
                None
            }
        }
    }

    fn main(_start: Start) -> u32 {
        let mut service = RngService::new(device());
        serve_forever(slots::SERVE, &mut service)
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-rng-task");
}
