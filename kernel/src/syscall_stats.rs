//! The statistics system call (`ipc::syscall` number 25): `mem_info`, the
//! frame allocator's free and managed frame counts, so the shell's `mem`
//! and the integration tests can see that a destroyed VM's memory came
//! back. Any task may ask: the answer is two counts and no addresses.

use ipc::Error;
use ipc::syscall::{OK, status_of};

use crate::obj::ids::TaskId;
use crate::obj::sched::Decision;
use crate::syscall::Machine;

/// The frame allocator's counts, in 4 KiB frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Frames free now.
    pub free: usize,
    /// Frames managed in total (free or in use).
    pub total: usize,
}

/// What the machine tells about its memory. The default is a machine
/// that does not count (the call is refused).
pub trait StatsHost {
    /// The frame allocator's counts now.
    fn frame_counts(&self) -> Option<FrameCounts> {
        None
    }
    /// The timer's ticks per second and the `ipc::syscall::PLATFORM_*`
    /// feature bits; `None` on a machine without a timebase to report.
    fn platform_info(&self) -> Option<(u64, usize)> {
        None
    }
}

/// Runs `mem_info` for `current`: a1 = free frames, a2 = total frames;
/// `Error::KernelRefused` on a machine that does not count.
pub fn mem_info<M: Machine>(machine: &mut M, current: TaskId) -> Decision {
    match machine.frame_counts() {
        Some(counts) => machine.set_result(current, OK, [counts.free, counts.total, 0]),
        None => machine.set_result(current, status_of(Error::KernelRefused), [0; 3]),
    }
    Decision::Continue
}

/// Runs `platform_info` for `current`: a1 = timebase in Hz, a2 = feature
/// bits; `Error::KernelRefused` on a machine without a timebase.
#[allow(
    clippy::cast_possible_truncation,
    reason = "a timer frequency fits the 64-bit registers of every target with tasks"
)]
pub fn platform_info<M: Machine>(machine: &mut M, current: TaskId) -> Decision {
    match machine.platform_info() {
        Some((hz, flags)) => machine.set_result(current, OK, [hz as usize, flags, 0]),
        None => machine.set_result(current, status_of(Error::KernelRefused), [0; 3]),
    }
    Decision::Continue
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ipc::syscall::Sysno;

    use super::*;
    use crate::obj::objects::KernelObjects;
    use crate::obj::sched::Priority;
    use crate::syscall::dispatch;
    use crate::syscall_console::ConsoleHost;
    use crate::syscall_vm::VmHost;

    /// A machine whose allocator has `counts` (or that does not count).
    #[derive(Default)]
    struct Counted {
        counts: Option<FrameCounts>,
        platform: Option<(u64, usize)>,
        results: BTreeMap<usize, (usize, [usize; 3])>,
    }

    impl VmHost for Counted {}
    impl ConsoleHost for Counted {}
    impl crate::syscall_entropy::EntropyHost for Counted {}
    impl StatsHost for Counted {
        fn frame_counts(&self) -> Option<FrameCounts> {
            self.counts
        }
        fn platform_info(&self) -> Option<(u64, usize)> {
            self.platform
        }
    }

    crate::test_machine::test_machine!(Counted);

    fn ask(counts: Option<FrameCounts>) -> (usize, [usize; 3]) {
        let mut k = KernelObjects::new();
        // A task with no kernel rights at all may ask.
        let shell = k.spawn("shell", Priority::new(1).unwrap()).unwrap();
        let mut m = Counted {
            counts,
            ..Counted::default()
        };
        let decision = dispatch(&mut k, &mut m, shell, Sysno::MemInfo as usize, [0; 6]);
        assert_eq!(decision, Decision::Continue);
        m.results[&shell.slot()]
    }

    #[test]
    fn any_task_reads_the_free_and_total_frames() {
        let counts = FrameCounts {
            free: 100_000,
            total: 131_072,
        };
        assert_eq!(ask(Some(counts)), (OK, [100_000, 131_072, 0]));
    }

    #[test]
    fn a_machine_that_does_not_count_refuses() {
        assert_eq!(ask(None), (status_of(Error::KernelRefused), [0; 3]));
    }

    #[test]
    fn any_task_reads_the_timebase_and_the_sstc_bit() {
        let mut k = KernelObjects::new();
        let shell = k.spawn("shell", Priority::new(1).unwrap()).unwrap();
        let mut m = Counted {
            platform: Some((25_000_000, ipc::syscall::PLATFORM_SSTC)),
            ..Counted::default()
        };
        dispatch(&mut k, &mut m, shell, Sysno::PlatformInfo as usize, [0; 6]);
        assert_eq!(m.results[&shell.slot()], (OK, [25_000_000, 1, 0]));
        m.platform = None;
        dispatch(&mut k, &mut m, shell, Sysno::PlatformInfo as usize, [0; 6]);
        let refused = status_of(Error::KernelRefused);
        assert_eq!(m.results[&shell.slot()], (refused, [0; 3]));
    }
}
