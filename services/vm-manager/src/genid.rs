//! VM generation IDs: 128-bit values drawn from an injected entropy source,
//! fresh whenever a VM could be a copy of another (create, clone, restore).

/// Where fresh generation IDs come from (a hardware RNG, virtio-rng, a
/// seeded CSPRNG ...). Tests inject a predictable one.
pub trait EntropySource {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8; 16]);
}

/// A VM generation ID (Microsoft's vmgenid): the guest reads it as 16 bytes,
/// little-endian, and is told when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GenerationId(u128);

impl GenerationId {
    /// What a VM without resources reports: all zero.
    pub const NONE: GenerationId = GenerationId(0);

    /// Draws a fresh ID from `entropy`.
    pub fn draw<E: EntropySource + ?Sized>(entropy: &mut E) -> GenerationId {
        let mut bytes = [0u8; 16];
        entropy.fill(&mut bytes);
        GenerationId(u128::from_le_bytes(bytes))
    }

    /// The ID as a number.
    pub const fn from_u128(value: u128) -> GenerationId {
        GenerationId(value)
    }

    /// The ID as a number.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The 16 bytes the guest reads (and `VmInfo.generation_id` carries).
    pub const fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed([u8; 16]);

    impl EntropySource for Fixed {
        fn fill(&mut self, out: &mut [u8; 16]) {
            *out = self.0;
        }
    }

    #[test]
    fn drawn_bytes_are_reported_unchanged_little_endian() {
        let bytes: [u8; 16] = core::array::from_fn(|i| u8::try_from(i + 1).unwrap());
        let id = GenerationId::draw(&mut Fixed(bytes));
        assert_eq!(id.to_le_bytes(), bytes);
        assert_eq!(id.as_u128() & 0xff, 1, "byte 0 is the least significant");
        assert_eq!(GenerationId::from_u128(id.as_u128()), id);
    }

    #[test]
    fn none_reports_zero_bytes() {
        assert_eq!(GenerationId::NONE.to_le_bytes(), [0; 16]);
    }
}
