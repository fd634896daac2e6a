//! A hundred dynamic VMs created, started and destroyed through the task's
//! platform over a kernel fake and the *real* ioreq and device services:
//! every acquire (`vm_create`, `AttachVm` and its ioreq page, `AddVm`) is
//! matched by its release, the services hold only the static VMs' state
//! afterwards, and nothing was refused along the way. Both services hold
//! state for at most 16 VMs, so a VM whose state was kept would make a
//! later creation fail long before the hundredth cycle.

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use ::devices::memory::GuestMemory;
use ::devices::service::{DeviceService, GuestMemoryProvider, IrqSink};
use ::ioreq::page::IoreqPage;
use ::ioreq::posted::PostedPage;
use ::ioreq::service::{IoreqService, PageSource};
use ipc::syscall::vm_status;
use ipc::vm::{CreateOptions, Request, Response, VmState};
use ipc::{Error, VmId, devices, ioreq, wire_name};
use vm_manager::{
    Caller, EntropySource, KernelPlatform, Platform, ServiceLinks, StaticVmConfig, VmFlags,
    VmKernel, VmManager,
};

/// What is held now and how often it was taken and given back.
#[derive(Debug, Default)]
struct Held {
    /// VMs the kernel has (`vm_create` without `vm_destroy` yet).
    kernel_vms: BTreeSet<u16>,
    kernel_creates: usize,
    kernel_destroys: usize,
    /// ioreq pages the ioreq service took (one per `AttachVm`).
    pages_out: BTreeSet<u16>,
    pages_taken: usize,
    pages_returned: usize,
    /// What the kernel keeps per VM for a restarted vm-manager: name,
    /// RAM, status, generation ID and note.
    kept: std::collections::BTreeMap<u16, Kept>,
}

#[derive(Clone, Debug, Default)]
struct Kept {
    name: String,
    mem_mib: u32,
    status: usize,
    generation_id: [u8; 16],
    note: Vec<u8>,
    /// How it left running (`vm_status`'s record).
    exit: ipc::syscall::vm_exit::ExitRecord,
}

type Shared = Rc<RefCell<Held>>;

/// The kernel: refuses a second `vm_create` of a live VM and a
/// `vm_destroy` of one it does not have, like the real one.
struct Kernel(Shared);

impl VmKernel for Kernel {
    fn vm_create(&mut self, vm: VmId, ram_mib: u32, _vcpus: u8) -> Result<(), Error> {
        let mut held = self.0.borrow_mut();
        if !held.kernel_vms.insert(vm.0) {
            return Err(Error::VmExists);
        }
        held.kernel_creates += 1;
        held.kept.insert(
            vm.0,
            Kept {
                mem_mib: ram_mib,
                ..Kept::default()
            },
        );
        Ok(())
    }
    fn vm_set_name(&mut self, vm: VmId, name: &str) -> Result<(), Error> {
        self.kept(vm, |kept| kept.name = name.into())
    }
    fn vm_write_genid(&mut self, vm: VmId, id: [u8; 16]) -> Result<(), Error> {
        self.kept(vm, |kept| kept.generation_id = id)
    }
    fn vm_set_note(&mut self, vm: VmId, note: &[u8]) -> Result<(), Error> {
        self.kept(vm, |kept| kept.note = note.to_vec())
    }
    fn vm_adopt(&mut self, vm: VmId) -> Result<vm_manager::KernelVm, Error> {
        let held = self.0.borrow();
        let kept = held.kept.get(&vm.0).ok_or(Error::UnknownVm)?;
        Ok(vm_manager::KernelVm {
            status: kept.status,
            mem_mib: kept.mem_mib,
            vcpus: 1,
            name: heapless::String::try_from(kept.name.as_str()).map_err(|_| Error::InvalidName)?,
            generation_id: kept.generation_id,
            note: heapless::Vec::from_slice(&kept.note).map_err(|_| Error::Malformed)?,
        })
    }
    fn vm_status(&mut self, vm: VmId) -> Result<(usize, ipc::syscall::vm_exit::ExitRecord), Error> {
        let held = self.0.borrow();
        let kept = held.kept.get(&vm.0).ok_or(Error::UnknownVm)?;
        Ok((kept.status, kept.exit))
    }
    fn vm_load(&mut self, vm: VmId, _image: usize, _offset: u64) -> Result<u64, Error> {
        self.live(vm).map(|()| 4096)
    }
    fn image_name(&mut self, index: usize) -> Result<(ipc::WireName, u64), Error> {
        common::only_hello(index)
    }
    fn vm_grant_ram(&mut self, vm: VmId, _: u64) -> Result<(), Error> {
        self.live(vm)
    }
    fn vm_set_dtb(&mut self, vm: VmId, _dtb: &[u8]) -> Result<(), Error> {
        self.live(vm)
    }
    fn vm_start(&mut self, vm: VmId, _entry: u64, _dtb: u64) -> Result<(), Error> {
        self.kept(vm, |kept| kept.status = vm_status::RUNNING)
    }
    fn vm_pause(&mut self, vm: VmId) -> Result<(), Error> {
        self.kept(vm, |kept| kept.status = vm_status::PAUSED)
    }
    fn vm_resume(&mut self, vm: VmId) -> Result<(), Error> {
        self.kept(vm, |kept| kept.status = vm_status::RUNNING)
    }
    fn vm_reset(&mut self, vm: VmId) -> Result<(), Error> {
        self.live(vm)
    }
    fn vm_destroy(&mut self, vm: VmId) -> Result<(), Error> {
        let mut held = self.0.borrow_mut();
        if !held.kernel_vms.remove(&vm.0) {
            return Err(Error::UnknownVm);
        }
        held.kept.remove(&vm.0);
        held.kernel_destroys += 1;
        Ok(())
    }
}

impl Kernel {
    /// Changes what the kernel keeps for the live VM `vm`.
    fn kept(&mut self, vm: VmId, change: impl FnOnce(&mut Kept)) -> Result<(), Error> {
        let mut held = self.0.borrow_mut();
        let kept = held.kept.get_mut(&vm.0).ok_or(Error::UnknownVm)?;
        change(kept);
        Ok(())
    }

    fn live(&self, vm: VmId) -> Result<(), Error> {
        if self.0.borrow().kernel_vms.contains(&vm.0) {
            Ok(())
        } else {
            Err(Error::UnknownVm)
        }
    }
}

/// The ioreq pages the kernel grants: counted out and back.
struct Pages(Shared);

impl PageSource for Pages {
    type Page = IoreqPage;
    type Ring = PostedPage;

    fn ring_for(&mut self, _vm: VmId) -> Result<PostedPage, Error> {
        Ok(PostedPage::new())
    }

    fn page_for(&mut self, vm: VmId) -> Result<IoreqPage, Error> {
        let mut held = self.0.borrow_mut();
        if !held.pages_out.insert(vm.0) {
            return Err(Error::VmExists);
        }
        held.pages_taken += 1;
        Ok(IoreqPage::new())
    }

    fn release(&mut self, vm: VmId, _page: IoreqPage) {
        let mut held = self.0.borrow_mut();
        assert!(
            held.pages_out.remove(&vm.0),
            "page of VM {vm:?} returned twice"
        );
        held.pages_returned += 1;
    }
}

struct NoConsole;
impl ::devices::console_lines::ConsoleSink for NoConsole {
    fn write_line(&mut self, _line: &[u8]) {}
}

struct NoIrqs;
impl IrqSink for NoIrqs {
    fn irq_event(&mut self, _event: devices::IrqEvent) {}
}

struct NoMemory;
impl GuestMemoryProvider for NoMemory {
    fn memory(&mut self, _vm: VmId) -> Option<&mut dyn GuestMemory> {
        None
    }
}

struct Zeros;
impl ::devices::bus::EntropySource for Zeros {
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        buf.fill(0);
        buf.len()
    }
}

type Devices = DeviceService<NoConsole, NoIrqs, NoMemory, Zeros>;

/// The two services, called in-process as the task calls them over IPC.
struct Services {
    ioreq: IoreqService<Pages>,
    devices: Devices,
}

/// The links the platform holds; the test keeps a second handle to look
/// into the services afterwards.
struct Links(Rc<RefCell<Services>>);

impl ServiceLinks for Links {
    fn ioreq(&mut self, request: &ioreq::Request) -> Result<ioreq::Response, Error> {
        Ok(self.0.borrow_mut().ioreq.handle(request.clone()).response)
    }
    fn devices(&mut self, request: &devices::Request) -> Result<devices::Response, Error> {
        Ok(self.0.borrow_mut().devices.handle(request.clone()))
    }
}

struct Counting(u8);

impl EntropySource for Counting {
    fn fill(&mut self, out: &mut [u8; 16]) {
        self.0 = self.0.wrapping_add(1);
        *out = [self.0; 16];
    }
}

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
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
];

type Manager = VmManager<KernelPlatform<Kernel, Links>, Counting>;

const CYCLES: usize = 100;

/// A fake kernel, the real services and a manager over them (nothing
/// launched yet); the test keeps handles to the first two.
fn world() -> (Shared, Rc<RefCell<Services>>, Manager) {
    let held = Shared::default();
    let services = Rc::new(RefCell::new(Services {
        ioreq: IoreqService::new(Pages(held.clone())),
        devices: DeviceService::new(NoConsole, NoIrqs, NoMemory, Zeros),
    }));
    let platform = KernelPlatform::new(Kernel(held.clone()), Links(services.clone()));
    let manager = Manager::new(SCENARIO, platform, Counting(0)).expect("a valid scenario");
    (held, services, manager)
}

fn named(request: fn(ipc::WireName) -> Request, name: &str) -> Request {
    request(wire_name(name).expect("a valid test name"))
}

#[test]
fn a_hundred_dynamic_vm_cycles_release_everything_they_acquired() {
    let (held, services, mut manager) = world();
    for launched in manager.launch_pre_launched() {
        assert_eq!(launched.result, Ok(()), "{}", launched.name.as_str());
    }
    let statics: BTreeSet<u16> = [0, 1].into();
    assert_eq!(held.borrow().kernel_vms, statics);
    assert_eq!(held.borrow().pages_out, statics);

    let mut slots_used = BTreeSet::new();
    for n in 0..CYCLES {
        let name = format!("cyc{n}");
        let created = manager.handle(Request::Create {
            name: wire_name(&name).expect("a valid name"),
            options: CreateOptions {
                image: Some(wire_name("hello").expect("a valid image name")),
                mem_mib: Some(4),
                ..CreateOptions::default()
            },
        });
        let Response::Info(info) = created else {
            panic!("cycle {n}: create answered {created:?}");
        };
        slots_used.insert(info.id.0);
        {
            let services = services.borrow();
            assert!(
                services.ioreq.vm(info.id).is_some(),
                "cycle {n}: not attached"
            );
            assert_eq!(services.ioreq.vm(info.id).map(|vm| vm.vcpus()), Some(1));
        }
        assert_eq!(
            manager.handle(named(|name| Request::Start { name }, &name)),
            Response::Ok,
            "cycle {n}: start"
        );
        assert_eq!(
            manager.handle(named(|name| Request::Destroy { name }, &name)),
            Response::Ok,
            "cycle {n}: destroy"
        );
        let services = services.borrow_mut();
        assert!(
            services.ioreq.vm(info.id).is_none(),
            "cycle {n}: ioreq kept it"
        );
        assert_eq!(
            services.devices.dropped_input(info.id),
            Err(Error::UnknownVm),
            "cycle {n}: the devices service kept its models"
        );
    }

    // Every acquire was matched by its release.
    let held = held.borrow();
    assert_eq!(held.kernel_vms, statics, "VMs left in the kernel");
    assert_eq!(held.kernel_creates, 2 + CYCLES);
    assert_eq!(held.kernel_destroys, CYCLES);
    assert_eq!(held.pages_out, statics, "ioreq pages not returned");
    assert_eq!(held.pages_taken, 2 + CYCLES);
    assert_eq!(held.pages_returned, CYCLES);
    assert_eq!(manager.platform().release_failures(), 0);
    // The slot is reused, not used up.
    assert!(slots_used.len() < 16, "{slots_used:?}");

    // Only the static VMs remain, still running, with their devices.
    let services = services.borrow_mut();
    for (vm, name) in [(0u16, "vm0"), (1, "vm1")] {
        let info = manager.handle(named(|name| Request::Info { name }, name));
        let Response::Info(info) = info else {
            panic!("{name}: {info:?}");
        };
        assert_eq!((info.id, info.state), (VmId(vm), VmState::Started));
        assert!(services.ioreq.vm(VmId(vm)).is_some(), "{name}");
        assert_eq!(services.devices.dropped_input(VmId(vm)), Ok(0), "{name}");
    }
}

#[test]
fn console_requests_reach_the_vms_uart_in_the_real_device_service() {
    let (_, services, mut manager) = world();
    manager.launch_pre_launched();
    let uart = vm_manager::guest_dt::UART.base;
    let guest_access = |request: devices::Request| services.borrow_mut().devices.handle(request);
    // The guest writes to its UART's transmit register.
    for &byte in b"hi\r\n" {
        let written = guest_access(devices::Request::Write {
            vm: VmId(1),
            space: ipc::Space::Mmio,
            addr: uart,
            size: 1,
            value: u64::from(byte),
        });
        assert_eq!(written, devices::Response::Ok);
    }
    let from = |from| Request::ConsoleOutput {
        name: wire_name("vm1").expect("a valid name"),
        from,
    };
    let Response::ConsoleOutput(chunk) = manager.handle(from(0)) else {
        panic!("no console output");
    };
    assert_eq!(
        (&chunk.bytes[..], chunk.next, chunk.lost),
        (&b"hi\r\n"[..], 4, 0)
    );
    let Response::ConsoleOutput(chunk) = manager.handle(from(0)) else {
        panic!("no console output");
    };
    assert_eq!(chunk.next, 4, "reading does not consume");
    // Typed bytes reach the UART's receive register.
    let typed = manager.handle(Request::ConsoleInput {
        name: wire_name("vm1").expect("a valid name"),
        port: ipc::vm::ConsolePort::Serial,
        bytes: heapless::Vec::from_slice(b"ok").expect("fits"),
    });
    assert_eq!(typed, Response::Ok);
    for expected in [b'o', b'k'] {
        let read = guest_access(devices::Request::Read {
            vm: VmId(1),
            space: ipc::Space::Mmio,
            addr: uart,
            size: 1,
        });
        assert_eq!(read, devices::Response::Value(u64::from(expected)));
    }
    // The platform takes more than one `Input` carries, in pieces.
    let long = [b'z'; devices::INPUT_CHUNK + 36];
    assert_eq!(
        manager
            .platform_mut()
            .console_input(VmId(1), ipc::vm::ConsolePort::Serial, &long),
        Ok(())
    );
    for at in 0..long.len() {
        let read = guest_access(devices::Request::Read {
            vm: VmId(1),
            space: ipc::Space::Mmio,
            addr: uart,
            size: 1,
        });
        assert_eq!(read, devices::Response::Value(u64::from(b'z')), "byte {at}");
    }
    // vm0's console saw none of it.
    let Response::ConsoleOutput(chunk) = manager.handle(Request::ConsoleOutput {
        name: wire_name("vm0").expect("a valid name"),
        from: 0,
    }) else {
        panic!("no console output");
    };
    assert!(chunk.bytes.is_empty());
}

/// Init's notice that the service on `endpoint` runs again.
fn supervisor_says_restarted(manager: &mut Manager, endpoint: u8) -> Response {
    manager.handle_from(Caller::Supervisor, Request::ServiceRestarted { endpoint })
}

#[test]
fn restarted_services_are_handed_every_live_vm_again() {
    let (_, services, mut manager) = world();
    manager.launch_pre_launched();
    // vm1 is gone before the services die: nobody brings it back.
    assert_eq!(
        manager.handle(named(|name| Request::Destroy { name }, "vm1")),
        Response::Ok
    );
    let ranges = services
        .borrow()
        .ioreq
        .vm(VmId(0))
        .map(|vm| vm.clients().ranges().len());

    // The ioreq service dies; the kernel maps the pages into its fresh copy.
    services.borrow_mut().ioreq = IoreqService::new(Pages(Shared::default()));
    let ioreq = u8::try_from(ipc::syscall::endpoints::IOREQ).expect("small");
    assert_eq!(supervisor_says_restarted(&mut manager, ioreq), Response::Ok);
    {
        let services = services.borrow();
        let vm0 = services.ioreq.vm(VmId(0)).expect("vm0 attached again");
        assert!(!vm0.is_held(), "activated once its ranges were back");
        assert_eq!(Some(vm0.clients().ranges().len()), ranges);
        assert!(services.ioreq.vm(VmId(1)).is_none(), "vm1 stays gone");
    }

    // The device service dies; its fresh copy gets vm0's devices back.
    services.borrow_mut().devices = DeviceService::new(NoConsole, NoIrqs, NoMemory, Zeros);
    assert_eq!(
        services.borrow_mut().devices.dropped_input(VmId(0)),
        Err(Error::UnknownVm)
    );
    let devices_ep = u8::try_from(ipc::syscall::endpoints::DEVICES).expect("small");
    assert_eq!(
        supervisor_says_restarted(&mut manager, devices_ep),
        Response::Ok
    );
    assert_eq!(services.borrow_mut().devices.dropped_input(VmId(0)), Ok(0));
    assert_eq!(
        services.borrow_mut().devices.dropped_input(VmId(1)),
        Err(Error::UnknownVm)
    );
    // Its UART works: a guest write shows in vm0's console output.
    let uart = vm_manager::guest_dt::UART.base;
    let written = services
        .borrow_mut()
        .devices
        .handle(devices::Request::Write {
            vm: VmId(0),
            space: ipc::Space::Mmio,
            addr: uart,
            size: 1,
            value: u64::from(b'k'),
        });
    assert_eq!(written, devices::Response::Ok);
    let Response::ConsoleOutput(chunk) = manager.handle(Request::ConsoleOutput {
        name: wire_name("vm0").expect("a valid name"),
        from: 0,
    }) else {
        panic!("no console output");
    };
    assert_eq!(&chunk.bytes[..], b"k");

    // A second notice for the same service is harmless (a device reset).
    assert_eq!(
        supervisor_says_restarted(&mut manager, devices_ep),
        Response::Ok
    );
    // Only the supervisor may say so: the shell or the CLI may not make
    // every VM's devices start from reset.
    assert_eq!(
        manager.handle(Request::ServiceRestarted {
            endpoint: devices_ep
        }),
        Response::Err(Error::PermissionDenied)
    );
    // Only the two services can be restarted this way.
    for endpoint in [0, 1, 4, 255] {
        assert_eq!(
            supervisor_says_restarted(&mut manager, endpoint),
            Response::Err(Error::InvalidArgument),
            "endpoint {endpoint}"
        );
    }
    assert_eq!(manager.platform().release_failures(), 0);
}

/// Creates the dynamic VM `dyn` (the hello image, 4 MiB) and starts it.
fn create_and_start_dyn(manager: &mut Manager) {
    let created = manager.handle(Request::Create {
        name: wire_name("dyn").expect("a valid name"),
        options: CreateOptions {
            image: Some(wire_name("hello").expect("a valid image name")),
            mem_mib: Some(4),
            ..CreateOptions::default()
        },
    });
    assert!(matches!(created, Response::Info(_)), "{created:?}");
    assert_eq!(
        manager.handle(named(|name| Request::Start { name }, "dyn")),
        Response::Ok
    );
}

#[test]
fn a_restarted_vm_manager_takes_every_vm_back_as_it_was() {
    let (held, services, mut first) = world();
    first.launch_pre_launched();
    create_and_start_dyn(&mut first);
    assert_eq!(
        first.handle(named(|name| Request::Pause { name }, "vm1")),
        Response::Ok
    );
    let listed = |manager: &mut Manager| manager.handle(Request::List { from: 0 });
    let before = listed(&mut first);
    drop(first);

    // A fresh copy over the same kernel and services.
    let platform = KernelPlatform::new(Kernel(held.clone()), Links(services.clone()));
    let mut second = Manager::new(SCENARIO, platform, Counting(100)).expect("a valid scenario");
    let (found, exits) = second.recover();
    assert!(exits.is_empty());
    let names: Vec<_> = found
        .iter()
        .map(|r| {
            (
                r.id.0,
                r.name.as_ref().map(|n| n.as_str().to_string()),
                r.result,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (0, Some("vm0".into()), Ok(())),
            (1, Some("vm1".into()), Ok(())),
            (2, Some("dyn".into()), Ok(())),
        ]
    );
    assert_eq!(
        listed(&mut second),
        before,
        "states and generation IDs as they were"
    );
    // It runs them: resume, reset (the dynamic one's image is known) and
    // destroy, with every resource given back.
    assert_eq!(
        second.handle(named(|name| Request::Resume { name }, "vm1")),
        Response::Ok
    );
    let reset = second.handle(Request::Reset {
        name: wire_name("dyn").expect("a valid name"),
        new_generation_id: false,
    });
    assert_eq!(reset, Response::Ok);
    assert_eq!(
        second.handle(named(|name| Request::Destroy { name }, "dyn")),
        Response::Ok
    );
    assert!(services.borrow().ioreq.vm(VmId(2)).is_none());
    assert!(!held.borrow().kernel_vms.contains(&2));
    assert_eq!(second.platform().release_failures(), 0);
}

#[test]
fn a_restarted_vm_manager_reads_how_vms_ended_meanwhile_from_the_kernel() {
    use ipc::syscall::vm_exit::{self, ExitRecord};
    use ipc::vm::{GuestAccess, LastExit, StopCause};
    let (held, services, mut first) = world();
    first.launch_pre_launched();
    create_and_start_dyn(&mut first);
    drop(first);
    // While nobody listens, the kernel stops dyn for a wild store and vm0
    // powers itself off.
    {
        let mut held = held.borrow_mut();
        let dyn_vm = held.kept.get_mut(&2).expect("dyn is in the kernel");
        dyn_vm.status = vm_status::STOPPED;
        dyn_vm.exit = ExitRecord {
            kind: vm_exit::GUEST_PAGE_FAULT,
            detail: 1,
            a: 0x2800_0000,
            b: 0,
            pc: 0x8020_0040,
            uptime_ms: 5_670,
        };
        let vm0 = held.kept.get_mut(&0).expect("vm0 is in the kernel");
        vm0.status = vm_status::POWERED_OFF;
        vm0.exit = ExitRecord {
            kind: vm_exit::POWER_OFF,
            ..ExitRecord::default()
        };
    }
    let platform = KernelPlatform::new(Kernel(held.clone()), Links(services));
    let mut second = Manager::new(SCENARIO, platform, Counting(100)).expect("a valid scenario");
    let (_, exits) = second.recover();
    let fault = LastExit::Stopped {
        cause: StopCause::GuestPageFault {
            access: GuestAccess::Store,
            gpa: 0x2800_0000,
        },
        pc: 0x8020_0040,
    };
    let off = LastExit::PoweredOff { reason: 0 };
    assert_eq!(
        exits[..],
        [
            vm_manager::GuestExit::PoweredOff(vm_manager::VmName::parse("vm0").unwrap(), off),
            vm_manager::GuestExit::Stopped(vm_manager::VmName::parse("dyn").unwrap(), fault),
        ]
    );
    match second.handle(named(|name| Request::Info { name }, "vm0")) {
        Response::Info(info) => {
            assert_eq!(info.state, VmState::PoweredOff);
            assert_eq!(info.last_exit, Some(off));
            assert_eq!(info.last_exit_uptime_ms, Some(0));
        }
        other => panic!("vm0: {other:?}"),
    }
    assert_eq!(
        second.handle(named(|name| Request::Info { name }, "dyn")),
        Response::Ended(fault)
    );
    assert!(!held.borrow().kernel_vms.contains(&2), "dyn was released");
}
