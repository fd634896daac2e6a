//! A 16550A UART: eight byte-wide registers, 16-byte FIFOs, the divisor
//! latch, loopback, and the interrupt identification rules Linux's 8250
//! driver relies on.
//!
//! The transmitter is infinitely fast: a byte written to THR leaves at once
//! (to the output sink, or to the receive FIFO in loopback), so LSR always
//! reports THRE and TEMT, and a THR write re-arms the THR-empty interrupt.
//! The receive character timeout is taken to have elapsed at once: data
//! below the trigger level is reported as a timeout (IIR 0x0C), so input
//! never sits unannounced in the FIFO.

use heapless::Deque;

use crate::bus::{AccessSize, BusDevice, DeviceEnv, DeviceError, OutputSink};
use crate::persist::{Persist, Reader, Writer};

/// Bytes the UART occupies.
pub const UART_SIZE: u64 = 8;
/// Depth of each FIFO.
pub const FIFO_DEPTH: usize = 16;

const IER_RX_AVAILABLE: u8 = 0x01;
const IER_THR_EMPTY: u8 = 0x02;
const IER_LINE_STATUS: u8 = 0x04;
const IER_MODEM_STATUS: u8 = 0x08;

const IIR_NONE: u8 = 0x01;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_RX_AVAILABLE: u8 = 0x04;
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RX_TIMEOUT: u8 = 0x0c;
const IIR_FIFOS_ENABLED: u8 = 0xc0;

const FCR_FIFO_ENABLE: u8 = 0x01;
const FCR_RX_RESET: u8 = 0x02;
const FCR_TX_RESET: u8 = 0x04;

const LCR_DLAB: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;

const LSR_DATA_READY: u8 = 0x01;
const LSR_OVERRUN: u8 = 0x02;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_TX_EMPTY: u8 = 0x40;

const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;
const MSR_DELTA_CTS: u8 = 0x01;
const MSR_DELTA_DSR: u8 = 0x02;
const MSR_TRAILING_RI: u8 = 0x04;
const MSR_DELTA_DCD: u8 = 0x08;
/// The modem lines seen when not in loopback: a connected console asserts
/// CTS, DSR and DCD.
const MSR_CONNECTED: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// A 16550A UART.
#[derive(Debug)]
pub struct Uart16550 {
    rx: Deque<u8, FIFO_DEPTH>,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    lsr_errors: u8,
    msr: u8,
    scr: u8,
    divisor: u16,
    thr_empty_pending: bool,
    overruns: u64,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// A UART in its reset state (FIFOs off, interrupts off, 8N1 divisor 12).
    pub const fn new() -> Self {
        Self {
            rx: Deque::new(),
            ier: 0,
            fcr: 0,
            lcr: 0x03,
            mcr: MCR_OUT2,
            lsr_errors: 0,
            msr: MSR_CONNECTED,
            scr: 0,
            divisor: 12,
            thr_empty_pending: false,
            overruns: 0,
        }
    }

    /// Bytes arriving from outside (console input). Bytes that find the
    /// receiver full are lost, set LSR.OE and are counted.
    pub fn receive(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.receive_byte(byte);
        }
    }

    /// How many received bytes were lost to overruns since reset.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Room in the receiver, in bytes.
    pub fn rx_room(&self) -> usize {
        self.rx_capacity().saturating_sub(self.rx.len())
    }

    /// The baud-rate divisor latch (DLM:DLL).
    pub fn divisor(&self) -> u16 {
        self.divisor
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_FIFO_ENABLE != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    fn rx_trigger_level(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn receive_byte(&mut self, byte: u8) {
        if self.rx.len() < self.rx_capacity() {
            // Capacity is at most FIFO_DEPTH, so the deque has room.
            let _ = self.rx.push_back(byte);
            return;
        }
        self.overruns = self.overruns.saturating_add(1);
        self.lsr_errors |= LSR_OVERRUN;
        if !self.fifo_enabled() {
            // Without FIFOs the new character overwrites the holding register.
            self.rx.clear();
            let _ = self.rx.push_back(byte);
        }
    }

    fn transmit(&mut self, byte: u8, output: &mut dyn OutputSink) {
        if self.loopback() {
            self.receive_byte(byte);
        } else {
            output.write_byte(byte);
        }
        self.thr_empty_pending = true;
    }

    /// The modem status lines (MSR bits 4-7) the MCR and the outside drive.
    fn modem_lines(&self) -> u8 {
        if !self.loopback() {
            return MSR_CONNECTED;
        }
        let mut lines = 0;
        if self.mcr & MCR_RTS != 0 {
            lines |= MSR_CTS;
        }
        if self.mcr & MCR_DTR != 0 {
            lines |= MSR_DSR;
        }
        if self.mcr & MCR_OUT1 != 0 {
            lines |= MSR_RI;
        }
        if self.mcr & MCR_OUT2 != 0 {
            lines |= MSR_DCD;
        }
        lines
    }

    fn update_modem_status(&mut self) {
        let old = self.msr & 0xf0;
        let new = self.modem_lines();
        let changed = old ^ new;
        let mut deltas = self.msr & 0x0f;
        if changed & MSR_CTS != 0 {
            deltas |= MSR_DELTA_CTS;
        }
        if changed & MSR_DSR != 0 {
            deltas |= MSR_DELTA_DSR;
        }
        if old & MSR_RI != 0 && new & MSR_RI == 0 {
            deltas |= MSR_TRAILING_RI;
        }
        if changed & MSR_DCD != 0 {
            deltas |= MSR_DELTA_DCD;
        }
        self.msr = new | deltas;
    }

    fn lsr(&self) -> u8 {
        let ready = if self.rx.is_empty() {
            0
        } else {
            LSR_DATA_READY
        };
        ready | self.lsr_errors | LSR_THR_EMPTY | LSR_TX_EMPTY
    }

    /// The interrupt identification, highest priority first, without the
    /// FIFO bits.
    fn pending_interrupt(&self) -> u8 {
        if self.ier & IER_LINE_STATUS != 0 && self.lsr_errors != 0 {
            IIR_LINE_STATUS
        } else if self.ier & IER_RX_AVAILABLE != 0 && !self.rx.is_empty() {
            if self.rx.len() >= self.rx_trigger_level() {
                IIR_RX_AVAILABLE
            } else {
                IIR_RX_TIMEOUT
            }
        } else if self.ier & IER_THR_EMPTY != 0 && self.thr_empty_pending {
            IIR_THR_EMPTY
        } else if self.ier & IER_MODEM_STATUS != 0 && self.msr & 0x0f != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NONE
        }
    }

    fn read_iir(&mut self) -> u8 {
        let pending = self.pending_interrupt();
        if pending == IIR_THR_EMPTY {
            self.thr_empty_pending = false;
        }
        let fifo_bits = if self.fifo_enabled() {
            IIR_FIFOS_ENABLED
        } else {
            0
        };
        pending | fifo_bits
    }

    fn write_fcr(&mut self, value: u8) {
        if (value ^ self.fcr) & FCR_FIFO_ENABLE != 0 {
            // Switching the FIFOs on or off empties them.
            self.rx.clear();
        }
        if value & FCR_RX_RESET != 0 {
            self.rx.clear();
        }
        if value & FCR_TX_RESET != 0 {
            self.thr_empty_pending = true;
        }
        // The reset bits are self-clearing; keep enable and trigger level.
        self.fcr = value & 0xc9;
        if !self.fifo_enabled() {
            self.fcr = 0;
        }
        while self.rx.len() > self.rx_capacity() {
            self.rx.pop_front();
        }
    }

    fn write_ier(&mut self, value: u8) {
        let newly_enabled = value & !self.ier;
        self.ier = value & 0x0f;
        if newly_enabled & IER_THR_EMPTY != 0 {
            // The holding register is always empty: enabling ETBEI raises
            // the THR-empty interrupt at once.
            self.thr_empty_pending = true;
        }
    }

    /// A guest read of the register at `offset` (what
    /// [`BusDevice::read`] does: a UART read needs no environment).
    #[inline]
    pub fn read_access(&mut self, offset: u64, size: AccessSize) -> Result<u64, DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        if offset >= UART_SIZE {
            return Err(DeviceError::OutOfRange);
        }
        Ok(u64::from(self.read_register(offset)))
    }

    fn read_register(&mut self, register: u64) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match (register, dlab) {
            (0, false) => self.rx.pop_front().unwrap_or(0),
            (0, true) => self.divisor.to_le_bytes()[0],
            (1, false) => self.ier,
            (1, true) => self.divisor.to_le_bytes()[1],
            (2, _) => self.read_iir(),
            (3, _) => self.lcr,
            (4, _) => self.mcr,
            (5, _) => {
                let lsr = self.lsr();
                self.lsr_errors = 0;
                lsr
            }
            (6, _) => {
                let msr = self.msr;
                self.msr &= 0xf0;
                msr
            }
            _ => self.scr,
        }
    }

    fn write_register(&mut self, register: u64, value: u8, output: &mut dyn OutputSink) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match (register, dlab) {
            (0, false) => self.transmit(value, output),
            (0, true) => {
                let [_, high] = self.divisor.to_le_bytes();
                self.divisor = u16::from_le_bytes([value, high]);
            }
            (1, false) => self.write_ier(value),
            (1, true) => {
                let [low, _] = self.divisor.to_le_bytes();
                self.divisor = u16::from_le_bytes([low, value]);
            }
            (2, _) => self.write_fcr(value),
            (3, _) => self.lcr = value,
            (4, _) => {
                self.mcr = value & 0x1f;
                self.update_modem_status();
            }
            // LSR and MSR are read-only; writes are ignored as on hardware.
            (5 | 6, _) => {}
            _ => self.scr = value,
        }
    }
}

impl BusDevice for Uart16550 {
    fn size(&self) -> u64 {
        UART_SIZE
    }

    #[inline]
    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError> {
        self.read_access(offset, size)
    }

    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        if offset >= UART_SIZE {
            return Err(DeviceError::OutOfRange);
        }
        let byte = value.to_le_bytes()[0];
        self.write_register(offset, byte, env.output);
        Ok(())
    }

    fn irq_level(&self) -> bool {
        self.pending_interrupt() != IIR_NONE
    }
}

/// Kept: the line settings, the interrupt enables, the modem control and
/// the scratch register (the receive FIFO's bytes are not: input in
/// flight when the service dies is lost, as on a line that dropped).
impl Persist for Uart16550 {
    fn save(&self, out: &mut [u8]) -> usize {
        let mut w = Writer::new(out);
        w.u8(self.ier)
            .u8(self.fcr)
            .u8(self.lcr)
            .u8(self.mcr)
            .u8(self.scr)
            .u16(self.divisor);
        w.written()
    }

    fn restore(&mut self, saved: &[u8]) -> bool {
        let mut r = Reader::new(saved);
        let (Some(ier), Some(fcr), Some(lcr), Some(mcr), Some(scr), Some(divisor)) =
            (r.u8(), r.u8(), r.u8(), r.u8(), r.u8(), r.u16())
        else {
            return false;
        };
        if !r.is_done() {
            return false;
        }
        self.ier = ier & 0x0f;
        self.fcr = fcr & 0xc9;
        self.lcr = lcr;
        self.mcr = mcr & 0x1f;
        self.scr = scr;
        self.divisor = divisor;
        // The holding register is empty: a driver waiting for the
        // THR-empty interrupt when the service died gets it.
        self.thr_empty_pending = self.ier & IER_THR_EMPTY != 0;
        true
    }

    fn write_persists(&self, offset: u64) -> bool {
        // Transmitted bytes change nothing kept (the divisor latch's low
        // byte does, behind DLAB).
        offset != 0 || self.lcr & LCR_DLAB != 0
    }
}

#[cfg(test)]
#[path = "uart16550_tests.rs"]
mod tests;
