//! The console calls on the running kernel: [`ConsoleHost`] over the
//! firmware console (input, partial lines) and power-off, and the poll that
//! hands typed bytes to a task waiting in `console_read`.

use super::{Runner, Tasks};
use crate::syscall_console::{self, ConsoleHost};
use crate::{ExitStatus, arch, klog};

impl ConsoleHost for Tasks {
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        arch::console_read(buf)
    }

    fn console_put(&mut self, bytes: &[u8]) {
        klog::put_partial(bytes);
    }

    fn halt(&mut self, success: bool) {
        let status = if success {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        };
        klog::print(format_args!("mica: halt requested, powering off\n"));
        arch::shutdown(status)
    }
}

/// On a timer tick or an idle wake-up: gives pending console bytes to the
/// task waiting for them (if any), which becomes ready; so do the tasks
/// whose `sleep` ended (`userland_devices`).
pub(super) fn poll(r: &mut Runner) {
    super::devices::wake_sleepers(r);
    let mut wait = syscall_console::WAIT.lock();
    if wait.reader().is_some() {
        syscall_console::poll_input(&mut wait, &mut r.objects, &mut r.tasks);
    }
}
