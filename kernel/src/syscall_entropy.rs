//! The entropy system call (`ipc::syscall` number 40): 64 fresh bits from
//! the machine's hardware random source (the arch layer's: RISC-V Zkr
//! `seed`, x86 RDSEED/RDRAND), for the tasks whose manifest grants the
//! ENTROPY right (the vm-manager's generation IDs, the device service's
//! virtio-rng). Without a source the call says so (`Error::NoEntropy`):
//! the kernel never makes bits up, so a caller cannot mistake counters
//! for randomness.

use ipc::Error;
use mica_boot::image::KernelRights;

use crate::obj::ids::TaskId;
use crate::obj::objects::KernelObjects;
use crate::obj::sched::Decision;
use crate::syscall::Machine;

/// The machine's hardware random source. The default is a machine
/// without one.
pub trait EntropyHost {
    /// 64 fresh bits; `None` without a source or when it failed.
    fn hardware_entropy(&mut self) -> Option<u64> {
        None
    }
}

/// Runs `entropy` for `current`: a1 = 64 bits. `Error::PermissionDenied`
/// without the ENTROPY right, `Error::NoEntropy` without a source.
#[allow(
    clippy::cast_possible_truncation,
    reason = "registers are 64 bits wide on every target with tasks"
)]
pub fn entropy<M: Machine>(objects: &KernelObjects, machine: &mut M, current: TaskId) -> Decision {
    let allowed = objects
        .tasks
        .get(current)
        .is_ok_and(|task| task.kernel_rights().contains(KernelRights::ENTROPY));
    let result = if allowed {
        machine.hardware_entropy().ok_or(Error::NoEntropy)
    } else {
        Err(Error::PermissionDenied)
    };
    machine.set_outcome(current, result.map(|bits| [bits as usize, 0, 0]));
    Decision::Continue
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ipc::syscall::{OK, Sysno, status_of};

    use super::*;
    use crate::obj::sched::Priority;
    use crate::syscall::dispatch;
    use crate::syscall_console::ConsoleHost;
    use crate::syscall_stats::StatsHost;
    use crate::syscall_vm::VmHost;

    /// A machine whose source yields `words` in turn (none: no source).
    #[derive(Default)]
    struct Rng {
        words: Vec<u64>,
        draws: usize,
        results: BTreeMap<usize, (usize, [usize; 3])>,
    }

    impl VmHost for Rng {}
    impl ConsoleHost for Rng {}
    impl StatsHost for Rng {}
    impl EntropyHost for Rng {
        fn hardware_entropy(&mut self) -> Option<u64> {
            let word = self.words.get(self.draws).copied();
            self.draws += 1;
            word
        }
    }

    crate::test_machine::test_machine!(Rng);

    fn task(k: &mut KernelObjects, name: &str, rights: KernelRights) -> TaskId {
        let task = k.spawn(name, Priority::new(1).unwrap()).unwrap();
        k.tasks.get_mut(task).unwrap().set_kernel_rights(rights);
        task
    }

    fn call(k: &mut KernelObjects, m: &mut Rng, task: TaskId) -> (usize, [usize; 3]) {
        let decision = dispatch(k, m, task, Sysno::Entropy as usize, [0; 6]);
        assert_eq!(decision, Decision::Continue);
        m.results[&task.slot()]
    }

    #[test]
    fn a_task_with_the_right_gets_each_fresh_word() {
        let mut k = KernelObjects::new();
        let vmm = task(&mut k, "vm-manager", KernelRights::ENTROPY);
        let mut m = Rng {
            words: vec![0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210],
            ..Rng::default()
        };
        assert_eq!(
            call(&mut k, &mut m, vmm),
            (OK, [0x0123_4567_89ab_cdef, 0, 0])
        );
        assert_eq!(
            call(&mut k, &mut m, vmm),
            (OK, [0xfedc_ba98_7654_3210, 0, 0])
        );
    }

    #[test]
    fn a_task_without_the_right_is_refused_and_draws_nothing() {
        let mut k = KernelObjects::new();
        let shell = task(
            &mut k,
            "shell",
            KernelRights::CONSOLE.union(KernelRights::HALT),
        );
        let mut m = Rng {
            words: vec![1],
            ..Rng::default()
        };
        let refused = status_of(Error::PermissionDenied);
        assert_eq!(call(&mut k, &mut m, shell), (refused, [0; 3]));
        assert_eq!(m.draws, 0, "the source was not touched");
    }

    #[test]
    fn without_a_source_the_call_says_so_and_returns_no_bits() {
        let mut k = KernelObjects::new();
        let vmm = task(&mut k, "vm-manager", KernelRights::ENTROPY);
        let mut m = Rng::default();
        let none = status_of(Error::NoEntropy);
        assert_eq!(call(&mut k, &mut m, vmm), (none, [0; 3]));
        assert_eq!(ipc::syscall::error_of(none), Some(Error::NoEntropy));
    }
}
