//! Driving a hostile test guest (vm1) beside a `steady` one (vm0): wait
//! for each phase's line and check it says `ok`, then measure vm0's
//! progress alone (before vm1's first phase) and beside vm1 spinning.

use std::time::Duration;

use crate::Session;
use crate::steady;

/// Ticks of `steady` measured beside the spinning VM.
pub const TICKS_BESIDE: usize = 4;

/// What the session saw of a hostile run: vm0's timebase (clock counts
/// per tick), where vm1 started its phases, and each phase's line.
pub struct Phases {
    /// vm0's clock counts per tick (`steady: timebase N`).
    pub timebase: u64,
    /// The transcript index just past `vm1 | hostile: start`.
    pub started: usize,
    /// Each phase's line, in order.
    pub lines: Vec<String>,
}

/// Waits for vm0's timebase, vm1's start and then each of `phases` in
/// order (`vm1 | hostile: <phase> ok (...)`, anything else fails), each
/// within `wait`.
pub fn expect_phases(s: &mut Session, phases: &[&str], wait: Duration) -> Result<Phases, String> {
    let timebase = s.expect("vm0 | steady: timebase ", wait)?;
    let timebase = timebase
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no timebase in {timebase:?}"))?;
    s.expect("vm1 | hostile: start", wait)?;
    let started = s.position();
    let mut lines = Vec::new();
    for phase in phases {
        let line = s.expect(&format!("vm1 | hostile: {phase} "), wait)?;
        if !line.starts_with(&format!("vm1 | hostile: {phase} ok (")) {
            return Err(format!("{line}\n{:?}", s.transcript()));
        }
        lines.push(line);
    }
    Ok(Phases {
        timebase,
        started,
        lines,
    })
}

/// Waits for `vm1 | hostile: spinning` and [`TICKS_BESIDE`] ticks of vm0
/// after it, then checks vm0's progress ([`steady::check_progress`]):
/// ticks at most `max_gap` timebases apart, and at least
/// `1/min_share_inverse` of its spins per tick alone. Also fails on any
/// line saying a VM stopped, powered off or failed a check, and on more
/// than a few ioreq warnings. Returns the mean spins per tick alone and
/// beside the spinner.
pub fn expect_steady_progress(
    s: &mut Session,
    phases: &Phases,
    max_gap: f64,
    min_share_inverse: u64,
    wait: Duration,
) -> Result<(u64, u64), String> {
    s.expect("vm1 | hostile: spinning", wait)?;
    let spinning = s.position();
    for _ in 0..TICKS_BESIDE {
        s.expect("vm0 | steady: tick", wait)?;
    }
    let lines = s.transcript();
    let alone = steady::ticks(&lines[..phases.started], "vm0");
    let beside = steady::ticks(&lines[spinning..], "vm0");
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a bound of a few timebases, far inside u64"
    )]
    let max_gap = (max_gap * phases.timebase as f64) as u64;
    let progress = steady::check_progress(&alone, &beside, max_gap, min_share_inverse)
        .map_err(|e| format!("{e}\n{lines:?}"))?;
    let said = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    for bad in [
        "FAILED",
        "stopped",
        "powered off",
        "panic",
        "killed",
        "fatal",
    ] {
        if said(bad) != 0 {
            return Err(format!("{bad:?} in {lines:?}"));
        }
    }
    // The device failures vm1 provokes are shown a few times, then no more.
    if said("ioreq: WARN:") > 5 || said("ioreq: WARN: VmId(1): further problems are not shown") != 1
    {
        return Err(format!("ioreq's warnings not cut short: {lines:?}"));
    }
    Ok(progress)
}
