//! Hardware entropy from the Zkr extension's `seed` CSR (RISC-V scalar
//! cryptography spec v1.0, section "Entropy Source"). Each read returns a
//! status in bits 31:30 (OPST) and, when the status is ES16, 16 bits of
//! entropy in bits 15:0:
//!
//! - `BIST` (00): the source is running its built-in self test; poll again.
//! - `WAIT` (01): no entropy yet; poll again.
//! - `ES16` (10): bits 15:0 are entropy.
//! - `DEAD` (11): an unrecoverable self-test failure; never poll again.
//!
//! The decoding and the polling loop are pure (host-tested); reading the
//! CSR (which S-mode may only do when M-mode firmware set mseccfg.SSEED,
//! as OpenSBI does on a hart with Zkr) exists only on bare metal. The
//! kernel probes once at boot: a read that traps, or a DEAD source, means
//! "no hardware entropy" and the `entropy` call answers `NoEntropy`.

/// What one read of `seed` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedStatus {
    /// Built-in self test running: poll again.
    Bist,
    /// No entropy available yet: poll again.
    Wait,
    /// Sixteen bits of entropy.
    Es16(u16),
    /// The source failed for good.
    Dead,
}

/// Decodes one value read from `seed` (OPST in bits 31:30; the reserved
/// and custom bits 29:16 are ignored, as the spec requires).
pub const fn decode(value: u64) -> SeedStatus {
    match (value >> 30) & 0b11 {
        0b00 => SeedStatus::Bist,
        0b01 => SeedStatus::Wait,
        0b10 => SeedStatus::Es16((value & 0xffff) as u16),
        _ => SeedStatus::Dead,
    }
}

/// Why no 64 bits could be collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedFailure {
    /// The source reported DEAD.
    Dead,
    /// BIST or WAIT for more than the allowed number of polls.
    TimedOut,
}

/// How many BIST/WAIT reads one 64-bit draw tolerates before it gives up
/// (a healthy source answers ES16 within a few; QEMU's at once).
pub const MAX_IDLE_POLLS: u32 = 100_000;

/// Collects 64 bits, 16 per ES16 read of `read` (the first read's bits
/// lowest), tolerating at most `max_idle` BIST/WAIT reads in all.
pub fn collect(mut read: impl FnMut() -> u64, max_idle: u32) -> Result<u64, SeedFailure> {
    let mut bits = 0u64;
    let mut got = 0;
    let mut idle = 0u32;
    while got < 4 {
        match decode(read()) {
            SeedStatus::Es16(word) => {
                bits |= u64::from(word) << (16 * got);
                got += 1;
            }
            SeedStatus::Bist | SeedStatus::Wait => {
                idle += 1;
                if idle > max_idle {
                    return Err(SeedFailure::TimedOut);
                }
                core::hint::spin_loop();
            }
            SeedStatus::Dead => return Err(SeedFailure::Dead),
        }
    }
    Ok(bits)
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use metal::{hardware_entropy, probe_entropy};

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod metal {
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::{MAX_IDLE_POLLS, SeedFailure, collect};

    /// 0: not probed or no `seed`; 1: `seed` usable; 2: it reported DEAD.
    static STATE: AtomicU8 = AtomicU8::new(0);
    const USABLE: u8 = 1;
    const DEAD: u8 = 2;

    /// One read of `seed` (CSR 0x015) with `csrrw`, as the spec requires
    /// (a read-only `csrrs` is an illegal instruction).
    fn read_seed() -> u64 {
        let value: u64;
        // SAFETY: only called after `probe_entropy` read `seed` without a
        // trap, so S-mode may access it (mseccfg.SSEED is set and never
        // cleared by M-mode); the write of x0 is ignored by the CSR and the
        // read touches no memory.
        unsafe {
            core::arch::asm!("csrrw {v}, 0x015, x0", v = out(reg) value, options(nomem, nostack));
        }
        value
    }

    /// Whether S-mode can read `seed`: a guarded read that an
    /// illegal-instruction trap (no Zkr, or mseccfg.SSEED clear) skips.
    fn seed_readable() -> bool {
        super::super::trap::csr_probe!("csrrw  {tmp}, 0x015, x0")
    }

    /// Probes the `seed` CSR once at boot (interrupts off) and draws one
    /// word to check its health: the source's name, or `None` (and every
    /// later `hardware_entropy` is `None`).
    pub fn probe_entropy() -> Option<&'static str> {
        if !seed_readable() {
            return None;
        }
        STATE.store(USABLE, Ordering::Relaxed);
        hardware_entropy().map(|_| "the Zkr seed CSR")
    }

    /// 64 bits from `seed`; `None` without it or once it reported DEAD.
    pub fn hardware_entropy() -> Option<u64> {
        if STATE.load(Ordering::Relaxed) != USABLE {
            return None;
        }
        match collect(read_seed, MAX_IDLE_POLLS) {
            Ok(bits) => Some(bits),
            Err(SeedFailure::Dead) => {
                STATE.store(DEAD, Ordering::Relaxed);
                None
            }
            Err(SeedFailure::TimedOut) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES16: u64 = 0b10 << 30;
    const WAIT: u64 = 0b01 << 30;
    const BIST: u64 = 0;
    const DEAD: u64 = 0b11 << 30;

    #[test]
    fn each_opst_value_decodes_to_its_status() {
        assert_eq!(decode(BIST | 0x1234), SeedStatus::Bist);
        assert_eq!(decode(WAIT | 0x1234), SeedStatus::Wait);
        assert_eq!(decode(ES16 | 0xbeef), SeedStatus::Es16(0xbeef));
        assert_eq!(decode(DEAD | 0xbeef), SeedStatus::Dead);
    }

    #[test]
    fn reserved_and_custom_bits_are_not_entropy() {
        // Bits 29:16 (reserved, custom) and above 31 never reach the output.
        let noisy = ES16 | 0x3fff_0000 | 0xffff_ffff_0000_0000 | 0x00a5;
        assert_eq!(decode(noisy), SeedStatus::Es16(0x00a5));
    }

    fn reads(values: &[u64]) -> impl FnMut() -> u64 + '_ {
        let mut next = values.iter();
        move || *next.next().expect("no more reads expected")
    }

    #[test]
    fn four_es16_reads_make_one_word_first_read_lowest() {
        let values = [ES16 | 0x1111, ES16 | 0x2222, ES16 | 0x3333, ES16 | 0x4444];
        assert_eq!(collect(reads(&values), 10), Ok(0x4444_3333_2222_1111));
    }

    #[test]
    fn bist_and_wait_are_skipped_not_taken_as_bits() {
        let values = [
            BIST | 0xffff,
            ES16 | 0x0001,
            WAIT | 0xffff,
            WAIT,
            ES16 | 0x0002,
            ES16 | 0x0003,
            BIST,
            ES16 | 0x0004,
        ];
        assert_eq!(collect(reads(&values), 10), Ok(0x0004_0003_0002_0001));
    }

    #[test]
    fn dead_ends_the_draw_even_after_some_bits() {
        let values = [ES16 | 0x1111, ES16 | 0x2222, DEAD | 0x3333];
        assert_eq!(collect(reads(&values), 10), Err(SeedFailure::Dead));
    }

    #[test]
    fn a_source_that_never_delivers_times_out() {
        let mut polls = 0u32;
        let stuck = || {
            polls += 1;
            WAIT
        };
        assert_eq!(collect(stuck, 50), Err(SeedFailure::TimedOut));
        assert_eq!(polls, 51, "50 idle polls tolerated, the 51st gives up");
    }
}
