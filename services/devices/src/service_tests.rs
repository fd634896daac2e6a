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
use crate::testing::{CountingEntropy, FakeRam, GuestQueue};

#[derive(Default)]
struct Lines(Vec<String>);

impl ConsoleSink for Lines {
    fn write_line(&mut self, line: &[u8]) {
        self.0.push(String::from_utf8_lossy(line).into_owned());
    }
}

#[derive(Default)]
struct Irqs(Vec<IrqEvent>);

impl IrqSink for Irqs {
    fn irq_event(&mut self, event: IrqEvent) {
        self.0.push(event);
    }
}

#[derive(Default)]
struct Rams(Vec<(VmId, FakeRam)>);

impl GuestMemoryProvider for Rams {
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
        self.0
            .iter_mut()
            .find(|(id, _)| *id == vm)
            .map(|(_, ram)| ram as &mut dyn GuestMemory)
    }
}

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

#[test]
fn console_read_returns_each_vms_raw_output_from_a_sequence_number() {
    let mut s = with_two_uarts();
    for &b in b"\x1b[32mok\x1b[0m\r\n" {
        write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b));
    }
    write(&mut s, VM1, Space::Mmio, UART_MMIO, 1, u64::from(b'x'));
    assert_eq!(
        console_read(&mut s, VM0, 0),
        console_chunk(13, 0, b"\x1b[32mok\x1b[0m\r\n")
    );
    assert_eq!(
        console_read(&mut s, VM0, 5),
        console_chunk(13, 0, b"ok\x1b[0m\r\n")
    );
    assert_eq!(console_read(&mut s, VM0, 13), console_chunk(13, 0, b""));
    assert_eq!(console_read(&mut s, VM1, 0), console_chunk(1, 0, b"x"));
    // The hypervisor console gets the line with the escapes shown, not
    // sent to the operator's terminal.
    assert_eq!(s.console().0, ["vm0 | \\x1b[32mok\\x1b[0m"]);
    assert_eq!(
        console_read(&mut s, VmId(7), 0),
        Response::Err(Error::UnknownVm)
    );
}

#[test]
fn console_read_answers_a_chunk_at_a_time_and_counts_overwritten_output() {
    use crate::console_ring::CONSOLE_RING;
    use ipc::devices::OUTPUT_CHUNK;
    let mut s = with_uart();
    let total = CONSOLE_RING + 100;
    for n in 0..total {
        write(
            &mut s,
            VM0,
            Space::Pio,
            COM1,
            1,
            u64::from(b'a' + (n % 26) as u8),
        );
    }
    let Response::Console(chunk) = console_read(&mut s, VM0, 0) else {
        panic!("no console chunk");
    };
    assert_eq!(chunk.lost, 100);
    assert_eq!(chunk.bytes.len(), OUTPUT_CHUNK);
    assert_eq!(chunk.bytes[0], b'a' + (100 % 26) as u8);
    assert_eq!(chunk.next, 100 + OUTPUT_CHUNK as u64);
    // A reader ahead of the output (the service restarted) learns where
    // it continues.
    assert_eq!(
        console_read(&mut s, VM0, u64::MAX),
        console_chunk(total as u64, 0, b"")
    );
}

#[test]
fn a_vm_whose_devices_are_rebuilt_continues_its_console_numbering() {
    let mut s = with_uart();
    for &b in b"one\n" {
        write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b));
    }
    // A reset: the vm-manager removes the VM's devices and adds them again.
    assert_eq!(s.handle(Request::RemoveVm { vm: VM0 }), Response::Ok);
    assert_eq!(
        console_read(&mut s, VM0, 0),
        Response::Err(Error::UnknownVm)
    );
    add(&mut s, VM0, "vm0");
    attach(&mut s, VM0, DeviceKind::Uart16550, Space::Pio, COM1, 4);
    for &b in b"two\n" {
        write(&mut s, VM0, Space::Pio, COM1, 1, u64::from(b));
    }
    assert_eq!(console_read(&mut s, VM0, 4), console_chunk(8, 0, b"two\n"));
    assert_eq!(console_read(&mut s, VM0, 0), console_chunk(8, 4, b"two\n"));
}

#[test]
fn input_reaches_the_uart_and_raises_its_interrupt() {
    let mut s = with_uart();
    write(&mut s, VM0, Space::Pio, COM1 + 1, 1, 0x01); // ERBFI
    assert!(s.irq_sink().0.is_empty());
    assert_eq!(input(&mut s, VM0, b"ok"), Response::Ok);
    assert_eq!(s.irq_sink().0, [level(VM0, 4, true)]);
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 1),
        Response::Value(u64::from(b'o'))
    );
    assert_eq!(s.irq_sink().0.len(), 1, "still data: no new event");
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 1),
        Response::Value(u64::from(b'k'))
    );
    assert_eq!(s.irq_sink().0, [level(VM0, 4, true), level(VM0, 4, false)]);
}

#[test]
fn input_beyond_the_uart_fifo_waits_for_the_guest_to_read() {
    let mut s = with_uart();
    let text: Vec<u8> = (0..INPUT_CHUNK as u8).collect();
    input(&mut s, VM0, &text);
    input(&mut s, VM0, &text);
    let mut received = Vec::new();
    loop {
        let lsr = read(&mut s, VM0, Space::Pio, COM1 + 5, 1);
        if lsr == Response::Value(0x60) {
            break;
        }
        match read(&mut s, VM0, Space::Pio, COM1, 1) {
            Response::Value(v) => received.push(v as u8),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        received.len(),
        2 * INPUT_CHUNK,
        "nothing lost without FIFOs"
    );
    assert_eq!(&received[..INPUT_CHUNK], &text[..]);
    assert_eq!(s.dropped_input(VM0), Ok(0));
}

#[test]
fn input_beyond_the_backlog_is_dropped_and_counted() {
    let mut s = with_uart();
    let text = [b'x'; INPUT_CHUNK];
    for _ in 0..(INPUT_BACKLOG / INPUT_CHUNK + 1) {
        assert_eq!(input(&mut s, VM0, &text), Response::Ok);
    }
    // The UART holds one byte (FIFOs off), the backlog the rest.
    assert_eq!(s.dropped_input(VM0), Ok((INPUT_CHUNK - 1) as u64));
    assert_eq!(s.dropped_input(VM1), Err(Error::UnknownVm));
}

#[test]
fn input_is_refused_without_a_console_device_or_vm() {
    let mut s = service();
    add(&mut s, VM0, "vm0");
    assert_eq!(input(&mut s, VM0, b"x"), Response::Err(Error::NoDevice));
    assert_eq!(input(&mut s, VM1, b"x"), Response::Err(Error::UnknownVm));
    let full = [b'x'; INPUT_CHUNK];
    assert_eq!(input(&mut s, VM0, &full), Response::Err(Error::NoDevice));
}

#[test]
fn generation_id_is_random_readable_and_replaceable() {
    let mut s = service();
    add(&mut s, VM0, "vm0");
    assert_eq!(s.set_generation_id(VM0, 1), Err(Error::NoDevice));
    assert_eq!(s.set_generation_id(VM1, 1), Err(Error::UnknownVm));
    attach(&mut s, VM0, DeviceKind::VmGenId, Space::Mmio, 0x1000, 7);
    let initial = s.generation_id(VM0).unwrap();
    assert_ne!(initial, 0, "drawn from the entropy source");
    let low = read(&mut s, VM0, Space::Mmio, 0x1000, 8);
    assert_eq!(low, Response::Value(initial as u64));
    // The host's first ID is the boot ID; the next one is a change.
    s.set_generation_id(VM0, 0x1234).unwrap();
    assert!(s.irq_sink().0.is_empty(), "{:?}", s.irq_sink().0);
    s.set_generation_id(VM0, 0xabcd).unwrap();
    assert_eq!(s.irq_sink().0, [level(VM0, 7, true)]);
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, 0x1000, 4),
        Response::Value(0xabcd)
    );
    assert_eq!(
        write(&mut s, VM0, Space::Mmio, 0x1000, 4, 0),
        Response::Err(Error::BadAccess)
    );
    assert_eq!(write(&mut s, VM0, Space::Mmio, 0x1010, 4, 1), Response::Ok);
    assert_eq!(s.irq_sink().0, [level(VM0, 7, true), level(VM0, 7, false)]);
}

#[test]
fn set_generation_id_request_gives_the_guest_the_new_id() {
    let mut s = service();
    let id: [u8; 16] = core::array::from_fn(|i| 0x10 + i as u8);
    let request = |vm| Request::SetGenerationId { vm, id };
    assert_eq!(s.handle(request(VM0)), Response::Err(Error::UnknownVm));
    add(&mut s, VM0, "vm0");
    assert_eq!(s.handle(request(VM0)), Response::Err(Error::NoDevice));
    attach(&mut s, VM0, DeviceKind::VmGenId, Space::Mmio, 0x1000, 7);
    let boot = Request::SetGenerationId {
        vm: VM0,
        id: [1; 16],
    };
    assert_eq!(s.handle(boot), Response::Ok);
    assert!(s.irq_sink().0.is_empty(), "the boot ID is no change");
    assert_eq!(s.handle(request(VM0)), Response::Ok);
    // The guest reads the 16 bytes back in the order they were given.
    let low = u64::from_le_bytes(id[..8].try_into().unwrap());
    let high = u64::from_le_bytes(id[8..].try_into().unwrap());
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, 0x1000, 8),
        Response::Value(low)
    );
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, 0x1008, 8),
        Response::Value(high)
    );
    // The change notification is a pulse: raised, then lowered once the
    // next access found it latched.
    assert_eq!(
        s.irq_sink().0[..],
        [level(VM0, 7, true), level(VM0, 7, false)]
    );
}

/// Brings up a virtio device at VIRTIO through the service as a guest would.
fn bring_up_virtio(s: &mut Service, queues: u32) -> Vec<GuestQueue> {
    let w = |s: &mut Service, off: u64, v: u32| {
        assert_eq!(
            write(s, VM0, Space::Mmio, VIRTIO + off, 4, u64::from(v)),
            Response::Ok
        );
    };
    w(s, 0x70, 1 | 2);
    w(s, 0x24, 1);
    w(s, 0x20, 1);
    w(s, 0x70, 1 | 2 | 8);
    let mut guest_queues = Vec::new();
    for q in 0..queues {
        let queue = GuestQueue::new(RAM + u64::from(q) * 0x4000, 8);
        w(s, 0x30, q);
        w(s, 0x38, 8);
        w(s, 0x80, queue.desc as u32);
        w(s, 0x90, queue.avail as u32);
        w(s, 0xa0, queue.used as u32);
        w(s, 0x44, 1);
        guest_queues.push(queue);
    }
    w(s, 0x70, 1 | 2 | 8 | 4);
    guest_queues
}

fn ram_of(s: &mut Service) -> &mut FakeRam {
    &mut s.memory_provider().0[0].1
}

#[test]
fn virtio_rng_fills_guest_memory_through_the_service() {
    let mut s = service();
    add(&mut s, VM0, "vm0");
    s.memory_provider()
        .0
        .push((VM0, FakeRam::new(RAM, 0x10000)));
    attach(&mut s, VM0, DeviceKind::VirtioRng, Space::Mmio, VIRTIO, 8);
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, VIRTIO + 8, 4),
        Response::Value(4)
    );
    let mut queues = bring_up_virtio(&mut s, 1);
    queues[0].post(ram_of(&mut s), &[(RAM + 0x8000, 4, true)]);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x50, 4, 0);
    assert_eq!(queues[0].used_entry(ram_of(&mut s), 0).1, 4);
    // The entropy source gave 16 bytes to the generation ID draw at attach.
    assert_eq!(ram_of(&mut s).bytes_at(RAM + 0x8000, 4), [17, 18, 19, 20]);
    assert_eq!(s.irq_sink().0, [level(VM0, 8, true)]);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x64, 4, 1);
    assert_eq!(s.irq_sink().0, [level(VM0, 8, true), level(VM0, 8, false)]);
}

#[test]
fn virtio_console_output_and_input_go_through_the_service() {
    let mut s = service();
    add(&mut s, VM0, "vm0");
    s.memory_provider()
        .0
        .push((VM0, FakeRam::new(RAM, 0x10000)));
    attach(
        &mut s,
        VM0,
        DeviceKind::VirtioConsole,
        Space::Mmio,
        VIRTIO,
        9,
    );
    let mut queues = bring_up_virtio(&mut s, 2);
    ram_of(&mut s).write_bytes(RAM + 0x8000, b"booted\n");
    queues[1].post(ram_of(&mut s), &[(RAM + 0x8000, 7, false)]);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x50, 4, 1);
    assert_eq!(s.console().0, ["vm0 | booted"]);
    queues[0].post(ram_of(&mut s), &[(RAM + 0x9000, 8, true)]);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x50, 4, 0);
    assert_eq!(input(&mut s, VM0, b"ls\n"), Response::Ok);
    assert_eq!(ram_of(&mut s).bytes_at(RAM + 0x9000, 3), b"ls\n");
    assert_eq!(queues[0].used_entry(ram_of(&mut s), 0).1, 3);
    assert_eq!(
        console_read(&mut s, VM0, 0),
        console_chunk(7, 0, b"booted\n")
    );
}

#[test]
fn beside_a_uart_the_virtio_port_feeds_the_virtio_console_and_the_serial_port_the_uart() {
    let mut s = with_uart();
    s.memory_provider()
        .0
        .push((VM0, FakeRam::new(RAM, 0x10000)));
    attach(
        &mut s,
        VM0,
        DeviceKind::VirtioConsole,
        Space::Mmio,
        VIRTIO,
        9,
    );
    let mut queues = bring_up_virtio(&mut s, 2);
    queues[0].post(ram_of(&mut s), &[(RAM + 0x9000, 8, true)]);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x50, 4, 0);
    let to = ConsolePort::Virtio;
    assert_eq!(input_to(&mut s, VM0, to, b"hvc\n"), Response::Ok);
    assert_eq!(ram_of(&mut s).bytes_at(RAM + 0x9000, 4), b"hvc\n");
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1 + 5, 1),
        Response::Value(0x60),
        "nothing reached the UART"
    );
    assert_eq!(input(&mut s, VM0, b"u"), Response::Ok);
    assert_eq!(
        read(&mut s, VM0, Space::Pio, COM1, 1),
        Response::Value(u64::from(b'u'))
    );
    // A VM without a virtio console has no virtio port.
    let mut uart_only = with_uart();
    assert_eq!(
        input_to(&mut uart_only, VM0, ConsolePort::Virtio, b"x"),
        Response::Err(Error::NoDevice)
    );
}

#[test]
fn virtio_without_granted_memory_fails_instead_of_panicking() {
    let mut s = service();
    add(&mut s, VM0, "vm0");
    attach(&mut s, VM0, DeviceKind::VirtioRng, Space::Mmio, VIRTIO, 8);
    bring_up_virtio(&mut s, 1);
    write(&mut s, VM0, Space::Mmio, VIRTIO + 0x50, 4, 0);
    assert_eq!(
        read(&mut s, VM0, Space::Mmio, VIRTIO + 0x70, 4),
        Response::Value(0x4f)
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_requests_never_panic(ops in proptest::collection::vec(
        (0u8..7, 0u16..3, 0u8..4, 0u64..0x20, 0u8..10, proptest::prelude::any::<u64>()), 0..100)) {
        let mut s = service();
        let kinds = [DeviceKind::Uart16550, DeviceKind::VirtioConsole, DeviceKind::VirtioRng, DeviceKind::VmGenId];
        for (op, vm, kind, addr, size, value) in ops {
            let vm = VmId(vm);
            let space = if kind % 2 == 0 { Space::Pio } else { Space::Mmio };
            let request = match op {
                0 => Request::AddVm { vm, name: wire_name(&std::format!("v{}", vm.0)).unwrap() },
                1 => Request::RemoveVm { vm },
                2 => Request::Attach { vm, device: kinds[usize::from(kind)], space, base: addr * 8, irq: 1 },
                3 => Request::Detach { vm, space, base: addr * 8 },
                4 => Request::Read { vm, space, addr: addr * 4, size },
                5 => Request::Write { vm, space, addr: addr * 4, size, value },
                _ => Request::Input { vm, port: if value & 1 == 0 { ConsolePort::Serial } else { ConsolePort::Virtio }, bytes: heapless::Vec::from_slice(&value.to_le_bytes()).unwrap() },
            };
            let _ = s.handle(request);
        }
    }
}
