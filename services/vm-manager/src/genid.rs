//! VM generation IDs: 128-bit values drawn from an injected entropy source,
//! fresh whenever a VM could be a copy of another (create, clone, restore).

/// Where fresh generation IDs come from (a hardware RNG, virtio-rng, a
/// seeded CSPRNG ...). Tests inject a predictable one.
pub trait EntropySource {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8; 16]);

    /// Whether the last `fill` was random: `false` from a source that,
    /// with no hardware entropy, fell back to something guessable.
    fn last_was_random(&self) -> bool {
        true
    }
}

/// A VM generation ID (Microsoft's vmgenid): the guest reads it as 16 bytes,
/// little-endian, and is told when it changes.
/// It remembers whether it was drawn from hardware entropy (`vm info` marks
/// one that was not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GenerationId {
    value: u128,
    random: bool,
}

impl GenerationId {
    /// What a VM without resources reports: all zero.
    pub const NONE: GenerationId = GenerationId::from_u128(0);

    /// Draws a fresh ID from `entropy`.
    pub fn draw<E: EntropySource + ?Sized>(entropy: &mut E) -> GenerationId {
        let mut bytes = [0u8; 16];
        entropy.fill(&mut bytes);
        GenerationId {
            value: u128::from_le_bytes(bytes),
            random: entropy.last_was_random(),
        }
    }

    /// The ID `value` (taken as random).
    pub const fn from_u128(value: u128) -> GenerationId {
        GenerationId {
            value,
            random: true,
        }
    }

    /// The ID as a number.
    pub const fn as_u128(self) -> u128 {
        self.value
    }

    /// Whether it was drawn from hardware entropy (`false`: guessable).
    pub const fn is_random(self) -> bool {
        self.random
    }

    /// The 16 bytes the guest reads (and `VmInfo.generation_id` carries).
    pub const fn to_le_bytes(self) -> [u8; 16] {
        self.value.to_le_bytes()
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

    /// A source that lost its hardware and fell back to counters.
    struct Guessable;

    impl EntropySource for Guessable {
        fn fill(&mut self, out: &mut [u8; 16]) {
            *out = [7; 16];
        }
        fn last_was_random(&self) -> bool {
            false
        }
    }

    #[test]
    fn an_id_remembers_whether_it_was_random() {
        assert!(GenerationId::draw(&mut Fixed([1; 16])).is_random());
        let guessable = GenerationId::draw(&mut Guessable);
        assert!(!guessable.is_random());
        assert_eq!(guessable.to_le_bytes(), [7; 16]);
    }

    #[test]
    fn none_reports_zero_bytes() {
        assert_eq!(GenerationId::NONE.to_le_bytes(), [0; 16]);
    }
}
