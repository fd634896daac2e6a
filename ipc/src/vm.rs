//! The vm-manager protocol: VM lifecycle and queries, by name.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::devices::ConsoleChunk;
pub use crate::devices::ConsolePort;
use crate::{Error, VmId, WireName};

pub mod events;
pub mod stats;

pub use events::{EVENT_HISTORY, EVENTS_PAGE, EventPage, VmChange, VmEvent};
pub use stats::{VcpuInfo, VcpuList, VcpuState, VmStats, read_vcpus};

/// How many VMs one `List` response carries; ask again from `next` for more.
/// (Four of the widest [`VmInfo`], each with a [`LastExit`] and its time,
/// fit one message.)
pub const LIST_PAGE: usize = 4;

/// How many guest images one `Images` response carries; ask again from
/// `next` for more. (Eight of the widest [`GuestImage`], a 32-byte name
/// with its kind and a 10-byte size, fit one message with room to spare.)
pub const IMAGES_PAGE: usize = 8;

/// How many dynamic VMs that ended (and gave their slot back) the
/// vm-manager remembers, by name, for [`Response::Ended`].
pub const ENDED_HISTORY: usize = 8;

/// The longest kernel command line a `Create` carries (a `Create` must fit
/// one 512-byte message; a scenario file's VMs may have up to 1023 bytes).
pub const MAX_WIRE_CMDLINE: usize = 256;

/// Most console input bytes one `ConsoleInput` carries (what the device
/// service takes in one `Input`).
pub const CONSOLE_INPUT_CHUNK: usize = crate::devices::INPUT_CHUNK;

/// How long the vm-manager waits for the ioreq or device service to answer
/// one step before it names the service hung (`Error::ServiceHung`): far
/// longer than any step takes, however large the VM.
pub const SERVICE_DEADLINE_MS: u64 = 10_000;

/// How long the shell, the management channel and the supervisor wait for
/// the vm-manager: one request may wait on several service steps, each
/// with its own [`SERVICE_DEADLINE_MS`].
pub const VM_MANAGER_DEADLINE_MS: u64 = 60_000;

/// A kernel command line on the wire.
pub type WireCmdline = heapless::String<MAX_WIRE_CMDLINE>;

/// The lifecycle state of a VM (ACRN's VM state machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    /// Configured but not running; no resources held.
    PoweredOff,
    /// Address space, vCPUs and devices exist; no vCPU runs yet.
    Created,
    /// vCPUs are runnable.
    Started,
    /// vCPUs are held; memory and devices are kept.
    Paused,
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmState::PoweredOff => "powered-off",
            VmState::Created => "created",
            VmState::Started => "started",
            VmState::Paused => "paused",
        })
    }
}

/// Whether a VM comes from the build-time scenario or took a free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmKind {
    /// Configured at build time (`STATIC` flag); the configuration outlives
    /// the VM.
    Static,
    /// Created at run time in a free slot; the configuration is released at
    /// shutdown and destroy.
    Dynamic,
}

/// Optional settings of a `Create`; unset fields come from the template or
/// the static configuration, then from the platform defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOptions {
    /// Copy the configuration of this static VM (Xvisor's "copy a guest").
    pub template: Option<WireName>,
    /// Boot this guest image (by image name).
    pub image: Option<WireName>,
    /// RAM in MiB.
    pub mem_mib: Option<u32>,
    /// Number of vCPUs.
    pub vcpus: Option<u8>,
    /// Boot this Linux kernel Image (a boot-image entry) instead of a raw
    /// image; not together with `image`.
    pub kernel: Option<WireName>,
    /// The kernel's initial ramdisk (a boot-image entry).
    pub initrd: Option<WireName>,
    /// The kernel command line (`/chosen/bootargs`).
    pub cmdline: Option<WireCmdline>,
    /// The host disk (the block service's disk number) the VM gets as a
    /// virtio-blk device; a template's disk is never copied.
    pub disk: Option<u8>,
}

/// What a guest access tried to do when it faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestAccess {
    /// A load.
    Load,
    /// A store (or AMO).
    Store,
    /// An instruction fetch.
    Fetch,
}

impl GuestAccess {
    /// `load`, `store` or `instruction`.
    pub fn noun(self) -> &'static str {
        match self {
            GuestAccess::Load => "load",
            GuestAccess::Store => "store",
            GuestAccess::Fetch => "instruction",
        }
    }
}

/// Why Mica stopped a VM whose guest did not ask to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopCause {
    /// An access where the guest has neither RAM nor a device.
    GuestPageFault {
        /// What the access was.
        access: GuestAccess,
        /// The guest-physical address.
        gpa: u64,
    },
    /// A device access the kernel cannot emulate.
    UndecodableMmio {
        /// The guest-physical address.
        gpa: u64,
        /// The instruction (0 if unknown).
        insn: u64,
    },
    /// An instruction the guest may not run.
    VirtualInstruction {
        /// Its bits.
        insn: u64,
    },
    /// The device side answered with what the kernel refuses.
    BadIoCompletion,
    /// An exception the guest did not handle itself.
    UnhandledException {
        /// The architecture's cause or exit code.
        code: u64,
        /// Its value (trap value, exit information).
        value: u64,
    },
    /// A reason this side does not know (a newer kernel's record kind), or
    /// none recorded.
    Other {
        /// The kernel's record kind (`ipc::syscall::vm_exit`).
        kind: u32,
    },
}

impl StopCause {
    /// A few words for the `vm list` state column.
    pub fn short(&self) -> &'static str {
        match self {
            StopCause::GuestPageFault { .. } => "guest fault",
            StopCause::UndecodableMmio { .. } => "device access",
            StopCause::VirtualInstruction { .. } => "bad instruction",
            StopCause::BadIoCompletion => "bad I/O completion",
            StopCause::UnhandledException { .. } => "guest exception",
            StopCause::Other { .. } => "unknown",
        }
    }

    /// A word for scripts (`--json`'s `"cause"`).
    pub fn key(&self) -> &'static str {
        match self {
            StopCause::GuestPageFault { .. } => "guest_page_fault",
            StopCause::UndecodableMmio { .. } => "undecodable_mmio",
            StopCause::VirtualInstruction { .. } => "virtual_instruction",
            StopCause::BadIoCompletion => "bad_io_completion",
            StopCause::UnhandledException { .. } => "unhandled_exception",
            StopCause::Other { .. } => "other",
        }
    }
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopCause::GuestPageFault { access, gpa } => write!(
                f,
                "{} guest page fault at {gpa:#x}, no RAM or device there",
                access.noun()
            ),
            StopCause::UndecodableMmio { gpa, insn: 0 } => {
                write!(f, "device access at {gpa:#x} it cannot emulate")
            }
            StopCause::UndecodableMmio { gpa, insn } => write!(
                f,
                "device access at {gpa:#x} it cannot emulate (instruction {insn:#x})"
            ),
            StopCause::VirtualInstruction { insn } => {
                write!(f, "instruction {insn:#x} the guest may not run")
            }
            StopCause::BadIoCompletion => {
                f.write_str("invalid I/O completion from the device side")
            }
            StopCause::UnhandledException { code, value } => {
                write!(f, "unhandled guest exception {code} (value {value:#x})")
            }
            StopCause::Other { kind } => {
                write!(f, "a reason of kind {kind} this tool does not know")
            }
        }
    }
}

/// How a VM last left running: what `vm info` shows as `last exit:`.
/// A static VM keeps it while it is powered off, until it starts again; a
/// guest reboot records [`LastExit::Rebooted`] and the VM runs on; a
/// dynamic VM that ended is remembered by name ([`Response::Ended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastExit {
    /// The guest powered itself off (SBI SRST shutdown, the x86 power-off
    /// hypercall).
    PoweredOff {
        /// The SBI reset reason (0 none, 1 system failure; 0 when the
        /// guest gave none).
        reason: u32,
    },
    /// The guest rebooted itself (SBI SRST reboot): Mica reset it and
    /// started it again.
    Rebooted {
        /// A warm reboot (a cold one otherwise).
        warm: bool,
        /// The SBI reset reason.
        reason: u32,
    },
    /// Mica stopped it.
    Stopped {
        /// Why.
        cause: StopCause,
        /// The guest's program counter when it stopped.
        pc: u64,
    },
    /// The operator shut it down (`vm shutdown`).
    ShutDown,
    /// The operator destroyed it (`vm destroy`).
    Destroyed,
}

/// The SBI reset reason as words, after `reason`.
struct ResetReason(u32);

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            1 => f.write_str(" (reason: system failure)"),
            0xe000_0000..=0xefff_ffff => write!(f, " (SBI-specific reason {:#x})", self.0),
            0xf000_0000..=u32::MAX => write!(f, " (vendor-specific reason {:#x})", self.0),
            other => write!(f, " (reason {other:#x})"),
        }
    }
}

impl StopCause {
    /// The cause as the kernel's exit record (`ipc::syscall::vm_exit`)
    /// carries it: kind, detail and the two words
    /// ([`LastExit::from_record`] reads it back).
    pub fn record_words(self) -> (u32, u32, u64, u64) {
        use crate::syscall::vm_exit as k;
        match self {
            StopCause::GuestPageFault { access, gpa } => {
                let access = match access {
                    GuestAccess::Load => 0,
                    GuestAccess::Store => 1,
                    GuestAccess::Fetch => 2,
                };
                (k::GUEST_PAGE_FAULT, access, gpa, 0)
            }
            StopCause::UndecodableMmio { gpa, insn } => (k::UNDECODABLE_MMIO, 0, gpa, insn),
            StopCause::VirtualInstruction { insn } => (k::VIRTUAL_INSTRUCTION, 0, insn, 0),
            StopCause::BadIoCompletion => (k::BAD_IO_COMPLETION, 0, 0, 0),
            StopCause::UnhandledException { code, value } => {
                (k::UNHANDLED_EXCEPTION, 0, code, value)
            }
            StopCause::Other { kind } => (kind, 0, 0, 0),
        }
    }
}

impl LastExit {
    /// The exit the kernel's record (`ipc::syscall::vm_exit`) describes;
    /// `None` for a VM that has not left running. A kind this side does
    /// not know is a stop of cause [`StopCause::Other`].
    pub fn from_record(record: &crate::syscall::vm_exit::ExitRecord) -> Option<Self> {
        use crate::syscall::vm_exit as k;
        let cause = match record.kind {
            k::NONE => return None,
            k::POWER_OFF => {
                return Some(LastExit::PoweredOff {
                    reason: record.detail,
                });
            }
            k::REBOOT => {
                return Some(LastExit::Rebooted {
                    warm: record.a != 0,
                    reason: record.detail,
                });
            }
            k::GUEST_PAGE_FAULT => StopCause::GuestPageFault {
                access: match record.detail {
                    0 => GuestAccess::Load,
                    1 => GuestAccess::Store,
                    _ => GuestAccess::Fetch,
                },
                gpa: record.a,
            },
            k::UNDECODABLE_MMIO => StopCause::UndecodableMmio {
                gpa: record.a,
                insn: record.b,
            },
            k::VIRTUAL_INSTRUCTION => StopCause::VirtualInstruction { insn: record.a },
            k::BAD_IO_COMPLETION => StopCause::BadIoCompletion,
            k::UNHANDLED_EXCEPTION => StopCause::UnhandledException {
                code: record.a,
                value: record.b,
            },
            kind => StopCause::Other { kind },
        };
        Some(LastExit::Stopped {
            cause,
            pc: record.pc,
        })
    }

    /// A word for scripts (`--json`'s `"kind"`): `powered_off`,
    /// `rebooted`, `stopped`, `shut_down`, `destroyed`.
    pub fn key(&self) -> &'static str {
        match self {
            LastExit::PoweredOff { .. } => "powered_off",
            LastExit::Rebooted { .. } => "rebooted",
            LastExit::Stopped { .. } => "stopped",
            LastExit::ShutDown => "shut_down",
            LastExit::Destroyed => "destroyed",
        }
    }

    /// A few words for the `vm list` state column: `guest powered off`,
    /// `stopped: guest fault`, `shut down` ...
    pub fn short(&self) -> ShortExit<'_> {
        ShortExit(self)
    }
}

/// [`LastExit::short`]'s text.
pub struct ShortExit<'a>(&'a LastExit);

impl fmt::Display for ShortExit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            LastExit::PoweredOff { .. } => f.write_str("guest powered off"),
            LastExit::Rebooted { .. } => f.write_str("guest rebooted"),
            LastExit::Stopped { cause, .. } => write!(f, "stopped: {}", cause.short()),
            LastExit::ShutDown => f.write_str("shut down"),
            LastExit::Destroyed => f.write_str("destroyed"),
        }
    }
}

impl fmt::Display for LastExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LastExit::PoweredOff { reason } => {
                write!(f, "powered off by the guest{}", ResetReason(reason))
            }
            LastExit::Rebooted { warm, reason } => {
                let how = if warm { "warm-" } else { "" };
                write!(f, "{how}rebooted by the guest{}", ResetReason(reason))
            }
            LastExit::Stopped { cause, pc } => write!(f, "stopped by Mica: {cause} (pc {pc:#x})"),
            LastExit::ShutDown => f.write_str("shut down by the operator"),
            LastExit::Destroyed => f.write_str("destroyed by the operator"),
        }
    }
}

/// What `Info` and `List` report of a VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    /// The VM's unique name.
    pub name: WireName,
    /// Its slot.
    pub id: VmId,
    /// Static or dynamic.
    pub kind: VmKind,
    /// Lifecycle state.
    pub state: VmState,
    /// Number of vCPUs.
    pub vcpus: u8,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// The host disk it has as a virtio-blk device (the block service's
    /// disk number), if any.
    pub disk: Option<u8>,
    /// The 128-bit VM generation ID, as the guest reads it (little-endian).
    pub generation_id: [u8; 16],
    /// Whether the ID was drawn from hardware entropy; `false` when the
    /// machine had no hardware source and it came from guessable counters
    /// (`vm info` says so).
    pub generation_id_random: bool,
    /// How it last left running, if it did since it was made or last
    /// started (a static VM keeps it while powered off).
    pub last_exit: Option<LastExit>,
    /// When that was, in milliseconds since Mica booted, when the kernel
    /// saw it (a guest's power-off or reboot, a stop); `None` for what
    /// the operator did.
    pub last_exit_uptime_ms: Option<u64>,
}

/// What a guest image in the boot image holds, as the vm-manager reads it
/// from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageKind {
    /// A raw image, loaded as is and entered at its start (`--image`).
    Raw,
    /// A RISC-V Linux kernel `Image` (`--kernel`).
    LinuxImage,
    /// An initial ramdisk: a cpio archive, plain or compressed
    /// (`--initrd`).
    Initrd,
}

impl ImageKind {
    /// A word for scripts (`--json`'s `"kind"`): `raw`, `linux_image`,
    /// `initrd`.
    pub fn key(self) -> &'static str {
        match self {
            ImageKind::Raw => "raw",
            ImageKind::LinuxImage => "linux_image",
            ImageKind::Initrd => "initrd",
        }
    }
}

impl fmt::Display for ImageKind {
    /// `raw`, `Linux Image`, `initrd`; pads to a width (a table column).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ImageKind::Raw => "raw",
            ImageKind::LinuxImage => "Linux Image",
            ImageKind::Initrd => "initrd",
        })
    }
}

/// One guest image of the boot image (what `Images` reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestImage {
    /// Its name, as `--image`, `--kernel` and `--initrd` take it.
    pub name: WireName,
    /// What it holds.
    pub kind: ImageKind,
    /// Its length in bytes.
    pub size: u64,
}

/// A request to the vm-manager.
#[allow(
    clippy::large_enum_variant,
    reason = "a request lives briefly on the stack before it is encoded; boxing would need a heap in every task"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create a VM by name: a static configuration of that name is launched,
    /// any other name takes a free dynamic slot.
    Create {
        /// The name of the new VM.
        name: WireName,
        /// Settings for a dynamic VM.
        options: CreateOptions,
    },
    /// Start the vCPUs of a created VM.
    Start {
        /// Which VM.
        name: WireName,
    },
    /// Hold the vCPUs of a started VM.
    Pause {
        /// Which VM.
        name: WireName,
    },
    /// Let the vCPUs of a paused VM run again.
    Resume {
        /// Which VM.
        name: WireName,
    },
    /// Reboot a VM in place, as its reset button would: memory is reloaded,
    /// vCPUs restart at the entry, and a started or paused VM runs again.
    /// `new_generation_id` asks for a fresh generation ID.
    Reset {
        /// Which VM.
        name: WireName,
        /// Draw a new generation ID (the guest may be a copy).
        new_generation_id: bool,
    },
    /// Power a VM off; a dynamic VM's slot is released.
    Shutdown {
        /// Which VM.
        name: WireName,
    },
    /// Tear a VM down from any state, even while it runs.
    Destroy {
        /// Which VM.
        name: WireName,
    },
    /// Copy a paused VM's configuration and memory into a new dynamic VM
    /// with a fresh generation ID.
    Clone {
        /// The paused VM to copy.
        source: WireName,
        /// The name of the copy.
        name: WireName,
    },
    /// List VMs from slot `from` on, a page at a time.
    List {
        /// First slot to report.
        from: u16,
    },
    /// Report one VM.
    Info {
        /// Which VM.
        name: WireName,
    },
    /// Type `bytes` at the VM's console `port` (its UART's receive path,
    /// as the shell's `console NAME` does, or its virtio console's:
    /// `console NAME --hvc`).
    ConsoleInput {
        /// Which VM.
        name: WireName,
        /// Which of its consoles.
        port: ConsolePort,
        /// The bytes, in order.
        bytes: heapless::Vec<u8, CONSOLE_INPUT_CHUNK>,
    },
    /// Read the VM's console output from byte number `from` on (answered
    /// with `ConsoleOutput`).
    ConsoleOutput {
        /// Which VM.
        name: WireName,
        /// The first byte wanted: 0, then the last answer's `next`.
        from: u64,
    },
    /// Report the VM's exits and I/O accounting (answered with `Stats`);
    /// a powered-off VM has none: `IllegalTransition { state:
    /// PoweredOff }`.
    Stats {
        /// Which VM.
        name: WireName,
    },
    /// From the supervisor: the service on endpoint `endpoint` (the ioreq
    /// or the device service) died and runs again, knowing nothing; the
    /// vm-manager hands it every live VM's configuration again (a device
    /// service's models start from reset). `UnknownService` for another
    /// endpoint.
    ServiceRestarted {
        /// The restarted service's endpoint number.
        endpoint: u8,
    },
    /// List the guest images of the boot image from number `from` on
    /// (in the boot image's order), a page at a time (answered with
    /// `Images`).
    Images {
        /// The first image to report.
        from: u16,
    },
    /// Show only this VM's console lines on the hypervisor console (the
    /// shell's `console NAME`); the other VMs' lines are held and printed
    /// when the focus is taken away (`name: None`), or moves to another
    /// VM, or the VM goes away. Every line still reaches the VMs' output
    /// rings (`ConsoleOutput`).
    ConsoleFocus {
        /// The VM whose lines alone are shown; `None`: every VM's again.
        name: Option<WireName>,
    },
    /// Read the VMs' state changes from sequence number `from` on
    /// (answered with `Events`; see [`events`] for how a
    /// reader follows them).
    Events {
        /// The first event wanted: `u64::MAX` for none yet (only where the
        /// next will be), 0 for every one kept, then the last answer's
        /// `next`.
        from: u64,
    },
}

/// The vm-manager's answer.
#[allow(
    clippy::large_enum_variant,
    reason = "a response lives briefly on the stack before it is encoded; boxing would need a heap in every task"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done; no data.
    Ok,
    /// The state of one VM (answer to `Create`, `Clone` and `Info`).
    Info(VmInfo),
    /// A page of VMs, in slot order; `next` is where the next page starts.
    List {
        /// The VMs of this page.
        vms: heapless::Vec<VmInfo, LIST_PAGE>,
        /// Ask `List { from: next }` for more; `None` at the end.
        next: Option<u16>,
    },
    /// Refused; nothing changed.
    Err(Error),
    /// Console output (answer to `ConsoleOutput`): raw bytes as the guest
    /// wrote them, with where to continue and how many were lost.
    ConsoleOutput(ConsoleChunk),
    /// A VM's accounting (answer to `Stats`).
    Stats(VmStats),
    /// No VM has the name asked about, but a dynamic VM of that name ended
    /// lately and gave its slot back: how it ended (the answer to any
    /// request about a name that only the vm-manager's short history of
    /// ended VMs, [`ENDED_HISTORY`], knows). Nothing was done.
    Ended(LastExit),
    /// A page of guest images (answer to `Images`).
    Images {
        /// The images of this page.
        images: heapless::Vec<GuestImage, IMAGES_PAGE>,
        /// Ask `Images { from: next }` for more; `None` at the end.
        next: Option<u16>,
    },
    /// A page of VM state changes (answer to `Events`).
    Events(EventPage),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::vm_exit::{self, ExitRecord};

    extern crate std;
    use std::string::ToString;

    fn record(kind: u32, detail: u32, a: u64, b: u64) -> ExitRecord {
        ExitRecord {
            kind,
            detail,
            a,
            b,
            pc: 0x8020_0010,
            uptime_ms: 0,
        }
    }

    #[test]
    fn every_stop_cause_reads_back_from_the_record_the_kernel_writes() {
        let causes = [
            StopCause::GuestPageFault {
                access: GuestAccess::Fetch,
                gpa: 0x1000,
            },
            StopCause::GuestPageFault {
                access: GuestAccess::Store,
                gpa: 0x2800_0000,
            },
            StopCause::UndecodableMmio {
                gpa: 0x1000_0000,
                insn: 0x1234,
            },
            StopCause::VirtualInstruction { insn: 0x1050_0073 },
            StopCause::BadIoCompletion,
            StopCause::UnhandledException { code: 13, value: 7 },
            StopCause::Other { kind: 99 },
        ];
        for cause in causes {
            let (kind, detail, a, b) = cause.record_words();
            assert_eq!(
                LastExit::from_record(&record(kind, detail, a, b)),
                Some(LastExit::Stopped {
                    cause,
                    pc: 0x8020_0010
                }),
                "{cause:?}"
            );
        }
    }

    #[test]
    fn kernel_records_become_exits_a_user_understands() {
        let text = |r: ExitRecord| LastExit::from_record(&r).map(|e| e.to_string());
        assert_eq!(text(record(vm_exit::NONE, 0, 0, 0)), None);
        assert_eq!(
            text(record(vm_exit::POWER_OFF, 0, 0, 0)).unwrap(),
            "powered off by the guest"
        );
        assert_eq!(
            text(record(vm_exit::POWER_OFF, 1, 0, 0)).unwrap(),
            "powered off by the guest (reason: system failure)"
        );
        assert_eq!(
            text(record(vm_exit::REBOOT, 0, 1, 0)).unwrap(),
            "warm-rebooted by the guest"
        );
        assert_eq!(
            text(record(vm_exit::GUEST_PAGE_FAULT, 1, 0x2800_0000, 0)).unwrap(),
            "stopped by Mica: store guest page fault at 0x28000000, no RAM or device there \
             (pc 0x80200010)"
        );
        assert_eq!(
            text(record(vm_exit::UNDECODABLE_MMIO, 0, 0x1000_0000, 0x1234)).unwrap(),
            "stopped by Mica: device access at 0x10000000 it cannot emulate \
             (instruction 0x1234) (pc 0x80200010)"
        );
        assert_eq!(
            text(record(vm_exit::UNHANDLED_EXCEPTION, 0, 13, 0x7)).unwrap(),
            "stopped by Mica: unhandled guest exception 13 (value 0x7) (pc 0x80200010)"
        );
        assert_eq!(
            LastExit::from_record(&record(99, 0, 0, 0)),
            Some(LastExit::Stopped {
                cause: StopCause::Other { kind: 99 },
                pc: 0x8020_0010
            })
        );
        assert_eq!(LastExit::Destroyed.to_string(), "destroyed by the operator");
        assert_eq!(LastExit::ShutDown.to_string(), "shut down by the operator");
    }

    #[test]
    fn short_texts_fit_the_list() {
        let fault = LastExit::Stopped {
            cause: StopCause::GuestPageFault {
                access: GuestAccess::Load,
                gpa: 0,
            },
            pc: 0,
        };
        assert_eq!(fault.short().to_string(), "stopped: guest fault");
        assert_eq!(fault.key(), "stopped");
        assert_eq!(
            LastExit::PoweredOff { reason: 0 }.short().to_string(),
            "guest powered off"
        );
    }
}
