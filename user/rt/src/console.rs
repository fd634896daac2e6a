//! The hypervisor console calls of the shell: reading typed bytes,
//! printing without ending the line, and halting the machine (see
//! `ipc::syscall::Sysno::{ConsoleRead, ConsolePut, Halt}`).

use ipc::Error;
use ipc::syscall::{MAX_CONSOLE_READ, MAX_DEBUG_WRITE, Sysno};

use crate::sys::checked;

/// Waits until bytes are typed at the console and copies up to
/// `buf.len()` (at most 16 per call) into `buf`; returns how many (at
/// least one). Needs the CONSOLE right.
pub fn read(buf: &mut [u8]) -> Result<usize, Error> {
    let max = buf.len().min(MAX_CONSOLE_READ);
    if max == 0 {
        return Ok(0);
    }
    let [n, lo, hi] = checked(Sysno::ConsoleRead, [max, 0, 0, 0, 0, 0])?;
    Ok(unpack(n.min(max), lo, hi, buf))
}

/// Copies the first `n` bytes packed little-endian in `lo`, `hi` into
/// `buf`; returns how many it copied.
fn unpack(n: usize, lo: usize, hi: usize, buf: &mut [u8]) -> usize {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(lo as u64).to_le_bytes());
    bytes[8..].copy_from_slice(&(hi as u64).to_le_bytes());
    let n = n.min(buf.len()).min(bytes.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    n
}

/// Prints `text` on the console without ending the line (longer text goes
/// in several calls). Needs the CONSOLE right.
pub fn put(text: &[u8]) -> Result<(), Error> {
    for chunk in text.chunks(MAX_DEBUG_WRITE) {
        checked(
            Sysno::ConsolePut,
            [chunk.as_ptr() as usize, chunk.len(), 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// Powers the machine off; QEMU exits with 0 for `status` 0. Returns only
/// if the kernel refused (no HALT right).
pub fn halt(status: u32) -> Error {
    match checked(Sysno::Halt, [status as usize, 0, 0, 0, 0, 0]) {
        Err(e) => e,
        Ok(_) => Error::KernelRefused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_of_the_registers_in_order() {
        let mut buf = [0u8; 16];
        let lo = usize::from_le_bytes(*b"vm list\n");
        let hi = usize::from_le_bytes(*b"halt\n\0\0\0");
        assert_eq!(unpack(13, lo, hi, &mut buf), 13);
        assert_eq!(&buf[..13], b"vm list\nhalt\n");
        let mut small = [0u8; 2];
        assert_eq!(unpack(13, lo, hi, &mut small), 2);
        assert_eq!(&small, b"vm");
    }

    #[test]
    fn without_a_kernel_the_calls_are_refused() {
        assert_eq!(read(&mut [0u8; 4]), Err(Error::KernelRefused));
        assert_eq!(put(b"mica> "), Err(Error::KernelRefused));
        assert_eq!(halt(0), Error::KernelRefused);
    }
}
