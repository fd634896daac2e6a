//! A device service that dies and starts again finds the registers its
//! predecessor's guests set up (the VM's device-state area, which the
//! kernel keeps), and takes up their virtio queues where the guest left
//! them.

use std::vec::Vec;

use ipc::devices::{DeviceKind, IrqEvent, Request, Response};
use ipc::{Error, Space, VmId, wire_name};

use super::*;
use crate::testing::{CountingEntropy, FakeRam, GuestQueue, Irqs, Lines};

/// One VM's RAM and device-state area, as the kernel keeps them across
/// the service's deaths; counts the area's writes.
struct Kept {
    ram: FakeRam,
    area: Vec<u8>,
    saves: usize,
}

impl Kept {
    fn new() -> Self {
        Self {
            ram: FakeRam::new(RAM, 0x10_0000),
            area: std::vec![0; ipc::syscall::DEVICE_STATE_BYTES],
            saves: 0,
        }
    }
}

impl GuestMemoryProvider for Kept {
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
        (vm == VM).then_some(&mut self.ram as &mut dyn GuestMemory)
    }

    fn save_state(&mut self, vm: VmId, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        assert_eq!(vm, VM);
        self.area[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.saves += 1;
        Ok(())
    }

    fn load_state(&mut self, vm: VmId, offset: usize, out: &mut [u8]) -> Result<(), Error> {
        assert_eq!(vm, VM);
        out.copy_from_slice(&self.area[offset..offset + out.len()]);
        Ok(())
    }
}

type Service = DeviceService<Lines, Irqs, Kept, CountingEntropy>;

const VM: VmId = VmId(2);
const RAM: u64 = 0x8000_0000;
const PLIC: u64 = 0xc00_0000;
const UART: u64 = 0x1000_0000;
const RNG: u64 = 0x1000_1000;
const RNG_IRQ: u32 = 1;
const UART_IRQ: u32 = 10;

/// A service serving `kept`'s VM with the board's devices attached in the
/// vm-manager's order (the PLIC, the UART, virtio-rng).
fn serve(kept: Kept) -> Service {
    let mut s = DeviceService::new(
        Lines::default(),
        Irqs::default(),
        kept,
        CountingEntropy::default(),
    );
    let name = wire_name("vm2").unwrap();
    assert_eq!(s.handle(Request::AddVm { vm: VM, name }), Response::Ok);
    for (device, base, irq) in [
        (DeviceKind::Plic, PLIC, 0),
        (DeviceKind::Uart16550, UART, UART_IRQ),
        (DeviceKind::VirtioRng, RNG, RNG_IRQ),
    ] {
        let attach = Request::Attach {
            vm: VM,
            device,
            space: Space::Mmio,
            base,
            irq,
        };
        assert_eq!(s.handle(attach), Response::Ok);
    }
    s
}

/// The service dies: only what the kernel keeps survives.
fn die(mut s: Service) -> Kept {
    core::mem::replace(s.memory_provider(), Kept::new())
}

fn rd(s: &mut Service, addr: u64, size: u8) -> u64 {
    let read = Request::Read {
        vm: VM,
        space: Space::Mmio,
        addr,
        size,
    };
    match s.handle(read) {
        Response::Value(v) => v,
        other => panic!("read {addr:#x}: {other:?}"),
    }
}

fn wr(s: &mut Service, addr: u64, size: u8, value: u64) {
    let write = Request::Write {
        vm: VM,
        space: Space::Mmio,
        addr,
        size,
        value,
    };
    assert_eq!(s.handle(write), Response::Ok, "write {addr:#x}");
}

/// The guest's driver brings virtio-rng up with one queue of 8 entries.
fn bring_up_rng(s: &mut Service) -> GuestQueue {
    let queue = GuestQueue::new(RAM, 8);
    for (reg, value) in [
        (0x70, 0),
        (0x70, 1),
        (0x70, 3),
        (0x24, 1),
        (0x20, 1),
        (0x70, 0xb),
        (0x30, 0),
        (0x38, 8),
        (0x80, queue.desc),
        (0x90, queue.avail),
        (0xa0, queue.used),
        (0x44, 1),
        (0x70, 0xf),
    ] {
        wr(s, RNG + reg, 4, value);
    }
    queue
}

#[test]
fn a_restarted_service_takes_back_the_registers_and_queues_the_guest_set_up() {
    let mut s = serve(Kept::new());
    // Linux's 8250 and PLIC drivers, and its virtio-rng driver.
    wr(&mut s, UART + 3, 1, 0x03);
    wr(&mut s, UART + 1, 1, 0x01);
    wr(&mut s, PLIC + 4 * u64::from(RNG_IRQ), 4, 1);
    wr(&mut s, PLIC + 4 * u64::from(UART_IRQ), 4, 1);
    wr(&mut s, PLIC + 0x2000, 4, 1 << RNG_IRQ | 1 << UART_IRQ);
    let mut queue = bring_up_rng(&mut s);
    let ram = &mut s.memory_provider().ram;
    queue.post(ram, &[(RAM + 0x8_0000, 8, true)]);
    wr(&mut s, RNG + 0x50, 4, 0);
    assert_eq!(queue.used_idx(&s.memory_provider().ram), 1);

    // The service dies; meanwhile the guest posts another request and
    // notifies a service that is not there.
    let mut kept = die(s);
    queue.post(&mut kept.ram, &[(RAM + 0x8_1000, 8, true)]);
    let mut s = serve(kept);

    assert_eq!(rd(&mut s, UART + 1, 1), 0x01, "IER");
    assert_eq!(rd(&mut s, UART + 3, 1), 0x03, "LCR");
    assert_eq!(rd(&mut s, PLIC + 4 * u64::from(RNG_IRQ), 4), 1);
    assert_eq!(rd(&mut s, PLIC + 0x2000, 4), 1 << RNG_IRQ | 1 << UART_IRQ);
    assert_eq!(rd(&mut s, RNG + 0x70, 4), 0xf, "the driver's status");
    assert_eq!(rd(&mut s, RNG + 0x44, 4), 1, "queue 0 ready");
    let ram = &s.memory_provider().ram;
    assert_eq!(
        queue.used_idx(ram),
        2,
        "the request posted meanwhile is served"
    );
    assert_eq!(queue.used_entry(ram, 1).1, 8);
    assert_eq!(rd(&mut s, RNG + 0x60, 4), 1, "and the guest is told");
    assert!(
        s.irq_sink().0.contains(&IrqEvent::SetLevel {
            vm: VM,
            irq: RNG_IRQ,
            asserted: true
        }),
        "its line is raised"
    );
    // The queue goes on from there.
    let ram = &mut s.memory_provider().ram;
    queue.post(ram, &[(RAM + 0x8_2000, 4, true)]);
    wr(&mut s, RNG + 0x50, 4, 0);
    assert_eq!(queue.used_idx(&s.memory_provider().ram), 3);
}

#[test]
fn a_request_the_dead_service_took_and_never_answered_is_served_again() {
    let mut s = serve(Kept::new());
    let mut queue = bring_up_rng(&mut s);
    let mut kept = die(s);
    // The guest posted and notified; the service took the chain and died
    // before the used ring said so: the used index is still 0.
    queue.post(&mut kept.ram, &[(RAM + 0x8_0000, 16, true)]);
    let mut s = serve(kept);
    assert_eq!(queue.used_idx(&s.memory_provider().ram), 1);
    assert_eq!(rd(&mut s, RNG + 0x60, 4), 1);
}

#[test]
fn a_torn_record_leaves_that_device_at_reset_and_the_others_restored() {
    let mut s = serve(Kept::new());
    wr(&mut s, UART + 1, 1, 0x05);
    wr(&mut s, PLIC + 0x2000, 4, 1 << UART_IRQ);
    let mut kept = die(s);
    // Record 1 is the UART's (attached second): a byte of it changed.
    kept.area[persist::RECORD_BYTES + persist::HEADER_BYTES] ^= 0xff;
    let mut s = serve(kept);
    assert_eq!(rd(&mut s, UART + 1, 1), 0, "the UART starts from reset");
    assert_eq!(rd(&mut s, PLIC + 0x2000, 4), 1 << UART_IRQ);
    // A new VM's area is all zeros: every device starts from reset.
    let mut s = serve(Kept::new());
    assert_eq!(rd(&mut s, PLIC + 0x2000, 4), 0);
    assert_eq!(rd(&mut s, RNG + 0x70, 4), 0);
}

#[test]
fn only_writes_that_change_what_is_kept_are_written_to_the_area() {
    let mut s = serve(Kept::new());
    for byte in b"hello, world\n" {
        wr(&mut s, UART, 1, u64::from(*byte));
    }
    assert_eq!(
        s.memory_provider().saves,
        0,
        "transmitted bytes keep nothing"
    );
    wr(&mut s, UART + 1, 1, 0x02);
    wr(&mut s, UART + 1, 1, 0x02);
    assert_eq!(
        s.memory_provider().saves,
        1,
        "the same IER again keeps nothing new"
    );
    wr(&mut s, UART + 1, 1, 0x00);
    assert_eq!(s.memory_provider().saves, 2);
    let mut queue = bring_up_rng(&mut s);
    let saves = s.memory_provider().saves;
    queue.post(&mut s.memory_provider().ram, &[(RAM + 0x8_0000, 8, true)]);
    wr(&mut s, RNG + 0x50, 4, 0);
    wr(&mut s, RNG + 0x64, 4, 1);
    assert_eq!(
        s.memory_provider().saves,
        saves,
        "notifications and acknowledgements keep nothing"
    );
}

const NIC: u64 = 0x1000_4000;

/// Attaches a network card at [`NIC`] (after the board's devices).
fn attach_nic(s: &mut Service) {
    let attach = Request::Attach {
        vm: VM,
        device: DeviceKind::VirtioNet,
        space: Space::Mmio,
        base: NIC,
        irq: 4,
    };
    assert_eq!(s.handle(attach), Response::Ok);
}

#[test]
fn a_network_cards_address_set_by_its_driver_outlives_a_restart() {
    use crate::virtio::net::NET_FEATURES;
    let mut s = serve(Kept::new());
    attach_nic(&mut s);
    // Linux's virtio-net driver: every feature, controlq only (index 2).
    let ctrl = GuestQueue::new(RAM + 0x4000, 8);
    let features = NET_FEATURES | crate::virtio::VIRTIO_F_VERSION_1;
    for (reg, value) in [
        (0x70, 0),
        (0x70, 3),
        (0x24, 0),
        (0x20, features & 0xffff_ffff),
        (0x24, 1),
        (0x20, features >> 32),
        (0x70, 0xb),
        (0x30, 2),
        (0x38, 8),
        (0x80, ctrl.desc),
        (0x90, ctrl.avail),
        (0xa0, ctrl.used),
        (0x44, 1),
        (0x70, 0xf),
    ] {
        wr(&mut s, NIC + reg, 4, value);
    }
    let mut ctrl = ctrl;
    let new_mac = [0x02, 0, 0, 0, 0, 0x42];
    let ram = &mut s.memory_provider().ram;
    ram.write_bytes(RAM + 0x9_0000, &[1, 1]);
    ram.write_bytes(RAM + 0x9_0002, &new_mac);
    ctrl.post(
        ram,
        &[(RAM + 0x9_0000, 8, false), (RAM + 0x9_0100, 1, true)],
    );
    let saves = s.memory_provider().saves;
    wr(&mut s, NIC + 0x50, 4, 2);
    assert_eq!(s.memory_provider().ram.bytes_at(RAM + 0x9_0100, 1), [0]);
    assert_eq!(s.memory_provider().saves, saves + 1, "the command is kept");

    let kept = die(s);
    let mut s = serve(kept);
    attach_nic(&mut s);
    let mac: Vec<u8> = (0..6)
        .map(|i| u8::try_from(rd(&mut s, NIC + 0x100 + i, 1)).unwrap())
        .collect();
    assert_eq!(mac, new_mac);
    assert_eq!(rd(&mut s, NIC + 0x70, 4), 0xf, "the driver's status");
}
