//! The vm-manager service: [`VmManager::handle`] turns each
//! [`ipc::vm::Request`] into checks, platform effects and a
//! [`ipc::vm::Response`]; [`VmManager::launch_pre_launched`] is the boot-time
//! entry for pre-launched VMs.

use ipc::devices::ConsoleChunk;
use ipc::vm::{ConsolePort, CreateOptions, Request, Response, VmChange, VmKind, VmState, VmStats};
use ipc::{VmId, WireName};

use crate::config::{DynamicDefaults, ScenarioError, StaticVmConfig, VmConfig, VmFlags};
use crate::creation::{self, Contents};
use crate::ended::EndedVms;
use crate::events::EventLog;
use crate::genid::{EntropySource, GenerationId};
use crate::lifecycle::{LiveState, Operation, transition};
use crate::name::VmName;
use crate::platform::Platform;
use crate::slots::{ExitSeen, LiveVm, SlotTable};

mod guest_exits;
mod recovery;

pub use guest_exits::GuestExit;
pub use recovery::Recovery;

/// The slot table size unless a binary picks another (ACRN's
/// `CONFIG_MAX_VM_NUM`).
pub const DEFAULT_MAX_VM_NUM: usize = 16;

/// Who sent a request (the task binary tells by the message's badge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The supervisor (init).
    Supervisor,
    /// Anyone else: the shell, the management channel.
    Operator,
}

/// The outcome of launching one pre-launched VM at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreLaunch {
    /// The VM's slot.
    pub id: VmId,
    /// Its name.
    pub name: VmName,
    /// `Ok` when it runs; otherwise why not (it is then powered off again).
    pub result: Result<(), ipc::Error>,
}

/// The vm-manager's state: the slot table, and the platform and entropy
/// source it acts through. `MAX_VM_NUM` is the number of slots.
pub struct VmManager<P, E, const MAX_VM_NUM: usize = DEFAULT_MAX_VM_NUM> {
    slots: SlotTable<MAX_VM_NUM>,
    platform: P,
    entropy: E,
    defaults: DynamicDefaults,
    /// Dynamic VMs that ended lately, by name.
    ended: EndedVms,
    /// The VMs' state changes, for `Events`.
    events: EventLog,
}

/// A VM looked up by name: its slot and state.
#[derive(Clone, Copy)]
struct Found {
    id: VmId,
    state: VmState,
    generation_id: GenerationId,
}

impl<P: Platform, E: EntropySource, const MAX_VM_NUM: usize> VmManager<P, E, MAX_VM_NUM> {
    /// A vm-manager for the build-time `scenario` (every VM powered off),
    /// acting through `platform` and drawing generation IDs from `entropy`.
    pub fn new(
        scenario: &[StaticVmConfig],
        platform: P,
        entropy: E,
    ) -> Result<Self, ScenarioError> {
        Ok(VmManager {
            slots: SlotTable::new(scenario)?,
            platform,
            entropy,
            defaults: DynamicDefaults::default(),
            ended: EndedVms::new(),
            events: EventLog::new(),
        })
    }

    /// Uses `defaults` for settings a dynamic VM's request leaves open.
    pub fn with_defaults(mut self, defaults: DynamicDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Names this life of the vm-manager (the task's restart count) in its
    /// event pages, so that a reader that followed a former life notices
    /// that the numbering started again.
    pub fn set_incarnation(&mut self, incarnation: u32) {
        self.events.set_incarnation(incarnation);
    }

    /// The platform (for the task binary's bookkeeping and for tests).
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The platform, mutably.
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// Serves one request from an operator (the shell, the CLI). Never
    /// panics, whatever the request holds.
    pub fn handle(&mut self, request: Request) -> Response {
        self.handle_from(Caller::Operator, request)
    }

    /// Serves one request from `caller`: the supervisor's requests
    /// (`ServiceRestarted`) are refused to anyone else with
    /// `PermissionDenied`.
    pub fn handle_from(&mut self, caller: Caller, request: Request) -> Response {
        if matches!(request, Request::ServiceRestarted { .. }) && caller != Caller::Supervisor {
            return Response::Err(ipc::Error::PermissionDenied);
        }
        // The name a refusal as "no such VM" may be about.
        let asked = Self::asked_about(&request);
        let result = match request {
            Request::Create { name, options } => self.create(&name, &options),
            Request::Start { name } => self.start(&name).map(|()| Response::Ok),
            Request::Pause { name } => self.pause(&name).map(|()| Response::Ok),
            Request::Resume { name } => self.resume(&name).map(|()| Response::Ok),
            Request::Reset {
                name,
                new_generation_id,
            } => self.reset(&name, new_generation_id).map(|()| Response::Ok),
            Request::Shutdown { name } => self.shutdown(&name).map(|()| Response::Ok),
            Request::Destroy { name } => self.destroy(&name).map(|()| Response::Ok),
            Request::Clone { source, name } => self.clone_vm(&source, &name),
            Request::List { from } => Ok(self.list(from)),
            Request::Images { from } => self.images(from),
            Request::Events { from } => Ok(Response::Events(self.events.read(from))),
            Request::Info { name } => self.info(&name),
            Request::ConsoleInput { name, port, bytes } => self
                .console_input(&name, port, &bytes)
                .map(|()| Response::Ok),
            Request::ConsoleOutput { name, from } => self
                .console_output(&name, from)
                .map(Response::ConsoleOutput),
            Request::Stats { name } => self.stats(&name).map(Response::Stats),
            Request::ConsoleFocus { name } => {
                self.console_focus(name.as_ref()).map(|()| Response::Ok)
            }
            Request::ServiceRestarted { endpoint } => self
                .platform
                .service_restarted(endpoint)
                .map(|()| Response::Ok),
        };
        match result {
            Ok(response) => response,
            Err(ipc::Error::UnknownVm) => asked
                .and_then(|name| VmName::try_from(&name).ok())
                .and_then(|name| self.ended.find(&name))
                .map_or(Response::Err(ipc::Error::UnknownVm), Response::Ended),
            Err(error) => Response::Err(error),
        }
    }

    /// The VM a request looks up by name (a clone's source); `None` for a
    /// create (whose name is new), a list and the supervisor's requests.
    fn asked_about(request: &Request) -> Option<WireName> {
        match request {
            Request::Start { name }
            | Request::Pause { name }
            | Request::Resume { name }
            | Request::Reset { name, .. }
            | Request::Shutdown { name }
            | Request::Destroy { name }
            | Request::Info { name }
            | Request::ConsoleInput { name, .. }
            | Request::ConsoleOutput { name, .. }
            | Request::Stats { name }
            | Request::ConsoleFocus { name: Some(name) } => Some(name.clone()),
            Request::Clone { source, .. } => Some(source.clone()),
            Request::Create { .. }
            | Request::List { .. }
            | Request::Images { .. }
            | Request::Events { .. }
            | Request::ServiceRestarted { .. }
            | Request::ConsoleFocus { name: None } => None,
        }
    }

    /// How the dynamic VM called `name` ended, if the history of ended VMs
    /// remembers it (a VM of that name no longer exists).
    pub fn ended(&self, name: &VmName) -> Option<ipc::vm::LastExit> {
        self.ended.find(name)
    }

    /// Creates and starts every static VM flagged pre-launched, in slot
    /// order, and says how each went. A VM that was created but failed to
    /// start is torn down again, so each ends either started or powered off.
    pub fn launch_pre_launched(&mut self) -> heapless::Vec<PreLaunch, MAX_VM_NUM> {
        let mut outcomes = heapless::Vec::new();
        let mut pre_launched: heapless::Vec<(VmId, VmName), MAX_VM_NUM> = heapless::Vec::new();
        for entry in self.slots.entries_from(0) {
            if entry.config.flags.contains(VmFlags::PRE_LAUNCHED) {
                // At most one entry per slot: never full.
                let _ = pre_launched.push((entry.id, entry.config.name.clone()));
            }
        }
        for (id, name) in pre_launched {
            let result = self.launch_static(id).and_then(|()| {
                self.start_vm(id).inspect_err(|_| {
                    self.release(id);
                })
            });
            if result.is_ok() {
                self.record_in(id, VmChange::Created, VmState::Created);
                self.record(id, VmChange::Started);
            }
            // At most one outcome per slot: never full.
            let _ = outcomes.push(PreLaunch { id, name, result });
        }
        outcomes
    }

    /// Finds the VM called `name`.
    fn find(&self, name: &WireName) -> Result<Found, ipc::Error> {
        let name = VmName::try_from(name)?;
        let id = self.slots.find(&name).ok_or(ipc::Error::UnknownVm)?;
        let entry = self.slots.get(id).ok_or(ipc::Error::UnknownVm)?;
        Ok(Found {
            id,
            state: entry.state(),
            generation_id: entry
                .live
                .map_or(GenerationId::NONE, |live| live.generation_id),
        })
    }

    /// Records `vm`'s new state after a successful transition.
    fn set_state(&mut self, vm: Found, state: VmState) -> Result<(), ipc::Error> {
        match LiveState::of(state) {
            Some(state) => self.slots.set_live(
                vm.id,
                LiveVm {
                    state,
                    generation_id: vm.generation_id,
                },
            ),
            None => {
                self.slots.power_off(vm.id);
                Ok(())
            }
        }
    }

    /// The `Info` response for slot `id`.
    fn info_of(&self, id: VmId) -> Result<Response, ipc::Error> {
        let entry = self.slots.get(id).ok_or(ipc::Error::UnknownVm)?;
        Ok(Response::Info(entry.info()))
    }

    fn create(&mut self, name: &WireName, options: &CreateOptions) -> Result<Response, ipc::Error> {
        let name = VmName::try_from(name)?;
        if let Some(id) = self.slots.find(&name) {
            let entry = self.slots.get(id).ok_or(ipc::Error::UnknownVm)?;
            if entry.kind == VmKind::Dynamic || entry.live.is_some() {
                return Err(ipc::Error::DuplicateName);
            }
            // A static VM's settings are fixed at build time, and its name
            // stays its own while it is powered off: settings given with
            // it (a template to copy, an image ...) are refused as such,
            // not as an argument out of range.
            if *options != CreateOptions::default() {
                return Err(ipc::Error::StaticSettings);
            }
            self.launch_static(id)?;
            self.record(id, VmChange::Created);
            return self.info_of(id);
        }
        let template = match &options.template {
            Some(template) => {
                let template = VmName::try_from(template)?;
                let entry = self
                    .slots
                    .find(&template)
                    .and_then(|id| self.slots.get(id))
                    .filter(|entry| entry.kind == VmKind::Static)
                    .ok_or(ipc::Error::UnknownImage)?;
                Some(entry.config.clone())
            }
            None => None,
        };
        let config = VmConfig::dynamic(name, options, template.as_ref(), &self.defaults)?;
        self.check_disk_free(config.disk)?;
        let id = self.create_dynamic(config, Contents::Image)?;
        self.record(id, VmChange::Created);
        self.info_of(id)
    }

    /// `DiskInUse` when a live VM holds `disk`: refused before any RAM is
    /// taken (the platform checks again when it attaches the disk).
    fn check_disk_free(&self, disk: Option<u8>) -> Result<(), ipc::Error> {
        let Some(disk) = disk else { return Ok(()) };
        let held = self
            .slots
            .entries_from(0)
            .any(|entry| entry.live.is_some() && entry.config.disk == Some(disk));
        if held {
            return Err(ipc::Error::DiskInUse);
        }
        Ok(())
    }

    /// Builds the powered-off static VM in slot `id`.
    fn launch_static(&mut self, id: VmId) -> Result<(), ipc::Error> {
        let entry = self.slots.get(id).ok_or(ipc::Error::UnknownVm)?;
        if entry.live.is_some() {
            return Err(ipc::Error::DuplicateName);
        }
        let state = transition(entry.state(), Operation::Create)?;
        let config = entry.config.clone();
        self.check_disk_free(config.disk)?;
        let generation_id = GenerationId::draw(&mut self.entropy);
        creation::build(
            &mut self.platform,
            id,
            &config,
            Contents::Image,
            generation_id,
        )?;
        let found = Found {
            id,
            state,
            generation_id,
        };
        self.set_state(found, state).inspect_err(|_| {
            creation::tear_down(&mut self.platform, id);
        })
    }

    /// Builds a dynamic VM in a free slot; nothing is left behind on failure.
    fn create_dynamic(&mut self, config: VmConfig, contents: Contents) -> Result<VmId, ipc::Error> {
        let id = self.slots.free_slot().ok_or(ipc::Error::NoFreeSlot {
            max: self.slots.max(),
        })?;
        let state = transition(VmState::PoweredOff, Operation::Create)?;
        let generation_id = GenerationId::draw(&mut self.entropy);
        creation::build(&mut self.platform, id, &config, contents, generation_id)?;
        let live = LiveVm {
            state: LiveState::of(state).unwrap_or(LiveState::Created),
            generation_id,
        };
        // A restarted vm-manager builds the configuration again from this.
        let options = config.as_options();
        let name = config.name.clone();
        self.platform
            .keep_config(id, &options)
            .and_then(|()| self.slots.insert_dynamic(id, config, live))
            .inspect_err(|_| creation::tear_down(&mut self.platform, id))?;
        // A VM of that name exists again.
        self.ended.forget(&name);
        Ok(id)
    }

    /// Starts a created VM; a powered-off static VM (its guest powered
    /// off, or it was shut down) is launched again first.
    fn start(&mut self, name: &WireName) -> Result<(), ipc::Error> {
        let vm = self.find(name)?;
        if self.is_powered_off_static(vm.id) {
            self.launch_static(vm.id)?;
            self.start_vm(vm.id).inspect_err(|_| {
                self.release(vm.id);
            })?;
            self.record_in(vm.id, VmChange::Created, VmState::Created);
        } else {
            self.start_vm(vm.id)?;
        }
        self.record(vm.id, VmChange::Started);
        Ok(())
    }

    /// Starts the VM in slot `id`.
    fn start_vm(&mut self, id: VmId) -> Result<(), ipc::Error> {
        let entry = self.slots.get(id).ok_or(ipc::Error::UnknownVm)?;
        let vm = Found {
            id,
            state: entry.state(),
            generation_id: entry
                .live
                .map_or(GenerationId::NONE, |live| live.generation_id),
        };
        let next = transition(vm.state, Operation::Start)?;
        self.platform.start(id)?;
        self.set_state(vm, next)?;
        // It runs again: how it last ended is history.
        self.slots.set_last_exit(id, None);
        Ok(())
    }

    fn pause(&mut self, name: &WireName) -> Result<(), ipc::Error> {
        self.hold_or_run(name, Operation::Pause, P::pause, VmChange::Paused)
    }

    fn resume(&mut self, name: &WireName) -> Result<(), ipc::Error> {
        self.hold_or_run(name, Operation::Resume, P::resume, VmChange::Resumed)
    }

    /// Pauses or resumes: `operation` must be legal in the VM's state, then
    /// the platform does it (`act`; nothing changes if it fails), then the
    /// new state is kept and `change` recorded.
    fn hold_or_run(
        &mut self,
        name: &WireName,
        operation: Operation,
        act: fn(&mut P, VmId) -> Result<(), ipc::Error>,
        change: VmChange,
    ) -> Result<(), ipc::Error> {
        let vm = self.find(name)?;
        let next = transition(vm.state, operation)?;
        act(&mut self.platform, vm.id)?;
        self.set_state(vm, next)?;
        self.record(vm.id, change);
        Ok(())
    }

    /// Reboots in place. With `new_generation_id`, the platform learns the
    /// fresh ID first (nothing changes if it refuses); once told, the fresh
    /// ID is kept even if the reset then fails, so the record matches what
    /// the guest can read (a spurious change is always safe for a guest). If
    /// the platform's reset fails the VM keeps its state; if restarting a
    /// reset VM fails it is left created and the error returned. A reset
    /// that happened is recorded, with the state it left the VM in.
    fn reset(&mut self, name: &WireName, new_generation_id: bool) -> Result<(), ipc::Error> {
        let mut vm = self.find(name)?;
        let next = transition(vm.state, Operation::Reset)?;
        if new_generation_id {
            let fresh = GenerationId::draw(&mut self.entropy);
            self.platform.set_generation_id(vm.id, fresh)?;
            vm.generation_id = fresh;
            self.set_state(vm, vm.state)?;
        }
        self.platform.reset(vm.id)?;
        self.set_state(vm, VmState::Created)?;
        let restarted = if next == VmState::Started {
            self.platform
                .start(vm.id)
                .and_then(|()| self.set_state(vm, VmState::Started))
        } else {
            Ok(())
        };
        self.record(vm.id, VmChange::Reset { new_generation_id });
        restarted
    }

    /// Powers off in order: a running VM's vCPUs are held first (nothing
    /// changes if that fails), then every resource is released.
    fn shutdown(&mut self, name: &WireName) -> Result<(), ipc::Error> {
        let vm = self.find(name)?;
        let next = transition(vm.state, Operation::Shutdown)?;
        if vm.state == VmState::Started {
            self.platform.pause(vm.id)?;
        }
        self.note_end(vm.id, ipc::vm::LastExit::ShutDown, None);
        creation::tear_down(&mut self.platform, vm.id);
        self.set_state(vm, next)
    }

    /// `id`'s VM ends as `exit` (at `uptime_ms`, if known): a static VM
    /// keeps it as its last exit, a dynamic one's name goes into the
    /// history; the end is recorded as an event.
    fn note_end(&mut self, id: VmId, exit: ipc::vm::LastExit, uptime_ms: Option<u64>) {
        self.slots
            .set_last_exit(id, Some(ExitSeen { exit, uptime_ms }));
        let change = VmChange::Exited { exit, uptime_ms };
        self.record_in(id, change, VmState::PoweredOff);
        if let Some(entry) = self.slots.get(id)
            && entry.kind == VmKind::Dynamic
        {
            self.ended.record(entry.config.name.clone(), exit);
        }
    }

    /// Records `change` of slot `id`'s VM, with the state it is in now.
    fn record(&mut self, id: VmId, change: VmChange) {
        if let Some(state) = self.slots.get(id).map(|entry| entry.state()) {
            self.record_in(id, change, state);
        }
    }

    /// Records `change` of slot `id`'s VM, which left it in `state` (a
    /// step it has already gone past: created, then started).
    fn record_in(&mut self, id: VmId, change: VmChange, state: VmState) {
        if let Some(entry) = self.slots.get(id) {
            self.events
                .record(&entry.config.name.to_wire(), change, state);
        }
    }

    /// Tears down at once, whatever the VM is doing.
    fn destroy(&mut self, name: &WireName) -> Result<(), ipc::Error> {
        let vm = self.find(name)?;
        let next = transition(vm.state, Operation::Destroy)?;
        self.note_end(vm.id, ipc::vm::LastExit::Destroyed, None);
        creation::tear_down(&mut self.platform, vm.id);
        self.set_state(vm, next)
    }

    /// Copies the paused `source` into a new dynamic VM called `name`.
    fn clone_vm(&mut self, source: &WireName, name: &WireName) -> Result<Response, ipc::Error> {
        let name = VmName::try_from(name)?;
        let source = self.find(source)?;
        transition(source.state, Operation::CloneSource)?;
        if self.slots.find(&name).is_some() {
            return Err(ipc::Error::DuplicateName);
        }
        let entry = self.slots.get(source.id).ok_or(ipc::Error::UnknownVm)?;
        // A disk is one VM's: the clone gets none.
        let config = VmConfig {
            name,
            flags: VmFlags::NONE,
            disk: None,
            ..entry.config.clone()
        };
        let id = self.create_dynamic(config, Contents::CloneOf(source.id))?;
        self.record(id, VmChange::Created);
        self.info_of(id)
    }

    /// A page of at most [`ipc::vm::LIST_PAGE`] VMs from slot `from` on.
    fn list(&self, from: u16) -> Response {
        let mut vms = heapless::Vec::new();
        let mut next = None;
        for entry in self.slots.entries_from(from) {
            if vms.push(entry.info()).is_err() {
                next = Some(entry.id.0);
                break;
            }
        }
        Response::List { vms, next }
    }

    /// A page of at most [`ipc::vm::IMAGES_PAGE`] guest images from number
    /// `from` on, in the boot image's order.
    fn images(&mut self, from: u16) -> Result<Response, ipc::Error> {
        let mut images = heapless::Vec::new();
        let mut at = from;
        while images.len() < ipc::vm::IMAGES_PAGE {
            match self.platform.guest_image(at)? {
                Some(mut image) => {
                    image.kind = self.scenario_kind(&image.name).unwrap_or(image.kind);
                    // Never full: the loop stops at a full page.
                    let _ = images.push(image);
                }
                None => return Ok(Response::Images { images, next: None }),
            }
            at = at.checked_add(1).ok_or(ipc::Error::InvalidArgument)?;
        }
        let next = self.platform.guest_image(at)?.map(|_| at);
        Ok(Response::Images { images, next })
    }

    /// How the scenario boots image `name`, if a static VM uses it: as a
    /// raw image, a Linux kernel or its initrd. This wins over what the
    /// image's first bytes say: Mica's test guests carry a Linux Image
    /// header (so either way boots them) and the scenario's choice is the
    /// one the operator knows them by.
    fn scenario_kind(&self, name: &str) -> Option<ipc::vm::ImageKind> {
        use ipc::vm::ImageKind;
        self.slots
            .entries_from(0)
            .filter(|entry| entry.config.is_static())
            .find_map(|entry| {
                let config = entry.config;
                let initrd = config.linux.as_ref().and_then(|l| l.initrd.as_ref());
                if config.image.as_str() == name {
                    Some(match config.linux {
                        Some(_) => ImageKind::LinuxImage,
                        None => ImageKind::Raw,
                    })
                } else if initrd.is_some_and(|i| i.as_str() == name) {
                    Some(ImageKind::Initrd)
                } else {
                    None
                }
            })
    }

    /// The slot of the VM called `name`, whose console exists while it
    /// holds resources: a powered-off VM is refused with
    /// `IllegalTransition { state: PoweredOff }`.
    fn console_of(&self, name: &WireName) -> Result<VmId, ipc::Error> {
        let vm = self.find(name)?;
        if vm.state == VmState::PoweredOff {
            return Err(ipc::Error::IllegalTransition { state: vm.state });
        }
        Ok(vm.id)
    }

    fn console_input(
        &mut self,
        name: &WireName,
        port: ConsolePort,
        bytes: &[u8],
    ) -> Result<(), ipc::Error> {
        let vm = self.console_of(name)?;
        self.platform.console_input(vm, port, bytes)
    }

    /// Shows only the console lines of the VM called `name` (which must
    /// hold resources, as for its console), or every VM's (`None`).
    fn console_focus(&mut self, name: Option<&WireName>) -> Result<(), ipc::Error> {
        let vm = name.map(|name| self.console_of(name)).transpose()?;
        self.platform.console_focus(vm)
    }

    fn console_output(&mut self, name: &WireName, from: u64) -> Result<ConsoleChunk, ipc::Error> {
        let vm = self.console_of(name)?;
        self.platform.console_output(vm, from)
    }

    /// The accounting of the VM called `name`; like its console, it
    /// exists while the VM holds resources (a powered-off VM is refused
    /// with `IllegalTransition { state: PoweredOff }`).
    fn stats(&mut self, name: &WireName) -> Result<VmStats, ipc::Error> {
        let vm = self.console_of(name)?;
        self.platform.vm_stats(vm)
    }

    fn info(&self, name: &WireName) -> Result<Response, ipc::Error> {
        let vm = self.find(name)?;
        self.info_of(vm.id)
    }
}

impl<P: Platform, E: EntropySource, const MAX_VM_NUM: usize> ipc::server::Service
    for VmManager<P, E, MAX_VM_NUM>
{
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, request: Request) -> Response {
        VmManager::handle(self, request)
    }

    fn refusal(error: ipc::Error) -> Response {
        Response::Err(error)
    }
}
