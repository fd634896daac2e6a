//! `blk`: the block service task. It drives the host's virtio-blk disks
//! (QEMU's `-device virtio-blk-device`; the manifest lets it map that
//! class and no other) with `virtio-drivers` and answers the `ipc::blk`
//! protocol on its endpoint for the devices service's virtio-blk models,
//! moving sectors between a disk and a VM's RAM with `vm_ram_read` /
//! `vm_ram_write` (the vm-manager grants this endpoint the RAM of each VM
//! with a disk).
//!
//! Disk numbers: a disk whose serial (virtio-blk GET_ID) is `micaN` is
//! disk N (`cargo xtask qemu` names them so, in the order the scenario
//! gives the VMs' disks); any other takes the first free number, in the
//! order of the virtio-mmio windows. A request waits for the device (the
//! driver polls its queue).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::blk::{DiskInfo, MAX_DISKS};
    use ipc::syscall::slots;
    use ipc::{Error, VmId};
    use log::{info, warn};
    use mica_blk_task::{BlkService, Disk, GuestRam};
    use mica_rt::virtio::{MicaHal, find_devices};
    use mica_rt::{Start, StaticSlot, serve_forever};
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::DeviceType;
    use virtio_drivers::transport::mmio::MmioTransport;

    /// One of the host's virtio-blk disks through `virtio-drivers`.
    struct VirtioDisk {
        driver: VirtIOBlk<MicaHal, MmioTransport<'static>>,
    }

    fn sector_index(sector: u64) -> Result<usize, Error> {
        usize::try_from(sector).map_err(|_| Error::InvalidRange)
    }

    impl Disk for VirtioDisk {
        fn info(&self) -> DiskInfo {
            DiskInfo {
                sectors: self.driver.capacity(),
                read_only: self.driver.readonly(),
            }
        }

        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
            let at = sector_index(sector)?;
            self.driver.read_blocks(at, buf).map_err(|e| {
                warn!("disk read at sector {sector} failed: {e}");
                Error::IoFailed
            })
        }

        fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error> {
            let at = sector_index(sector)?;
            self.driver.write_blocks(at, buf).map_err(|e| {
                warn!("disk write at sector {sector} failed: {e}");
                Error::IoFailed
            })
        }

        fn flush(&mut self) -> Result<(), Error> {
            self.driver.flush().map_err(|e| {
                warn!("disk flush failed: {e}");
                Error::IoFailed
            })
        }
    }

    /// Guest RAM through the kernel's checked copies.
    struct KernelRam;

    impl GuestRam for KernelRam {
        fn read(&mut self, vm: VmId, gpa: u64, out: &mut [u8]) -> Result<(), Error> {
            mica_rt::vm::vm_ram_read(vm, gpa, out)
        }

        fn write(&mut self, vm: VmId, gpa: u64, data: &[u8]) -> Result<(), Error> {
            mica_rt::vm::vm_ram_write(vm, gpa, data)
        }
    }

    /// The disk number a serial names (`mica0` .. `mica7`).
    fn numbered(serial: &[u8]) -> Option<usize> {
        let digits = serial.strip_prefix(b"mica")?;
        let text = core::str::from_utf8(digits).ok()?;
        text.parse::<usize>().ok().filter(|&n| n < MAX_DISKS)
    }

    /// Every disk that starts, by number.
    fn disks() -> [Option<VirtioDisk>; MAX_DISKS] {
        let mut table: [Option<VirtioDisk>; MAX_DISKS] = Default::default();
        let mut unnamed = heapless::Vec::<VirtioDisk, MAX_DISKS>::new();
        for transport in find_devices::<MAX_DISKS>(DeviceType::Block) {
            let mut driver = match VirtIOBlk::<MicaHal, _>::new(transport) {
                Ok(driver) => driver,
                Err(e) => {
                    warn!("cannot start a virtio-blk device: {e}");
                    continue;
                }
            };
            let mut serial = [0u8; 20];
            let named = driver
                .device_id(&mut serial)
                .ok()
                .and_then(|len| numbered(&serial[..len]));
            let disk = VirtioDisk { driver };
            match named {
                Some(n) if table[n].is_none() => table[n] = Some(disk),
                _ => {
                    let _ = unnamed.push(disk);
                }
            }
        }
        for disk in unnamed {
            if let Some(free) = table.iter_mut().find(|slot| slot.is_none()) {
                *free = Some(disk);
            }
        }
        for (n, disk) in table.iter().enumerate() {
            if let Some(disk) = disk {
                let info = disk.info();
                let access = if info.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                info!("disk {n}: {} MiB, {access}", info.sectors / 2048);
            }
        }
        table
    }

    /// The service state (a driver's queue bookkeeping per disk).
    static SERVICE: StaticSlot<BlkService<VirtioDisk, KernelRam>> = StaticSlot::new();

    fn main(_start: Start) -> u32 {
        let built = SERVICE.init_with(|| BlkService::new(disks(), KernelRam));
        let Some(served) = built else {
            warn!("service state already in use");
            return 1;
        };
        if served.disk_count() == 0 {
            info!("no virtio-blk disk: every request is refused (NoDevice)");
        }
        serve_forever(slots::SERVE, served)
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-blk-task");
}
