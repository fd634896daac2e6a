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
use ipc::syscall::endpoints;

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

/// How long a request to the rng service may take: it answers at once
/// unless its device hangs (then the request fails as `ServiceHung` and
/// the watchdog restarts the service).
const RNG_DEADLINE_MS: u64 = 2_000;

/// One request to the rng service through this task's call slot.
fn call_rng(request: &rng::Request) -> Result<rng::Response, Error> {
    crate::call_service(endpoints::RNG, request, RNG_DEADLINE_MS)
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
#[path = "entropy_tests.rs"]
mod tests;
