//! VMs from the VM system calls on x86_64: not wired to SVM yet. Every
//! `vm_create` is refused (the vm-manager reports `vmN not started`), so
//! the generic VM calls and the run loop see the same `GuestVm` names as
//! on RISC-V. The SVM world switch itself is proven by the boot self-test.

use ipc::Error;

use crate::frame::FrameAllocator;
use crate::vm::ioreq_path::IoreqDispatch;
use crate::vm::{Vm, VmName, VmState};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// An interrupt for the host: the scheduler decides what runs next.
    Preempted,
    /// The vCPU waits for its ioreq slot.
    BlockedOnIo,
    /// The VM left the running state.
    Left(VmState),
    /// The guest waits for its timer, due at this time.
    Sleeping(u64),
}

/// A VM's arch state (none can be made yet).
pub struct GuestVm {
    /// The generic VM object.
    pub vm: Vm,
}

impl GuestVm {
    /// Refused: SVM vCPUs from the VM calls come next.
    pub fn create<const W: usize>(
        _frames: &mut FrameAllocator<W>,
        _name: VmName,
        _ram_bytes: u64,
    ) -> Result<Self, Error> {
        Err(Error::KernelRefused)
    }

    /// The physical frame of the ioreq page (none yet).
    pub fn ioreq_frame(&self) -> u64 {
        0
    }

    /// Copies a guest image into RAM.
    pub fn load_image(&mut self, _image: &[u8]) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }

    /// Copies the boot description into RAM.
    pub fn set_dtb(&mut self, _dtb: &[u8]) -> Result<u64, Error> {
        Err(Error::KernelRefused)
    }

    /// Puts vCPU 0 at its entry.
    pub fn start(&mut self) {}

    /// Stops the vCPU and zeroes RAM.
    pub fn reset(&mut self) {}

    /// Completes the vCPU's device access.
    pub fn resume_io(&mut self) -> Result<(), Error> {
        Err(Error::BadSlotState)
    }

    /// Returns every frame of the VM.
    pub fn destroy<const W: usize>(self, _frames: &mut FrameAllocator<W>) {}

    /// Raises or lowers the guest's external interrupt (nothing on x86 yet).
    pub fn set_external_irq(&mut self, _raised: bool) {}

    /// Writes the VM generation ID into guest RAM.
    pub fn write_genid(&mut self, _id: [u8; 16]) -> Result<u64, Error> {
        Err(Error::KernelRefused)
    }

    /// Copies `src`'s RAM over this VM's.
    pub fn clone_ram_from(&mut self, _src: &GuestVm) -> Result<(), Error> {
        Err(Error::KernelRefused)
    }

    /// Runs the vCPU until the host must decide something.
    pub fn run(&mut self, _dispatch: &mut dyn IoreqDispatch) -> RunOutcome {
        RunOutcome::Left(self.vm.state())
    }
}
