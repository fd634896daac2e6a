//! Valid messages of each service protocol, built with their own types:
//! the seeds of the message targets.

use ipc::devices::{self, BatchWrite, ConsoleChunk, WaitedAccess};
use ipc::ioreq::{self, ClientId};
use ipc::vm::{self, CreateOptions, VcpuInfo, VcpuState, VmInfo, VmKind, VmState, VmStats};
use ipc::{Error, Space, VmId, wire_name};

fn name(text: &str) -> ipc::WireName {
    wire_name(text).expect("seed names fit")
}

pub(super) fn vm_requests() -> Vec<vm::Request> {
    vec![
        vm::Request::Create {
            name: name("web"),
            options: CreateOptions {
                kernel: Some(name("linux")),
                initrd: Some(name("linux-initrd")),
                cmdline: Some(vm::WireCmdline::try_from("console=ttyS0").expect("fits")),
                mem_mib: Some(128),
                vcpus: Some(1),
                ..CreateOptions::default()
            },
        },
        vm::Request::Create {
            name: name("d1"),
            options: CreateOptions {
                image: Some(name("hello")),
                disk: Some(0),
                ..CreateOptions::default()
            },
        },
        vm::Request::Start { name: name("vm0") },
        vm::Request::Reset {
            name: name("vm0"),
            new_generation_id: true,
        },
        vm::Request::Clone {
            source: name("vm0"),
            name: name("vm1"),
        },
        vm::Request::List { from: 300 },
        vm::Request::ConsoleInput {
            name: name("linux"),
            port: vm::ConsolePort::Serial,
            bytes: heapless::Vec::from_slice(b"ls\n").expect("fits"),
        },
        vm::Request::ConsoleInput {
            name: name("linux"),
            port: vm::ConsolePort::Virtio,
            bytes: heapless::Vec::from_slice(b"echo hvc\n").expect("fits"),
        },
        vm::Request::ConsoleOutput {
            name: name("linux"),
            from: 1 << 40,
        },
        vm::Request::Stats { name: name("vm0") },
        vm::Request::Images { from: 7 },
        vm::Request::Events { from: u64::MAX },
        vm::Request::Events { from: 12 },
    ]
}

pub(super) fn vm_responses() -> Vec<vm::Response> {
    let info = VmInfo {
        name: name("vm0"),
        id: VmId(1),
        kind: VmKind::Static,
        state: VmState::Paused,
        vcpus: 1,
        mem_mib: 64,
        disk: None,
        generation_id: [7; 16],
        generation_id_random: true,
        last_exit: None,
        last_exit_uptime_ms: None,
    };
    let fault = vm::LastExit::Stopped {
        cause: vm::StopCause::GuestPageFault {
            access: vm::GuestAccess::Store,
            gpa: 0x2800_0000,
        },
        pc: 0x8020_0040,
    };
    let ended = VmInfo {
        state: VmState::PoweredOff,
        last_exit: Some(fault),
        last_exit_uptime_ms: Some(12_340),
        ..info.clone()
    };
    let rebooted = VmInfo {
        state: VmState::Started,
        disk: Some(1),
        last_exit: Some(vm::LastExit::Rebooted {
            warm: true,
            reason: 0xf000_0001,
        }),
        ..info.clone()
    };
    vec![
        vm::Response::Ok,
        vm::Response::Info(info.clone()),
        vm::Response::Info(ended.clone()),
        vm::Response::List {
            vms: heapless::Vec::from_slice(&[info.clone(), info, ended, rebooted]).expect("fits"),
            next: Some(2),
        },
        vm::Response::Ended(fault),
        vm::Response::Ended(vm::LastExit::PoweredOff { reason: 1 }),
        vm::Response::Ended(vm::LastExit::Stopped {
            cause: vm::StopCause::Other { kind: u32::MAX },
            pc: u64::MAX,
        }),
        vm::Response::Ended(vm::LastExit::Destroyed),
        vm::Response::Events(vm::EventPage {
            events: heapless::Vec::from_slice(&[
                vm::VmEvent {
                    seq: 12,
                    name: name("vm0"),
                    change: vm::VmChange::Reset {
                        new_generation_id: true,
                    },
                    state: VmState::Started,
                },
                vm::VmEvent {
                    seq: 13,
                    name: name("vm0"),
                    change: vm::VmChange::Exited {
                        exit: fault,
                        uptime_ms: Some(12_340),
                    },
                    state: VmState::PoweredOff,
                },
            ])
            .expect("fits"),
            next: 14,
            lost: 3,
            incarnation: 2,
        }),
        vm::Response::Err(Error::InvalidName),
        vm::Response::Err(Error::NoImageGiven),
        vm::Response::Images {
            images: heapless::Vec::from_slice(&[
                vm::GuestImage {
                    name: name("hello"),
                    kind: vm::ImageKind::Raw,
                    size: 8192,
                },
                vm::GuestImage {
                    name: name("linux"),
                    kind: vm::ImageKind::LinuxImage,
                    size: 25 << 20,
                },
                vm::GuestImage {
                    name: name("linux-initrd"),
                    kind: vm::ImageKind::Initrd,
                    size: u64::MAX,
                },
            ])
            .expect("fits"),
            next: Some(8),
        },
        vm::Response::ConsoleOutput(ConsoleChunk {
            next: 9,
            lost: 1,
            bytes: heapless::Vec::from_slice(b"\x1b[2Jhi").expect("fits"),
        }),
        vm::Response::Stats(VmStats {
            device_exits: 23702,
            service_ns: 1 << 33,
            vcpus: heapless::Vec::from_array([
                VcpuInfo {
                    state: VcpuState::Running,
                    exits: 23702,
                    round_trips: 23000,
                    cpu: None,
                },
                VcpuInfo {
                    state: VcpuState::Stopped,
                    exits: 0,
                    round_trips: 0,
                    cpu: None,
                },
            ]),
            ..VmStats::default()
        }),
    ]
}

pub(super) fn ioreq_requests() -> Vec<ioreq::Request> {
    let vm = VmId(3);
    vec![
        ioreq::Request::AttachVm { vm, vcpus: 1 },
        ioreq::Request::RegisterRange {
            vm,
            client: ClientId(2),
            space: Space::Mmio,
            start: 0x1000_0000,
            len: 8,
        },
        ioreq::Request::Complete {
            vm,
            vcpu: 0,
            value: u64::MAX,
        },
        ioreq::Request::PostWrites {
            vm,
            space: Space::Pio,
            start: 0x3f8,
            len: 1,
        },
    ]
}

pub(super) fn devices_requests() -> Vec<devices::Request> {
    let vm = VmId(200);
    vec![
        devices::Request::Read {
            vm,
            space: Space::Mmio,
            addr: 0x1000_0005,
            size: 1,
        },
        devices::Request::Write {
            vm,
            space: Space::Pio,
            addr: 0x3f8,
            size: 1,
            value: 0x68,
        },
        devices::Request::WriteBatch {
            vm,
            writes: [0x68u64, 0x69, 0x0a]
                .iter()
                .map(|&value| BatchWrite {
                    space: Space::Mmio,
                    addr: 0x1000_0000,
                    size: 1,
                    value,
                })
                .collect(),
            then: Some(WaitedAccess {
                space: Space::Mmio,
                addr: 0x1000_0005,
                size: 1,
                write: None,
            }),
        },
        devices::Request::WriteBatch {
            vm,
            writes: heapless::Vec::new(),
            then: None,
        },
        devices::Request::Input {
            vm,
            port: devices::ConsolePort::Serial,
            bytes: heapless::Vec::from_slice(b"abc").expect("fits"),
        },
        devices::Request::Input {
            vm,
            port: devices::ConsolePort::Virtio,
            bytes: heapless::Vec::from_slice(b"hvc").expect("fits"),
        },
        devices::Request::ConsoleRead { vm, from: 5 },
        devices::Request::AddVm {
            vm,
            name: name("vm0"),
        },
    ]
}

pub(super) fn devices_responses() -> Vec<devices::Response> {
    vec![
        devices::Response::Ok,
        devices::Response::Value(0x60),
        devices::Response::Value(u64::MAX),
        devices::Response::Err(Error::Malformed),
    ]
}
