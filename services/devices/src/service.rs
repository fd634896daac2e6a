//! The device service's state machine: per-VM buses of device models,
//! guest accesses routed to them, console input and output, interrupt
//! line changes reported after every request, and the block backend its
//! virtio-blk models use.

use core::iter::Peekable;

use heapless::{Deque, Vec};
use ipc::devices::{
    BatchWrite, ConsoleChunk, ConsolePort, DeviceKind, IrqEvent, MAX_BATCH, OUTPUT_CHUNK, Request,
    Response, WaitedAccess, wire,
};
use ipc::server::MessageBuffer;
use ipc::{Error, Space, VmId, WireName};

use crate::bus::{
    AccessSize, BlockBackend, Bus, BusDevice, BusError, DeviceEnv, EntropySource, NoBlock,
};
use crate::console_focus::ConsoleGate;
use crate::console_lines::{ConsoleLines, ConsoleSink, VmOutput};
use crate::console_ring::ConsoleRing;
use crate::memory::{GuestMemory, NoGuestMemory};
use crate::model::DeviceModel;
use crate::persist;
use crate::switch::Switch;
use crate::virtio::console::RECEIVEQ;
use crate::virtio::mmio::VirtioMmio;
use crate::virtio::net::{Packet, VirtioNet};

#[path = "service_net.rs"]
mod net_ports;
#[path = "service_run.rs"]
mod run;
pub use net_ports::MAX_FRAMES_PER_NOTIFICATION;
use run::Run;

/// The most VMs the service serves at once.
pub const MAX_VMS: usize = 16;
/// The most devices on each of a VM's buses.
pub const MAX_DEVICES_PER_BUS: usize = 8;
/// Console input held for a VM's UART while its receive FIFO is full; the
/// UART takes more as the guest reads (flow control, as a terminal would
/// see it). Input beyond this is dropped.
pub const INPUT_BACKLOG: usize = 256;

/// Where interrupt changes go: every device line's level, and each of the
/// VM's external interrupts as its PLIC computes them (context `c` is
/// vCPU `c`'s).
pub trait IrqSink {
    /// A line changed level.
    fn irq_event(&mut self, event: IrqEvent);
    /// The external interrupt of `vm`'s PLIC context `context` (below
    /// [`crate::plic::PLIC_CONTEXTS`]; vCPU `context`'s) changed level (the
    /// task tells the kernel: `vm_set_external_irq`). Only VMs with a PLIC
    /// attached report it; a context the VM has no vCPU for may be
    /// reported too, when the guest enabled sources there.
    fn external_irq(&mut self, _vm: VmId, _context: usize, _raised: bool) {}
}

/// Gives the service a VM's guest memory (the task binary maps the guest
/// RAM the VM's owner granted to it).
pub trait GuestMemoryProvider {
    /// The memory of `vm`, or `None` when none was granted; virtio devices
    /// of such a VM fail on their first queue access.
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory>;
    /// Keeps `bytes` at `offset` of `vm`'s device-state area, which
    /// outlives this service (the kernel holds it: `vm_state_write`).
    /// Without one (the default) nothing is kept.
    fn save_state(&mut self, _vm: VmId, _offset: usize, _bytes: &[u8]) -> Result<(), Error> {
        Err(Error::NoDevice)
    }
    /// Reads `out.len()` bytes at `offset` of `vm`'s device-state area.
    fn load_state(&mut self, _vm: VmId, _offset: usize, _out: &mut [u8]) -> Result<(), Error> {
        Err(Error::NoDevice)
    }
}

/// One attached device with its interrupt wiring.
#[derive(Debug)]
struct AttachedDevice {
    model: DeviceModel,
    irq: u32,
    /// The level last reported for `irq`.
    reported_level: bool,
    /// Its record in the VM's device-state area ([`persist`]), if it has
    /// one, and the checksum of what was last written there.
    record: Option<(usize, u32)>,
}

/// A VM's two buses.
#[derive(Debug, Default)]
struct Buses {
    mmio: Bus<AttachedDevice, MAX_DEVICES_PER_BUS>,
    pio: Bus<AttachedDevice, MAX_DEVICES_PER_BUS>,
}

impl Buses {
    fn get_mut(&mut self, space: Space) -> Option<&mut Bus<AttachedDevice, MAX_DEVICES_PER_BUS>> {
        match space {
            Space::Mmio => Some(&mut self.mmio),
            Space::Pio => Some(&mut self.pio),
            Space::PciConfig => None,
        }
    }

    /// The UART that takes console input: the first one on the port bus,
    /// else the first one on the MMIO bus.
    fn console_uart(&mut self) -> Option<&mut crate::uart16550::Uart16550> {
        self.devices_mut()
            .find_map(|device| match &mut device.model {
                DeviceModel::Uart(uart) => Some(uart),
                _ => None,
            })
    }

    /// The network card, if one is attached.
    fn net_card(&mut self) -> Option<&mut VirtioMmio<VirtioNet>> {
        self.devices_mut()
            .find_map(|device| match &mut device.model {
                DeviceModel::VirtioNet(card) => Some(card),
                _ => None,
            })
    }

    fn devices_mut(&mut self) -> impl Iterator<Item = &mut AttachedDevice> {
        self.pio
            .iter_mut()
            .chain(self.mmio.iter_mut())
            .map(|entry| entry.device_mut())
    }
}

/// Everything the service keeps for one VM.
#[derive(Debug)]
struct VmDevices {
    vm: VmId,
    name: WireName,
    buses: Buses,
    lines: ConsoleLines,
    /// Its recent console output, for `ConsoleRead`.
    output: ConsoleRing,
    input_backlog: Deque<u8, INPUT_BACKLOG>,
    dropped_input: u64,
    /// The external interrupt levels last reported: bit `c` for PLIC
    /// context `c` ([`crate::plic::Plic::external_levels`]).
    external_levels: u32,
    /// Some line's level differs from its last report although no access
    /// moved it (a pulse dropped when the PLIC latched it).
    lines_unsettled: bool,
    /// Devices attached so far: the next one's record number.
    attached: usize,
}

impl VmDevices {
    /// The VM's buses, and the parts of an environment over the VM with
    /// the service's `backends`: apart, so that an access can hold one of
    /// the VM's devices and the environment it runs in.
    fn split<'a, C, M, E, B>(
        &'a mut self,
        backends: &'a mut Backends<C, M, E, B>,
    ) -> (&'a mut Buses, EnvParts<'a, C, M, E, B>) {
        let env = EnvParts {
            vm: self.vm,
            backends,
            lines: &mut self.lines,
            ring: &mut self.output,
            name: &self.name,
        };
        (&mut self.buses, env)
    }

    /// The VM's network card, if one is attached.
    fn net_card(&mut self) -> Option<&mut VirtioMmio<VirtioNet>> {
        self.buses.net_card()
    }

    /// The VM's PLIC model, if one is attached.
    fn plic_mut(&mut self) -> Option<&mut crate::plic::Plic> {
        self.buses
            .devices_mut()
            .find_map(|device| match &mut device.model {
                DeviceModel::Plic(plic) => Some(plic),
                _ => None,
            })
    }

    /// Moves backlogged input into the console UART as far as it has room;
    /// false if there was no backlog (nothing changed). Every UART access
    /// asks, and there is seldom a backlog: only that check is inline.
    #[inline(always)]
    fn feed_console_uart(&mut self) -> bool {
        !self.input_backlog.is_empty() && self.feed_backlog()
    }

    /// [`feed_console_uart`](Self::feed_console_uart) with a backlog.
    #[inline(never)]
    fn feed_backlog(&mut self) -> bool {
        let Some(uart) = self.buses.console_uart() else {
            return true;
        };
        while uart.rx_room() > 0 {
            let Some(byte) = self.input_backlog.pop_front() else {
                break;
            };
            uart.receive(&[byte]);
        }
        true
    }
}

/// What the devices of every VM reach outside themselves: the console,
/// guest memory, randomness and the block backend. Kept apart from the VM
/// table so that an access can borrow them beside one VM's devices.
struct Backends<C, M, E, B> {
    /// The console, and the lines held while one VM has its focus.
    console: ConsoleGate<C>,
    memory: M,
    entropy: E,
    block: B,
}

/// What a [`DeviceEnv`] is made of for one access to one VM's device.
struct EnvParts<'a, C, M, E, B> {
    vm: VmId,
    backends: &'a mut Backends<C, M, E, B>,
    lines: &'a mut ConsoleLines,
    ring: &'a mut ConsoleRing,
    name: &'a WireName,
}

impl<C: ConsoleSink, M: GuestMemoryProvider, E: EntropySource, B: BlockBackend>
    EnvParts<'_, C, M, E, B>
{
    /// Runs `f` with the environment built from the parts.
    fn with<R>(&mut self, f: impl FnOnce(&mut DeviceEnv<'_>) -> R) -> R {
        let Backends {
            console,
            memory,
            entropy,
            block,
        } = &mut *self.backends;
        let mut no_memory = NoGuestMemory;
        let memory: &mut dyn GuestMemory = match memory.memory(self.vm) {
            Some(memory) => memory,
            None => &mut no_memory,
        };
        let mut sink = console.for_vm(self.vm);
        let mut output = VmOutput {
            lines: self.lines,
            ring: self.ring,
            name: self.name,
            sink: &mut sink,
        };
        f(&mut DeviceEnv {
            vm: self.vm,
            memory,
            entropy,
            output: &mut output,
            block,
        })
    }
}

/// Whether `name` keeps the VM naming rule, 1-31 bytes of `[A-Za-z0-9._-]`
/// (the vm-manager's `VmName`). The name heads every console line of the
/// VM (`vm0 | ...`) and is written as is, so a name with a control byte,
/// a newline or a `|` would let whoever sends `AddVm` forge console lines.
fn is_vm_name(name: &str) -> bool {
    (1..=31).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The device service; `B` serves its virtio-blk models (none by default).
///
/// `repr(C)` with the VM table (nearly all of its ~215 KiB) last: so built,
/// the task's `StaticSlot` gets it in place. With the fields in the
/// compiler's order, LLVM built the VM table and the switch in a stack
/// temporary (a 208 KiB frame in the task's main, past its 64 KiB stack)
/// and copied it: check `llvm-objdump -d mica-devices` for a large
/// `sub sp` after changing the fields.
#[repr(C)]
pub struct DeviceService<C, I, M, E, B = NoBlock> {
    /// Where the console output numbering of removed VMs ended, so a VM
    /// added again (a reset rebuilds its devices) continues it.
    console_ends: Vec<(VmId, u64), MAX_VMS>,
    irq: I,
    backends: Backends<C, M, E, B>,
    /// Posted writes that failed (to no device, a bad width): the guest
    /// was told they were done, so they are only counted.
    posted_failures: u64,
    /// The Ethernet switch between the VMs' network cards.
    switch: Switch,
    /// The frame being switched, copied out of the sender's RAM.
    packet: Packet,
    vms: Vec<VmDevices, MAX_VMS>,
}

impl<C, I, M, E> DeviceService<C, I, M, E, NoBlock>
where
    C: ConsoleSink,
    I: IrqSink,
    M: GuestMemoryProvider,
    E: EntropySource,
{
    /// A service with no VMs, writing console lines to `console`, interrupt
    /// changes to `irq`, taking guest memory from `memory` and randomness
    /// (virtio-rng, initial generation IDs) from `entropy`; it has no block
    /// backend (see [`DeviceService::with_block`]).
    pub fn new(console: C, irq: I, memory: M, entropy: E) -> Self {
        Self::with_parts(console, irq, memory, entropy, NoBlock)
    }
}

impl<C, I, M, E, B> DeviceService<C, I, M, E, B>
where
    C: ConsoleSink,
    I: IrqSink,
    M: GuestMemoryProvider,
    E: EntropySource,
    B: BlockBackend,
{
    /// The service with `block` serving its virtio-blk devices (the block
    /// service, in the task).
    pub fn with_block<N: BlockBackend>(self, block: N) -> DeviceService<C, I, M, E, N> {
        DeviceService {
            vms: self.vms,
            console_ends: self.console_ends,
            irq: self.irq,
            backends: Backends {
                console: self.backends.console,
                memory: self.backends.memory,
                entropy: self.backends.entropy,
                block,
            },
            posted_failures: self.posted_failures,
            switch: self.switch,
            packet: self.packet,
        }
    }

    /// A service with no VMs, as [`DeviceService::new`] makes it, with
    /// `block` serving its virtio-blk devices: built in one go, so that the
    /// task can build it where it stays (it is larger than a task's stack).
    pub fn with_parts(console: C, irq: I, memory: M, entropy: E, block: B) -> Self {
        Self {
            vms: Vec::new(),
            console_ends: Vec::new(),
            irq,
            backends: Backends {
                console: ConsoleGate::new(console),
                memory,
                entropy,
                block,
            },
            posted_failures: 0,
            switch: Switch::new(),
            packet: Packet::new(),
        }
    }

    /// The block backend, mutably.
    pub fn block_backend(&mut self) -> &mut B {
        &mut self.backends.block
    }

    /// The console sink.
    pub fn console(&self) -> &C {
        self.backends.console.sink()
    }

    /// The interrupt sink.
    pub fn irq_sink(&self) -> &I {
        &self.irq
    }

    /// The guest memory provider, mutably (to grant or revoke memory).
    pub fn memory_provider(&mut self) -> &mut M {
        &mut self.backends.memory
    }

    /// Serves one request.
    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::AddVm { vm, name } => self.add_vm(vm, name).map(|()| Response::Ok),
            Request::RemoveVm { vm } => self.remove_vm(vm).map(|()| Response::Ok),
            Request::Attach {
                vm,
                device,
                space,
                base,
                irq,
            } => self
                .attach(vm, device, space, base, irq)
                .map(|()| Response::Ok),
            Request::Detach { vm, space, base } => {
                self.detach(vm, space, base).map(|()| Response::Ok)
            }
            Request::Read {
                vm,
                space,
                addr,
                size,
            } => self.read(vm, space, addr, size).map(Response::Value),
            Request::Write {
                vm,
                space,
                addr,
                size,
                value,
            } => self
                .write(vm, space, addr, size, value)
                .map(|()| Response::Ok),
            Request::Input { vm, port, bytes } => {
                self.input(vm, port, &bytes).map(|()| Response::Ok)
            }
            Request::SetGenerationId { vm, id } => self
                .set_generation_id(vm, u128::from_le_bytes(id))
                .map(|()| Response::Ok),
            Request::ConsoleRead { vm, from } => self.console_read(vm, from).map(Response::Console),
            Request::WriteBatch { vm, writes, then } => {
                self.write_batch(vm, writes.iter().copied(), then)
            }
            Request::ConsoleFocus { vm } => self.console_focus(vm).map(|()| Response::Ok),
            Request::NetCounters { vm } => self.net_counters(vm).map(Response::Net),
        };
        result.unwrap_or_else(Response::Err)
    }

    /// Gives the VM's generation ID devices a new ID (after a clone or a
    /// snapshot restore); each raises its interrupt until the guest
    /// acknowledges. [`Error::NoDevice`] when the VM has none.
    pub fn set_generation_id(&mut self, vm: VmId, id: u128) -> Result<(), Error> {
        let slot = self.vm_mut(vm)?;
        let mut found = false;
        for device in slot.buses.devices_mut() {
            if let DeviceModel::VmGenId(genid) = &mut device.model {
                genid.set_id(id);
                found = true;
            }
        }
        self.report_irq_changes(vm, true);
        if found { Ok(()) } else { Err(Error::NoDevice) }
    }

    /// The VM's generation ID (from its first generation ID device).
    pub fn generation_id(&mut self, vm: VmId) -> Result<u128, Error> {
        self.vm_mut(vm)?
            .buses
            .devices_mut()
            .find_map(|device| match &device.model {
                DeviceModel::VmGenId(genid) => Some(genid.id()),
                _ => None,
            })
            .ok_or(Error::NoDevice)
    }

    /// Prints only `vm`'s console lines from now on, or every VM's again
    /// (`None`), the lines held meanwhile first (see [`ConsoleGate`]).
    /// [`Error::UnknownVm`] for a VM not served.
    pub fn console_focus(&mut self, vm: Option<VmId>) -> Result<(), Error> {
        let Some(vm) = vm else {
            self.backends.console.focus(None);
            return Ok(());
        };
        let slot = self
            .vms
            .iter()
            .find(|v| v.vm == vm)
            .ok_or(Error::UnknownVm)?;
        self.backends.console.focus(Some((vm, slot.name.as_str())));
        Ok(())
    }

    /// Console input bytes dropped for `vm` because its UART's backlog was
    /// full.
    pub fn dropped_input(&self, vm: VmId) -> Result<u64, Error> {
        self.vms
            .iter()
            .find(|v| v.vm == vm)
            .map(|v| v.dropped_input)
            .ok_or(Error::UnknownVm)
    }

    /// Up to [`OUTPUT_CHUNK`] bytes of `vm`'s console output from byte
    /// number `from` on (see [`ConsoleRing::read`]).
    pub fn console_read(&self, vm: VmId, from: u64) -> Result<ConsoleChunk, Error> {
        self.vms
            .iter()
            .find(|v| v.vm == vm)
            .map(|v| v.output.read(from, OUTPUT_CHUNK))
            .ok_or(Error::UnknownVm)
    }

    fn vm_mut(&mut self, vm: VmId) -> Result<&mut VmDevices, Error> {
        self.vms
            .iter_mut()
            .find(|v| v.vm == vm)
            .ok_or(Error::UnknownVm)
    }

    fn add_vm(&mut self, vm: VmId, name: WireName) -> Result<(), Error> {
        if !is_vm_name(&name) {
            return Err(Error::InvalidName);
        }
        if self.vms.iter().any(|v| v.vm == vm) {
            return Err(Error::VmExists);
        }
        if self.vms.iter().any(|v| v.name == name) {
            return Err(Error::DuplicateName);
        }
        let console_start = match self.console_ends.iter().position(|(id, _)| *id == vm) {
            Some(at) => self.console_ends.swap_remove(at).1,
            None => 0,
        };
        let devices = VmDevices {
            vm,
            name,
            buses: Buses::default(),
            lines: ConsoleLines::new(),
            output: ConsoleRing::starting_at(console_start),
            input_backlog: Deque::new(),
            dropped_input: 0,
            external_levels: 0,
            lines_unsettled: false,
            attached: 0,
        };
        self.vms.push(devices).map_err(|_| Error::NoFreeSlot {
            max: u16::try_from(MAX_VMS).unwrap_or(u16::MAX),
        })
    }

    fn remove_vm(&mut self, vm: VmId) -> Result<(), Error> {
        let index = self
            .vms
            .iter()
            .position(|v| v.vm == vm)
            .ok_or(Error::UnknownVm)?;
        let mut removed = self.vms.swap_remove(index);
        // One entry per VM id, and at most MAX_VMS ids were ever served
        // at once; should the table be full, the oldest end is forgotten.
        if self.console_ends.is_full() {
            self.console_ends.remove(0);
        }
        let _ = self.console_ends.push((vm, removed.output.next()));
        removed
            .lines
            .flush_partial(&removed.name, &mut self.backends.console.for_vm(vm));
        self.backends.console.vm_removed(vm);
        self.switch.forget_port(vm);
        for device in removed.buses.devices_mut() {
            if device.reported_level {
                self.irq.irq_event(IrqEvent::SetLevel {
                    vm,
                    irq: device.irq,
                    asserted: false,
                });
            }
        }
        report_external_changes(&mut self.irq, vm, removed.external_levels, 0);
        Ok(())
    }

    fn attach(
        &mut self,
        vm: VmId,
        kind: DeviceKind,
        space: Space,
        base: u64,
        irq: u32,
    ) -> Result<(), Error> {
        // The vm-manager sets the real ID (`SetGenerationId`); without a
        // hardware source this first one stays (partly) zero.
        let mut id = [0u8; 16];
        self.backends.entropy.fill(&mut id);
        let mut model =
            DeviceModel::new(vm, kind, u128::from_le_bytes(id), &mut self.backends.block)?;
        let len = model.size();
        let number = self.vm_mut(vm)?.attached;
        let (record, restored) = self.restore(vm, number, &mut model, base);
        let slot = self.vm_mut(vm)?;
        let bus = slot.buses.get_mut(space).ok_or(Error::InvalidArgument)?;
        let device = AttachedDevice {
            model,
            irq,
            reported_level: false,
            record,
        };
        bus.insert(base, len, device)
            .map_err(|(err, _)| match err {
                BusError::Overlap => Error::DeviceExists,
                BusError::Empty | BusError::Wraps => Error::InvalidRange,
                BusError::Full => Error::TableFull,
            })?;
        slot.attached += 1;
        if restored {
            // Its queues are taken up and its line driven again.
            let transmitted =
                self.with_device(vm, space, base, AccessSize::Byte, false, |dev, _, env| {
                    env.with(|env| dev.resume(env));
                    Ok(match dev {
                        DeviceModel::VirtioNet(card) => card.device_mut().take_tx_notification(),
                        _ => false,
                    })
                });
            // A card's frames posted while no service ran leave now.
            if transmitted == Ok(true) {
                self.switch_frames(vm);
            }
            if let Ok(slot) = self.vm_mut(vm) {
                slot.lines_unsettled = true;
            }
            self.report_irq_changes(vm, true);
        }
        Ok(())
    }

    /// The record number `number` of `vm`'s device-state area for a model
    /// at `base`, and whether the model took back what it held (a
    /// predecessor of this service kept it there). A model that keeps
    /// nothing, or a number past the area, gets no record.
    fn restore(
        &mut self,
        vm: VmId,
        number: usize,
        model: &mut DeviceModel,
        base: u64,
    ) -> (Option<(usize, u32)>, bool) {
        let kind = model.kind();
        let Some(persist) = model.persist() else {
            return (None, false);
        };
        if number >= persist::MAX_RECORDS {
            return (None, false);
        }
        let mut bytes = [0u8; persist::RECORD_BYTES];
        let offset = number * persist::RECORD_BYTES;
        let kept = self
            .backends
            .memory
            .load_state(vm, offset, &mut bytes)
            .ok()
            .and_then(|()| persist::decode(kind, base, &bytes))
            .filter(|(payload, _)| persist.restore(payload));
        match kept {
            Some((_, sum)) => (Some((number, sum)), true),
            None => (Some((number, 0)), false),
        }
    }

    /// Writes `device`'s record (number and last checksum in `record`) if
    /// what it keeps changed since it was last written.
    fn save(memory: &mut M, vm: VmId, base: u64, device: &mut AttachedDevice) {
        let Some((number, last)) = device.record else {
            return;
        };
        let kind = device.model.kind();
        let Some(persist) = device.model.persist() else {
            return;
        };
        let mut payload = [0u8; persist::MAX_PAYLOAD];
        let len = persist.save(&mut payload);
        let mut record = [0u8; persist::RECORD_BYTES];
        let Some((end, sum)) = persist::encode(kind, base, &payload[..len], &mut record) else {
            return;
        };
        if sum != last {
            let offset = number * persist::RECORD_BYTES;
            // Kept for a restarted service only: should the kernel refuse
            // (no grant: the VM is being reset), nothing else changes.
            if memory.save_state(vm, offset, &record[..end]).is_ok() {
                device.record = Some((number, sum));
            }
        }
    }

    fn detach(&mut self, vm: VmId, space: Space, base: u64) -> Result<(), Error> {
        let bus = self
            .vm_mut(vm)?
            .buses
            .get_mut(space)
            .ok_or(Error::NoDevice)?;
        let device = bus.remove(base).ok_or(Error::NoDevice)?;
        if matches!(device.model, DeviceModel::VirtioNet(_)) {
            self.switch.forget_port(vm);
        }
        if device.reported_level {
            self.irq.irq_event(IrqEvent::SetLevel {
                vm,
                irq: device.irq,
                asserted: false,
            });
        }
        // Its line goes down with it, in the PLIC too, and a request it
        // made (a pulse) that nobody claimed is withdrawn.
        if let Some(plic) = self.vm_mut(vm)?.plic_mut() {
            plic.disconnect(device.irq);
        }
        self.report_irq_changes(vm, true);
        Ok(())
    }

    fn read(&mut self, vm: VmId, space: Space, addr: u64, size: u8) -> Result<u64, Error> {
        let size = AccessSize::from_bytes(size).ok_or(Error::BadAccess)?;
        self.with_device(
            vm,
            space,
            addr,
            size,
            false,
            |device, offset, env| match device.read_without_env(offset, size) {
                Some(result) => result,
                None => env.with(|env| device.read(offset, size, env)),
            },
        )
    }

    fn write(
        &mut self,
        vm: VmId,
        space: Space,
        addr: u64,
        size: u8,
        value: u64,
    ) -> Result<(), Error> {
        let size = AccessSize::from_bytes(size).ok_or(Error::BadAccess)?;
        // A write may notify a network card's transmit queue: its frames
        // are then switched (after the access, with the card's VM let go).
        let tx_notified =
            self.with_device(vm, space, addr, size, true, |device, offset, env| {
                env.with(|env| device.write(offset, size, value & size.mask(), env))?;
                Ok(match device {
                    DeviceModel::VirtioNet(card) => card.device_mut().take_tx_notification(),
                    _ => false,
                })
            })?;
        if tx_notified {
            self.switch_frames(vm);
        }
        Ok(())
    }

    /// A `WriteBatch`: the posted writes in order, each as a `Write` (a
    /// failure is counted, see [`DeviceService::posted_failures`], and the
    /// rest go on), then the waited access, whose result is the answer.
    /// Writes come in runs to one device (a driver filling a UART's
    /// transmit FIFO), each run taken by [`DeviceService::write_run`].
    fn write_batch(
        &mut self,
        vm: VmId,
        writes: impl Iterator<Item = BatchWrite>,
        then: Option<WaitedAccess>,
    ) -> Result<Response, Error> {
        let mut writes = writes.peekable();
        while let Some(first) = writes.next() {
            if self.write_run(vm, first, &mut writes).is_err() {
                self.posted_failures = self.posted_failures.wrapping_add(1);
            }
        }
        match then {
            None => Ok(Response::Ok),
            Some(a) => match a.write {
                None => self.read(vm, a.space, a.addr, a.size).map(Response::Value),
                Some(value) => self
                    .write(vm, a.space, a.addr, a.size, value)
                    .map(|()| Response::Ok),
            },
        }
    }

    /// Posted write `first`, then those after it in `rest` that go to the
    /// same device, as each would be done on its own ([`DeviceService::write`]),
    /// with the VM, the device and its environment found once. The run
    /// ends at a write to another device, or after a write that moved the
    /// device's interrupt line (reported then, as on its own). A device
    /// whose accesses need more than that check (a PLIC, a network card),
    /// or a VM with lines unsettled or console input backlogged, takes
    /// `first` alone on the general path. `Err` is `first`'s failure; the
    /// failures of the writes after it are counted here.
    fn write_run<W: Iterator<Item = BatchWrite>>(
        &mut self,
        vm: VmId,
        first: BatchWrite,
        rest: &mut Peekable<W>,
    ) -> Result<(), Error> {
        let Self {
            vms,
            backends,
            posted_failures,
            ..
        } = self;
        let slot = vm_in(vms, vm).ok_or(Error::UnknownVm)?;
        let settled = !slot.lines_unsettled && slot.input_backlog.is_empty();
        let (buses, mut env) = slot.split(backends);
        let entry = buses
            .get_mut(first.space)
            .and_then(|bus| bus.find_mut(first.addr))
            .ok_or(Error::NoDevice)?;
        let (base, len) = (entry.base(), entry.len());
        let device = entry.device_mut();
        if !settled
            || matches!(
                device.model,
                DeviceModel::Plic(_) | DeviceModel::VirtioNet(_)
            )
        {
            let BatchWrite {
                space,
                addr,
                size,
                value,
            } = first;
            return self.write(vm, space, addr, size, value);
        }
        let mut result = Ok(());
        let mut run = Run {
            first,
            base,
            len,
            reported: device.reported_level,
            rest,
            result: &mut result,
            failures: posted_failures,
        };
        // One environment for the run. A UART's run (a driver filling its
        // FIFO) calls the UART itself, not the model's dispatch per write.
        let saved = env.with(|denv| match &mut device.model {
            DeviceModel::Uart(uart) => run.go(uart, denv),
            model => run.go(model, denv),
        });
        if saved {
            Self::save(&mut env.backends.memory, vm, base, device);
        }
        if device.model.irq_level() != device.reported_level {
            self.report_irq_changes(vm, false);
        }
        result
    }

    /// Posted writes that failed since the service started.
    pub fn posted_failures(&self) -> u64 {
        self.posted_failures
    }

    /// Runs one access on the device at `addr`, then keeps its registers
    /// if it `wrote` one that is kept
    /// ([`persist::Persist::write_persists`]) and
    /// reports interrupt changes. The access gets the parts of a
    /// [`DeviceEnv`], built only if the model needs one.
    #[allow(
        clippy::too_many_arguments,
        reason = "one access: its VM, place, width and kind, and what it does"
    )]
    fn with_device<R>(
        &mut self,
        vm: VmId,
        space: Space,
        addr: u64,
        size: AccessSize,
        wrote: bool,
        access: impl FnOnce(
            &mut DeviceModel,
            u64,
            &mut EnvParts<'_, C, M, E, B>,
        ) -> Result<R, crate::bus::DeviceError>,
    ) -> Result<R, Error> {
        let Self { vms, backends, .. } = self;
        let slot = vm_in(vms, vm).ok_or(Error::UnknownVm)?;
        let (buses, mut env) = slot.split(backends);
        let bus = buses.get_mut(space).ok_or(Error::NoDevice)?;
        let entry = bus.find_mut(addr).ok_or(Error::NoDevice)?;
        let offset = addr - entry.base();
        fits(offset, size, entry.len())?;
        let base = entry.base();
        let device = entry.device_mut();
        let result = access(&mut device.model, offset, &mut env).map_err(|_| Error::BadAccess);
        if wrote && result.is_ok() && device.model.write_persists(offset) {
            Self::save(&mut env.backends.memory, vm, base, device);
        }
        let plic_touched = matches!(device.model, DeviceModel::Plic(_));
        let is_uart = matches!(device.model, DeviceModel::Uart(_));
        // Unless `lines_unsettled`, every line was as last reported before
        // this access, and only the device accessed (and a UART fed from
        // the input backlog) can have moved its line since: when neither
        // did and the PLIC was not touched, a report would do nothing.
        let line_moved = device.model.irq_level() != device.reported_level;
        let fed = is_uart && slot.feed_console_uart();
        if line_moved || fed || plic_touched || slot.lines_unsettled {
            self.report_irq_changes(vm, plic_touched);
        }
        result
    }

    fn input(&mut self, vm: VmId, port: ConsolePort, bytes: &[u8]) -> Result<(), Error> {
        let Self { vms, backends, .. } = self;
        let slot = vms
            .iter_mut()
            .find(|v| v.vm == vm)
            .ok_or(Error::UnknownVm)?;
        // The serial port is the UART, else the virtio console.
        if port == ConsolePort::Serial && slot.buses.console_uart().is_some() {
            for &byte in bytes {
                if slot.input_backlog.push_back(byte).is_err() {
                    slot.dropped_input = slot.dropped_input.saturating_add(1);
                }
            }
            slot.feed_console_uart();
        } else {
            let (buses, mut env) = slot.split(backends);
            let dev = buses
                .devices_mut()
                .find_map(|device| match &mut device.model {
                    DeviceModel::VirtioConsole(dev) => Some(dev),
                    _ => None,
                })
                .ok_or(Error::NoDevice)?;
            dev.device_mut().queue_input(bytes);
            env.with(|env| dev.process_queue(RECEIVEQ, env));
        }
        self.report_irq_changes(vm, true);
        Ok(())
    }

    /// Reports every line of `vm` whose level differs from the last report,
    /// drives the VM's PLIC (if attached) with every line, and reports each
    /// context's external interrupt that changed. The PLIC's output
    /// can only change when a line did or the guest touched the PLIC
    /// (`plic_touched`), so otherwise it is not evaluated: most accesses on
    /// the I/O path change no line.
    fn report_irq_changes(&mut self, vm: VmId, plic_touched: bool) {
        let Some(slot) = self.vms.iter_mut().find(|v| v.vm == vm) else {
            return;
        };
        let mut lines: Vec<(u32, bool), { 2 * MAX_DEVICES_PER_BUS }> = Vec::new();
        let mut changed = plic_touched;
        for device in slot.buses.devices_mut() {
            let level = device.model.irq_level();
            // Two buses of MAX_DEVICES_PER_BUS devices: always room.
            let _ = lines.push((device.irq, level));
            if level != device.reported_level {
                changed = true;
                device.reported_level = level;
                self.irq.irq_event(IrqEvent::SetLevel {
                    vm,
                    irq: device.irq,
                    asserted: level,
                });
            }
        }
        if !changed {
            slot.lines_unsettled = false;
            return;
        }
        let plic = slot.plic_mut();
        // Level-triggered inputs: driving a line with its level again
        // changes nothing, so every line is fed each time.
        let external = plic.map_or(0, |plic| {
            for &(irq, level) in &lines {
                plic.set_line(irq, level);
            }
            plic.external_levels()
        });
        for device in slot.buses.devices_mut() {
            device.model.irq_latched();
        }
        // A pulse the PLIC latched has dropped: the next report lowers it.
        slot.lines_unsettled = slot
            .buses
            .devices_mut()
            .any(|device| device.model.irq_level() != device.reported_level);
        let before = core::mem::replace(&mut slot.external_levels, external);
        report_external_changes(&mut self.irq, vm, before, external);
    }
}

/// `vm`'s record in `vms`: found once, then used as it is (no index to
/// check again). Kept out of line: the VM records are large, and an
/// inlined search carries the addresses of their fields.
#[inline(never)]
fn vm_in(vms: &mut [VmDevices], vm: VmId) -> Option<&mut VmDevices> {
    vms.iter_mut().find(|v| v.vm == vm)
}

/// Whether an access of `size` at `offset` lies within a device's `len`
/// bytes; [`Error::BadAccess`] if not.
fn fits(offset: u64, size: AccessSize, len: u64) -> Result<(), Error> {
    let end = offset.checked_add(size.bytes()).ok_or(Error::BadAccess)?;
    if end > len {
        return Err(Error::BadAccess);
    }
    Ok(())
}

/// Tells `irq` of every PLIC context of `vm` whose external interrupt is
/// raised in one of `before` and `now` (bit `c` for context `c`) and not
/// the other, in context order.
fn report_external_changes(irq: &mut impl IrqSink, vm: VmId, before: u32, now: u32) {
    let changed = before ^ now;
    for context in (0..crate::plic::PLIC_CONTEXTS).filter(|c| changed & 1 << c != 0) {
        irq.external_irq(vm, context, now & 1 << context != 0);
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "service_plic_tests.rs"]
mod plic_tests;

#[cfg(test)]
#[path = "service_fast_tests.rs"]
mod fast_tests;

#[cfg(test)]
#[path = "service_blk_tests.rs"]
mod blk_tests;

#[cfg(test)]
#[path = "service_persist_tests.rs"]
mod persist_tests;

#[cfg(test)]
#[path = "service_net_tests.rs"]
mod net_tests;

impl<C, I, M, E, B> ipc::server::Service for DeviceService<C, I, M, E, B>
where
    C: ConsoleSink,
    I: IrqSink,
    M: GuestMemoryProvider,
    E: EntropySource,
    B: BlockBackend,
{
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, request: Request) -> Response {
        DeviceService::handle(self, request)
    }

    fn refusal(error: Error) -> Response {
        Response::Err(error)
    }

    /// Guest reads and writes (the I/O path) are decoded and answered by
    /// hand ([`ipc::devices::wire`]); everything else goes the general way.
    #[inline]
    fn answer_fast(&mut self, message: &mut impl MessageBuffer) -> Option<Result<usize, Error>> {
        let Some(access) = message.request(wire::decode_access) else {
            // The writes leave the message before any is done: one may
            // notify a virtio device, whose model copies guest memory and
            // calls the block service through the IPC buffer that holds
            // the message.
            // Decoded in one pass (checked whole before any write is done).
            let mut writes: Vec<BatchWrite, MAX_BATCH> = Vec::new();
            let (vm, then) =
                message.request(|bytes| wire::decode_write_batch_into(bytes, &mut writes))?;
            let response = self
                .write_batch(vm, writes.iter().copied(), then)
                .unwrap_or_else(Response::Err);
            return Some(message.reply(|buf| wire::encode_response(&response, buf)));
        };
        let response = match access.write {
            None => self
                .read(access.vm, access.space, access.addr, access.size)
                .map_or_else(Response::Err, Response::Value),
            Some(value) => self
                .write(access.vm, access.space, access.addr, access.size, value)
                .map_or_else(Response::Err, |()| Response::Ok),
        };
        Some(message.reply(|buf| wire::encode_response(&response, buf)))
    }
}
