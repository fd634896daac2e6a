//! How many of its problems the ioreq service logs per VM. A guest whose
//! accesses keep failing (a window with no device model behind it, a width
//! a register does not take) gets all-ones, not a stopped VM, and would
//! otherwise put one console line on the host per access: the first
//! [`SHOWN_PER_VM`] are shown, then one line saying the rest are not.

use ipc::VmId;

/// Problems shown per VM before the service goes quiet about it.
pub const SHOWN_PER_VM: u16 = 4;

/// Whether to log a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it.
    Show,
    /// Log it, and say that this VM's further problems are not logged.
    ShowLast,
    /// Do not log it.
    Quiet,
}

/// The problems counted per VM number (below `N`), for the service's
/// lifetime.
pub struct ProblemLog<const N: usize> {
    shown: [u16; N],
}

impl<const N: usize> ProblemLog<N> {
    /// No problem seen yet.
    pub const fn new() -> Self {
        Self { shown: [0; N] }
    }

    /// Counts a problem of `vm` and says whether to log it. A VM number
    /// out of range shares the last VM's budget.
    pub fn note(&mut self, vm: VmId) -> Verdict {
        let Some(last) = N.checked_sub(1) else {
            return Verdict::Quiet;
        };
        let shown = &mut self.shown[usize::from(vm.0).min(last)];
        *shown = shown.saturating_add(1);
        match (*shown).cmp(&SHOWN_PER_VM) {
            core::cmp::Ordering::Less => Verdict::Show,
            core::cmp::Ordering::Equal => Verdict::ShowLast,
            core::cmp::Ordering::Greater => Verdict::Quiet,
        }
    }
}

impl<const N: usize> Default for ProblemLog<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vm_gets_its_own_few_lines_then_one_last_and_quiet() {
        let mut log = ProblemLog::<4>::new();
        for _ in 1..SHOWN_PER_VM {
            assert_eq!(log.note(VmId(1)), Verdict::Show);
        }
        assert_eq!(log.note(VmId(1)), Verdict::ShowLast);
        for _ in 0..1000 {
            assert_eq!(log.note(VmId(1)), Verdict::Quiet);
        }
        // Another VM's problems are still shown.
        assert_eq!(log.note(VmId(0)), Verdict::Show);
    }

    #[test]
    fn a_vm_number_out_of_range_shares_the_last_budget() {
        let mut log = ProblemLog::<2>::new();
        for _ in 0..SHOWN_PER_VM {
            log.note(VmId(1));
        }
        assert_eq!(log.note(VmId(900)), Verdict::Quiet);
        assert_eq!(ProblemLog::<0>::new().note(VmId(0)), Verdict::Quiet);
    }
}
