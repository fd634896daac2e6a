//! The fast path for guest reads and writes (`Service::answer_fast`) gives
//! the same replies, console lines and interrupt reports as the general
//! path (decode, `handle`, encode), and leaves every other message alone.

use std::string::String;
use std::vec::Vec;

use ipc::devices::{BatchWrite, DeviceKind, IrqEvent, MAX_BATCH, Request, Response, WaitedAccess};
use ipc::server::{MessageBuffer, Service as _, serve};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, decode, encode, wire_name};

use super::*;
use crate::testing::CountingEntropy;

/// Everything a service told the outside world, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Log(Vec<String>);

impl ConsoleSink for Log {
    fn write_line(&mut self, line: &[u8]) {
        self.0.push(String::from_utf8_lossy(line).into_owned());
    }
}

impl IrqSink for Log {
    fn irq_event(&mut self, event: IrqEvent) {
        self.0.push(std::format!("{event:?}"));
    }

    fn external_irq(&mut self, vm: VmId, context: usize, raised: bool) {
        self.0
            .push(std::format!("external {vm:?} context {context} {raised}"));
    }
}

struct NoRam;

impl GuestMemoryProvider for NoRam {
    fn memory(&mut self, _vm: VmId) -> Option<&mut dyn GuestMemory> {
        None
    }
}

type Service = DeviceService<Log, Log, NoRam, CountingEntropy>;

const VM: VmId = VmId(2);
const COM1: u64 = 0x3f8;
const UART_IRQ: u32 = 4;
const PLIC: u64 = 0x0c00_0000;
const GENID: u64 = 0x1010_1000;

/// A request in its own buffer with a reply buffer beside it, recording
/// whether the reply buffer was written.
struct Message {
    request: Vec<u8>,
    reply: [u8; MAX_MESSAGE_SIZE],
    replied: bool,
}

impl Message {
    fn of(request: &Request) -> Self {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let bytes = encode(request, &mut buf).expect("fits").to_vec();
        Self::raw(&bytes)
    }

    fn raw(bytes: &[u8]) -> Self {
        Self {
            request: bytes.to_vec(),
            reply: [0xee; MAX_MESSAGE_SIZE],
            replied: false,
        }
    }
}

impl MessageBuffer for Message {
    fn request<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.request)
    }

    fn reply<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.replied = true;
        f(&mut self.reply)
    }
}

/// VM 2 with a UART on COM1 (line 4), a PLIC forwarding line 4 to context
/// 0, and a generation ID device.
fn service() -> Service {
    let mut s = DeviceService::new(
        Log::default(),
        Log::default(),
        NoRam,
        CountingEntropy::default(),
    );
    let setup = [
        Request::AddVm {
            vm: VM,
            name: wire_name("fast").expect("valid"),
        },
        Request::Attach {
            vm: VM,
            device: DeviceKind::Uart16550,
            space: Space::Pio,
            base: COM1,
            irq: UART_IRQ,
        },
        Request::Attach {
            vm: VM,
            device: DeviceKind::Plic,
            space: Space::Mmio,
            base: PLIC,
            irq: 0,
        },
        Request::Attach {
            vm: VM,
            device: DeviceKind::VmGenId,
            space: Space::Mmio,
            base: GENID,
            irq: 5,
        },
    ];
    for request in setup {
        assert_eq!(s.handle(request.clone()), Response::Ok, "{request:?}");
    }
    s
}

fn read(space: Space, addr: u64, size: u8) -> Request {
    Request::Read {
        vm: VM,
        space,
        addr,
        size,
    }
}

fn write(space: Space, addr: u64, size: u8, value: u64) -> Request {
    Request::Write {
        vm: VM,
        space,
        addr,
        size,
        value,
    }
}

/// Guest accesses of every outcome: console output, interrupts raised and
/// lowered through the PLIC, and each refusal.
fn script() -> Vec<Request> {
    let mut script = std::vec![
        // The PLIC forwards line 4 to context 0; the UART interrupts when
        // its transmitter is empty.
        write(Space::Mmio, PLIC + 4 * u64::from(UART_IRQ), 4, 1),
        write(Space::Mmio, PLIC + 0x2000, 4, 1 << UART_IRQ),
        write(Space::Pio, COM1 + 1, 1, 0x02),
        read(Space::Pio, COM1 + 2, 1),
        read(Space::Mmio, PLIC + 0x20_0004, 4),
        write(Space::Mmio, PLIC + 0x20_0004, 4, u64::from(UART_IRQ)),
        write(Space::Pio, COM1 + 1, 1, 0),
        read(Space::Pio, COM1 + 5, 1),
        read(Space::Mmio, GENID, 8),
        // Refusals: no such VM, no device, a bad width, a straddle.
        Request::Read {
            vm: VmId(9),
            space: Space::Pio,
            addr: COM1,
            size: 1,
        },
        read(Space::Pio, 0x80, 1),
        read(Space::PciConfig, 0, 4),
        read(Space::Pio, COM1, 3),
        write(Space::Pio, COM1, 2, 0),
        read(Space::Mmio, GENID + 0x1c, 8),
    ];
    for &byte in b"fast\npath" {
        script.push(write(Space::Pio, COM1, 1, u64::from(byte)));
    }
    // Posted writes in batches: bytes, a failing write in the middle, a
    // batch for a VM that does not exist, an empty one; each alone, then
    // with the LSR read or a scratch write the guest waits for.
    let posted = |bytes: &[u8]| -> heapless::Vec<BatchWrite, MAX_BATCH> {
        bytes
            .iter()
            .map(|&b| BatchWrite {
                space: Space::Pio,
                addr: COM1,
                size: 1,
                value: u64::from(b),
            })
            .collect()
    };
    let mut failing = posted(b"ba");
    let bad = BatchWrite {
        space: Space::Pio,
        addr: COM1,
        size: 3,
        value: 0,
    };
    failing.push(bad).unwrap();
    failing.extend(posted(b"tch\n"));
    let waited = [
        None,
        Some(WaitedAccess {
            space: Space::Pio,
            addr: COM1 + 5,
            size: 1,
            write: None,
        }),
        Some(WaitedAccess {
            space: Space::Pio,
            addr: COM1 + 7,
            size: 1,
            write: Some(0x11),
        }),
    ];
    for then in waited {
        for (vm, writes) in [
            (VM, posted(b"\nposted ")),
            (VM, failing.clone()),
            (VmId(9), posted(b"x")),
            (VM, posted(b"")),
        ] {
            script.push(Request::WriteBatch { vm, writes, then });
        }
    }
    script
}

#[test]
fn guest_accesses_are_answered_on_the_fast_path_as_on_the_general_one() {
    let mut fast = service();
    let mut general = service();
    for request in script() {
        let mut message = Message::of(&request);
        let answered = fast.answer_fast(&mut message);
        let len = answered.expect("a guest access is taken").expect("fits");
        let expected = general.handle(request.clone());
        assert_eq!(
            decode::<Response>(&message.reply[..len]),
            Ok(expected.clone()),
            "{request:?}"
        );
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        assert_eq!(
            message.reply[..len],
            *encode(&expected, &mut buf).expect("fits"),
            "{request:?}: the same bytes"
        );
    }
    assert_eq!(fast.console(), general.console());
    assert_eq!(fast.irq_sink(), general.irq_sink());
    assert_eq!(
        fast.console().0,
        [
            "fast | fast",
            "fast | path",
            "fast | posted batch",
            "fast | ",
            "fast | posted batch",
            "fast | ",
            "fast | posted batch"
        ]
    );
    assert!(
        fast.irq_sink()
            .0
            .contains(&std::format!("external {VM:?} context 0 true")),
        "the script raises the external interrupt: {:?}",
        fast.irq_sink().0
    );
}

#[test]
fn other_and_malformed_messages_are_left_to_the_general_path() {
    let mut s = service();
    let messages = [
        Message::of(&Request::ConsoleRead { vm: VM, from: 0 }),
        Message::of(&Request::RemoveVm { vm: VmId(9) }),
        Message::raw(&[]),
        Message::raw(&[2, 2, 0, 0xf8, 0x07]),
        Message::raw(&[2, 2, 7, 0xf8, 0x07, 1]),
        Message::raw(&[3, 2, 1, 0xf8, 0x07, 1]),
        Message::raw(&[2, 2, 1, 0xf8, 0x07, 1, 0]),
        Message::raw(&[9, 2, 1, 1, 0xf8, 0x07, 1]),
        Message::raw(&[9, 2, 17]),
    ];
    for mut message in messages {
        assert_eq!(s.answer_fast(&mut message), None, "{:x?}", message.request);
        assert!(!message.replied, "{:x?}", message.request);
        let mut reply = [0u8; MAX_MESSAGE_SIZE];
        let len = serve(&mut s, &message.request, &mut reply).expect("a reply fits");
        if message
            .request
            .first()
            .is_some_and(|&tag| matches!(tag, 2 | 3 | 9))
        {
            assert_eq!(
                decode::<Response>(&reply[..len]),
                Ok(Response::Err(Error::Malformed))
            );
        }
    }
    // Nothing above reached a device.
    assert!(s.console().0.is_empty());
    let mut message = Message::of(&read(Space::Pio, COM1 + 5, 1));
    let len = s.answer_fast(&mut message).expect("taken").expect("fits");
    assert_eq!(
        decode::<Response>(&message.reply[..len]),
        Ok(Response::Value(0x60))
    );
}

#[test]
fn a_latched_pulse_is_lowered_at_the_next_access_to_any_device() {
    let mut s = service();
    // The first ID is the one the guest boots with; the second pulses.
    s.set_generation_id(VM, 0x1234)
        .expect("a generation ID device");
    s.set_generation_id(VM, 0x5678)
        .expect("a generation ID device");
    let raised = std::format!(
        "{:?}",
        IrqEvent::SetLevel {
            vm: VM,
            irq: 5,
            asserted: true
        }
    );
    let lowered = std::format!(
        "{:?}",
        IrqEvent::SetLevel {
            vm: VM,
            irq: 5,
            asserted: false
        }
    );
    assert!(s.irq_sink().0.contains(&raised), "{:?}", s.irq_sink().0);
    assert!(!s.irq_sink().0.contains(&lowered));
    // A UART status read moves no line of its own, but the pulse the PLIC
    // latched has dropped since the last report.
    let mut message = Message::of(&read(Space::Pio, COM1 + 5, 1));
    s.answer_fast(&mut message).expect("taken").expect("fits");
    assert_eq!(s.irq_sink().0.last(), Some(&lowered));
    // Then all is settled: the next access reports nothing.
    let reported = s.irq_sink().0.len();
    let mut message = Message::of(&read(Space::Pio, COM1 + 5, 1));
    s.answer_fast(&mut message).expect("taken").expect("fits");
    assert_eq!(s.irq_sink().0.len(), reported);
}
