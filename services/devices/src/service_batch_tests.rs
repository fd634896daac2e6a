#![allow(clippy::cast_possible_truncation, reason = "typed text cycles through 26 letters")]
//! A `WriteBatch` against the same writes one by one: on random writes
//! (to two UARTs and a PLIC, to no device, with bad widths), with console
//! input between batches, a service that takes them in runs
//! (`DeviceService::write_run`) ends with the same console lines,
//! interrupt reports, device registers and count of failed writes as one
//! that takes each write as a `Write` request.

use proptest::prelude::*;

use super::*;

const COM2: u64 = 0x2f8;
const PLIC: u64 = 0x0c00_0000;

/// VM0 with UARTs on COM1 (line 4) and COM2 (line 3) and one on MMIO
/// (line 10), and a PLIC.
fn machine() -> Service {
    let mut s = with_uart();
    for (kind, space, base, irq) in [
        (DeviceKind::Uart16550, Space::Pio, COM2, 3),
        (DeviceKind::Uart16550, Space::Mmio, UART_MMIO, 10),
        (DeviceKind::Plic, Space::Mmio, PLIC, 0),
    ] {
        assert_eq!(attach(&mut s, VM0, kind, space, base, irq), Response::Ok);
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
fn registers(s: &mut Service) -> Vec<Response> {
    [(Space::Pio, COM1), (Space::Pio, COM2), (Space::Mmio, UART_MMIO)]
        .into_iter()
        .flat_map(|(space, base)| (1..8).map(move |r| (space, base + r)))
        .map(|(space, addr)| read(s, VM0, space, addr, 1))
        .collect()
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
        for (writes, typed) in batches {
            let request = Request::WriteBatch {
                vm: VM0,
                writes: writes.iter().copied().collect(),
                then: None,
            };
            prop_assert_eq!(runs.handle(request), Response::Ok);
            for w in &writes {
                if let Response::Err(_) = write(&mut single, VM0, w.space, w.addr, w.size, w.value) {
                    failed += 1;
                }
            }
            // Input between batches, beyond the receive FIFO at times, so
            // some batches start with input backlogged.
            let text: Vec<u8> = (0..typed).map(|i| b'a' + (i % 26) as u8).collect();
            prop_assert_eq!(input(&mut runs, VM0, &text), input(&mut single, VM0, &text));
        }
        prop_assert_eq!(runs.posted_failures(), failed);
        prop_assert_eq!(&runs.console().0, &single.console().0);
        prop_assert_eq!(&runs.irq_sink().0, &single.irq_sink().0);
        prop_assert_eq!(registers(&mut runs), registers(&mut single));
    }
}
