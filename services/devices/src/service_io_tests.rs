//! Tests of the device service's console output reads, console input,
//! generation IDs and the virtio models through the service.
#![allow(
    clippy::cast_possible_truncation,
    reason = "tests narrow small known constants and split guest addresses into register halves"
)]

use super::*;

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
