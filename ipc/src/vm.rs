//! The vm-manager protocol: VM lifecycle and queries, by name.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::devices::ConsoleChunk;
use crate::{Error, VmId, WireName};

/// How many VMs one `List` response carries; ask again from `next` for more.
pub const LIST_PAGE: usize = 6;

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
    /// The 128-bit VM generation ID, as the guest reads it (little-endian).
    pub generation_id: [u8; 16],
    /// Whether the ID was drawn from hardware entropy; `false` when the
    /// machine had no hardware source and it came from guessable counters
    /// (`vm info` says so).
    pub generation_id_random: bool,
}

/// What `Stats` reports of a VM, since it last started (a reset or a
/// fresh start begins again from zero): how often its vCPUs left the guest,
/// by kind, and its I/O requests through the ioreq and device services.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStats {
    /// Exits for device accesses: MMIO on RISC-V, port I/O on x86.
    pub device_exits: u64,
    /// Exits for hypervisor calls: SBI `ecall` on RISC-V, VMMCALL/VMCALL.
    pub hypercall_exits: u64,
    /// Exits to wait for an interrupt: `wfi`, `hlt`.
    pub wait_exits: u64,
    /// Runs ended by a host interrupt (the scheduler's tick).
    pub interrupt_exits: u64,
    /// Every other exit: exceptions reflected into the guest, CPUID,
    /// stray accesses.
    pub other_exits: u64,
    /// I/O requests that went round the services and were completed.
    pub ioreq_round_trips: u64,
    /// Their time from the exit to the vCPU's resume, summed, in
    /// nanoseconds of the host timer: the services' time on the VM's
    /// requests, with any wait for them to run.
    pub service_ns: u64,
    /// Device writes posted: completed at once and queued for the services
    /// (a UART's transmit register), so device exits are round trips plus
    /// these.
    pub posted_writes: u64,
}

impl VmStats {
    /// Every exit, of any kind.
    pub fn total_exits(&self) -> u64 {
        [
            self.device_exits,
            self.hypercall_exits,
            self.wait_exits,
            self.interrupt_exits,
            self.other_exits,
        ]
        .iter()
        .fold(0u64, |sum, &n| sum.saturating_add(n))
    }
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
    /// Type `bytes` at the VM's console (its UART's receive path, as the
    /// shell's `console NAME` does).
    ConsoleInput {
        /// Which VM.
        name: WireName,
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
}
