//! The `steady` test guests' tick lines (`steady: tick N at T spins S`, T
//! the guest's clock at the line, S its busy-loop iterations since the
//! last one) and the progress a well-behaved VM must keep beside a
//! hostile one: ticks on time, and spins per tick not far below what it
//! managed before the other VM turned hostile.

/// One tick line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Its number.
    pub n: u64,
    /// The guest's clock (`time` CSR, TSC) when it printed it.
    pub at: u64,
    /// Loop iterations since the previous tick.
    pub spins: u64,
}

/// The tick in `line` of VM `vm` (`<vm> | steady: tick N at T spins S`).
pub fn parse(line: &str, vm: &str) -> Option<Tick> {
    let rest = line.strip_prefix(vm)?.strip_prefix(" | steady: tick ")?;
    let mut words = rest.split(' ');
    let n = words.next()?.parse().ok()?;
    let at = words.nth(1)?.parse().ok()?;
    let spins = words.nth(1)?.parse().ok()?;
    Some(Tick { n, at, spins })
}

/// Every tick of `vm` in `lines`.
pub fn ticks(lines: &[String], vm: &str) -> Vec<Tick> {
    lines.iter().filter_map(|l| parse(l, vm)).collect()
}

/// The mean spins per tick of `ticks`.
pub fn mean_spins(ticks: &[Tick]) -> u64 {
    let count = u64::try_from(ticks.len()).unwrap_or(u64::MAX).max(1);
    ticks.iter().map(|t| t.spins).sum::<u64>() / count
}

/// Checks the well-behaved VM's progress: at least two ticks `alone` and
/// two `beside` the hostile VM; every tick (both lists, consecutive) came
/// at most `max_gap` clock counts after the one before; and the mean
/// spins per tick beside it are at least `1/min_share_inverse` of the
/// mean alone. Returns (mean alone, mean beside) or what failed.
pub fn check_progress(
    alone: &[Tick],
    beside: &[Tick],
    max_gap: u64,
    min_share_inverse: u64,
) -> Result<(u64, u64), String> {
    if alone.len() < 2 || beside.len() < 2 {
        return Err(format!(
            "too few ticks: {alone:?} alone, {beside:?} beside the hostile VM"
        ));
    }
    for pair in alone.windows(2).chain(beside.windows(2)) {
        let gap = pair[1].at.wrapping_sub(pair[0].at);
        if pair[1].n == pair[0].n + 1 && gap > max_gap {
            return Err(format!(
                "tick {} came {gap} clock counts after tick {} (at most {max_gap})",
                pair[1].n, pair[0].n
            ));
        }
    }
    let (before, during) = (mean_spins(alone), mean_spins(beside));
    if during.saturating_mul(min_share_inverse) < before {
        return Err(format!(
            "{during} spins per tick beside the hostile VM, {before} alone: less than 1/{min_share_inverse}"
        ));
    }
    Ok((before, during))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(n: u64, at: u64, spins: u64) -> Tick {
        Tick { n, at, spins }
    }

    #[test]
    fn parses_a_tick_line_of_its_vm_only() {
        let line = "vm0 | steady: tick 12 at 123352373 spins 4710822";
        assert_eq!(parse(line, "vm0"), Some(tick(12, 123_352_373, 4_710_822)));
        assert_eq!(parse(line, "vm1"), None);
        assert_eq!(parse("vm0 | steady: timebase 10000000", "vm0"), None);
    }

    #[test]
    fn progress_fails_on_a_late_tick_or_a_starved_vm() {
        let alone = [tick(1, 10, 100), tick(2, 20, 100)];
        let fine = [tick(5, 50, 40), tick(6, 61, 40)];
        assert_eq!(check_progress(&alone, &fine, 12, 5), Ok((100, 40)));
        let late = [tick(5, 50, 40), tick(6, 70, 40)];
        assert!(
            check_progress(&alone, &late, 12, 5)
                .unwrap_err()
                .contains("tick 6 came 20")
        );
        let starved = [tick(5, 50, 10), tick(6, 60, 10)];
        assert!(
            check_progress(&alone, &starved, 12, 5)
                .unwrap_err()
                .contains("1/5")
        );
        assert!(check_progress(&alone[..1], &fine, 12, 5).is_err());
    }
}
