//! The `Machine` of the system-call tests: results recorded in the host's
//! `results` map (task slot -> status and values), every other hook silent
//! (no messages copied, no console, no deaths reported, no restarts), user
//! memory unreadable unless the test says how it reads.

/// Implements `crate::syscall::Machine` for `$host`, a test host with a
/// `results: BTreeMap<usize, (usize, [usize; 3])>` field. `$read_user`,
/// if given, is `fn(ptr, out) -> bool` and stands for every task's memory.
macro_rules! test_machine {
    ($host:ty) => {
        $crate::test_machine::test_machine!($host, |_: usize, _: &mut [u8]| false);
    };
    ($host:ty, $read_user:expr) => {
        impl $crate::syscall::Machine for $host {
            fn set_result(
                &mut self,
                task: $crate::obj::ids::TaskId,
                status: usize,
                values: [usize; 3],
            ) {
                self.results.insert(task.slot(), (status, values));
            }
            fn copy_message(
                &mut self,
                _: $crate::obj::ids::TaskId,
                _: $crate::obj::ids::TaskId,
                _: usize,
            ) {
            }
            fn read_user(
                &mut self,
                _: $crate::obj::ids::TaskId,
                ptr: usize,
                out: &mut [u8],
            ) -> bool {
                let read: fn(usize, &mut [u8]) -> bool = $read_user;
                read(ptr, out)
            }
            fn console_line(&mut self, _: $crate::obj::ids::TaskId, _: &[u8]) {}
            fn report_death(&mut self, _: &$crate::obj::task::DeathNotice) {}
            fn supervisor(&self) -> Option<$crate::obj::ids::TaskId> {
                None
            }
            fn restart(
                &mut self,
                _: &mut $crate::obj::objects::KernelObjects,
                _: &$crate::obj::task::DeathNotice,
            ) -> Result<$crate::syscall::Restarted, ipc::Error> {
                Err(ipc::Error::KernelRefused)
            }
        }
    };
}

pub(crate) use test_machine;
