//! The bounded, deterministic fuzz run that `cargo test` does on stable:
//! every seed as it is, then inputs made by a seeded xorshift, either
//! random bytes or seeds mutated by bit flips, byte changes, truncations,
//! insertions and splices. A panic is caught and reported with the input
//! that caused it.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::{Target, seeds};

/// A target that panicked, and on what.
#[derive(Debug)]
pub struct Finding {
    /// The target.
    pub target: &'static str,
    /// The input that made it panic.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self
            .input
            .iter()
            .take(512)
            .map(|b| format!("{b:02x}"))
            .collect();
        write!(
            f,
            "{} panicked: {}\ninput ({} bytes): {}",
            self.target,
            self.message,
            self.input.len(),
            shown.join("")
        )
    }
}

/// A xorshift64* generator: the same seed gives the same inputs on every
/// machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is moved off zero).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n.max(1);
        usize::try_from(self.next_u64() % n as u64).unwrap_or(n - 1)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

/// Bytes mutators like to try: boundaries of every width.
const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20];

/// `base` changed by one to four mutations, some splicing in `other`.
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => out.truncate(rng.below(len)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                out.splice(at..at, bytes);
            }
            4 if !other.is_empty() => {
                let at = rng.below(len + 1);
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..to]);
            }
            5 if len > 1 => {
                let from = rng.below(len);
                let to = from + rng.below(len - from + 1);
                out.drain(from..to);
            }
            _ if len >= 4 => {
                // A little-endian word set to a boundary value.
                let at = rng.below(len - 3);
                let word = [0u32, 1, u32::MAX, 0x8000_0000][rng.below(4)];
                out[at..at + 4].copy_from_slice(&word.to_le_bytes());
            }
            _ => out.push(rng.byte()),
        }
    }
    out
}

/// The repository root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The committed corpus directory of `target`.
pub fn corpus_dir(target: &str) -> PathBuf {
    repo_root().join("fuzz").join("corpus").join(target)
}

/// Every file directly in `dir`, sorted by name (none if it is missing).
fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// The seeds of `target` that are valid inputs: built-in, and the files
/// of its extra directories.
pub fn valid_seeds(target: &str) -> Vec<Vec<u8>> {
    let mut all = seeds::generated(target);
    for dir in seeds::extra_dirs(target) {
        all.extend(files_in(&repo_root().join(dir)));
    }
    all
}

/// Everything `target` replays first: its valid seeds and the committed
/// corpus (crash regressions and other inputs worth keeping).
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut all = valid_seeds(target);
    all.extend(files_in(&corpus_dir(target)));
    all
}

/// Runs `target` once on `input`, catching a panic.
pub fn run_one(target: Target, input: &[u8]) -> Result<(), Finding> {
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned());
        Finding {
            target: target.name,
            input: input.to_vec(),
            message,
        }
    })
}

/// Runs `target` on every seed of `corpus`, then on `runs` generated
/// inputs from `seed`; returns how many inputs ran, or the first finding.
pub fn replay(
    target: Target,
    corpus: &[Vec<u8>],
    runs: usize,
    seed: u64,
) -> Result<usize, Finding> {
    for input in corpus {
        run_one(target, input)?;
    }
    let mut rng = Rng::new(seed);
    for _ in 0..runs {
        let input = if corpus.is_empty() || rng.below(4) == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.byte()).collect()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, base, other)
        };
        run_one(target, &input)?;
    }
    Ok(corpus.len() + runs)
}
