//! Output through a 16550 UART: poll LSR.THRE, then write THR. Each access
//! is a single-byte MMIO access, which is the path Mica's UART model serves.

use core::fmt;

/// The board's UART (Mica's and QEMU virt's).
pub const UART_BASE: usize = 0x1000_0000;
const THR: usize = 0;
const LSR: usize = 5;
const LSR_THRE: u8 = 1 << 5;

/// The 16550 at [`UART_BASE`]; writes only.
pub struct Uart;

impl Uart {
    /// Sends one byte once the transmit holding register is empty.
    pub fn put(&mut self, byte: u8) {
        let lsr = (UART_BASE + LSR) as *const u8;
        let thr = (UART_BASE + THR) as *mut u8;
        // SAFETY: UART_BASE is the board's 16550 (a device, not RAM that Rust
        // owns); a volatile byte read of LSR has no side effect we rely on.
        while unsafe { lsr.read_volatile() } & LSR_THRE == 0 {
            core::hint::spin_loop();
        }
        // SAFETY: as above; a byte write to THR transmits `byte`.
        unsafe { thr.write_volatile(byte) };
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.put(b'\r');
            }
            self.put(byte);
        }
        Ok(())
    }
}

/// Prints to the UART like `print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::uart::Uart, format_args!($($arg)*));
    }};
}

/// Prints a line to the UART like `println!`.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        $crate::print!($($arg)*);
        $crate::print!("\n");
    }};
}
