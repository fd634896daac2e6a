//! Human-readable output: the `vm list` table, the `vm info` block (with
//! the VM's exit and I/O figures), the line that confirms a lifecycle
//! command, generation IDs in UUID form and the `mem` line.

use core::fmt;

use ipc::vm::{VmInfo, VmKind, VmState, VmStats};

use crate::command::VmCommand;
use crate::text::Printable;

/// A generation ID as `VmInfo` carries it (the 16 little-endian bytes the
/// guest reads), shown as the 128-bit number in 32 hex digits, UUID-style:
/// `00000000-0000-0000-0000-000000000001` for the ID 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationIdText(pub [u8; 16]);

impl fmt::Display for GenerationIdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = u128::from_le_bytes(self.0);
        let group = |shift: u32, mask: u128| (value >> shift) & mask;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            group(96, 0xffff_ffff),
            group(80, 0xffff),
            group(64, 0xffff),
            group(48, 0xffff),
            group(0, 0xffff_ffff_ffff),
        )
    }
}

/// The state's name (`powered-off`, `created`, `started`, `paused`), as a
/// `str` so that it pads in columns.
pub fn state_text(state: VmState) -> &'static str {
    match state {
        VmState::PoweredOff => "powered-off",
        VmState::Created => "created",
        VmState::Started => "started",
        VmState::Paused => "paused",
    }
}

/// `static` or `dynamic`.
pub fn kind_text(kind: VmKind) -> &'static str {
    match kind {
        VmKind::Static => "static",
        VmKind::Dynamic => "dynamic",
    }
}

/// A VM's state as `vm list` shows it: the state, and for a powered-off
/// VM that ended (rather than never ran) a short reason:
/// `powered-off (stopped: guest fault)`, `powered-off (guest powered off)`.
pub struct ListedState<'a>(pub &'a VmInfo);

impl ListedState<'_> {
    /// How many columns it takes.
    pub fn width(&self) -> usize {
        let mut counter = Columns(0);
        let _ = fmt::Write::write_fmt(&mut counter, format_args!("{self}"));
        counter.0
    }
}

impl fmt::Display for ListedState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vm = self.0;
        f.write_str(state_text(vm.state))?;
        match vm.last_exit {
            Some(exit) if vm.state == VmState::PoweredOff => write!(f, " ({})", exit.short()),
            _ => Ok(()),
        }
    }
}

/// Counts the characters written to it.
struct Columns(usize);

impl fmt::Write for Columns {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0 += text.chars().count();
        Ok(())
    }
}

/// The `vm list` table: a header line, then one line per VM, every line
/// ending in `\n`. The name and state columns are as wide as their
/// widest entry (a powered-off VM that ended shows why: [`ListedState`]).
pub struct VmTable<'a>(pub &'a [VmInfo]);

impl fmt::Display for VmTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .0
            .iter()
            .map(|vm| Printable(&vm.name).width())
            .fold(4, usize::max);
        let states = self
            .0
            .iter()
            .map(|vm| ListedState(vm).width())
            .fold(11, usize::max);
        writeln!(
            f,
            "{:<width$}  SLOT  KIND     {:<states$}  VCPUS  MEM(MiB)  GENERATION ID",
            "NAME", "STATE"
        )?;
        for vm in self.0 {
            let name = Printable(&vm.name);
            let pad = width - name.width();
            let state = ListedState(vm);
            let state_pad = states - state.width();
            writeln!(
                f,
                "{name}{:pad$}  {:>4}  {:<7}  {state}{:state_pad$}  {:>5}  {:>8}  {}",
                "",
                vm.id.0,
                kind_text(vm.kind),
                "",
                vm.vcpus,
                vm.mem_mib,
                GenerationIdText(vm.generation_id),
            )?;
        }
        Ok(())
    }
}

/// The `vm info` block: one `key: value` line per field, each ending in
/// `\n`.
pub struct InfoBlock<'a>(pub &'a VmInfo);

impl fmt::Display for InfoBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vm = self.0;
        writeln!(f, "name:          {}", Printable(&vm.name))?;
        writeln!(f, "slot:          {}", vm.id.0)?;
        writeln!(f, "kind:          {}", kind_text(vm.kind))?;
        writeln!(f, "state:         {}", state_text(vm.state))?;
        if let Some(exit) = vm.last_exit {
            writeln!(f, "last exit:     {exit}")?;
            if let Some(ms) = vm.last_exit_uptime_ms {
                writeln!(f, "               at {} after Mica booted", Uptime(ms))?;
            }
        }
        writeln!(f, "vcpus:         {}", vm.vcpus)?;
        writeln!(f, "memory:        {} MiB", vm.mem_mib)?;
        match vm.disk {
            Some(disk) => writeln!(f, "disk:          {disk} (virtio-blk)")?,
            None => writeln!(f, "disk:          none")?,
        }
        writeln!(f, "generation id: {}", GenerationIdText(vm.generation_id))?;
        if !vm.generation_id_random {
            writeln!(
                f,
                "               NOT random: drawn without a hardware entropy source"
            )?;
        }
        Ok(())
    }
}

/// The figures `vm info` shows after the VM's settings, lines each
/// ending in `\n`:
///
/// ```text
/// exits:         23711 device, 310 hypercall, 12 wait, 40 interrupt, 3 other
/// ioreq:         23702 round trips, 1.2 s in services (50.6 us each); 9 writes posted
/// network:       12 frames sent, 10 received, 2 dropped (0 malformed sent, 2 with no room)
/// vcpu 0:        waiting, 24076 exits, 23702 I/O round trips
/// vcpu 1:        stopped, 0 exits, 0 I/O round trips
/// ```
///
/// (the part after `;` only when the VM posted writes; the network line
/// only for a VM with a network card; a line per vCPU, in the states
/// `running`, `waiting for I/O`, `waiting` (in `wfi`/`hlt`), `stopped`
/// (not started by the guest, or stopped itself) and `held` (the VM is
/// not running).)
/// Device exits are MMIO on RISC-V and port I/O on x86, hypercalls SBI
/// calls or VMMCALL/VMCALL, waits `wfi`/`hlt`; the service time runs from
/// each I/O exit to the vCPU's resume.
pub struct StatsBlock<'a>(pub &'a VmStats);

impl fmt::Display for StatsBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        writeln!(
            f,
            "exits:         {} device, {} hypercall, {} wait, {} interrupt, {} other",
            s.device_exits, s.hypercall_exits, s.wait_exits, s.interrupt_exits, s.other_exits
        )?;
        write!(f, "ioreq:         {} round trips", s.ioreq_round_trips)?;
        if let Some(each) = s.service_ns.checked_div(s.ioreq_round_trips) {
            write!(
                f,
                ", {} in services ({} each)",
                Nanoseconds(s.service_ns),
                Nanoseconds(each)
            )?;
        }
        if s.posted_writes != 0 {
            write!(f, "; {} writes posted", s.posted_writes)?;
        }
        writeln!(f)?;
        if let Some(net) = s.net {
            writeln!(
                f,
                "network:       {} frames sent, {} received, {} dropped \
                 ({} malformed sent, {} with no room)",
                net.sent,
                net.received,
                net.tx_dropped.saturating_add(net.rx_dropped),
                net.tx_dropped,
                net.rx_dropped
            )?;
        }
        for (n, vcpu) in s.vcpus.iter().enumerate() {
            // At most MAX_VCPUS (8): one digit keeps the column.
            write!(f, "vcpu {n}:        {}", vcpu.state)?;
            if let Some(cpu) = vcpu.cpu {
                write!(f, " on cpu {cpu}")?;
            }
            writeln!(
                f,
                ", {} exits, {} I/O round trips",
                vcpu.exits, vcpu.round_trips
            )?;
        }
        Ok(())
    }
}

/// A time since boot in milliseconds, to the kernel tick (10 ms):
/// `12.34 s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uptime(pub u64);

impl fmt::Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} s", self.0 / 1000, self.0 % 1000 / 10)
    }
}

/// A time in nanoseconds as people read it, to a tenth of the largest
/// unit that fits (rounded down): `850 ns`, `50.6 us`, `3.0 ms`, `1.2 s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nanoseconds(pub u64);

impl fmt::Display for Nanoseconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let (unit, name) = match ns {
            0..1_000 => return write!(f, "{ns} ns"),
            1_000..1_000_000 => (1_000, "us"),
            1_000_000..1_000_000_000 => (1_000_000, "ms"),
            _ => (1_000_000_000, "s"),
        };
        let tenths = ns / (unit / 10);
        write!(f, "{}.{} {name}", tenths / 10, tenths % 10)
    }
}

/// The line that confirms a lifecycle command that answered `Ok`
/// (`vm0 started`), without a newline.
pub struct DoneLine<'a>(pub &'a VmCommand);

impl fmt::Display for DoneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, what) = match self.0 {
            VmCommand::Start { name } => (name, "started"),
            VmCommand::Pause { name } => (name, "paused"),
            VmCommand::Resume { name } => (name, "resumed"),
            VmCommand::Reset {
                name,
                new_generation_id: true,
            } => (name, "reset with a new generation ID"),
            VmCommand::Reset { name, .. } => (name, "reset"),
            VmCommand::Shutdown { name } => (name, "shut down"),
            VmCommand::Destroy { name } => (name, "destroyed"),
            VmCommand::Create(args) => (&args.name, "created"),
            VmCommand::Clone { name, .. } => (name, "created"),
            VmCommand::Info { name } => (name, "exists"),
            VmCommand::List | VmCommand::Images | VmCommand::Log { .. } => {
                return f.write_str("done");
            }
        };
        write!(f, "{name} {what}")
    }
}

/// Bytes in one of the kernel's frames.
const FRAME_BYTES: u64 = 4096;

/// The `mem` line, without a newline: `memory: 120000 free of 131072
/// frames (468 MiB free)`, counting the kernel's 4 KiB frames (MiB rounded
/// down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLine {
    /// Frames free now.
    pub free_frames: u64,
    /// Frames the kernel manages, free or in use.
    pub total_frames: u64,
}

impl fmt::Display for MemoryLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let free_mib = self.free_frames.saturating_mul(FRAME_BYTES) >> 20;
        write!(
            f,
            "memory: {} free of {} frames ({free_mib} MiB free)",
            self.free_frames, self.total_frames
        )
    }
}
