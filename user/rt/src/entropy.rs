//! A STOPGAP entropy source for generation IDs and virtio-rng: the kernel
//! has no random-number call yet, so this mixes the RISC-V `time` and
//! `cycle` counters (readable in U-mode) through a splitmix64 generator.
//!
//! It is **not** cryptographically strong: the counters are guessable and
//! the generator is not a CSPRNG. It gives distinct, unpredictable-enough
//! IDs for a demo and must be replaced by a kernel entropy call (backed by
//! `Zkr`'s `seed` CSR or a host virtio-rng) before anything depends on it.

/// Mixes counter readings into a splitmix64 state.
#[derive(Clone, Debug)]
pub struct CounterEntropy {
    state: u64,
}

/// The splitmix64 increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// One splitmix64 output for `state` (Steele, Lea, Flood 2014).
const fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl CounterEntropy {
    /// A source seeded from the counters now and `salt` (e.g. the task's
    /// restart count, so a restarted task does not repeat itself).
    pub fn new(salt: u64) -> Self {
        let mut source = CounterEntropy {
            state: splitmix64(salt ^ GOLDEN),
        };
        source.stir();
        source
    }

    /// Folds fresh counter readings into the state.
    fn stir(&mut self) {
        let (time, cycle) = counters();
        self.state = splitmix64(self.state ^ time).wrapping_add(cycle.rotate_left(32));
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.stir();
        self.state = self.state.wrapping_add(GOLDEN);
        splitmix64(self.state)
    }

    /// Fills `out` with bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The `time` and `cycle` counters.
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
fn counters() -> (u64, u64) {
    let (time, cycle): (u64, u64);
    // SAFETY: reading the `time` and `cycle` CSRs has no side effect and
    // touches no memory; both are readable in U-mode on Mica (the kernel
    // sets scounteren.TM/CY; if it did not, the read would trap and the
    // kernel would stop this task, not corrupt it).
    unsafe {
        core::arch::asm!(
            "rdtime {t}",
            "rdcycle {c}",
            t = out(reg) time,
            c = out(reg) cycle,
            options(nomem, nostack),
        );
    }
    (time, cycle)
}

/// The time stamp counter, twice (x86_64 has no separate cycle counter
/// readable in ring 3; the second read differs by the instructions between).
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
fn counters() -> (u64, u64) {
    // SAFETY: `rdtsc` only reads the time stamp counter (CR4.TSD is clear,
    // so ring 3 may; if it were set the task would fault and be stopped).
    let time = unsafe { core::arch::x86_64::_rdtsc() };
    // SAFETY: as above.
    let cycle = unsafe { core::arch::x86_64::_rdtsc() };
    (time, cycle.rotate_left(17))
}

/// Host builds: a changing stand-in so tests see distinct readings.
#[cfg(not(target_os = "none"))]
fn counters() -> (u64, u64) {
    use core::sync::atomic::{AtomicU64, Ordering};
    static TICKS: AtomicU64 = AtomicU64::new(1);
    let t = TICKS.fetch_add(1, Ordering::Relaxed);
    (t, t.wrapping_mul(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_values() {
        // splitmix64 seeded with 0: the first output of the reference code
        // (state += GOLDEN, then mix).
        assert_eq!(splitmix64(GOLDEN), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn successive_fills_differ_and_cover_every_byte() {
        let mut source = CounterEntropy::new(0);
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        source.fill(&mut a);
        source.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        let mut odd = [0u8; 5];
        source.fill(&mut odd);
        assert_ne!(odd, [0; 5]);
    }

    #[test]
    fn different_salts_give_different_streams() {
        let mut a = CounterEntropy::new(1);
        let mut b = CounterEntropy::new(2);
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
