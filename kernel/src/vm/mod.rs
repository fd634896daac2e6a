//! VM and vCPU kernel objects, free of any architecture: a VM's name, its
//! guest-physical layout (RAM and MMIO windows), its run state and why it
//! stopped. The arch layer runs vCPUs and reports exits in these terms.

pub mod boot_ranges;
pub mod console;
pub mod control;
pub mod exit;
pub mod ioreq_path;
pub mod posted;
pub mod stats;
pub mod tlb_tag;
pub mod vcpu_set;
pub mod vectors;

use core::fmt;
extern crate alloc;

use alloc::boxed::Box;

use ipc::Error;
use ipc::syscall::DEVICE_STATE_BYTES;

/// Guest RAM starts here on every Mica guest platform (QEMU-virt-like).
pub const GUEST_RAM_BASE: u64 = 0x8000_0000;

/// Guest-physical windows whose accesses are device accesses (sent to the
/// ioreq path) rather than wild accesses: PLIC, 16550 UART, virtio-mmio
/// slots, the generation ID device's registers.
pub const GUEST_MMIO_WINDOWS: [(u64, u64); 4] = [
    (0x0c00_0000, 0x0400_0000),
    (0x1000_0000, 0x1000),
    (0x1000_1000, 0x8000),
    (0x1010_1000, 0x1000),
];

/// Whether a guest access at `gpa` is to a device window.
pub fn is_mmio(gpa: u64) -> bool {
    GUEST_MMIO_WINDOWS
        .iter()
        .any(|&(base, size)| gpa >= base && gpa - base < size)
}

/// Longest VM name the kernel keeps (vm-manager enforces its own rules).
pub const NAME_MAX: usize = 31;

/// A VM's name as the kernel prints it (`vm0 | ...`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VmName {
    bytes: [u8; NAME_MAX],
    len: usize,
}

impl VmName {
    /// No name: for code that needs one but prints none (the guest SBI's
    /// base extension, `arch::riscv64::guest_sbi::base_call`).
    pub const UNNAMED: Self = Self {
        bytes: [0; NAME_MAX],
        len: 0,
    };

    /// `name`, or `None` if it is empty, too long or not printable ASCII.
    pub fn new(name: &str) -> Option<Self> {
        let ok = |b: &u8| b.is_ascii_graphic();
        if name.is_empty() || name.len() > NAME_MAX || !name.bytes().all(|b| ok(&b)) {
            return None;
        }
        let mut bytes = [0; NAME_MAX];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self {
            bytes,
            len: name.len(),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

/// `vm<n>`, the name the kernel gives VM `n` and its vCPU thread (the last
/// two digits of `n`), written into `buf`.
pub fn numbered_name(vm: usize, buf: &mut [u8; 4]) -> &str {
    const DIGITS: &[u8; 10] = b"0123456789";
    buf[..2].copy_from_slice(b"vm");
    let mut len = 2;
    if vm >= 10 {
        buf[len] = DIGITS[vm / 10 % 10];
        len += 1;
    }
    buf[len] = DIGITS[vm % 10];
    core::str::from_utf8(&buf[..=len]).unwrap_or("vm")
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// What a guest access tried to do when it faulted (the wire type: the
/// exit record carries it to the vm-manager).
pub use ipc::vm::GuestAccess;

/// Why the kernel stopped a VM that did not ask to stop: the wire type
/// the exit record carries to the vm-manager (the kernel never makes
/// `StopCause::Other`, which stands for a kind a reader does not know).
pub use ipc::vm::StopCause as StopReason;

/// A stop reason as the kernel's console line says it.
struct Report(StopReason);

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            StopReason::GuestPageFault { access, gpa } => {
                write!(f, "{} guest-page fault at {gpa:#x}", access.noun())
            }
            StopReason::UndecodableMmio { gpa, insn } => {
                write!(
                    f,
                    "cannot emulate device access at {gpa:#x} (instruction {insn:#x})"
                )
            }
            StopReason::VirtualInstruction { insn } => {
                write!(f, "virtual instruction {insn:#x}")
            }
            StopReason::BadIoCompletion => f.write_str("invalid I/O completion"),
            StopReason::UnhandledException { code, value } => {
                write!(f, "unhandled exception {code} (value {value:#x})")
            }
            StopReason::Other { kind } => write!(f, "reason of kind {kind}"),
        }
    }
}

/// A VM's run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// Its vCPUs may run.
    Running,
    /// The guest powered itself off (SBI SRST shutdown, the x86 power-off
    /// hypercall).
    PoweredOff {
        /// The SBI reset reason it gave (0: none).
        reason: u32,
    },
    /// The guest asked for a reboot; the VM manager decides what follows.
    RebootRequested {
        /// A warm reboot (a cold one otherwise).
        warm: bool,
        /// The SBI reset reason it gave.
        reason: u32,
    },
    /// The kernel stopped it.
    Stopped(StopReason),
}

impl VmState {
    /// The state as the `vm_status` exit record (`ipc::syscall::vm_exit`)
    /// carries it, with the guest's pc `pc`.
    pub fn exit_record(self, pc: u64) -> ipc::syscall::vm_exit::ExitRecord {
        use ipc::syscall::vm_exit as k;
        let (kind, detail, a, b) = match self {
            VmState::Running => return k::ExitRecord::default(),
            VmState::PoweredOff { reason } => (k::POWER_OFF, reason, 0, 0),
            VmState::RebootRequested { warm, reason } => (k::REBOOT, reason, u64::from(warm), 0),
            VmState::Stopped(reason) => reason.record_words(),
        };
        k::ExitRecord {
            kind,
            detail,
            a,
            b,
            pc,
            uptime_ms: 0,
        }
    }

    /// Its `ipc::syscall::vm_status` value, for a VM that left running
    /// (`None` while it runs).
    pub fn status(self) -> Option<usize> {
        use ipc::syscall::vm_status;
        match self {
            VmState::Running => None,
            VmState::PoweredOff { .. } => Some(vm_status::POWERED_OFF),
            VmState::RebootRequested { .. } => Some(vm_status::REBOOT_REQUESTED),
            VmState::Stopped(_) => Some(vm_status::STOPPED),
        }
    }
}

/// The line the kernel prints when a VM leaves [`VmState::Running`].
pub struct StateReport<'a> {
    name: &'a VmName,
    state: VmState,
}

impl fmt::Display for StateReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name;
        match self.state {
            VmState::Running => write!(f, "{name} running"),
            VmState::PoweredOff { .. } => write!(f, "{name} powered off"),
            VmState::RebootRequested { .. } => write!(f, "{name} requested a reboot"),
            VmState::Stopped(reason) => write!(f, "{name} stopped: {}", Report(reason)),
        }
    }
}

/// A VM kernel object: name, RAM size and state.
#[derive(Debug, Clone)]
pub struct Vm {
    /// Its name.
    pub name: VmName,
    /// Bytes of guest RAM from [`GUEST_RAM_BASE`].
    pub ram_bytes: u64,
    state: VmState,
    /// The guest's pc when it left running (0 while it runs).
    exit_pc: u64,
    /// When it left running, in milliseconds since boot.
    exit_uptime_ms: u64,
    /// Its exits and I/O round trips since it started.
    pub stats: stats::VmStats,
    /// The generation ID last written into it (zeros before the first).
    pub generation_id: [u8; 16],
    /// What its controller asked the kernel to keep (`vm_set_note`).
    pub note: Note,
    /// What its device models keep beyond their task's life
    /// (`vm_state_write`); zero when it is created or reset. On the heap:
    /// kept inline, its 2 KiB would push the fields after it in the arch's
    /// VM record out of reach of one load's offset on the I/O path.
    pub device_state: Box<DeviceState>,
}

/// A VM's device-state area: [`DEVICE_STATE_BYTES`] that the tasks
/// granted its RAM write and read back (`vm_state_write`,
/// `vm_state_read`); the kernel never interprets them.
#[derive(Debug, Clone, Copy)]
pub struct DeviceState([u8; DEVICE_STATE_BYTES]);

impl DeviceState {
    /// All zeros: nothing kept.
    pub const ZERO: Self = Self([0; DEVICE_STATE_BYTES]);

    /// The `len` bytes at `offset`; `Error::InvalidRange` past the end.
    pub fn window(&mut self, offset: usize, len: usize) -> Result<&mut [u8], Error> {
        offset
            .checked_add(len)
            .and_then(|end| self.0.get_mut(offset..end))
            .ok_or(Error::InvalidRange)
    }
}

/// The bytes a VM's controller keeps with it (`vm_set_note`).
#[derive(Debug, Clone, Copy)]
pub struct Note {
    bytes: [u8; ipc::syscall::vm_adopt::NOTE_MAX],
    len: usize,
}

impl Note {
    /// No note.
    pub const EMPTY: Self = Self {
        bytes: [0; ipc::syscall::vm_adopt::NOTE_MAX],
        len: 0,
    };

    /// `bytes` as the note; `None` if they are too long.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut note = Self::EMPTY;
        note.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        note.len = bytes.len();
        Some(note)
    }

    /// The note's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Vm {
    /// A running VM.
    pub fn new(name: VmName, ram_bytes: u64) -> Self {
        Self {
            name,
            ram_bytes,
            state: VmState::Running,
            exit_pc: 0,
            exit_uptime_ms: 0,
            stats: stats::VmStats::new(),
            generation_id: [0; 16],
            note: Note::EMPTY,
            device_state: Box::new(DeviceState::ZERO),
        }
    }

    /// The same VM starting afresh: running, its counters and device state
    /// at zero; its name, RAM, generation ID and note kept.
    pub fn restarted(&self) -> Self {
        Self {
            generation_id: self.generation_id,
            note: self.note,
            ..Self::new(self.name, self.ram_bytes)
        }
    }

    /// Its state.
    pub fn state(&self) -> VmState {
        self.state
    }

    /// Leaves `Running` for `next` with the guest at `pc`, `uptime_ms`
    /// after boot; a VM that already left keeps its first reason, pc and
    /// time (returns false).
    pub fn leave(&mut self, next: VmState, pc: u64, uptime_ms: u64) -> bool {
        if self.state != VmState::Running || next == VmState::Running {
            return false;
        }
        self.state = next;
        self.exit_pc = pc;
        self.exit_uptime_ms = uptime_ms;
        true
    }

    /// How it left running, as `vm_status` reports it
    /// (`ipc::syscall::vm_exit`; kind `NONE` while it runs).
    pub fn exit_record(&self) -> ipc::syscall::vm_exit::ExitRecord {
        ipc::syscall::vm_exit::ExitRecord {
            uptime_ms: self.exit_uptime_ms,
            ..self.state.exit_record(self.exit_pc)
        }
    }

    /// Whether `gpa..gpa+len` lies inside guest RAM.
    pub fn in_ram(&self, gpa: u64, len: u64) -> bool {
        gpa >= GUEST_RAM_BASE
            && gpa
                .checked_add(len)
                .is_some_and(|end| end <= GUEST_RAM_BASE + self.ram_bytes)
    }

    /// The report line for its current state (`vm1 stopped: ...`).
    pub fn report(&self) -> StateReport<'_> {
        StateReport {
            name: &self.name,
            state: self.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Vm {
        Vm::new(VmName::new("vm1").unwrap(), 2 << 20)
    }

    #[test]
    fn a_wild_store_is_reported_with_its_address() {
        let mut vm = vm();
        let reason = StopReason::GuestPageFault {
            access: GuestAccess::Store,
            gpa: 0x4000_0000,
        };
        assert!(vm.leave(VmState::Stopped(reason), 0x8020_0010, 12_340));
        assert_eq!(
            vm.report().to_string(),
            "vm1 stopped: store guest-page fault at 0x40000000"
        );
        // What `vm_status` hands the vm-manager: kind, access, address, pc.
        let record = vm.exit_record();
        let want = ipc::syscall::vm_exit::ExitRecord {
            kind: ipc::syscall::vm_exit::GUEST_PAGE_FAULT,
            detail: 1,
            a: 0x4000_0000,
            b: 0,
            pc: 0x8020_0010,
            uptime_ms: 12_340,
        };
        assert_eq!(record, want);
        assert_eq!(vm.state().status(), Some(ipc::syscall::vm_status::STOPPED));
    }

    #[test]
    fn every_way_to_leave_is_recorded_for_the_vm_manager() {
        use ipc::syscall::vm_exit as k;
        let left = |state: VmState| {
            let mut vm = vm();
            assert_eq!(vm.exit_record().kind, k::NONE);
            assert_eq!(vm.state().status(), None);
            assert!(vm.leave(state, 0x1000, 7));
            let r = vm.exit_record();
            (r.kind, r.detail, r.a, r.b, r.pc)
        };
        assert_eq!(
            left(VmState::PoweredOff { reason: 1 }),
            (k::POWER_OFF, 1, 0, 0, 0x1000)
        );
        assert_eq!(
            left(VmState::RebootRequested {
                warm: true,
                reason: 0
            }),
            (k::REBOOT, 0, 1, 0, 0x1000)
        );
        let cases = [
            (
                StopReason::UndecodableMmio { gpa: 5, insn: 6 },
                (k::UNDECODABLE_MMIO, 0, 5, 6),
            ),
            (
                StopReason::VirtualInstruction { insn: 7 },
                (k::VIRTUAL_INSTRUCTION, 0, 7, 0),
            ),
            (StopReason::BadIoCompletion, (k::BAD_IO_COMPLETION, 0, 0, 0)),
            (
                StopReason::UnhandledException { code: 2, value: 3 },
                (k::UNHANDLED_EXCEPTION, 0, 2, 3),
            ),
            (
                StopReason::GuestPageFault {
                    access: GuestAccess::Fetch,
                    gpa: 9,
                },
                (k::GUEST_PAGE_FAULT, 2, 9, 0),
            ),
        ];
        for (reason, (kind, detail, a, b)) in cases {
            assert_eq!(left(VmState::Stopped(reason)), (kind, detail, a, b, 0x1000));
        }
        // A restart forgets how it left.
        let mut vm = vm();
        vm.leave(VmState::PoweredOff { reason: 0 }, 4, 7);
        assert_eq!(vm.restarted().exit_record().kind, k::NONE);
    }

    #[test]
    fn a_restart_keeps_what_a_new_controller_needs_and_drops_the_rest() {
        let mut vm = vm();
        vm.generation_id = [7; 16];
        vm.note = Note::new(b"options").unwrap();
        vm.device_state
            .window(100, 3)
            .unwrap()
            .copy_from_slice(b"PLC");
        assert!(vm.leave(VmState::PoweredOff { reason: 0 }, 0, 0));
        let mut again = vm.restarted();
        assert_eq!(
            again.device_state.window(100, 3).unwrap(),
            [0; 3],
            "devices start afresh"
        );
        assert_eq!(again.state(), VmState::Running);
        assert_eq!(again.generation_id, [7; 16]);
        assert_eq!(again.note.as_bytes(), b"options");
        assert_eq!((again.name.as_str(), again.ram_bytes), ("vm1", 2 << 20));
        assert!(Note::new(&[0; ipc::syscall::vm_adopt::NOTE_MAX + 1]).is_none());
    }

    #[test]
    fn the_device_state_area_refuses_ranges_past_its_end() {
        let mut vm = vm();
        let end = DEVICE_STATE_BYTES;
        assert_eq!(vm.device_state.window(end - 4, 4).unwrap().len(), 4);
        assert_eq!(vm.device_state.window(end, 0).unwrap().len(), 0);
        assert_eq!(vm.device_state.window(end - 4, 5), Err(Error::InvalidRange));
        assert_eq!(
            vm.device_state.window(usize::MAX, 2),
            Err(Error::InvalidRange)
        );
    }

    #[test]
    fn the_first_reason_to_stop_wins() {
        let mut vm = vm();
        assert!(vm.leave(VmState::PoweredOff { reason: 0 }, 8, 80));
        assert!(!vm.leave(VmState::Stopped(StopReason::BadIoCompletion), 9, 90));
        assert_eq!(vm.report().to_string(), "vm1 powered off");
        let first = vm.exit_record();
        assert_eq!(
            (first.pc, first.uptime_ms),
            (8, 80),
            "the first pc and time are kept too"
        );
        assert!(!vm.leave(VmState::Running, 10, 100));
    }

    #[test]
    fn device_windows_and_ram_are_told_apart() {
        assert!(is_mmio(0x1000_0005));
        assert!(is_mmio(0x0c00_0000));
        assert!(is_mmio(0x1010_1010), "the generation ID device");
        assert!(!is_mmio(0x4000_0000));
        assert!(!is_mmio(GUEST_RAM_BASE));
        let vm = vm();
        assert!(vm.in_ram(GUEST_RAM_BASE, 16));
        assert!(!vm.in_ram(GUEST_RAM_BASE + (2 << 20) - 8, 16));
        assert!(!vm.in_ram(u64::MAX - 4, 8));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(VmName::new("vm0").unwrap().to_string(), "vm0");
        assert!(VmName::new("").is_none());
        assert!(VmName::new("a b").is_none());
        assert!(VmName::new(&"x".repeat(32)).is_none());
    }
}
