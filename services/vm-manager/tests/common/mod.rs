//! Test doubles shared by the integration tests: a recording [`FakePlatform`]
//! that checks every call against the resources it has handed out and can
//! fail any call on demand, a predictable entropy source, and request helpers.
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::collections::{BTreeMap, BTreeSet};
use std::string::{String, ToString};
use std::vec::Vec;

use ipc::devices::ConsoleChunk;
use ipc::vm::{ConsolePort, CreateOptions, Request, Response, VmInfo, VmKind, VmState, VmStats};
use ipc::{VmId, WireName};
use vm_manager::{
    EntropySource, GenerationId, GuestStatus, ImageName, LinuxBoot, Platform, ServiceLinks,
    StaticVmConfig, VmFlags, VmManager, VmName,
};

/// Which platform call (for failure injection and counting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    CreateAddressSpace,
    LoadImage,
    CloneMemory,
    CreateVcpus,
    RegisterIoreq,
    RegisterDevices,
    SetGenerationId,
    Start,
    Pause,
    Resume,
    Reset,
    UnregisterDevices,
    UnregisterIoreq,
    DestroyVcpus,
    FreeAddressSpace,
}

/// The creation steps of a `Create`, in order.
pub const CREATE_STEPS: [CallKind; 6] = [
    CallKind::CreateAddressSpace,
    CallKind::LoadImage,
    CallKind::CreateVcpus,
    CallKind::RegisterIoreq,
    CallKind::RegisterDevices,
    CallKind::SetGenerationId,
];

/// The creation steps of a `Clone`, in order.
pub const CLONE_STEPS: [CallKind; 6] = [
    CallKind::CreateAddressSpace,
    CallKind::CloneMemory,
    CallKind::CreateVcpus,
    CallKind::RegisterIoreq,
    CallKind::RegisterDevices,
    CallKind::SetGenerationId,
];

/// A resource the platform hands out for a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    AddressSpace,
    Vcpus,
    Ioreq,
    Devices,
}

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub kind: CallKind,
    pub vm: u16,
}

/// A platform that records every call, tracks what each VM holds, panics on
/// a call that makes no sense (release of something not held, start without
/// vCPUs ...), and fails the next call of a chosen kind on demand.
#[derive(Default)]
pub struct FakePlatform {
    pub calls: Vec<Call>,
    pub held: BTreeSet<(u16, Resource)>,
    pub running: BTreeSet<u16>,
    pub generation_ids: BTreeMap<u16, u128>,
    pub images: BTreeMap<u16, String>,
    pub device_names: BTreeMap<u16, String>,
    pub failures: BTreeMap<CallKind, ipc::Error>,
    /// Total RAM the fake has; `create_address_space` beyond it fails.
    pub ram_mib: Option<u32>,
    pub ram_in_use: BTreeMap<u16, u32>,
    pub known_images: Option<Vec<String>>,
    /// What `guest_status` answers per VM (running when absent).
    pub guest_status: BTreeMap<u16, GuestStatus>,
    /// Bytes typed at each VM's console; the fake console echoes them as
    /// its output.
    pub console: BTreeMap<u16, Vec<u8>>,
    /// What `vm_stats` answers per VM (zeros when absent).
    pub stats: BTreeMap<u16, VmStats>,
    /// The boot image's guest images, in order (`guest_image`).
    pub guest_images: Vec<ipc::vm::GuestImage>,
    /// Every `console_focus` asked for, in order.
    pub focus: Vec<Option<u16>>,
}

impl FakePlatform {
    /// Makes the next call of `kind` fail with `error`.
    pub fn fail_next(&mut self, kind: CallKind, error: ipc::Error) {
        self.failures.insert(kind, error);
    }

    /// How many calls of `kind` were made.
    pub fn count(&self, kind: CallKind) -> usize {
        self.calls.iter().filter(|c| c.kind == kind).count()
    }

    /// The kinds of calls made for `vm`, in order.
    pub fn calls_for(&self, vm: u16) -> Vec<CallKind> {
        self.calls
            .iter()
            .filter(|c| c.vm == vm)
            .map(|c| c.kind)
            .collect()
    }

    /// Whether `vm` holds any resource.
    pub fn holds_anything(&self, vm: u16) -> bool {
        self.held.iter().any(|(v, _)| *v == vm)
    }

    fn record(&mut self, kind: CallKind, vm: VmId) -> Result<(), ipc::Error> {
        self.calls.push(Call { kind, vm: vm.0 });
        match self.failures.remove(&kind) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn has(&self, vm: VmId, resource: Resource) -> bool {
        self.held.contains(&(vm.0, resource))
    }

    fn acquire(&mut self, vm: VmId, resource: Resource) {
        assert!(
            self.held.insert((vm.0, resource)),
            "{resource:?} of VM {} acquired twice",
            vm.0
        );
    }

    fn release(&mut self, kind: CallKind, vm: VmId, resource: Resource) {
        self.calls.push(Call { kind, vm: vm.0 });
        assert!(
            self.held.remove(&(vm.0, resource)),
            "{resource:?} of VM {} released but not held",
            vm.0
        );
    }
}

impl Platform for FakePlatform {
    fn create_address_space(&mut self, vm: VmId, mem_mib: u32) -> Result<(), ipc::Error> {
        self.record(CallKind::CreateAddressSpace, vm)?;
        if let Some(ram) = self.ram_mib {
            let in_use: u32 = self.ram_in_use.values().sum();
            if in_use + mem_mib > ram {
                return Err(ipc::Error::OutOfMemory);
            }
        }
        self.acquire(vm, Resource::AddressSpace);
        self.ram_in_use.insert(vm.0, mem_mib);
        Ok(())
    }

    fn load_image(
        &mut self,
        vm: VmId,
        image: &ImageName,
        _linux: Option<&LinuxBoot>,
    ) -> Result<(), ipc::Error> {
        self.record(CallKind::LoadImage, vm)?;
        assert!(
            self.has(vm, Resource::AddressSpace),
            "image loaded without RAM"
        );
        if let Some(known) = &self.known_images
            && !known.iter().any(|k| k == image.as_str())
        {
            return Err(ipc::Error::UnknownImage);
        }
        self.images.insert(vm.0, image.as_str().to_string());
        Ok(())
    }

    fn clone_memory(&mut self, source: VmId, target: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::CloneMemory, target)?;
        assert!(
            self.has(source, Resource::AddressSpace),
            "clone of a VM without RAM"
        );
        assert!(
            self.has(target, Resource::AddressSpace),
            "clone into a VM without RAM"
        );
        assert!(!self.running.contains(&source.0), "clone of a running VM");
        let image = self.images.get(&source.0).cloned().unwrap_or_default();
        self.images.insert(target.0, image);
        Ok(())
    }

    fn create_vcpus(&mut self, vm: VmId, count: u8) -> Result<(), ipc::Error> {
        self.record(CallKind::CreateVcpus, vm)?;
        assert!(
            (1..=vm_manager::MAX_VCPUS).contains(&count),
            "bad vCPU count {count}"
        );
        assert!(self.has(vm, Resource::AddressSpace), "vCPUs without RAM");
        self.acquire(vm, Resource::Vcpus);
        Ok(())
    }

    fn register_ioreq(&mut self, vm: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::RegisterIoreq, vm)?;
        self.acquire(vm, Resource::Ioreq);
        Ok(())
    }

    fn register_devices(
        &mut self,
        vm: VmId,
        name: &VmName,
        _disk: Option<u8>,
    ) -> Result<(), ipc::Error> {
        self.record(CallKind::RegisterDevices, vm)?;
        self.acquire(vm, Resource::Devices);
        self.device_names.insert(vm.0, name.as_str().to_string());
        Ok(())
    }

    fn set_generation_id(&mut self, vm: VmId, id: GenerationId) -> Result<(), ipc::Error> {
        self.record(CallKind::SetGenerationId, vm)?;
        assert!(
            self.has(vm, Resource::Devices),
            "generation ID without devices"
        );
        self.generation_ids.insert(vm.0, id.as_u128());
        Ok(())
    }

    fn start(&mut self, vm: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::Start, vm)?;
        assert!(self.has(vm, Resource::Vcpus), "start without vCPUs");
        assert!(self.running.insert(vm.0), "start of a running VM");
        Ok(())
    }

    fn pause(&mut self, vm: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::Pause, vm)?;
        assert!(
            self.running.remove(&vm.0),
            "pause of a VM that does not run"
        );
        Ok(())
    }

    fn resume(&mut self, vm: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::Resume, vm)?;
        assert!(self.has(vm, Resource::Vcpus), "resume without vCPUs");
        assert!(self.running.insert(vm.0), "resume of a running VM");
        Ok(())
    }

    fn reset(&mut self, vm: VmId) -> Result<(), ipc::Error> {
        self.record(CallKind::Reset, vm)?;
        assert!(self.has(vm, Resource::Vcpus), "reset without vCPUs");
        self.running.remove(&vm.0);
        Ok(())
    }

    fn unregister_devices(&mut self, vm: VmId) {
        self.release(CallKind::UnregisterDevices, vm, Resource::Devices);
        self.device_names.remove(&vm.0);
        self.generation_ids.remove(&vm.0);
    }

    fn unregister_ioreq(&mut self, vm: VmId) {
        self.release(CallKind::UnregisterIoreq, vm, Resource::Ioreq);
    }

    fn destroy_vcpus(&mut self, vm: VmId) {
        self.release(CallKind::DestroyVcpus, vm, Resource::Vcpus);
        self.running.remove(&vm.0);
    }

    fn free_address_space(&mut self, vm: VmId) {
        self.release(CallKind::FreeAddressSpace, vm, Resource::AddressSpace);
        self.images.remove(&vm.0);
        self.ram_in_use.remove(&vm.0);
    }

    fn console_input(
        &mut self,
        vm: VmId,
        _port: ConsolePort,
        bytes: &[u8],
    ) -> Result<(), ipc::Error> {
        assert!(
            self.has(vm, Resource::Devices),
            "console input without devices"
        );
        self.console
            .entry(vm.0)
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }

    fn console_focus(&mut self, vm: Option<VmId>) -> Result<(), ipc::Error> {
        if let Some(vm) = vm {
            assert!(self.has(vm, Resource::Devices), "focus without devices");
        }
        self.focus.push(vm.map(|vm| vm.0));
        Ok(())
    }

    fn console_output(&mut self, vm: VmId, from: u64) -> Result<ConsoleChunk, ipc::Error> {
        assert!(
            self.has(vm, Resource::Devices),
            "console read without devices"
        );
        let output = self.console.get(&vm.0).map_or(&[][..], Vec::as_slice);
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(output.len());
        let end = output.len().min(start + ipc::devices::OUTPUT_CHUNK);
        Ok(ConsoleChunk {
            next: end as u64,
            lost: 0,
            bytes: heapless::Vec::from_slice(&output[start..end]).expect("a chunk fits"),
        })
    }

    fn guest_status(&mut self, vm: VmId) -> Result<GuestStatus, ipc::Error> {
        Ok(self
            .guest_status
            .remove(&vm.0)
            .unwrap_or(GuestStatus::Running))
    }

    fn vm_stats(&mut self, vm: VmId) -> Result<VmStats, ipc::Error> {
        assert!(self.has(vm, Resource::Vcpus), "stats of a VM without vCPUs");
        Ok(self.stats.get(&vm.0).cloned().unwrap_or_default())
    }

    fn guest_image(&mut self, index: u16) -> Result<Option<ipc::vm::GuestImage>, ipc::Error> {
        Ok(self.guest_images.get(usize::from(index)).cloned())
    }
}

/// Services that accept every request (`Ok`), for tests of the kernel
/// platform that look at the kernel's side only.
pub struct OkLinks;

impl ServiceLinks for OkLinks {
    fn ioreq(&mut self, _: &ipc::ioreq::Request) -> Result<ipc::ioreq::Response, ipc::Error> {
        Ok(ipc::ioreq::Response::Ok)
    }
    fn devices(&mut self, _: &ipc::devices::Request) -> Result<ipc::devices::Response, ipc::Error> {
        Ok(ipc::devices::Response::Ok)
    }
}

/// Hands out 1, 2, 3 ... as generation IDs.
#[derive(Default)]
pub struct CountingEntropy {
    pub drawn: u128,
}

impl EntropySource for CountingEntropy {
    fn fill(&mut self, out: &mut [u8; 16]) {
        self.drawn += 1;
        *out = self.drawn.to_le_bytes();
    }
}

pub type Manager<const MAX: usize = 16> = VmManager<FakePlatform, CountingEntropy, MAX>;

/// A scenario of two static VMs: `sos` (pre-launched) and `rtvm`.
pub const SCENARIO: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "sos",
        image: "linux",
        mem_mib: 512,
        vcpus: 2,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "rtvm",
        image: "zephyr",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC,
        linux: None,
        disk: None,
    },
];

pub fn manager() -> Manager {
    Manager::new(
        SCENARIO,
        FakePlatform::default(),
        CountingEntropy::default(),
    )
    .expect("the test scenario is valid")
    // A create that names no image boots "guest" (the task's default is
    // none: `NoImageGiven`).
    .with_defaults(vm_manager::DynamicDefaults {
        image: Some("guest"),
        ..vm_manager::DynamicDefaults::default()
    })
}

pub fn w(text: &str) -> WireName {
    ipc::wire_name(text).expect("test names fit on the wire")
}

pub fn create(name: &str) -> Request {
    Request::Create {
        name: w(name),
        options: CreateOptions::default(),
    }
}

pub fn create_with(name: &str, options: CreateOptions) -> Request {
    Request::Create {
        name: w(name),
        options,
    }
}

pub fn start(name: &str) -> Request {
    Request::Start { name: w(name) }
}

pub fn pause(name: &str) -> Request {
    Request::Pause { name: w(name) }
}

pub fn resume(name: &str) -> Request {
    Request::Resume { name: w(name) }
}

pub fn reset(name: &str, new_generation_id: bool) -> Request {
    Request::Reset {
        name: w(name),
        new_generation_id,
    }
}

pub fn shutdown(name: &str) -> Request {
    Request::Shutdown { name: w(name) }
}

pub fn destroy(name: &str) -> Request {
    Request::Destroy { name: w(name) }
}

pub fn clone_vm(source: &str, name: &str) -> Request {
    Request::Clone {
        source: w(source),
        name: w(name),
    }
}

pub fn console_input(name: &str, bytes: &[u8]) -> Request {
    Request::ConsoleInput {
        name: w(name),
        port: ConsolePort::Serial,
        bytes: heapless::Vec::from_slice(bytes).expect("test input fits"),
    }
}

pub fn console_output(name: &str, from: u64) -> Request {
    Request::ConsoleOutput {
        name: w(name),
        from,
    }
}

pub fn console_focus(name: Option<&str>) -> Request {
    Request::ConsoleFocus { name: name.map(w) }
}

pub fn stats(name: &str) -> Request {
    Request::Stats { name: w(name) }
}

pub fn info_req(name: &str) -> Request {
    Request::Info { name: w(name) }
}

/// Sends `request` and expects `Response::Info`.
pub fn expect_info<const MAX: usize>(m: &mut Manager<MAX>, request: Request) -> VmInfo {
    match m.handle(request.clone()) {
        Response::Info(info) => info,
        other => panic!("{request:?} answered {other:?}"),
    }
}

/// Sends `request` and expects `Response::Ok`.
pub fn expect_ok<const MAX: usize>(m: &mut Manager<MAX>, request: Request) {
    let response = m.handle(request.clone());
    assert_eq!(response, Response::Ok, "{request:?}");
}

/// Sends `request` and expects `Response::Err(error)`.
pub fn expect_err<const MAX: usize>(m: &mut Manager<MAX>, request: Request, error: ipc::Error) {
    let response = m.handle(request.clone());
    assert_eq!(response, Response::Err(error), "{request:?}");
}

/// The VM's info, or `None` when no VM has that name (none ever did, or
/// one ended and the history of ended VMs remembers it).
pub fn info<const MAX: usize>(m: &mut Manager<MAX>, name: &str) -> Option<VmInfo> {
    match m.handle(info_req(name)) {
        Response::Info(info) => Some(info),
        Response::Err(ipc::Error::UnknownVm) | Response::Ended(_) => None,
        other => panic!("Info {name} answered {other:?}"),
    }
}

/// The VM's state; panics if it does not exist.
pub fn state<const MAX: usize>(m: &mut Manager<MAX>, name: &str) -> VmState {
    info(m, name).expect("the VM exists").state
}

/// Every VM, read page by page through `List`.
pub fn list_all<const MAX: usize>(m: &mut Manager<MAX>) -> Vec<VmInfo> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        match m.handle(Request::List { from }) {
            Response::List { vms, next } => {
                all.extend(vms);
                match next {
                    Some(next) => {
                        assert!(next > from, "List must move forward");
                        from = next;
                    }
                    None => return all,
                }
            }
            other => panic!("List answered {other:?}"),
        }
    }
}

/// Whether a VM info describes a dynamic VM.
pub fn is_dynamic(info: &VmInfo) -> bool {
    info.kind == VmKind::Dynamic
}

/// `VmKernel::image_name` of a boot image whose one guest is `hello`
/// (4 KiB), for fake kernels whose VMs all boot it: the vm-manager finds
/// an image's number there before `vm_load`.
pub fn only_hello(index: usize) -> Result<(WireName, u64), ipc::Error> {
    match index {
        0 => Ok((w("hello"), 4096)),
        _ => Err(ipc::Error::UnknownImage),
    }
}
