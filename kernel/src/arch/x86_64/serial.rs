//! The kernel console on COM1 (a 16550 UART at I/O port 0x3f8): 115200 8N1,
//! polled, set up on first use.

use core::sync::atomic::{AtomicBool, Ordering};

use super::port::{inb, outb};

const COM1: u16 = 0x3f8;
/// Line status register: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// Polls of LSR before a byte is sent anyway (a missing UART reads 0xff,
/// a stuck one must not hang the kernel).
const MAX_POLLS: u32 = 100_000;

static READY: AtomicBool = AtomicBool::new(false);

fn init() {
    // SAFETY: these are the standard COM1 registers; programming the divisor
    // (1 = 115200 baud), 8N1, FIFOs and DTR/RTS only affects the UART.
    unsafe {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB: divisor follows
        outb(COM1, 0x01);
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8 bits, no parity, 1 stop bit
        outb(COM1 + 2, 0xC7); // FIFOs on and cleared
        outb(COM1 + 4, 0x03); // DTR, RTS
    }
}

fn put(byte: u8) {
    for _ in 0..MAX_POLLS {
        // SAFETY: reading COM1's line status register has no side effect.
        if unsafe { inb(COM1 + 5) } & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writing the transmit register sends one byte on COM1.
    unsafe { outb(COM1, byte) };
}

/// Writes `text` to COM1, `\n` as CR LF.
pub fn console_write(text: &str) {
    if !READY.swap(true, Ordering::Relaxed) {
        init();
    }
    for byte in text.bytes() {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}

/// Line status register: a received byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;

/// Takes up to `buf.len()` bytes typed on COM1 without waiting; returns
/// how many.
pub fn console_read(buf: &mut [u8]) -> usize {
    if !READY.swap(true, Ordering::Relaxed) {
        init();
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reading COM1's line status register has no side effect.
        if unsafe { inb(COM1 + 5) } & LSR_DATA_READY == 0 {
            break;
        }
        // SAFETY: reading the receive register takes the waiting byte.
        buf[n] = unsafe { inb(COM1) };
        n += 1;
    }
    n
}
