//! The service with a block backend: attaching a virtio-blk device asks
//! the backend for its disk, a guest's request reaches the backend with
//! the VM's id, and a request arriving in the IPC buffer is no longer read
//! from it once a model may have called another service.

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use ipc::blk;
use ipc::devices::{BatchWrite, DeviceKind, IrqEvent, Request, Response, WaitedAccess};
use ipc::server::{MessageBuffer, Service as _};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, encode, wire_name};

use super::*;
use crate::testing::{CountingEntropy, FakeDisk, FakeRam, GuestQueue, Lines};
use crate::virtio::VIRTIO_F_VERSION_1;
use crate::virtio::blk::{request_type, status};

const VM: VmId = VmId(5);
const RAM: u64 = 0x8000_0000;
const BLK: u64 = 0x1000_1000;
const COM1: u64 = 0x3f8;
const HEADER: u64 = RAM + 0x8000;
const STATUS: u64 = RAM + 0x8100;
const DATA: u64 = RAM + 0x9000;

#[derive(Default)]
struct Irqs;

impl IrqSink for Irqs {
    fn irq_event(&mut self, _event: IrqEvent) {}
}

/// VM 5's RAM (64 KiB), and none for any other VM.
struct Ram(FakeRam);

impl GuestMemoryProvider for Ram {
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
        (vm == VM).then_some(&mut self.0 as &mut dyn GuestMemory)
    }
}

/// A [`FakeDisk`] that, like a real call to the block service, overwrites
/// the IPC buffer (shared with [`IpcBuffer`]) each time it is asked.
struct CallingDisk {
    disk: FakeDisk,
    ipc_buffer: Rc<RefCell<Vec<u8>>>,
}

impl BlockBackend for CallingDisk {
    fn request(&mut self, request: &blk::Request) -> blk::Response {
        self.ipc_buffer.borrow_mut().fill(0xa5);
        self.disk.request(request)
    }
}

/// A message in the IPC buffer, the way the task's server loop has it.
struct IpcBuffer {
    buffer: Rc<RefCell<Vec<u8>>>,
    len: usize,
}

impl MessageBuffer for IpcBuffer {
    fn request<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let buffer = self.buffer.borrow();
        f(buffer.get(..self.len).unwrap_or_default())
    }

    fn reply<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.buffer.borrow_mut())
    }
}

type Service = DeviceService<Lines, Irqs, Ram, CountingEntropy, CallingDisk>;

fn service(ipc_buffer: &Rc<RefCell<Vec<u8>>>) -> Service {
    let ram = Ram(FakeRam::new(RAM, 0x1_0000));
    let disk = CallingDisk {
        disk: FakeDisk::default(),
        ipc_buffer: Rc::clone(ipc_buffer),
    };
    let mut s = DeviceService::new(Lines::default(), Irqs, ram, CountingEntropy::default())
        .with_block(disk);
    let add = Request::AddVm {
        vm: VM,
        name: wire_name("disky").unwrap(),
    };
    assert_eq!(s.handle(add), Response::Ok);
    s
}

fn attach(s: &mut Service, device: DeviceKind, space: Space, base: u64) -> Response {
    s.handle(Request::Attach {
        vm: VM,
        device,
        space,
        base,
        irq: 1,
    })
}

fn reg_write(s: &mut Service, offset: u64, value: u32) {
    let write = Request::Write {
        vm: VM,
        space: Space::Mmio,
        addr: BLK + offset,
        size: 4,
        value: u64::from(value),
    };
    assert_eq!(s.handle(write), Response::Ok);
}

/// Brings the block device's queue up (8 entries at RAM) and posts one
/// read of sector 3 into DATA, not yet notified.
fn bring_up_and_post_read(s: &mut Service) {
    let queue = GuestQueue::new(RAM, 8);
    for status in [1, 3] {
        reg_write(s, 0x070, status);
    }
    reg_write(s, 0x024, 1);
    reg_write(s, 0x020, u32::try_from(VIRTIO_F_VERSION_1 >> 32).unwrap());
    reg_write(s, 0x070, 0xb);
    reg_write(s, 0x030, 0);
    reg_write(s, 0x038, 8);
    for (reg, addr) in [
        (0x080, queue.desc),
        (0x090, queue.avail),
        (0x0a0, queue.used),
    ] {
        reg_write(s, reg, u32::try_from(addr).unwrap());
    }
    reg_write(s, 0x044, 1);
    reg_write(s, 0x070, 0xf);
    let ram = &mut s.memory_provider().0;
    ram.write_u32(HEADER, request_type::IN);
    ram.write_u64(HEADER + 8, 3);
    ram.write_bytes(STATUS, &[0xff]);
    let mut queue = queue;
    queue.post(
        ram,
        &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
    );
}

fn status_byte(s: &mut Service) -> u8 {
    s.memory_provider().0.bytes_at(STATUS, 1)[0]
}

#[test]
fn a_block_device_attaches_only_to_a_disk_the_backend_has() {
    let ipc_buffer = Rc::new(RefCell::new(std::vec![0; MAX_MESSAGE_SIZE]));
    let mut s = service(&ipc_buffer);
    s.block_backend().disk.info.sectors = 64;
    let kind = DeviceKind::VirtioBlk { disk: 1 };
    assert_eq!(attach(&mut s, kind, Space::Mmio, BLK), Response::Ok);
    // Config space: the capacity the backend gave.
    let capacity = Request::Read {
        vm: VM,
        space: Space::Mmio,
        addr: BLK + 0x100,
        size: 8,
    };
    assert_eq!(s.handle(capacity), Response::Value(64));
    // Without a block service there is no disk to attach.
    let mut plain = DeviceService::new(
        Lines::default(),
        Irqs,
        Ram(FakeRam::new(RAM, 0x1000)),
        CountingEntropy::default(),
    );
    let add = Request::AddVm {
        vm: VM,
        name: wire_name("plain").unwrap(),
    };
    assert_eq!(plain.handle(add), Response::Ok);
    let refused = plain.handle(Request::Attach {
        vm: VM,
        device: kind,
        space: Space::Mmio,
        base: BLK,
        irq: 1,
    });
    assert_eq!(refused, Response::Err(Error::NoDevice));
    // Nothing was left at the base.
    let at_base = Request::Read {
        vm: VM,
        space: Space::Mmio,
        addr: BLK,
        size: 4,
    };
    assert_eq!(plain.handle(at_base), Response::Err(Error::NoDevice));
}

#[test]
fn a_guest_request_reaches_the_backend_with_the_vms_id() {
    let ipc_buffer = Rc::new(RefCell::new(std::vec![0; MAX_MESSAGE_SIZE]));
    let mut s = service(&ipc_buffer);
    let kind = DeviceKind::VirtioBlk { disk: 4 };
    assert_eq!(attach(&mut s, kind, Space::Mmio, BLK), Response::Ok);
    bring_up_and_post_read(&mut s);
    reg_write(&mut s, 0x050, 0);
    let read = blk::Request::Read {
        disk: 4,
        vm: VM,
        sector: 3,
        gpa: DATA,
        len: 512,
    };
    assert_eq!(s.block_backend().disk.requests, [read]);
    assert_eq!(status_byte(&mut s), status::OK);
}

#[test]
fn a_write_batch_is_copied_out_of_the_ipc_buffer_before_a_notify_runs() {
    let ipc_buffer = Rc::new(RefCell::new(std::vec![0; MAX_MESSAGE_SIZE]));
    let mut s = service(&ipc_buffer);
    let kind = DeviceKind::VirtioBlk { disk: 0 };
    assert_eq!(attach(&mut s, kind, Space::Mmio, BLK), Response::Ok);
    assert_eq!(
        attach(&mut s, DeviceKind::Uart16550, Space::Pio, COM1),
        Response::Ok
    );
    bring_up_and_post_read(&mut s);
    // The notify, then a line on the UART, then LSR read back.
    let mut writes = heapless::Vec::new();
    let notify = BatchWrite {
        space: Space::Mmio,
        addr: BLK + 0x050,
        size: 4,
        value: 0,
    };
    writes.push(notify).unwrap();
    for byte in b"ok\n" {
        let thr = BatchWrite {
            space: Space::Pio,
            addr: COM1,
            size: 1,
            value: u64::from(*byte),
        };
        writes.push(thr).unwrap();
    }
    let then = Some(WaitedAccess {
        space: Space::Pio,
        addr: COM1 + 5,
        size: 1,
        write: None,
    });
    let batch = Request::WriteBatch {
        vm: VM,
        writes,
        then,
    };
    let len = encode(&batch, &mut ipc_buffer.borrow_mut()).unwrap().len();
    let mut message = IpcBuffer {
        buffer: Rc::clone(&ipc_buffer),
        len,
    };
    let answered = s.answer_fast(&mut message).expect("a fast-path message");
    assert!(answered.is_ok());
    assert_eq!(status_byte(&mut s), status::OK, "the read was served");
    assert_eq!(s.console().0, ["disky | ok"], "the writes after it ran");
}
