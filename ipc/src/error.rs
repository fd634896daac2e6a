//! The one error type of every Mica protocol, with stable numeric codes.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::vm::VmState;

/// Why a request was refused.
///
/// Each variant has a stable numeric code ([`Error::code`]) that tools and
/// logs may rely on; tests pin both the codes and the wire bytes, so
/// reordering or renumbering the variants breaks the build's tests. New
/// variants are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum Error {
    /// The message bytes could not be decoded (truncated, trailing bytes,
    /// unknown variant, invalid UTF-8 ...). Nothing was done.
    Malformed = 1,
    /// The message does not fit in [`crate::MAX_MESSAGE_SIZE`] bytes.
    MessageTooLarge = 2,
    /// The server task died while it held this request; the supervisor is
    /// restarting it. The request may or may not have taken effect.
    ServerDied = 3,
    /// A VM name breaks the rule: 1-31 bytes of `[A-Za-z0-9._-]`.
    InvalidName = 4,
    /// A VM with this name already exists.
    DuplicateName = 5,
    /// Every slot is in use: at most `max` VMs can exist at once.
    NoFreeSlot {
        /// The configured maximum number of VMs.
        max: u16,
    } = 6,
    /// No VM has this name (or slot number).
    UnknownVm = 7,
    /// The operation is not allowed in the VM's current state.
    IllegalTransition {
        /// The state the VM is in.
        state: VmState,
    } = 8,
    /// Not enough free memory for the VM (or the requested size is zero or
    /// beyond what the platform allows).
    OutOfMemory = 9,
    /// The named guest image (or template) does not exist.
    UnknownImage = 10,
    /// An address range overlaps one that is already registered.
    RangeOverlap = 11,
    /// An address range is empty or wraps around the address space.
    InvalidRange = 12,
    /// The I/O client is not registered for this VM.
    UnknownClient = 13,
    /// An ioreq slot was in a state that does not allow the operation; the
    /// slot was left untouched and the event counted.
    BadSlotState = 14,
    /// No device (and no default client) claims the accessed address.
    NoDevice = 15,
    /// An access of an unsupported width or alignment.
    BadAccess = 16,
    /// A device is already attached at that place.
    DeviceExists = 17,
    /// A request argument is out of range (vCPU count, slot index ...).
    InvalidArgument = 18,
    /// The caller does not hold the right to make this request.
    PermissionDenied = 19,
    /// The kernel refused the operation (it ran out of a resource).
    KernelRefused = 20,
    /// An ioreq client already exists for this VM (e.g. a second default).
    ClientExists = 21,
    /// The service already serves a VM with this id (detach it first).
    VmExists = 22,
    /// A fixed-size table of the service is full (address ranges, devices
    /// on a bus); remove an entry first.
    TableFull = 23,
    /// The machine has no hardware entropy source (no Zkr `seed` CSR, no
    /// RDSEED/RDRAND), or it failed: nothing random can be drawn.
    NoEntropy = 24,
    /// The service on endpoint `endpoint` (`crate::syscall::endpoints`)
    /// died while it held a step of this request and is being restarted;
    /// a VM being created is left out, other steps as they got: retry.
    ServiceDown {
        /// The dead service's endpoint number.
        endpoint: u8,
    } = 25,
    /// A timed call's deadline passed before the answer came
    /// (`Sysno::CallTimed`): the peer hangs or is too busy; the request
    /// may or may not take effect.
    TimedOut = 26,
    /// The service on endpoint `endpoint` did not answer a step of this
    /// request within its deadline: it hangs (the supervisor restarts a
    /// service that stops answering) or is overloaded; retry.
    ServiceHung {
        /// The silent service's endpoint number.
        endpoint: u8,
    } = 27,
    /// A `Create` of a dynamic VM named neither an image (nor a Linux
    /// kernel) nor a template to copy: there is nothing to boot. Nothing
    /// was done.
    NoImageGiven = 28,
    /// The host device failed the transfer (a disk read or write the
    /// block service's device reported as failed): the guest sees an I/O
    /// error.
    IoFailed = 29,
    /// The disk is another VM's already (a disk is written by one VM at a
    /// time).
    DiskInUse = 30,
    /// A `Create` of a static VM's name gave settings (a template, image,
    /// memory, vCPUs ...): the scenario fixes a static VM's settings, and
    /// its name stays its own while it is powered off (shut down or
    /// destroyed), so it is created by its name alone. Nothing was done.
    StaticSettings = 31,
    /// The ioreq slot's access is with an I/O client already (an earlier
    /// `ioreq_forward` handed it over): the client's answer completes it,
    /// or hands it back if the client fails. Nothing was done.
    Forwarded = 32,
}

impl Error {
    /// The stable numeric code of this error (never 0, which means success
    /// wherever a code travels in a register).
    pub const fn code(&self) -> u32 {
        match self {
            Error::Malformed => 1,
            Error::MessageTooLarge => 2,
            Error::ServerDied => 3,
            Error::InvalidName => 4,
            Error::DuplicateName => 5,
            Error::NoFreeSlot { .. } => 6,
            Error::UnknownVm => 7,
            Error::IllegalTransition { .. } => 8,
            Error::OutOfMemory => 9,
            Error::UnknownImage => 10,
            Error::RangeOverlap => 11,
            Error::InvalidRange => 12,
            Error::UnknownClient => 13,
            Error::BadSlotState => 14,
            Error::NoDevice => 15,
            Error::BadAccess => 16,
            Error::DeviceExists => 17,
            Error::InvalidArgument => 18,
            Error::PermissionDenied => 19,
            Error::KernelRefused => 20,
            Error::ClientExists => 21,
            Error::VmExists => 22,
            Error::TableFull => 23,
            Error::NoEntropy => 24,
            Error::ServiceDown { .. } => 25,
            Error::TimedOut => 26,
            Error::ServiceHung { .. } => 27,
            Error::NoImageGiven => 28,
            Error::IoFailed => 29,
            Error::DiskInUse => 30,
            Error::StaticSettings => 31,
            Error::Forwarded => 32,
        }
    }
}

/// A service by its endpoint number, for messages.
struct ServiceName(u8);

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::syscall::endpoints;
        match usize::from(self.0) {
            endpoints::VM_MANAGER => f.write_str("vm-manager"),
            endpoints::IOREQ => f.write_str("ioreq service"),
            endpoints::DEVICES => f.write_str("device service"),
            endpoints::RNG => f.write_str("rng service"),
            endpoints::BLK => f.write_str("block service"),
            other => write!(f, "service on endpoint {other}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed => f.write_str("malformed message"),
            Error::MessageTooLarge => f.write_str("message too large"),
            Error::ServerDied => f.write_str("server died; it is being restarted, retry"),
            Error::InvalidName => f.write_str("invalid VM name: use 1-31 of [A-Za-z0-9._-]"),
            Error::DuplicateName => f.write_str("a VM with that name already exists"),
            Error::NoFreeSlot { max } => write!(f, "no free VM slot (maximum is {max} VMs)"),
            Error::UnknownVm => f.write_str("no such VM"),
            Error::IllegalTransition { state } => {
                write!(f, "not allowed while the VM is {state}")
            }
            Error::OutOfMemory => f.write_str("not enough memory"),
            Error::UnknownImage => f.write_str("no such guest image"),
            Error::RangeOverlap => f.write_str("address range overlaps a registered range"),
            Error::InvalidRange => f.write_str("address range is empty or wraps"),
            Error::UnknownClient => f.write_str("no such I/O client"),
            Error::BadSlotState => f.write_str("ioreq slot in the wrong state"),
            Error::NoDevice => f.write_str("no device at that address"),
            Error::BadAccess => f.write_str("unsupported access width or alignment"),
            Error::DeviceExists => f.write_str("a device is already attached there"),
            Error::InvalidArgument => f.write_str("argument out of range"),
            Error::PermissionDenied => f.write_str("permission denied"),
            Error::KernelRefused => f.write_str("the kernel refused (out of resources)"),
            Error::ClientExists => f.write_str("that I/O client already exists"),
            Error::VmExists => f.write_str("the service already serves that VM"),
            Error::TableFull => f.write_str("the service's table is full"),
            Error::NoEntropy => f.write_str(
                "no hardware entropy source (RISC-V Zkr, x86 RDSEED/RDRAND): give the CPU one",
            ),
            Error::ServiceDown { endpoint } => write!(
                f,
                "the {} died during the request and is being restarted: retry",
                ServiceName(*endpoint)
            ),
            Error::TimedOut => f.write_str("no answer before the deadline"),
            Error::ServiceHung { endpoint } => write!(
                f,
                "the {} did not answer in time (hung or overloaded): retry",
                ServiceName(*endpoint)
            ),
            Error::NoImageGiven => f.write_str("no guest image or template given"),
            Error::IoFailed => f.write_str("the host device failed the transfer (I/O error)"),
            Error::DiskInUse => f.write_str("that disk is attached to another VM"),
            Error::StaticSettings => {
                f.write_str("a static VM's settings are fixed by the scenario: give none")
            }
            Error::Forwarded => f.write_str("the access is with an I/O client already"),
        }
    }
}
