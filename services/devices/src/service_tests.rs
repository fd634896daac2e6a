//! Tests of the device service: every request, every refusal, console
//! lines and interrupt reports.
#![allow(
    clippy::cast_possible_truncation,
    reason = "tests narrow small known constants and split guest addresses into register halves"
)]

use std::string::String;
use std::vec::Vec;

use ipc::devices::{
    BatchWrite, DeviceKind, INPUT_CHUNK, IrqEvent, MAX_BATCH, Request, Response, WaitedAccess,
};
use ipc::{Error, Space, VmId, wire_name};

use super::*;
use crate::testing::{CountingEntropy, FakeRam, GuestQueue, Irqs, Lines, Rams};

type Service = DeviceService<Lines, Irqs, Rams, CountingEntropy>;

const VM0: VmId = VmId(0);
const VM1: VmId = VmId(1);
const COM1: u64 = 0x3f8;
const UART_MMIO: u64 = 0x1000_0000;
const VIRTIO: u64 = 0x1000_1000;
const RAM: u64 = 0x8000_0000;

fn service() -> Service {
    DeviceService::new(
        Lines::default(),
        Irqs::default(),
        Rams::default(),
        CountingEntropy::default(),
    )
}

fn add(service: &mut Service, vm: VmId, name: &str) -> Response {
    service.handle(Request::AddVm {
        vm,
        name: wire_name(name).unwrap(),
    })
}

fn attach(
    service: &mut Service,
    vm: VmId,
    device: DeviceKind,
    space: Space,
    base: u64,
    irq: u32,
) -> Response {
    service.handle(Request::Attach {
        vm,
        device,
        space,
        base,
        irq,
    })
}

fn read(service: &mut Service, vm: VmId, space: Space, addr: u64, size: u8) -> Response {
    service.handle(Request::Read {
        vm,
        space,
        addr,
        size,
    })
}

fn write(
    service: &mut Service,
    vm: VmId,
    space: Space,
    addr: u64,
    size: u8,
    value: u64,
) -> Response {
    service.handle(Request::Write {
        vm,
        space,
        addr,
        size,
        value,
    })
}

fn input(service: &mut Service, vm: VmId, bytes: &[u8]) -> Response {
    input_to(service, vm, ConsolePort::Serial, bytes)
}

fn input_to(service: &mut Service, vm: VmId, port: ConsolePort, bytes: &[u8]) -> Response {
    service.handle(Request::Input {
        vm,
        port,
        bytes: heapless::Vec::from_slice(bytes).unwrap(),
    })
}

fn with_uart() -> Service {
    let mut s = service();
    assert_eq!(add(&mut s, VM0, "vm0"), Response::Ok);
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::Uart16550, Space::Pio, COM1, 4),
        Response::Ok
    );
    s
}

fn level(vm: VmId, irq: u32, asserted: bool) -> IrqEvent {
    IrqEvent::SetLevel { vm, irq, asserted }
}

#[test]
fn add_vm_refuses_duplicate_ids_and_names_and_names_that_break_the_rule() {
    let mut s = service();
    assert_eq!(add(&mut s, VM0, "vm0"), Response::Ok);
    assert_eq!(add(&mut s, VM0, "other"), Response::Err(Error::VmExists));
    assert_eq!(add(&mut s, VM1, "vm0"), Response::Err(Error::DuplicateName));
    assert_eq!(add(&mut s, VM1, ""), Response::Err(Error::InvalidName));
    assert_eq!(add(&mut s, VM1, "vm1"), Response::Ok);
    // The name heads the VM's console lines, written as is: one that could
    // forge a line (found by the `devices_service` fuzz target: a NUL) is
    // refused like any name that breaks the rule.
    for bad in [
        "\0",
        "vm0\nmica: forged",
        "\x1b[2J",
        "a b",
        "a|b",
        &"a".repeat(32),
    ] {
        assert_eq!(
            add(&mut s, VmId(2), bad),
            Response::Err(Error::InvalidName),
            "{bad:?}"
        );
    }
    assert_eq!(add(&mut s, VmId(2), &"a".repeat(31)), Response::Ok);
}

#[test]
fn add_vm_refuses_beyond_the_table() {
    let mut s = service();
    for i in 0..MAX_VMS {
        let name = std::format!("vm{i}");
        assert_eq!(add(&mut s, VmId(i as u16), &name), Response::Ok);
    }
    assert_eq!(
        add(&mut s, VmId(99), "late"),
        Response::Err(Error::NoFreeSlot {
            max: MAX_VMS as u16
        })
    );
}

#[test]
fn remove_vm_forgets_its_devices_and_name() {
    let mut s = with_uart();
    assert_eq!(s.handle(Request::RemoveVm { vm: VM0 }), Response::Ok);
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 1),
        Response::Err(Error::UnknownVm)
    );
    assert_eq!(
        s.handle(Request::RemoveVm { vm: VM0 }),
        Response::Err(Error::UnknownVm)
    );
    assert_eq!(
        add(&mut s, VM1, "vm0"),
        Response::Ok,
        "the name is free again"
    );
    assert_eq!(
        read(&mut s, VM1, Space::Pio, COM1, 1),
        Response::Err(Error::NoDevice)
    );
}

#[test]
fn remove_vm_flushes_a_partial_line_and_lowers_asserted_lines() {
    let mut s = with_uart();
    write(&mut s, VM0, Space::Pio, COM1 + 1, 1, 0x02); // ETBEI: line up
    write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b'$'));
    s.handle(Request::RemoveVm { vm: VM0 });
    assert_eq!(s.console().0, ["vm0 | $"]);
    assert_eq!(s.irq_sink().0.last(), Some(&level(VM0, 4, false)));
}

#[test]
fn attach_places_models_and_refuses_overlaps() {
    let mut s = with_uart();
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::Uart16550, Space::Pio, COM1 + 4, 4),
        Response::Err(Error::DeviceExists)
    );
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::VmGenId, Space::Pio, COM1 - 0x1f, 5),
        Response::Err(Error::DeviceExists)
    );
    // The same addresses in the other space, or in another VM, are free.
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::Uart16550, Space::Mmio, COM1, 4),
        Response::Ok
    );
    add(&mut s, VM1, "vm1");
    assert_eq!(
        attach(&mut s, VM1, DeviceKind::Uart16550, Space::Pio, COM1, 4),
        Response::Ok
    );
}

#[test]
fn attach_refuses_unknown_vm_pci_space_wrapping_ranges_and_full_buses() {
    let mut s = with_uart();
    assert_eq!(
        attach(&mut s, VM1, DeviceKind::Uart16550, Space::Pio, 0x2f8, 3),
        Response::Err(Error::UnknownVm)
    );
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::Uart16550, Space::PciConfig, 0, 3),
        Response::Err(Error::InvalidArgument)
    );
    assert_eq!(
        attach(
            &mut s,
            VM0,
            DeviceKind::VirtioRng,
            Space::Mmio,
            u64::MAX - 0x10,
            3
        ),
        Response::Err(Error::InvalidRange)
    );
    for i in 0..MAX_DEVICES_PER_BUS as u64 {
        assert_eq!(
            attach(&mut s, VM0, DeviceKind::Uart16550, Space::Mmio, i * 8, 3),
            Response::Ok
        );
    }
    assert_eq!(
        attach(&mut s, VM0, DeviceKind::Uart16550, Space::Mmio, 0x1000, 3),
        Response::Err(Error::TableFull)
    );
}

#[test]
fn detach_removes_by_base_only() {
    let mut s = with_uart();
    let detach = |s: &mut Service, vm, space, base| s.handle(Request::Detach { vm, space, base });
    assert_eq!(
        detach(&mut s, VM0, Space::Pio, COM1 + 1),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        detach(&mut s, VM0, Space::Mmio, COM1),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        detach(&mut s, VM0, Space::PciConfig, COM1),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        detach(&mut s, VM1, Space::Pio, COM1),
        Response::Err(Error::UnknownVm)
    );
    assert_eq!(detach(&mut s, VM0, Space::Pio, COM1), Response::Ok);
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 1),
        Response::Err(Error::NoDevice)
    );
}

#[test]
fn detach_lowers_an_asserted_line() {
    let mut s = with_uart();
    write(&mut s, VM0, Space::Pio, COM1 + 1, 1, 0x02);
    assert_eq!(s.irq_sink().0, [level(VM0, 4, true)]);
    s.handle(Request::Detach {
        vm: VM0,
        space: Space::Pio,
        base: COM1,
    });
    assert_eq!(s.irq_sink().0, [level(VM0, 4, true), level(VM0, 4, false)]);
}

#[test]
fn reads_and_writes_reach_the_device_at_its_offset() {
    let mut s = with_uart();
    assert_eq!(
        write(&mut s, VM0, Space::Pio, COM1 + 7, 1, 0x5a),
        Response::Ok
    );
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1 + 7, 1),
        Response::Value(0x5a)
    );
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1 + 5, 1),
        Response::Value(0x60)
    );
}

#[test]
fn accesses_are_refused_with_the_right_error() {
    let mut s = with_uart();
    assert_eq!(
        read(&mut s, VM1, Space::Pio, COM1, 1),
        Response::Err(Error::UnknownVm)
    );
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1 + 8, 1),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, COM1, 1),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        read(&mut s, VM0, Space::PciConfig, COM1, 1),
        Response::Err(Error::NoDevice)
    );
    for size in [0u8, 3, 5, 16] {
        assert_eq!(
            read(&mut s, VM0, Space::Pio, COM1, size),
            Response::Err(Error::BadAccess)
        );
        assert_eq!(
            write(&mut s, VM0, Space::Pio, COM1, size, 0),
            Response::Err(Error::BadAccess)
        );
    }
    // The UART only takes byte accesses.
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 2),
        Response::Err(Error::BadAccess)
    );
    // Straddling the device's end.
    attach(&mut s, VM0, DeviceKind::VmGenId, Space::Mmio, 0x1000, 5);
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, 0x101c, 8),
        Response::Err(Error::BadAccess)
    );
    assert_eq!(
        write(&mut s, VM0, Space::Mmio, 0x1000, 8, 1),
        Response::Err(Error::BadAccess)
    );
    assert!(s.console().0.is_empty());
}

/// VM0's UART on COM1 (`with_uart`) and VM1 (`web-1`) with one in MMIO.
fn with_two_uarts() -> Service {
    let mut s = with_uart();
    add(&mut s, VM1, "web-1");
    attach(
        &mut s,
        VM1,
        DeviceKind::Uart16550,
        Space::Mmio,
        UART_MMIO,
        10,
    );
    s
}

#[test]
fn uart_output_becomes_named_lines() {
    let mut s = with_two_uarts();
    for &b in b"hello\r\n" {
        write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b));
    }
    for &b in b"hi\nthere" {
        write(&mut s, VM1, Space::Mmio, UART_MMIO, 1, u64::from(b));
    }
    assert_eq!(s.console().0, ["vm0 | hello", "web-1 | hi"]);
}

#[test]
fn with_the_focus_on_one_vm_the_others_lines_are_held_until_it_goes() {
    let mut s = with_two_uarts();
    let focus = |vm| Request::ConsoleFocus { vm };
    assert_eq!(s.handle(focus(Some(VM1))), Response::Ok);
    for &b in b"tick 1\n" {
        write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b));
    }
    for &b in b"$ ls\n" {
        write(&mut s, VM1, Space::Mmio, UART_MMIO, 1, u64::from(b));
    }
    assert_eq!(s.console().0, ["web-1 | $ ls"]);
    // The held line is in vm0's ring all the same.
    assert_eq!(
        console_read(&mut s, VM0, 0),
        console_chunk(7, 0, b"tick 1\n")
    );
    assert_eq!(s.handle(focus(None)), Response::Ok);
    assert_eq!(
        s.console().0[1..],
        [
            "devices: the other VMs' lines held while the console was attached to web-1 (1):",
            "vm0 | tick 1"
        ]
    );
    assert_eq!(
        s.handle(focus(Some(VmId(9)))),
        Response::Err(Error::UnknownVm)
    );
    // Removing the focused VM shows every VM's lines again.
    assert_eq!(s.handle(focus(Some(VM1))), Response::Ok);
    write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b'\n'));
    assert_eq!(s.console().0.len(), 3);
    s.handle(Request::RemoveVm { vm: VM1 });
    assert_eq!(s.console().0.last().map(String::as_str), Some("vm0 | "));
    write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b'\n'));
    assert_eq!(s.console().0.len(), 6);
}

fn batch(space: Space, addr: u64, bytes: &[u8]) -> heapless::Vec<BatchWrite, MAX_BATCH> {
    bytes
        .iter()
        .map(|&b| BatchWrite {
            space,
            addr,
            size: 1,
            value: u64::from(b),
        })
        .collect()
}

/// A batch of posted writes is emulated write by write, in order: the
/// bytes come out as the same lines as single writes would make.
#[test]
fn a_write_batch_is_each_write_in_order() {
    let mut s = with_two_uarts();
    for part in [&b"hel"[..], b"lo\r\nwor", b"ld\n"] {
        let writes = batch(Space::Pio, COM1, part);
        let request = Request::WriteBatch {
            vm: VM0,
            writes,
            then: None,
        };
        assert_eq!(s.handle(request), Response::Ok);
    }
    assert_eq!(s.console().0, ["vm0 | hello", "vm0 | world"]);
    let request = Request::WriteBatch {
        vm: VM0,
        writes: heapless::Vec::new(),
        then: None,
    };
    assert_eq!(s.handle(request), Response::Ok);
}

/// The access after the posted writes sees them: a scratch register
/// written in the batch reads back in the same message.
#[test]
fn the_waited_access_comes_after_the_writes_and_is_the_answer() {
    let mut s = with_two_uarts();
    let mut writes = batch(Space::Pio, COM1, b"x");
    writes.extend(batch(Space::Pio, COM1 + 7, &[0x5a]));
    let then = |write| {
        Some(WaitedAccess {
            space: Space::Pio,
            addr: COM1 + 7,
            size: 1,
            write,
        })
    };
    let request = Request::WriteBatch {
        vm: VM0,
        writes,
        then: then(None),
    };
    assert_eq!(s.handle(request), Response::Value(0x5a));
    let request = Request::WriteBatch {
        vm: VM0,
        writes: heapless::Vec::new(),
        then: then(Some(0x33)),
    };
    assert_eq!(s.handle(request), Response::Ok);
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1 + 7, 1),
        Response::Value(0x33)
    );
}

/// A posted write that fails does not stop the others and is only
/// counted (the guest was told it was done); the waited access still
/// answers, with its own error if it fails.
#[test]
fn a_failed_posted_write_is_counted_and_the_rest_go_on() {
    let mut s = with_two_uarts();
    let mut writes = batch(Space::Pio, COM1, b"a");
    for (addr, size) in [(0x2f8, 1), (COM1, 3)] {
        let bad = BatchWrite {
            space: Space::Pio,
            addr,
            size,
            value: 0,
        };
        writes.push(bad).unwrap();
    }
    writes.extend(batch(Space::Pio, COM1, b"b\n"));
    let lsr = Some(WaitedAccess {
        space: Space::Pio,
        addr: COM1 + 5,
        size: 1,
        write: None,
    });
    let request = Request::WriteBatch {
        vm: VM0,
        writes,
        then: lsr,
    };
    assert_eq!(s.handle(request), Response::Value(0x60));
    assert_eq!(s.console().0, ["vm0 | ab"]);
    assert_eq!(s.posted_failures(), 2);
    let request = Request::WriteBatch {
        vm: VmId(7),
        writes: batch(Space::Pio, COM1, b"x"),
        then: lsr,
    };
    assert_eq!(s.handle(request), Response::Err(Error::UnknownVm));
}

fn console_read(s: &mut Service, vm: VmId, from: u64) -> Response {
    s.handle(Request::ConsoleRead { vm, from })
}

fn console_chunk(next: u64, lost: u64, bytes: &[u8]) -> Response {
    Response::Console(ipc::devices::ConsoleChunk {
        next,
        lost,
        bytes: heapless::Vec::from_slice(bytes).unwrap(),
    })
}

#[path = "service_io_tests.rs"]
mod io;

#[path = "service_batch_tests.rs"]
mod batch;
