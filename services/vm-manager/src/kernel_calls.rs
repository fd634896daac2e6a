//! What the vm-manager's [`crate::kernel_platform::KernelPlatform`] needs
//! from outside the library: the kernel's VM calls ([`VmKernel`], system
//! calls in the task, fakes in the tests) and requests to the ioreq and
//! device services ([`ServiceLinks`]).

use ipc::syscall::IMAGE_HEADER_BYTES;
use ipc::syscall::vm_exit::ExitRecord;
use ipc::{Error, VmId, WireName, devices, ioreq};

/// The kernel's VM-control calls (`ipc::syscall` 12-19, 30-34).
pub trait VmKernel {
    /// Makes VM `vm` with `ram_mib` MiB of RAM and `vcpus` stopped vCPUs.
    fn vm_create(&mut self, vm: VmId, ram_mib: u32, vcpus: u8) -> Result<(), Error>;
    /// Copies boot-image guest number `image` (as [`VmKernel::image_name`]
    /// numbers them) into `vm`'s RAM at `offset` from its start; returns
    /// the image's length.
    fn vm_load(&mut self, vm: VmId, image: usize, offset: u64) -> Result<u64, Error>;
    /// Gives `vm` its device tree (at most a page) in the top page of RAM.
    fn vm_set_dtb(&mut self, vm: VmId, dtb: &[u8]) -> Result<(), Error>;
    /// Lets the servers of the endpoints in `endpoints` (bit `n` =
    /// endpoint `n`: the devices service) read and write `vm`'s RAM, for
    /// its virtio devices' queues and buffers, until the VM is reset or
    /// destroyed (`vm_grant_ram`).
    fn vm_grant_ram(&mut self, vm: VmId, endpoints: u64) -> Result<(), Error>;
    /// Starts vCPU 0 at `entry` with a1 = the tree at `dtb` (offsets from
    /// the start of RAM).
    fn vm_start(&mut self, vm: VmId, entry: u64, dtb: u64) -> Result<(), Error>;
    /// Boot-image guest number `image`'s length and first bytes (a Linux
    /// Image header). The default knows no image.
    fn image_info(&mut self, _image: usize) -> Result<(u64, [u8; IMAGE_HEADER_BYTES]), Error> {
        Err(Error::UnknownImage)
    }
    /// The name and length of boot-image guest number `index` (guest
    /// entries only, in the boot image's order, from 0); `UnknownImage`
    /// past the last. The kernel knows images only by these numbers: the
    /// vm-manager finds a name's number here. The default knows no image.
    fn image_name(&mut self, _index: usize) -> Result<(WireName, u64), Error> {
        Err(Error::UnknownImage)
    }
    /// Copies `bytes` into `vm`'s RAM at `offset` (below the generation-ID
    /// page). The default refuses: a kernel without the call.
    fn vm_write_ram(&mut self, _vm: VmId, _offset: u64, _bytes: &[u8]) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// The host's timebase in Hz and its `PLATFORM_*` bits. The default
    /// refuses (guests then get [`TIMEBASE_HZ`] and no Sstc).
    fn platform_info(&mut self) -> Result<(u64, usize), Error> {
        Err(Error::KernelRefused)
    }
    /// Holds every vCPU.
    fn vm_pause(&mut self, vm: VmId) -> Result<(), Error>;
    /// Lets held vCPUs run again.
    fn vm_resume(&mut self, vm: VmId) -> Result<(), Error>;
    /// Stops the vCPUs, drops I/O in flight, zeroes RAM.
    fn vm_reset(&mut self, vm: VmId) -> Result<(), Error>;
    /// Tears the VM down from any state.
    fn vm_destroy(&mut self, vm: VmId) -> Result<(), Error>;
    /// Writes `vm`'s generation ID into its generation-ID page (RISC-V
    /// guests read it there). The default writes nothing: a kernel without
    /// guests' memory (or a test double that does not look at it).
    fn vm_write_genid(&mut self, _vm: VmId, _id: [u8; 16]) -> Result<(), Error> {
        Ok(())
    }
    /// Copies the held `source`'s RAM over the start of `target`'s. The
    /// default refuses: a kernel without the call.
    fn vm_clone_ram(&mut self, _source: VmId, _target: VmId) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }
    /// `vm_set_name`: the kernel's lines about `vm` use `name`.
    fn vm_set_name(&mut self, _vm: VmId, _name: &str) -> Result<(), Error> {
        Ok(())
    }
    /// `vm_status`: an `ipc::syscall::vm_status` value and the exit
    /// record (`ipc::syscall::vm_exit`) the kernel wrote with it.
    fn vm_status(&mut self, _vm: VmId) -> Result<(usize, ExitRecord), Error> {
        Err(Error::KernelRefused)
    }
    /// `vm_stats`: the three counters of `group` (an
    /// `ipc::syscall::vm_stats` value). The default refuses: a kernel
    /// without the call.
    fn vm_stats(&mut self, _vm: VmId, _group: usize) -> Result<[u64; 3], Error> {
        Err(Error::KernelRefused)
    }
    /// `vm_adopt`: takes over `vm` (told when its guest ends) and reads
    /// what the kernel knows of it. The default has no VM to hand over.
    fn vm_adopt(&mut self, _vm: VmId) -> Result<KernelVm, Error> {
        Err(Error::UnknownVm)
    }
    /// `vm_set_note`: the kernel keeps `note` with `vm` for a later
    /// `vm_adopt`. The default keeps nothing.
    fn vm_set_note(&mut self, _vm: VmId, _note: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// What the kernel knows of a VM it hands to a restarted vm-manager
/// (`vm_adopt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVm {
    /// Its `ipc::syscall::vm_status`.
    pub status: usize,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// Its name (`vm_set_name`'s).
    pub name: heapless::String<32>,
    /// The generation ID last written into it.
    pub generation_id: [u8; 16],
    /// The note kept with it (`vm_set_note`).
    pub note: heapless::Vec<u8, { ipc::syscall::vm_adopt::NOTE_MAX }>,
}

/// Calls to the other services (IPC `call`s on their endpoints).
pub trait ServiceLinks {
    /// One request to the ioreq service.
    fn ioreq(&mut self, request: &ioreq::Request) -> Result<ioreq::Response, Error>;
    /// One request to the device service.
    fn devices(&mut self, request: &devices::Request) -> Result<devices::Response, Error>;
}
