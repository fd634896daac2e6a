//! Tests of the 16550A model, driven the way Linux's 8250 driver probes and
//! uses a port.

use super::*;
use crate::testing::TestEnv;

const RBR: u64 = 0;
const IER: u64 = 1;
const IIR: u64 = 2;
const FCR: u64 = 2;
const LCR: u64 = 3;
const MCR: u64 = 4;
const LSR: u64 = 5;
const MSR: u64 = 6;
const SCR: u64 = 7;

struct Port {
    uart: Uart16550,
    env: TestEnv,
}

impl Port {
    fn new() -> Self {
        Self {
            uart: Uart16550::new(),
            env: TestEnv::default(),
        }
    }
    fn inb(&mut self, reg: u64) -> u8 {
        let value = self
            .uart
            .read(reg, AccessSize::Byte, &mut self.env.env())
            .unwrap();
        u8::try_from(value).unwrap()
    }
    fn outb(&mut self, reg: u64, value: u8) {
        self.uart
            .write(reg, AccessSize::Byte, u64::from(value), &mut self.env.env())
            .unwrap();
    }
}

#[test]
fn scratch_register_and_ier_probe_like_8250_autoconfig() {
    let mut port = Port::new();
    port.outb(IER, 0);
    assert_eq!(port.inb(IER) & 0x0f, 0);
    port.outb(IER, 0x0f);
    assert_eq!(port.inb(IER) & 0x0f, 0x0f);
    port.outb(IER, 0xff);
    assert_eq!(port.inb(IER), 0x0f, "IER bits 4-7 read as zero");
    port.outb(IER, 0);
    for value in [0x55, 0xaa, 0x00, 0xff] {
        port.outb(SCR, value);
        assert_eq!(port.inb(SCR), value);
    }
}

#[test]
fn loopback_test_reports_msr_lines_from_mcr() {
    let mut port = Port::new();
    port.outb(MCR, MCR_LOOP | 0x0a);
    assert_eq!(port.inb(MSR) & 0xf0, 0x90, "RTS->CTS, OUT2->DCD");
    port.outb(MCR, MCR_LOOP | 0x05);
    assert_eq!(port.inb(MSR) & 0xf0, 0x60, "DTR->DSR, OUT1->RI");
    port.outb(MCR, 0x0b);
    assert_eq!(port.inb(MCR), 0x0b);
    assert_eq!(port.inb(MSR) & 0xf0, 0xb0, "outside: CTS, DSR, DCD");
}

#[test]
fn msr_delta_bits_are_set_on_change_and_cleared_by_reading() {
    let mut port = Port::new();
    port.outb(MCR, MCR_LOOP | MCR_OUT1 | MCR_OUT2);
    let msr = port.inb(MSR);
    // CTS and DSR dropped, DCD stayed, RI rose (no trailing edge yet).
    assert_eq!(msr & 0x0f, MSR_DELTA_CTS | MSR_DELTA_DSR);
    assert_eq!(port.inb(MSR) & 0x0f, 0, "deltas clear on read");
    port.outb(MCR, MCR_LOOP | MCR_OUT2);
    assert_eq!(port.inb(MSR) & 0x0f, MSR_TRAILING_RI);
    port.outb(MCR, MCR_LOOP);
    assert_eq!(port.inb(MSR) & 0x0f, MSR_DELTA_DCD);
}

#[test]
fn loopback_sends_thr_bytes_to_rbr_not_to_output() {
    let mut port = Port::new();
    port.outb(MCR, MCR_LOOP);
    port.outb(RBR, b'x');
    assert_eq!(port.inb(LSR) & LSR_DATA_READY, LSR_DATA_READY);
    assert_eq!(port.inb(RBR), b'x');
    assert_eq!(port.inb(LSR) & LSR_DATA_READY, 0);
    assert!(port.env.output.0.is_empty());
}

#[test]
fn transmitted_bytes_reach_the_output_and_thr_stays_empty() {
    let mut port = Port::new();
    for &byte in b"hi\n" {
        port.outb(RBR, byte);
    }
    assert_eq!(port.env.output.0, b"hi\n");
    assert_eq!(port.inb(LSR), LSR_THR_EMPTY | LSR_TX_EMPTY);
}

#[test]
fn iir_shows_fifo_bits_once_fifos_are_enabled() {
    let mut port = Port::new();
    assert_eq!(port.inb(IIR), 0x01);
    port.outb(FCR, FCR_FIFO_ENABLE);
    assert_eq!(port.inb(IIR), 0xc1);
    assert_eq!(port.inb(IIR) >> 6, 3, "8250 driver: 16550A");
    port.outb(FCR, 0);
    assert_eq!(port.inb(IIR), 0x01);
}

#[test]
fn thre_interrupt_follows_etbei_iir_reads_and_thr_writes() {
    let mut port = Port::new();
    assert!(!port.uart.irq_level());
    port.outb(IER, IER_THR_EMPTY);
    assert!(port.uart.irq_level(), "enabling ETBEI raises THRE at once");
    assert_eq!(port.inb(IIR), 0x02);
    assert!(!port.uart.irq_level(), "reading IIR clears THRE");
    assert_eq!(port.inb(IIR), 0x01);
    port.outb(RBR, b'a');
    assert!(
        port.uart.irq_level(),
        "the byte left at once: THR empty again"
    );
    assert_eq!(port.inb(IIR), 0x02);
    // Re-enabling ETBEI re-arms it (8250's THRE test does IER=0; IER=THRI).
    port.outb(IER, 0);
    assert!(!port.uart.irq_level());
    port.outb(IER, IER_THR_EMPTY);
    assert_eq!(port.inb(IIR), 0x02);
    // Enabling it again while it stays enabled does not re-arm.
    port.outb(IER, IER_THR_EMPTY | IER_MODEM_STATUS);
    assert_eq!(port.inb(IIR), 0x01);
}

#[test]
fn tx_fifo_reset_rearms_thre() {
    let mut port = Port::new();
    port.outb(IER, IER_THR_EMPTY);
    port.inb(IIR);
    port.outb(FCR, FCR_FIFO_ENABLE | FCR_TX_RESET);
    assert_eq!(port.inb(IIR), 0xc2);
}

#[test]
fn divisor_latch_round_trip_hides_rbr_and_ier() {
    let mut port = Port::new();
    port.outb(IER, 0x05);
    port.uart.receive(b"z");
    port.outb(LCR, LCR_DLAB | 0x03);
    port.outb(RBR, 0x01);
    port.outb(IER, 0x02);
    assert_eq!(port.inb(RBR), 0x01);
    assert_eq!(port.inb(IER), 0x02);
    assert_eq!(port.uart.divisor(), 0x0201);
    assert!(port.env.output.0.is_empty(), "DLL writes are not output");
    port.outb(LCR, 0x03);
    assert_eq!(port.inb(LCR), 0x03);
    assert_eq!(port.inb(IER), 0x05);
    assert_eq!(port.inb(RBR), b'z');
}

#[test]
fn rx_trigger_level_decides_between_timeout_and_data_available() {
    let mut port = Port::new();
    port.outb(FCR, FCR_FIFO_ENABLE | 0x80); // trigger level 8
    port.outb(IER, IER_RX_AVAILABLE);
    assert!(!port.uart.irq_level());
    port.uart.receive(b"ab");
    assert_eq!(port.inb(IIR), 0xcc, "below trigger: character timeout");
    port.uart.receive(b"cdefgh");
    assert_eq!(port.inb(IIR), 0xc4, "at trigger: data available");
    for &expected in b"abcdefgh" {
        assert_eq!(port.inb(RBR), expected);
    }
    assert_eq!(port.inb(IIR), 0xc1);
    assert!(!port.uart.irq_level());
}

#[test]
fn trigger_levels_follow_fcr_bits() {
    for (bits, level) in [(0x00u8, 1usize), (0x40, 4), (0x80, 8), (0xc0, 14)] {
        let mut port = Port::new();
        port.outb(FCR, FCR_FIFO_ENABLE | bits);
        port.outb(IER, IER_RX_AVAILABLE);
        port.uart.receive(&std::vec![b'x'; level - 1]);
        assert_ne!(port.inb(IIR) & 0x0f, 0x04, "level {level}");
        port.uart.receive(b"x");
        assert_eq!(port.inb(IIR) & 0x0f, 0x04, "level {level}");
    }
}

#[test]
fn rx_fifo_holds_16_and_overrun_sets_oe_once_read() {
    let mut port = Port::new();
    port.outb(FCR, FCR_FIFO_ENABLE);
    port.outb(IER, IER_LINE_STATUS | IER_RX_AVAILABLE);
    let input: std::vec::Vec<u8> = (0..18).collect();
    port.uart.receive(&input);
    assert_eq!(port.uart.overruns(), 2);
    assert_eq!(port.uart.rx_room(), 0);
    assert_eq!(port.inb(IIR), 0xc6, "line status outranks data");
    assert_eq!(port.inb(LSR) & (LSR_OVERRUN | LSR_DATA_READY), 0x03);
    assert_eq!(port.inb(LSR) & LSR_OVERRUN, 0, "reading LSR clears OE");
    assert_eq!(port.inb(IIR), 0xc4);
    for expected in 0..16 {
        assert_eq!(port.inb(RBR), expected, "the FIFO keeps the oldest bytes");
    }
    assert_eq!(port.inb(RBR), 0, "empty RBR reads zero");
}

#[test]
fn without_fifos_one_byte_is_held_and_a_new_one_overwrites_it() {
    let mut port = Port::new();
    port.uart.receive(b"ab");
    assert_eq!(port.uart.overruns(), 1);
    assert_eq!(port.inb(LSR) & LSR_OVERRUN, LSR_OVERRUN);
    assert_eq!(port.inb(RBR), b'b');
    assert_eq!(port.inb(LSR) & LSR_DATA_READY, 0);
}

#[test]
fn fifo_reset_and_mode_switch_empty_the_receiver() {
    let mut port = Port::new();
    port.outb(FCR, FCR_FIFO_ENABLE);
    port.uart.receive(b"abc");
    port.outb(FCR, FCR_FIFO_ENABLE | FCR_RX_RESET);
    assert_eq!(port.inb(LSR) & LSR_DATA_READY, 0);
    port.uart.receive(b"abc");
    port.outb(FCR, 0);
    assert_eq!(port.inb(LSR) & LSR_DATA_READY, 0);
}

#[test]
fn modem_status_interrupt_is_lowest_priority() {
    let mut port = Port::new();
    port.outb(IER, IER_MODEM_STATUS | IER_THR_EMPTY);
    port.outb(MCR, MCR_LOOP);
    assert_eq!(port.inb(IIR), 0x02, "THRE first");
    assert_eq!(port.inb(IIR), 0x00, "then modem status");
    port.inb(MSR);
    assert_eq!(port.inb(IIR), 0x01);
}

#[test]
fn disabled_interrupts_keep_the_line_low() {
    let mut port = Port::new();
    port.uart.receive(b"a");
    port.outb(MCR, MCR_LOOP);
    assert!(!port.uart.irq_level());
    assert_eq!(port.inb(IIR), 0x01);
}

#[test]
fn lsr_and_msr_writes_are_ignored() {
    let mut port = Port::new();
    port.outb(LSR, 0xff);
    port.outb(MSR, 0xff);
    assert_eq!(port.inb(LSR), LSR_THR_EMPTY | LSR_TX_EMPTY);
    assert_eq!(port.inb(MSR), 0xb0);
}

#[test]
fn wide_or_out_of_range_accesses_are_refused() {
    let mut uart = Uart16550::new();
    let mut env = TestEnv::default();
    assert_eq!(
        uart.read(0, AccessSize::Half, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        uart.write(0, AccessSize::Word, 0, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        uart.read(8, AccessSize::Byte, &mut env.env()),
        Err(DeviceError::OutOfRange)
    );
    assert_eq!(
        uart.write(8, AccessSize::Byte, 0, &mut env.env()),
        Err(DeviceError::OutOfRange)
    );
    assert!(env.output.0.is_empty());
}

proptest::proptest! {
    #[test]
    fn any_access_sequence_is_safe(ops in proptest::collection::vec((0u64..10, proptest::prelude::any::<u8>(), proptest::prelude::any::<bool>()), 0..200)) {
        let mut port = Port::new();
        for (reg, value, is_write) in ops {
            if is_write {
                let _ = port.uart.write(reg, AccessSize::Byte, u64::from(value), &mut port.env.env());
            } else if reg == 9 {
                port.uart.receive(&[value]);
            } else {
                let _ = port.uart.read(reg, AccessSize::Byte, &mut port.env.env());
            }
            proptest::prop_assert!(port.uart.rx_room() <= FIFO_DEPTH);
        }
    }
}
