//! Pins the wire format: each variant's leading discriminant byte and each
//! error's numeric code. Reordering or renumbering variants breaks these.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::devices::{self, ConsoleChunk, DeviceKind, IrqEvent};
use ipc::ioreq::{self, ClientId};
use ipc::vm::{self, CreateOptions, VcpuInfo, VcpuState, VmInfo, VmKind, VmState, VmStats};
use ipc::{Error, Space, VmId, encode, wire_name};

fn first_byte<T: serde::Serialize>(msg: &T) -> u8 {
    let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
    encode(msg, &mut buf).expect("encodes")[0]
}

fn name() -> ipc::WireName {
    wire_name("vm0").unwrap()
}

fn info() -> VmInfo {
    VmInfo {
        name: name(),
        id: VmId(0),
        kind: VmKind::Static,
        state: VmState::Started,
        vcpus: 1,
        mem_mib: 64,
        disk: None,
        generation_id: [0; 16],
        generation_id_random: true,
        last_exit: None,
        last_exit_uptime_ms: None,
    }
}

#[test]
fn vm_request_discriminants_are_pinned() {
    let n = name;
    let cases: [(vm::Request, u8); 17] = [
        (
            vm::Request::Create {
                name: n(),
                options: CreateOptions::default(),
            },
            0,
        ),
        (vm::Request::Start { name: n() }, 1),
        (vm::Request::Pause { name: n() }, 2),
        (vm::Request::Resume { name: n() }, 3),
        (
            vm::Request::Reset {
                name: n(),
                new_generation_id: false,
            },
            4,
        ),
        (vm::Request::Shutdown { name: n() }, 5),
        (vm::Request::Destroy { name: n() }, 6),
        (
            vm::Request::Clone {
                source: n(),
                name: n(),
            },
            7,
        ),
        (vm::Request::List { from: 0 }, 8),
        (vm::Request::Info { name: n() }, 9),
        (
            vm::Request::ConsoleInput {
                name: n(),
                port: vm::ConsolePort::Serial,
                bytes: heapless::Vec::new(),
            },
            10,
        ),
        (vm::Request::ConsoleOutput { name: n(), from: 0 }, 11),
        (vm::Request::Stats { name: n() }, 12),
        (vm::Request::ServiceRestarted { endpoint: 1 }, 13),
        (vm::Request::Images { from: 0 }, 14),
        (vm::Request::ConsoleFocus { name: None }, 15),
        (vm::Request::Events { from: 0 }, 16),
    ];
    for (msg, byte) in cases {
        assert_eq!(first_byte(&msg), byte, "{msg:?}");
    }
}

#[test]
fn create_options_bytes_are_pinned() {
    let options = CreateOptions {
        template: None,
        image: None,
        mem_mib: Some(128),
        vcpus: None,
        kernel: Some(wire_name("lx").unwrap()),
        initrd: Some(wire_name("rd").unwrap()),
        cmdline: Some(vm::WireCmdline::try_from("console=ttyS0").unwrap()),
        disk: Some(3),
    };
    let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
    let bytes = encode(&options, &mut buf).expect("encodes");
    let mut expected = std::vec![0u8, 0, 1, 128, 1, 0];
    expected.extend_from_slice(&[1, 2, b'l', b'x', 1, 2, b'r', b'd', 1, 13]);
    expected.extend_from_slice(b"console=ttyS0");
    // The disk last (protocol version 6).
    expected.extend_from_slice(&[1, 3]);
    assert_eq!(bytes, &expected[..]);
    let without = CreateOptions {
        disk: None,
        ..options
    };
    assert_eq!(encode(&without, &mut buf).unwrap().last(), Some(&0));
}

#[test]
fn vm_response_discriminants_are_pinned() {
    assert_eq!(first_byte(&vm::Response::Ok), 0);
    assert_eq!(first_byte(&vm::Response::Info(info())), 1);
    let list = vm::Response::List {
        vms: heapless::Vec::new(),
        next: None,
    };
    assert_eq!(first_byte(&list), 2);
    assert_eq!(first_byte(&vm::Response::Err(Error::UnknownVm)), 3);
    let chunk = ConsoleChunk {
        next: 2,
        lost: 1,
        bytes: heapless::Vec::from_slice(b"hi").unwrap(),
    };
    assert_eq!(first_byte(&vm::Response::ConsoleOutput(chunk.clone())), 4);
    // The chunk itself: next, lost, then the length-prefixed bytes.
    let mut buf = [0u8; 16];
    assert_eq!(encode(&chunk, &mut buf).unwrap(), [2, 1, 2, b'h', b'i']);
    assert_eq!(first_byte(&vm::Response::Stats(VmStats::default())), 5);
    assert_eq!(first_byte(&vm::Response::Ended(vm::LastExit::Destroyed)), 6);
    let images = vm::Response::Images {
        images: heapless::Vec::new(),
        next: None,
    };
    assert_eq!(first_byte(&images), 7);
    let events = vm::Response::Events(vm::EventPage::default());
    assert_eq!(first_byte(&events), 8);
}

#[test]
fn event_bytes_are_pinned() {
    let event = vm::VmEvent {
        seq: 300,
        name: name(),
        change: vm::VmChange::Exited {
            exit: vm::LastExit::Destroyed,
            uptime_ms: None,
        },
        state: VmState::PoweredOff,
    };
    let mut buf = [0u8; 32];
    // The varint sequence number, the name, the change (Exited = 5, then
    // the exit and the absent time), the state.
    assert_eq!(
        encode(&event, &mut buf).unwrap(),
        [0xac, 0x02, 3, b'v', b'm', b'0', 5, 4, 0, 0]
    );
    let changes = [
        (vm::VmChange::Created, 0),
        (vm::VmChange::Started, 1),
        (vm::VmChange::Paused, 2),
        (vm::VmChange::Resumed, 3),
        (
            vm::VmChange::Reset {
                new_generation_id: true,
            },
            4,
        ),
    ];
    for (change, byte) in changes {
        assert_eq!(first_byte(&change), byte, "{change:?}");
    }
    let page = vm::EventPage {
        events: heapless::Vec::new(),
        next: 7,
        lost: 2,
        incarnation: 1,
    };
    assert_eq!(encode(&page, &mut buf).unwrap(), [0, 7, 2, 1]);
}

#[test]
fn a_full_images_page_of_the_longest_names_fits_one_message() {
    let widest = vm::GuestImage {
        name: wire_name(&"i".repeat(32)).unwrap(),
        kind: vm::ImageKind::LinuxImage,
        size: u64::MAX,
    };
    let mut images = heapless::Vec::new();
    for _ in 0..vm::IMAGES_PAGE {
        images.push(widest.clone()).unwrap();
    }
    let page = vm::Response::Images {
        images,
        next: Some(u16::MAX),
    };
    let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
    let bytes = encode(&page, &mut buf).expect("fits");
    assert!(bytes.len() <= ipc::MAX_MESSAGE_SIZE);
    // A guest image: the length-prefixed name, the kind, the varint size.
    let small = vm::GuestImage {
        name: wire_name("hello").unwrap(),
        kind: vm::ImageKind::Initrd,
        size: 300,
    };
    let mut buf = [0u8; 16];
    assert_eq!(
        encode(&small, &mut buf).unwrap(),
        [5, b'h', b'e', b'l', b'l', b'o', 2, 0xac, 0x02]
    );
}

#[test]
fn last_exit_bytes_are_pinned() {
    use vm::{GuestAccess, LastExit, StopCause};
    let bytes = |exit: &LastExit| {
        let mut buf = [0u8; 64];
        encode(exit, &mut buf).unwrap().to_vec()
    };
    assert_eq!(bytes(&LastExit::PoweredOff { reason: 1 }), [0, 1]);
    assert_eq!(
        bytes(&LastExit::Rebooted {
            warm: true,
            reason: 0
        }),
        [1, 1, 0]
    );
    // Stopped, GuestPageFault, Store, gpa 0x80 (varint), pc 1.
    let fault = LastExit::Stopped {
        cause: StopCause::GuestPageFault {
            access: GuestAccess::Store,
            gpa: 0x80,
        },
        pc: 1,
    };
    assert_eq!(bytes(&fault), [2, 0, 1, 0x80, 1, 1]);
    assert_eq!(bytes(&LastExit::ShutDown), [3]);
    assert_eq!(bytes(&LastExit::Destroyed), [4]);
    let causes = [
        StopCause::UndecodableMmio { gpa: 0, insn: 0 },
        StopCause::VirtualInstruction { insn: 0 },
        StopCause::BadIoCompletion,
        StopCause::UnhandledException { code: 0, value: 0 },
        StopCause::Other { kind: 0 },
    ];
    for (at, cause) in causes.into_iter().enumerate() {
        let exit = LastExit::Stopped { cause, pc: 0 };
        assert_eq!(bytes(&exit)[1], u8::try_from(at + 1).unwrap());
    }
    // `VmInfo` ends with its last exit and when it was (a varint).
    let mut with_exit = info();
    with_exit.last_exit = Some(LastExit::ShutDown);
    let mut buf = [0u8; 128];
    let encoded = encode(&with_exit, &mut buf).unwrap();
    assert_eq!(&encoded[encoded.len() - 3..], &[1, 3, 0]);
    with_exit.last_exit_uptime_ms = Some(300);
    let encoded = encode(&with_exit, &mut buf).unwrap();
    assert_eq!(&encoded[encoded.len() - 5..], &[1, 3, 1, 0xac, 0x02]);
}

#[test]
fn console_input_names_its_port_before_its_bytes() {
    // Serial 0, Virtio 1 (protocol version 6).
    let mut buf = [0u8; 64];
    let to_hvc = vm::Request::ConsoleInput {
        name: wire_name("a").unwrap(),
        port: vm::ConsolePort::Virtio,
        bytes: heapless::Vec::from_slice(b"x").unwrap(),
    };
    assert_eq!(
        encode(&to_hvc, &mut buf).unwrap(),
        [10, 1, b'a', 1, 1, b'x']
    );
    let to_uart = devices::Request::Input {
        vm: VmId(2),
        port: devices::ConsolePort::Serial,
        bytes: heapless::Vec::from_slice(b"x").unwrap(),
    };
    assert_eq!(encode(&to_uart, &mut buf).unwrap(), [6, 2, 0, 1, b'x']);
    assert_eq!(
        devices::ConsolePort::default(),
        devices::ConsolePort::Serial
    );
}

#[test]
fn vm_info_carries_its_disk_after_its_memory() {
    // name, slot, kind, state, vcpus, mem_mib (64), then the disk.
    let mut buf = [0u8; 128];
    let head = [3, b'v', b'm', b'0', 0, 0, 2, 1, 64];
    let mut with_disk = info();
    let none = encode(&with_disk, &mut buf).unwrap().to_vec();
    assert_eq!(none[..head.len()], head);
    assert_eq!(none[head.len()], 0);
    with_disk.disk = Some(2);
    let some = encode(&with_disk, &mut buf).unwrap();
    assert_eq!(some[..head.len()], head);
    assert_eq!(some[head.len()..head.len() + 2], [1, 2]);
}

#[test]
fn vm_stats_bytes_are_pinned() {
    // The fields in order, each a varint: device, hypercall, wait,
    // interrupt and other exits, round trips, service nanoseconds, posted
    // writes; then the network figures (an option: 0 for none, 1 then sent,
    // received, malformed and dropped frames); then the vCPUs (a count,
    // then each one's state variant, exits and round trips).
    let mut stats = VmStats {
        device_exits: 300,
        hypercall_exits: 2,
        wait_exits: 3,
        interrupt_exits: 4,
        other_exits: 5,
        ioreq_round_trips: 300,
        service_ns: 1_000_000,
        posted_writes: 7,
        net: None,
        vcpus: heapless::Vec::new(),
    };
    let mut buf = [0u8; 64];
    let head = [0xac, 0x02, 2, 3, 4, 5, 0xac, 0x02, 0xc0, 0x84, 0x3d, 7];
    let without = encode(&stats, &mut buf).unwrap().to_vec();
    assert_eq!(without[..head.len()], head);
    assert_eq!(without[head.len()..], [0, 0]);
    stats.net = Some(ipc::devices::NetCounters {
        sent: 8,
        received: 9,
        tx_dropped: 1,
        rx_dropped: 130,
    });
    let with = encode(&stats, &mut buf).unwrap().to_vec();
    assert_eq!(with[head.len()..], [1, 8, 9, 1, 0x82, 0x01, 0]);
    // Running 0, I/O 1, waiting 2, stopped 3, held 4.
    for (state, variant) in [
        (VcpuState::Running, 0),
        (VcpuState::Io, 1),
        (VcpuState::Waiting, 2),
        (VcpuState::Stopped, 3),
        (VcpuState::Held, 4),
    ] {
        stats.vcpus.clear();
        let vcpu = VcpuInfo {
            state,
            exits: 300,
            round_trips: 6,
            cpu: None,
        };
        let on_cpu_3 = VcpuInfo {
            exits: 1,
            cpu: Some(3),
            ..vcpu
        };
        stats.vcpus.extend([vcpu, on_cpu_3]);
        let vcpus = encode(&stats, &mut buf).unwrap();
        // The CPU comes last: 0 for none, 1 and the number for one.
        assert_eq!(
            vcpus[with.len() - 1..],
            [2, variant, 0xac, 0x02, 6, 0, variant, 1, 6, 1, 3]
        );
    }
}

#[test]
fn vm_state_and_kind_bytes_are_pinned() {
    for (state, byte) in [
        (VmState::PoweredOff, 0u8),
        (VmState::Created, 1),
        (VmState::Started, 2),
        (VmState::Paused, 3),
    ] {
        assert_eq!(first_byte(&state), byte);
    }
    assert_eq!(first_byte(&VmKind::Static), 0);
    assert_eq!(first_byte(&VmKind::Dynamic), 1);
}

#[test]
fn ioreq_discriminants_are_pinned() {
    let vm = VmId(1);
    let client = ClientId(2);
    let cases: [(ioreq::Request, u8); 8] = [
        (ioreq::Request::AttachVm { vm, vcpus: 1 }, 0),
        (ioreq::Request::DetachVm { vm }, 1),
        (
            ioreq::Request::RegisterRange {
                vm,
                client,
                space: Space::Mmio,
                start: 0,
                len: 8,
            },
            2,
        ),
        (ioreq::Request::UnregisterClient { vm, client }, 3),
        (ioreq::Request::SetDefaultClient { vm, client }, 4),
        (ioreq::Request::Dispatch { vm }, 5),
        (
            ioreq::Request::Complete {
                vm,
                vcpu: 0,
                value: 0,
            },
            6,
        ),
        (
            ioreq::Request::PostWrites {
                vm,
                space: Space::Mmio,
                start: 0,
                len: 1,
            },
            7,
        ),
    ];
    for (msg, byte) in cases {
        assert_eq!(first_byte(&msg), byte, "{msg:?}");
    }
    assert_eq!(first_byte(&ioreq::Response::Ok), 0);
    assert_eq!(first_byte(&ioreq::Response::Dispatched { count: 1 }), 1);
    assert_eq!(first_byte(&ioreq::Response::Err(Error::Malformed)), 2);
    assert_eq!(first_byte(&Space::Mmio), 0);
    assert_eq!(first_byte(&Space::Pio), 1);
    assert_eq!(first_byte(&Space::PciConfig), 2);
}

#[test]
fn devices_discriminants_are_pinned() {
    let vm = VmId(1);
    let cases: [(devices::Request, u8); 11] = [
        (devices::Request::AddVm { vm, name: name() }, 0),
        (devices::Request::RemoveVm { vm }, 1),
        (
            devices::Request::Read {
                vm,
                space: Space::Mmio,
                addr: 0,
                size: 1,
            },
            2,
        ),
        (
            devices::Request::Write {
                vm,
                space: Space::Pio,
                addr: 0,
                size: 1,
                value: 0,
            },
            3,
        ),
        (
            devices::Request::Attach {
                vm,
                device: DeviceKind::Uart16550,
                space: Space::Mmio,
                base: 0,
                irq: 10,
            },
            4,
        ),
        (
            devices::Request::Detach {
                vm,
                space: Space::Mmio,
                base: 0,
            },
            5,
        ),
        (
            devices::Request::Input {
                vm,
                port: devices::ConsolePort::Serial,
                bytes: heapless::Vec::new(),
            },
            6,
        ),
        (devices::Request::SetGenerationId { vm, id: [0; 16] }, 7),
        (devices::Request::ConsoleRead { vm, from: 0 }, 8),
        (
            devices::Request::WriteBatch {
                vm,
                writes: heapless::Vec::new(),
                then: None,
            },
            9,
        ),
        (devices::Request::ConsoleFocus { vm: Some(vm) }, 10),
    ];
    for (msg, byte) in cases {
        assert_eq!(first_byte(&msg), byte, "{msg:?}");
    }
    assert_eq!(first_byte(&devices::Response::Ok), 0);
    assert_eq!(first_byte(&devices::Response::Value(0)), 1);
    assert_eq!(first_byte(&devices::Response::Err(Error::NoDevice)), 2);
    assert_eq!(
        first_byte(&devices::Response::Console(ConsoleChunk::default())),
        3
    );
    for (kind, byte) in [
        (DeviceKind::Uart16550, 0u8),
        (DeviceKind::VirtioConsole, 1),
        (DeviceKind::VirtioRng, 2),
        (DeviceKind::VmGenId, 3),
        (DeviceKind::Plic, 4),
        (DeviceKind::VirtioBlk { disk: 3 }, 5),
        (DeviceKind::VirtioNet, 6),
    ] {
        assert_eq!(first_byte(&kind), byte);
    }
    let irq = IrqEvent::SetLevel {
        vm,
        irq: 10,
        asserted: true,
    };
    assert_eq!(first_byte(&irq), 0);
}

/// Every error, with its numeric code and its wire byte (variant index).
fn all_errors() -> [(Error, u32); 32] {
    [
        (Error::Malformed, 1),
        (Error::MessageTooLarge, 2),
        (Error::ServerDied, 3),
        (Error::InvalidName, 4),
        (Error::DuplicateName, 5),
        (Error::NoFreeSlot { max: 16 }, 6),
        (Error::UnknownVm, 7),
        (
            Error::IllegalTransition {
                state: VmState::Paused,
            },
            8,
        ),
        (Error::OutOfMemory, 9),
        (Error::UnknownImage, 10),
        (Error::RangeOverlap, 11),
        (Error::InvalidRange, 12),
        (Error::UnknownClient, 13),
        (Error::BadSlotState, 14),
        (Error::NoDevice, 15),
        (Error::BadAccess, 16),
        (Error::DeviceExists, 17),
        (Error::InvalidArgument, 18),
        (Error::PermissionDenied, 19),
        (Error::KernelRefused, 20),
        (Error::ClientExists, 21),
        (Error::VmExists, 22),
        (Error::TableFull, 23),
        (Error::NoEntropy, 24),
        (Error::ServiceDown { endpoint: 2 }, 25),
        (Error::TimedOut, 26),
        (Error::ServiceHung { endpoint: 3 }, 27),
        (Error::NoImageGiven, 28),
        (Error::IoFailed, 29),
        (Error::DiskInUse, 30),
        (Error::StaticSettings, 31),
        (Error::Forwarded, 32),
    ]
}

#[test]
fn error_codes_and_wire_bytes_are_pinned() {
    for (error, code) in all_errors() {
        assert_eq!(error.code(), code, "{error:?}");
        // The wire byte is the variant index: code - 1.
        assert_eq!(u32::from(first_byte(&error)), code - 1, "{error:?}");
    }
}

#[test]
fn error_messages_say_what_was_wrong() {
    use std::string::ToString;
    assert_eq!(
        Error::InvalidName.to_string(),
        "invalid VM name: use 1-31 of [A-Za-z0-9._-]"
    );
    assert_eq!(
        Error::NoFreeSlot { max: 16 }.to_string(),
        "no free VM slot (maximum is 16 VMs)"
    );
    assert_eq!(
        Error::IllegalTransition {
            state: VmState::Paused
        }
        .to_string(),
        "not allowed while the VM is paused"
    );
    assert_eq!(
        Error::ServiceDown { endpoint: 3 }.to_string(),
        "the device service died during the request and is being restarted: retry"
    );
    assert_eq!(
        Error::ServiceHung { endpoint: 2 }.to_string(),
        "the ioreq service did not answer in time (hung or overloaded): retry"
    );
    for (error, _) in all_errors() {
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn errors_round_trip_with_their_data() {
    let mut buf = [0u8; 64];
    for (error, _) in all_errors() {
        let bytes = encode(&error, &mut buf).unwrap();
        assert_eq!(ipc::decode::<Error>(bytes), Ok(error));
    }
}
