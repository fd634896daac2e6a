//! The fakes the platform tests share: the kernel's VM calls and the
//! services' links record every call as an [`Event`] in one [`World`], and
//! can be told to fail one kind of call; the helpers build managers,
//! requests and the expected event lists.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    reason = "each test file uses a part of these helpers"
)]

pub use std::cell::RefCell;
pub use std::rc::Rc;
pub use std::string::String;
pub use std::vec::Vec;

pub use ipc::ioreq::ClientId;
pub use ipc::vm::{CreateOptions, Request, Response, VmState};
pub use ipc::{Error, Space, VmId, devices, ioreq, wire_name};
pub use vm_manager::guest_dt::{UART, VMGENID};
pub use vm_manager::kernel_platform::DEVICES_CLIENT;
pub use vm_manager::{
    EntropySource, GuestBoard, KernelPlatform, ServiceLinks, StaticVmConfig, VmFlags, VmKernel,
    VmManager,
};

/// Everything the platform did, in order.
#[allow(
    clippy::large_enum_variant,
    reason = "a test log; a devices request is as large as its largest variant"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Create { vm: u16, ram_mib: u32, vcpus: u8 },
    Load { vm: u16, image: String },
    SetDtb { vm: u16, dtb: Vec<u8> },
    Start(u16),
    Pause(u16),
    Resume(u16),
    Reset(u16),
    Destroy(u16),
    WriteGenid { vm: u16, id: [u8; 16] },
    CloneRam { source: u16, target: u16 },
    Ioreq(ioreq::Request),
    Devices(devices::Request),
}

impl Event {
    /// A short label used to inject a failure at this kind of event.
    pub fn label(&self) -> &'static str {
        match self {
            Event::Create { .. } => "vm_create",
            Event::Load { .. } => "vm_load",
            Event::SetDtb { .. } => "vm_set_dtb",
            Event::Start(_) => "vm_start",
            Event::Pause(_) => "vm_pause",
            Event::Resume(_) => "vm_resume",
            Event::Reset(_) => "vm_reset",
            Event::Destroy(_) => "vm_destroy",
            Event::WriteGenid { .. } => "vm_write_genid",
            Event::CloneRam { .. } => "vm_clone_ram",
            Event::Ioreq(request) => match request {
                ioreq::Request::AttachVm { .. } => "AttachVm",
                ioreq::Request::DetachVm { .. } => "DetachVm",
                ioreq::Request::SetDefaultClient { .. } => "SetDefaultClient",
                ioreq::Request::RegisterRange {
                    start: 0x1000_0000, ..
                } => "RegisterRange UART",
                ioreq::Request::RegisterRange { .. } => "RegisterRange",
                _ => "ioreq",
            },
            Event::Devices(request) => match request {
                devices::Request::AddVm { .. } => "AddVm",
                devices::Request::RemoveVm { .. } => "RemoveVm",
                devices::Request::Attach {
                    device: devices::DeviceKind::Uart16550,
                    ..
                } => "Attach Uart16550",
                devices::Request::Attach {
                    device: devices::DeviceKind::VmGenId,
                    ..
                } => "Attach VmGenId",
                devices::Request::Attach {
                    device: devices::DeviceKind::Plic,
                    ..
                } => "Attach Plic",
                devices::Request::SetGenerationId { .. } => "SetGenerationId",
                _ => "devices",
            },
        }
    }
}

/// The shared log and the one failure to inject (label, error).
#[derive(Default)]
pub struct World {
    pub log: Vec<Event>,
    pub fail: Option<(&'static str, Error)>,
    /// `vm_grant_ram` calls: (vm, endpoint).
    pub grants: Vec<(u16, u64)>,
    /// What the kernel keeps of each live VM for `vm_adopt`: its RAM,
    /// name and note.
    pub kept: std::collections::BTreeMap<u16, (u32, String, Vec<u8>)>,
}

pub type Shared = Rc<RefCell<World>>;

pub fn record(world: &Shared, event: Event) -> Result<(), Error> {
    let mut world = world.borrow_mut();
    let outcome = match world.fail {
        Some((label, error)) if label == event.label() => Err(error),
        _ => Ok(()),
    };
    world.log.push(event);
    outcome
}

/// The boot image's guests, by number: the kernel loads them by number,
/// and the vm-manager looks the number up by name (`hello` is not the
/// first, so a load by the wrong number shows in the log).
pub const GUESTS: [&str; 2] = ["other", "hello"];

pub struct FakeKernel(pub Shared);

impl VmKernel for FakeKernel {
    fn vm_create(&mut self, vm: VmId, ram_mib: u32, vcpus: u8) -> Result<(), Error> {
        let kept = (ram_mib, String::new(), Vec::new());
        self.0.borrow_mut().kept.insert(vm.0, kept);
        let (vm, event) = (vm.0, ram_mib);
        record(
            &self.0,
            Event::Create {
                vm,
                ram_mib: event,
                vcpus,
            },
        )
    }
    fn vm_load(&mut self, vm: VmId, image: usize, _offset: u64) -> Result<u64, Error> {
        let image = String::from(*GUESTS.get(image).ok_or(Error::UnknownImage)?);
        record(&self.0, Event::Load { vm: vm.0, image }).map(|()| 4096)
    }
    fn image_name(&mut self, index: usize) -> Result<(ipc::WireName, u64), Error> {
        let name = GUESTS.get(index).ok_or(Error::UnknownImage)?;
        Ok((wire_name(name)?, 4096))
    }
    fn vm_grant_ram(&mut self, vm: VmId, endpoints: u64) -> Result<(), Error> {
        self.0.borrow_mut().grants.push((vm.0, endpoints));
        Ok(())
    }
    fn vm_set_dtb(&mut self, vm: VmId, dtb: &[u8]) -> Result<(), Error> {
        let dtb = dtb.to_vec();
        record(&self.0, Event::SetDtb { vm: vm.0, dtb })
    }
    fn vm_start(&mut self, vm: VmId, _entry: u64, _dtb: u64) -> Result<(), Error> {
        record(&self.0, Event::Start(vm.0))
    }
    fn vm_pause(&mut self, vm: VmId) -> Result<(), Error> {
        record(&self.0, Event::Pause(vm.0))
    }
    fn vm_resume(&mut self, vm: VmId) -> Result<(), Error> {
        record(&self.0, Event::Resume(vm.0))
    }
    fn vm_reset(&mut self, vm: VmId) -> Result<(), Error> {
        record(&self.0, Event::Reset(vm.0))
    }
    fn vm_destroy(&mut self, vm: VmId) -> Result<(), Error> {
        self.0.borrow_mut().kept.remove(&vm.0);
        record(&self.0, Event::Destroy(vm.0))
    }
    fn vm_set_name(&mut self, vm: VmId, name: &str) -> Result<(), Error> {
        if let Some(kept) = self.0.borrow_mut().kept.get_mut(&vm.0) {
            kept.1 = name.into();
        }
        Ok(())
    }
    fn vm_set_note(&mut self, vm: VmId, note: &[u8]) -> Result<(), Error> {
        if let Some(kept) = self.0.borrow_mut().kept.get_mut(&vm.0) {
            kept.2 = note.to_vec();
        }
        Ok(())
    }
    fn vm_adopt(&mut self, vm: VmId) -> Result<vm_manager::KernelVm, Error> {
        let world = self.0.borrow();
        let (mem_mib, name, note) = world.kept.get(&vm.0).ok_or(Error::UnknownVm)?;
        Ok(vm_manager::KernelVm {
            status: ipc::syscall::vm_status::RUNNING,
            mem_mib: *mem_mib,
            vcpus: 1,
            name: heapless::String::try_from(name.as_str()).map_err(|_| Error::InvalidName)?,
            generation_id: [0; 16],
            note: heapless::Vec::from_slice(note).map_err(|_| Error::Malformed)?,
        })
    }
    fn vm_write_genid(&mut self, vm: VmId, id: [u8; 16]) -> Result<(), Error> {
        record(&self.0, Event::WriteGenid { vm: vm.0, id })
    }
    fn vm_clone_ram(&mut self, source: VmId, target: VmId) -> Result<(), Error> {
        let (source, target) = (source.0, target.0);
        record(&self.0, Event::CloneRam { source, target })
    }
}

pub struct FakeLinks(pub Shared);

impl ServiceLinks for FakeLinks {
    fn ioreq(&mut self, request: &ioreq::Request) -> Result<ioreq::Response, Error> {
        // A refusal travels as a reply, as the real service sends it; a
        // death or a missed deadline is a failed call.
        Ok(match record(&self.0, Event::Ioreq(request.clone())) {
            Ok(()) => ioreq::Response::Ok,
            Err(error @ (Error::ServerDied | Error::TimedOut)) => return Err(error),
            Err(error) => ioreq::Response::Err(error),
        })
    }
    fn devices(&mut self, request: &devices::Request) -> Result<devices::Response, Error> {
        // A dead device service shows up as a failed call.
        record(&self.0, Event::Devices(request.clone())).map(|()| devices::Response::Ok)
    }
}

pub struct Counting(pub u8);

impl EntropySource for Counting {
    fn fill(&mut self, out: &mut [u8; 16]) {
        self.0 = self.0.wrapping_add(1);
        *out = [self.0; 16];
    }
}

pub type Manager = VmManager<KernelPlatform<FakeKernel, FakeLinks>, Counting>;

pub const SCENARIO: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "vm0",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "vm1",
        image: "hello",
        mem_mib: 64,
        vcpus: 2,
        flags: VmFlags::STATIC,
        linux: None,
        disk: None,
    },
];

pub fn manager() -> (Manager, Shared) {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let manager = Manager::new(SCENARIO, platform, Counting(0)).expect("valid scenario");
    (manager, world)
}

pub fn take_log(world: &Shared) -> Vec<Event> {
    std::mem::take(&mut world.borrow_mut().log)
}

pub fn create(manager: &mut Manager, name: &str) -> Response {
    manager.handle(Request::Create {
        name: wire_name(name).expect("a valid test name"),
        options: CreateOptions::default(),
    })
}

pub fn named(request: fn(ipc::WireName) -> Request, name: &str) -> Request {
    request(wire_name(name).expect("a valid test name"))
}

pub fn state_of(manager: &mut Manager, name: &str) -> VmState {
    match manager.handle(named(|name| Request::Info { name }, name)) {
        Response::Info(info) => info.state,
        other => panic!("Info answered {other:?}"),
    }
}

/// The events of creating `vm` (named `name`, `vcpus` vCPUs) with the
/// generation ID byte `genid`; the DTB is whatever was passed.
pub fn creation_events(vm: u16, name: &str, vcpus: u8, genid: u8, dtb: &[u8]) -> Vec<Event> {
    let id = VmId(vm);
    vec![
        Event::Create {
            vm,
            ram_mib: 64,
            vcpus,
        },
        Event::Load {
            vm,
            image: "hello".into(),
        },
        Event::Ioreq(ioreq::Request::AttachVm { vm: id, vcpus }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x0c00_0000,
            len: 0x60_0000,
        }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x1000_0000,
            len: 0x100,
        }),
        // The UART's transmit register: its writes are posted.
        Event::Ioreq(ioreq::Request::PostWrites {
            vm: id,
            space: Space::Mmio,
            start: 0x1000_0000,
            len: 1,
        }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x1010_1000,
            len: 0x20,
        }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x1000_1000,
            len: 0x1000,
        }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x1000_3000,
            len: 0x1000,
        }),
        Event::Ioreq(ioreq::Request::RegisterRange {
            vm: id,
            client: DEVICES_CLIENT,
            space: Space::Mmio,
            start: 0x1000_4000,
            len: 0x1000,
        }),
        Event::Ioreq(ioreq::Request::SetDefaultClient {
            vm: id,
            client: DEVICES_CLIENT,
        }),
        Event::Devices(devices::Request::AddVm {
            vm: id,
            name: wire_name(name).expect("a valid test name"),
        }),
        plic_attach(id),
        Event::Devices(devices::Request::Attach {
            vm: id,
            device: devices::DeviceKind::Uart16550,
            space: Space::Mmio,
            base: 0x1000_0000,
            irq: 10,
        }),
        Event::Devices(devices::Request::Attach {
            vm: id,
            device: devices::DeviceKind::VmGenId,
            space: Space::Mmio,
            base: VMGENID.base,
            irq: VMGENID.irq,
        }),
        rng_attach(id),
        console_attach(id),
        nic_attach(id),
        Event::SetDtb {
            vm,
            dtb: dtb.to_vec(),
        },
        // The ID in guest RAM first, then the device (the notification).
        Event::WriteGenid {
            vm,
            id: [genid; 16],
        },
        Event::Devices(devices::Request::SetGenerationId {
            vm: id,
            id: [genid; 16],
        }),
    ]
}

/// The virtio-rng device in virtio-mmio slot 0 (PLIC source 1).
pub fn rng_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::VirtioRng,
        space: Space::Mmio,
        base: 0x1000_1000,
        irq: 1,
    })
}

/// The virtio console in virtio-mmio slot 2 (PLIC source 3): the guest's
/// `/dev/hvc0`.
pub fn console_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::VirtioConsole,
        space: Space::Mmio,
        base: 0x1000_3000,
        irq: 3,
    })
}

/// The network card in virtio-mmio slot 3 (PLIC source 4): the guest's
/// `eth0`.
pub fn nic_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::VirtioNet,
        space: Space::Mmio,
        base: 0x1000_4000,
        irq: 4,
    })
}

/// The PLIC, attached first: it takes the other devices' lines.
pub fn plic_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::Plic,
        space: Space::Mmio,
        base: 0x0c00_0000,
        irq: 0,
    })
}

pub fn dtb_in(log: &[Event]) -> Vec<u8> {
    log.iter()
        .find_map(|event| match event {
            Event::SetDtb { dtb, .. } => Some(dtb.clone()),
            _ => None,
        })
        .expect("a device tree was set")
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
