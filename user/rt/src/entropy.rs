//! Entropy for generation IDs and the guests' virtio-rng.
//!
//! [`KernelEntropy`] draws from the kernel's `entropy` call (the machine's
//! hardware source: RISC-V Zkr `seed`, x86 RDSEED/RDRAND; the task needs
//! the ENTROPY right) and reports `Error::NoEntropy` when there is none.
//!
//! [`RngService`] asks the rng service (`ipc::rng`), which drives the
//! host's virtio-rng device, for tasks the manifest lets call it.
//! [`RealEntropy`] takes the hardware first and the rng service once the
//! hardware failed; [`HardwareOrCounters`] adds the counters after both.
//!
//! [`CounterEntropy`] is **not** random: it mixes the `time` and `cycle`
//! counters through splitmix64, which anyone who knows roughly when a task
//! ran can guess. It is only a fallback that keeps generation IDs
//! distinct on a machine without a hardware source, and a task that uses
//! it must say so on the console.

use ipc::Error;
use ipc::rng;
use ipc::syscall::{endpoints, slots};

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

/// The rng service (`ipc::rng`, endpoint `RNG`: the host's virtio-rng
/// driven by the `rng` task) as a byte source; the call is injectable so
/// the plumbing is tested on the host.
pub struct RngService<C = fn(&rng::Request) -> Result<rng::Response, Error>> {
    call: C,
}

/// One request to the rng service through this task's call slot.
fn call_rng(request: &rng::Request) -> Result<rng::Response, Error> {
    crate::call_message(slots::call(endpoints::RNG), request)
}

impl RngService {
    /// Asks through the call slot of endpoint `RNG` (a task the manifest
    /// does not let call it gets `Error::InvalidArgument`).
    pub fn new() -> Self {
        RngService { call: call_rng }
    }
}

impl Default for RngService {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: FnMut(&rng::Request) -> Result<rng::Response, Error>> RngService<C> {
    /// Asks with `call`.
    pub fn with_call(call: C) -> Self {
        RngService { call }
    }

    /// Fills the start of `out` from the service, [`rng::MAX_FILL`] bytes
    /// a request at most, and returns how many bytes it gave, with the
    /// error that stopped it short. A service that died is asked once
    /// more (init restarts it); an answer with no bytes, or more than
    /// asked for, is `Error::Malformed`.
    pub fn fill_from(&mut self, out: &mut [u8]) -> (usize, Option<Error>) {
        let mut filled = 0;
        let mut retried = false;
        while let Some(rest) = out.get_mut(filled..).filter(|r| !r.is_empty()) {
            let want = rest.len().min(rng::MAX_FILL);
            let len = u16::try_from(want).unwrap_or(u16::MAX);
            let error = match (self.call)(&rng::Request::Fill { len }) {
                Ok(rng::Response::Bytes(bytes)) => {
                    match rest.get_mut(..bytes.len()).filter(|_| !bytes.is_empty()) {
                        Some(into) if bytes.len() <= want => {
                            into.copy_from_slice(&bytes);
                            filled += bytes.len();
                            continue;
                        }
                        _ => Error::Malformed,
                    }
                }
                Ok(rng::Response::Err(e)) | Err(e) => e,
            };
            if error == Error::ServerDied && !retried {
                retried = true;
                continue;
            }
            return (filled, Some(error));
        }
        (filled, None)
    }
}

/// Where random bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The kernel's `entropy` call: the CPU's own source.
    Hardware,
    /// The rng service: the host's virtio-rng.
    RngService,
}

/// Why no real entropy can be had: the kernel's error and the rng
/// service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRealEntropy {
    /// Why the kernel's `entropy` call failed.
    pub hardware: Error,
    /// Why the rng service failed.
    pub service: Error,
}

impl core::fmt::Display for NoRealEntropy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}; ", self.hardware)?;
        match self.service {
            Error::NoEntropy => f.write_str("and the host has no virtio-rng device"),
            Error::InvalidArgument | Error::PermissionDenied => {
                f.write_str("and there is no rng service (virtio-rng) to ask")
            }
            other => write!(f, "and the rng service (virtio-rng) failed: {other}"),
        }
    }
}

/// Why the kernel's hardware source is not used, for a console line:
/// `the CPU has no entropy source` for `Error::NoEntropy`, else the
/// kernel's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwareFailure(pub Error);

impl core::fmt::Display for HardwareFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Error::NoEntropy => {
                f.write_str("the CPU has no entropy source (RISC-V Zkr, x86 RDSEED/RDRAND)")
            }
            other => write!(f, "the kernel's entropy call failed: {other}"),
        }
    }
}

/// Real entropy only: the kernel's hardware source, then (once that
/// failed) the rng service; a source that failed is not asked again.
pub struct RealEntropy<
    D = fn() -> Result<u64, Error>,
    C = fn(&rng::Request) -> Result<rng::Response, Error>,
> {
    hardware: KernelEntropy<D>,
    service: RngService<C>,
    hardware_failed: Option<Error>,
    service_failed: Option<Error>,
}

impl RealEntropy {
    /// The `entropy` call, then the rng service through this task's call
    /// slot.
    pub fn new() -> Self {
        Self::with_sources(crate::sys::entropy, call_rng)
    }
}

impl Default for RealEntropy {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, C> RealEntropy<D, C>
where
    D: FnMut() -> Result<u64, Error>,
    C: FnMut(&rng::Request) -> Result<rng::Response, Error>,
{
    /// Draws 64 bits at a time with `draw`, then asks `call`.
    pub fn with_sources(draw: D, call: C) -> Self {
        RealEntropy {
            hardware: KernelEntropy::with_draw(draw),
            service: RngService::with_call(call),
            hardware_failed: None,
            service_failed: None,
        }
    }

    /// Fills all of `out` from the first source that gives all of it.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<Origin, NoRealEntropy> {
        if self.hardware_failed.is_none() {
            match self.hardware.fill(out) {
                Ok(()) => return Ok(Origin::Hardware),
                Err(e) => self.hardware_failed = Some(e),
            }
        }
        if self.service_failed.is_none() {
            match self.service.fill_from(out) {
                (_, None) => return Ok(Origin::RngService),
                (_, Some(e)) => self.service_failed = Some(e),
            }
        }
        Err(self.failure().unwrap_or(NoRealEntropy {
            hardware: Error::NoEntropy,
            service: Error::NoEntropy,
        }))
    }

    /// Fills the start of `out` with as many real bytes as the sources
    /// give and returns how many (0 with neither): for virtio-rng, which
    /// may write fewer bytes than the guest offered and must never hand
    /// it made-up ones.
    pub fn fill_prefix(&mut self, out: &mut [u8]) -> usize {
        let mut filled = 0;
        if self.hardware_failed.is_none() {
            filled = self.hardware.fill_prefix(out);
            if filled == out.len() {
                return filled;
            }
            self.hardware_failed = Some(Error::NoEntropy);
        }
        if self.service_failed.is_none()
            && let Some(rest) = out.get_mut(filled..)
        {
            let (given, error) = self.service.fill_from(rest);
            filled += given;
            self.service_failed = error;
        }
        filled
    }

    /// The source the next bytes come from, `None` once both failed.
    pub fn origin(&self) -> Option<Origin> {
        match (self.hardware_failed, self.service_failed) {
            (None, _) => Some(Origin::Hardware),
            (Some(_), None) => Some(Origin::RngService),
            (Some(_), Some(_)) => None,
        }
    }

    /// The kernel's error, once the hardware failed.
    pub fn hardware_failure(&self) -> Option<Error> {
        self.hardware_failed
    }

    /// Both errors, once both sources failed.
    pub fn failure(&self) -> Option<NoRealEntropy> {
        Some(NoRealEntropy {
            hardware: self.hardware_failed?,
            service: self.service_failed?,
        })
    }
}

/// Generation IDs from real entropy ([`RealEntropy`]: the hardware, then
/// the host's virtio-rng through the rng service), or, on a machine with
/// neither, from [`CounterEntropy`] with a warning on the console: the IDs
/// stay distinct, but anyone may guess them, and the operator is told so.
/// Each switch to a later source is said once.
pub struct HardwareOrCounters<
    D = fn() -> Result<u64, Error>,
    C = fn(&rng::Request) -> Result<rng::Response, Error>,
> {
    real: RealEntropy<D, C>,
    fallback: CounterEntropy,
    said_service: bool,
    said_counters: bool,
}

impl HardwareOrCounters {
    /// Through the `entropy` call and the rng service; `salt` (the
    /// restart count) keeps a restarted task's fallback from repeating
    /// itself.
    pub fn new(salt: u64) -> Self {
        Self::with_sources(crate::sys::entropy, call_rng, salt)
    }
}

impl<D, C> HardwareOrCounters<D, C>
where
    D: FnMut() -> Result<u64, Error>,
    C: FnMut(&rng::Request) -> Result<rng::Response, Error>,
{
    /// Draws 64 bits at a time with `draw`, then asks `call`.
    pub fn with_sources(draw: D, call: C, salt: u64) -> Self {
        HardwareOrCounters {
            real: RealEntropy::with_sources(draw, call),
            fallback: CounterEntropy::new(salt),
            said_service: false,
            said_counters: false,
        }
    }

    /// Whether real entropy answers now: one draw, at start, so that the
    /// source (or the lack of one) is named at boot rather than at the
    /// first VM.
    pub fn probe(&mut self) -> bool {
        let mut word = [0u8; 8];
        self.fill(&mut word)
    }

    /// Fills `out` from real entropy, or from the counters once neither
    /// real source answers (logged at each switch); whether the bytes are
    /// random.
    pub fn fill(&mut self, out: &mut [u8]) -> bool {
        match self.real.fill(out) {
            Ok(Origin::Hardware) => true,
            Ok(Origin::RngService) => {
                if !self.said_service {
                    self.said_service = true;
                    let why =
                        HardwareFailure(self.real.hardware_failure().unwrap_or(Error::NoEntropy));
                    log::info!(
                        "generation IDs come from the host's virtio-rng (the rng service): {why}"
                    );
                }
                true
            }
            Err(e) => {
                if !self.said_counters {
                    self.said_counters = true;
                    log::warn!(
                        "generation IDs are NOT random, they come from guessable counters: {e}"
                    );
                }
                self.fallback.fill(out);
                false
            }
        }
    }

    /// Where the next random bytes come from, `None` once they come from
    /// the counters.
    pub fn origin(&self) -> Option<Origin> {
        self.real.origin()
    }

    /// Why the IDs now come from the counters, if they do.
    pub fn failure(&self) -> Option<NoRealEntropy> {
        self.real.failure()
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

    /// An rng service that answers `byte`s, at most `per_answer` a time,
    /// and counts the requests.
    fn service(
        byte: u8,
        per_answer: usize,
        asked: &mut usize,
    ) -> impl FnMut(&rng::Request) -> Result<rng::Response, Error> + '_ {
        move |request| {
            *asked += 1;
            let rng::Request::Fill { len } = *request;
            let n = usize::from(len).min(per_answer);
            Ok(rng::Response::Bytes(
                heapless::Vec::from_slice(&vec![byte; n]).unwrap(),
            ))
        }
    }

    fn no_service(_: &rng::Request) -> Result<rng::Response, Error> {
        Ok(rng::Response::Err(Error::NoEntropy))
    }

    fn no_hardware() -> Result<u64, Error> {
        Err(Error::NoEntropy)
    }

    #[test]
    fn the_hardware_comes_first_and_the_service_is_not_asked() {
        let mut asked = 0;
        let mut source = HardwareOrCounters::with_sources(
            || Ok(0x1111_1111_1111_1111),
            service(7, 256, &mut asked),
            0,
        );
        let mut id = [0u8; 16];
        assert!(source.fill(&mut id));
        assert_eq!(id, [0x11; 16]);
        assert_eq!(source.origin(), Some(Origin::Hardware));
        drop(source);
        assert_eq!(asked, 0);
    }

    #[test]
    fn without_hardware_the_service_gives_random_ids() {
        let mut asked = 0;
        let mut source =
            HardwareOrCounters::with_sources(no_hardware, service(0x5a, 256, &mut asked), 0);
        assert!(
            source.probe(),
            "the probe names the service as a real source"
        );
        let mut id = [0u8; 16];
        assert!(source.fill(&mut id), "virtio-rng bytes are random");
        assert_eq!(id, [0x5a; 16]);
        assert_eq!(source.origin(), Some(Origin::RngService));
        assert_eq!(source.failure(), None);
        drop(source);
        assert_eq!(asked, 2, "one request per fill");
    }

    #[test]
    fn with_neither_the_counters_take_over_and_stay() {
        let mut asked = 0;
        let mut draws = 0;
        let mut source = HardwareOrCounters::with_sources(
            || {
                draws += 1;
                Err(Error::NoEntropy)
            },
            |_: &rng::Request| {
                asked += 1;
                Ok(rng::Response::Err(Error::NoEntropy))
            },
            0,
        );
        assert!(!source.probe());
        let failure = source.failure().unwrap();
        assert_eq!(failure.hardware, Error::NoEntropy);
        assert_eq!(failure.service, Error::NoEntropy);
        let text = failure.to_string();
        assert!(text.starts_with("no hardware entropy source"), "{text}");
        assert!(
            text.ends_with("and the host has no virtio-rng device"),
            "{text}"
        );
        let (mut b, mut c) = ([0u8; 16], [0u8; 16]);
        assert!(!source.fill(&mut b), "the counters' bytes are not random");
        assert!(!source.fill(&mut c));
        assert_ne!(b, [0; 16], "IDs stay distinct from the all-zero NONE");
        assert_ne!(b, c, "successive fallback IDs differ");
        assert_eq!(source.origin(), None);
        assert_eq!((draws, asked), (1, 1), "failed sources are not asked again");
    }

    #[test]
    fn a_hardware_failure_midway_moves_on_to_the_service() {
        let mut left = 1;
        let mut asked = 0;
        let mut source = HardwareOrCounters::with_sources(
            || {
                if left == 0 {
                    return Err(Error::NoEntropy);
                }
                left -= 1;
                Ok(u64::MAX)
            },
            service(3, 256, &mut asked),
            0,
        );
        let mut a = [0u8; 8];
        assert!(source.fill(&mut a));
        assert_eq!(a, [0xff; 8]);
        let mut b = [0u8; 16];
        assert!(source.fill(&mut b), "the service's bytes");
        assert_eq!(b, [3; 16]);
        assert_eq!(source.origin(), Some(Origin::RngService));
        drop(source);
        assert_eq!(asked, 1);
    }

    #[test]
    fn the_hardware_failure_is_said_plainly() {
        assert_eq!(
            HardwareFailure(Error::NoEntropy).to_string(),
            "the CPU has no entropy source (RISC-V Zkr, x86 RDSEED/RDRAND)"
        );
        assert!(
            HardwareFailure(Error::PermissionDenied)
                .to_string()
                .starts_with("the kernel's entropy call failed: ")
        );
    }

    #[test]
    fn a_task_without_the_service_names_that_and_falls_back() {
        let mut source = HardwareOrCounters::with_sources(
            no_hardware,
            |_: &rng::Request| Err(Error::InvalidArgument),
            0,
        );
        assert!(!source.probe());
        let text = source.failure().unwrap().to_string();
        assert!(
            text.ends_with("and there is no rng service (virtio-rng) to ask"),
            "{text}"
        );
    }

    #[test]
    fn large_fills_take_several_requests_and_short_answers_are_topped_up() {
        let mut asked = 0;
        let mut source = RngService::with_call(service(9, 100, &mut asked));
        let mut buf = [0u8; 600];
        assert_eq!(source.fill_from(&mut buf), (600, None));
        assert_eq!(buf, [9; 600]);
        drop(source);
        assert_eq!(asked, 6, "at most 100 bytes an answer");
        let mut requests = Vec::new();
        let mut source = RngService::with_call(|r: &rng::Request| {
            requests.push(r.clone());
            let rng::Request::Fill { len } = *r;
            let bytes = vec![1; usize::from(len)];
            Ok(rng::Response::Bytes(
                heapless::Vec::from_slice(&bytes).unwrap(),
            ))
        });
        let mut buf = [0u8; 300];
        assert_eq!(source.fill_from(&mut buf), (300, None));
        assert_eq!(
            requests,
            [
                rng::Request::Fill { len: 256 },
                rng::Request::Fill { len: 44 }
            ]
        );
    }

    #[test]
    fn a_bad_answer_is_malformed_and_a_dead_service_is_asked_once_more() {
        // More bytes than asked for, or none: the service is not trusted.
        let mut too_many = RngService::with_call(|_: &rng::Request| {
            Ok(rng::Response::Bytes(
                heapless::Vec::from_slice(&[1; 20]).unwrap(),
            ))
        });
        let mut buf = [0u8; 16];
        assert_eq!(too_many.fill_from(&mut buf), (0, Some(Error::Malformed)));
        assert_eq!(buf, [0; 16]);
        let mut empty = RngService::with_call(|_: &rng::Request| {
            Ok(rng::Response::Bytes(heapless::Vec::new()))
        });
        assert_eq!(empty.fill_from(&mut buf), (0, Some(Error::Malformed)));
        // Died once: init restarted it, the next answer counts.
        let mut calls = 0;
        let mut restarted = RngService::with_call(|_: &rng::Request| {
            calls += 1;
            if calls == 1 {
                return Err(Error::ServerDied);
            }
            Ok(rng::Response::Bytes(
                heapless::Vec::from_slice(&[4; 16]).unwrap(),
            ))
        });
        assert_eq!(restarted.fill_from(&mut buf), (16, None));
        // Died twice: given up.
        let mut dead = RngService::with_call(|_: &rng::Request| Err(Error::ServerDied));
        assert_eq!(dead.fill_from(&mut buf), (0, Some(Error::ServerDied)));
    }

    #[test]
    fn guest_bytes_are_real_or_none() {
        // Hardware for the first 8 bytes, the service for the rest.
        let mut left = 1;
        let mut asked = 0;
        let mut source = RealEntropy::with_sources(
            || {
                if left == 0 {
                    return Err(Error::NoEntropy);
                }
                left -= 1;
                Ok(u64::MAX)
            },
            service(2, 256, &mut asked),
        );
        let mut buf = [0u8; 20];
        assert_eq!(source.fill_prefix(&mut buf), 20);
        assert_eq!(buf[..8], [0xff; 8]);
        assert_eq!(buf[8..], [2; 12]);
        // Neither: nothing is made up.
        let mut none = RealEntropy::with_sources(no_hardware, no_service);
        let mut buf = [0u8; 20];
        assert_eq!(none.fill_prefix(&mut buf), 0);
        assert_eq!(buf, [0; 20]);
        assert_eq!(none.origin(), None);
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
