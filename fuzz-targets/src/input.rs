//! Reads fuzz bytes as a sequence of operations: each call takes the next
//! bytes of the input, and an exhausted input reads as zeros, so every byte
//! string is a valid (possibly empty) sequence.

/// The unread rest of a fuzz input.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// The whole of `bytes`, unread.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte (0 once the input is exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    /// The next `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        out
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// The next byte's low bit.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number below `n` (`n` > 0) from the next byte.
    pub fn below(&mut self, n: u8) -> u8 {
        self.u8() % n.max(1)
    }

    /// Up to `max` of the next bytes (the length from one byte first).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let want = usize::from(self.u8()).min(max).min(self.bytes.len());
        let (taken, rest) = self.bytes.split_at(want);
        self.bytes = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::Input;

    #[test]
    fn reads_in_order_and_pads_with_zeros() {
        let mut input = Input::new(&[1, 2, 3, 4, 5]);
        assert_eq!(input.u8(), 1);
        assert_eq!(input.u16(), 0x0302);
        assert_eq!(input.u32(), 0x0000_0504);
        assert!(input.is_empty());
        assert_eq!(input.u64(), 0);
    }

    #[test]
    fn bytes_takes_at_most_what_is_left() {
        let mut input = Input::new(&[9, 7, 8]);
        assert_eq!(input.bytes(16), &[7, 8]);
        assert!(input.is_empty());
    }
}
