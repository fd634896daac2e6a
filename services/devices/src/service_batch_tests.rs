#![allow(
    clippy::cast_possible_truncation,
    reason = "typed text cycles through 26 letters"
)]
//! A `WriteBatch` against the same writes one by one: on random writes
//! (to two UARTs and a PLIC, to no device, with bad widths), with console
//! input between batches, a service that takes them in runs
//! (`DeviceService::write_run`) ends with the same console lines,
//! interrupt reports, device registers, kept device state and count of
//! failed writes as one that takes each write as a `Write` request.

use proptest::prelude::*;

use super::*;

const COM2: u64 = 0x2f8;
const PLIC: u64 = 0x0c00_0000;

/// The VMs' device-state areas (no guest RAM), and how often each was
/// written.
#[derive(Default)]
struct Areas(Vec<(VmId, Vec<u8>, usize)>);

impl GuestMemoryProvider for Areas {
    fn memory(&mut self, _vm: VmId) -> Option<&mut dyn GuestMemory> {
        None
    }

    fn save_state(&mut self, vm: VmId, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        if !self.0.iter().any(|(id, _, _)| *id == vm) {
            self.0
                .push((vm, std::vec![0; ipc::syscall::DEVICE_STATE_BYTES], 0));
        }
        let (_, area, saves) = self.0.iter_mut().find(|(id, _, _)| *id == vm).unwrap();
        area[offset..offset + bytes.len()].copy_from_slice(bytes);
        *saves += 1;
        Ok(())
    }
}

type Machine = DeviceService<Lines, Irqs, Areas, CountingEntropy>;

/// VM0 with UARTs on COM1 (line 4), COM2 (line 3) and MMIO (line 10),
/// and a PLIC.
fn machine() -> Machine {
    let mut s = DeviceService::new(
        Lines::default(),
        Irqs::default(),
        Areas::default(),
        CountingEntropy::default(),
    );
    let name = wire_name("vm0").unwrap();
    assert_eq!(s.handle(Request::AddVm { vm: VM0, name }), Response::Ok);
    for (device, space, base, irq) in [
        (DeviceKind::Uart16550, Space::Pio, COM1, 4),
        (DeviceKind::Uart16550, Space::Pio, COM2, 3),
        (DeviceKind::Uart16550, Space::Mmio, UART_MMIO, 10),
        (DeviceKind::Plic, Space::Mmio, PLIC, 0),
    ] {
        let attach = Request::Attach {
            vm: VM0,
            device,
            space,
            base,
            irq,
        };
        assert_eq!(s.handle(attach), Response::Ok);
    }
    s
}

fn one_write() -> impl Strategy<Value = BatchWrite> {
    let place = prop_oneof![
        4 => (0..8u64).prop_map(|r| (Space::Pio, COM1 + r)),
        2 => (0..8u64).prop_map(|r| (Space::Pio, COM2 + r)),
        2 => (0..8u64).prop_map(|r| (Space::Mmio, UART_MMIO + r)),
        // The PLIC's priority of source 10, source 3, and its enables.
        1 => prop_oneof![Just(PLIC + 40), Just(PLIC + 12), Just(PLIC + 0x2000)]
            .prop_map(|a| (Space::Mmio, a)),
        1 => Just((Space::Pio, 0x300)),
    ];
    let size = prop_oneof![8 => Just(1u8), 1 => Just(4u8), 1 => Just(3u8)];
    (place, size, any::<u8>()).prop_map(|((space, addr), size, value)| BatchWrite {
        space,
        addr,
        size,
        value: u64::from(value),
    })
}

/// What a test compares: every UART register as a read sees it after the
/// writes (reads change the state, so both services are read alike).
fn registers(s: &mut Machine) -> Vec<Response> {
    [
        (Space::Pio, COM1),
        (Space::Pio, COM2),
        (Space::Mmio, UART_MMIO),
    ]
    .into_iter()
    .flat_map(|(space, base)| (1..8).map(move |r| (space, base + r)))
    .map(|(space, addr)| {
        s.handle(Request::Read {
            vm: VM0,
            space,
            addr,
            size: 1,
        })
    })
    .collect()
}

/// Console input for VM0's serial port.
fn typed(s: &mut Machine, text: &[u8]) -> Response {
    s.handle(Request::Input {
        vm: VM0,
        port: ConsolePort::Serial,
        bytes: heapless::Vec::from_slice(text).unwrap(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn a_batch_in_runs_does_what_its_writes_do_one_by_one(
        batches in proptest::collection::vec(
            (proptest::collection::vec(one_write(), 0..MAX_BATCH), 0..24usize),
            1..8,
        )
    ) {
        let mut runs = machine();
        let mut single = machine();
        let mut failed = 0;
        for (writes, keys) in batches {
            let request = Request::WriteBatch {
                vm: VM0,
                writes: writes.iter().copied().collect(),
                then: None,
            };
            prop_assert_eq!(runs.handle(request), Response::Ok);
            for w in &writes {
                let one = Request::Write {
                    vm: VM0,
                    space: w.space,
                    addr: w.addr,
                    size: w.size,
                    value: w.value,
                };
                if let Response::Err(_) = single.handle(one) {
                    failed += 1;
                }
            }
            // Input between batches, beyond the receive FIFO at times, so
            // some batches start with input backlogged.
            let text: Vec<u8> = (0..keys).map(|i| b'a' + (i % 26) as u8).collect();
            prop_assert_eq!(typed(&mut runs, &text), typed(&mut single, &text));
        }
        prop_assert_eq!(runs.posted_failures(), failed);
        prop_assert_eq!(&runs.console().0, &single.console().0);
        prop_assert_eq!(&runs.irq_sink().0, &single.irq_sink().0);
        prop_assert_eq!(&runs.memory_provider().0, &single.memory_provider().0);
        prop_assert_eq!(registers(&mut runs), registers(&mut single));
    }
}
