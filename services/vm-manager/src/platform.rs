//! The [`Platform`] trait: every effect of the vm-manager on the kernel and
//! on other services (address spaces, vCPUs, ioreq and device registration,
//! running and holding vCPUs, the vmgenid device). The task binary implements
//! it with syscalls and IPC; tests implement it with a recording fake.

use ipc::VmId;
use ipc::devices::ConsoleChunk;
use ipc::vm::{ConsolePort, CreateOptions, GuestImage, LastExit, StopCause, VmStats};

use crate::genid::GenerationId;
use crate::linux_boot::LinuxBoot;
use crate::name::{ImageName, VmName};

/// The effects the vm-manager needs. Acquiring calls may fail with an
/// [`ipc::Error`], in which case they must have acquired nothing; releasing
/// calls cannot fail (a kernel always takes resources back).
///
/// Creating a VM acquires, in this order: an address space, its contents
/// (an image, or a copy of another VM's memory), vCPUs, the ioreq
/// registration, the device registration, and the generation ID. The
/// vm-manager releases them in the reverse order, both on teardown and when
/// a later step of a creation fails.
/// How a VM's guest stands, as the kernel sees it after it said the VM
/// ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestStatus {
    /// Still running (or never started): nothing ended.
    Running,
    /// It left running, as the exit says: the guest powered off
    /// ([`LastExit::PoweredOff`]) or asked for a reboot
    /// ([`LastExit::Rebooted`]), or the kernel stopped it
    /// ([`LastExit::Stopped`], with the cause and the guest's pc); and
    /// when, in milliseconds since Mica booted, if the kernel said.
    Ended(LastExit, Option<u64>),
}

impl GuestStatus {
    /// How a VM stands from its `vm_status` value and exit record
    /// (`ipc::syscall::vm_exit`). The status says what the VM did
    /// (power-off, reboot or stop); the record says why, and is used when
    /// it agrees with the status (a record that does not, or none, gives
    /// the plain exit of that status).
    pub fn from_kernel(status: usize, record: &ipc::syscall::vm_exit::ExitRecord) -> Self {
        use ipc::syscall::{vm_exit, vm_status};
        let exit = match (status, LastExit::from_record(record)) {
            (vm_status::POWERED_OFF, Some(exit @ LastExit::PoweredOff { .. }))
            | (vm_status::REBOOT_REQUESTED, Some(exit @ LastExit::Rebooted { .. }))
            | (vm_status::STOPPED, Some(exit @ LastExit::Stopped { .. })) => exit,
            (vm_status::POWERED_OFF, _) => LastExit::PoweredOff { reason: 0 },
            (vm_status::REBOOT_REQUESTED, _) => LastExit::Rebooted {
                warm: false,
                reason: 0,
            },
            (vm_status::STOPPED, _) => LastExit::Stopped {
                cause: StopCause::Other {
                    kind: vm_exit::STOPPED_UNKNOWN,
                },
                pc: 0,
            },
            _ => return GuestStatus::Running,
        };
        GuestStatus::Ended(exit, Some(record.uptime_ms))
    }
}

pub trait Platform {
    /// Creates `vm`'s guest address space with `mem_mib` MiB of RAM.
    /// Fails with `OutOfMemory` when the RAM is not available.
    fn create_address_space(&mut self, vm: VmId, mem_mib: u32) -> Result<(), ipc::Error>;

    /// Loads `image` into `vm`'s RAM and sets the boot entry: a raw image,
    /// or with `linux` a Linux kernel Image with its initrd and command
    /// line. Fails with `UnknownImage` when there is no such image,
    /// `OutOfMemory` when it does not fit.
    fn load_image(
        &mut self,
        vm: VmId,
        image: &ImageName,
        linux: Option<&LinuxBoot>,
    ) -> Result<(), ipc::Error>;

    /// Copies the RAM of the (paused) `source` into `target`, whose address
    /// space exists and has the same size.
    fn clone_memory(&mut self, source: VmId, target: VmId) -> Result<(), ipc::Error>;

    /// Creates `count` vCPUs for `vm`, held at the boot entry.
    fn create_vcpus(&mut self, vm: VmId, count: u8) -> Result<(), ipc::Error>;

    /// Registers `vm` with the ioreq service (its I/O request page).
    fn register_ioreq(&mut self, vm: VmId) -> Result<(), ipc::Error>;

    /// Registers `vm` with the device service under `name`, with host disk
    /// `disk` as a virtio-blk device when given (`DiskInUse` when another
    /// VM has it).
    fn register_devices(
        &mut self,
        vm: VmId,
        name: &VmName,
        disk: Option<u8>,
    ) -> Result<(), ipc::Error>;

    /// Tells the vmgenid device of `vm` its generation ID; for a running VM
    /// the device notifies the guest of the change.
    fn set_generation_id(&mut self, vm: VmId, id: GenerationId) -> Result<(), ipc::Error>;

    /// Lets `vm`'s vCPUs run.
    fn start(&mut self, vm: VmId) -> Result<(), ipc::Error>;

    /// Holds `vm`'s vCPUs; memory and devices are kept.
    fn pause(&mut self, vm: VmId) -> Result<(), ipc::Error>;

    /// Lets `vm`'s held vCPUs run again.
    fn resume(&mut self, vm: VmId) -> Result<(), ipc::Error>;

    /// Reboots `vm` in place: devices reset, memory reloaded from its image,
    /// vCPUs back at the entry and held (as after creation).
    fn reset(&mut self, vm: VmId) -> Result<(), ipc::Error>;

    /// Removes `vm` from the device service.
    fn unregister_devices(&mut self, vm: VmId);

    /// Removes `vm` from the ioreq service.
    fn unregister_ioreq(&mut self, vm: VmId);

    /// Destroys `vm`'s vCPUs, whatever they are doing.
    fn destroy_vcpus(&mut self, vm: VmId);

    /// Frees `vm`'s address space and RAM.
    fn free_address_space(&mut self, vm: VmId);

    /// Types `bytes` at `vm`'s console `port` (its UART's receive path, or
    /// its virtio console's), in order. Fails with `NoDevice` when the VM
    /// has no such console device.
    fn console_input(
        &mut self,
        vm: VmId,
        port: ConsolePort,
        bytes: &[u8],
    ) -> Result<(), ipc::Error>;

    /// `vm`'s console output from byte number `from` on (see
    /// [`ConsoleChunk`]). Fails with `UnknownVm` when the device service does
    /// not serve the VM.
    fn console_output(&mut self, vm: VmId, from: u64) -> Result<ConsoleChunk, ipc::Error>;

    /// Shows only `vm`'s console lines on the hypervisor console, or every
    /// VM's again (`None`; see `ipc::devices::Request::ConsoleFocus`). A
    /// platform without a shared console has nothing to do.
    fn console_focus(&mut self, _vm: Option<VmId>) -> Result<(), ipc::Error> {
        Ok(())
    }

    /// How `vm`'s guest stands (asked when the kernel said it ended). A
    /// platform that cannot tell says it runs, so nothing changes.
    fn guest_status(&mut self, _vm: VmId) -> Result<GuestStatus, ipc::Error> {
        Ok(GuestStatus::Running)
    }

    /// `vm`'s exits and I/O accounting since it last started. A platform
    /// that does not count refuses with `KernelRefused`.
    fn vm_stats(&mut self, _vm: VmId) -> Result<VmStats, ipc::Error> {
        Err(ipc::Error::KernelRefused)
    }

    /// The service on endpoint `endpoint` died and runs again, knowing
    /// nothing: every VM it served is handed to it again (the first error
    /// is returned after every VM was tried). A platform without such
    /// services refuses with `InvalidArgument`.
    fn service_restarted(&mut self, _endpoint: u8) -> Result<(), ipc::Error> {
        Err(ipc::Error::InvalidArgument)
    }

    /// Keeps a dynamic VM's configuration (as the options that build it
    /// again) where a restarted vm-manager finds it ([`Platform::adopt`]).
    /// The default keeps nothing.
    fn keep_config(&mut self, _vm: VmId, _options: &CreateOptions) -> Result<(), ipc::Error> {
        Ok(())
    }

    /// After the vm-manager restarted: takes over VM `vm` if the platform
    /// still has it (its resources stay as they are) and says what it is;
    /// `None` if there is no VM there. The default has none.
    fn adopt(&mut self, _vm: VmId) -> Result<Option<Adopted>, ipc::Error> {
        Ok(None)
    }

    /// After [`Platform::adopt`]: the host disk the adopted VM `vm` has (its
    /// configuration's), so that a restarted device service gets it again
    /// and no other VM is given it. The default keeps nothing.
    fn adopted_disk(&mut self, _vm: VmId, _disk: Option<u8>) {}

    /// Guest image number `index` of the boot image (in its order, from
    /// 0): name, kind and size; `None` past the last. The default has none.
    fn guest_image(&mut self, _index: u16) -> Result<Option<GuestImage>, ipc::Error> {
        Ok(None)
    }
}

/// How an adopted VM stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoptedState {
    /// Built, not started (or reset).
    Created,
    /// Its vCPUs run.
    Started,
    /// Its vCPUs are held.
    Paused,
    /// Its guest ended while nobody was listening (handled as such).
    Ended,
}

/// A VM a restarted vm-manager found ([`Platform::adopt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    /// Its name.
    pub name: VmName,
    /// How it stands.
    pub state: AdoptedState,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// Its current generation ID.
    pub generation_id: GenerationId,
    /// The options that build its configuration, as kept by
    /// [`Platform::keep_config`] (`None`: none kept, or unreadable).
    pub options: Option<CreateOptions>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::syscall::vm_exit::{self, ExitRecord};
    use ipc::syscall::vm_status;

    fn record(kind: u32) -> ExitRecord {
        ExitRecord {
            kind,
            detail: 1,
            a: 0x10,
            b: 0,
            pc: 0x20,
            uptime_ms: 1_230,
        }
    }

    #[test]
    fn the_status_says_what_happened_and_the_record_why() {
        assert_eq!(
            GuestStatus::from_kernel(vm_status::RUNNING, &record(vm_exit::NONE)),
            GuestStatus::Running
        );
        assert_eq!(
            GuestStatus::from_kernel(vm_status::POWERED_OFF, &record(vm_exit::POWER_OFF)),
            GuestStatus::Ended(LastExit::PoweredOff { reason: 1 }, Some(1_230))
        );
        assert_eq!(
            GuestStatus::from_kernel(vm_status::STOPPED, &record(vm_exit::GUEST_PAGE_FAULT)),
            GuestStatus::Ended(
                LastExit::Stopped {
                    cause: StopCause::GuestPageFault {
                        access: ipc::vm::GuestAccess::Store,
                        gpa: 0x10
                    },
                    pc: 0x20
                },
                Some(1_230)
            )
        );
        // A record that disagrees with the status, or none, gives the
        // plain exit of the status: the status decides what is done.
        assert_eq!(
            GuestStatus::from_kernel(vm_status::REBOOT_REQUESTED, &record(vm_exit::POWER_OFF)),
            GuestStatus::Ended(
                LastExit::Rebooted {
                    warm: false,
                    reason: 0
                },
                Some(1_230)
            )
        );
        assert_eq!(
            GuestStatus::from_kernel(vm_status::STOPPED, &record(vm_exit::NONE)),
            GuestStatus::Ended(
                LastExit::Stopped {
                    cause: StopCause::Other {
                        kind: vm_exit::STOPPED_UNKNOWN
                    },
                    pc: 0
                },
                Some(1_230)
            )
        );
        assert_eq!(
            GuestStatus::from_kernel(vm_status::POWERED_OFF, &ExitRecord::default()),
            GuestStatus::Ended(LastExit::PoweredOff { reason: 0 }, Some(0))
        );
    }
}
