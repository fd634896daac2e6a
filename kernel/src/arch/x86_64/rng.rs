//! Hardware entropy on x86_64: RDSEED (an entropy source, which may run
//! dry and say so with CF = 0) with retries, then RDRAND (a DRBG reseeded
//! from it) with Intel's recommended ten retries. CPUID says which exist
//! (leaf 1 ECX bit 30: RDRAND; leaf 7 EBX bit 18: RDSEED). The choice and
//! the retry loop are pure (host-tested); the instructions exist only on
//! bare metal.

/// Which instructions the CPU has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngInstructions {
    /// RDSEED (CPUID.(EAX=7,ECX=0):EBX bit 18).
    pub rdseed: bool,
    /// RDRAND (CPUID.1:ECX bit 30).
    pub rdrand: bool,
}

impl RngInstructions {
    /// From CPUID: `max_leaf` (leaf 0 EAX), leaf 1 ECX and leaf 7 EBX
    /// (ignored when `max_leaf` is below 7).
    pub const fn from_cpuid(max_leaf: u32, leaf1_ecx: u32, leaf7_ebx: u32) -> RngInstructions {
        RngInstructions {
            rdseed: max_leaf >= 7 && leaf7_ebx & (1 << 18) != 0,
            rdrand: leaf1_ecx & (1 << 30) != 0,
        }
    }

    /// The name the boot log gives the source, `None` without one.
    pub const fn name(self) -> Option<&'static str> {
        match (self.rdseed, self.rdrand) {
            (true, true) => Some("RDSEED (RDRAND when it runs dry)"),
            (true, false) => Some("RDSEED"),
            (false, true) => Some("RDRAND"),
            (false, false) => None,
        }
    }
}

/// RDSEED tries per draw before falling back to RDRAND (RDSEED fails
/// while its conditioner refills; a retry after a pause usually succeeds).
pub const RDSEED_TRIES: u32 = 64;
/// RDRAND tries per draw (Intel's DRNG guide: ten, then assume failure).
pub const RDRAND_TRIES: u32 = 10;

/// 64 bits from `rdseed` (if present) or else `rdrand` (if present), each
/// a single instruction that returns `None` when it did not deliver
/// (CF = 0). All ones counts as a failure too: it is what some AMD parts'
/// broken RDRAND returns with CF = 1.
pub fn draw(
    have: RngInstructions,
    mut rdseed: impl FnMut() -> Option<u64>,
    mut rdrand: impl FnMut() -> Option<u64>,
) -> Option<u64> {
    let valid = |v: Option<u64>| v.filter(|&bits| bits != u64::MAX);
    if have.rdseed {
        for _ in 0..RDSEED_TRIES {
            if let Some(bits) = valid(rdseed()) {
                return Some(bits);
            }
            core::hint::spin_loop();
        }
    }
    if have.rdrand {
        for _ in 0..RDRAND_TRIES {
            if let Some(bits) = valid(rdrand()) {
                return Some(bits);
            }
        }
    }
    None
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use metal::{hardware_entropy, probe_entropy};

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod metal {
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::{RngInstructions, draw};

    /// Bit 0: RDSEED usable; bit 1: RDRAND usable (set by the probe).
    static HAVE: AtomicU8 = AtomicU8::new(0);

    fn have() -> RngInstructions {
        let bits = HAVE.load(Ordering::Relaxed);
        RngInstructions {
            rdseed: bits & 1 != 0,
            rdrand: bits & 2 != 0,
        }
    }

    fn rdseed() -> Option<u64> {
        let mut bits = 0u64;
        // SAFETY: only called when CPUID reported RDSEED (`probe_entropy`);
        // the instruction writes only `bits`.
        let ok = unsafe { core::arch::x86_64::_rdseed64_step(&mut bits) };
        (ok == 1).then_some(bits)
    }

    fn rdrand() -> Option<u64> {
        let mut bits = 0u64;
        // SAFETY: only called when CPUID reported RDRAND (`probe_entropy`);
        // the instruction writes only `bits`.
        let ok = unsafe { core::arch::x86_64::_rdrand64_step(&mut bits) };
        (ok == 1).then_some(bits)
    }

    /// Reads CPUID once at boot and draws one word to check that the
    /// source delivers: its name, or `None` (and every later
    /// `hardware_entropy` is `None`).
    pub fn probe_entropy() -> Option<&'static str> {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        let max_leaf = __cpuid(0).eax;
        let leaf7_ebx = if max_leaf >= 7 {
            __cpuid_count(7, 0).ebx
        } else {
            0
        };
        let found = RngInstructions::from_cpuid(max_leaf, __cpuid(1).ecx, leaf7_ebx);
        HAVE.store(
            u8::from(found.rdseed) | u8::from(found.rdrand) << 1,
            Ordering::Relaxed,
        );
        hardware_entropy()?;
        found.name()
    }

    /// 64 bits from RDSEED or RDRAND; `None` without them or when both
    /// failed every try.
    pub fn hardware_entropy() -> Option<u64> {
        draw(have(), rdseed, rdrand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: RngInstructions = RngInstructions {
        rdseed: true,
        rdrand: true,
    };

    #[test]
    fn cpuid_bits_name_the_instructions() {
        assert_eq!(RngInstructions::from_cpuid(7, 1 << 30, 1 << 18), BOTH);
        let rdrand_only = RngInstructions::from_cpuid(7, 1 << 30, 0);
        assert_eq!((rdrand_only.rdseed, rdrand_only.rdrand), (false, true));
        // Leaf 7 beyond the maximum leaf is not read as RDSEED.
        assert!(!RngInstructions::from_cpuid(6, 0, 1 << 18).rdseed);
        assert_eq!(RngInstructions::from_cpuid(0xd, 0, 0).name(), None);
    }

    #[test]
    fn rdseed_is_retried_before_rdrand_is_used() {
        let mut seeds = [None, None, Some(7)].into_iter();
        let got = draw(
            BOTH,
            || seeds.next().unwrap(),
            || panic!("RDRAND not needed"),
        );
        assert_eq!(got, Some(7));
    }

    #[test]
    fn a_dry_rdseed_falls_back_to_rdrand() {
        let mut seed_tries = 0;
        let mut rand_tries = 0;
        let got = draw(
            BOTH,
            || {
                seed_tries += 1;
                None
            },
            || {
                rand_tries += 1;
                (rand_tries == 3).then_some(42)
            },
        );
        assert_eq!(got, Some(42));
        assert_eq!(seed_tries, RDSEED_TRIES);
        assert_eq!(rand_tries, 3);
    }

    #[test]
    fn all_ones_is_a_failure_and_both_dry_is_none() {
        let mut rand_tries = 0;
        let got = draw(
            RngInstructions {
                rdseed: false,
                rdrand: true,
            },
            || panic!("no RDSEED on this CPU"),
            || {
                rand_tries += 1;
                Some(u64::MAX)
            },
        );
        assert_eq!(got, None);
        assert_eq!(rand_tries, RDRAND_TRIES);
        assert_eq!(
            draw(RngInstructions::default(), || Some(1), || Some(2)),
            None
        );
    }
}
