//! The device service as the ioreq service talks to it: sequences of
//! request messages (built from the input, or raw bytes) served twice,
//! once the way the task does (the hand-decoded fast path for guest reads,
//! writes and write batches) and once the general way (postcard, then
//! `handle`). Both must give the same replies and the same effects, and
//! nothing a guest writes may reach the hypervisor console unescaped.

use std::cell::RefCell;
use std::rc::Rc;

use devices::bus::BlockBackend;
use devices::console_lines::ConsoleSink;
use devices::memory::{GuestMemory, OutOfRange};
use devices::service::{DeviceService, GuestMemoryProvider, IrqSink};
use ipc::devices::{
    BatchWrite, ConsolePort, DeviceKind, IrqEvent, Request, Response, WaitedAccess,
};
use ipc::server::{self, Service};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, blk, console_text};

use crate::input::Input;
use crate::models::Counter;

/// Everything the service did outside its replies, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Effects {
    lines: Vec<Vec<u8>>,
    irqs: Vec<IrqEvent>,
    external: Vec<(VmId, usize, bool)>,
}

/// The console and interrupt sinks, recording into shared [`Effects`].
#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Effects>>);

impl ConsoleSink for Recorder {
    fn write_line(&mut self, line: &[u8]) {
        self.0.borrow_mut().lines.push(line.to_vec());
    }
}

impl IrqSink for Recorder {
    fn irq_event(&mut self, event: IrqEvent) {
        self.0.borrow_mut().irqs.push(event);
    }

    fn external_irq(&mut self, vm: VmId, context: usize, raised: bool) {
        self.0.borrow_mut().external.push((vm, context, raised));
    }
}

/// Where guest RAM starts.
const RAM_BASE: u64 = 0x8000_0000;

/// One guest RAM, granted to even-numbered VMs only.
struct Ram(Vec<u8>);

impl GuestMemory for Ram {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let refused = OutOfRange {
            addr,
            len: buf.len() as u64,
        };
        let at =
            usize::try_from(addr.checked_sub(RAM_BASE).ok_or(refused)?).map_err(|_| refused)?;
        let src = self
            .0
            .get(at..at.checked_add(buf.len()).ok_or(refused)?)
            .ok_or(refused)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let refused = OutOfRange {
            addr,
            len: data.len() as u64,
        };
        let at =
            usize::try_from(addr.checked_sub(RAM_BASE).ok_or(refused)?).map_err(|_| refused)?;
        let end = at.checked_add(data.len()).ok_or(refused)?;
        self.0
            .get_mut(at..end)
            .ok_or(refused)?
            .copy_from_slice(data);
        Ok(())
    }
}

impl GuestMemoryProvider for Ram {
    fn memory(&mut self, vm: VmId) -> Option<&mut dyn GuestMemory> {
        vm.0.is_multiple_of(2)
            .then_some(self as &mut dyn GuestMemory)
    }
}

/// A block service with disk 0 (64 sectors) only, which does every
/// transfer (it moves no bytes: the same answers on both paths).
struct Disk;

impl BlockBackend for Disk {
    fn request(&mut self, request: &blk::Request) -> blk::Response {
        match *request {
            blk::Request::Info { disk: 0 } => blk::Response::Info(blk::DiskInfo {
                sectors: 64,
                read_only: false,
            }),
            blk::Request::Info { .. } => blk::Response::Err(Error::NoDevice),
            _ => blk::Response::Ok,
        }
    }
}

type Devices = DeviceService<Recorder, Recorder, Ram, Counter, Disk>;

fn service() -> (Devices, Recorder) {
    let recorder = Recorder::default();
    let service = DeviceService::new(
        recorder.clone(),
        recorder.clone(),
        Ram(vec![0; 0x4000]),
        Counter(0),
    )
    .with_block(Disk);
    (service, recorder)
}

/// The service without its fast path: every message decoded by postcard.
struct General<'a>(&'a mut Devices);

impl Service for General<'_> {
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, request: Request) -> Response {
        self.0.handle(request)
    }

    fn refusal(error: Error) -> Response {
        Response::Err(error)
    }
}

const KINDS: [DeviceKind; 7] = [
    DeviceKind::Uart16550,
    DeviceKind::VirtioConsole,
    DeviceKind::VirtioRng,
    DeviceKind::VmGenId,
    DeviceKind::VirtioBlk { disk: 0 },
    DeviceKind::VirtioNet,
    // Last: its window covers every base after its own.
    DeviceKind::Plic,
];

/// How many kinds there are, as an input range.
const KIND_COUNT: u8 = 7;
const _: () = assert!(KINDS.len() == KIND_COUNT as usize);

/// Where a device of kind index `kind` is attached.
fn base(kind: u8) -> u64 {
    0x1000_0000 + u64::from(kind) * 0x1000
}

fn space(input: &mut Input<'_>) -> Space {
    match input.below(8) {
        0 => Space::Pio,
        1 => Space::PciConfig,
        _ => Space::Mmio,
    }
}

fn size(input: &mut Input<'_>) -> u8 {
    [1, 2, 4, 8, 1, 4, 3, 0][usize::from(input.below(8))]
}

/// An address near a device: mostly a register, sometimes past it.
fn addr(input: &mut Input<'_>) -> u64 {
    base(input.below(KIND_COUNT + 1)) + u64::from(input.u16() % 0x220)
}

/// The next request, as the ioreq service would send it.
fn request(input: &mut Input<'_>) -> Request {
    let vm = VmId(u16::from(input.below(3)));
    match input.below(10) {
        0 => Request::AddVm {
            vm,
            name: ipc::wire_name(["vm0", "vm1", "linux"][usize::from(input.below(3))])
                .unwrap_or_default(),
        },
        1 => {
            let kind = input.below(KIND_COUNT);
            Request::Attach {
                vm,
                device: KINDS[usize::from(kind)],
                space: space(input),
                base: base(kind),
                irq: u32::from(input.below(12)),
            }
        }
        2 | 3 => Request::Read {
            vm,
            space: space(input),
            addr: addr(input),
            size: size(input),
        },
        4 | 5 => Request::Write {
            vm,
            space: space(input),
            addr: addr(input),
            size: size(input),
            value: u64::from(input.u32()),
        },
        6 => Request::Input {
            vm,
            port: if input.below(2) == 0 {
                ConsolePort::Serial
            } else {
                ConsolePort::Virtio
            },
            bytes: heapless::Vec::from_slice(input.bytes(16)).unwrap_or_default(),
        },
        7 => {
            let mut writes = heapless::Vec::new();
            for _ in 0..input.below(6) {
                let write = BatchWrite {
                    space: Space::Mmio,
                    addr: base(0),
                    size: 1,
                    value: u64::from(input.u8()),
                };
                let _ = writes.push(write);
            }
            let then = input.bool().then(|| WaitedAccess {
                space: Space::Mmio,
                addr: base(0) + 5,
                size: 1,
                write: None,
            });
            Request::WriteBatch { vm, writes, then }
        }
        8 => Request::ConsoleRead {
            vm,
            from: u64::from(input.u16()),
        },
        _ => match input.below(3) {
            0 => Request::RemoveVm { vm },
            1 => Request::Detach {
                vm,
                space: space(input),
                base: base(input.below(KIND_COUNT)),
            },
            _ => Request::SetGenerationId {
                vm,
                id: input.array(),
            },
        },
    }
}

/// Checks that every console line the guest's output made is shown
/// escaped: nothing a guest writes moves the cursor or starts a line.
fn check_lines(effects: &Effects) {
    for line in &effects.lines {
        let text = core::str::from_utf8(line).expect("console lines are UTF-8");
        assert!(
            console_text::is_printable(text),
            "{text:?} reached the console"
        );
    }
}

/// The device service fed request messages: the fast path and the
/// general path answer alike and do alike.
pub fn devices_service(data: &[u8]) {
    let mut input = Input::new(data);
    let (mut fast, fast_effects) = service();
    let (mut general, general_effects) = service();
    while !input.is_empty() {
        let mut message = [0u8; MAX_MESSAGE_SIZE];
        let bytes: &[u8] = if input.below(8) == 0 {
            input.bytes(64)
        } else {
            let request = request(&mut input);
            let len = ipc::encode(&request, &mut message).map_or(0, |b| b.len());
            &message[..len]
        };
        let (mut a, mut b) = ([0u8; MAX_MESSAGE_SIZE], [0u8; MAX_MESSAGE_SIZE]);
        let from_fast = server::serve(&mut fast, bytes, &mut a);
        let from_general = server::serve(&mut General(&mut general), bytes, &mut b);
        assert_eq!(
            from_fast, from_general,
            "reply lengths differ for {bytes:02x?}"
        );
        if let Ok(len) = from_fast {
            assert_eq!(a[..len], b[..len], "replies differ for {bytes:02x?}");
            assert!(
                ipc::decode::<Response>(&a[..len]).is_ok(),
                "the reply does not decode"
            );
        }
        assert_eq!(
            *fast_effects.0.borrow(),
            *general_effects.0.borrow(),
            "effects differ after {bytes:02x?}"
        );
    }
    check_lines(&fast_effects.0.borrow());
}
