//! Entropy for generation IDs and the guests' virtio-rng.
//!
//! [`KernelEntropy`] draws from the kernel's `entropy` call (the machine's
//! hardware source: RISC-V Zkr `seed`, x86 RDSEED/RDRAND; the task needs
//! the ENTROPY right) and reports `Error::NoEntropy` when there is none.
//!
//! [`CounterEntropy`] is **not** random: it mixes the `time` and `cycle`
//! counters through splitmix64, which anyone who knows roughly when a task
//! ran can guess. It is only a fallback that keeps generation IDs
//! distinct on a machine without a hardware source, and a task that uses
//! it must say so on the console.

use ipc::Error;

/// The kernel's `entropy` call as a byte source; the draw is injectable so
/// the plumbing is tested on the host.
pub struct KernelEntropy<D = fn() -> Result<u64, Error>> {
    draw: D,
}

impl KernelEntropy {
    /// Draws through the `entropy` system call.
    pub fn new() -> Self {
        KernelEntropy {
            draw: crate::sys::entropy,
        }
    }
}

impl Default for KernelEntropy {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: FnMut() -> Result<u64, Error>> KernelEntropy<D> {
    /// Draws 64 bits at a time with `draw`.
    pub fn with_draw(draw: D) -> Self {
        KernelEntropy { draw }
    }

    /// Fills all of `out`, 8 bytes per draw, or fails with the first
    /// draw's error (`out` may then be partly filled: do not use it).
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        for chunk in out.chunks_mut(8) {
            let word = (self.draw)()?.to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }

    /// Fills the start of `out` with as many bytes as the source gives
    /// and returns how many: all of them, or fewer (0 without a source)
    /// once a draw fails. For virtio-rng, which may write fewer bytes than
    /// the guest offered, and must never hand it made-up ones.
    pub fn fill_prefix(&mut self, out: &mut [u8]) -> usize {
        let mut filled = 0;
        for chunk in out.chunks_mut(8) {
            let Ok(word) = (self.draw)() else { break };
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
            filled += chunk.len();
        }
        filled
    }
}

/// Generation IDs from the hardware source, or, on a machine without one,
/// from [`CounterEntropy`] with a warning on the console: the IDs stay
/// distinct, but anyone may guess them, and the operator is told so.
pub struct HardwareOrCounters<D = fn() -> Result<u64, Error>> {
    hardware: KernelEntropy<D>,
    fallback: CounterEntropy,
    /// The hardware's error once a draw failed (every later draw then
    /// comes from the counters).
    failed: Option<Error>,
}

impl HardwareOrCounters {
    /// Through the `entropy` call; `salt` (the restart count) keeps a
    /// restarted task's fallback from repeating itself.
    pub fn new(salt: u64) -> Self {
        Self::with_draw(crate::sys::entropy, salt)
    }
}

impl<D: FnMut() -> Result<u64, Error>> HardwareOrCounters<D> {
    /// Draws 64 bits at a time with `draw`.
    pub fn with_draw(draw: D, salt: u64) -> Self {
        HardwareOrCounters {
            hardware: KernelEntropy::with_draw(draw),
            fallback: CounterEntropy::new(salt),
            failed: None,
        }
    }

    /// Whether the hardware answers now: one draw, at start, so that a
    /// machine without a source is named at boot rather than at the first
    /// VM. Logs the warning (once) when it does not.
    pub fn probe(&mut self) -> bool {
        let mut word = [0u8; 8];
        self.fill(&mut word)
    }

    /// Fills `out` from the hardware, or from the counters once the
    /// hardware failed (logged at the switch); whether the bytes are
    /// random, i.e. came from the hardware.
    pub fn fill(&mut self, out: &mut [u8]) -> bool {
        if self.failed.is_none() {
            match self.hardware.fill(out) {
                Ok(()) => return true,
                Err(e) => {
                    log::warn!(
                        "generation IDs are NOT random, they come from guessable counters: {e}"
                    );
                    self.failed = Some(e);
                }
            }
        }
        self.fallback.fill(out);
        false
    }

    /// The hardware's error if the IDs now come from the counters.
    pub fn failure(&self) -> Option<Error> {
        self.failed
    }
}

/// NOT random: counter readings mixed into a splitmix64 state (see the
/// module documentation), for a machine without a hardware source.
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
    fn kernel_words_fill_bytes_little_endian_and_odd_lengths() {
        let mut words = [0x0807_0605_0403_0201u64, 0x100f_0e0d_0c0b_0a09].into_iter();
        let mut source = KernelEntropy::with_draw(|| words.next().ok_or(Error::NoEntropy));
        let mut id = [0u8; 11];
        assert_eq!(source.fill(&mut id), Ok(()));
        assert_eq!(id, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn without_a_source_fill_fails_and_the_prefix_is_empty() {
        let mut source = KernelEntropy::with_draw(|| Err(Error::NoEntropy));
        let mut id = [0u8; 16];
        assert_eq!(source.fill(&mut id), Err(Error::NoEntropy));
        assert_eq!(source.fill_prefix(&mut id), 0);
        assert_eq!(id, [0; 16], "no byte was made up");
    }

    #[test]
    fn a_source_that_fails_midway_gives_only_what_it_drew() {
        let mut left = 2;
        let mut source = KernelEntropy::with_draw(|| {
            if left == 0 {
                return Err(Error::NoEntropy);
            }
            left -= 1;
            Ok(u64::MAX)
        });
        let mut buf = [0u8; 20];
        assert_eq!(source.fill_prefix(&mut buf), 16);
        assert_eq!(buf[..16], [0xff; 16]);
        assert_eq!(buf[16..], [0; 4]);
    }

    #[test]
    fn the_fallback_takes_over_only_when_the_hardware_fails_and_stays() {
        let mut left = 1;
        let mut draws = 0;
        let mut source = HardwareOrCounters::with_draw(
            || {
                draws += 1;
                if left == 0 {
                    return Err(Error::NoEntropy);
                }
                left -= 1;
                Ok(0x1111_1111_1111_1111)
            },
            0,
        );
        let mut a = [0u8; 8];
        assert!(source.fill(&mut a), "the hardware's bytes");
        assert_eq!(a, [0x11; 8]);
        assert_eq!(source.failure(), None);
        let mut b = [0u8; 16];
        assert!(!source.fill(&mut b), "the counters' bytes are not random");
        assert_eq!(source.failure(), Some(Error::NoEntropy));
        assert_ne!(b, [0; 16], "IDs stay distinct from the all-zero NONE");
        let mut c = [0u8; 16];
        assert!(!source.fill(&mut c));
        assert_ne!(b, c, "successive fallback IDs differ");
        drop(source);
        assert_eq!(draws, 2, "the failed hardware is not asked again");
    }

    #[test]
    fn the_probe_says_whether_the_hardware_answers() {
        assert!(HardwareOrCounters::with_draw(|| Ok(5), 0).probe());
        let mut none = HardwareOrCounters::with_draw(|| Err(Error::NoEntropy), 0);
        assert!(!none.probe());
        assert_eq!(none.failure(), Some(Error::NoEntropy));
    }

    #[test]
    fn on_the_host_the_kernel_call_is_refused() {
        let mut id = [0u8; 16];
        assert_eq!(
            KernelEntropy::new().fill(&mut id),
            Err(Error::KernelRefused)
        );
    }

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
