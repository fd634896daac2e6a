//! The most recent console output of one VM, kept so a client (the host
//! `mica console NAME`) can read it back: a bounded ring of raw bytes, each
//! numbered by its position in everything the VM ever wrote.

use heapless::Vec;
use ipc::devices::ConsoleChunk;

/// Bytes of output kept per VM; older output is overwritten.
pub const CONSOLE_RING: usize = 4096;

/// A VM's recent console output, numbered from the first byte it wrote.
#[derive(Debug)]
pub struct ConsoleRing {
    bytes: [u8; CONSOLE_RING],
    /// The number of the first byte this ring saw (nonzero when it
    /// continues the numbering of a VM's earlier console, after a reset).
    start: u64,
    /// The number the next byte written gets.
    next: u64,
}

impl Default for ConsoleRing {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleRing {
    /// An empty ring whose first byte will be number 0.
    pub const fn new() -> Self {
        Self::starting_at(0)
    }

    /// An empty ring whose first byte will be number `start`: a VM whose
    /// devices were rebuilt keeps counting where it left off, so a reader
    /// neither re-reads nor misses output.
    pub const fn starting_at(start: u64) -> Self {
        Self {
            bytes: [0; CONSOLE_RING],
            start,
            next: start,
        }
    }

    /// The number the next byte written gets.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The number of the oldest byte still held.
    pub fn oldest(&self) -> u64 {
        self.next
            .saturating_sub(CONSOLE_RING as u64)
            .max(self.start)
    }

    /// Keeps one byte of output, overwriting the oldest when full.
    pub fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(Self::index(self.next)) {
            *slot = byte;
        }
        self.next = self.next.wrapping_add(1);
    }

    /// Up to `max` bytes (at most a chunk's capacity) from number `from` on. A `from` older than the ring
    /// holds starts at the oldest byte and counts the ones skipped as
    /// `lost`; a `from` beyond the output returns nothing, with `next`
    /// saying where output continues.
    pub fn read(&self, from: u64, max: usize) -> ConsoleChunk {
        let mut chunk = ConsoleChunk {
            next: self.next,
            lost: 0,
            bytes: Vec::new(),
        };
        if from > self.next {
            return chunk;
        }
        let oldest = self.oldest();
        let first = from.max(oldest);
        chunk.lost = first - from;
        let mut at = first;
        while at < self.next && chunk.bytes.len() < max {
            let Some(&byte) = self.bytes.get(Self::index(at)) else {
                break;
            };
            if chunk.bytes.push(byte).is_err() {
                break;
            }
            at += 1;
        }
        chunk.next = at;
        chunk
    }

    fn index(number: u64) -> usize {
        // The remainder is below CONSOLE_RING, so it fits a usize.
        usize::try_from(number % CONSOLE_RING as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte(n: usize) -> u8 {
        u8::try_from(n % 251).unwrap()
    }

    fn ring_with(text: &[u8]) -> ConsoleRing {
        let mut ring = ConsoleRing::new();
        for &byte in text {
            ring.push(byte);
        }
        ring
    }

    #[test]
    fn output_reads_back_in_pieces_from_any_point() {
        let ring = ring_with(b"hello world");
        let all = ring.read(0, 64);
        assert_eq!(
            (&all.bytes[..], all.next, all.lost),
            (&b"hello world"[..], 11, 0)
        );
        let first = ring.read(0, 5);
        assert_eq!((&first.bytes[..], first.next), (&b"hello"[..], 5));
        let rest = ring.read(first.next, 64);
        assert_eq!((&rest.bytes[..], rest.next), (&b" world"[..], 11));
        let nothing_new = ring.read(rest.next, 64);
        assert_eq!((nothing_new.bytes.len(), nothing_new.next), (0, 11));
    }

    #[test]
    fn a_reader_that_fell_behind_the_wrap_is_told_how_much_it_lost() {
        let mut ring = ConsoleRing::new();
        for n in 0..CONSOLE_RING + 10 {
            ring.push(byte(n));
        }
        assert_eq!(ring.oldest(), 10);
        let chunk = ring.read(3, 4);
        assert_eq!(chunk.lost, 7);
        assert_eq!(&chunk.bytes[..], &[10, 11, 12, 13]);
        assert_eq!(chunk.next, 14);
        // The newest bytes come out intact across the wrap of the buffer.
        let tail = ring.read(ring.next() - 3, 16);
        let total = CONSOLE_RING + 10;
        let expected: std::vec::Vec<u8> = (total - 3..total).map(byte).collect();
        assert_eq!((&tail.bytes[..], tail.lost), (&expected[..], 0));
    }

    #[test]
    fn a_reader_ahead_of_the_output_gets_nothing_and_where_it_continues() {
        let ring = ring_with(b"abc");
        let chunk = ring.read(1000, 16);
        assert_eq!((chunk.bytes.len(), chunk.lost, chunk.next), (0, 0, 3));
    }

    #[test]
    fn a_ring_that_continues_an_earlier_console_keeps_its_numbers() {
        let mut ring = ConsoleRing::starting_at(100);
        for &byte in b"again" {
            ring.push(byte);
        }
        let chunk = ring.read(100, 16);
        assert_eq!(
            (&chunk.bytes[..], chunk.next, chunk.lost),
            (&b"again"[..], 105, 0)
        );
        // Numbers before the start are gone, not readable as zeros.
        let chunk = ring.read(90, 16);
        assert_eq!((chunk.lost, &chunk.bytes[..]), (10, &b"again"[..]));
    }
}
