//! Test-time proof that every message fits in `MAX_MESSAGE_SIZE`: the largest
//! value of each variant (longest names, widest integers, fullest lists) is
//! built and encoded, and must round-trip.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::devices::{
    self, BatchWrite, ConsoleChunk, DeviceKind, INPUT_CHUNK, IrqEvent, MAX_BATCH, OUTPUT_CHUNK,
    WaitedAccess,
};
use ipc::ioreq::{self, ClientId};
use ipc::syscall::MAX_VCPUS;
use ipc::vm::{
    self, CreateOptions, LIST_PAGE, VcpuInfo, VcpuState, VmInfo, VmKind, VmState, VmStats,
};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, WireName, decode, encode};
use serde::{Serialize, de::DeserializeOwned};

fn longest_cmdline() -> vm::WireCmdline {
    let mut line = vm::WireCmdline::new();
    while line.push('z').is_ok() {}
    assert_eq!(line.len(), vm::MAX_WIRE_CMDLINE);
    line
}

fn longest_name() -> WireName {
    let mut name = WireName::new();
    while name.push('z').is_ok() {}
    assert_eq!(name.len(), name.capacity());
    name
}

/// The largest error on the wire.
fn widest_error() -> Error {
    Error::NoFreeSlot { max: u16::MAX }
}

fn widest_info() -> VmInfo {
    VmInfo {
        name: longest_name(),
        id: VmId(u16::MAX),
        kind: VmKind::Dynamic,
        state: VmState::PoweredOff,
        vcpus: u8::MAX,
        mem_mib: u32::MAX,
        disk: Some(u8::MAX),
        generation_id: [0xff; 16],
        generation_id_random: true,
        last_exit: Some(vm::LastExit::Stopped {
            cause: vm::StopCause::UndecodableMmio {
                gpa: u64::MAX,
                insn: u64::MAX,
            },
            pc: u64::MAX,
        }),
        last_exit_uptime_ms: Some(u64::MAX),
    }
}

/// The largest console output answer: the widest sequence numbers and a
/// full chunk.
fn fullest_console_chunk() -> ConsoleChunk {
    let mut bytes = heapless::Vec::new();
    while bytes.push(0xff).is_ok() {}
    assert_eq!(bytes.len(), OUTPUT_CHUNK);
    ConsoleChunk {
        next: u64::MAX,
        lost: u64::MAX,
        bytes,
    }
}

/// A full page of the widest events: the longest name, a stop with the
/// widest cause and time.
fn fullest_event_page() -> vm::EventPage {
    let widest = vm::VmEvent {
        seq: u64::MAX,
        name: longest_name(),
        change: vm::VmChange::Exited {
            exit: vm::LastExit::Stopped {
                cause: vm::StopCause::UndecodableMmio {
                    gpa: u64::MAX,
                    insn: u64::MAX,
                },
                pc: u64::MAX,
            },
            uptime_ms: Some(u64::MAX),
        },
        state: VmState::PoweredOff,
    };
    let mut events = heapless::Vec::new();
    while events.push(widest.clone()).is_ok() {}
    assert_eq!(events.len(), vm::EVENTS_PAGE);
    vm::EventPage {
        events,
        next: u64::MAX,
        lost: u64::MAX,
        incarnation: u32::MAX,
    }
}

/// A full `WriteBatch` of the widest writes.
fn fullest_batch() -> heapless::Vec<BatchWrite, MAX_BATCH> {
    let widest = BatchWrite {
        space: Space::PciConfig,
        addr: u64::MAX,
        size: u8::MAX,
        value: u64::MAX,
    };
    let mut writes = heapless::Vec::new();
    while writes.push(widest).is_ok() {}
    assert_eq!(writes.len(), MAX_BATCH);
    writes
}

fn assert_fits<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(msg: T) -> usize {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let bytes = encode(&msg, &mut buf).unwrap_or_else(|e| panic!("{msg:?} does not fit: {e}"));
    let len = bytes.len();
    assert_eq!(decode::<T>(bytes), Ok(msg));
    len
}

#[test]
fn every_vm_message_fits() {
    let n = longest_name;
    let options = CreateOptions {
        template: Some(n()),
        image: Some(n()),
        mem_mib: Some(u32::MAX),
        vcpus: Some(u8::MAX),
        kernel: Some(n()),
        initrd: Some(n()),
        cmdline: Some(longest_cmdline()),
        disk: Some(u8::MAX),
    };
    for msg in [
        vm::Request::Create { name: n(), options },
        vm::Request::Start { name: n() },
        vm::Request::Pause { name: n() },
        vm::Request::Resume { name: n() },
        vm::Request::Reset {
            name: n(),
            new_generation_id: true,
        },
        vm::Request::Shutdown { name: n() },
        vm::Request::Destroy { name: n() },
        vm::Request::Clone {
            source: n(),
            name: n(),
        },
        vm::Request::List { from: u16::MAX },
        vm::Request::Info { name: n() },
        vm::Request::ConsoleInput {
            name: n(),
            port: vm::ConsolePort::Virtio,
            bytes: heapless::Vec::from_slice(&[0xff; vm::CONSOLE_INPUT_CHUNK]).unwrap(),
        },
        vm::Request::ConsoleOutput {
            name: n(),
            from: u64::MAX,
        },
        vm::Request::Stats { name: n() },
        vm::Request::Events { from: u64::MAX },
    ] {
        assert_fits(msg);
    }
    let mut vms = heapless::Vec::new();
    while vms.push(widest_info()).is_ok() {}
    assert_eq!(vms.len(), LIST_PAGE);
    let full_page = assert_fits(vm::Response::List {
        vms,
        next: Some(u16::MAX),
    });
    // The page size is chosen to use the buffer well, not just to fit.
    assert!(
        full_page > MAX_MESSAGE_SIZE / 2,
        "a full list page is only {full_page} bytes"
    );
    assert_fits(vm::Response::Ok);
    assert_fits(vm::Response::Info(widest_info()));
    assert_fits(vm::Response::Ended(vm::LastExit::Stopped {
        cause: vm::StopCause::UnhandledException {
            code: u64::MAX,
            value: u64::MAX,
        },
        pc: u64::MAX,
    }));
    assert_fits(vm::Response::Err(widest_error()));
    assert_fits(vm::Response::Events(fullest_event_page()));
    assert_fits(vm::Response::ConsoleOutput(fullest_console_chunk()));
    assert_fits(vm::Response::Stats(VmStats {
        device_exits: u64::MAX,
        hypercall_exits: u64::MAX,
        wait_exits: u64::MAX,
        interrupt_exits: u64::MAX,
        other_exits: u64::MAX,
        ioreq_round_trips: u64::MAX,
        service_ns: u64::MAX,
        posted_writes: u64::MAX,
        net: Some(devices::NetCounters {
            sent: u64::MAX,
            received: u64::MAX,
            tx_dropped: u64::MAX,
            rx_dropped: u64::MAX,
        }),
        vcpus: heapless::Vec::from_slice(
            &[VcpuInfo {
                state: VcpuState::Held,
                exits: u64::MAX,
                round_trips: u64::MAX,
                cpu: Some(u8::MAX),
            }; MAX_VCPUS],
        )
        .unwrap(),
    }));
    assert_fits(devices::Response::Net(devices::NetCounters {
        sent: u64::MAX,
        received: u64::MAX,
        tx_dropped: u64::MAX,
        rx_dropped: u64::MAX,
    }));
    // Every devices answer on the guest I/O path is a `devices::Response`
    // moved through the ioreq service: a console chunk of 384 bytes made
    // each one 400 bytes and cost ~600 instructions per UART access
    // (cargo xtask bench); a reader takes several small chunks instead.
    let size = core::mem::size_of::<devices::Response>();
    assert!(size <= 96, "devices::Response is {size} bytes in memory");
}

#[test]
fn every_ioreq_message_fits() {
    let vm = VmId(u16::MAX);
    let client = ClientId(u16::MAX);
    for msg in [
        ioreq::Request::AttachVm { vm, vcpus: u8::MAX },
        ioreq::Request::DetachVm { vm },
        ioreq::Request::RegisterRange {
            vm,
            client,
            space: Space::PciConfig,
            start: u64::MAX,
            len: u64::MAX,
        },
        ioreq::Request::UnregisterClient { vm, client },
        ioreq::Request::SetDefaultClient { vm, client },
        ioreq::Request::Dispatch { vm },
        ioreq::Request::Complete {
            vm,
            vcpu: u8::MAX,
            value: u64::MAX,
        },
        ioreq::Request::PostWrites {
            vm,
            space: Space::PciConfig,
            start: u64::MAX,
            len: u64::MAX,
        },
    ] {
        assert_fits(msg);
    }
    assert_fits(ioreq::Response::Ok);
    assert_fits(ioreq::Response::Dispatched { count: u8::MAX });
    assert_fits(ioreq::Response::Err(widest_error()));
}

#[test]
fn every_devices_message_fits() {
    let vm = VmId(u16::MAX);
    let mut bytes = heapless::Vec::new();
    while bytes.push(0xff).is_ok() {}
    assert_eq!(bytes.len(), INPUT_CHUNK);
    for msg in [
        devices::Request::AddVm {
            vm,
            name: longest_name(),
        },
        devices::Request::RemoveVm { vm },
        devices::Request::Read {
            vm,
            space: Space::PciConfig,
            addr: u64::MAX,
            size: u8::MAX,
        },
        devices::Request::Write {
            vm,
            space: Space::PciConfig,
            addr: u64::MAX,
            size: u8::MAX,
            value: u64::MAX,
        },
        devices::Request::Attach {
            vm,
            device: DeviceKind::VmGenId,
            space: Space::PciConfig,
            base: u64::MAX,
            irq: u32::MAX,
        },
        devices::Request::Attach {
            vm,
            device: DeviceKind::VirtioBlk { disk: u8::MAX },
            space: Space::PciConfig,
            base: u64::MAX,
            irq: u32::MAX,
        },
        devices::Request::Detach {
            vm,
            space: Space::PciConfig,
            base: u64::MAX,
        },
        devices::Request::Input {
            vm,
            port: devices::ConsolePort::Virtio,
            bytes,
        },
        devices::Request::SetGenerationId { vm, id: [0xff; 16] },
        devices::Request::ConsoleRead { vm, from: u64::MAX },
        devices::Request::WriteBatch {
            vm,
            writes: fullest_batch(),
            then: Some(WaitedAccess {
                space: Space::PciConfig,
                addr: u64::MAX,
                size: u8::MAX,
                write: Some(u64::MAX),
            }),
        },
    ] {
        assert_fits(msg);
    }
    assert_fits(devices::Response::Ok);
    assert_fits(devices::Response::Value(u64::MAX));
    assert_fits(devices::Response::Err(widest_error()));
    assert_fits(devices::Response::Console(fullest_console_chunk()));
    assert_fits(IrqEvent::SetLevel {
        vm,
        irq: u32::MAX,
        asserted: true,
    });
}

#[test]
fn encode_refuses_a_buffer_too_small() {
    let mut buf = [0u8; 4];
    let msg = vm::Request::Info {
        name: longest_name(),
    };
    assert_eq!(
        encode(&msg, &mut buf).map(|b| b.len()),
        Err(Error::MessageTooLarge)
    );
}

#[test]
fn decode_refuses_more_than_a_message() {
    let bytes = [0u8; MAX_MESSAGE_SIZE + 1];
    assert_eq!(decode::<vm::Response>(&bytes), Err(Error::MessageTooLarge));
}

#[test]
fn wire_name_refuses_text_that_does_not_fit() {
    let long = "a".repeat(33);
    assert_eq!(ipc::wire_name(&long), Err(Error::InvalidName));
    assert_eq!(ipc::wire_name(&long[..32]).map(|n| n.len()), Ok(32));
}
