//! The interrupt vectors sent to an x86 vCPU and not yet taken (the
//! `X86_HYPERCALL_SEND_IPI` ABI): one bit per vector, a vector sent twice
//! before it is taken is taken once, and the highest goes first, as a
//! local APIC's request register would order them.

/// Vectors 0..=255, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingVectors([u64; 4]);

/// The lowest vector a guest may be sent: 0-31 are the CPU's exceptions.
pub const FIRST_INTERRUPT_VECTOR: u8 = 32;

impl PendingVectors {
    /// None pending.
    pub const fn new() -> Self {
        PendingVectors([0; 4])
    }

    /// Marks `vector` pending.
    pub fn set(&mut self, vector: u8) {
        self.0[usize::from(vector / 64)] |= 1 << (vector % 64);
    }

    /// Takes the highest pending vector.
    pub fn take_highest(&mut self) -> Option<u8> {
        let (word, bits) = self
            .0
            .iter_mut()
            .enumerate()
            .rev()
            .find(|(_, bits)| **bits != 0)?;
        let bit = 63 - bits.leading_zeros();
        *bits &= !(1 << bit);
        u8::try_from(word * 64 + bit as usize).ok()
    }

    /// Whether any vector is pending.
    pub fn any(&self) -> bool {
        self.0 != [0; 4]
    }

    /// Drops every pending vector.
    pub fn clear(&mut self) {
        self.0 = [0; 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_taken_once_highest_first() {
        let mut p = PendingVectors::new();
        assert!(!p.any());
        assert_eq!(p.take_highest(), None);
        for v in [0x40, 0xff, 0x20, 0x40, 0x7f, 0x80] {
            p.set(v);
        }
        assert!(p.any());
        let taken: [Option<u8>; 6] = core::array::from_fn(|_| p.take_highest());
        assert_eq!(
            taken,
            [
                Some(0xff),
                Some(0x80),
                Some(0x7f),
                Some(0x40),
                Some(0x20),
                None
            ]
        );
        assert!(!p.any());
    }

    #[test]
    fn clear_drops_everything() {
        let mut p = PendingVectors::new();
        p.set(33);
        p.set(200);
        p.clear();
        assert_eq!(p, PendingVectors::new());
    }
}
