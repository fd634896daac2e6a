//! [`KernelPlatform`]: the [`Platform`] of the vm-manager task, doing each
//! step with Mica's VM system calls ([`VmKernel`]) and IPC to the ioreq and
//! device services ([`ServiceLinks`]). Both are traits, so the library
//! stays free of system calls and tests drive it with fakes.
//!
//! How the steps map (every release undoes its acquire):
//!
//! | step | does | undone by |
//! |---|---|---|
//! | `create_address_space` | reserves the VM number, records the RAM size | `free_address_space` |
//! | `load_image` | records the image name (and, for a Linux kernel, its initrd and command line) | (with the address space) |
//! | `clone_memory` | records the source (and its image, for resets) | (with the address space) |
//! | `create_vcpus` | `vm_create(vm, ram, vcpus)`, then the image names' numbers (`image_name` until one matches), a raw image `vm_load(image, 2 MiB)`; a Linux kernel `image_info` of kernel and initrd (header, sizes), placed by `boot_layout`, `vm_load(kernel, text_offset)`, `vm_load(initrd, after it)`; or, for a clone, `vm_clone_ram(source, vm)` | `destroy_vcpus`: `vm_destroy` |
//! | `register_ioreq` | ioreq `AttachVm`, `RegisterRange` of the board's device windows (RISC-V: UART and vmgenid MMIO; x86: COM1 ports 0x3f8..0x400) for devices, `SetDefaultClient(devices)` | `DetachVm` |
//! | `register_devices` | devices `AddVm`, `Attach` the board's devices, the device tree (bootargs = the command line, the initrd, the host's timebase and Sstc from `platform_info`) or the x86 boot-info block: `vm_set_dtb` when it fits the top page, else `vm_write_ram` below the generation-ID page | `RemoveVm` |
//! | `start` | `vm_start(vm, entry, dtb)`: the kernel's load offset (raw: 2 MiB) and where the tree went | |
//! | `set_generation_id` | `vm_write_genid` (the ID in guest RAM), then devices `SetGenerationId` (the notification) | (with the devices) |
//! | `console_input` / `console_output` | devices `Input` (in pieces of `INPUT_CHUNK`) / `ConsoleRead` | |
//! | `vm_stats` | `vm_stats(vm, group)` for each of the three groups, then the vCPU groups until the kernel has no more; devices `NetCounters` | |
//!
//! The kernel makes a VM's RAM and vCPUs in one call, so `vm_create` waits
//! for `create_vcpus`, which knows the count; the device tree needs the
//! VM's name, so it is written with the devices it describes.

extern crate alloc;

use alloc::vec;

use ipc::ioreq::ClientId;
use ipc::syscall::PLATFORM_SSTC;
use ipc::syscall::{MAX_VMS, endpoints};
use ipc::vm::{ConsolePort, CreateOptions, GuestImage, VmStats};
use ipc::{Error, VmId, devices, ioreq};

use crate::board::{GuestBoard, GuestBoot};
use crate::boot_layout::{self, BootPlan, DTB_PAGE};
use crate::genid::GenerationId;
use crate::guest_dt::{InitrdRange, TIMEBASE_HZ};
use crate::images;
use crate::linux_boot::LinuxBoot;
use crate::name::{ImageName, VmName};
use crate::platform::{Adopted, AdoptedState, GuestStatus, Platform};

pub use crate::kernel_calls::{KernelVm, ServiceLinks, VmKernel};

/// The device service as an ioreq client: client ids are endpoint numbers.
#[allow(
    clippy::cast_possible_truncation,
    reason = "endpoint numbers are small constants"
)]
pub const DEVICES_CLIENT: ClientId = ClientId(endpoints::DEVICES as u16);

/// The device tree buffer's first size; it grows to what the tree needs.
pub const FIRST_DTB_BUFFER: usize = 4096;

/// What is kept for each VM number between the steps.
#[derive(Clone, Debug)]
struct VmRecord {
    mem_mib: u32,
    image: Option<ImageName>,
    vcpus: u8,
    name: Option<VmName>,
    generation_id: GenerationId,
    /// `vm_create` succeeded and `vm_destroy` has not run.
    in_kernel: bool,
    /// The VM whose RAM `create_vcpus` copies instead of loading the image.
    clone_of: Option<VmId>,
    /// Set when `image` is a Linux kernel: its initrd and command line.
    linux: Option<LinuxBoot>,
    /// Where the image (and initrd) went, once loaded.
    plan: Option<BootPlan>,
    /// Where the device tree went, from the start of RAM.
    dtb_offset: u64,
    /// The ioreq service serves it (`register_ioreq` succeeded and
    /// `unregister_ioreq` has not run; or it was adopted running).
    ioreq_registered: bool,
    /// The device service emulates its devices (likewise).
    devices_registered: bool,
    /// The host disk it has as a virtio-blk device (the block service's
    /// number), if any.
    disk: Option<u8>,
}

/// The vm-manager's platform over the kernel `K` and the services `S`.
pub struct KernelPlatform<K, S> {
    kernel: K,
    links: S,
    records: [Option<VmRecord>; MAX_VMS],
    release_failures: u32,
    board: GuestBoard,
    /// The host's timebase and Sstc, asked once.
    host_timer: Option<(u32, bool)>,
}

/// Names the service on `endpoint` as down ([`Error::ServiceDown`]) where
/// its answer was `symptom`: `UnknownVm` for a VM it had just been handed
/// (it restarted in between, knowing nothing). Other errors pass unchanged.
fn down_on(symptom: Error, endpoint: usize) -> impl Fn(Error) -> Error {
    move |error| match u8::try_from(endpoint) {
        Ok(endpoint) if error == symptom => Error::ServiceDown { endpoint },
        _ => error,
    }
}

/// Names the service on `endpoint` where a call to it failed in transit:
/// it died during the call ([`Error::ServiceDown`]) or did not answer by
/// the call's deadline ([`Error::ServiceHung`]). Other errors pass
/// unchanged.
fn unanswered(endpoint: usize) -> impl Fn(Error) -> Error {
    move |error| match (u8::try_from(endpoint), error) {
        (Ok(endpoint), Error::ServerDied) => Error::ServiceDown { endpoint },
        (Ok(endpoint), Error::TimedOut) => Error::ServiceHung { endpoint },
        _ => error,
    }
}

fn ioreq_ok(answer: Result<ioreq::Response, Error>) -> Result<(), Error> {
    match answer.map_err(unanswered(endpoints::IOREQ))? {
        ioreq::Response::Ok => Ok(()),
        ioreq::Response::Err(error) => Err(error),
        ioreq::Response::Dispatched { .. } => Err(Error::Malformed),
    }
}

fn devices_ok(answer: Result<devices::Response, Error>) -> Result<(), Error> {
    match answer.map_err(unanswered(endpoints::DEVICES))? {
        devices::Response::Ok => Ok(()),
        devices::Response::Err(error) => Err(error),
        devices::Response::Value(_) | devices::Response::Console(_) | devices::Response::Net(_) => {
            Err(Error::Malformed)
        }
    }
}

impl<K: VmKernel, S: ServiceLinks> KernelPlatform<K, S> {
    /// A platform with no VMs, for RISC-V guests.
    pub fn new(kernel: K, links: S) -> Self {
        Self::with_board(kernel, links, GuestBoard::RiscvVirt)
    }

    /// A platform with no VMs whose guests see `board`.
    pub fn with_board(kernel: K, links: S, board: GuestBoard) -> Self {
        Self {
            kernel,
            links,
            records: core::array::from_fn(|_| None),
            release_failures: 0,
            board,
            host_timer: None,
        }
    }

    /// The kernel (for tests).
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The service links (for tests).
    pub fn links(&self) -> &S {
        &self.links
    }

    /// How many releases the kernel or a service refused (each is a leak
    /// to report; the vm-manager goes on as if it had been released).
    pub fn release_failures(&self) -> u32 {
        self.release_failures
    }

    fn record(&mut self, vm: VmId) -> Result<&mut VmRecord, Error> {
        self.records
            .get_mut(usize::from(vm.0))
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownVm)
    }

    fn released(&mut self, result: Result<(), Error>) {
        if result.is_err() {
            self.release_failures = self.release_failures.saturating_add(1);
        }
    }

    /// `AddVm`, then the board's devices (RISC-V: the UART, the vmgenid
    /// device and virtio-rng where the device tree puts them; x86: COM1 in
    /// port space); on failure the VM is removed again. The devices
    /// service (its virtio devices' queues) and, for a VM with a disk, the
    /// block service are granted the VM's RAM first (a reset ended the
    /// previous grant).
    fn add_devices(&mut self, vm: VmId, name: &VmName) -> Result<(), Error> {
        let disk = self.record(vm)?.disk;
        let blk = if disk.is_some() {
            1 << endpoints::BLK
        } else {
            0
        };
        self.kernel
            .vm_grant_ram(vm, 1 << endpoints::DEVICES | blk)?;
        devices_ok(self.links.devices(&devices::Request::AddVm {
            vm,
            name: name.to_wire(),
        }))?;
        // The disk's virtio-blk device after the board's (the x86 board
        // has no virtio-mmio bus: a disk there is refused).
        let disk_device = match disk {
            Some(disk) => Some(self.board.disk_device(disk).ok_or(Error::NoDevice)),
            None => None,
        }
        .transpose();
        let attached = disk_device
            .and_then(|disk_device| {
                self.board
                    .devices()
                    .iter()
                    .chain(disk_device.as_ref())
                    .try_for_each(|place| {
                        devices_ok(self.links.devices(&devices::Request::Attach {
                            vm,
                            device: place.kind,
                            space: place.space,
                            base: place.base,
                            irq: place.irq,
                        }))
                    })
            })
            .map_err(down_on(Error::UnknownVm, endpoints::DEVICES));
        if attached.is_err() {
            let removed = devices_ok(self.links.devices(&devices::Request::RemoveVm { vm }));
            self.released(removed);
        }
        attached
    }

    /// The board's device windows as `vm`'s client ranges at the ioreq
    /// service (attached already), with the registers whose writes are
    /// posted, and the device service as the default client.
    fn send_ioreq_ranges(&mut self, vm: VmId) -> Result<(), Error> {
        let client = DEVICES_CLIENT;
        // The devices service emulates the board's windows, and takes what
        // no range claims (an access to a hole then reads as all-ones there).
        for place in self.board.devices() {
            ioreq_ok(self.links.ioreq(&ioreq::Request::RegisterRange {
                vm,
                client,
                space: place.space,
                start: place.base,
                len: place.size,
            }))?;
            // Registers whose writes answer nothing are posted.
            if let Some((offset, len)) = place.kind.posted_window() {
                ioreq_ok(self.links.ioreq(&ioreq::Request::PostWrites {
                    vm,
                    space: place.space,
                    start: place.base + offset,
                    len,
                }))?;
            }
        }
        ioreq_ok(
            self.links
                .ioreq(&ioreq::Request::SetDefaultClient { vm, client }),
        )
    }

    /// A restarted ioreq service serves `vm` again: reattached (held),
    /// its ranges sent, then activated (requests the dead service left
    /// are taken over).
    fn reattach_ioreq(&mut self, vm: VmId) -> Result<(), Error> {
        let vcpus = self.record(vm)?.vcpus;
        ioreq_ok(self.links.ioreq(&ioreq::Request::Reattach { vm, vcpus }))?;
        self.send_ioreq_ranges(vm)
            .and_then(|()| ioreq_ok(self.links.ioreq(&ioreq::Request::Activate { vm })))
            .map_err(down_on(Error::UnknownVm, endpoints::IOREQ))
    }

    /// A restarted device service emulates `vm`'s devices again, from
    /// reset, with its generation ID. Meanwhile the VM's accesses wait at
    /// the ioreq service (reattached there: held, its ranges sent again
    /// after), so none reaches a device service that does not know the VM
    /// or its devices yet; the VM is activated there again whatever
    /// happened (an access the dead service took is sent again).
    fn readd_devices(&mut self, vm: VmId) -> Result<(), Error> {
        let record = self.record(vm)?;
        let name = record.name.clone().ok_or(Error::UnknownVm)?;
        let generation_id = record.generation_id;
        let vcpus = record.vcpus;
        let held = ioreq_ok(self.links.ioreq(&ioreq::Request::Reattach { vm, vcpus }));
        let added = (|| {
            // A device service that kept the VM (it did not die after all)
            // resets its models; one that forgot it says `UnknownVm`.
            let _ = self.links.devices(&devices::Request::RemoveVm { vm });
            self.add_devices(vm, &name)?;
            if self.board_has_genid() && generation_id != GenerationId::NONE {
                devices_ok(self.links.devices(&devices::Request::SetGenerationId {
                    vm,
                    id: generation_id.to_le_bytes(),
                }))?;
            }
            Ok(())
        })();
        let activated = held.and_then(|()| {
            self.send_ioreq_ranges(vm)
                .and_then(|()| ioreq_ok(self.links.ioreq(&ioreq::Request::Activate { vm })))
                .map_err(down_on(Error::UnknownVm, endpoints::IOREQ))
        });
        added.and(activated)
    }

    /// The service on `endpoint` restarted knowing nothing: every VM it
    /// served is handed to it again. Every VM is tried; the first error
    /// is returned. `InvalidArgument` for an endpoint that is neither the
    /// ioreq nor the device service's.
    fn redo_for_restarted(&mut self, endpoint: u8) -> Result<(), Error> {
        let redo: fn(&mut Self, VmId) -> Result<(), Error> = match usize::from(endpoint) {
            endpoints::IOREQ => Self::reattach_ioreq,
            endpoints::DEVICES => Self::readd_devices,
            _ => return Err(Error::InvalidArgument),
        };
        let mut first_error = Ok(());
        for index in 0..self.records.len() {
            let Some(record) = self.records.get(index).and_then(Option::as_ref) else {
                continue;
            };
            let served = match usize::from(endpoint) {
                endpoints::IOREQ => record.ioreq_registered,
                _ => record.devices_registered,
            };
            let Ok(number) = u16::try_from(index) else {
                break;
            };
            if served && let Err(error) = redo(self, VmId(number)) {
                first_error = first_error.and(Err(error));
            }
        }
        first_error
    }

    /// The host's timebase (Hz, fitting a DT cell) and whether it has
    /// Sstc; [`TIMEBASE_HZ`] and no Sstc when the kernel does not say.
    fn host_timer(&mut self) -> (u32, bool) {
        if let Some(timer) = self.host_timer {
            return timer;
        }
        let timer = match self.kernel.platform_info() {
            Ok((hz, flags)) => (
                u32::try_from(hz)
                    .ok()
                    .filter(|hz| *hz != 0)
                    .unwrap_or(TIMEBASE_HZ),
                flags & PLATFORM_SSTC != 0,
            ),
            Err(_) => (TIMEBASE_HZ, false),
        };
        self.host_timer = Some(timer);
        timer
    }

    /// Generates `vm`'s boot description (device tree, or the x86
    /// boot-info block) in a buffer that grows to fit, places it
    /// (`boot_layout::place_dtb`) and hands it to the kernel.
    fn write_dtb(&mut self, vm: VmId) -> Result<(), Error> {
        let board = self.board;
        let (timebase_hz, sstc) = self.host_timer();
        let ram_base = board.ram_base();
        let record = self.record(vm)?;
        let name = record.name.clone().ok_or(Error::UnknownVm)?;
        let ram_bytes = u64::from(record.mem_mib) * 1024 * 1024;
        let plan = record.plan.ok_or(Error::UnknownImage)?;
        let initrd = plan.initrd.map(|span| InitrdRange {
            start: ram_base + span.offset,
            end: ram_base + span.end(),
        });
        let bootargs = record.linux.as_ref().map_or("", |l| l.cmdline.as_str());
        let guest = GuestBoot {
            name: &name,
            disk: record.disk.is_some(),
            vcpus: record.vcpus,
            ram_bytes,
            bootargs,
            initrd,
            timebase_hz,
            sstc,
        };
        let mut dtb = vec![0u8; FIRST_DTB_BUFFER];
        let len = match board.boot_info(&guest, &mut dtb) {
            Ok(len) => len,
            Err(e) if e.needed > dtb.len() => {
                dtb.resize(e.needed, 0);
                board
                    .boot_info(&guest, &mut dtb)
                    .map_err(|_| Error::InvalidArgument)?
            }
            Err(_) => return Err(Error::InvalidArgument),
        };
        let dtb = dtb.get(..len).ok_or(Error::InvalidArgument)?;
        let at = boot_layout::place_dtb(ram_bytes, plan.used_end(), len as u64)
            .map_err(|_| Error::OutOfMemory)?;
        if at == ram_bytes - DTB_PAGE {
            self.kernel.vm_set_dtb(vm, dtb)?;
        } else {
            self.kernel.vm_write_ram(vm, at, dtb)?;
        }
        self.record(vm)?.dtb_offset = at;
        Ok(())
    }

    /// Whether the board has a vmgenid device (the x86 board has none).
    fn board_has_genid(&self) -> bool {
        self.board
            .devices()
            .iter()
            .any(|d| d.kind == devices::DeviceKind::VmGenId)
    }

    /// Writes `id` into `vm`'s generation-ID page, on a board whose guests
    /// read it from RAM (the RISC-V board's vmgenid device).
    fn write_genid(&mut self, vm: VmId, id: GenerationId) -> Result<(), Error> {
        if !self.board_has_genid() || id == GenerationId::NONE || !self.record(vm)?.in_kernel {
            return Ok(());
        }
        self.kernel.vm_write_genid(vm, id.to_le_bytes())
    }

    /// Loads `vm`'s recorded image: a raw image at the board's image
    /// offset, or a Linux kernel at its header's `text_offset` and its
    /// initrd after it (`boot_layout`); records the plan. The kernel
    /// takes images by number: each name is looked up first
    /// (`UnknownImage` for a name the boot image lacks).
    fn load(&mut self, vm: VmId) -> Result<(), Error> {
        let image_offset = self.board.image_offset();
        let record = self.record(vm)?;
        let image = record.image.clone().ok_or(Error::UnknownImage)?;
        let linux = record.linux.clone();
        let ram_bytes = u64::from(record.mem_mib) * 1024 * 1024;
        let image = images::image_number(&mut self.kernel, &image)?;
        let plan = match linux {
            None => {
                let len = self.kernel.vm_load(vm, image, image_offset)?;
                boot_layout::plan_raw(ram_bytes, image_offset, len)
                    .map_err(|_| Error::OutOfMemory)?
            }
            Some(boot) => {
                let initrd = match &boot.initrd {
                    Some(name) => Some(images::image_number(&mut self.kernel, name)?),
                    None => None,
                };
                let plan = images::plan_linux(&mut self.kernel, ram_bytes, image, initrd)?;
                self.kernel.vm_load(vm, image, plan.kernel.offset)?;
                if let (Some(initrd), Some(span)) = (initrd, plan.initrd) {
                    self.kernel.vm_load(vm, initrd, span.offset)?;
                }
                plan
            }
        };
        self.record(vm)?.plan = Some(plan);
        Ok(())
    }
}

impl<K: VmKernel, S: ServiceLinks> Platform for KernelPlatform<K, S> {
    fn create_address_space(&mut self, vm: VmId, mem_mib: u32) -> Result<(), Error> {
        let entry = self
            .records
            .get_mut(usize::from(vm.0))
            .ok_or(Error::InvalidArgument)?;
        if entry.is_some() {
            return Err(Error::VmExists);
        }
        *entry = Some(VmRecord {
            mem_mib,
            image: None,
            vcpus: 0,
            name: None,
            generation_id: GenerationId::NONE,
            in_kernel: false,
            clone_of: None,
            linux: None,
            plan: None,
            dtb_offset: 0,
            ioreq_registered: false,
            devices_registered: false,
            disk: None,
        });
        Ok(())
    }

    fn load_image(
        &mut self,
        vm: VmId,
        image: &ImageName,
        linux: Option<&LinuxBoot>,
    ) -> Result<(), Error> {
        let record = self.record(vm)?;
        record.image = Some(image.clone());
        record.linux = linux.cloned();
        Ok(())
    }

    /// Records the copy for `create_vcpus` (the kernel copies RAM between
    /// two VMs it has made, and `target` is made there). The clone's
    /// resets reload the source's image. Only RAM is copied: the clone's
    /// vCPU boots at the image entry over it.
    fn clone_memory(&mut self, source: VmId, target: VmId) -> Result<(), Error> {
        let from = self.record(source)?;
        if !from.in_kernel || source == target {
            return Err(Error::InvalidArgument);
        }
        let (mem_mib, image) = (from.mem_mib, from.image.clone());
        let (linux, plan) = (from.linux.clone(), from.plan);
        let to = self.record(target)?;
        if to.mem_mib < mem_mib {
            return Err(Error::InvalidArgument);
        }
        to.clone_of = Some(source);
        to.image = image;
        to.linux = linux;
        to.plan = plan;
        Ok(())
    }

    fn create_vcpus(&mut self, vm: VmId, count: u8) -> Result<(), Error> {
        let record = self.record(vm)?;
        let mem_mib = record.mem_mib;
        if record.image.is_none() {
            return Err(Error::UnknownImage);
        }
        let clone_of = record.clone_of;
        self.kernel.vm_create(vm, mem_mib, count)?;
        let filled = match clone_of {
            Some(source) => self.kernel.vm_clone_ram(source, vm),
            None => self.load(vm),
        };
        if let Err(error) = filled {
            let destroyed = self.kernel.vm_destroy(vm);
            self.released(destroyed);
            return Err(error);
        }
        let record = self.record(vm)?;
        record.vcpus = count;
        record.in_kernel = true;
        Ok(())
    }

    fn register_ioreq(&mut self, vm: VmId) -> Result<(), Error> {
        let vcpus = self.record(vm)?.vcpus;
        ioreq_ok(self.links.ioreq(&ioreq::Request::AttachVm { vm, vcpus }))?;
        let set = self
            .send_ioreq_ranges(vm)
            .map_err(down_on(Error::UnknownVm, endpoints::IOREQ));
        if set.is_err() {
            let detached = ioreq_ok(self.links.ioreq(&ioreq::Request::DetachVm { vm }));
            self.released(detached);
        }
        set?;
        self.record(vm)?.ioreq_registered = true;
        Ok(())
    }

    fn register_devices(&mut self, vm: VmId, name: &VmName, disk: Option<u8>) -> Result<(), Error> {
        let taken = |other: &Option<VmRecord>| {
            other
                .as_ref()
                .is_some_and(|r| r.devices_registered && r.disk.is_some() && r.disk == disk)
        };
        if self.records.iter().any(taken) {
            return Err(Error::DiskInUse);
        }
        let record = self.record(vm)?;
        record.name = Some(name.clone());
        record.disk = disk;
        self.kernel.vm_set_name(vm, name.as_str())?;
        self.add_devices(vm, name)?;
        let written = self.write_dtb(vm);
        if written.is_err() {
            let removed = devices_ok(self.links.devices(&devices::Request::RemoveVm { vm }));
            self.released(removed);
        }
        written?;
        self.record(vm)?.devices_registered = true;
        Ok(())
    }

    /// The ID goes into guest RAM first, then to the vmgenid device, whose
    /// interrupt tells a running guest to read it again. If the device
    /// refuses, the old ID is written back: nothing changed. On a board
    /// without the device the ID is only recorded.
    fn set_generation_id(&mut self, vm: VmId, id: GenerationId) -> Result<(), Error> {
        if !self.board_has_genid() {
            self.record(vm)?.generation_id = id;
            return Ok(());
        }
        let old = self.record(vm)?.generation_id;
        self.write_genid(vm, id)?;
        let told = devices_ok(self.links.devices(&devices::Request::SetGenerationId {
            vm,
            id: id.to_le_bytes(),
        }))
        .map_err(down_on(Error::UnknownVm, endpoints::DEVICES));
        if let Err(error) = told {
            let restored = self.write_genid(vm, old);
            self.released(restored);
            return Err(error);
        }
        self.record(vm)?.generation_id = id;
        Ok(())
    }

    /// vCPU 0 enters at the kernel's (or raw image's) load offset with
    /// a1 = the device tree.
    fn start(&mut self, vm: VmId) -> Result<(), Error> {
        let record = self.record(vm)?;
        let entry = record.plan.ok_or(Error::UnknownImage)?.entry;
        let dtb = record.dtb_offset;
        self.kernel.vm_start(vm, entry, dtb)
    }

    fn pause(&mut self, vm: VmId) -> Result<(), Error> {
        self.kernel.vm_pause(vm)
    }

    fn resume(&mut self, vm: VmId) -> Result<(), Error> {
        self.kernel.vm_resume(vm)
    }

    /// `vm_reset`, fresh device models (re-added with the same generation
    /// ID), the image (kernel and initrd) and the device tree again; the
    /// vCPUs stay held until
    /// the vm-manager starts the VM.
    fn reset(&mut self, vm: VmId) -> Result<(), Error> {
        let record = self.record(vm)?;
        let name = record.name.clone().ok_or(Error::UnknownVm)?;
        let generation_id = record.generation_id;
        self.kernel.vm_reset(vm)?;
        devices_ok(self.links.devices(&devices::Request::RemoveVm { vm }))
            .map_err(down_on(Error::UnknownVm, endpoints::DEVICES))?;
        self.add_devices(vm, &name)?;
        if generation_id != GenerationId::NONE {
            devices_ok(self.links.devices(&devices::Request::SetGenerationId {
                vm,
                id: generation_id.to_le_bytes(),
            }))
            .map_err(down_on(Error::UnknownVm, endpoints::DEVICES))?;
        }
        self.load(vm)?;
        self.write_dtb(vm)?;
        // The reset zeroed RAM, the generation-ID page with it.
        self.write_genid(vm, generation_id)
    }

    fn unregister_devices(&mut self, vm: VmId) {
        if let Ok(record) = self.record(vm) {
            record.devices_registered = false;
        }
        let removed = devices_ok(self.links.devices(&devices::Request::RemoveVm { vm }));
        self.released(removed);
    }

    fn unregister_ioreq(&mut self, vm: VmId) {
        if let Ok(record) = self.record(vm) {
            record.ioreq_registered = false;
        }
        let detached = ioreq_ok(self.links.ioreq(&ioreq::Request::DetachVm { vm }));
        self.released(detached);
    }

    fn destroy_vcpus(&mut self, vm: VmId) {
        let Ok(record) = self.record(vm) else { return };
        if core::mem::replace(&mut record.in_kernel, false) {
            let destroyed = self.kernel.vm_destroy(vm);
            self.released(destroyed);
        }
    }

    fn free_address_space(&mut self, vm: VmId) {
        self.destroy_vcpus(vm);
        if let Some(entry) = self.records.get_mut(usize::from(vm.0)) {
            *entry = None;
        }
    }

    fn console_input(&mut self, vm: VmId, port: ConsolePort, bytes: &[u8]) -> Result<(), Error> {
        for piece in bytes.chunks(devices::INPUT_CHUNK) {
            let bytes = heapless::Vec::from_slice(piece).map_err(|_| Error::MessageTooLarge)?;
            let input = devices::Request::Input { vm, port, bytes };
            devices_ok(self.links.devices(&input))?;
        }
        Ok(())
    }

    fn console_focus(&mut self, vm: Option<VmId>) -> Result<(), Error> {
        devices_ok(self.links.devices(&devices::Request::ConsoleFocus { vm }))
    }

    fn console_output(&mut self, vm: VmId, from: u64) -> Result<devices::ConsoleChunk, Error> {
        match self
            .links
            .devices(&devices::Request::ConsoleRead { vm, from })
            .map_err(unanswered(endpoints::DEVICES))?
        {
            devices::Response::Console(chunk) => Ok(chunk),
            devices::Response::Err(error) => Err(error),
            devices::Response::Ok | devices::Response::Value(_) | devices::Response::Net(_) => {
                Err(Error::Malformed)
            }
        }
    }

    fn vm_stats(&mut self, vm: VmId) -> Result<VmStats, Error> {
        use ipc::syscall::vm_stats::{EXITS, MORE_EXITS, SERVICE_TIME};
        let [device_exits, hypercall_exits, wait_exits] = self.kernel.vm_stats(vm, EXITS)?;
        let [interrupt_exits, other_exits, ioreq_round_trips] =
            self.kernel.vm_stats(vm, MORE_EXITS)?;
        let [service_ns, posted_writes, _] = self.kernel.vm_stats(vm, SERVICE_TIME)?;
        // The device service's figures are an extra: the kernel's answer without them.
        let net = match self.links.devices(&devices::Request::NetCounters { vm }) {
            Ok(devices::Response::Net(counters)) => Some(counters),
            _ => None,
        };
        Ok(VmStats {
            device_exits,
            hypercall_exits,
            wait_exits,
            interrupt_exits,
            other_exits,
            ioreq_round_trips,
            service_ns,
            posted_writes,
            net,
            vcpus: ipc::vm::read_vcpus(|group| self.kernel.vm_stats(vm, group))?,
        })
    }

    fn service_restarted(&mut self, endpoint: u8) -> Result<(), Error> {
        self.redo_for_restarted(endpoint)
    }

    fn keep_config(&mut self, vm: VmId, options: &CreateOptions) -> Result<(), Error> {
        let mut note = [0u8; ipc::syscall::vm_adopt::NOTE_MAX];
        let note = ipc::encode(options, &mut note)?;
        self.kernel.vm_set_note(vm, note)
    }

    fn guest_image(&mut self, index: u16) -> Result<Option<GuestImage>, Error> {
        images::guest_image(&mut self.kernel, index)
    }

    fn adopt(&mut self, vm: VmId) -> Result<Option<Adopted>, Error> {
        let found = match self.kernel.vm_adopt(vm) {
            Ok(found) => found,
            Err(Error::UnknownVm) => return Ok(None),
            Err(error) => return Err(error),
        };
        let entry = self
            .records
            .get_mut(usize::from(vm.0))
            .ok_or(Error::InvalidArgument)?;
        let name = VmName::parse(&found.name).map_err(|_| Error::InvalidName)?;
        let generation_id = GenerationId::from_u128(u128::from_le_bytes(found.generation_id));
        // Services and kernel serve it already: only the record is new
        // (its disk comes with `adopted_disk`).
        *entry = Some(VmRecord {
            mem_mib: found.mem_mib,
            image: None,
            vcpus: found.vcpus,
            name: Some(name.clone()),
            generation_id,
            in_kernel: true,
            clone_of: None,
            linux: None,
            plan: None,
            dtb_offset: 0,
            ioreq_registered: true,
            devices_registered: true,
            disk: None,
        });
        use ipc::syscall::vm_status;
        let state = match found.status {
            vm_status::CREATED => AdoptedState::Created,
            vm_status::RUNNING => AdoptedState::Started,
            vm_status::PAUSED => AdoptedState::Paused,
            _ => AdoptedState::Ended,
        };
        Ok(Some(Adopted {
            name,
            state,
            mem_mib: found.mem_mib,
            vcpus: found.vcpus,
            generation_id,
            options: ipc::decode(&found.note).ok(),
        }))
    }

    fn adopted_disk(&mut self, vm: VmId, disk: Option<u8>) {
        if let Some(Some(record)) = self.records.get_mut(usize::from(vm.0)) {
            record.disk = disk;
        }
    }

    fn guest_status(&mut self, vm: VmId) -> Result<GuestStatus, Error> {
        let (status, record) = self.kernel.vm_status(vm)?;
        Ok(GuestStatus::from_kernel(status, &record))
    }
}
