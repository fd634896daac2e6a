//! Console input from the firmware: SBI DBCN `console_read`, or the legacy
//! getchar call on firmware without DBCN. Never waits for a key.

use core::sync::atomic::{AtomicU8, Ordering};

use super::sbi::{EID_DBCN, ecall, probe};

const EID_LEGACY_GETCHAR: usize = 0x02;
const DBCN_READ: usize = 1;

/// 0 = not probed yet, 1 = DBCN, 2 = legacy getchar only.
static INPUT_KIND: AtomicU8 = AtomicU8::new(0);

/// Reads the bytes typed at the console that are pending now, up to
/// `buf.len()`; returns how many (0 when nothing is pending).
pub fn console_read(buf: &mut [u8]) -> usize {
    let kind = match INPUT_KIND.load(Ordering::Relaxed) {
        0 => {
            let kind = if probe(EID_DBCN) { 1 } else { 2 };
            INPUT_KIND.store(kind, Ordering::Relaxed);
            kind
        }
        k => k,
    };
    if kind == 1 {
        // The kernel runs identity-mapped: the buffer's address is physical.
        let (error, read) = ecall(EID_DBCN, DBCN_READ, buf.len(), buf.as_mut_ptr() as usize, 0);
        return if error == 0 { read.min(buf.len()) } else { 0 };
    }
    let mut n = 0;
    for slot in buf.iter_mut() {
        // Legacy getchar returns the byte in a0, or -1 when none is pending.
        let (byte, _) = ecall(EID_LEGACY_GETCHAR, 0, 0, 0, 0);
        let Ok(byte) = u8::try_from(byte) else {
            break;
        };
        *slot = byte;
        n += 1;
    }
    n
}
