//! The task's platform over fakes of the kernel and the other services:
//! each lifecycle step issues the right calls and messages in order, a
//! failing step returns its error, and the library's rollback then issues
//! the matching releases, so nothing acquired is left behind.

use std::cell::RefCell;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use ipc::ioreq::ClientId;
use ipc::vm::{CreateOptions, Request, Response, VmState};
use ipc::{Error, Space, VmId, devices, ioreq, wire_name};
use vm_manager::guest_dt::{UART, VMGENID};
use vm_manager::kernel_platform::DEVICES_CLIENT;
use vm_manager::{
    EntropySource, GuestBoard, KernelPlatform, ServiceLinks, StaticVmConfig, VmFlags, VmKernel,
    VmManager,
};

/// Everything the platform did, in order.
#[allow(
    clippy::large_enum_variant,
    reason = "a test log; a devices request is as large as its largest variant"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
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
    fn label(&self) -> &'static str {
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
struct World {
    log: Vec<Event>,
    fail: Option<(&'static str, Error)>,
    /// `vm_grant_ram` calls: (vm, endpoint).
    grants: Vec<(u16, u64)>,
    /// What the kernel keeps of each live VM for `vm_adopt`: its RAM,
    /// name and note.
    kept: std::collections::BTreeMap<u16, (u32, String, Vec<u8>)>,
}

type Shared = Rc<RefCell<World>>;

fn record(world: &Shared, event: Event) -> Result<(), Error> {
    let mut world = world.borrow_mut();
    let outcome = match world.fail {
        Some((label, error)) if label == event.label() => Err(error),
        _ => Ok(()),
    };
    world.log.push(event);
    outcome
}

struct FakeKernel(Shared);

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
    fn vm_load(&mut self, vm: VmId, image: &str, _offset: u64) -> Result<u64, Error> {
        let image = String::from(image);
        record(&self.0, Event::Load { vm: vm.0, image }).map(|()| 4096)
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

struct FakeLinks(Shared);

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

struct Counting(u8);

impl EntropySource for Counting {
    fn fill(&mut self, out: &mut [u8; 16]) {
        self.0 = self.0.wrapping_add(1);
        *out = [self.0; 16];
    }
}

type Manager = VmManager<KernelPlatform<FakeKernel, FakeLinks>, Counting>;

const SCENARIO: &[StaticVmConfig] = &[
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

fn manager() -> (Manager, Shared) {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let manager = Manager::new(SCENARIO, platform, Counting(0)).expect("valid scenario");
    (manager, world)
}

fn take_log(world: &Shared) -> Vec<Event> {
    std::mem::take(&mut world.borrow_mut().log)
}

fn create(manager: &mut Manager, name: &str) -> Response {
    manager.handle(Request::Create {
        name: wire_name(name).expect("a valid test name"),
        options: CreateOptions::default(),
    })
}

fn named(request: fn(ipc::WireName) -> Request, name: &str) -> Request {
    request(wire_name(name).expect("a valid test name"))
}

fn state_of(manager: &mut Manager, name: &str) -> VmState {
    match manager.handle(named(|name| Request::Info { name }, name)) {
        Response::Info(info) => info.state,
        other => panic!("Info answered {other:?}"),
    }
}

/// The events of creating `vm` (named `name`, `vcpus` vCPUs) with the
/// generation ID byte `genid`; the DTB is whatever was passed.
fn creation_events(vm: u16, name: &str, vcpus: u8, genid: u8, dtb: &[u8]) -> Vec<Event> {
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
fn rng_attach(vm: VmId) -> Event {
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
fn console_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::VirtioConsole,
        space: Space::Mmio,
        base: 0x1000_3000,
        irq: 3,
    })
}

/// The PLIC, attached first: it takes the other devices' lines.
fn plic_attach(vm: VmId) -> Event {
    Event::Devices(devices::Request::Attach {
        vm,
        device: devices::DeviceKind::Plic,
        space: Space::Mmio,
        base: 0x0c00_0000,
        irq: 0,
    })
}

fn dtb_in(log: &[Event]) -> Vec<u8> {
    log.iter()
        .find_map(|event| match event {
            Event::SetDtb { dtb, .. } => Some(dtb.clone()),
            _ => None,
        })
        .expect("a device tree was set")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn the_devices_client_is_the_device_service_endpoint() {
    assert_eq!(DEVICES_CLIENT, ClientId(3));
    assert_eq!(UART.base, 0x1000_0000);
    assert_eq!(UART.irq, 10);
}

#[test]
fn pre_launch_creates_registers_describes_and_starts_in_order() {
    let (mut manager, world) = manager();
    let outcomes = manager.launch_pre_launched();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].name.as_str(), "vm0");
    assert_eq!(outcomes[0].result, Ok(()));

    let log = take_log(&world);
    let dtb = dtb_in(&log);
    let mut expected = creation_events(0, "vm0", 1, 1, &dtb);
    expected.push(Event::Start(0));
    assert_eq!(log, expected);

    // The device tree is a real FDT naming the VM; a raw image has no
    // command line, so the bootargs are empty.
    assert_eq!(dtb[..4], [0xd0, 0x0d, 0xfe, 0xed]);
    assert!(contains(&dtb, b"vm0\0"));
    assert!(!contains(&dtb, b"console=ttyS0"));
    assert_eq!(state_of(&mut manager, "vm0"), VmState::Started);
    assert_eq!(manager.platform().release_failures(), 0);
}

#[test]
fn destroy_releases_devices_then_ioreq_then_the_kernel_vm() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    take_log(&world);
    let answer = manager.handle(named(|name| Request::Destroy { name }, "vm1"));
    assert_eq!(answer, Response::Ok);
    assert_eq!(
        take_log(&world),
        vec![
            Event::Devices(devices::Request::RemoveVm { vm: VmId(1) }),
            Event::Ioreq(ioreq::Request::DetachVm { vm: VmId(1) }),
            Event::Destroy(1),
        ]
    );
    // The number is free again: a second creation makes the VM anew.
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    assert!(matches!(take_log(&world)[0], Event::Create { vm: 1, .. }));
}

#[test]
fn pause_resume_and_shutdown_use_the_vm_calls() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    take_log(&world);
    assert_eq!(
        manager.handle(named(|name| Request::Pause { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(
        manager.handle(named(|name| Request::Resume { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(take_log(&world), vec![Event::Pause(0), Event::Resume(0)]);
    assert_eq!(
        manager.handle(named(|name| Request::Shutdown { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(
        take_log(&world),
        vec![
            Event::Pause(0),
            Event::Devices(devices::Request::RemoveVm { vm: VmId(0) }),
            Event::Ioreq(ioreq::Request::DetachVm { vm: VmId(0) }),
            Event::Destroy(0),
        ]
    );
}

#[test]
fn reset_reloads_fresh_devices_with_the_same_id_and_restarts() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    let first_dtb = dtb_in(&take_log(&world));
    let answer = manager.handle(Request::Reset {
        name: wire_name("vm0").unwrap(),
        new_generation_id: false,
    });
    assert_eq!(answer, Response::Ok);
    let log = take_log(&world);
    let id = VmId(0);
    let expected = vec![
        Event::Reset(0),
        Event::Devices(devices::Request::RemoveVm { vm: id }),
        Event::Devices(devices::Request::AddVm {
            vm: id,
            name: wire_name("vm0").unwrap(),
        }),
        plic_attach(id),
        Event::Devices(devices::Request::Attach {
            vm: id,
            device: devices::DeviceKind::Uart16550,
            space: Space::Mmio,
            base: UART.base,
            irq: UART.irq,
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
        // The ID drawn at creation, not a new one.
        Event::Devices(devices::Request::SetGenerationId {
            vm: id,
            id: [1; 16],
        }),
        Event::Load {
            vm: 0,
            image: "hello".into(),
        },
        Event::SetDtb {
            vm: 0,
            dtb: first_dtb,
        },
        // The reset zeroed RAM: the same ID goes back into it.
        Event::WriteGenid { vm: 0, id: [1; 16] },
        Event::Start(0),
    ];
    assert_eq!(log, expected); // The devices service got the VM's RAM at creation, and again after
    // the reset (which ended that grant).
    let devices = 1 << ipc::syscall::endpoints::DEVICES;
    assert_eq!(world.borrow().grants, [(0, devices), (0, devices)]);
}

#[test]
fn a_reset_with_a_new_id_tells_the_device_first_and_keeps_it_after() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    take_log(&world);
    let answer = manager.handle(Request::Reset {
        name: wire_name("vm0").unwrap(),
        new_generation_id: true,
    });
    assert_eq!(answer, Response::Ok);
    let log = take_log(&world);
    let ids: Vec<[u8; 16]> = log
        .iter()
        .filter_map(|event| match event {
            Event::Devices(devices::Request::SetGenerationId { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![[2; 16], [2; 16]]);
    let in_ram: Vec<[u8; 16]> = log
        .iter()
        .filter_map(|event| match event {
            Event::WriteGenid { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(in_ram, vec![[2; 16], [2; 16]], "before and after the reset");
}

/// Every acquire that succeeded has exactly one matching release after it;
/// the event at `failed` (if any) was refused and acquired nothing.
fn assert_balanced(log: &[Event], vm: u16, failed: Option<usize>) {
    let id = VmId(vm);
    let log: Vec<Event> = log
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != failed)
        .map(|(_, event)| event.clone())
        .collect();
    let count = |want: &Event| log.iter().filter(|event| *event == want).count();
    let created = log
        .iter()
        .filter(|event| matches!(event, Event::Create { .. }))
        .count();
    assert_eq!(created, count(&Event::Destroy(vm)), "vm_create/vm_destroy");
    let attaches = log
        .iter()
        .filter(|event| matches!(event, Event::Ioreq(ioreq::Request::AttachVm { .. })))
        .count();
    assert_eq!(
        attaches,
        count(&Event::Ioreq(ioreq::Request::DetachVm { vm: id })),
        "AttachVm/DetachVm"
    );
    let adds = log
        .iter()
        .filter(|event| matches!(event, Event::Devices(devices::Request::AddVm { .. })))
        .count();
    assert_eq!(
        adds,
        count(&Event::Devices(devices::Request::RemoveVm { vm: id })),
        "AddVm/RemoveVm"
    );
}

#[test]
fn a_failing_creation_step_returns_its_error_and_leaves_nothing_behind() {
    let cases: [(&'static str, Error, &[&str]); 15] = [
        ("vm_create", Error::OutOfMemory, &[]),
        ("vm_load", Error::UnknownImage, &["vm_destroy"]),
        ("AttachVm", Error::NoFreeSlot { max: 8 }, &["vm_destroy"]),
        (
            "RegisterRange UART",
            Error::RangeOverlap,
            &["DetachVm", "vm_destroy"],
        ),
        (
            "SetDefaultClient",
            Error::UnknownVm,
            &["DetachVm", "vm_destroy"],
        ),
        ("AddVm", Error::ServerDied, &["DetachVm", "vm_destroy"]),
        ("AddVm", Error::TimedOut, &["DetachVm", "vm_destroy"]),
        (
            "RegisterRange UART",
            Error::TimedOut,
            &["DetachVm", "vm_destroy"],
        ),
        (
            "Attach Plic",
            Error::TableFull,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach Uart16550",
            Error::DeviceExists,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach VmGenId",
            Error::DeviceExists,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach Uart16550",
            Error::UnknownVm,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "vm_set_dtb",
            Error::InvalidArgument,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "vm_write_genid",
            Error::KernelRefused,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "SetGenerationId",
            Error::NoDevice,
            // The ID already in RAM is put back (there was none: NONE is
            // not written), then the releases.
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
    ];
    for (label, error, releases) in cases {
        let (mut manager, world) = manager();
        world.borrow_mut().fail = Some((label, error));
        // A device service that died during its call is named as down,
        // and so is an ioreq service that forgot the VM it had just
        // attached (it restarted in between); one that did not answer by
        // the call's deadline is named as hung.
        let expected = match (label, error) {
            (_, Error::ServerDied) => Error::ServiceDown { endpoint: 3 },
            ("AddVm", Error::TimedOut) => Error::ServiceHung { endpoint: 3 },
            (_, Error::TimedOut) => Error::ServiceHung { endpoint: 2 },
            ("SetDefaultClient", Error::UnknownVm) => Error::ServiceDown { endpoint: 2 },
            ("Attach Uart16550", Error::UnknownVm) => Error::ServiceDown { endpoint: 3 },
            (_, other) => other,
        };
        assert_eq!(
            create(&mut manager, "vm1"),
            Response::Err(expected),
            "{label}"
        );
        let log = take_log(&world);
        let failed_at = log
            .iter()
            .position(|event| event.label() == label)
            .expect("the failing step ran");
        let after: Vec<&str> = log[failed_at + 1..].iter().map(Event::label).collect();
        assert_eq!(after, releases, "releases after a failing {label}");
        assert_balanced(&log, 1, Some(failed_at));
        assert_eq!(state_of(&mut manager, "vm1"), VmState::PoweredOff);

        // Nothing is held: the same VM can then be created cleanly.
        world.borrow_mut().fail = None;
        assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
        assert_eq!(manager.platform().release_failures(), 0);
    }
}

#[test]
fn a_failing_start_at_boot_tears_the_vm_down_again() {
    let (mut manager, world) = manager();
    world.borrow_mut().fail = Some(("vm_start", Error::KernelRefused));
    let outcomes = manager.launch_pre_launched();
    assert_eq!(outcomes[0].result, Err(Error::KernelRefused));
    let log = take_log(&world);
    let failed_at = log.iter().position(|event| *event == Event::Start(0));
    assert_balanced(&log, 0, failed_at);
    assert_eq!(log.last(), Some(&Event::Destroy(0)));
    assert_eq!(state_of(&mut manager, "vm0"), VmState::PoweredOff);
}

fn paused_vm0() -> (Manager, Shared) {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    assert_eq!(
        manager.handle(named(|name| Request::Pause { name }, "vm0")),
        Response::Ok
    );
    take_log(&world);
    (manager, world)
}

fn clone_vm0(manager: &mut Manager) -> Response {
    manager.handle(Request::Clone {
        source: wire_name("vm0").expect("a valid test name"),
        name: wire_name("copy").expect("a valid test name"),
    })
}

#[test]
fn a_clone_copies_the_sources_ram_instead_of_loading_and_gets_a_fresh_id() {
    let (mut manager, world) = paused_vm0();
    let Response::Info(info) = clone_vm0(&mut manager) else {
        panic!("the clone was refused")
    };
    let log = take_log(&world);
    let copy = info.id.0;
    assert_ne!(copy, 0);
    let Event::Create { vm, ram_mib, .. } = log[0] else {
        panic!("first the kernel VM: {log:?}")
    };
    assert_eq!((vm, ram_mib), (copy, 64), "as large as the source");
    assert_eq!(
        log[1],
        Event::CloneRam {
            source: 0,
            target: copy
        }
    );
    assert!(
        !log.iter().any(|e| matches!(e, Event::Load { .. })),
        "{log:?}"
    );
    // The copied RAM holds vm0's ID; the clone's own goes over it.
    let fresh = [2; 16];
    assert!(log.contains(&Event::WriteGenid {
        vm: copy,
        id: fresh
    }));
    assert_eq!(info.generation_id, fresh);
    assert_eq!(state_of(&mut manager, "vm0"), VmState::Paused);
    // A reset of the clone reloads the source's image.
    let reset = manager.handle(Request::Reset {
        name: wire_name("copy").unwrap(),
        new_generation_id: false,
    });
    assert_eq!(reset, Response::Ok);
    let image = "hello".into();
    assert!(take_log(&world).contains(&Event::Load { vm: copy, image }));
}

#[test]
fn a_clone_the_kernel_refuses_leaves_nothing_behind() {
    let (mut manager, world) = paused_vm0();
    world.borrow_mut().fail = Some(("vm_clone_ram", Error::KernelRefused));
    assert_eq!(clone_vm0(&mut manager), Response::Err(Error::KernelRefused));
    let log = take_log(&world);
    let labels: Vec<&str> = log.iter().map(Event::label).collect();
    assert_eq!(labels, ["vm_create", "vm_clone_ram", "vm_destroy"]);
    // The refused clone's number is free for the next VM.
    world.borrow_mut().fail = None;
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
}

#[test]
fn a_refused_release_is_counted_and_the_teardown_goes_on() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    world.borrow_mut().fail = Some(("DetachVm", Error::ServerDied));
    take_log(&world);
    assert_eq!(
        manager.handle(named(|name| Request::Destroy { name }, "vm1")),
        Response::Ok
    );
    assert_eq!(take_log(&world).last(), Some(&Event::Destroy(1)));
    assert_eq!(manager.platform().release_failures(), 1);
}

/// On the x86 board, a VM gets COM1 in port space (registered with ioreq
/// and attached as a 16550 at 0x3f8) and a boot-info block naming it
/// instead of a device tree.
#[test]
fn x86_guests_get_com1_in_port_space_and_a_boot_info_block() {
    let world = Shared::default();
    let platform = KernelPlatform::with_board(
        FakeKernel(world.clone()),
        FakeLinks(world.clone()),
        GuestBoard::X86Pc,
    );
    let mut manager = Manager::new(SCENARIO, platform, Counting(0)).expect("valid scenario");
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    let log = take_log(&world);
    let id = VmId(1);
    let com1_range = Event::Ioreq(ioreq::Request::RegisterRange {
        vm: id,
        client: DEVICES_CLIENT,
        space: Space::Pio,
        start: 0x3f8,
        len: 8,
    });
    let com1 = Event::Devices(devices::Request::Attach {
        vm: id,
        device: devices::DeviceKind::Uart16550,
        space: Space::Pio,
        base: 0x3f8,
        irq: 4,
    });
    assert!(log.contains(&com1_range), "{log:?}");
    assert!(log.contains(&com1), "{log:?}");
    let mmio = |e: &Event| {
        matches!(
            e,
            Event::Ioreq(ioreq::Request::RegisterRange {
                space: Space::Mmio,
                ..
            }) | Event::Devices(devices::Request::Attach {
                space: Space::Mmio,
                ..
            })
        )
    };
    assert!(!log.iter().any(mmio), "no MMIO device on x86: {log:?}");
    let Some(Event::SetDtb { dtb, .. }) = log.iter().find(|e| matches!(e, Event::SetDtb { .. }))
    else {
        panic!("no boot info written: {log:?}")
    };
    let mut expected = b"MICA".to_vec();
    expected.extend_from_slice(&3u32.to_le_bytes());
    expected.extend_from_slice(&(64u64 << 20).to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(b"vm1");
    assert_eq!(dtb, &expected);
}

#[test]
fn the_riscv_board_keeps_its_device_tree() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    let log = take_log(&world);
    let Some(Event::SetDtb { dtb, .. }) = log.iter().find(|e| matches!(e, Event::SetDtb { .. }))
    else {
        panic!("no device tree written: {log:?}")
    };
    assert_eq!(dtb[..4], [0xd0, 0x0d, 0xfe, 0xed], "an FDT header");
    assert_eq!(GuestBoard::RiscvVirt.ram_base(), 0x8000_0000);
    assert_eq!(GuestBoard::X86Pc.ram_base(), 0);
}

/// Two static VMs with disks 0 and 1 beside one without.
const DISKS: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "a",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: Some(0),
    },
    StaticVmConfig {
        name: "b",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "c",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: Some(1),
    },
];

#[test]
fn a_vm_with_a_disk_gets_a_virtio_blk_device_and_grants_its_ram_to_the_block_service() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut manager = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    manager.launch_pre_launched();
    let log = take_log(&world);
    let blk_attaches: Vec<(u16, u8, u64, u32)> = log
        .iter()
        .filter_map(|e| match e {
            Event::Devices(devices::Request::Attach {
                vm,
                device: devices::DeviceKind::VirtioBlk { disk },
                base,
                irq,
                ..
            }) => Some((vm.0, *disk, *base, *irq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        blk_attaches,
        [(0, 0, 0x1000_2000, 2), (2, 1, 0x1000_2000, 2)]
    );
    let devices = 1u64 << ipc::syscall::endpoints::DEVICES;
    let blk = 1u64 << ipc::syscall::endpoints::BLK;
    assert_eq!(
        world.borrow().grants,
        [(0, devices | blk), (1, devices), (2, devices | blk)]
    );
    // Each disk VM's device tree has the disk's node; the other's has not.
    let trees: Vec<Vec<u8>> = log
        .iter()
        .filter_map(|e| match e {
            Event::SetDtb { dtb, .. } => Some(dtb.clone()),
            _ => None,
        })
        .collect();
    let has_disk = |dtb: &[u8]| contains(dtb, b"virtio_mmio@10002000");
    assert_eq!(
        trees.iter().map(|t| has_disk(t)).collect::<Vec<_>>(),
        [true, false, true]
    );
    // Every tree has the entropy device and the console, disk or not.
    for tree in &trees {
        assert!(contains(tree, b"virtio_mmio@10001000"));
        assert!(contains(tree, b"virtio_mmio@10003000"));
    }
}

fn create_with_disk(manager: &mut Manager, name: &str, disk: u8) -> Response {
    manager.handle(Request::Create {
        name: wire_name(name).expect("a valid test name"),
        options: CreateOptions {
            image: Some(wire_name("hello").expect("a valid image name")),
            disk: Some(disk),
            ..CreateOptions::default()
        },
    })
}

#[test]
fn a_dynamic_vm_gets_a_free_disk_and_is_refused_one_another_vm_has() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut manager = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    manager.launch_pre_launched();
    take_log(&world);
    // Static `a` holds disk 0: refused, and nothing is left of `d`.
    assert_eq!(
        create_with_disk(&mut manager, "d", 0),
        Response::Err(Error::DiskInUse)
    );
    let refused = take_log(&world);
    assert!(
        refused.is_empty(),
        "refused before any RAM is taken: {refused:?}"
    );
    // Disk 2 is free: attached in slot 1, RAM granted to the block service.
    let Response::Info(info) = create_with_disk(&mut manager, "d", 2) else {
        panic!("a free disk is refused")
    };
    assert_eq!(info.disk, Some(2));
    let blk = |e: &Event| match e {
        Event::Devices(devices::Request::Attach {
            vm,
            device: devices::DeviceKind::VirtioBlk { disk },
            base,
            ..
        }) => Some((vm.0, *disk, *base)),
        _ => None,
    };
    let log = take_log(&world);
    assert_eq!(
        log.iter().filter_map(blk).collect::<Vec<_>>(),
        [(info.id.0, 2, 0x1000_2000)]
    );
    let blk_endpoint = 1u64 << ipc::syscall::endpoints::BLK;
    assert!(
        world
            .borrow()
            .grants
            .iter()
            .any(|&(vm, endpoints)| vm == info.id.0 && endpoints & blk_endpoint != 0)
    );
    // Once `a` is gone its disk is free for another VM.
    let destroyed = manager.handle(named(|name| Request::Destroy { name }, "a"));
    assert_eq!(destroyed, Response::Ok);
    let Response::Info(info) = create_with_disk(&mut manager, "e", 0) else {
        panic!("a freed disk is refused")
    };
    assert_eq!(info.disk, Some(0));
}

#[test]
fn a_restarted_vm_manager_keeps_each_vms_disk_for_a_restarted_device_service() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut first = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    first.launch_pre_launched();
    let Response::Info(dynamic) = create_with_disk(&mut first, "d", 2) else {
        panic!("a free disk is refused")
    };
    drop(first);
    // A fresh copy over the same kernel and services.
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut second = Manager::new(DISKS, platform, Counting(9)).expect("valid scenario");
    let (found, _) = second.recover();
    assert!(found.iter().all(|r| r.result.is_ok()), "{found:?}");
    let info = |manager: &mut Manager, name: &str| match manager
        .handle(named(|name| Request::Info { name }, name))
    {
        Response::Info(info) => info.disk,
        other => panic!("{other:?}"),
    };
    assert_eq!(info(&mut second, "d"), Some(2), "from the VM's note");
    assert_eq!(
        create_with_disk(&mut second, "e", 2),
        Response::Err(Error::DiskInUse)
    );
    // A restarted device service gets every disk again, the static VMs'
    // and the dynamic one's.
    take_log(&world);
    let restarted = second.handle_from(
        vm_manager::Caller::Supervisor,
        Request::ServiceRestarted {
            endpoint: u8::try_from(ipc::syscall::endpoints::DEVICES).expect("an endpoint number"),
        },
    );
    assert_eq!(restarted, Response::Ok);
    let disks: Vec<(u16, u8)> = take_log(&world)
        .iter()
        .filter_map(|e| match e {
            Event::Devices(devices::Request::Attach {
                vm,
                device: devices::DeviceKind::VirtioBlk { disk },
                ..
            }) => Some((vm.0, *disk)),
            _ => None,
        })
        .collect();
    assert_eq!(disks, [(0, 0), (2, 1), (dynamic.id.0, 2)]);
}
